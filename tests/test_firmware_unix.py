"""Runs every firmware unit test module under the real MicroPython unix port."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import HEAP, MICROPYTHON, REPO, micropython_env

MODULES = sorted(p.stem for p in (REPO / "tests" / "firmware").glob("test_*.py"))
MPY_CROSS = str(Path(MICROPYTHON).with_name("mpy-cross"))


@pytest.fixture(scope="session")
def mpy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The firmware and the test helpers compiled to .mpy, as a console loads them."""
    out = tmp_path_factory.mktemp("mpy")
    sources = [*(REPO / "firmware").glob("*.py"), REPO / "tests" / "firmware" / "session.py"]
    for src in sources:
        if src.name in ("__init__.py", "boot.py", "main.py", "manifest.py"):
            continue
        subprocess.run([MPY_CROSS, "-o", str(out / (src.stem + ".mpy")), str(src)], check=True)
    return out


@pytest.mark.parametrize("module", MODULES)
def test_firmware_module(module: str, mpy_dir: Path) -> None:
    proc = subprocess.run(
        [MICROPYTHON, "-X", "heapsize=" + HEAP, "tests/firmware/run.py", module, str(mpy_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=micropython_env(),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
