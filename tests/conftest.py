"""Shared fixtures: where the tools and the firmware are."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MICROPYTHON = str(BIN / "micropython")
# The ESP32 without PSRAM leaves about 100 KB to MicroPython; tests run inside that.
HEAP = "96K"


@pytest.fixture
def repo() -> Path:
    return REPO


def micropython_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MICROPYPATH", None)
    return env


# tests/firmware holds MicroPython scripts, run by test_firmware_unix.py.
collect_ignore_glob = ["firmware/*"]
