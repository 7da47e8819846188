"""`deskline flash`: MicroPython and the app onto blank consoles, many at once."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deskline.errors import DesklineError

if TYPE_CHECKING:
    from deskline.flash import ConsoleResult, FlashOptions, Provisioning
    from deskline.fwimage import FirmwareImage

Handler = Callable[[argparse.Namespace], int]


def register(sub: argparse._SubParsersAction[Any], handlers: dict[str, Handler]) -> None:
    fp = sub.add_parser(
        "flash",
        help="flash MicroPython (then the app) onto consoles, many at once",
        description="Detects each console's chip, writes the firmware built for it at that "
        "chip's offset, verifies it by MD5, then deploys the app bundle. Consoles already "
        "at this firmware are not rewritten.",
    )
    fp.add_argument(
        "--firmware",
        action="append",
        required=True,
        metavar="IMG",
        help="MicroPython firmware .bin (the merged image); once per chip on a mixed floor",
    )
    fp.add_argument("--bundle", help="app bundle (`deskline bundle`) to install after flashing")
    fp.add_argument("--port", action="append", default=[], help="a console's port (repeatable)")
    fp.add_argument("--all", action="store_true", help="every console found by USB VID/PID")
    fp.add_argument(
        "--name", help="device name; for several ports a template: desk-{n:02d}, {mac}, {port}"
    )
    fp.add_argument("--board", help="board file (hardware/boards/*.json) to install")
    fp.add_argument("--account", help="the client account the console serves")
    fp.add_argument(
        "--fleet-key", help="the fleet public key consoles trust (default <state>/fleet.pub)"
    )
    fp.add_argument("--baud", type=int, default=460800, help="write speed (connects at 115200)")
    fp.add_argument("--no-stub", action="store_true", help="ROM loader only (slower, uncompressed)")
    fp.add_argument("--connect-attempts", type=int, default=4)
    fp.add_argument(
        "--state", help="state directory (default $DESKLINE_STATE or ~/.local/state/deskline)"
    )
    fp.add_argument("--control", help="the daemon's control socket, for the port hand-over")
    fp.add_argument("--json", action="store_true", help="a JSON report instead of the table")
    handlers["flash"] = do_flash


def do_flash(args: argparse.Namespace) -> int:
    from deskline import flash, ports  # noqa: PLC0415 — keep `deskline --help` fast
    from deskline.cli import _control  # noqa: PLC0415
    from deskline.fwimage import read_image  # noqa: PLC0415

    images = [read_image(Path(p)) for p in args.firmware]
    by_chip: dict[str, str] = {}
    for image in images:
        if image.chip.key in by_chip:
            raise DesklineError(
                f"two firmware images for {image.chip.name}: {by_chip[image.chip.key]} and "
                f"{image.path}; give one per chip"
            )
        by_chip[image.chip.key] = str(image.path)
    names = list(dict.fromkeys(args.port))
    if args.all:
        names += [p.device for p in ports.scan(usb=True) if p.device not in names]
    if not names:
        raise DesklineError(
            "no consoles to flash: name them with --port, or use --all to find them by USB id"
            + ("" if not args.all else " (none found: are they plugged in? `lsusb` lists them)")
        )
    provisioning = None
    if args.bundle:
        if args.name and len(names) > 1 and "{" not in args.name:
            raise DesklineError(
                f"--name {args.name!r} would give {len(names)} consoles one name: use a "
                "template such as desk-{n:02d} or desk-{mac}"
            )
        provisioning = _provisioning(args)
    elif args.name or args.board or args.account:
        raise DesklineError("--name, --board and --account provision the app: add --bundle")
    opts = flash.FlashOptions(
        baud=args.baud,
        stub=not args.no_stub,
        connect_attempts=args.connect_attempts,
        control=_control(args),
        provisioning=provisioning,
    )
    if args.json:
        results = flash.flash_many(names, images, opts)
        report = {
            "ok": all(r.ok for r in results),
            "firmware": [
                {"path": str(i.path), "chip": i.chip.name, "md5": i.md5, "version": i.version}
                for i in images
            ],
            "consoles": [r.as_json() for r in results],
        }
        print(json.dumps(report, indent=2))
    else:
        results = _with_progress(names, images, opts)
    return 0 if all(r.ok for r in results) else 1


def _provisioning(args: argparse.Namespace) -> Provisioning:
    """The bundle (signature checked), the fleet key and the board, read once."""
    from deskline import bundle, flash  # noqa: PLC0415
    from deskline.boardcheck import check_file  # noqa: PLC0415
    from deskline.cli import _state_dir  # noqa: PLC0415

    key_path = Path(args.fleet_key) if args.fleet_key else _state_dir(args) / "fleet.pub"
    fleet_key = bundle.load_public_key(key_path)
    app = bundle.read_bundle(Path(args.bundle))
    app.verify(fleet_key)
    board = None
    if args.board:
        errors = [f for f in check_file(Path(args.board)) if f.level == "error"]
        if errors:
            raise DesklineError(
                f"board file {args.board}: {errors[0].message} "
                f"(`deskline board check {args.board}` lists every problem)"
            )
        board = Path(args.board).read_text(encoding="utf-8")
    return flash.Provisioning(
        bundle=app, fleet_key=fleet_key, name=args.name, board=board, account=args.account
    )


def _with_progress(
    names: list[str], images: list[FirmwareImage], opts: FlashOptions
) -> list[ConsoleResult]:
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        Progress,
        TaskID,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.table import Table  # noqa: PLC0415

    from deskline import flash  # noqa: PLC0415

    console = Console()
    for image in images:
        console.print(f"firmware: {image.describe()}", highlight=False)
    columns = (
        TextColumn("{task.fields[port]:<16}"),
        TextColumn("{task.fields[stage]:<9}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as bars:
        tasks: dict[str, TaskID] = {
            name: bars.add_task(name, total=100, port=name, stage="waiting", detail="")
            for name in names
        }

        def show(e: flash.Event) -> None:
            # The bar is the firmware write; the app's progress shows as text.
            fields: dict[str, Any] = {"stage": e.stage}
            if e.stage == "write":
                fields["completed"] = 100 * e.done
            elif e.stage == "done" or (e.stage == "verify" and e.done):
                fields["completed"] = 100
            detail = f"app {e.done:.0%} {e.text}" if e.stage == "deploy" else e.text
            if detail:
                fields["detail"] = detail
            bars.update(tasks[e.port], **fields)

        results = flash.flash_many(names, images, opts, show)
    table = Table(title="deskline flash")
    table.add_column("port", no_wrap=True)
    table.add_column("chip")
    table.add_column("MAC", no_wrap=True)
    table.add_column("result")
    table.add_column("firmware")
    if opts.provisioning is not None:
        table.add_column("app")
    table.add_column("time", justify="right")
    for r in results:
        style = "green" if r.status == "flashed" else "cyan" if r.ok else "red"
        row = [
            r.port,
            r.chip,
            r.mac,
            f"[{style}]{r.status if r.ok else r.kind or r.status}[/]",
            r.version or Path(r.firmware).name,
        ]
        if opts.provisioning is not None:
            app = r.app or {}
            row.append(str(app.get("status") or app.get("version") or ""))
        table.add_row(*row, f"{r.seconds:.0f}s")
    console.print(table)
    for r in results:
        if not r.ok:
            console.print(f"[red]{r.port}[/]: {r.error}", highlight=False)
    return results
