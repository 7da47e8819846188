"""A virtual floor: many virtual consoles at once, each with its own port and panel.

A floor of 24 desks is what the daemon has to keep up with.  A console's
first start is its slow one: it compiles the firmware with mpy-cross and its
MCU copies the files onto its flash (24 such starts take ~24 s on 2 cores).
So the floor installs once, into a template flash image, and every console
boots from a copy of it, as consoles flashed from one golden image do; they
start in parallel (24 in ~5 s).
"""

from __future__ import annotations

import dataclasses
import random
import shutil
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType

from deskline.errors import DesklineError
from deskline.floormodel import Floor
from deskline.sim.console import Faults, VirtualConsole, serve_panel

# Starting a console is mostly waiting on short subprocesses (mpy-cross for
# the boot scripts, then the MCU's own start); a few at a time keep 2 cores busy.
_START_WORKERS = 4

_TEMPLATE_TIMEOUT_S = 60.0


class VirtualFloor:
    """N virtual consoles: start() in parallel, ports() and panels() to reach them, stop()."""

    def __init__(
        self,
        workdir: Path,
        device_ids: list[str],
        baud: int = 115200,
        faults: Faults | None = None,
        seed: int = 0,
        board: str = "sim",
    ) -> None:
        if len(set(device_ids)) != len(device_ids):
            raise DesklineError("device ids on a floor must be unique")
        self.workdir = Path(workdir)
        self.device_ids = list(device_ids)
        self.baud = baud
        self.faults = faults
        self.seed = seed
        self.board = board
        self.consoles: dict[str, VirtualConsole] = {}
        for device_id in self.device_ids:
            self.consoles[device_id] = VirtualConsole(
                self.workdir / device_id,
                device_id=device_id,
                board=board,
                baud=baud,
                faults=self._faults_for(device_id),
            )
        self.start_s = 0.0

    def _faults_for(self, device_id: str) -> Faults | None:
        if self.faults is None:
            return None
        # Each line gets its own noise, yet the same for a given floor seed.
        rng = random.Random(f"{self.seed}/{self.faults.seed}/{device_id}")
        return dataclasses.replace(self.faults, seed=rng.getrandbits(32))

    def start(self, timeout: float = 120.0) -> float:
        """Starts every console and waits until each one's app runs; returns the seconds taken."""
        t0 = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        # A console that has a flash image keeps it, as a real one keeps its flash.
        fresh = [vc for vc in self.consoles.values() if not vc.image.exists()]
        if fresh:
            template = self._template()
            for vc in fresh:
                vc.workdir.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(template, vc.image)
        with ThreadPoolExecutor(_START_WORKERS) as pool:
            list(pool.map(self._start_one, self.consoles.values()))
        end = t0 + timeout
        late = [
            vc.device_id
            for vc in self.consoles.values()
            if not vc.wait_for(lambda s: s.draws > 0, max(0.0, end - time.monotonic()))
        ]
        if late:
            raise DesklineError(f"consoles did not start within {timeout:.0f} s: {', '.join(late)}")
        self.start_s = time.monotonic() - t0
        return self.start_s

    def _template(self) -> Path:
        """A flash image holding the installed app and nothing else."""
        where = self.workdir / ".template"  # no device id clashes with a dot name
        if where.exists():
            shutil.rmtree(where)
        vc = VirtualConsole(where, device_id="template", board=self.board, baud=0)
        # ESCALATE held at power-up: safe boot, so the app never starts and
        # writes no journal or boot record; only the install touches the flash.
        vc.down("ESC")
        vc.start(install=True)
        try:
            end = time.monotonic() + _TEMPLATE_TIMEOUT_S
            while b"safe boot" not in vc.tail:
                if time.monotonic() > end:
                    raise DesklineError(
                        f"installing the firmware on a template console failed:\n"
                        f"{vc.tail[-2000:].decode(errors='replace')}"
                    )
                time.sleep(0.02)
        finally:
            vc.stop()
        return vc.image

    def _start_one(self, vc: VirtualConsole) -> None:
        vc.start()
        try:
            serve_panel(vc, self.panel(vc.device_id))
        except OSError as e:
            raise DesklineError(
                f"cannot open the panel socket {self.panel(vc.device_id)}: {e} "
                "(UNIX socket paths stop at 107 bytes: use a shorter workdir)"
            ) from e

    def panel(self, device_id: str) -> Path:
        return self.workdir / device_id / "panel.sock"

    def ports(self) -> dict[str, Path]:
        """Each console's serial port, as a stable symlink to its pty."""
        return {d: vc.port_link for d, vc in self.consoles.items()}

    def panels(self) -> dict[str, Path]:
        return {d: self.panel(d) for d in self.consoles}

    def crashes(self) -> dict[str, str]:
        """The last traceback each console printed, for those that printed one."""
        return {d: tb for d, vc in self.consoles.items() if (tb := vc.traceback())}

    def stop(self) -> None:
        with ThreadPoolExecutor(max(1, len(self.consoles))) as pool:
            list(pool.map(lambda vc: vc.stop(), self.consoles.values()))
        for d in self.consoles:
            self.panel(d).unlink(missing_ok=True)

    def __enter__(self) -> VirtualFloor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_sim_floor(
    workdir: Path,
    floor: Floor | None = None,
    consoles: list[str] | int = 4,
    seed: int = 0,
    baud: int = 115200,
    faults: Faults | None = None,
    queue_log: Path | None = None,
    speed: float = 1.0,
    seconds: float = 0.0,
    out: Callable[[str], None] = print,
) -> int:
    """`deskline sim floor`: a floor of virtual consoles acting out a shift until Ctrl-C.

    consoles names the device ids, or counts them: the floor's first N
    consoles (0: all of them), or desk-01..desk-N without a floor, which
    then gets `demo_floor()`.  Consoles
    take the shift's wrap-up modes once something (the daemon) pushes their
    accounts' configs.  Returns 1 when a console crashed, else 0.
    """
    from deskline.sim.scenario import Scenario, demo_floor  # noqa: PLC0415  (cycle-free, lazy)

    if not isinstance(consoles, int):
        ids = list(consoles)
    elif floor is not None:
        every = sorted({d.console for d in floor.desks.values()})
        ids = every[:consoles] if consoles > 0 else every
    else:
        ids = [f"desk-{i + 1:02d}" for i in range(max(1, consoles))]
    if floor is None:
        floor = demo_floor(ids)
    log_path = queue_log or Path(workdir) / "queue_log"
    vfloor = VirtualFloor(Path(workdir), ids, baud=baud, faults=faults, seed=seed)
    stop = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():

        def on_term(signum: int, frame: FrameType | None) -> None:
            stop.set()

        previous = signal.signal(signal.SIGTERM, on_term)
    scenario: Scenario | None = None
    try:
        took = vfloor.start()
        out(f"Deskline virtual floor '{floor.name}': {len(ids)} consoles up in {took:.1f} s")
        for d in ids:
            desk = floor.desk_for_console(d)
            where = (
                f"{desk.name} ({desk.account}, agent {desk.agent or '-'})" if desk else "no desk"
            )
            out(f"  {d}: serial {vfloor.ports()[d]}  panel {vfloor.panel(d)}  {where}")
        out(f"  queue_log: {log_path}   seed {seed}, speed {speed:g}   (Ctrl-C stops)")
        scenario = Scenario(floor, vfloor.consoles, seed, queue_log=log_path, speed=speed)
        scenario.start(seconds=seconds or None)
        try:
            while not stop.is_set() and not scenario.errors:
                if seconds and scenario.wait(0.2):
                    break
                stop.wait(0.2)
        except KeyboardInterrupt:
            pass
    finally:
        if scenario is not None:
            scenario.stop()
            st = scenario.stats()
            for err in scenario.errors:
                out(f"the shift driver failed: {err!r}")
            out(
                f"shift: {st['calls']:.0f} calls, {st['answered']:.0f} answered, "
                f"{st['abandoned']:.0f} abandoned, {st['presses']:.0f} presses, "
                f"max desk lag {st['max_lag_s']:.1f} s"
            )
        vfloor.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    crashed = vfloor.crashes()
    for d, tb in crashed.items():
        out(f"{d} crashed:\n{tb}")
    out(f"floor stopped; flash images kept in {workdir}")
    return 1 if crashed or (scenario is not None and scenario.errors) else 0
