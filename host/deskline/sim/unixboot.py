# Power-on for a virtual console (runs under the MicroPython unix port):
# mounts the flash image as littlefs at / and runs boot.py and main.py.
import os
import sys

import vfs

_BS = 4096


class FileFlash:
    # A block device on an image file: kill -9 keeps what was written, as a
    # power cut keeps what reached the flash.
    def __init__(self, path, blocks):
        self.blocks = blocks
        try:
            self.f = open(path, "r+b")
        except OSError:
            self.f = open(path, "w+b")
            blank = b"\xff" * _BS
            for _ in range(blocks):
                self.f.write(blank)
            self.f.flush()

    def readblocks(self, n, buf, off=0):
        self.f.seek(n * _BS + off)
        self.f.readinto(buf)

    def writeblocks(self, n, buf, off=None):
        self.f.seek(n * _BS + (off or 0))
        self.f.write(buf)
        self.f.flush()

    def ioctl(self, op, arg):
        if op == 4:
            return self.blocks
        if op == 5:
            return _BS
        if op == 6:
            return 0
        return None


def power_on():
    image = os.getenv("DESKLINE_IMAGE")
    blocks = int(os.getenv("DESKLINE_BLOCKS") or "512")
    install = os.getenv("DESKLINE_INSTALL")
    flash = FileFlash(image, blocks)
    try:
        fs = vfs.VfsLfs2(flash)
    except OSError:
        vfs.VfsLfs2.mkfs(flash)
        fs = vfs.VfsLfs2(flash)
    if install:
        # The installer is loaded only when needed and dropped after, so
        # the app's heap is the same on every boot.
        import unixinstall

        vfs.mount(fs, "/flash")
        unixinstall.install(install, "/flash")
        vfs.umount("/flash")
        del sys.modules["unixinstall"]
        del unixinstall
    vfs.umount("/")
    vfs.mount(fs, "/")
    os.chdir("/")
    sys.path[:] = ["", "/lib", ".frozen"]
    for script in ("boot.py", "main.py"):
        try:
            with open(script) as f:
                code = f.read()
        except OSError:
            continue
        exec(code, {"__name__": "__main__"})
        del code


power_on()
