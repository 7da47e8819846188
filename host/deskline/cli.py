"""The `deskline` command: a table of subcommands, each a do_<name> handler."""

from __future__ import annotations

import argparse
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

    return run_demo(consoles=args.consoles, seconds=args.seconds)


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

    mo = sub.add_parser("monitor", help="decode a console's frames live (and ack its events)")
    mo.add_argument("port")
    mo.add_argument("--baud", type=int, default=115200)
    mo.add_argument("--no-ack", action="store_true", help="watch only; events stay journaled")
    mo.add_argument("--seconds", type=float, default=0.0, help="stop after this long")
    mo.add_argument("--json", action="store_true", help="one JSON object per frame")
    handlers["monitor"] = do_monitor

    de = sub.add_parser("demo", help="virtual consoles acting out a shift, monitored live")
    de.add_argument("--seconds", type=float, default=0.0, help="stop after this long")
    de.add_argument("--consoles", type=int, default=4, help="how many virtual consoles")
    handlers["demo"] = do_demo
    return p, handlers


def main(argv: list[str] | None = None) -> int:
    parser, handlers = _parser()
    args = parser.parse_args(argv)
    key = args.cmd
    for sub in ("board_cmd", "sim_cmd"):
        if getattr(args, sub, None):
            key += " " + getattr(args, sub)
    try:
        return handlers[key](args)
    except DesklineError as e:
        print(f"deskline: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
