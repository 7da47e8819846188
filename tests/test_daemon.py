"""The daemon serving a small mixed floor: two real virtual consoles, a console
nobody configured and one that speaks another protocol version.

Each misfit gets a clear message and the real desks keep working; floor
config errors are reported and the old floor kept; commands reach desks;
an unplugged console comes back with what it journaled meanwhile.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from deskline import control
from deskline.floorconfig import demo_floor_toml
from deskline.sim.console import VirtualConsole
from deskline.wire import codec
from fakeconsole import FakeConsole

MPREMOTE = str(Path(sys.executable).parent / "mpremote")


@dataclass
class Floor:
    work: Path
    floor_file: Path
    desks: dict[str, VirtualConsole]
    stranger: FakeConsole
    future: FakeConsole
    daemon: subprocess.Popen[bytes]
    sock: Path
    db: Path

    def ask(self, op: str, **req: Any) -> dict[str, Any]:
        return control.request(self.sock, {"op": op, **req}, timeout=20)

    def log(self) -> str:
        return (self.work / "daemon.log").read_text(errors="replace")

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()

    def presses(self, device: str) -> list[int]:
        return [
            a
            for (a,) in self.rows(
                "SELECT e.a FROM events e JOIN consoles c ON c.id = e.console_id "
                "WHERE c.device_id = ? AND e.kind = ? ORDER BY e.journal_epoch, e.seq",
                device,
                codec.EV_PRESS,
            )
        ]


def wait(pred: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            got = pred()
        except sqlite3.Error:
            got = None
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what or pred}")


@pytest.fixture(scope="module")
def floor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Floor]:
    work = tmp_path_factory.mktemp("daemon")
    floor_file = work / "floor.toml"
    floor_file.write_text(demo_floor_toml(2))
    desks = {d: VirtualConsole(work / d, device_id=d) for d in ("desk-01", "desk-02")}
    for vc in desks.values():
        vc.start()
    stranger = FakeConsole("stranger-9")
    future = FakeConsole("desk-77", version=2)
    ports = [str(vc.port_link) for vc in desks.values()] + [stranger.port, future.port]
    log = open(work / "daemon.log", "wb")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "deskline.cli", "daemon", "--state", str(work / "state")]
        + ["--floor", str(floor_file), "--no-usb"]
        + [arg for p in ports for arg in ("--port", p)],
        stdout=log,
        stderr=log,
    )
    f = Floor(
        work,
        floor_file,
        desks,
        stranger,
        future,
        daemon,
        work / "state" / "deskline.sock",
        work / "state" / "deskline.db",
    )
    try:
        wait(lambda: f.sock.exists() and f.ask("ping")["ok"], what="the daemon")
        yield f
    finally:
        daemon.terminate()
        code = daemon.wait(15)
        log.close()
        for vc in desks.values():
            vc.stop()
        stranger.close()
        future.close()
        assert code == 0, f.log()[-3000:]
        for vc in desks.values():
            assert not vc.traceback(), vc.traceback()


def devices(f: Floor) -> dict[str, dict[str, Any]]:
    return {d["device_id"]: d for d in f.ask("devices")["devices"] if d.get("device_id")}


def test_desks_get_their_config_and_presses_are_stored(floor: Floor) -> None:
    def configured() -> bool:
        d = devices(floor)
        return all(
            d.get(k, {}).get("config_version") and d[k]["config_version"] == d[k]["config_expected"]
            for k in ("desk-01", "desk-02")
        )

    wait(configured, 40, "configs applied")
    vc = floor.desks["desk-01"]
    for key in "123":
        vc.press(key)
    wait(lambda: floor.presses("desk-01")[-3:] == [1, 2, 3], what="presses stored")
    assert vc.wait_display("Volt Energy", 5)  # the account config is running


def test_a_console_nobody_configured_is_served_and_named(floor: Floor) -> None:
    s = floor.stranger
    seqs = [s.event() for _ in range(3)]
    wait(lambda: s.acked() == seqs[-1], what="stranger acked")
    assert "stranger-9 is not on the floor config" in floor.log()
    assert len(floor.presses("stranger-9")) == 3
    assert "xfer_begin" not in s.names()  # no config for a console without a desk


def test_another_protocol_version_is_refused_clearly(floor: Floor) -> None:
    wait(lambda: "protocol 2" in floor.log(), what="a version message")
    line = next(line for line in floor.log().splitlines() if "protocol 2" in line)
    assert "this daemon 1" in line and "not served" in line
    floor.future.event()
    time.sleep(1.0)
    assert floor.future.acked() == 0
    assert not floor.rows("SELECT 1 FROM consoles WHERE device_id = 'desk-77'")
    links = [
        d for d in floor.ask("devices")["devices"] if d["link"].get("port") == floor.future.port
    ]
    assert links and links[0]["link"]["state"] == "incompatible"


def test_a_bad_floor_edit_is_reported_and_the_old_floor_kept(floor: Floor) -> None:
    good = floor.floor_file.read_text()
    floor.floor_file.write_text(good.replace("[desks.", "[desks_typo.", 1))
    reply = floor.ask("reload")
    assert not reply["ok"] and any("desks_typo" in e for e in reply["errors"])
    vc = floor.desks["desk-02"]
    before = len(floor.presses("desk-02"))
    vc.press("4")
    wait(lambda: len(floor.presses("desk-02")) == before + 1, what="desk still served")
    # Fixed, with a change: the desks of that account get the new config.
    floor.floor_file.write_text(
        good.replace('hotline = "+44 20 7946 0101"', 'hotline = "+44 20 7946 0999"')
    )
    assert floor.ask("reload")["ok"]
    assert floor.desks["desk-01"].wait_display("+44 20 7946 0999", 15)
    assert "floor config is good again" in floor.log()


def test_commands_reach_the_desk(floor: Floor) -> None:
    vc = floor.desks["desk-01"]
    reply = floor.ask("floor", account="volt", band="green", sl_permille=874, target_pct=80)
    assert reply["ok"] and reply["consoles"] >= 1
    assert vc.wait_display("SL 87%", 5)
    # An escalation raised at the desk, acknowledged by the client.
    vc.hook(True)
    vc.press("ESC", ms=150)
    esc = wait(
        lambda: floor.rows(
            "SELECT e.seq FROM events e JOIN consoles c ON c.id = e.console_id "
            "WHERE c.device_id = 'desk-01' AND e.kind = ?",
            codec.EV_ESC_RAISE,
        ),
        what="escalation stored",
    )[-1][0]
    reply = floor.ask(
        "escalation",
        device="desk-01",
        esc_id=esc,
        status="acknowledged",
        ticket="INC42",
        deadline_s=3600,
    )
    assert reply["ok"], reply
    assert vc.wait_display(f"E{esc} ACK", 5)
    vc.hook(False)
    # The ACD says a call started for this agent: the desk goes on call and
    # the call carries the ACD's id.
    reply = floor.ask(
        "call", device="desk-01", action="start", call_id="1700000000.42", queue="volt-billing"
    )
    assert reply["ok"], reply
    assert vc.wait_display("ON CALL", 5)
    wait(
        lambda: floor.rows(
            "SELECT 1 FROM calls c JOIN consoles k ON k.id = c.console_id "
            "WHERE k.device_id = 'desk-01' AND c.acd_call_id = '1700000000.42'"
        ),
        what="the ACD's call id on the stored call",
    )
    assert floor.ask("call", device="desk-01", action="end")["ok"]
    # Reboot: the console says why it restarted.
    assert floor.ask("reboot", device="desk-01")["ok"]
    wait(lambda: devices(floor)["desk-01"].get("last_reboot_reason") == 0x02, what="host reboot")
    # The open escalation's status is back on the desk after the reboot.
    assert vc.wait_display(f"E{esc} ACK", 10)
    # An unknown escalation is a clear error, not a crash.
    bad = floor.ask("escalation", device="desk-01", esc_id=999999, status="resolved")
    assert not bad["ok"] and "999999" in bad["error"]


def test_repl_hands_the_port_to_mpremote_and_back(floor: Floor) -> None:
    vc = floor.desks["desk-02"]
    reply = floor.ask("repl", device="desk-02")
    assert reply["ok"], reply
    out = subprocess.run(
        [MPREMOTE, "connect", str(vc.port_link), "resume", "exec", "print(6 * 7)"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "42" in out.stdout, out
    assert floor.ask("attach", device="desk-02")["ok"]
    vc.reset()  # the technician presses EN: the app runs again
    wait(lambda: devices(floor)["desk-02"]["link"]["state"] == "online", what="desk-02 back")


def test_an_unplugged_console_comes_back_with_its_journal(floor: Floor) -> None:
    vc = floor.desks["desk-02"]
    wait(lambda: devices(floor)["desk-02"]["link"]["state"] == "online", what="online")
    before = len(floor.presses("desk-02"))
    vc.unplug()
    wait(lambda: devices(floor)["desk-02"]["link"]["state"] != "online", what="link lost")
    for key in "567":
        vc.press(key)
    time.sleep(0.5)
    assert len(floor.presses("desk-02")) == before
    vc.replug()
    wait(lambda: floor.presses("desk-02")[before:] == [5, 6, 7], 20, "journal drained")
    assert "link lost" in floor.log()
