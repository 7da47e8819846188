"""MicroPython firmware images for the ESP32 family: which chip, where it goes.

The `firmware.bin` MicroPython publishes for a board is a merged image: the
second-stage bootloader, the partition table at 0x8000 and the application at
its partition, written from the chip's bootloader offset (0x1000 on the
ESP32, 0x0 on the S3 and C3).  Every ESP-IDF image starts with a header that
names the chip it was built for (esptool's image format: magic 0xE9, then an
extended header whose bytes 4-5 are the chip id), so a wrong-chip image is
refused here, before any console is touched.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

from deskline.errors import DesklineError

IMAGE_MAGIC = 0xE9
PARTITION_TABLE = 0x8000
_PARTITION_MAGIC = b"\xaa\x50"
_MD5_ENTRY = b"\xeb\xeb"
_APP_DESC_MAGIC = 0xABCD5432
# The first data segment of an app starts with esp_app_desc_t: after the
# 8-byte image header, the 16-byte extended header and one segment header.
_APP_DESC_AT = 8 + 16 + 8


@dataclass(frozen=True)
class Chip:
    """A chip a console is built on, as esptool and the image header name it."""

    key: str  # esptool's --chip
    name: str  # what esptool prints: "ESP32-S3"
    image_id: int  # the extended header's chip id
    offset: int  # where the merged firmware image goes


CHIPS: dict[str, Chip] = {
    c.key: c
    for c in (
        Chip("esp32", "ESP32", 0, 0x1000),
        Chip("esp32s3", "ESP32-S3", 9, 0x0),
        Chip("esp32c3", "ESP32-C3", 5, 0x0),
    )
}
# Other members of the family, named so a wrong pick reads clearly.
_OTHER_IDS = {2: "ESP32-S2", 12: "ESP32-C2", 13: "ESP32-C6", 16: "ESP32-H2", 18: "ESP32-P4"}


def chip_by_name(name: str) -> Chip | None:
    """esptool's chip name ("ESP32-S3") or --chip key ("esp32s3") -> Chip."""
    text = name.strip()
    for chip in CHIPS.values():
        if text.upper() == chip.name or text.lower() == chip.key:
            return chip
    return None


@dataclass(frozen=True)
class FirmwareImage:
    """A firmware file checked for one chip; md5 is what esptool verifies."""

    path: Path
    chip: Chip
    size: int
    md5: str
    version: str = ""  # the app's version string (MicroPython's release), when found
    project: str = ""

    @property
    def offset(self) -> int:
        return self.chip.offset

    def describe(self) -> str:
        what = f"{self.project} {self.version}".strip() or self.path.name
        return f"{what} for {self.chip.name} ({self.size} bytes at {self.offset:#x})"


def read_image(path: Path) -> FirmwareImage:
    """Reads and checks a merged firmware image; DesklineError says what is wrong."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise DesklineError(f"cannot read the firmware image {path}: {e.strerror or e}") from e
    return parse_image(data, Path(path))


def parse_image(data: bytes, path: Path) -> FirmwareImage:
    chip = _header_chip(data, path, "the firmware image")
    table_at = PARTITION_TABLE - chip.offset
    entries = _partitions(data[table_at : table_at + 0xC00])
    if not entries:
        raise DesklineError(
            f"{path} has no partition table at {PARTITION_TABLE:#x}: it is not a full "
            "MicroPython firmware. Use the board's firmware .bin from micropython.org "
            "(not micropython.bin, which is the application alone)"
        )
    version = project = ""
    app = next((off for kind, off in entries if kind == 0), None)
    if app is not None and app - chip.offset + _APP_DESC_AT + 256 <= len(data):
        at = app - chip.offset
        app_chip = _header_chip(data[at:], path, f"the application at {app:#x}")
        if app_chip != chip:
            raise DesklineError(
                f"{path} is inconsistent: its bootloader is for {chip.name} but its "
                f"application at {app:#x} is for {app_chip.name}; rebuild or re-download it"
            )
        version, project = _app_desc(data[at + _APP_DESC_AT : at + _APP_DESC_AT + 256])
    return FirmwareImage(
        path=path,
        chip=chip,
        size=len(data),
        md5=hashlib.md5(data).hexdigest(),
        version=version,
        project=project,
    )


def _header_chip(data: bytes, path: Path, what: str) -> Chip:
    if len(data) < 24 or data[0] != IMAGE_MAGIC:
        raise DesklineError(
            f"{path}: {what} is not an ESP32 firmware image (it does not start with "
            f"the image magic byte {IMAGE_MAGIC:#x}); pick the board's MicroPython .bin"
        )
    (chip_id,) = struct.unpack_from("<H", data, 12)
    for chip in CHIPS.values():
        if chip.image_id == chip_id:
            return chip
    other = _OTHER_IDS.get(chip_id, f"an unknown chip (id {chip_id})")
    raise DesklineError(
        f"{path}: {what} is built for {other}; Deskline consoles are "
        + ", ".join(c.name for c in CHIPS.values())
    )


def _partitions(table: bytes) -> list[tuple[int, int]]:
    """(type, offset) of each entry of an ESP-IDF partition table."""
    found = []
    for at in range(0, len(table) - 31, 32):
        entry = table[at : at + 32]
        if entry[:2] != _PARTITION_MAGIC:
            if entry[:2] != _MD5_ENTRY:
                break
            continue
        kind, _subtype, offset = struct.unpack_from("<BBI", entry, 2)
        found.append((kind, offset))
    return found


def _app_desc(blob: bytes) -> tuple[str, str]:
    """(version, project name) from an app's esp_app_desc_t, or empty strings."""
    if len(blob) < 80 or struct.unpack_from("<I", blob, 0)[0] != _APP_DESC_MAGIC:
        return "", ""
    return _cstr(blob[16:48]), _cstr(blob[48:80])


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("ascii", "replace")
