"""`deskline supervisor`: who may act from the web dashboard, logins and API tokens.

It edits `<state>/supervisors.json` directly; a running daemon reads the
change on its next request, so there is nothing to restart.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from deskline.errors import DesklineError

if TYPE_CHECKING:
    from deskline.supervisors import Supervisors

Handler = Callable[[argparse.Namespace], int]


def register(sub: argparse._SubParsersAction[Any], handlers: dict[str, Handler]) -> None:
    sv = sub.add_parser(
        "supervisor",
        help="supervisors' logins and API tokens for the web dashboard",
        description="Supervisors log in to the daemon's web dashboard (and may act there: "
        "acknowledge escalations, reboot consoles); scripts use an API token. Changes "
        "count on a running daemon at once.",
    )
    cmds = sv.add_subparsers(dest="supervisor_cmd", required=True)

    def command(name: str, help: str, handler: Handler) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = cmds.add_parser(name, help=help)
        p.add_argument(
            "--state", help="state directory (default $DESKLINE_STATE or ~/.local/state/deskline)"
        )
        p.add_argument("--json", action="store_true")
        handlers[f"supervisor {name}"] = handler
        return p

    add = command("add", "add a supervisor (asks for the password)", do_add)
    add.add_argument("name")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    pw = command("passwd", "change a supervisor's password (ends their sessions)", do_passwd)
    pw.add_argument("name")
    pw.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    rm = command("remove", "remove a supervisor and revoke their tokens", do_remove)
    rm.add_argument("name")
    command("list", "supervisors and API tokens (never the secrets)", do_list)
    tok = command("token", "make an API token for a supervisor (shown once)", do_token)
    tok.add_argument("name")
    tok.add_argument("--label", default="", help="what the token is for, e.g. grafana")
    rv = command("revoke", "revoke an API token", do_revoke)
    rv.add_argument("token_id", help="the token's id (as `list` shows), or the token itself")


def _supervisors(args: argparse.Namespace) -> Supervisors:
    from deskline.cli import _state_dir  # noqa: PLC0415 — keep `deskline --help` fast
    from deskline.supervisors import Supervisors, path_in  # noqa: PLC0415

    return Supervisors(path_in(_state_dir(args)))


def _password(args: argparse.Namespace) -> str:
    """From stdin (one line) with --password-stdin, else asked twice on the terminal."""
    import getpass  # noqa: PLC0415

    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise DesklineError("no terminal to ask the password on: pass it with --password-stdin")
    first = getpass.getpass(f"new password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        raise DesklineError("the passwords differ: nothing changed, try again")
    return first


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def _done(args: argparse.Namespace, reply: dict[str, Any], text: str) -> int:
    print(json.dumps({"ok": True, **reply}, indent=2) if args.json else text)
    return 0


def do_add(args: argparse.Namespace) -> int:
    from deskline.supervisors import check_name  # noqa: PLC0415

    sups = _supervisors(args)
    check_name(args.name)
    if args.name in sups.roster().users:  # before asking for a password in vain
        raise DesklineError(
            f"supervisor {args.name!r} already exists: change the password with "
            f"`deskline supervisor passwd {args.name}`"
        )
    user = sups.add(args.name, _password(args))
    return _done(
        args,
        {"user": user.name, "file": str(sups.path)},
        f"supervisor {user.name} added: they can log in to the dashboard now",
    )


def do_passwd(args: argparse.Namespace) -> int:
    sups = _supervisors(args)
    sups.user(args.name)  # before asking for a password in vain
    user = sups.set_password(args.name, _password(args))
    return _done(
        args,
        {"user": user.name},
        f"password of {user.name} changed: their browser sessions have ended",
    )


def do_remove(args: argparse.Namespace) -> int:
    gone = _supervisors(args).remove(args.name)
    note = f" and {len(gone)} API token(s) revoked" if gone else ""
    return _done(
        args,
        {"user": args.name, "revoked": [t.id for t in gone]},
        f"supervisor {args.name} removed{note}",
    )


def do_list(args: argparse.Namespace) -> int:
    roster = _supervisors(args).roster()
    users = sorted(roster.users.values(), key=lambda u: u.name)
    tokens = sorted(roster.tokens.values(), key=lambda t: (t.owner, t.created))
    if args.json:
        return _done(
            args,
            {
                "supervisors": [
                    {
                        "name": u.name,
                        "created": u.created,
                        "password_changed": u.changed,
                        "tokens": sum(t.owner == u.name for t in tokens),
                    }
                    for u in users
                ],
                "tokens": [
                    {"id": t.id, "owner": t.owner, "label": t.label, "created": t.created}
                    for t in tokens
                ],
            },
            "",
        )
    if not users:
        print("no supervisors yet: add one with `deskline supervisor add NAME`")
        return 0
    width = max(len("supervisor"), *(len(u.name) for u in users))
    print(f"{'supervisor':<{width}}  added             password changed")
    for u in users:
        print(f"{u.name:<{width}}  {_when(u.created)}  {_when(u.changed)}")
    if tokens:
        print(f"\nAPI tokens:\n{'id':<8}  {'owner':<{width}}  created           label")
        for t in tokens:
            print(f"{t.id:<8}  {t.owner:<{width}}  {_when(t.created)}  {t.label}")
    return 0


def do_token(args: argparse.Namespace) -> int:
    entry, token = _supervisors(args).issue_token(args.name, args.label)
    if args.json:
        return _done(
            args,
            {"id": entry.id, "owner": entry.owner, "label": entry.label, "token": token},
            "",
        )
    print(token)  # alone on stdout: TOKEN=$(deskline supervisor token NAME)
    print(
        f"API token {entry.id} for {entry.owner}: shown only now, keep it in your script's "
        f"secrets; send it as `Authorization: Bearer <token>`; "
        f"`deskline supervisor revoke {entry.id}` ends it",
        file=sys.stderr,
    )
    return 0


def do_revoke(args: argparse.Namespace) -> int:
    entry = _supervisors(args).revoke(args.token_id)
    return _done(
        args,
        {"id": entry.id, "owner": entry.owner},
        f"API token {entry.id} of {entry.owner} revoked",
    )
