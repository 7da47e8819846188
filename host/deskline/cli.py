"""The `deskline` command: a table of subcommands, each a do_<name> handler."""

from __future__ import annotations

import argparse
import importlib
import json
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from deskline.errors import DesklineError

Handler = Callable[[argparse.Namespace], int]


def do_board_check(args: argparse.Namespace) -> int:
    from deskline.boardcheck import check_file, findings_json, format_findings

    worst = 0
    reports = []
    for path in args.files:
        findings = check_file(Path(path))
        if any(f.level == "error" for f in findings):
            worst = 1
        if args.json:
            reports.append(findings_json(path, findings))
        else:
            print(format_findings(path, findings))
    if args.json:
        print(json.dumps(reports[0] if len(reports) == 1 else reports, indent=2))
    return worst


def do_sim_console(args: argparse.Namespace) -> int:
    from deskline.sim.console import Faults, VirtualConsole, serve_panel

    workdir = Path(args.dir or tempfile.mkdtemp(prefix="deskline-console-"))
    faults = Faults(drop=args.drop, corrupt=args.corrupt, duplicate=args.dup, seed=args.seed)
    console = VirtualConsole(
        workdir, device_id=args.id, board=args.board, baud=args.baud, faults=faults
    )
    console.start(install=True if args.fresh else None)
    panel = workdir / "panel.sock"
    serve_panel(console, panel)
    info = {"device_id": args.id, "port": str(console.port_link), "panel": str(panel)}
    if args.json:
        print(json.dumps(info), flush=True)
    else:
        print(f"virtual console {args.id} running the firmware on the MicroPython unix port")
        print(f"  serial port : {console.port_link}  (-> {console.port})")
        print(f"  panel socket: {panel}  (deskline sim panel --socket {panel} press 5)")
        print("  Ctrl-C stops it; the flash image stays in", workdir, flush=True)
    _wait_for_interrupt()
    console.stop()
    return 0


def do_sim_panel(args: argparse.Namespace) -> int:
    req: dict[str, object] = {"op": args.op}
    if args.key is not None:
        if args.op == "hook":
            req["on"] = args.key in ("1", "on", "off-hook", "true")
        else:
            req["key"] = args.key
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(args.socket)
        except OSError as e:
            raise DesklineError(f"no virtual console panel at {args.socket}: {e}") from e
        s.sendall(json.dumps(req).encode() + b"\n")
        reply = json.loads(s.makefile("rb").readline())
    if args.json:
        print(json.dumps(reply))
    else:
        for line in reply.get("display", []):
            print(f"| {line:<16} |")
        print("leds:", reply.get("leds"))
    return 0 if reply.get("ok") else 1


def do_monitor(args: argparse.Namespace) -> int:
    from deskline.monitor import monitor

    return monitor(
        args.port, baud=args.baud, as_json=args.json, ack=not args.no_ack, seconds=args.seconds
    )


def do_demo(args: argparse.Namespace) -> int:
    from deskline.demo import run_demo

    return run_demo(
        consoles=args.consoles,
        seconds=args.seconds,
        workdir=Path(args.dir) if args.dir else None,
        seed=args.seed,
        view=not args.no_view,
        http=args.http,
        open_browser=not args.no_browser,
    )


def _state_dir(args: argparse.Namespace) -> Path:
    import os

    if getattr(args, "state", None):
        return Path(args.state)
    env = os.environ.get("DESKLINE_STATE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "deskline"


def _control(args: argparse.Namespace) -> Path:
    import os

    if getattr(args, "control", None):
        return Path(args.control)
    if os.environ.get("DESKLINE_CONTROL"):
        return Path(os.environ["DESKLINE_CONTROL"])
    return _state_dir(args) / "deskline.sock"


def do_daemon(args: argparse.Namespace) -> int:
    from deskline.acdfeed import AcdOptions
    from deskline.daemon import DaemonOptions, run_daemon, setup_logging

    state = _state_dir(args)
    state.mkdir(parents=True, exist_ok=True)
    setup_logging(as_json=args.log_json)
    opts = DaemonOptions(
        db=Path(args.db) if args.db else state / "deskline.db",
        control=_control(args),
        floor=Path(args.floor) if args.floor else None,
        ports=args.port or [],
        globs=args.glob or [],
        usb=not args.no_usb,
        baud=args.baud,
        http=args.http or "",
        public_url=args.public_url or "",
        web_public=args.web_public,
        state=state,
        acd=AcdOptions(
            queue_log=Path(args.queue_log),
            callstatus_log=Path(args.callstatus_log or state / "callstatus_log"),
            interval_min=args.interval,
        )
        if args.queue_log
        else None,
    )
    return run_daemon(opts)


def _ask(args: argparse.Namespace, req: dict[str, object]) -> dict[str, object]:
    from deskline import control

    reply = control.request(_control(args), req)
    if getattr(args, "json", False):
        print(json.dumps(reply, indent=2, default=str))
    elif not reply.get("ok"):
        print(f"deskline: {reply.get('error') or reply.get('text') or reply}", file=sys.stderr)
    return reply


def do_devices(args: argparse.Namespace) -> int:
    from deskline.statusview import console, devices_table

    reply = _ask(args, {"op": "devices"})
    if reply.get("ok") and not args.json:
        console().print(devices_table(reply))
    return 0 if reply.get("ok") else 1


def do_status(args: argparse.Namespace) -> int:
    from deskline.statusview import fetch_snapshot, watch

    if args.json:
        print(json.dumps(fetch_snapshot(_control(args)), indent=2))
        return 0
    try:
        once = args.once or not args.watch
        return watch(_control(args), interval=args.interval, once=once, health=args.health)
    except KeyboardInterrupt:
        return 0


def do_console(args: argparse.Namespace) -> int:
    req: dict[str, object] = {"op": args.action}
    target = args.target
    req["port" if target.startswith("/") else "device"] = target
    if args.action == "call":
        req.update(action=args.call_op, call_id=args.call_id or "", queue=args.queue or "")
    elif args.action == "escalation":
        req.update(esc_id=args.esc_id, status=args.status, ticket=args.ticket or "")
        if args.deadline_s is not None:
            req["deadline_s"] = args.deadline_s
    reply = _ask(args, req)
    if reply.get("ok") and not args.json:
        print(
            reply.get("hint") or f"{args.action}: ok ({reply.get('device') or reply.get('port')})"
        )
    return 0 if reply.get("ok") else 1


def do_floor_light(args: argparse.Namespace) -> int:
    reply = _ask(
        args,
        {
            "op": "floor",
            "account": args.account,
            "band": args.band,
            "sl_permille": round(args.sl * 10),
            "target_pct": args.target,
            "waiting": args.waiting,
            "longest_wait": args.longest_wait,
        },
    )
    if reply.get("ok") and not args.json:
        print(f"floor light {args.band} sent to {reply['consoles']} consoles")
    return 0 if reply.get("ok") else 1


def do_floor_check(args: argparse.Namespace) -> int:
    from deskline.floorconfig import FloorConfigError, load_floor

    try:
        floor = load_floor(Path(args.file))
    except FloorConfigError as e:
        if args.json:
            print(
                json.dumps({"ok": False, "file": args.file, "problems": list(e.problems)}, indent=2)
            )
        else:
            for problem in e.problems:
                print(problem)
        return 1
    summary = {
        "ok": True,
        "file": args.file,
        "floor": floor.name,
        "accounts": len(floor.accounts),
        "queues": len(floor.queues),
        "agents": len(floor.agents),
        "desks": len(floor.desks),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"{args.file}: ok — {floor.name}: {len(floor.desks)} desks, "
            f"{len(floor.accounts)} accounts, {len(floor.queues)} queues, "
            f"{len(floor.agents)} agents"
        )
    return 0


def do_sim_floor(args: argparse.Namespace) -> int:
    from deskline.floorconfig import load_floor
    from deskline.sim.console import Faults
    from deskline.sim.floor import run_sim_floor

    floor = load_floor(Path(args.floor)) if args.floor else None
    faults = Faults(drop=args.drop, corrupt=args.corrupt, duplicate=args.dup, seed=args.seed)
    code: int = run_sim_floor(
        Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="deskline-floor-")),
        floor=floor,
        consoles=args.consoles if args.consoles else (0 if floor else 4),
        seed=args.seed,
        baud=args.baud,
        faults=faults if faults.any() else None,
        queue_log=Path(args.queue_log) if args.queue_log else None,
        speed=args.speed,
        seconds=args.seconds,
    )
    return code


def _wait_for_interrupt() -> None:
    stop = False

    def handler(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, handler)
    try:
        while not stop:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass


def control_opts(q: argparse.ArgumentParser) -> None:
    """The options of a command that asks the running daemon."""
    q.add_argument(
        "--state", help="state directory (default $DESKLINE_STATE or ~/.local/state/deskline)"
    )
    q.add_argument("--control", help="the daemon's control socket (default <state>/deskline.sock)")
    q.add_argument("--json", action="store_true")


# Feature modules that add their own commands: each has
# register(subparsers, handlers), and names its handlers "cmd" or "cmd sub"
# (sub read from the args attribute "<cmd>_cmd").
FEATURE_CLIS: tuple[str, ...] = (
    "cli_report",
    "cli_flash",
    "cli_escalation",
    "cli_sla",
    "cli_bundle",
    "cli_update",
    "cli_supervisor",
)


def _parser() -> tuple[argparse.ArgumentParser, dict[str, Handler]]:
    p = argparse.ArgumentParser(prog="deskline", description="Deskline agent consoles")
    sub = p.add_subparsers(dest="cmd", required=True)
    handlers: dict[str, Handler] = {}

    board = sub.add_parser("board", help="board (pin map) files").add_subparsers(
        dest="board_cmd", required=True
    )
    bc = board.add_parser("check", help="check board files against the chip's pin rules")
    bc.add_argument("files", nargs="+")
    bc.add_argument("--json", action="store_true")
    handlers["board check"] = do_board_check

    sim = sub.add_parser("sim", help="virtual consoles").add_subparsers(
        dest="sim_cmd", required=True
    )
    sc = sim.add_parser("console", help="run one virtual console")
    sc.add_argument("--dir", help="keeps the flash image here (default: a new temp dir)")
    sc.add_argument("--id", default="sim-0", help="device id")
    sc.add_argument("--board", default="sim")
    sc.add_argument("--baud", type=int, default=115200, help="line rate, 0 = unpaced")
    sc.add_argument("--drop", type=float, default=0.0, help="per-byte drop probability")
    sc.add_argument("--corrupt", type=float, default=0.0, help="per-byte bit-flip probability")
    sc.add_argument("--dup", type=float, default=0.0, help="per-byte duplicate probability")
    sc.add_argument("--seed", type=int, default=0)
    sc.add_argument("--fresh", action="store_true", help="reinstall the app files")
    sc.add_argument("--json", action="store_true")
    handlers["sim console"] = do_sim_console
    sp = sim.add_parser("panel", help="press keys / lift the handset on a virtual console")
    sp.add_argument("--socket", required=True)
    sp.add_argument(
        "op",
        choices=["state", "press", "down", "up", "hook", "power_cut", "reset", "unplug", "replug"],
    )
    sp.add_argument("key", nargs="?")
    sp.add_argument("--json", action="store_true")
    handlers["sim panel"] = do_sim_panel

    sf = sim.add_parser("floor", help="N virtual consoles acting out a seeded shift")
    sf.add_argument("--dir", help="work directory (default: a new temp dir)")
    sf.add_argument("--floor", help="floor config (TOML): start a console per desk")
    sf.add_argument("--consoles", type=int, default=0, help="how many (without --floor: 4)")
    sf.add_argument("--seed", type=int, default=0)
    sf.add_argument("--baud", type=int, default=115200, help="line rate, 0 = unpaced")
    sf.add_argument("--drop", type=float, default=0.0, help="per-byte drop probability")
    sf.add_argument("--corrupt", type=float, default=0.0, help="per-byte bit-flip probability")
    sf.add_argument("--dup", type=float, default=0.0, help="per-byte duplicate probability")
    sf.add_argument("--queue-log", help="where the ACD's queue_log goes (default <dir>/queue_log)")
    sf.add_argument("--speed", type=float, default=1.0, help="shift tempo multiplier")
    sf.add_argument("--seconds", type=float, default=0.0, help="stop after this long")
    handlers["sim floor"] = do_sim_floor

    mo = sub.add_parser("monitor", help="decode a console's frames live (and ack its events)")
    mo.add_argument("port")
    mo.add_argument("--baud", type=int, default=115200)
    mo.add_argument("--no-ack", action="store_true", help="watch only; events stay journaled")
    mo.add_argument("--seconds", type=float, default=0.0, help="stop after this long")
    mo.add_argument("--json", action="store_true", help="one JSON object per frame")
    handlers["monitor"] = do_monitor

    dm = sub.add_parser("daemon", help="serve the consoles: store, floor config, commands")
    dm.add_argument(
        "--state", help="state directory (default $DESKLINE_STATE or ~/.local/state/deskline)"
    )
    dm.add_argument("--db", help="SQLite database (default <state>/deskline.db)")
    dm.add_argument("--control", help="control socket (default <state>/deskline.sock)")
    dm.add_argument("--floor", help="floor configuration (TOML); reloaded when it changes")
    dm.add_argument("--port", action="append", help="a console's serial port (repeatable)")
    dm.add_argument(
        "--glob", action="append", help="ports by glob, e.g. '/dev/ttyUSB*' (repeatable)"
    )
    dm.add_argument("--no-usb", action="store_true", help="do not look for consoles by USB VID/PID")
    dm.add_argument("--baud", type=int, default=115200)
    dm.add_argument(
        "--queue-log", help="the ACD's Asterisk queue_log to follow for service level and calls"
    )
    dm.add_argument(
        "--callstatus-log",
        help="write wrap-up codes here as queue_log CALLSTATUS lines (default "
        "<state>/callstatus_log when --queue-log is given)",
    )
    dm.add_argument(
        "--interval", type=int, choices=(15, 30, 60), default=30, help="SL interval, minutes"
    )
    dm.add_argument("--log-json", action="store_true", help="one JSON object per log line")
    dm.add_argument(
        "--http",
        help="serve HTTP on HOST:PORT, e.g. :8080: the supervisors' floor dashboard and API, "
        "/metrics, and the client's escalation callbacks",
    )
    dm.add_argument(
        "--web-public",
        action="store_true",
        help="let anyone who reaches --http read the floor view (a wall screen); actions "
        "still need a supervisor (deskline supervisor add NAME)",
    )
    dm.add_argument(
        "--public-url", help="the --http address as the client's system reaches it (callback links)"
    )
    handlers["daemon"] = do_daemon

    floor = sub.add_parser("floor", help="floor configuration files").add_subparsers(
        dest="floor_cmd", required=True
    )
    fc = floor.add_parser("check", help="check a floor configuration (TOML)")
    fc.add_argument("file")
    fc.add_argument("--json", action="store_true")
    handlers["floor check"] = do_floor_check

    dv = sub.add_parser(
        "devices", help="consoles: port, firmware, heartbeat, heap, resets, journal"
    )
    control_opts(dv)
    handlers["devices"] = do_devices

    st = sub.add_parser(
        "status", help="the floor in the terminal: desks, service level, escalations, health"
    )
    control_opts(st)
    st.add_argument("--watch", action="store_true", help="keep the floor on screen, live")
    st.add_argument("--interval", type=float, default=0.5, help="seconds between --watch updates")
    st.add_argument("--once", action="store_true", help="print once and exit (the default)")
    st.add_argument(
        "--health", action="store_true", help="every console's health, not only problems"
    )
    handlers["status"] = do_status

    co = sub.add_parser("console", help="commands to one console through the daemon")
    co.add_argument(
        "action",
        choices=["reboot", "repl", "release", "attach", "call", "escalation"],
        help="repl/release hand the port to another tool; attach takes it back",
    )
    co.add_argument("target", help="device id, or a port path")
    co.add_argument("--call-op", choices=["start", "end"], default="start")
    co.add_argument("--call-id")
    co.add_argument("--queue")
    co.add_argument("--esc-id", type=int)
    co.add_argument(
        "--status",
        choices=[
            "raised",
            "delivered",
            "acknowledged",
            "resolved",
            "breached",
            "cancelled",
            "failed",
        ],
    )
    co.add_argument("--ticket")
    co.add_argument("--deadline-s", type=int)
    control_opts(co)
    handlers["console"] = do_console

    fl = sub.add_parser("floor-light", help="set an account's floor service-level light")
    fl.add_argument("--account", required=True, help="account key in the floor config")
    fl.add_argument("--band", choices=["unknown", "green", "amber", "red"], required=True)
    fl.add_argument("--sl", type=float, default=0.0, help="service level, percent")
    fl.add_argument("--target", type=int, default=80)
    fl.add_argument("--waiting", type=int, default=0)
    fl.add_argument("--longest-wait", type=int, default=0)
    control_opts(fl)
    handlers["floor-light"] = do_floor_light

    de = sub.add_parser("demo", help="virtual consoles acting out a shift, monitored live")
    de.add_argument("--seconds", type=float, default=0.0, help="stop after this long")
    de.add_argument("--consoles", type=int, default=24, help="how many virtual consoles")
    de.add_argument("--dir", help="work directory (default: a new temp dir)")
    de.add_argument("--seed", type=int, default=1, help="the shift's random seed")
    de.add_argument("--no-view", action="store_true", help="do not show the live floor here")
    de.add_argument(
        "--http",
        default="127.0.0.1:8080",
        help="where the floor dashboard is served (default 127.0.0.1:8080; "
        "another free port when that one is taken)",
    )
    de.add_argument(
        "--no-browser", action="store_true", help="do not open the dashboard in a browser"
    )
    handlers["demo"] = do_demo
    for name in FEATURE_CLIS:
        importlib.import_module(f"deskline.{name}").register(sub, handlers)
    return p, handlers


def main(argv: list[str] | None = None) -> int:
    parser, handlers = _parser()
    args = parser.parse_args(argv)
    key = args.cmd
    sub = getattr(args, f"{key.replace('-', '_')}_cmd", None)
    if sub:
        key += " " + sub
    try:
        return handlers[key](args)
    except DesklineError as e:
        print(f"deskline: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
