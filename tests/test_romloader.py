"""The ROM-loader simulator against real, unmodified esptool on a pseudo-terminal."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from deskline.sim import fakefirmware
from deskline.sim.romloader import RomLoader, _checksum, slip_decode, slip_encode
from hypothesis import given, settings
from hypothesis import strategies as st

ESPTOOL = [sys.executable, "-m", "esptool"]
SIZE = 96 * 1024


def esptool(port: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ESPTOOL, "--port", port, "--before", "no-reset", "--after", "no-reset", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=64))
def test_slip_round_trip(packet: bytes) -> None:
    frame = slip_encode(packet)
    assert frame[0] == frame[-1] == 0xC0
    assert 0xC0 not in frame[1:-1]
    assert slip_decode(frame[1:-1]) == packet


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=40))
def test_checksum_is_xor_seeded_with_0xef(data: bytes) -> None:
    expected = 0xEF
    for b in data:
        expected ^= b
    assert _checksum(data) == expected


def test_esp32_stub_path_writes_the_image_at_0x1000(
    loaders: list[RomLoader], tmp_path: Path
) -> None:
    # esptool's default: detect by the magic register, upload the stub
    # ("OHAI"), compressed 16 KiB blocks, MD5 from the stub.
    image = fakefirmware.build("esp32", SIZE)
    (tmp_path / "fw.bin").write_bytes(image)
    sim = RomLoader("esp32", mac="24:0a:c4:12:34:56", speed=0).start()
    loaders.append(sim)
    run = esptool(sim.port, "--baud", "921600", "write-flash", "0x1000", str(tmp_path / "fw.bin"))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Chip type:          ESP32-D0WD-V3 (revision v3.1)" in run.stdout
    assert "MAC:                24:0a:c4:12:34:56" in run.stdout
    assert "Hash of data verified." in run.stdout
    assert bytes(sim.flash[0x1000 : 0x1000 + SIZE]) == image
    assert sim.flash[:0x1000] == b"\xff" * 0x1000
    assert sim.flash[0x1000 + SIZE :].count(0xFF) == len(sim.flash) - 0x1000 - SIZE
    assert sim.in_stub
    for command in ("MEM_END", "FLASH_DEFL_BEGIN", "FLASH_DEFL_DATA", "SPI_FLASH_MD5"):
        assert sim.commands[command] >= 1, sim.commands
    assert sim.commands["FLASH_DATA"] == 0


def test_esp32s3_rom_path_writes_the_image_at_0x0(loaders: list[RomLoader], tmp_path: Path) -> None:
    # --no-stub: GET_SECURITY_INFO names the chip, SPI_ATTACH, 1 KiB
    # FLASH_DATA blocks, a baud change, the ROM's MD5 in hex text.
    image = fakefirmware.build("esp32s3", SIZE, seed=3)
    (tmp_path / "fw.bin").write_bytes(image)
    sim = RomLoader("esp32s3", mac="f4:12:fa:00:00:07", speed=0).start()
    loaders.append(sim)
    run = esptool(
        sim.port, "--baud", "460800", "--no-stub", "write-flash", "0x0", str(tmp_path / "fw.bin")
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Connected to ESP32-S3" in run.stdout
    assert "Hash of data verified." in run.stdout
    assert bytes(sim.flash[:SIZE]) == image
    assert not sim.in_stub
    assert sim.commands["FLASH_DATA"] == SIZE // 1024
    for command in ("GET_SECURITY_INFO", "SPI_ATTACH", "CHANGE_BAUDRATE", "FLASH_BEGIN"):
        assert sim.commands[command] >= 1, sim.commands


def test_nor_flash_only_clears_bits_until_erased() -> None:
    sim = RomLoader("esp32c3", speed=0)
    sim._program(0, b"\x0f\xf0")
    sim._program(0, b"\xf0\xff")
    assert sim.flash[:3] == b"\x00\xf0\xff"


def test_runs_as_a_process_and_keeps_its_flash(tmp_path: Path) -> None:
    flash_file = tmp_path / "flash.bin"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deskline.sim.romloader",
            "--chip",
            "esp32c3",
            "--flash-size",
            str(1 << 18),
            "--flash-file",
            str(flash_file),
            "--link",
            str(tmp_path / "tty"),
            "--speed",
            "0",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert Path(info["link"]).resolve() == Path(info["port"])
        run = esptool(info["link"], "flash-id")
        assert run.returncode == 0, run.stdout + run.stderr
        assert "Detected flash size: 256KB" in run.stdout
        assert "Connected to ESP32-C3" in run.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        if proc.stdout:
            proc.stdout.close()
    assert flash_file.read_bytes() == b"\xff" * (1 << 18)
