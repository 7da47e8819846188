"""`deskline sla` and `deskline erlang`: service level from a queue_log, staffing by Erlang C.

    deskline sla --queue-log FILE --interval MIN --threshold SEC [--short-abandon SEC]
                 [--tz ZONE] [--queue Q] [--json]
    deskline erlang --calls N --interval MIN --aht SEC --target PCT/SEC
                 [--shrinkage F] [--json]

`sla` replays a whole file (no daemon needed): every queue, every interval
with calls, each day's total, every figure and every service-level variant
of docs/metrics.md.  Lines it could not use go to stderr with their numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import tzinfo
from pathlib import Path
from typing import Any

from deskline import erlang
from deskline.errors import DesklineError

Handler = Callable[[argparse.Namespace], int]
# The SL variants in the order of the table's columns (VARIANTS order).
_SHORT = (
    "answered",
    "abandons_negative",
    "abandons_ignored",
    "short_excluded",
    "abandons_positive",
)
_SHOWN_PROBLEMS = 20


def register(sub: argparse._SubParsersAction[Any], handlers: dict[str, Handler]) -> None:
    sl = sub.add_parser(
        "sla",
        help="service level per queue and interval: live from the daemon, or from a queue_log",
    )
    sl.add_argument(
        "--queue-log",
        metavar="FILE",
        help="read this queue_log (without it: ask the running daemon for the live figures)",
    )
    sl.add_argument("--interval", type=int, default=30, metavar="MIN", help="15, 30 or 60 minutes")
    sl.add_argument(
        "--threshold",
        type=int,
        default=20,
        metavar="SEC",
        help="answered (or abandoned) within this many seconds counts in SL (inclusive)",
    )
    sl.add_argument(
        "--short-abandon",
        type=int,
        default=0,
        metavar="SEC",
        help="abandons within this many seconds are short (default 0: none)",
    )
    sl.add_argument("--tz", help="IANA time zone of the intervals (default: this machine's)")
    sl.add_argument("--queue", action="append", help="only this queue (repeatable)")
    sl.add_argument("--json", action="store_true")
    sl.add_argument("--state", help="state directory of the daemon (live figures)")
    sl.add_argument("--control", help="the daemon's control socket (live figures)")
    handlers["sla"] = do_sla

    er = sub.add_parser("erlang", help="agents needed for a service-level target (Erlang C)")
    er.add_argument("--calls", required=True, type=float, metavar="N", help="calls per interval")
    er.add_argument("--interval", required=True, type=float, metavar="MIN", help="minutes")
    er.add_argument(
        "--aht", required=True, type=float, metavar="SEC", help="average handle time, seconds"
    )
    er.add_argument(
        "--target", required=True, metavar="PCT/SEC", help="e.g. 80/20: 80%% within 20 s"
    )
    er.add_argument(
        "--shrinkage",
        default="0",
        metavar="F",
        help="share of rostered time off the phones: 0.3 or 30%% (default 0)",
    )
    er.add_argument("--json", action="store_true")
    handlers["erlang"] = do_erlang


# --- sla ----------------------------------------------------------------------------------


def do_live_sla(args: argparse.Namespace) -> int:
    """The daemon's own figures: each queue and account with its contract's variant."""
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    from deskline import control  # noqa: PLC0415
    from deskline.cli import _control  # noqa: PLC0415

    reply = control.request(_control(args), {"op": "sla"})
    if args.json:
        print(json.dumps(reply, indent=2, default=str))
        return 0
    out = Console() if sys.stdout.isatty() else Console(width=200)
    table = Table(title=f"service level now ({reply['interval_min']} min intervals)")
    for col in (
        "queue/account",
        "variant",
        "SL interval",
        "SL today",
        "offered today",
        "answered",
        "abandoned",
        "ASA",
        "waiting",
    ):
        table.add_column(col, no_wrap=True)
    for kind in ("accounts", "queues"):
        for name, v in sorted(reply[kind].items()):
            cur, today = v["current"], v["today"]
            variant = v["variant"]
            table.add_row(
                name if kind == "queues" else f"[bold]{name}[/bold]",
                variant,
                _pct_sign(cur["sl"][variant]),
                _pct_sign(today["sl"][variant]),
                str(today["offered"]),
                str(today["answered"]),
                str(today["abandoned"]),
                "-" if today["asa_s"] is None else f"{today['asa_s']:.0f}s",
                str(v["waiting"]),
            )
    out.print(table)
    if not reply.get("caught_up"):
        out.print("the daemon is still reading the queue_log from its start")
    return 0


def _pct_sign(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}%"


def do_sla(args: argparse.Namespace) -> int:
    if not args.queue_log:
        return do_live_sla(args)
    from deskline import queuelog  # noqa: PLC0415
    from deskline.servicelevel import QUEUE, Ignored, Scope, ServiceLevel, Thresholds  # noqa: PLC0415

    if args.interval <= 0 or 1440 % args.interval:
        raise DesklineError(
            f"--interval {args.interval}: use minutes that divide a day: 15, 30, 60"
        )
    if args.threshold < 0 or args.short_abandon < 0:
        raise DesklineError("--threshold and --short-abandon are seconds, 0 or more")
    tz = _zone(args.tz)
    engine = ServiceLevel(
        interval_min=args.interval,
        tz=tz,
        default=Thresholds(args.threshold, args.short_abandon),
        keep_days=None,
    )
    parser = queuelog.QueueLogParser()
    ignored: list[tuple[int, str]] = []
    for rec in queuelog.replay(Path(args.queue_log), parser):
        for h in engine.feed(rec):
            if isinstance(h, Ignored):
                ignored.append((h.record.line, h.reason))
    wanted = set(args.queue or ())
    queues = sorted(
        s.name for s in engine.scopes() if s.kind == QUEUE and (not wanted or s.name in wanted)
    )
    if wanted - set(queues):
        missing = ", ".join(sorted(wanted - set(queues)))
        raise DesklineError(f"{args.queue_log}: no calls in queue {missing}")
    report = {
        q: {
            "intervals": [_row(s, engine) for s in engine.history(Scope(QUEUE, q))],
            "days": [_row(s, engine) for s in engine.days(Scope(QUEUE, q))],
        }
        for q in queues
    }
    open_calls = engine.open_calls()
    if args.json:
        print(
            json.dumps(
                {
                    "file": args.queue_log,
                    "interval_min": args.interval,
                    "threshold_s": args.threshold,
                    "short_abandon_s": args.short_abandon,
                    "tz": args.tz or "local",
                    **parser.summary(),
                    "problems": [
                        {"line": p.line, "reason": p.reason, "text": p.text}
                        for p in parser.problems
                    ],
                    "ignored_lines": [{"line": n, "reason": r} for n, r in ignored],
                    "open_calls": open_calls,
                    "queues": report,
                },
                indent=2,
            )
        )
    else:
        _print_tables(report, args)
    _warn(args.queue_log, parser, ignored, open_calls)
    return 0


def _zone(name: str | None) -> tzinfo | None:
    if not name:
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # noqa: PLC0415

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise DesklineError(
            f"--tz {name}: not a time zone; use an IANA name such as Europe/London"
        ) from None


def _row(stats: Any, engine: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"label": engine.clock.label(stats.start)}
    d.update(stats.to_dict())
    return d


def _print_tables(report: dict[str, Any], args: argparse.Namespace) -> None:
    from rich import box  # noqa: PLC0415
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    out = Console()
    if not report:
        out.print(f"{args.queue_log}: no calls")

    def table(title: str, heads: tuple[str, ...]) -> Table:
        t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        for i, head in enumerate(heads):
            t.add_column(head, justify="left" if i == 0 else "right")
        return t

    for queue, data in report.items():
        days = {d["label"][:10]: d for d in data["days"]}
        for day, total in days.items():
            rows = [r for r in data["intervals"] if r["label"].startswith(day)]
            where = f"queue {queue}, {day}"
            figures = table(f"{where}, {args.interval}-minute intervals", _FIGURES)
            levels = table(f"{where}: service level % within {args.threshold} s", _LEVELS)
            for row, label, style in [
                *((r, r["label"][11:], "") for r in rows),
                (total, "day", "bold"),
            ]:
                figures.add_row(*_figures(row, label), style=style)
                levels.add_row(label, *(_pct(row["sl"][v]) for v in _SHORT), style=style)
            out.print(figures)
            out.print(levels)
    out.print(
        "off offered, ans answered, abd abandoned (any exit unanswered), ≤T within the "
        "threshold, short short abandons, max longest wait.\n"
        "SL ans = A_in/A (Asterisk SL); neg = A_in/(A+B); ign = A_in/(offered-B_in); "
        "short = A_in/(A+B-S); pos = (A_in+B_in)/(A+B) (Asterisk SL2).  See docs/metrics.md."
    )


_FIGURES = ("from", "off", "ans", "≤T", "abd", "≤T", "short", "abd%", "ASA", "AHT", "max")
_LEVELS = ("from", "ans", "neg", "ign", "short", "pos")


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def _figures(row: dict[str, Any], label: str) -> list[str]:
    def secs(v: float | None) -> str:
        return "-" if v is None else f"{v:.0f}s"

    return [
        label,
        str(row["offered"]),
        str(row["answered"]),
        str(row["answered_in"]),
        str(row["abandoned"]),
        str(row["abandoned_in"]),
        str(row["short_abandons"]),
        _pct(row["abandon_rate_pct"]),
        secs(row["asa_s"]),
        secs(row["aht_s"]),
        secs(row["longest_wait_s"]),
    ]


def _n(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _warn(path: str, parser: Any, ignored: list[tuple[int, str]], open_calls: int) -> None:
    err = sys.stderr
    if parser.problem_count:
        print(
            f"deskline: {path}: {_n(parser.problem_count, 'line')} skipped "
            f"({parser.malformed} malformed, {_n(parser.unknown, 'unknown event')}):",
            file=err,
        )
        for p in parser.problems[:_SHOWN_PROBLEMS]:
            print(f"  line {p.line}: {p.reason}: {p.text!r}", file=err)
        if parser.problem_count > _SHOWN_PROBLEMS:
            print(f"  ... and {parser.problem_count - _SHOWN_PROBLEMS} more", file=err)
    if ignored:
        print(f"deskline: {path}: {_n(len(ignored), 'line')} changed no call:", file=err)
        for n, reason in ignored[:_SHOWN_PROBLEMS]:
            print(f"  line {n}: {reason}", file=err)
        if len(ignored) > _SHOWN_PROBLEMS:
            print(f"  ... and {len(ignored) - _SHOWN_PROBLEMS} more", file=err)
    if open_calls:
        print(
            f"deskline: {path}: {_n(open_calls, 'call')} still open at the end of the file "
            "(counted once answered or gone from the queue)",
            file=err,
        )


# --- erlang -------------------------------------------------------------------------------


def do_erlang(args: argparse.Namespace) -> int:
    try:
        target_pct, target_s = erlang.parse_target(args.target)
        shrinkage = _shrinkage(args.shrinkage)
        s = erlang.staffing(args.calls, args.interval, args.aht, target_pct, target_s, shrinkage)
    except ValueError as e:
        raise DesklineError(str(e)) from None
    a = s.traffic_erlangs
    rows = [
        erlang.predict(n, a, args.aht, target_s)
        for n in range(max(1, s.agents - 2), s.agents + 3)
        if n > a
    ]
    if args.json:
        d = s.to_dict()
        d["table"] = [vars(r) for r in rows]
        print(json.dumps(d, indent=2))
        return 0
    print(
        f"{s.calls:g} calls in {s.interval_min:g} min, AHT {s.aht_s:g} s: "
        f"{a:.2f} Erlangs of traffic"
    )
    rostered = f" ({s.scheduled} rostered at {shrinkage * 100:g}% shrinkage)" if shrinkage else ""
    print(f"{target_pct:g}% within {target_s:g} s needs {s.agents} agents on the phones{rostered}")
    print(
        f"  predicted: SL {s.sl_pct:.1f}%, ASA {s.asa_s:.1f} s, "
        f"P(wait) {s.p_wait_pct:.1f}%, occupancy {s.occupancy_pct:.1f}%"
    )
    if s.high_occupancy:
        print(
            f"  occupancy over {erlang.HIGH_OCCUPANCY_PCT:g}%: agents get no breathing space; "
            "consider more"
        )
    print("  agents  SL %   ASA s  P(wait) %  occupancy %")
    for r in rows:
        mark = "*" if r.agents == s.agents else " "
        print(
            f" {mark}{r.agents:6d} {r.sl_pct:6.1f} {r.asa_s:7.1f} {r.p_wait_pct:10.1f} "
            f"{r.occupancy_pct:12.1f}"
        )
    return 0


def _shrinkage(text: str) -> float:
    t = text.strip()
    try:
        value = float(t.rstrip("%")) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise ValueError(
            f"--shrinkage {text!r}: give a fraction (0.3) or a percent (30%)"
        ) from None
    if not 0 <= value < 1:
        raise ValueError(
            f"--shrinkage {text!r}: the share of time off the phones, from 0 up to "
            "(not including) 1, or as a percent under 100%"
        )
    return value
