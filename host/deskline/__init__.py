"""Deskline: agent consoles for contact-centre floors (host side)."""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware"
# Host-side only: lets the host import the codec; never sent to a console.
_NOT_DEPLOYED = {"__init__.py", "manifest.py"}


def firmware_files(root: Path | None = None) -> list[Path]:
    """The app files that go onto a console's flash, in a stable order."""
    base = root or FIRMWARE_DIR
    return sorted(p for p in base.glob("*.py") if p.name not in _NOT_DEPLOYED)
