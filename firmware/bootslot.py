# The app's A/B slots on flash: which one boots, a new app on trial, the
# note of a rollback.  Sits at the root with boot.py and main.py (an app
# update never replaces it), so a broken app can never break the way back.
#
# Files at the root, each a line of text, each replaced by an atomic
# rename (littlefs), so a power cut leaves the old or the new, never half:
#   slot      the confirmed slot, "a" or "b" (none: the app is at the root)
#   trial     "<slot> <boots>": a new app being tried; boots counts its starts
#   rollback  "<slot> <boots>": a trial failed; the app reports it, then removes it
#   fwtry     "<partition label>": a new firmware on trial (see fwupdate.py)
import os
import sys

ROOT = ""  # the flash root; the unit tests point it elsewhere
TRIAL_BOOTS = 2  # starts a new app gets before boot.py goes back
slot = ""  # the slot this boot runs ("" = the app at the root)
trial = False  # this boot runs an app on trial
note = ""  # a rollback happened at this boot: "<slot> <boots>"
fw_trial = False  # a firmware update waits to be confirmed


def _read(name):
    try:
        with open(ROOT + "/" + name) as f:
            return f.read().strip()
    except OSError:
        return ""


def write(name, text):
    tmp = ROOT + "/" + name + ".new"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, ROOT + "/" + name)


def remove(name):
    try:
        os.remove(ROOT + "/" + name)
    except OSError:
        pass


def confirmed():
    s = _read("slot")
    return s if s == "a" or s == "b" else ""


def choose():
    # At every boot, before any app module loads: counts a trial's starts,
    # gives up on it after TRIAL_BOOTS, and puts the slot first on the path.
    global slot, trial, note, fw_trial
    cur = confirmed()
    t = _read("trial").split()
    if len(t) == 2 and (t[0] == "a" or t[0] == "b") and t[0] != cur and t[1].isdigit():
        boots = int(t[1])
        if boots >= TRIAL_BOOTS:
            note = "%s %d" % (t[0], boots)
            write("rollback", note)
            remove("trial")
        else:
            write("trial", "%s %d" % (t[0], boots + 1))
            cur = t[0]
            trial = True
    elif t:
        remove("trial")  # confirmed meanwhile (a cut after the rename), or garbage
    if not note:
        note = _read("rollback")
    fw_trial = bool(_read("fwtry"))
    slot = cur
    if cur:
        # Ahead of the root, so a stale module there never shadows the slot.
        sys.path.insert(0, ROOT + "/" + cur)


def confirm(s):
    # The app in slot s proved healthy: it is the one to boot from now on.
    write("slot", s)
    remove("trial")


def give_up(s):
    # The app on trial did not prove itself: the next boot goes back.
    write("trial", "%s %d" % (s, TRIAL_BOOTS))


def activate(s):
    # A verified app waits in slot s: try it from the next boot.
    write("trial", s + " 0")
