"""`deskline escalation`: the supervisor's view of escalations and help requests.

    deskline escalation list [--open] [--json]
    deskline escalation ack EXT_ID [--ticket T] [--note N] [--json]
    deskline escalation resolve EXT_ID [--ticket T] [--note N] [--json]
    deskline escalation policy FLOOR.toml [--json]

list/ack/resolve go through the daemon's control socket, so the desk's light
follows at once; listing open help requests counts as showing them to a
supervisor (they become "delivered").  `policy` reads a floor file here and
shows each account's deadlines, clock and webhook, and whether its secret
can be read in this environment.
"""

from __future__ import annotations

import argparse
import getpass
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deskline import escpolicy
from deskline.errors import DesklineError

Handler = Callable[[argparse.Namespace], int]


def register(sub: argparse._SubParsersAction[Any], handlers: dict[str, Handler]) -> None:
    esc = sub.add_parser(
        "escalation", help="escalations and help requests: list, acknowledge, resolve"
    ).add_subparsers(dest="escalation_cmd", required=True)

    from deskline.cli import control_opts  # noqa: PLC0415  (cli imports this module)

    ls = esc.add_parser("list", help="escalations and help requests, newest first")
    ls.add_argument("--open", action="store_true", help="only those not resolved or cancelled")
    control_opts(ls)
    handlers["escalation list"] = do_list
    for action in ("ack", "resolve"):
        p = esc.add_parser(
            action,
            help=f"{'acknowledge' if action == 'ack' else 'resolve'} one, as the supervisor",
        )
        p.add_argument("ext_id", help="the escalation's id, e.g. DL-desk-03-1-57")
        p.add_argument("--ticket", default="", help="the client's ticket reference")
        p.add_argument("--note", default="", help="why, for the escalation's history")
        control_opts(p)
        handlers[f"escalation {action}"] = do_answer
    po = esc.add_parser("policy", help="each account's escalation SLA and delivery, from a floor")
    po.add_argument("floor", help="floor configuration (TOML)")
    po.add_argument("--json", action="store_true")
    handlers["escalation policy"] = do_policy


def _ask(args: argparse.Namespace, req: dict[str, Any]) -> dict[str, Any]:
    from deskline import control  # noqa: PLC0415
    from deskline.cli import _control  # noqa: PLC0415

    return control.request(_control(args), req)


def _fail(args: argparse.Namespace, reply: dict[str, Any]) -> int:
    if args.json:
        print(json.dumps(reply, indent=2, default=str))
    else:
        print(f"deskline: {reply.get('error') or reply}", flush=True)
    return 1


def do_list(args: argparse.Namespace) -> int:
    reply = _ask(
        args,
        {"op": "escalations", "open": args.open, "viewer": "supervisor", "by": _who()},
    )
    if not reply.get("ok"):
        return _fail(args, reply)
    if args.json:
        print(json.dumps(reply["escalations"], indent=2, default=str))
        return 0
    rows = reply["escalations"]
    if not rows:
        print("no open escalations" if args.open else "no escalations")
        return 0
    print(
        f"{'ID':<24} {'STATUS':<12} {'KIND':<6} {'SEV':<6} {'DESK':<10} {'ACCOUNT':<10} "
        f"{'RAISED':<8} {'DUE IN':>8}  BREACHED"
    )
    for r in rows:
        sev = escpolicy.SEVERITIES.get(r["severity"], str(r["severity"]))
        kind = "help" if r["kind"] == "floor_help" else "client"
        left = r["left_s"]
        due = "" if left is None else _span(left)
        raised = time.strftime("%H:%M:%S", time.localtime(r["raised"]))
        print(
            f"{r['ext_id']:<24} {r['status']:<12} {kind:<6} {sev:<6} {r['desk'] or '-':<10} "
            f"{r['account'] or '-':<10} {raised:<8} {due:>8}  {','.join(r['breached']) or '-'}"
        )
    return 0


def _span(seconds: int) -> str:
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    if s >= 3600:
        return f"{sign}{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{sign}{s // 60}m{s % 60:02d}s"


def do_answer(args: argparse.Namespace) -> int:
    op = "escalation_ack" if args.escalation_cmd == "ack" else "escalation_resolve"
    reply = _ask(
        args,
        {"op": op, "ext_id": args.ext_id, "ticket": args.ticket, "note": args.note, "by": _who()},
    )
    if not reply.get("ok"):
        return _fail(args, reply)
    if args.json:
        print(json.dumps(reply, indent=2, default=str))
        return 0
    esc = reply["escalation"]
    what = "unchanged" if not reply["changed"] else esc["status"]
    late = f" (missed: {', '.join(esc['breached'])})" if esc["breached"] else ""
    print(f"{esc['ext_id']}: {what}{late}")
    return 0


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "?"


def do_policy(args: argparse.Namespace) -> int:
    from deskline.escalations import build_policies  # noqa: PLC0415
    from deskline.floorconfig import FloorConfigError, load_floor  # noqa: PLC0415

    try:
        floor = load_floor(Path(args.floor))
    except FloorConfigError as e:
        if args.json:
            print(json.dumps({"ok": False, "problems": list(e.problems)}, indent=2))
        else:
            print("\n".join(e.problems))
        return 1
    policies, findings = build_policies(floor)
    out: dict[str, Any] = {"ok": not any(not f.warning for f in findings), "policies": {}}
    named = [(f"accounts.{k}", p) for k, p in policies.accounts.items()]
    for name, p in [*named, ("help", policies.help)]:
        out["policies"][name] = {
            "deadlines": {
                escpolicy.SEVERITIES[s]: {
                    "ack": escpolicy.format_duration(d.ack_s),
                    "resolve": escpolicy.format_duration(d.resolve_s),
                }
                for s, d in sorted(p.deadlines.items())
            },
            "clock": p.hours.describe(),
            "webhook": p.webhook.url if p.webhook else None,
            "secret": p.webhook.secret.describe() if p.webhook else None,
            "repeat_days": p.repeat_days,
        }
    out["findings"] = [
        {"path": f.path, "message": f.message, "warning": f.warning} for f in findings
    ]
    if args.json:
        print(json.dumps(out, indent=2))
        return 0 if out["ok"] else 1
    for name, p in out["policies"].items():
        none = "no webhook (shown to supervisors)" if name == "help" else "no webhook (hotline)"
        hook = f"{p['webhook']} (secret {p['secret']})" if p["webhook"] else none
        print(f"{name}: {p['clock']}; {hook}")
        for sev, d in p["deadlines"].items():
            if name == "help" and sev != "urgent":
                break
            label = "all" if name == "help" else sev
            print(f"  {label:<7} acknowledge within {d['ack']:<7} resolve within {d['resolve']}")
    for f in findings:
        print(f"{'warning' if f.warning else 'error'}: {f}")
    if not out["ok"]:
        raise DesklineError("a webhook secret cannot be read here: see the errors above")
    return 0
