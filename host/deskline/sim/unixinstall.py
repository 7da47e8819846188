# Installs app files onto a virtual console's flash (MicroPython unix port),
# as a deploy would: stale modules go, so an old .py cannot shadow a new .mpy.
import os


def _copy_tree(src, dst):
    # Installs the app files onto the flash, as `deskline deploy` would.
    try:
        os.mkdir(dst)
    except OSError:
        pass
    for entry in os.ilistdir(src):
        name, kind = entry[0], entry[1]
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


def install(src, dst):
    keep = [e[0] for e in os.ilistdir(src)]
    for entry in os.ilistdir(dst):
        name = entry[0]
        if entry[1] != 0x4000 and name not in keep:
            if name.endswith(".py") or name.endswith(".mpy"):
                os.remove(dst + "/" + name)
    _copy_tree(src, dst)
