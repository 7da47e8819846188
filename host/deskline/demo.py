"""`deskline demo` (`make demo`): the whole system on a virtual floor.

Starts N virtual consoles (the real firmware on the MicroPython unix port,
each on its own pseudo-terminal at 115200 baud), the clients' systems (a
real local HTTP server taking the escalation webhooks and answering them,
some late), the real daemon in its own process finding the consoles by glob
and following the shift's Asterisk queue_log, and a seeded shift acted out
at the desks; then shows the live floor until Ctrl-C, and stops everything
in order: the agents, the daemon (which commits what it holds), the clients'
systems, the consoles.

The demo's escalation deadlines are seconds, not the minutes of a contract,
so a visitor sees escalations delivered, acknowledged, resolved and, when
the client is late, breached.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import webbrowser
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.text import Text

from deskline import control
from deskline.errors import DesklineError
from deskline.floorconfig import demo_floor_toml, parse_floor
from deskline.sim.client import Answer, ClientSystem
from deskline.sim.floor import VirtualFloor
from deskline.sim.scenario import Scenario
from deskline.statusview import fetch_snapshot, floor_view
from deskline.supervisors import Supervisors, path_in
from deskline.web import parse_address


def _say(text: str) -> None:
    print(text, flush=True)


def run_demo(
    consoles: int = 24,
    seconds: float = 0.0,
    workdir: Path | None = None,
    seed: int = 1,
    view: bool = True,
    http: str = "127.0.0.1:8080",
    open_browser: bool = True,
) -> int:
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="deskline-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    floor_file = work / "floor.toml"
    secret = secrets.token_hex(16)
    client = ClientSystem(secret, answer=_client_answers).start()
    floor_file.write_text(
        _compressed(demo_floor_toml(consoles))
        + "\n"
        + client.floor_tables(
            SECRET_ENV,
            ["volt", "northwind", "harbour"],
            DEMO_DEADLINES,
            timeout_s=2,
            retry_base_s=0.5,
            retry_cap_s=5,
        )
    )
    floor = parse_floor(floor_file.read_text(), str(floor_file))
    ids = sorted(d.console for d in floor.desks.values())
    state = work / "state"
    sock = state / "deskline.sock"
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    address = _address(http)
    password = secrets.token_urlsafe(9)
    state.mkdir(parents=True, exist_ok=True)
    Supervisors(path_in(state)).add(DEMO_SUPERVISOR, password)
    dashboard = f"http://{address}/"
    _say(f"Deskline demo in {work}")
    _say(f"  starting {len(ids)} virtual consoles (the real firmware on MicroPython) ...")
    vfloor = VirtualFloor(work / "floor", ids, seed=seed)
    daemon: subprocess.Popen[bytes] | None = None
    scenario: Scenario | None = None
    log = open(work / "daemon.log", "ab")
    try:
        took = vfloor.start()
        _say(f"  consoles up in {took:.1f} s; starting the daemon ...")
        daemon = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "deskline.cli",
                "daemon",
                "--state",
                str(state),
                "--floor",
                str(floor_file),
                "--glob",
                str(work / "floor" / "*" / "tty"),
                "--no-usb",
                "--queue-log",
                str(work / "queue_log"),
                "--interval",
                "15",
                "--http",
                address,
                "--web-public",
            ],
            stdout=log,
            stderr=log,
            env={**os.environ, SECRET_ENV: secret},
        )
        _wait_daemon(sock, daemon)
        _wait_configs(sock, len(ids), stop)
        scenario = Scenario(floor, vfloor.consoles, seed, queue_log=work / "queue_log")
        scenario.start()
        cli = shutil.which("deskline") or str(Path(sys.executable).parent / "deskline")
        env = f"DESKLINE_CONTROL={sock} {cli}"
        _say(
            f"\nThe floor is live.  The supervisors' dashboard:  {dashboard}\n"
            f"  (anyone may watch; to acknowledge, reboot or push config, log in as "
            f"{DEMO_SUPERVISOR!r} with password {password!r})\n"
            f"  {dashboard}api/v1/openapi.json   the REST API;  {dashboard}metrics   Prometheus\n"
            "\nMore, in another terminal:\n"
            f"  {env} status        the floor: desks, LEDs, events/s, link health\n"
            f"  {env} devices       consoles: port, firmware, heartbeat, heap, resets\n"
            f"  {env} sla           service level per queue and account, every variant\n"
            f"  {env} escalation list --open   escalations and help requests, with deadlines\n"
            f"  {env} console reboot desk-03\n"
            f"  {cli} report --state {state} --account volt --from today --chart volt.svg\n"
            f"  {client.url}   the clients' system taking the escalation webhooks\n"
            f"  tail -f {work / 'daemon.log'}    the daemon's log, console by console\n"
            f"  tail -f {work / 'queue_log'}     the ACD's queue_log the shift writes\n"
            f"  tail -f {state / 'callstatus_log'}   wrap-up codes as CALLSTATUS lines\n"
            f"  sqlite3 {state / 'deskline.db'}   the store\n"
            f"  {cli} sim panel --socket {vfloor.panel(ids[0])} state   one desk's panel\n"
            "Ctrl-C stops everything.\n"
        )
        if open_browser:
            _open_browser(dashboard)
        end = time.monotonic() + seconds if seconds else None
        if view and sys.stdout.isatty():
            _live(sock, stop, end)
        else:
            while not stop.is_set() and (end is None or time.monotonic() < end):
                stop.wait(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        _say("\nstopping: agents, daemon, consoles ...")
        if scenario is not None:
            scenario.stop()
        summary = _summary(sock) if daemon is not None and daemon.poll() is None else ""
        if daemon is not None and daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(15)
            except subprocess.TimeoutExpired:
                daemon.kill()
        log.close()
        client.stop()
        vfloor.stop()
        crashes = vfloor.crashes()
    for device, trace in crashes.items():
        _say(f"{device} crashed during the demo:\n{trace}")
    if summary:
        _say(summary)
    _say(f"demo stopped; the store, logs and flash images are kept in {work}")
    return 1 if crashes else 0


SECRET_ENV = "DESKLINE_DEMO_WEBHOOK_SECRET"
# Seconds where a contract says minutes: the demo shows a whole lifecycle.
DEMO_DEADLINES = {
    "urgent": ("10s", "40s"),
    "high": ("15s", "60s"),
    "normal": ("20s", "90s"),
    "low": ("30s", "2m"),
}


def _compressed(floor_toml: str) -> str:
    """The demo floor with its service-level thresholds on the shift's clock.

    The shift runs minutes in seconds (sim/scenario.py Tempo), so a 20 s
    answer threshold would hold every call; scaled alike, the visitor sees
    service level move and lights change.
    """

    def scale(m: re.Match[str]) -> str:
        return f"{m.group(1)} = {max(1, round(int(m.group(2)) / DEMO_TIME_SCALE))}"

    return re.sub(r"^(threshold_s|short_abandon_s) = (\d+)$", scale, floor_toml, flags=re.M)


DEMO_TIME_SCALE = 8


def _client_answers(body: dict[str, object]) -> Answer:
    """Most escalations answered in time, one in four late (a breach to see)."""
    h = int(hashlib.sha256(str(body.get("ext_id", "")).encode()).hexdigest()[:8], 16)
    if h % 4 == 0:
        return Answer(ack_after_s=25.0 + h % 10, resolve_after_s=150.0)
    return Answer(ack_after_s=2.0 + h % 5, resolve_after_s=12.0 + h % 20)


DEMO_SUPERVISOR = "supervisor"


def _address(http: str) -> str:
    """HOST:PORT for the dashboard: the one asked for, or a free port on that host."""
    host, port = parse_address(http)
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            s.bind((host, 0))  # 8080 taken: any free port, printed below
        return f"{host}:{s.getsockname()[1]}"


def _open_browser(url: str) -> None:
    """Opens the dashboard where there is a screen to open it on; says so either way."""
    if not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or sys.platform == "darwin"
    ):
        return
    try:
        opened = webbrowser.open(url, new=2)
    except webbrowser.Error:
        opened = False
    if opened:
        _say(f"  opened {url} in your browser")


def _wait_daemon(sock: Path, daemon: subprocess.Popen[bytes]) -> None:
    end = time.monotonic() + 30
    while time.monotonic() < end:
        if daemon.poll() is not None:
            raise DesklineError("the daemon exited at start; see daemon.log")
        try:
            control.request(sock, {"op": "ping"}, timeout=2)
            return
        except DesklineError:
            time.sleep(0.2)
    raise DesklineError("the daemon did not come up within 30 s; see daemon.log")


def _wait_configs(sock: Path, n: int, stop: threading.Event) -> None:
    """Until every console runs its account's config (the shift needs it)."""
    end = time.monotonic() + 60
    while time.monotonic() < end and not stop.is_set():
        devices = control.request(sock, {"op": "devices"})["devices"]
        ready = sum(
            1
            for d in devices
            if d.get("config_version") and d.get("config_version") == d.get("config_expected")
        )
        print(f"\r  consoles online with their account config: {ready}/{n} ", end="", flush=True)
        if ready >= n:
            print(flush=True)
            return
        time.sleep(0.5)
    print(flush=True)


def _live(sock: Path, stop: threading.Event, end: float | None) -> None:
    with Live(console=Console(), auto_refresh=False, screen=False) as live:
        while not stop.is_set() and (end is None or time.monotonic() < end):
            try:
                live.update(floor_view(fetch_snapshot(sock)), refresh=True)
            except DesklineError as e:
                live.update(Text(str(e), style="bold red"), refresh=True)
            stop.wait(0.5)


def _summary(sock: Path) -> str:
    try:
        counters = control.request(sock, {"op": "counters"}, timeout=5)["counters"]
    except (DesklineError, KeyError):
        return ""
    keys = ("events_stored", "duplicates", "bad_frames", "hellos", "boots")
    return "daemon counters: " + ", ".join(f"{k} {counters.get(k, 0)}" for k in keys)
