"""Finding the consoles' serial ports: given by name, by glob, or by USB id.

A floor mixes ways of naming ports: a technician lists one on the command
line, the demo's virtual consoles appear as `/tmp/floor/*/tty` symlinks to
pseudo-terminals, and real consoles are recognised by the USB bridge chips of
the devkits we build on.  The same port reached two ways (a symlink in
`/dev/serial/by-id/` and `/dev/ttyUSB0`) must be served once, or two sessions
would fight over one console.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from serial.tools import list_ports

Source = Literal["explicit", "glob", "usb"]

# The USB-serial bridges of the consoles' boards; hardware/99-deskline.rules
# gives the same ids to the dialout group (a test keeps the two lists equal).
KNOWN_USB_IDS: dict[tuple[int, int], str] = {
    (0x10C4, 0xEA60): "Silicon Labs CP210x (ESP32-DevKitC)",
    (0x1A86, 0x7523): "WCH CH340",
    (0x1A86, 0x55D4): "WCH CH343/CH9102",
    (0x0403, 0x6001): "FTDI FT232R",
    (0x303A, 0x1001): "Espressif USB-Serial/JTAG (ESP32-S3 native USB)",
    (0x303A, 0x4001): "MicroPython on ESP32-S3 native USB",
}


class ComPort(Protocol):
    """What we read of pyserial's ListPortInfo (a fake in tests)."""

    device: str
    vid: int | None
    pid: int | None
    serial_number: str | None
    description: str


Comports = Callable[[], Iterable[Any]]


@dataclass(frozen=True)
class PortInfo:
    """A port to serve, as it was named (the device), and where it came from."""

    device: str
    source: Source
    vid: int | None = None
    pid: int | None = None
    serial_number: str | None = None
    description: str = ""

    @property
    def usb_id(self) -> str:
        """ "10c4:ea60", as lsusb and the udev rule write it; "" when not USB."""
        if self.vid is None or self.pid is None:
            return ""
        return f"{self.vid:04x}:{self.pid:04x}"


def system_comports() -> list[Any]:
    """The serial ports the OS lists, with USB ids where the OS knows them."""
    return list(list_ports.comports())


def scan(
    explicit: Sequence[str] = (),
    globs: Sequence[str] = (),
    usb: bool = True,
    comports: Comports = system_comports,
) -> list[PortInfo]:
    """Every port to serve, each once, explicit ones first, then globs, then USB.

    An explicit port that does not exist is still listed: the daemon reports it
    missing and retries, as a console unplugged for a moment comes back.  USB
    details are filled in for explicit and glob ports too when the OS knows
    them, so logs name the chip and its serial number either way.
    """
    known = _by_realpath(_listed(comports))
    found: list[PortInfo] = []
    seen: set[str] = set()

    def add(device: str, source: Source, description: str) -> None:
        key = _realpath(device)
        if key in seen:
            return
        seen.add(key)
        found.append(_port_info(device, source, description, known.get(key)))

    for device in explicit:
        add(device, "explicit", "named explicitly")
    for pattern in globs:
        for device in _glob(pattern):
            add(device, "glob", f"matches {pattern}")
    if usb:
        for port in sorted(known.values(), key=lambda p: _natural(p.device)):
            if _usb_key(port) in KNOWN_USB_IDS:
                add(port.device, "usb", "")
    return found


def port_identity(device: str, comports: Comports = system_comports) -> str:
    """Names a port for the logs: where a symlink leads, and which USB chip and
    serial number are behind it, so a console moved between sockets is traced."""
    real = _realpath(device)
    text = device if real == device else f"{device} -> {real}"
    port = _by_realpath(_listed(comports)).get(real)
    if port is None or port.vid is None or port.pid is None:
        return text
    text += f" (usb {port.vid:04x}:{port.pid:04x}"
    if port.serial_number:
        text += f" serial {port.serial_number}"
    return text + ")"


def _listed(comports: Comports) -> list[ComPort]:
    # The OS listing failing (no sysfs in a container) must not stop the
    # explicit and glob ports from being served.
    try:
        return list(comports())
    except OSError:
        return []


def _by_realpath(ports: Iterable[ComPort]) -> dict[str, ComPort]:
    return {_realpath(p.device): p for p in ports}


def _realpath(device: str) -> str:
    # Only paths are resolved: "COM3" on Windows is a name, not a file here.
    if os.sep not in device:
        return device
    return os.path.realpath(device)


def _usb_key(port: ComPort) -> tuple[int, int] | None:
    if port.vid is None or port.pid is None:
        return None
    return (port.vid, port.pid)


def _port_info(device: str, source: Source, description: str, port: ComPort | None) -> PortInfo:
    if port is None:
        return PortInfo(device=device, source=source, description=description)
    key = _usb_key(port)
    chip = KNOWN_USB_IDS.get(key) if key else None
    details = [d for d in (chip, _useful(port.description)) if d]
    if description:
        details.append(description)
    return PortInfo(
        device=device,
        source=source,
        vid=port.vid,
        pid=port.pid,
        serial_number=port.serial_number or None,
        description="; ".join(dict.fromkeys(details)),
    )


def _useful(description: str | None) -> str:
    # pyserial says "n/a" when the OS gave no description.
    return "" if not description or description == "n/a" else description


def _glob(pattern: str) -> list[str]:
    """Matches in natural order (ttyUSB2 before ttyUSB10); directories are not ports.

    Dangling symlinks are kept: a virtual console that stopped leaves its link,
    and serving it again when it restarts is what the daemon wants.
    """
    matches = (m for m in glob.glob(os.path.expanduser(pattern)) if not os.path.isdir(m))
    return sorted(matches, key=_natural)


def _natural(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]
