# The virtual console's OTA partitions: esp32.Partition's API over files in
# the supervisor's directory $DESKLINE_OTA (reached through a VfsPosix
# object, not mounted: the console's own filesystem never shows them).
# Loaded through boardsim.partitions() only while a firmware update runs.
#
# Two app partitions and the ESP-IDF rollback state in otadata.json; the
# supervisor plays the bootloader at every start (host/deskline/sim/ota.py):
# a new image boots "pending", and a reset before it is marked valid goes back.
import json
import os

import vfs

_LABELS = ("ota_0", "ota_1")
_SIZE = 0x180000  # as partitions-4MiB-ota.csv
_BS = 4096
_fs = None


def _dir():
    global _fs
    if _fs is None:
        _fs = vfs.VfsPosix(os.getenv("DESKLINE_OTA") or ".")  # pyright: ignore[reportAttributeAccessIssue]
        _fs.chdir("/")  # its own root: paths start at the directory, not the cwd
    return _fs


def _load():
    try:
        with _dir().open("otadata.json", "r") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"boot": "ota_0", "running": "ota_0", "state": "valid", "previous": "ota_0"}


def _save(st):
    fs = _dir()
    with fs.open("otadata.json.new", "w") as f:
        json.dump(st, f)
    fs.rename("otadata.json.new", "otadata.json")


class Partition:
    BOOT = 0
    RUNNING = 1
    TYPE_APP = 0
    TYPE_DATA = 1

    def __init__(self, which):
        if which == Partition.BOOT or which == Partition.RUNNING:
            which = _load()["boot" if which == Partition.BOOT else "running"]
        if which not in _LABELS:
            raise OSError(2)  # ENOENT, as the real one for an unknown label
        self.label = which

    def info(self):
        i = _LABELS.index(self.label)
        return (0, 0x10 + i, 0x10000 + i * _SIZE, _SIZE, self.label, False)

    def get_next_update(self):
        return Partition(_LABELS[1 - _LABELS.index(self.label)])

    def _open(self):
        fs = _dir()
        name = self.label + ".bin"
        try:
            return fs.open(name, "r+b")
        except OSError:
            return fs.open(name, "w+b")

    def _io(self, off, buf, program):
        # NOR flash: never-written bytes read 0xFF, and programming can only
        # clear bits, so a missing erase shows up as corrupt data.
        n = len(buf)
        if off < 0 or off + n > _SIZE:
            raise OSError(22)
        with self._open() as f:
            f.seek(off)
            old = f.read(n)
            old = old + b"\xff" * (n - len(old))
            if not program:
                buf[:] = old
                return
            f.seek(off)
            f.write(bytes(old[i] & buf[i] for i in range(n)))

    def readblocks(self, n, buf, off=0):
        self._io(n * _BS + off, buf, False)

    def writeblocks(self, n, buf, off=None):
        if off is None:  # the simple block protocol erases first
            for b in range(len(buf) // _BS):
                self.ioctl(6, n + b)
            off = 0
        self._io(n * _BS + off, buf, True)

    def ioctl(self, op, arg):
        if op == 4:
            return _SIZE // _BS
        if op == 5:
            return _BS
        if op == 6:
            if not 0 <= arg < _SIZE // _BS:
                raise OSError(22)
            ff = b"\xff" * 256
            with self._open() as f:
                f.seek(arg * _BS)
                for _ in range(_BS // 256):
                    f.write(ff)
            return 0
        return 0 if op in (1, 2, 3) else None

    def set_boot(self):
        # The real one validates the image (esp_image_verify): the magic here.
        head = bytearray(1)
        self.readblocks(0, head)
        if head[0] != 0xE9:
            raise OSError(-5379)  # ESP_ERR_OTA_VALIDATE_FAILED
        st = _load()
        st["previous"] = st["running"]
        st["boot"] = self.label
        st["state"] = "new"
        _save(st)

    @classmethod
    def mark_app_valid_cancel_rollback(cls):
        st = _load()
        if st.get("state") == "pending":
            st["state"] = "valid"
            _save(st)
