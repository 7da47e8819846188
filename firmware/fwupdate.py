# MicroPython firmware updates through the ESP32 OTA partitions (XFER kind
# 3): the image goes into the next OTA partition 512 bytes at a time, is read
# back and hashed, and must be listed in the staged, signed bundle manifest
# (a `firmware` line).  REBOOT mode 2 sets it to boot; the new firmware is
# marked valid only once the app proves healthy (apptrial.py), so the
# bootloader rolls a bad one back at the next reset.
import hashlib
from binascii import hexlify, unhexlify

import appupdate
import bootslot
import wire as W
from micropython import const

_CHUNK = const(512)


def partitions():
    # esp32.Partition on a console; the board layer's fake in the virtual one.
    try:
        import esp32

        return esp32.Partition
    except ImportError:
        import boardsim

        return boardsim.partitions()


def _staged_line(sha, size):
    # The signed manifest staged for the update must list this image.
    d, err = appupdate.target()
    if err:
        return "", err
    head, err = appupdate.header(d)
    if head is None:
        return "", err
    h = hexlify(sha).decode()
    with open(d + "/MANIFEST") as f:
        while True:
            line = f.readline()
            if not line:
                break
            w = line.split()
            if len(w) == 4 and w[0] == "firmware" and w[1] == h and int(w[2]) == size:
                return d, ""
    return "", "firmware image not listed in the staged bundle manifest: send the bundle's first"


class Image:
    # One firmware image into the next OTA partition.
    def __init__(self):
        self.part = None
        self.h = None
        self.got = 0
        self.size = 0
        self.sha = b""
        self.bs = 4096

    def begin(self, size, sha, name):
        _, err = _staged_line(sha, size)
        if err:
            return W.E_BAD_REQUEST, err
        P = partitions()
        try:
            part = P(P.RUNNING).get_next_update()  # pyright: ignore[reportArgumentType]
        except OSError:
            return W.E_UNSUPPORTED, "this firmware has no OTA partitions: flash an OTA build"
        self.bs = part.ioctl(5, 0) or 4096
        if size > (part.ioctl(4, 0) or 0) * self.bs:
            return W.E_NO_SPACE, "image of %d bytes over the OTA partition" % size
        bootslot.remove("fwnext")  # whatever was staged before is being overwritten
        self.part = part
        self.size = size
        self.sha = sha
        self.h = hashlib.sha256()
        return W.OK, ""

    def data(self, offset, chunk):
        part = self.part
        h = self.h
        if part is None or h is None or offset != self.got or offset + len(chunk) > self.size:
            return self.got, W.OK
        bs = self.bs
        done = 0
        try:
            while done < len(chunk):
                blk, pos = divmod(offset + done, bs)
                if pos == 0:
                    part.ioctl(6, blk)  # erase the block as the image reaches it
                n = min(bs - pos, len(chunk) - done)
                # 512-byte chunks never cross a 4 KB block: no copy then.
                part.writeblocks(blk, chunk if n == len(chunk) else chunk[done : done + n], pos)
                done += n
        except OSError:
            return self.got, W.E_NO_SPACE
        h.update(chunk)
        self.got += len(chunk)
        return self.got, W.OK

    def end(self):
        part = self.part
        h = self.h
        if part is None or h is None or self.got != self.size:
            return W.E_BAD_REQUEST, "got %d of %d bytes" % (self.got, self.size)
        if h.digest() != self.sha:
            return W.E_CHECKSUM, "sha256 mismatch"
        # Read back what the flash holds: the stream's hash says nothing of
        # that.  Whole 512-byte reads stay inside the partition (it is a
        # whole number of blocks); only the image's bytes are hashed.
        h = hashlib.sha256()
        buf = bytearray(_CHUNK)
        mv = memoryview(buf)
        off = 0
        while off < self.size:
            blk, pos = divmod(off, self.bs)
            part.readblocks(blk, buf, pos)
            h.update(mv[: min(_CHUNK, self.size - off)])
            off += _CHUNK
        if h.digest() != self.sha:
            return W.E_CHECKSUM, "firmware read back from flash does not match"
        label = part.info()[4]
        bootslot.write("fwnext", "%s %d %s" % (label, self.size, hexlify(self.sha).decode()))
        return W.OK, "firmware in " + label

    def abort(self):
        self.part = None


def activate(tick=None):
    # REBOOT mode 2: (status, text); on OK the caller restarts into the trial.
    w = bootslot._read("fwnext").split()
    if len(w) != 3:
        return W.E_STATE, "no firmware image staged"
    d, err = _staged_line(unhexlify(w[2]), int(w[1]))
    if err:
        return W.E_BAD_REQUEST, err
    st, text = appupdate.check_signature(d, tick)
    if st != W.OK:
        return st, text
    P = partitions()
    try:
        P(w[0]).set_boot()
    except OSError as e:
        return W.E_BAD_REQUEST, "the bootloader refused the image in %s: %s" % (w[0], e)
    bootslot.write("fwtry", w[0])
    bootslot.remove("fwnext")
    return W.OK, "firmware set to boot from %s: restarting to try it" % w[0]


def running():
    # (label on trial, label running): they differ once the bootloader went
    # back (the trial firmware did not stay up).
    P = partitions()
    return bootslot._read("fwtry"), P(P.RUNNING).info()[4]  # pyright: ignore[reportArgumentType]


def confirm():
    # The app is healthy on the firmware on trial: keep it for good.
    label = bootslot._read("fwtry")
    P = partitions()
    try:
        P.mark_app_valid_cancel_rollback()
    except OSError as e:
        return False, "could not mark %s valid: %s" % (label, e)
    bootslot.remove("fwtry")
    return True, label
