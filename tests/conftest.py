"""Shared fixtures: where the tools and the firmware are."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from deskline.sim.romloader import RomLoader

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


@pytest.fixture
def loaders() -> Iterator[list[RomLoader]]:
    """ROM-loader simulators a test starts (flash tests): stopped after it."""
    started: list[RomLoader] = []
    yield started
    for loader in started:
        loader.stop()


# tests/firmware holds MicroPython scripts, run by test_firmware_unix.py.
collect_ignore_glob = ["firmware/*"]
