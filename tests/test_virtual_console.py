"""End to end: the real firmware on the MicroPython unix port, over a pty.

Each test boots a virtual console (96 KB heap, littlefs flash image, the
link paced at 115200 baud) and talks to it as the host would.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from deskline.sim.console import PWRON_RESET, VirtualConsole
from deskline.wire import codec
from testhost import TestHost

MPREMOTE = str(Path(sys.executable).parent / "mpremote")
CONFIG = {
    "version": 7,
    "account": "ACME Energy",
    "mode": "mandatory_timeout",
    "acw_s": 30,
    "fallback": 99,
    "codes": [[1, "Billing query", True], [12, "Meter read", False], [99, "ACW timeout", False]],
    "hotline": "+44 20 7946 0000",
    "keepalive_s": 5,
}


@pytest.fixture
def console(tmp_path: Path) -> Iterator[VirtualConsole]:
    vc = VirtualConsole(tmp_path / "vc", device_id="desk-01")
    vc.start()
    yield vc
    vc.stop()
    # A console that crashed prints a traceback; no test should cause one.
    assert not vc.traceback(), vc.traceback()


@pytest.fixture
def host(console: VirtualConsole) -> Iterator[TestHost]:
    h = TestHost(str(console.port_link))
    yield h
    h.close()


def test_boot_says_hello_and_logs_the_boot(console: VirtualConsole, host: TestHost) -> None:
    hello = host.wait_frame("hello")
    assert hello["device_id"] == "desk-01" and hello["board"] == "sim"
    assert hello["proto"] == codec.VERSION and hello["reset_cause"] == PWRON_RESET
    boot = host.wait_frame("event", lambda m: m["kind"] == codec.EV_BOOT)
    assert boot["a"] == 0x01  # power-on
    assert console.wait_display("READY")


def test_presses_reach_the_host_in_order_and_are_acked(
    console: VirtualConsole, host: TestHost
) -> None:
    host.wait_frame("hello")
    for key in "123*#":
        console.press(key)
    presses = host.wait(lambda: len(host.events_of(codec.EV_PRESS)) == 5)
    assert presses, host.kinds()
    keys = [m["a"] for m in host.events_of(codec.EV_PRESS)]
    assert keys == [1, 2, 3, 10, 11]
    # Acknowledged events leave the journal: the heartbeat says so.
    assert host.wait(lambda: bool(host.last("status")))
    hb = host.wait_frame("heartbeat", lambda m: m["journal_depth"] == 0, timeout=15)
    assert hb["rx_errors"] == 0


def test_call_wrap_up_and_code_on_the_desk(console: VirtualConsole, host: TestHost) -> None:
    host.wait_frame("hello")
    assert host.push_config(CONFIG)["status"] == codec.OK
    console.hook(True)
    assert console.wait_display("ON CALL")
    console.hook(False)
    assert console.wait_display("WRAP-UP")
    console.press("5")
    console.press("7")
    console.press("#")
    assert console.wait_display("Code 57 invalid")
    console.press("1")
    console.press("2")
    assert console.wait_display("12 Meter read")
    console.press("#")
    assert console.wait_display("READY")
    wrap = host.wait_frame("event", lambda m: m["kind"] == codec.EV_WRAPUP)
    start = host.events_of(codec.EV_CALL_START)[0]
    assert (wrap["a"], wrap["c"], wrap["ref"]) == (12, codec.HOW_CODE, start["seq"])
    refused = host.events_of(codec.EV_CODE_REFUSED)
    assert [m["a"] for m in refused] == [57]
    assert console.snapshot()["beeps"] >= 1


def test_bad_config_is_refused_and_the_old_one_kept(
    console: VirtualConsole, host: TestHost
) -> None:
    host.wait_frame("hello")
    assert host.push_config(CONFIG)["status"] == codec.OK
    bad = dict(CONFIG, version=8, codes=[[100, "Too big", False]])
    result = host.push_config(bad, xfer_id=2)
    assert result["status"] == codec.E_BAD_CONFIG
    assert "code must be 1..99" in result["text"]
    corrupt = host.push_config(b'{"version": 9', xfer_id=3)
    assert corrupt["status"] == codec.E_BAD_CONFIG
    # The old config still rules, and it survives a power cut.
    mark = len(host.frames)
    console.power_cut()
    host.wait_frame(
        "hello", lambda m: m["config_version"] == 7 and m["reset_cause"] == 1, after=mark
    )


def test_escalation_lifecycle_shows_on_the_desk(console: VirtualConsole, host: TestHost) -> None:
    host.wait_frame("hello")
    assert host.push_config(CONFIG)["status"] == codec.OK
    cmd = host.command(codec.CALL, op=codec.CALL_START, call_id="1700000000.42", queue="billing")
    assert cmd["status"] == codec.OK
    assert console.wait_display("ON CALL")
    console.press("1")
    console.press("ESC", ms=200)
    raise_ev = host.wait_frame("event", lambda m: m["kind"] == codec.EV_ESC_RAISE)
    assert raise_ev["a"] == 1 and raise_ev["text"] == "1700000000.42"
    esc_id = raise_ev["seq"]
    res = host.command(
        codec.ESC_STATUS,
        esc_id=esc_id,
        kind=0,
        status=codec.ESC_ACKED,
        deadline_s=600,
        ticket="INC0042",
        hotline="",
    )
    assert res["status"] == codec.OK
    assert console.wait_display("ACK 9:5")
    host.command(
        codec.ESC_STATUS,
        esc_id=esc_id,
        kind=0,
        status=codec.ESC_BREACHED,
        deadline_s=-1,
        ticket="INC0042",
        hotline="",
    )
    assert console.wait_display("BRCH")
    status = host.wait_frame("status", lambda m: m["esc_status"] == codec.ESC_BREACHED)
    assert status["esc_id"] == esc_id
    # Held ESCALATE cancels it at the desk.
    console.press("ESC", ms=1800)
    cancel = host.wait_frame("event", lambda m: m["kind"] == codec.EV_ESC_CANCEL)
    assert cancel["ref"] == esc_id


def test_floor_light_goes_stale_without_keepalive(console: VirtualConsole, host: TestHost) -> None:
    host.wait_frame("hello")
    assert host.push_config(CONFIG)["status"] == codec.OK
    host.link.send(
        codec.FLOOR,
        band=codec.BAND_GREEN,
        sl_permille=850,
        target_pct=80,
        waiting=0,
        longest_wait=0,
    )
    assert console.wait_display("SL 85%")
    assert console.wait_for(lambda s: s.leds[0][1] > 0 and s.leds[0][0] == 0)  # green
    host.close()  # the host goes quiet
    assert console.wait_display("HOST LINK LOST", timeout=10)
    # The pixels follow within one LED tick; from then on never green.
    assert console.wait_for(lambda s: not (s.leds[0][1] > 0 and s.leds[0][0] == 0), timeout=1)
    end = time.monotonic() + 2.5
    while time.monotonic() < end:
        r, g, b = console.snapshot()["leds"][0]  # type: ignore[index]
        assert not (g > 0 and r == 0 and b == 0)
        time.sleep(0.05)


def test_reboot_command_records_its_reason(console: VirtualConsole, host: TestHost) -> None:
    host.wait_frame("hello")
    mark = len(host.frames)
    assert host.command(codec.REBOOT, mode=0)["status"] == codec.OK
    hello = host.wait_frame("hello", lambda m: m["boot_count"] >= 2, after=mark, timeout=15)
    assert hello["reboot_reason"] == 0x02 and hello["boot_count"] == 2


def test_repl_command_hands_the_port_to_mpremote(console: VirtualConsole, host: TestHost) -> None:
    host.wait_frame("hello")
    # A host stops talking frames before it hands the port over: at the REPL
    # a stray Ctrl-D in a frame would restart the console.
    host.keepalive = False
    time.sleep(1.2)
    assert host.command(codec.REPL)["status"] == codec.OK
    host.close()
    boots = console.boots
    # Past the 8 s watchdog: at the REPL a timer feeds it, so mpremote is not cut off.
    time.sleep(9.0)
    assert console.boots == boots, "the watchdog reset the console at the REPL"
    out = subprocess.run(
        [
            MPREMOTE,
            "connect",
            str(console.port_link),
            "resume",
            "exec",
            "import os; print(sorted(os.listdir('/')))",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert "board.json" in out.stdout and "data" in out.stdout


def test_safe_boot_with_escalate_held(console: VirtualConsole) -> None:
    console.down("ESC")
    console.power_cut()
    time.sleep(1.0)
    out = subprocess.run(
        [MPREMOTE, "connect", str(console.port_link), "resume", "exec", "print(1 + 1)"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    console.up("ESC")
    assert out.returncode == 0 and out.stdout.strip() == "2", out.stderr


def test_watchdog_resets_a_hung_console(console: VirtualConsole, host: TestHost) -> None:
    import os
    import signal

    host.wait_frame("hello")
    assert console.proc is not None
    os.kill(console.proc.pid, signal.SIGSTOP)  # the app hangs: nothing feeds the watchdog
    mark = len(host.frames)
    hello = host.wait_frame("hello", lambda m: m["boot_count"] >= 2, after=mark, timeout=20)
    assert hello["reset_cause"] == 3 and hello["reboot_reason"] == 0x82  # WDT_RESET, watchdog


def test_line_noise_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    from deskline.sim.console import Faults

    vc = VirtualConsole(
        tmp_path / "noisy",
        device_id="desk-noisy",
        faults=Faults(drop=0.003, corrupt=0.003, duplicate=0.003, seed=11),
    )
    vc.start()
    host = TestHost(str(vc.port_link))
    try:
        assert vc.wait_display("READY", 15)
        keys = "1234567890" * 3
        for key in keys:
            vc.press(key)
        assert host.wait(lambda: len(host.events_of(codec.EV_PRESS)) == len(keys), 60)
        got = "".join(str(m["a"]) for m in host.events_of(codec.EV_PRESS))
        assert got == keys
        assert sorted(host.events) == list(range(1, len(host.events) + 1))
    finally:
        host.close()
        vc.stop()
