"""Small, well-formed stand-ins for a MicroPython firmware.bin, for tests and benches.

Laid out as the real merged image is: a bootloader image at the chip's
bootloader offset, the partition table at 0x8000, the application at 0x10000
with its esp_app_desc_t (version, project name), then filler that compresses
about as well as real firmware does, so the wire sees realistic traffic.
Nothing here runs; the headers only have to satisfy esptool and fwimage.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

from deskline.fwimage import CHIPS, IMAGE_MAGIC, PARTITION_TABLE

APP_OFFSET = 0x10000


def build(
    chip: str = "esp32", size: int = 128 * 1024, version: str = "v1.24.1", seed: int = 0
) -> bytes:
    """A merged image of `size` bytes for chip ("esp32", "esp32s3", "esp32c3")."""
    c = CHIPS[chip]
    app_at = APP_OFFSET - c.offset
    if size < app_at + 1024:
        raise ValueError(f"a {c.name} image needs at least {app_at + 1024} bytes")
    rng = random.Random(seed)
    out = bytearray(_filler(rng, size))
    boot = _image(c.image_id, load=0x3FFF0000, segment=_filler(rng, 0x4000), entry=0x40080000)
    out[0 : len(boot)] = boot
    table_at = PARTITION_TABLE - c.offset
    out[table_at : table_at + 0xC00] = b"\xff" * 0xC00
    rows = [
        (1, 2, 0x9000, 0x6000, b"nvs"),
        (1, 1, 0xF000, 0x1000, b"phy_init"),
        (0, 0, APP_OFFSET, 0x1F0000, b"factory"),
        (1, 0x81, 0x200000, 0x200000, b"vfs"),
    ]
    for i, (kind, sub, off, length, label) in enumerate(rows):
        entry = b"\xaa\x50" + struct.pack("<BBII16sI", kind, sub, off, length, label, 0)
        out[table_at + 32 * i : table_at + 32 * (i + 1)] = entry
    desc = struct.pack(
        "<IIII32s32s16s16s32s",
        0xABCD5432,
        0,
        0,
        0,
        version.encode(),
        b"micropython",
        b"00:00:00",
        b"Jan  1 2026",
        b"v5.2.2",
    )
    app = _image(c.image_id, load=0x3F400020, segment=desc + _filler(rng, 2048), entry=0x400D0000)
    end = min(size, app_at + len(app))
    out[app_at:end] = app[: end - app_at]
    return bytes(out)


def write(path: Path, chip: str = "esp32", size: int = 128 * 1024, seed: int = 0) -> Path:
    Path(path).write_bytes(build(chip, size, seed=seed))
    return Path(path)


def _image(chip_id: int, load: int, segment: bytes, entry: int) -> bytes:
    # esptool's image format: header, extended header (chip id at bytes 4-5),
    # segments, then the XOR checksum byte at the end of a 16-byte block.
    head = struct.pack("<BBBBI", IMAGE_MAGIC, 1, 2, 0x20, entry)
    ext = struct.pack("<B3sHBHH4sB", 0xEE, b"\0\0\0", chip_id, 0, 0, 0xFFFF, b"\0" * 4, 0)
    body = struct.pack("<II", load, len(segment)) + segment
    check = 0xEF
    for b in segment:
        check ^= b
    blob = head + ext + body
    pad = 15 - len(blob) % 16
    return blob + b"\0" * pad + bytes([check])


def _filler(rng: random.Random, n: int) -> bytes:
    # Half random bytes, half repeats of recent text: zlib gets it to ~60 %,
    # as it does a real firmware image.
    out = bytearray()
    words = [bytes(rng.getrandbits(8) for _ in range(rng.randint(4, 24))) for _ in range(64)]
    while len(out) < n:
        if rng.random() < 0.5:
            out += rng.randbytes(rng.randint(8, 64))
        else:
            out += rng.choice(words) * rng.randint(1, 3)
    return bytes(out[:n])
