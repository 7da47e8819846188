# App updates: a signed bundle's files streamed (XFER kind 2) into the
# inactive slot, then checked whole and tried on the next boot.  Loaded
# only while an update runs; files go to flash 512 bytes at a time.
#
# The host sends MANIFEST, MANIFEST.sig, then each file the manifest lists;
# a file the slot already holds is answered "present" and not sent again.
# REBOOT mode 1 (activate) checks the signature and every file's SHA-256
# from flash before it names the slot for a trial (bootslot.py).
import hashlib
import os
import sys
from binascii import hexlify, unhexlify

import bootslot
import updcodes as U
import wire as W
from micropython import const

_CHUNK = const(512)
_MAX_MANIFEST = const(8192)
_FORMAT = "1"
# sys.implementation._mpy >> 10 (host/deskline/bundle.py ARCHES, same order).
_ARCHES = (
    "none",
    "x86",
    "x64",
    "armv6",
    "armv6m",
    "armv7m",
    "armv7em",
    "armv7emsp",
    "armv7emdp",
    "xtensa",
    "xtensawin",
    "rv32imc",
    "rv64imc",
)
PUBKEY = "fleet.pub"  # at the flash root, written when the console is provisioned


def target():
    # The slot an update may write: never the confirmed one, and none while
    # an app is on trial (its old slot is the way back).  (dir, error)
    if bootslot._read("trial"):
        return "", "an app is on trial here: wait until it is confirmed or rolled back"
    return bootslot.ROOT + ("/b" if bootslot.confirmed() == "a" else "/a"), ""


def _mkdir(path):
    try:
        os.mkdir(path)
    except OSError:
        pass


def file_sha(path, buf):
    # SHA-256 of a file read through buf; None if it cannot be read.
    h = hashlib.sha256()
    mv = memoryview(buf)
    try:
        with open(path, "rb") as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                h.update(mv[:n])
    except OSError:
        return None
    return h.digest()


def _words(f):
    # The next manifest line as words; None at the end.
    line = f.readline()
    return line.split() if line else None


def header(d):
    # (fields dict, error) of the staged manifest's head.
    head = {}
    try:
        with open(d + "/MANIFEST") as f:
            while True:
                w = _words(f)
                if w is None or (w and w[0] in ("file", "loader", "firmware")):
                    break
                if len(w) != 2:
                    return None, "the bundle manifest is malformed"
                head[w[0]] = w[1]
    except OSError:
        return None, "no bundle manifest staged: send MANIFEST first"
    if head.get("deskline-bundle") != _FORMAT:
        return None, "not a deskline bundle of format " + _FORMAT
    mpy = sys.implementation._mpy
    arch = _ARCHES[mpy >> 10] if mpy >> 10 < len(_ARCHES) else "?"
    mine = "%d.%d" % (mpy & 0xFF, (mpy >> 8) & 3)
    if head.get("arch") != arch or head.get("mpy") != mine:
        return None, "bundle built for %s mpy %s; this console runs %s mpy %s" % (
            head.get("arch"),
            head.get("mpy"),
            arch,
            mine,
        )
    return head, ""


def lookup(d, kind, name):
    # (sha hex, size) of the staged manifest's line for name, or None.
    try:
        with open(d + "/MANIFEST") as f:
            while True:
                w = _words(f)
                if w is None:
                    return None
                if len(w) == 4 and w[0] == kind and w[3] == name:
                    return w[1], int(w[2])
    except (OSError, ValueError):
        return None


def check_signature(d, tick=None):
    # RESULT (status, text) for the staged manifest against the fleet key.
    try:
        with open(bootslot.ROOT + "/" + PUBKEY) as f:
            pub = unhexlify(f.read().strip())
    except (OSError, ValueError):
        return U.E_SIGNATURE, "no fleet key on this console (/" + PUBKEY + "): provision one"
    try:
        with open(d + "/MANIFEST.sig", "rb") as f:
            sig = f.read(65)
    except OSError:
        return U.E_SIGNATURE, "bundle is unsigned (no MANIFEST.sig): refused"
    digest = file_sha(d + "/MANIFEST", bytearray(_CHUNK))
    import gc

    import ed25519

    try:
        ok = digest is not None and ed25519.verify(pub, digest, sig, tick)
    except MemoryError:
        # A console short of heap now may have it a moment later.
        return W.E_NO_SPACE, "console out of memory checking the signature: send it again"
    finally:
        del sys.modules["ed25519"]
        gc.collect()
    if not ok:
        return U.E_SIGNATURE, "bundle signature does not match the fleet key: refused"
    return W.OK, ""


class AppFile:
    # One file of a bundle into the inactive slot.
    def __init__(self):
        self.f = None
        self.h = None
        self.got = 0
        self.size = 0
        self.sha = b""
        self.path = ""
        self.name = ""
        self.dir = ""

    def begin(self, size, sha, name):
        d, err = target()
        if err:
            return W.E_STATE, err
        name = name.decode() if isinstance(name, bytes) else name
        if not name or "/" in name or name[0] == ".":
            return W.E_BAD_REQUEST, "bad file name %r" % name
        _mkdir(d)
        if name == "MANIFEST":
            if size > _MAX_MANIFEST:
                return W.E_NO_SPACE, "manifest over %d bytes" % _MAX_MANIFEST
        elif name == "MANIFEST.sig":
            if size != 64:
                return W.E_BAD_REQUEST, "a signature is 64 bytes"
        else:
            want = lookup(d, "file", name)
            if want is None:
                return W.E_BAD_REQUEST, name + " is not in the bundle's manifest"
            if want[0] != hexlify(sha).decode() or want[1] != size:
                return W.E_BAD_REQUEST, name + " does not match the bundle's manifest"
        self.dir = d
        self.name = name
        self.path = d + "/" + name
        self.size = size
        self.sha = sha
        buf = bytearray(_CHUNK)
        if file_sha(self.path, buf) == sha:
            self.got = size
            return W.OK, "present"
        try:
            self.f = open(self.path, "wb")
        except OSError as e:
            return W.E_NO_SPACE, "cannot write %s: %s" % (self.path, e)
        self.h = hashlib.sha256()
        return W.OK, ""

    def data(self, offset, chunk):
        f = self.f
        h = self.h
        if f is not None and h is not None and offset == self.got:
            if offset + len(chunk) <= self.size:
                try:
                    f.write(chunk)
                except OSError:
                    return self.got, W.E_NO_SPACE
                h.update(chunk)
                self.got += len(chunk)
        return self.got, W.OK

    def end(self):
        f = self.f
        h = self.h
        if f is None or h is None:
            st, text = W.OK, ""  # present already
        else:
            f.close()
            self.f = None
            if self.got != self.size:
                return W.E_BAD_REQUEST, "got %d of %d bytes" % (self.got, self.size)
            if h.digest() != self.sha:
                _remove(self.path)
                return W.E_CHECKSUM, "sha256 mismatch"
            st, text = W.OK, ""
        # Refuse early what activation would refuse: a bundle for another
        # console, or one the fleet key did not sign.
        if self.name == "MANIFEST":
            head, err = header(self.dir)
            if head is None:
                return W.E_BAD_REQUEST, err
        elif self.name == "MANIFEST.sig":
            st, text = check_signature(self.dir)
        return st, text

    def abort(self):
        if self.f is not None:
            self.f.close()
            self.f = None


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def verify_slot(d, tick=None):
    # Everything activation needs, from flash: (status, text, version).
    head, err = header(d)
    if head is None:
        return W.E_BAD_REQUEST, err, ""
    st, text = check_signature(d, tick)
    if st != W.OK:
        return st, text, ""
    buf = bytearray(_CHUNK)
    keep = ["MANIFEST", "MANIFEST.sig"]
    with open(d + "/MANIFEST") as f:
        while True:
            w = _words(f)
            if w is None:
                break
            if len(w) != 4 or w[0] != "file":
                continue
            got = file_sha(d + "/" + w[3], buf)
            if got is None:
                return W.E_STATE, "%s is missing from the staged app" % w[3], ""
            if hexlify(got).decode() != w[1]:
                return W.E_CHECKSUM, "%s in the staged app does not match its manifest" % w[3], ""
            keep.append(w[3])
            if tick is not None:
                tick()
    # What the bundle does not list goes: an old module must not shadow a
    # name the new app no longer has.
    for e in os.ilistdir(d):
        if e[0] not in keep:
            _remove(d + "/" + e[0])
    return W.OK, "", head.get("version", "?")


def activate(tick=None):
    # REBOOT mode 1: (status, text); on OK the caller restarts into the trial.
    d, err = target()
    if err:
        return W.E_STATE, err
    st, text, version = verify_slot(d, tick)
    if st != W.OK:
        return st, text
    s = d[-1]
    bootslot.activate(s)
    return W.OK, "app %s checked in slot %s: restarting to try it" % (version, s)
