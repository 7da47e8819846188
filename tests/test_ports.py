"""Tests for deskline.ports: explicit, glob and USB ports, each served once."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from deskline.ports import KNOWN_USB_IDS, PortInfo, port_identity, scan

RULES = Path(__file__).resolve().parent.parent / "hardware" / "99-deskline.rules"


@dataclass
class FakePort:
    device: str
    vid: int | None = None
    pid: int | None = None
    serial_number: str | None = None
    description: str = "n/a"


def listing(*ports: FakePort) -> Callable[[], list[FakePort]]:
    return lambda: list(ports)


CP2102 = FakePort("/dev/ttyUSB0", 0x10C4, 0xEA60, "0001", "CP2102 USB to UART Bridge Controller")
CH340 = FakePort("/dev/ttyUSB10", 0x1A86, 0x7523, None, "USB Serial")
S3 = FakePort("/dev/ttyACM0", 0x303A, 0x4001, "F4:12:FA:01:02:03", "Board in FS mode")
MOUSE_SERIAL = FakePort("/dev/ttyACM1", 0x2341, 0x0043, "123", "Arduino Uno")
BUILTIN = FakePort("/dev/ttyS0")


def test_known_ids_match_the_udev_rule() -> None:
    pairs = re.findall(
        r'idVendor}=="([0-9a-f]{4})", ATTRS{idProduct}=="([0-9a-f]{4})"', RULES.read_text()
    )
    assert {(int(v, 16), int(p, 16)) for v, p in pairs} == set(KNOWN_USB_IDS)


def test_usb_ports_by_known_ids_in_natural_order() -> None:
    found = scan(comports=listing(CH340, MOUSE_SERIAL, BUILTIN, S3, CP2102))
    assert [p.device for p in found] == ["/dev/ttyACM0", "/dev/ttyUSB0", "/dev/ttyUSB10"]
    assert found[1] == PortInfo(
        device="/dev/ttyUSB0",
        source="usb",
        vid=0x10C4,
        pid=0xEA60,
        serial_number="0001",
        description="Silicon Labs CP210x (ESP32-DevKitC); CP2102 USB to UART Bridge Controller",
    )
    assert found[1].usb_id == "10c4:ea60"
    assert found[0].description == "MicroPython on ESP32-S3 native USB; Board in FS mode"


def test_usb_scan_can_be_off() -> None:
    assert scan(usb=False, comports=listing(CP2102)) == []


def test_explicit_ports_are_listed_even_when_missing(tmp_path: Path) -> None:
    missing = str(tmp_path / "ttyGONE")
    found = scan([missing, "/dev/ttyUSB0"], comports=listing(CP2102))
    assert [(p.device, p.source) for p in found] == [
        (missing, "explicit"),
        ("/dev/ttyUSB0", "explicit"),  # explicit wins over the USB scan, listed once
    ]
    assert found[0].vid is None and found[0].description == "named explicitly"
    assert found[1].serial_number == "0001"  # USB details even when named explicitly
    assert found[1].usb_id == "10c4:ea60"


def make_floor(tmp_path: Path, names: list[str]) -> list[Path]:
    """Virtual consoles' directories, each with a `tty` symlink to a pty-like file."""
    links = []
    for name in names:
        target = tmp_path / "pts" / name
        target.parent.mkdir(exist_ok=True)
        target.touch()
        (tmp_path / "floor" / name).mkdir(parents=True)
        link = tmp_path / "floor" / name / "tty"
        link.symlink_to(target)
        links.append(link)
    return links


def test_glob_of_symlinks_keeps_the_given_paths(tmp_path: Path) -> None:
    make_floor(tmp_path, ["desk-10", "desk-2", "desk-01"])
    (tmp_path / "floor" / "notes").mkdir()
    found = scan(globs=[str(tmp_path / "floor" / "*" / "tty")], usb=False, comports=listing())
    assert [Path(p.device).parent.name for p in found] == ["desk-01", "desk-2", "desk-10"]
    assert all(p.source == "glob" and os.path.islink(p.device) for p in found)
    assert found[0].description == f"matches {tmp_path / 'floor' / '*' / 'tty'}"


def test_glob_skips_directories(tmp_path: Path) -> None:
    (tmp_path / "ttyUSB0").touch()
    (tmp_path / "ttyUSBdir").mkdir()
    found = scan(globs=[str(tmp_path / "ttyUSB*")], usb=False, comports=listing())
    assert [Path(p.device).name for p in found] == ["ttyUSB0"]


def test_the_same_port_reached_two_ways_is_served_once(tmp_path: Path) -> None:
    (link,) = make_floor(tmp_path, ["desk-01"])
    target = str(link.resolve())
    by_id = tmp_path / "by-id-console"
    by_id.symlink_to(target)
    found = scan(
        explicit=[str(by_id)],
        globs=[str(tmp_path / "floor" / "*" / "tty"), str(tmp_path / "pts" / "*")],
        usb=True,
        comports=listing(FakePort(target, 0x303A, 0x1001, "S3-1", "USB JTAG/serial debug unit")),
    )
    assert len(found) == 1
    assert found[0].device == str(by_id)
    assert found[0].source == "explicit"
    assert found[0].serial_number == "S3-1"


def test_dangling_glob_links_are_kept(tmp_path: Path) -> None:
    (link,) = make_floor(tmp_path, ["desk-01"])
    link.resolve().unlink()  # the virtual console stopped; its link stays
    found = scan(globs=[str(tmp_path / "floor" / "*" / "tty")], usb=False, comports=listing())
    assert [p.device for p in found] == [str(link)]


def test_overlapping_globs_and_order(tmp_path: Path) -> None:
    for name in ("ttyUSB1", "ttyUSB0", "ttyACM0"):
        (tmp_path / name).touch()
    found = scan(
        explicit=[str(tmp_path / "ttyUSB1")],
        globs=[str(tmp_path / "ttyUSB*"), str(tmp_path / "tty*")],
        usb=False,
        comports=listing(),
    )
    assert [(Path(p.device).name, p.source) for p in found] == [
        ("ttyUSB1", "explicit"),
        ("ttyUSB0", "glob"),
        ("ttyACM0", "glob"),
    ]


def test_a_failing_os_listing_does_not_stop_named_ports(tmp_path: Path) -> None:
    def broken() -> list[FakePort]:
        raise OSError("no /sys")

    assert [p.device for p in scan(["/dev/ttyUSB3"], comports=broken)] == ["/dev/ttyUSB3"]


def test_non_path_names_are_not_resolved() -> None:
    com = FakePort("COM3", 0x10C4, 0xEA60, "77")
    found = scan(["COM3"], comports=listing(com))
    assert [(p.device, p.serial_number) for p in found] == [("COM3", "77")]


def test_port_identity(tmp_path: Path) -> None:
    (link,) = make_floor(tmp_path, ["desk-01"])
    target = str(link.resolve())
    assert port_identity(str(link), comports=listing()) == f"{link} -> {target}"
    assert port_identity(target, comports=listing()) == target
    usb = listing(FakePort(target, 0x10C4, 0xEA60, "0001"))
    assert (
        port_identity(str(link), comports=usb) == f"{link} -> {target} (usb 10c4:ea60 serial 0001)"
    )
    no_serial = listing(FakePort(target, 0x1A86, 0x7523))
    assert port_identity(target, comports=no_serial) == f"{target} (usb 1a86:7523)"


def test_real_listing_does_not_fail() -> None:
    # Whatever this machine has: the default listing runs and returns PortInfo.
    assert all(isinstance(p, PortInfo) for p in scan())


@pytest.mark.parametrize(("vid", "pid"), sorted(KNOWN_USB_IDS))
def test_every_known_bridge_is_found(vid: int, pid: int) -> None:
    (port,) = scan(comports=listing(FakePort("/dev/ttyX", vid, pid)))
    assert port.description == KNOWN_USB_IDS[(vid, pid)]
