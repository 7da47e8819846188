"""`deskline bundle` and `deskline keygen`: signed app bundles and the fleet key."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deskline.errors import DesklineError

Handler = Callable[[argparse.Namespace], int]


def register(sub: argparse._SubParsersAction[Any], handlers: dict[str, Handler]) -> None:
    kg = sub.add_parser(
        "keygen",
        help="make the fleet key pair that signs app bundles",
        description="Writes fleet.key (Ed25519 private key, PEM, mode 0600: keep it safe, "
        "it signs every update) and fleet.pub (the public key consoles are provisioned with).",
    )
    kg.add_argument("--out", help="directory for fleet.key and fleet.pub (default <state>)")
    kg.add_argument("--force", action="store_true", help="replace an existing key pair")
    _state(kg)
    handlers["keygen"] = do_keygen

    bp = sub.add_parser(
        "bundle",
        help="compile and sign the console app into a bundle",
        description="Compiles firmware/ with mpy-cross for the target, stamps the version, "
        "lists every file's SHA-256 in a manifest and signs it with the fleet key.",
    )
    bp.add_argument(
        "--target",
        default="esp32",
        help="esp32, esp32s3 (xtensawin), sim (this machine's virtual consoles) or an "
        "mpy-cross -march name (default esp32)",
    )
    bp.add_argument("--version", help="app version (default: APP_VERSION in firmware/app.py)")
    bp.add_argument("-o", "--out", help="bundle file (default deskline-<version>-<arch>.dlb)")
    bp.add_argument("--key", help="fleet private key (default <state>/fleet.key)")
    bp.add_argument("--new-key", action="store_true", help="make the fleet key pair if missing")
    bp.add_argument(
        "--firmware", help="a MicroPython app image (micropython.bin) to sign along, for OTA"
    )
    bp.add_argument("--source", help="firmware source directory (default: this package's)")
    _state(bp)
    handlers["bundle"] = do_bundle


def _state(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--state", help="state directory (default $DESKLINE_STATE or ~/.local/state/deskline)"
    )
    p.add_argument("--json", action="store_true")


def do_keygen(args: argparse.Namespace) -> int:
    from deskline import bundle as B  # noqa: PLC0415 — keep `deskline --help` fast
    from deskline.cli import _state_dir  # noqa: PLC0415

    out = Path(args.out) if args.out else _state_dir(args)
    public = B.generate_key(out / "fleet.key", out / "fleet.pub", force=args.force)
    report = {
        "ok": True,
        "private": str(out / "fleet.key"),
        "public": str(out / "fleet.pub"),
        "key_id": B.key_id(public),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"fleet key {report['key_id']}: {report['private']} (keep it safe)")
        print(f"public key for the consoles: {report['public']}")
    return 0


def do_bundle(args: argparse.Namespace) -> int:
    from deskline import bundle as B  # noqa: PLC0415
    from deskline.cli import _state_dir  # noqa: PLC0415

    key_path = Path(args.key) if args.key else _state_dir(args) / "fleet.key"
    made = False
    if args.new_key and not key_path.exists():
        B.generate_key(key_path, key_path.with_suffix(".pub"))
        made = True
    key = B.load_private_key(key_path)
    arch = B.resolve_arch(args.target)
    source = Path(args.source) if args.source else None
    if source is not None and not (source / "app.py").exists():
        raise DesklineError(f"{source} holds no app.py: point --source at a firmware directory")
    bundle = B.build_bundle(
        key,
        arch,
        version=args.version,
        source=source,
        firmware=Path(args.firmware) if args.firmware else None,
    )
    out = Path(args.out) if args.out else Path(f"deskline-{bundle.version}-{arch}.dlb")
    B.write_bundle(bundle, out)
    report = {
        "ok": True,
        "bundle": str(out),
        "version": bundle.version,
        "arch": arch,
        "mpy": bundle.mpy,
        "key_id": bundle.key_id,
        "new_key": str(key_path) if made else None,
        "files": len(bundle.entries),
        "bytes": bundle.size,
        "firmware": [e.name for e in bundle.firmware_entries],
    }
    images = [e.name for e in bundle.firmware_entries]
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        if made:
            print(f"made the fleet key pair {key_path} (+ .pub): provision consoles with the .pub")
        extra = f", firmware {', '.join(images)}" if images else ""
        print(
            f"{out}: app {bundle.version} for {arch} (mpy {bundle.mpy}), {len(bundle.entries)} "
            f"files, {bundle.size} bytes{extra}, signed by fleet key {bundle.key_id}"
        )
    return 0
