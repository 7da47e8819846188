# Runs first at every boot: picks the app slot (bootslot.py, at the root),
# then decides safe boot before main.py starts the app.
import bootslot

bootslot.choose()
import safeboot  # noqa: E402  (from the slot chosen above)

safeboot.check()
