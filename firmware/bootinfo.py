# Why the console restarted.  machine.reset_cause() cannot tell a crash from
# a deliberate reset, so the app records its own reason in RTC memory first.
from struct import pack, unpack

from micropython import const

_MAGIC = b"DLRR"
# Expected reasons (< 0x80) and unexpected ones (>= 0x80), as Memfault splits them.
POWER_ON = const(0x01)
HOST_REBOOT = const(0x02)
REPL_EXIT = const(0x03)
APP_UPDATE = const(0x04)
FIRMWARE_UPDATE = const(0x05)
CONFIG_RESET = const(0x06)
UNEXPECTED = const(0x80)
CRASH = const(0x81)
WATCHDOG = const(0x82)

_WDT_RESET = const(3)  # machine.WDT_RESET on the esp32 port
_PWRON_RESET = const(1)


def take(board):
    # Returns (reason, boot count) and arms UNEXPECTED for the next boot, so a
    # reset nobody announced is reported as one.
    raw = board.rtc_memory()
    boots = 0
    stored = 0
    if raw and len(raw) >= 9 and raw[:4] == _MAGIC:
        stored, boots = unpack("<BI", raw[4:9])
    cause = board.reset_cause()
    if cause == _PWRON_RESET or not stored:
        reason = POWER_ON
        boots = 0
    elif cause == _WDT_RESET:
        reason = WATCHDOG
    else:
        reason = stored
    boots += 1
    board.rtc_memory(_MAGIC + pack("<BI", UNEXPECTED, boots))
    return reason, boots


def record(board, reason, boots):
    board.rtc_memory(_MAGIC + pack("<BI", reason, boots))
