"""`deskline update`: a signed bundle onto a floor, canaries first, through the daemon."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deskline.errors import DesklineError

Handler = Callable[[argparse.Namespace], int]


def register(sub: argparse._SubParsersAction[Any], handlers: dict[str, Handler]) -> None:
    up = sub.add_parser(
        "update",
        help="roll a signed app bundle (and firmware) out to consoles, canaries first",
        description="The daemon streams the bundle to each console while it keeps working; "
        "the console checks the signature and every file, restarts into the new app on "
        "trial and goes back by itself if it does not come up healthy. Canaries go first; "
        "the first rollback or failure halts the rollout.",
    )
    up.add_argument("--bundle", required=True, help="the bundle (`deskline bundle`)")
    up.add_argument(
        "--firmware",
        nargs="?",
        const=True,
        metavar="IMG",
        help="also update MicroPython through the OTA partitions: the image the bundle signs "
        "(`bundle --firmware`); IMG, if given, must be that image",
    )
    up.add_argument("--console", action="append", help="only this console (repeatable)")
    can = up.add_mutually_exclusive_group()
    can.add_argument("--canary", type=int, default=1, help="how many canaries go first (default 1)")
    can.add_argument(
        "--canary-console", action="append", help="this console is a canary (repeatable)"
    )
    up.add_argument("--parallel", type=int, default=4, help="consoles at once after the canaries")
    up.add_argument("--force", action="store_true", help="also consoles already on this version")
    up.add_argument(
        "--state", help="state directory (default $DESKLINE_STATE or ~/.local/state/deskline)"
    )
    up.add_argument("--control", help="the daemon's control socket (default <state>/deskline.sock)")
    up.add_argument("--json", action="store_true", help="a JSON report instead of the table")
    handlers["update"] = do_update


def do_update(args: argparse.Namespace) -> int:
    import hashlib  # noqa: PLC0415 — keep `deskline --help` fast

    from deskline import control, rollout  # noqa: PLC0415
    from deskline.bundle import read_bundle  # noqa: PLC0415
    from deskline.cli import _control  # noqa: PLC0415

    path = Path(args.bundle).resolve()
    bundle = read_bundle(path)
    firmware: str | bool | None = None
    if args.firmware:
        entry = bundle.firmware_entry(None)
        if isinstance(args.firmware, str):
            data = Path(args.firmware).read_bytes()
            if hashlib.sha256(data).hexdigest() != entry.sha256:
                raise DesklineError(
                    f"{args.firmware} is not the firmware image bundle {bundle.version} signs "
                    f"({entry.name}): rebuild the bundle with `deskline bundle --firmware "
                    f"{args.firmware}`"
                )
        firmware = entry.name
    sock = _control(args)

    def request(req: dict[str, Any]) -> dict[str, Any]:
        return control.request(sock, req, timeout=30)

    status = request({"op": "update_status"})
    if not status.get("ok"):
        raise DesklineError(f"the daemon cannot update consoles: {status.get('error', status)}")
    plan = rollout.make_plan(
        status["consoles"],
        bundle.version,
        only=args.console,
        canary=args.canary,
        canary_ids=args.canary_console,
        force=args.force or bool(firmware),
    )

    def run(on_change: Callable[[dict[str, Any]], None] | None) -> rollout.Report:
        return rollout.run_rollout(
            request,
            str(path),
            bundle.version,
            plan,
            parallel=args.parallel,
            firmware=firmware,
            force=args.force,
            on_change=on_change,
        )

    if args.json:
        report = run(None)
        print(json.dumps(report.as_dict(), indent=2))
    else:
        report = _with_progress(plan, bundle.version, run)
    return 0 if report.ok else 1


def _with_progress(
    plan: Any, version: str, run: Callable[[Callable[[dict[str, Any]], None] | None], Any]
) -> Any:
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        DownloadColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.table import Table  # noqa: PLC0415

    console = Console()
    n = len(plan.canaries)
    console.print(
        f"update to {version}: {n} canar{'y' if n == 1 else 'ies'} then {len(plan.rest)}; "
        f"{len(plan.up_to_date)} up to date, {len(plan.offline)} offline",
        highlight=False,
    )
    columns = (
        TextColumn("{task.fields[device]:<14}"),
        TextColumn("{task.fields[stage]:<10}"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as bars:
        tasks: dict[str, TaskID] = {}
        for d in plan.targets:
            tag = "canary" if d in plan.canaries else "waiting"
            tasks[d] = bars.add_task(d, total=None, start=False, device=d, stage=tag, detail="")
        started: set[str] = set()

        def show(jobs: dict[str, Any]) -> None:
            for d, job in jobs.items():
                if d not in tasks:
                    continue
                if d not in started:
                    started.add(d)
                    bars.start_task(tasks[d])
                if job["state"] in ("done", "failed", "rolled_back", "up_to_date"):
                    bars.stop_task(tasks[d])
                bars.update(
                    tasks[d],
                    total=job["total_bytes"] or None,
                    completed=job["done_bytes"],
                    stage=job["state"],
                    detail=job["error"] or job["file"] or job["stage"],
                )

        report = run(show)
    table = Table(title=f"deskline update {version}")
    for col in ("console", "result", "from", "to", "time", "note"):
        table.add_column(col, no_wrap=col != "note")
    colours = {"updated": "green", "up_to_date": "cyan", "skipped": "yellow", "offline": "yellow"}
    for o in report.outcomes:
        colour = colours.get(o.result, "red")
        table.add_row(
            o.device + (" (canary)" if o.canary else ""),
            f"[{colour}]{o.result.replace('_', ' ')}[/]",
            o.from_version,
            o.to_version,
            f"{o.seconds:.0f}s" if o.seconds else "",
            o.error,
        )
    console.print(table)
    if report.halted:
        console.print(f"[red]rollout halted[/]: {report.halted}", highlight=False)
    return report
