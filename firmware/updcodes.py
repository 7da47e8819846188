# The update protocol's codes (docs/protocol.md, docs/update.md), shared with
# the host like wire.py.  Apart from wire.py so the console loads them only
# while an update runs: app.py keeps private copies (a test holds them equal).
try:
    from micropython import const  # pyright: ignore[reportAssignmentType]
except ImportError:  # CPython (the host)

    def const(x):
        return x


# EVENT kind of an update's verdict, journaled like any event:
# a = UPD_*, b = app slot (1 a, 2 b), c = starts tried, text = version or partition.
EV_UPDATE = const(14)
UPD_APP_OK = const(1)  # the new app proved healthy: its slot is now the one to boot
UPD_APP_ROLLBACK = const(2)  # the new app failed; the console went back to the old slot
UPD_FW_OK = const(3)  # the new firmware proved healthy and was marked valid
UPD_FW_ROLLBACK = const(4)  # the bootloader went back to the old firmware

# REBOOT.mode
REBOOT_PLAIN = const(0)
REBOOT_APP = const(1)  # switch to the staged app (on trial until healthy)
REBOOT_FIRMWARE = const(2)  # boot the staged firmware (on trial until healthy)

# HELLO.flags
HELLO_TRIAL = const(0x01)  # the app runs on trial: not yet confirmed healthy
HELLO_ROLLED_BACK = const(0x02)  # this boot went back from a failed app
HELLO_FW_TRIAL = const(0x04)  # the firmware runs on trial (bootloader rollback armed)

# RESULT.status beyond wire.py's
E_SIGNATURE = const(9)  # an update not signed by the fleet key
