"""The `deskline` command as a technician runs it: board checks and
monitoring a virtual console, in human and JSON form."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO
from deskline.sim.console import VirtualConsole, serve_panel

DESKLINE = str(Path(sys.executable).parent / "deskline")


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DESKLINE, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


def test_board_check_passes_the_shipped_boards() -> None:
    for board in sorted((REPO / "hardware" / "boards").glob("*.json")):
        proc = run("board", "check", str(board))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        report = json.loads(run("board", "check", str(board), "--json").stdout)
        assert report["ok"] is True and report["errors"] == 0


def test_board_check_rejects_a_flash_pin(tmp_path: Path) -> None:
    board = json.loads((REPO / "hardware" / "boards" / "esp32-devkitc-v4.json").read_text())
    board["pins"]["row0"]["gpio"] = 6
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(board))
    proc = run("board", "check", str(path))
    assert proc.returncode == 1
    assert "row0" in proc.stdout and "GPIO 6" in proc.stdout and "flash" in proc.stdout
    report = json.loads(run("board", "check", str(path), "--json").stdout)
    assert report["ok"] is False and report["errors"] >= 1


def test_board_check_reports_a_missing_file_clearly(tmp_path: Path) -> None:
    proc = run("board", "check", str(tmp_path / "nope.json"))
    assert proc.returncode == 1
    assert "nope.json" in proc.stdout + proc.stderr


def test_monitor_decodes_a_console_and_panel_presses(tmp_path: Path) -> None:
    vc = VirtualConsole(tmp_path / "vc", device_id="desk-cli")
    vc.start()
    serve_panel(vc, tmp_path / "panel.sock")
    try:
        mon = subprocess.Popen(
            [DESKLINE, "monitor", str(vc.port_link), "--json", "--seconds", "6"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert vc.wait_display("READY", 15)
        panel = run(
            "sim", "panel", "--socket", str(tmp_path / "panel.sock"), "press", "7", "--json"
        )
        assert panel.returncode == 0 and json.loads(panel.stdout)["ok"]
        out, _ = mon.communicate(timeout=30)
    finally:
        vc.stop()
    frames = [json.loads(line) for line in out.splitlines()]
    hello = next(f for f in frames if f["type"] == "hello")
    assert hello["device_id"] == "desk-cli"
    presses = [f for f in frames if f["type"] == "event" and f["kind"] == 1]
    assert [p["a"] for p in presses] == [7]
