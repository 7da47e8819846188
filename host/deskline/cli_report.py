"""`deskline report`: failure demand and escalation SLA for one client account.

Reads the daemon's database read-only (it may be live), so a report can run
beside the daemon at any time and never changes what it stores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from deskline.errors import DesklineError

Handler = Callable[[argparse.Namespace], int]


def db_path(args: argparse.Namespace) -> Path:
    """--db, else the daemon's store under --state / $DESKLINE_STATE / ~/.local/state."""
    # Where `deskline daemon` puts it (cli.do_daemon; daemon.default_paths under
    # a state dir), without importing the daemon and all it starts.
    from deskline.cli import _state_dir  # noqa: PLC0415

    if args.db:
        return Path(args.db)
    return _state_dir(args) / "deskline.db"


def do_report(args: argparse.Namespace) -> int:
    from deskline.chart import report_svg  # noqa: PLC0415
    from deskline.report import build_report, make_period, open_readonly, parse_when  # noqa: PLC0415
    from deskline.report_export import report_csv, report_json, report_text  # noqa: PLC0415

    if args.chart and Path(args.chart).suffix.lower() != ".svg":
        raise DesklineError(f"--chart {args.chart}: the chart is SVG, name it FILE.svg")
    start = parse_when(args.start, args.tz)
    end = parse_when(args.end, args.tz) if args.end else None
    period = make_period(start, end, tz=args.tz, interval=args.interval)
    as_of = parse_when(args.as_of, args.tz).timestamp() if args.as_of else None
    db = open_readonly(db_path(args))
    try:
        report = build_report(db, args.account, period, now=as_of)
    finally:
        db.close()
    fmt = "json" if args.json else args.format
    if fmt == "json":
        print(json.dumps(report_json(report), indent=2, ensure_ascii=False))
    elif fmt == "csv":
        sys.stdout.write(report_csv(report))
    else:
        sys.stdout.write(report_text(report))
    if args.chart:
        path = Path(args.chart)
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_text(report_svg(report), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as err:
            raise DesklineError(f"cannot write the chart to {path}: {err.strerror}") from err
        print(f"chart: {path}", file=sys.stderr if fmt != "table" else sys.stdout)
    return 0


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], handlers: dict[str, Handler]
) -> None:
    p = sub.add_parser(
        "report",
        help="failure demand and escalation SLA for a client account",
        description=(
            "Contacts by wrap-up code, failure-demand share by cause and interval, "
            "escalations and the client's escalation-SLA compliance, for [--from, --to) "
            "in local time.  See docs/report.md."
        ),
    )
    p.add_argument("--account", required=True, help="account key in the floor config")
    p.add_argument(
        "--from",
        dest="start",
        required=True,
        metavar="WHEN",
        help="YYYY-MM-DD[THH:MM], today or yesterday (local time, included)",
    )
    p.add_argument(
        "--to",
        dest="end",
        metavar="WHEN",
        help="YYYY-MM-DD[THH:MM] (not included; default: the midnight after --from)",
    )
    p.add_argument(
        "--interval",
        choices=["15", "30", "60", "day"],
        help="minutes, or day (default: 60 up to two days, else day)",
    )
    p.add_argument(
        "--as-of",
        metavar="WHEN",
        help="the escalation SLA as it stood at this time (default: now), e.g. a month's close",
    )
    p.add_argument("--tz", help="IANA time zone, e.g. Europe/London (default: this machine's)")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("--json", action="store_true", help="same as --format json")
    p.add_argument("--chart", metavar="FILE.svg", help="also draw the report as an A4 SVG page")
    p.add_argument("--db", help="the daemon's SQLite database (default <state>/deskline.db)")
    p.add_argument(
        "--state", help="state directory (default $DESKLINE_STATE or ~/.local/state/deskline)"
    )
    handlers["report"] = do_report
