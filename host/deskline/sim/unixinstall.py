# Installs app files onto a virtual console's flash (MicroPython unix port),
# as a deploy would: the loader at the root, the app in its slot; stale
# modules go, so an old .py cannot shadow a new .mpy, and a fresh install
# forgets any update on trial.
import os

# bootslot.py's files of an update in progress (see its header).
_UPDATE_STATE = ("trial", "rollback", "fwtry", "fwnext")


def _copy_tree(src, dst):
    try:
        os.mkdir(dst)
    except OSError:
        pass
    keep = []
    for entry in os.ilistdir(src):
        name, kind = entry[0], entry[1]
        keep.append(name)
        s = src + "/" + name
        d = dst + "/" + name
        if kind == 0x4000:
            _copy_tree(s, d)
            continue
        with open(s, "rb") as fi, open(d, "wb") as fo:
            while True:
                chunk = fi.read(1024)
                if not chunk:
                    break
                fo.write(chunk)
    for entry in os.ilistdir(dst):
        name = entry[0]
        if entry[1] != 0x4000 and name not in keep:
            if name.endswith(".py") or name.endswith(".mpy") or name in _UPDATE_STATE:
                os.remove(dst + "/" + name)


def install(src, dst):
    _copy_tree(src, dst)
