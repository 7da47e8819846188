# An update on trial: the new app (or firmware) proves itself healthy, or
# the console goes back; a rollback made at boot is reported.  Loaded by
# the app only at boot after an update and when the trial settles.
import sys

import bootslot
import updcodes as U
import wire as W
from micropython import const

_WARN = const(2)  # LOG level
_INFO = const(1)
_APP_UPDATE = const(0x04)  # bootinfo reason: the update is why it restarts


def slot_no(s):
    # HELLO.app_slot: 0 the app at the root, 1 slot a, 2 slot b.
    return " ab".find(s) if s else 0


def version(s):
    # The version named by slot s's manifest.
    try:
        with open(bootslot.ROOT + "/" + s + "/MANIFEST") as f:
            while True:
                w = f.readline().split()
                if not w:
                    break
                if len(w) == 2 and w[0] == "version":
                    return w[1]
    except OSError:
        pass
    return "?"


def _log(app, level, text):
    app.link.send(W.LOG, (level, text))


def _fw():
    import fwupdate

    return fwupdate


def _drop_fw():
    for name in ("fwupdate", "appupdate"):
        if name in sys.modules:
            del sys.modules[name]


def _tidy():
    # What this module loaded goes with it when the app drops it.
    for name in ("bootslot", "updcodes"):
        if name in sys.modules:
            del sys.modules[name]


def started(app):
    # At boot, journaled before anything else can go wrong: the rollback
    # boot.py made, and one the bootloader made behind our back.
    if app.rolled:
        s, boots = app.rolled.split()
        v = version(s)
        app.emit(U.EV_UPDATE, U.UPD_APP_ROLLBACK, slot_no(s), int(boots), 0, v)
        _log(
            app,
            _WARN,
            "app %s in slot %s failed %s starts: back to %s"
            % (v, s, boots, ("slot " + app.slot) if app.slot else "the root app"),
        )
        bootslot.remove("rollback")
        app.rolled = ""
    if app.trial & U.HELLO_FW_TRIAL:
        label, running = _fw().running()
        if label != running:
            bootslot.remove("fwtry")
            app.trial &= ~U.HELLO_FW_TRIAL
            app.emit(U.EV_UPDATE, U.UPD_FW_ROLLBACK, 0, 0, 0, label)
            _log(app, _WARN, "firmware in %s did not stay up: back to %s" % (label, running))
        _drop_fw()
    _tidy()


def settle(app, healthy):
    # healthy: the host stored this boot's hello and the app kept running.
    # Otherwise the deadline passed: give the trial up and restart, so the
    # next boot goes back (the bootloader does the same for a firmware).
    if healthy:
        if app.trial & U.HELLO_TRIAL:
            bootslot.confirm(app.slot)
            v = version(app.slot)
            app.emit(U.EV_UPDATE, U.UPD_APP_OK, slot_no(app.slot), 0, 0, v)
            _log(app, _INFO, "app %s in slot %s confirmed" % (v, app.slot))
        if app.trial & U.HELLO_FW_TRIAL:
            ok, text = _fw().confirm()
            _drop_fw()
            app.emit(U.EV_UPDATE, U.UPD_FW_OK if ok else U.UPD_FW_ROLLBACK, 0, 0, 0, text[:60])
            _log(app, _INFO if ok else _WARN, "firmware " + ("confirmed in " if ok else "") + text)
        app.trial = 0
        _tidy()
        return
    if app.trial & U.HELLO_TRIAL:
        bootslot.give_up(app.slot)
    _log(app, _WARN, "update on trial never heard the host: going back")
    app.restart(_APP_UPDATE)
