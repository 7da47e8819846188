"""Exactly-once, end to end: a seeded shift on 12 virtual consoles through the
real daemon, with consoles and the daemon killed -9, cables pulled and a
noisy line.  The store must hold every agent input of the ground truth once,
in order per console.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from deskline.floorconfig import demo_floor_toml, parse_floor
from deskline.sim.console import Faults
from deskline.sim.floor import VirtualFloor
from deskline.sim.scenario import Scenario, Tempo
from deskline.wire import codec
from floorwait import configs_applied, wait

CONSOLES = 12
PRESSES = 64  # per console: about 800 presses on the floor
NOISE = Faults(drop=0.0003, corrupt=0.0003, duplicate=0.0003, seed=7)


class DaemonProcess:
    """`deskline daemon` in its own process, so it can be killed -9."""

    def __init__(self, workdir: Path, floor_file: Path, glob: str) -> None:
        self.workdir = workdir
        self.args = [
            sys.executable,
            "-m",
            "deskline.cli",
            "daemon",
            "--state",
            str(workdir / "state"),
            "--floor",
            str(floor_file),
            "--glob",
            glob,
            "--no-usb",
        ]
        self.log = open(workdir / "daemon.log", "ab")
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=self.log)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.kills += 1

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        finally:
            self.log.close()


def stored(db: Path) -> dict[str, list[tuple[int, int, int, int]]]:
    """(epoch, seq, kind, a) of every stored event, per console, in order."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        rows = con.execute(
            "SELECT c.device_id, e.journal_epoch, e.seq, e.kind, e.a FROM events e "
            "JOIN consoles c ON c.id = e.console_id ORDER BY c.device_id, e.journal_epoch, e.seq"
        ).fetchall()
    finally:
        con.close()
    out: dict[str, list[tuple[int, int, int, int]]] = {}
    for device, epoch, seq, kind, a in rows:
        out.setdefault(device, []).append((epoch, seq, kind, a))
    return out


def agent_inputs(events: list[tuple[int, int, int, int]]) -> list[tuple[str, int]]:
    """The agent's inputs as the console recorded them: keys and the handset."""
    seq: list[tuple[str, int]] = []
    for _, _, kind, a in events:
        if kind == codec.EV_PRESS:
            seq.append(("key", a))
        elif kind in (codec.EV_CALL_START, codec.EV_CALL_END) and a == 1:  # source: hook
            seq.append(("hook", 1 if kind == codec.EV_CALL_START else 0))
    return seq


def test_exactly_once_through_kills_unplugs_and_noise(tmp_path: Path) -> None:
    ids = [f"desk-{i + 1:02d}" for i in range(CONSOLES)]
    floor_file = tmp_path / "floor.toml"
    # The forced-timeout account made mandatory: the shift is about presses,
    # and a forced 15 s ACW, kept in real time by the console, would leave
    # its desks idle most of the shift (scenario.plan() sizes this).
    floor_file.write_text(
        demo_floor_toml(CONSOLES).replace('mode = "forced_timeout"', 'mode = "mandatory"')
    )
    floor = parse_floor(floor_file.read_text(), str(floor_file))
    vfloor = VirtualFloor(tmp_path / "floor", ids, faults=NOISE, seed=3)
    vfloor.start()
    daemon = DaemonProcess(tmp_path, floor_file, str(tmp_path / "floor" / "*" / "tty"))
    db = tmp_path / "state" / "deskline.db"
    rng = random.Random(11)
    faults = {"console_kill9": 0, "daemon_kill9": 0, "unplug": 0}
    stop = threading.Event()
    try:
        # The consoles take their accounts' configs from the daemon first.
        assert wait(lambda: configs_applied(db, len(ids)), 60), "configs were not pushed"
        # A brisk floor: short calls, and no ACW timer waited out on purpose.
        tempo = Tempo(occupancy=0.95, p_timeout=0.0, p_ring_no_answer=0.02)
        scenario = Scenario(floor, vfloor.consoles, seed=5, speed=6.0, tempo=tempo)

        def chaos() -> None:
            while not stop.wait(rng.uniform(1.5, 3.5)):
                what = rng.choice(["console_kill9", "console_kill9", "daemon_kill9", "unplug"])
                device = rng.choice(ids)
                if what == "daemon_kill9":
                    daemon.kill9()
                    time.sleep(rng.uniform(0.1, 1.0))
                    daemon.start()
                elif what == "console_kill9":
                    with scenario.quiet(device) as vc:
                        vc.power_cut()
                else:
                    vc = vfloor.consoles[device]
                    vc.unplug()
                    time.sleep(rng.uniform(0.2, 1.5))
                    vc.replug()
                faults[what] += 1

        scenario.start(presses_per_console=PRESSES)
        chaos_thread = threading.Thread(target=chaos, daemon=True)
        chaos_thread.start()
        assert scenario.wait(420), "the shift did not finish"
        stop.set()
        chaos_thread.join(30)
        truth = scenario.truth
        assert truth is not None
        expected = {d: truth.desks[d].sequence() for d in ids}

        def complete() -> bool:
            got = stored(db)
            return all(agent_inputs(got.get(d, [])) == expected[d] for d in ids)

        wait(complete, 90)
        got = stored(db)
    finally:
        stop.set()
        code = daemon.stop()
        vfloor.stop()
    total_presses = sum(len(truth.desks[d].keys()) for d in ids)
    total_events = sum(len(v) for v in got.values())
    print(
        f"\nexactly-once: {CONSOLES} consoles, {total_presses} presses, "
        f"{sum(len(truth.desks[d].hooks()) for d in ids)} handset changes, "
        f"{total_events} events stored; faults {faults}"
    )
    assert code == 0, "the daemon did not stop cleanly"
    for d in ids:
        events = got.get(d, [])
        keys = [(e[0], e[1]) for e in events]
        assert len(keys) == len(set(keys)), f"{d}: a sequence stored twice"
        assert agent_inputs(events) == expected[d], f"{d}: store differs from the ground truth"
    assert total_presses >= CONSOLES * PRESSES
    assert faults["console_kill9"] and faults["daemon_kill9"]
    crashes = vfloor.crashes()
    assert not crashes, crashes
