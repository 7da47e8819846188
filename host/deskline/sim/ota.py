"""The virtual console's bootloader for its fake OTA partitions.

firmware/boardsim.py's `Partition` keeps two app partitions and the ESP-IDF
rollback state (otadata.json) in a directory; this runs at every start of
the virtual MCU, as the second-stage bootloader does: an image set to boot
starts "pending"; a reset while it is still pending (it was never marked
valid) goes back to the previous one.  An image holding PANIC_MARK plays a
firmware that crashes at boot.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LABELS = ("ota_0", "ota_1")
PANIC_MARK = b"DESKLINE-SIM-PANIC"
_DEFAULT = {"boot": "ota_0", "running": "ota_0", "state": "valid", "previous": "ota_0"}


def state(directory: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((directory / "otadata.json").read_text())
        return data
    except (OSError, ValueError):
        return dict(_DEFAULT)


def _save(directory: Path, st: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / "otadata.json.new"
    tmp.write_text(json.dumps(st))
    tmp.replace(directory / "otadata.json")


def boot(directory: Path) -> tuple[str, bool]:
    """One bootloader pass: (the partition that runs, whether it panics)."""
    st = state(directory)
    if st.get("state") == "new":
        st["running"] = st["boot"]
        st["state"] = "pending"
    elif st.get("state") == "pending":
        # Reset before the app marked it valid: the bootloader goes back.
        st["aborted"] = st["boot"]
        st["boot"] = st["running"] = st.get("previous", "ota_0")
        st["state"] = "valid"
    else:
        st["running"] = st["boot"]
    _save(directory, st)
    image = directory / f"{st['running']}.bin"
    panic = False
    if image.exists():
        with image.open("rb") as f:
            panic = PANIC_MARK in f.read(4096)
    return st["running"], panic


def fake_image(version: str, size: int = 64 * 1024, panic: bool = False) -> bytes:
    """An ESP app image as far as the fake checks it (magic byte, then data)."""
    head = b"\xe9" + f"DESKLINE-SIM-FW {version}\n".encode()
    if panic:
        head += PANIC_MARK
    body = bytearray(size - len(head))
    seed = sum(version.encode())
    for i in range(len(body)):
        body[i] = (i * 131 + seed) & 0xFF
    return head + bytes(body)
