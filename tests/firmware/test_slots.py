# A/B app slots on the MicroPython unix port: the boot-time choice, a trial
# counted and rolled back, confirmation, power cuts between the steps, and
# the streaming receiver of bundle files.  Runs in a scratch directory that
# stands for the flash root.
import hashlib
import os
import sys
from binascii import hexlify

import bootslot
import updcodes as U
import wire as W

_ROOT = "/tmp/deskline-slots-" + hexlify(os.urandom(4)).decode()
_PATH = list(sys.path)


def _rmtree(path):
    try:
        entries = list(os.ilistdir(path))
    except OSError:
        return
    for e in entries:
        p = path + "/" + e[0]
        if e[1] == 0x4000:
            _rmtree(p)
        else:
            os.remove(p)
    os.rmdir(path)


def _keep():
    # The update code drops bootslot after use; a fresh import would point
    # at the real root, so the tests' own module stays the one imported.
    sys.modules["bootslot"] = bootslot


def _fresh(slot=None, trial=None):
    # A clean flash root, and boot.py's module state as at power-up.
    _keep()
    _rmtree(_ROOT)
    os.mkdir(_ROOT)
    sys.path[:] = _PATH
    bootslot.ROOT = _ROOT
    bootslot.slot = ""
    bootslot.trial = False
    bootslot.note = ""
    bootslot.fw_trial = False
    if slot:
        _put("slot", slot)
    if trial:
        _put("trial", trial)


def _put(name, text):
    with open(_ROOT + "/" + name, "w") as f:
        f.write(text)


def _get(name):
    try:
        with open(_ROOT + "/" + name) as f:
            return f.read()
    except OSError:
        return None


def _boot():
    # One power-up: boot.py's choice, as a fresh interpreter makes it.
    sys.path[:] = _PATH
    bootslot.slot = ""
    bootslot.trial = False
    bootslot.note = ""
    bootslot.choose()
    return bootslot.slot, bootslot.trial, bootslot.note


def test_no_slots_runs_the_root_app():
    _fresh()
    assert _boot() == ("", False, "")
    assert sys.path == _PATH


def test_confirmed_slot_goes_first_on_the_path():
    _fresh(slot="b")
    assert _boot() == ("b", False, "")
    assert sys.path[0] == _ROOT + "/b"


def test_a_trial_gets_its_starts_then_boot_goes_back():
    _fresh(slot="a")
    bootslot.activate("b")
    assert _get("trial") == "b 0"
    for n in range(1, bootslot.TRIAL_BOOTS + 1):
        assert _boot() == ("b", True, "")
        assert _get("trial") == "b %d" % n
    # It never confirmed: the next start returns to a and says why.
    assert _boot() == ("a", False, "b %d" % bootslot.TRIAL_BOOTS)
    assert _get("trial") is None and _get("rollback") == "b %d" % bootslot.TRIAL_BOOTS
    # The note stays until the app reported it.
    assert _boot()[2] == "b %d" % bootslot.TRIAL_BOOTS
    bootslot.remove("rollback")
    assert _boot() == ("a", False, "")


def test_confirm_makes_the_trial_the_slot():
    _fresh(slot="a")
    bootslot.activate("b")
    assert _boot() == ("b", True, "")
    bootslot.confirm("b")
    assert _get("slot") == "b" and _get("trial") is None
    assert _boot() == ("b", False, "")


def test_cut_between_the_two_writes_of_confirm():
    # The slot file renamed, the trial not yet removed: b is confirmed.
    _fresh(slot="b", trial="b 1")
    assert _boot() == ("b", False, "")
    assert _get("trial") is None


def test_give_up_goes_back_at_the_next_start():
    _fresh(slot="a")
    bootslot.activate("b")
    assert _boot() == ("b", True, "")
    bootslot.give_up("b")
    assert _boot()[:2] == ("a", False)


def test_garbage_in_the_state_files_still_boots_an_app():
    for slot, trial in (("a", "x 1"), ("a", "b one"), ("zz", "b 9"), ("a", "")):
        _fresh(slot=slot, trial=trial)
        s, _, _ = _boot()
        assert s in ("", "a", "b")
    # A half-written ".new" from a cut mid-write is ignored.
    _fresh(slot="a")
    _put("slot.new", "b")
    assert _boot()[0] == "a"


def test_first_update_from_the_root_app():
    _fresh()
    bootslot.activate("a")
    assert _boot() == ("a", True, "")
    bootslot.confirm("a")
    assert _boot() == ("a", False, "")


# --- the receiver of bundle files (appupdate) -----------------------------------
def _arch():
    import appupdate

    mpy = sys.implementation._mpy
    return appupdate._ARCHES[mpy >> 10], "%d.%d" % (mpy & 0xFF, (mpy >> 8) & 3)


def _manifest(files, arch=None):
    a, m = _arch()
    head = "deskline-bundle 1\nversion 9.9.9\narch %s\nmpy %s\nkey 00\n" % (arch or a, m)
    body = "".join(
        "file %s %d %s\n" % (hexlify(hashlib.sha256(d).digest()).decode(), len(d), n)
        for n, d in sorted(files.items())
    )
    return (head + body).encode()


def _send(name, data, chunk=100, skip_at=None):
    # One XFER of kind 2 through xfer.Transfer, as the app drives it; a
    # chunk at skip_at is lost once (the host resends from the ack).
    import xfer

    _keep()
    t = xfer.Transfer()
    st, text = t.begin(7, W.XFER_APP_FILE, len(data), hashlib.sha256(data).digest(), name)
    _keep()
    if st != W.OK:
        return st, text
    if text == "present":
        st, text = t.end(7)[:2]
        return st, text, "present"
    off = 0
    lost = False
    while off < len(data):
        if skip_at is not None and off == skip_at and not lost:
            lost = True
            got, st = t.data(7, off + chunk, data[off + chunk : off + 2 * chunk])
            assert got == off and st == W.OK  # out of order: acked where it stands
            continue
        got, st = t.data(7, off, data[off : off + chunk])
        assert st == W.OK
        off = got
    r = t.end(7)[:2]
    _keep()
    return r


def test_files_stream_into_the_inactive_slot():
    _fresh(slot="a")
    files = {"one.mpy": b"\x01" * 700, "two.mpy": bytes(range(256)) * 3}
    man = _manifest(files)
    assert _send("MANIFEST", man) == (W.OK, "")
    assert _send("one.mpy", files["one.mpy"], skip_at=200) == (W.OK, "")
    assert _send("two.mpy", files["two.mpy"]) == (W.OK, "")
    with open(_ROOT + "/b/one.mpy", "rb") as f:
        assert f.read() == files["one.mpy"]
    # Sent again (an update resumed after a cut): the slot has it.
    assert _send("two.mpy", files["two.mpy"])[2:] == ("present",)
    assert "appupdate" not in sys.modules  # the update code left with the transfer


def test_files_the_manifest_does_not_list_are_refused():
    _fresh(slot="a")
    files = {"one.mpy": b"abc"}
    assert _send("MANIFEST", _manifest(files))[0] == W.OK
    st, text = _send("evil.mpy", b"abc")
    assert st == W.E_BAD_REQUEST and "not in the bundle" in text
    st, text = _send("one.mpy", b"abd")
    assert st == W.E_BAD_REQUEST and "does not match" in text
    st, text = _send("../boot.py", b"abc")
    assert st == W.E_BAD_REQUEST


def test_a_bundle_for_another_architecture_is_refused():
    _fresh(slot="a")
    st, text = _send("MANIFEST", _manifest({"x.mpy": b"1"}, arch="armv6m"))
    assert st == W.E_BAD_REQUEST and "armv6m" in text


def test_unsigned_and_tampered_bundles_never_activate():
    _fresh(slot="a")
    files = {"one.mpy": b"abc"}
    _send("MANIFEST", _manifest(files))
    _send("one.mpy", b"abc")
    import appupdate

    st, text = appupdate.activate()
    assert st == U.E_SIGNATURE and "fleet key" in text  # none provisioned
    _put("fleet.pub", "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    st, text = appupdate.activate()
    assert st == U.E_SIGNATURE and "unsigned" in text
    st, text = _send("MANIFEST.sig", bytes(64))
    assert st == U.E_SIGNATURE and "does not match" in text
    assert appupdate.activate()[0] == U.E_SIGNATURE
    assert _get("trial") is None  # nothing was switched


def test_no_update_while_an_app_is_on_trial():
    _fresh(slot="a", trial="b 1")
    st, text = _send("MANIFEST", _manifest({}))
    assert st == W.E_STATE and "trial" in text


# --- the trial in the running app (apptrial) ----------------------------------------
class _Link:
    def __init__(self):
        self.sent = []

    def send(self, mtype, values):
        self.sent.append((mtype, values))


class _App:
    def __init__(self, slot, trial, rolled=""):
        self.slot = slot
        self.trial = trial
        self.rolled = rolled
        self.link = _Link()
        self.events = []
        self.restarted = None

    def emit(self, kind, a, b, c, ref, text):
        self.events.append((kind, a, b, c, text))

    def restart(self, reason):
        self.restarted = reason


def test_healthy_trial_is_confirmed_and_reported():
    import apptrial

    _fresh(slot="a")
    os.mkdir(_ROOT + "/b")
    _put("b/MANIFEST", "deskline-bundle 1\nversion 2.0.0\n")
    bootslot.activate("b")
    _boot()
    app = _App("b", U.HELLO_TRIAL)
    apptrial.settle(app, True)
    assert app.trial == 0 and _get("slot") == "b"
    assert app.events == [(U.EV_UPDATE, U.UPD_APP_OK, 2, 0, "2.0.0")]


def test_trial_past_its_deadline_gives_up_and_restarts():
    import apptrial

    _fresh(slot="a")
    bootslot.activate("b")
    _boot()
    app = _App("b", U.HELLO_TRIAL)
    apptrial.settle(app, False)
    assert app.restarted == 0x04
    assert _boot()[:2] == ("a", False)


def test_rollback_is_journaled_and_logged_once():
    import apptrial

    _fresh(slot="a", trial="b %d" % bootslot.TRIAL_BOOTS)
    os.mkdir(_ROOT + "/b")
    _put("b/MANIFEST", "version 3.1.0\n")
    slot, _, note = _boot()
    app = _App(slot, 0, note)
    apptrial.started(app)
    assert app.events == [(U.EV_UPDATE, U.UPD_APP_ROLLBACK, 2, bootslot.TRIAL_BOOTS, "3.1.0")]
    assert app.link.sent and app.link.sent[0][0] == W.LOG
    assert "3.1.0" in app.link.sent[0][1][1]
    assert _get("rollback") is None and _boot()[2] == ""


def test_zz_cleanup():
    _rmtree(_ROOT)
    sys.path[:] = _PATH
