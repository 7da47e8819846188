"""Runs every firmware unit test module under the real MicroPython unix port."""

from __future__ import annotations

import subprocess

import pytest

from conftest import HEAP, MICROPYTHON, REPO, micropython_env

MODULES = sorted(p.stem for p in (REPO / "tests" / "firmware").glob("test_*.py"))


@pytest.mark.parametrize("module", MODULES)
def test_firmware_module(module: str) -> None:
    proc = subprocess.run(
        [MICROPYTHON, "-X", "heapsize=" + HEAP, "tests/firmware/run.py", module],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=micropython_env(),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
