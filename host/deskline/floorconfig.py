"""The floor configuration file: which console sits at which desk, for which client.

The file is TOML (`docs/floor-config.md`) because site technicians and team
leaders edit it by hand.  Every problem in it is reported at once, each naming
the file, the TOML key path and what to change, so one edit fixes them all
instead of one per reload.  Each account's console config is checked by the
firmware's own rules (`firmware/cfgcheck.py`), so a floor that loads is one
every console will take.

`FloorWatcher` lets the daemon pick up edits while it runs without ever
falling over on a bad, missing or half-written file: it keeps the last good
floor and hands back what is wrong.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import os
import re
import stat
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deskline import escpolicy, tomlkind
from deskline.errors import DesklineError
from deskline.firmware import cfgcheck
from deskline.floormodel import Account, Agent, Desk, Floor, Queue, WrapCode

# Tables an account may carry for features with their own settings (the
# escalation SLA): kept as Account.extra[name] and checked by that feature's
# module (deskline.escpolicy).  Any other unknown key is a typo and an error,
# so a misspelt setting never silently does nothing.
EXTENSION_TABLES = ("escalation",)

MAX_NAME = cfgcheck.MAX_LABEL  # account name on the console, bytes
MAX_LABEL = cfgcheck.MAX_LABEL  # wrap-up label on the console, bytes
MAX_HOTLINE = 32  # bytes, cfgcheck's limit
MAX_CODE = 99  # two keypad digits
MAX_POSITION = 999  # rows and columns of the floor plan
MAX_SHORT_ABANDON_S = 3600

TOP_KEYS = ("floor", "accounts", "queues", "agents", "desks", "help")
FLOOR_KEYS = ("name",)
ACCOUNT_KEYS = (
    "name",
    "mode",
    "acw_s",
    "fallback",
    "hotline",
    "severity",
    "brightness",
    "keepalive_s",
    "heartbeat_s",
    "sl",
    "codes",
    *EXTENSION_TABLES,
)
SL_KEYS = ("target_pct", "threshold_s", "amber_pct", "short_abandon_s", "variant", "shrinkage_pct")
# The service-level formulas a contract may name (docs/metrics.md).
SL_VARIANTS = (
    "answered",
    "abandons_negative",
    "abandons_ignored",
    "short_excluded",
    "abandons_positive",
)
DEFAULT_SL_VARIANT = "short_excluded"
CODE_KEYS = ("code", "label", "failure_demand")
QUEUE_KEYS = ("account",)
AGENT_KEYS = ("name",)
DESK_KEYS = ("console", "account", "agent", "queues", "row", "col")

# Names of accounts, queues, agents and desks appear in logs, commands and
# key paths: TOML bare keys keep them unquoted everywhere.
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Console device ids: the hex chip id on a real console, "desk-07" in the sim.
_DEVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_DECLARED_TWICE = re.compile(r"Cannot declare (?P<keys>\(.*\)) twice")
_AT_END = " (at end of document)"
_TOML_POSITION = re.compile(r"^(?P<msg>.*) \(at line (?P<line>\d+), column (?P<col>\d+)\)$")
# The console's 8x8 font draws printable ASCII only; anything else shows as a block.
_DISPLAYABLE = re.compile(r"[ -~]*")
_LIST_LIMIT = 8


class FloorConfigError(DesklineError):
    """A floor file that cannot be used; `problems` lists every one found."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        if len(self.problems) == 1:
            text = self.problems[0]
        else:
            text = f"{len(self.problems)} problems in the floor configuration:\n  " + (
                "\n  ".join(self.problems)
            )
        super().__init__(text)


# --- loading


def load_floor(path: str | os.PathLike[str]) -> Floor:
    """Reads and checks a floor file; raises FloorConfigError listing every problem."""
    source = os.fspath(path)
    try:
        data = Path(source).read_bytes()
    except OSError as e:
        raise FloorConfigError([f"{source}: cannot read: {_os_reason(e)}"]) from e
    return _parse_bytes(data, source)


def parse_floor(text: str, source: str = "<string>") -> Floor:
    """Checks floor TOML given as text; `source` names it in the messages."""
    return _parse(text, source, hashlib.sha256(text.encode()).hexdigest())


def _parse_bytes(data: bytes, source: str) -> Floor:
    # Editors on Windows save UTF-8 with a byte-order mark: accept it.
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise FloorConfigError(
            [f"{source}: not UTF-8 text (bad byte at offset {e.start}): save the file as UTF-8"]
        ) from e
    return _parse(text, source, hashlib.sha256(data).hexdigest())


def _parse(text: str, source: str, sha256: str) -> Floor:
    doc = _toml(text, source)
    rep = _Report(source)
    _check_keys(doc, TOP_KEYS, "", rep, table=True)
    name = _floor_name(doc.get("floor"), rep)
    accounts, account_keys = _accounts(doc.get("accounts"), rep)
    queues, queue_names = _queues(doc.get("queues"), account_keys, rep)
    agents, agent_ids = _agents(doc.get("agents"), rep)
    refs = _Refs(account_keys, queues, queue_names, agents, agent_ids)
    desks = _desks(doc.get("desks"), refs, rep)
    extra = _floor_help(doc.get("help"), rep)
    if rep.messages:
        raise FloorConfigError(rep.messages)
    return Floor(
        name=name,
        accounts=accounts,
        queues=queues,
        agents=agents,
        desks=desks,
        sha256=sha256,
        extra=extra,
    )


def _toml(text: str, source: str) -> dict[str, Any]:
    """The TOML document; a syntax error names the line and quotes it."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise FloorConfigError([_syntax_message(str(e), text, source)]) from e


def _syntax_message(error: str, text: str, source: str) -> str:
    if error.endswith(_AT_END):
        msg = _lower_first(error.removesuffix(_AT_END))
        return f"{source}: end of file: TOML syntax: {msg} (is the file cut short?)"
    m = _TOML_POSITION.match(error)
    if m is None:
        return f"{source}: TOML syntax: {_lower_first(error)}"
    line_no = int(m["line"])
    lines = text.split("\n")  # TOML's only line break (splitlines knows others)
    quoted = ""
    if 1 <= line_no <= len(lines) and lines[line_no - 1].strip():
        quoted = f" (the line reads: {lines[line_no - 1].strip()[:60]})"
    return (
        f"{source}: line {line_no}, column {m['col']}: TOML syntax: "
        f"{_readable_toml_error(m['msg'])}{quoted}"
    )


def _readable_toml_error(msg: str) -> str:
    """tomllib names tables as Python tuples; a technician knows them as [a.b]."""
    m = _DECLARED_TWICE.fullmatch(msg)
    if m is None:
        return _lower_first(msg)
    try:
        keys = ast.literal_eval(m["keys"])
    except (ValueError, SyntaxError):
        keys = None
    if not isinstance(keys, tuple):
        return _lower_first(msg)
    table = ".".join(_join("", str(k)) for k in keys)
    return f"[{table}] is declared twice: keep one and merge the keys"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _os_reason(e: OSError) -> str:
    return (e.strerror or str(e)).lower()


# --- problem reporting


class _Report:
    """Collects problems as `source: key.path: what is wrong`."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.messages: list[str] = []

    def add(self, where: str, text: str) -> None:
        prefix = f"{self.source}: {where}" if where else self.source
        self.messages.append(f"{prefix}: {text}")

    def __len__(self) -> int:
        return len(self.messages)


def _join(where: str, key: str) -> str:
    """A TOML key path; keys that are not bare keys are quoted as TOML would."""
    part = key if _BARE_KEY.fullmatch(key) else _toml_string(key)
    return f"{where}.{part}" if where else part


def _unknown(kind: str, value: str, known: Sequence[str]) -> str:
    """Names what was meant: the short list of choices, or the nearest one."""
    text = f'unknown {kind} "{value}"'
    if not known:
        return f"{text} (no {kind}s are defined)"
    if len(known) <= _LIST_LIMIT:
        return f"{text} ({kind}s: {', '.join(known)})"
    close = difflib.get_close_matches(value, known, n=1)
    if close:
        return f'{text} (did you mean "{close[0]}"?)'
    return f"{text} ({len(known)} {kind}s are defined, none like it)"


def _check_keys(
    tbl: Mapping[str, Any], allowed: Sequence[str], where: str, rep: _Report, table: bool = False
) -> None:
    """Flags misspelt keys: a setting under a wrong name would otherwise do nothing."""
    kind = "table" if table else "key"
    for key in tbl:
        if key in allowed:
            continue
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f'did you mean "{close[0]}"?' if close else f"{kind}s: {', '.join(allowed)}"
        rep.add(_join(where, key), f"unknown {kind} ({hint})")


def _table(value: Any, where: str, rep: _Report) -> dict[str, Any] | None:
    if value is None:
        return {}
    if not isinstance(value, dict):
        rep.add(where, f"must be a table ([{where}]), not {tomlkind.kind(value)}")
        return None
    return value


def _tables(value: Any, where: str, rep: _Report, kind: str) -> dict[str, dict[str, Any]]:
    """The named tables under `where` (e.g. [desks.desk-01]) with good names."""
    outer = _table(value, where, rep)
    out: dict[str, dict[str, Any]] = {}
    for key, inner in (outer or {}).items():
        path = _join(where, key)
        if not _NAME.fullmatch(key):
            rep.add(path, f"{kind} name must be 1-64 letters, digits, '-' or '_'")
            continue
        if not isinstance(inner, dict):
            rep.add(path, f"must be a table ([{path}]), not {tomlkind.kind(inner)}")
            continue
        out[key] = inner
    return out


# --- typed values: each reports under its own key path and returns a usable default


def _str(tbl: Mapping[str, Any], key: str, where: str, rep: _Report, default: str) -> str:
    value = tbl.get(key, default)
    if not isinstance(value, str):
        rep.add(_join(where, key), f"must be a string in quotes, not {tomlkind.kind(value)}")
        return default
    return value


def _required_str(
    tbl: Mapping[str, Any], key: str, where: str, rep: _Report, what: str
) -> str | None:
    if key not in tbl:
        rep.add(_join(where, key), f"missing: {what}")
        return None
    value = tbl[key]
    if not isinstance(value, str) or not value.strip():
        rep.add(_join(where, key), f"must be a non-empty string: {what}")
        return None
    return value


def _int(
    tbl: Mapping[str, Any],
    key: str,
    where: str,
    rep: _Report,
    default: int,
    span: tuple[int, int] | None = None,
) -> int:
    value = tbl.get(key, default)
    # bool is an int in Python; `acw_s = true` is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        rep.add(_join(where, key), f"must be a whole number, not {tomlkind.kind(value)}")
        return default
    if span is not None and not span[0] <= value <= span[1]:
        rep.add(_join(where, key), f"must be {span[0]}..{span[1]}, not {value}")
        return default
    return value


def _bool(tbl: Mapping[str, Any], key: str, where: str, rep: _Report, default: bool) -> bool:
    value = tbl.get(key, default)
    if not isinstance(value, bool):
        rep.add(_join(where, key), f"must be true or false (no quotes), not {tomlkind.kind(value)}")
        return default
    return value


def _str_list(tbl: Mapping[str, Any], key: str, where: str, rep: _Report) -> list[str]:
    value = tbl.get(key, [])
    path = _join(where, key)
    if not isinstance(value, list):
        rep.add(path, f'must be a list of names, e.g. ["a", "b"], not {tomlkind.kind(value)}')
        return []
    out: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, str):
            rep.add(f"{path}[{i}]", f"must be a string in quotes, not {tomlkind.kind(item)}")
            continue
        out.append(item)
    return out


def _displayable(text: str, limit: int, where: str, rep: _Report) -> bool:
    """Text the console shows: its font has printable ASCII only, its buffers `limit` bytes."""
    if not _DISPLAYABLE.fullmatch(text):
        bad = next(ch for ch in text if not _DISPLAYABLE.fullmatch(ch))
        rep.add(
            where,
            f"{_toml_string(text)} has {_toml_string(bad)}, which the console's display "
            "cannot show: use plain ASCII letters, digits and punctuation",
        )
        return False
    size = len(text.encode())
    if size > limit:
        rep.add(
            where,
            f"{_toml_string(text)} is {size} bytes; a console takes at most {limit}",
        )
        return False
    return True


# --- [floor]


def _floor_name(value: Any, rep: _Report) -> str:
    if value is None:
        rep.add("floor", 'missing: a [floor] table with name = "..." (shown to supervisors)')
        return ""
    tbl = _table(value, "floor", rep)
    if tbl is None:
        return ""
    _check_keys(tbl, FLOOR_KEYS, "floor", rep)
    return _required_str(tbl, "name", "floor", rep, "the floor's name, shown to supervisors") or ""


# --- [accounts.<key>]


def _accounts(value: Any, rep: _Report) -> tuple[dict[str, Account], list[str]]:
    """The good accounts, and every account key defined (so a desk on a broken
    account is not also reported as naming an unknown one)."""
    tables = _tables(value, "accounts", rep, "account")
    accounts: dict[str, Account] = {}
    for key, tbl in tables.items():
        account = _account(key, tbl, rep)
        if account is not None:
            accounts[key] = account
    return accounts, list(tables)


def _account(key: str, tbl: Mapping[str, Any], rep: _Report) -> Account | None:
    where = _join("accounts", key)
    before = len(rep)
    _check_keys(tbl, ACCOUNT_KEYS, where, rep)
    name = _required_str(tbl, "name", where, rep, "the client's name, shown at the desk")
    if name is not None:
        _displayable(name, MAX_NAME, _join(where, "name"), rep)
    hotline = _str(tbl, "hotline", where, rep, cfgcheck.DEFAULT["hotline"])
    _displayable(hotline, MAX_HOTLINE, _join(where, "hotline"), rep)
    settings: dict[str, Any] = {
        "mode": _str(tbl, "mode", where, rep, cfgcheck.DEFAULT["mode"]),
        **{
            k: _int(tbl, k, where, rep, cfgcheck.DEFAULT[k])
            for k in ("acw_s", "fallback", "brightness", "severity", "keepalive_s", "heartbeat_s")
        },
    }
    sl = _sl(tbl.get("sl"), _join(where, "sl"), rep)
    codes = _codes(tbl.get("codes"), _join(where, "codes"), rep)
    extra = _extra(tbl, where, rep)
    if len(rep) > before or name is None:
        return None
    config = _console_config(name, hotline, settings, sl, codes)
    if not _console_rules_pass(config, where, rep):
        return None
    return Account(
        key=key,
        name=name,
        codes=codes,
        console_config=config,
        sl_target_pct=sl["target_pct"],
        sl_threshold_s=sl["threshold_s"],
        sl_amber_pct=sl["amber_pct"],
        short_abandon_s=sl["short_abandon_s"],
        sl_variant=sl["variant"],
        shrinkage_pct=sl["shrinkage_pct"],
        hotline=hotline,
        extra=extra,
    )


def _sl(value: Any, where: str, rep: _Report) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "short_abandon_s": 5,
        "variant": DEFAULT_SL_VARIANT,
        "shrinkage_pct": 30,
        **cfgcheck.DEFAULT["sl"],
    }
    tbl = _table(value, where, rep)
    if tbl is None:
        return defaults
    _check_keys(tbl, SL_KEYS, where, rep)
    sl: dict[str, Any] = {
        k: _int(tbl, k, where, rep, defaults[k]) for k in ("target_pct", "threshold_s", "amber_pct")
    }
    # Host only (the console never sees these): calls abandoned this soon do
    # not count, and the formula the contract names.
    sl["short_abandon_s"] = _int(
        tbl, "short_abandon_s", where, rep, defaults["short_abandon_s"], (0, MAX_SHORT_ABANDON_S)
    )
    variant = _str(tbl, "variant", where, rep, DEFAULT_SL_VARIANT)
    if variant not in SL_VARIANTS:
        rep.add(_join(where, "variant"), f"{variant!r} is not one of {', '.join(SL_VARIANTS)}")
    sl["variant"] = variant
    # Erlang C staffing checks: the share of paid time agents are not on the phones.
    sl["shrinkage_pct"] = _int(tbl, "shrinkage_pct", where, rep, 30, (0, 90))
    return sl


def _codes(value: Any, where: str, rep: _Report) -> tuple[WrapCode, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(row, dict) for row in value):
        rep.add(
            where,
            f"must be [[{where}]] tables, each with code = 1..{MAX_CODE}, "
            'label = "..." and failure_demand = true/false',
        )
        return ()
    codes: list[WrapCode] = []
    first_at: dict[int, int] = {}
    for i, row in enumerate(value):
        code = _code(row, f"{where}[{i}]", rep)
        if code is None:
            continue
        if code.code in first_at:
            rep.add(
                f"{where}[{i}].code",
                f"code {code.code} is already {where}[{first_at[code.code]}]: "
                "each code is keyed at the desk, so it must be unique",
            )
            continue
        first_at[code.code] = i
        codes.append(code)
    return tuple(codes)


def _code(row: Mapping[str, Any], where: str, rep: _Report) -> WrapCode | None:
    before = len(rep)
    _check_keys(row, CODE_KEYS, where, rep)
    if "code" not in row:
        rep.add(_join(where, "code"), f"missing: the number keyed at the desk, 1..{MAX_CODE}")
    code = _int(row, "code", where, rep, 0, (1, MAX_CODE)) if "code" in row else 0
    label = _required_str(row, "label", where, rep, "what the code means, shown at the desk")
    if label is not None:
        _displayable(label, MAX_LABEL, _join(where, "label"), rep)
    failure_demand = _bool(row, "failure_demand", where, rep, False)
    if len(rep) > before or label is None:
        return None
    return WrapCode(code=code, label=label, failure_demand=failure_demand)


def _extra(tbl: Mapping[str, Any], where: str, rep: _Report) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    for name in EXTENSION_TABLES:
        if name not in tbl:
            continue
        inner = _table(tbl[name], _join(where, name), rep)
        if inner is not None:
            extra[name] = inner
            if name == "escalation":  # its keys are the escalation policy's to check
                _policy_findings(escpolicy.check_account(inner, _join(where, name))[1], rep)
    return extra


def _floor_help(value: Any, rep: _Report) -> dict[str, Any]:
    """The floor's [help] table (supervisor-help deadlines), checked by escpolicy."""
    if value is None:
        return {}
    inner = _table(value, "help", rep)
    if inner is None:
        return {}
    _policy_findings(escpolicy.check_help(inner, "help")[1], rep)
    return {"help": inner}


def _policy_findings(findings: Iterable[escpolicy.Finding], rep: _Report) -> None:
    # Warnings (a secret in clear) go to the daemon's log, not here: they do
    # not stop a floor from loading.
    for f in findings:
        if not f.warning:
            rep.add(f.path, f.message)


def _console_config(
    name: str,
    hotline: str,
    settings: Mapping[str, Any],
    sl: Mapping[str, int],
    codes: Iterable[WrapCode],
) -> dict[str, Any]:
    """Every field spelt out, so a console's behaviour never rests on firmware defaults."""
    return {
        "account": name,
        "mode": settings["mode"],
        "acw_s": settings["acw_s"],
        "fallback": settings["fallback"],
        "codes": [[c.code, c.label, c.failure_demand] for c in codes],
        "sl": {k: sl[k] for k in ("target_pct", "threshold_s", "amber_pct")},
        "brightness": settings["brightness"],
        "hotline": hotline,
        "severity": settings["severity"],
        "keepalive_s": settings["keepalive_s"],
        "heartbeat_s": settings["heartbeat_s"],
    }


def _console_rules_pass(config: Mapping[str, Any], where: str, rep: _Report) -> bool:
    """The firmware's validator, the one the console runs when the config arrives."""
    error = cfgcheck.validate({**config, "version": 1})
    if error is None:
        return True
    field_name, _, rest = str(error).partition(" ")
    # cfgcheck names the field first ("sl.target_pct must be 1..100"): put it in the path.
    if field_name in config or field_name.split(".")[0] == "sl":
        rep.add(f"{where}.{field_name}", f"{rest} (a console rule)")
    else:
        rep.add(where, f"{error} (a console rule)")
    return False


# --- [queues.<name>] and [agents.<id>]


def _queues(
    value: Any, account_keys: Sequence[str], rep: _Report
) -> tuple[dict[str, Queue], list[str]]:
    """The good queues, and every queue name defined (see _accounts)."""
    tables = _tables(value, "queues", rep, "queue")
    queues: dict[str, Queue] = {}
    for name, tbl in tables.items():
        where = _join("queues", name)
        _check_keys(tbl, QUEUE_KEYS, where, rep)
        account = _required_str(tbl, "account", where, rep, "the account whose calls it holds")
        if account is None:
            continue
        if account not in account_keys:
            rep.add(_join(where, "account"), _unknown("account", account, account_keys))
            continue
        queues[name] = Queue(name=name, account=account)
    return queues, list(tables)


def _agents(value: Any, rep: _Report) -> tuple[dict[str, Agent], list[str]]:
    """The good agents, and every agent id defined (see _accounts)."""
    tables = _tables(value, "agents", rep, "agent")
    agents: dict[str, Agent] = {}
    for agent_id, tbl in tables.items():
        where = _join("agents", agent_id)
        _check_keys(tbl, AGENT_KEYS, where, rep)
        name = _required_str(tbl, "name", where, rep, "the agent's name, shown to supervisors")
        if name is not None:
            agents[agent_id] = Agent(id=agent_id, name=name)
    return agents, list(tables)


# --- [desks.<name>]


@dataclass
class _Refs:
    """What desks may name, and what the desks before took (consoles, agents, places).

    The *_defined lists hold every name in the file, good or not, so that a
    desk naming a broken queue or agent is not reported a second time.
    """

    account_keys: Sequence[str]
    queues: Mapping[str, Queue]
    queues_defined: Sequence[str]
    agents: Mapping[str, Agent]
    agents_defined: Sequence[str]
    console_at: dict[str, str] = field(default_factory=dict)
    agent_at: dict[str, str] = field(default_factory=dict)
    place_at: dict[tuple[int, int], str] = field(default_factory=dict)


def _desks(value: Any, refs: _Refs, rep: _Report) -> dict[str, Desk]:
    desks: dict[str, Desk] = {}
    for name, tbl in _tables(value, "desks", rep, "desk").items():
        desk = _desk(name, tbl, refs, rep)
        if desk is not None:
            desks[name] = desk
    return desks


def _desk(name: str, tbl: Mapping[str, Any], refs: _Refs, rep: _Report) -> Desk | None:
    where = _join("desks", name)
    before = len(rep)
    _check_keys(tbl, DESK_KEYS, where, rep)
    console = _desk_console(tbl, where, refs, rep)
    account = _desk_account(tbl, where, refs, rep)
    agent = _desk_agent(tbl, where, refs, rep)
    queues = _desk_queues(tbl, where, account, refs, rep)
    row = _int(tbl, "row", where, rep, 0, (0, MAX_POSITION))
    col = _int(tbl, "col", where, rep, 0, (0, MAX_POSITION))
    _desk_place(row, col, where, refs, rep)
    if len(rep) > before or console is None or account is None:
        return None
    return Desk(
        name=name,
        console=console,
        account=account,
        agent=agent,
        queues=tuple(queues),
        row=row,
        col=col,
    )


def _desk_console(tbl: Mapping[str, Any], where: str, refs: _Refs, rep: _Report) -> str | None:
    console = _required_str(
        tbl, "console", where, rep, "the device id of the console on this desk (its hello says it)"
    )
    if console is None:
        return None
    path = _join(where, "console")
    if not _DEVICE_ID.fullmatch(console):
        rep.add(path, f"{_toml_string(console)} is not a console device id (letters, digits, -._:)")
        return None
    if console in refs.console_at:
        rep.add(
            path,
            f'console "{console}" is already on {refs.console_at[console]}: '
            "a console sits on one desk",
        )
        return None
    refs.console_at[console] = where
    return console


def _desk_account(tbl: Mapping[str, Any], where: str, refs: _Refs, rep: _Report) -> str | None:
    account = _required_str(tbl, "account", where, rep, "the client account this desk works for")
    if account is not None and account not in refs.account_keys:
        rep.add(_join(where, "account"), _unknown("account", account, refs.account_keys))
        return None
    return account


def _desk_agent(tbl: Mapping[str, Any], where: str, refs: _Refs, rep: _Report) -> str | None:
    """An agent sits at one desk at a time; a desk without one is a spare."""
    agent = _str(tbl, "agent", where, rep, "")
    if not agent:
        return None
    path = _join(where, "agent")
    if agent not in refs.agents_defined:
        rep.add(path, _unknown("agent", agent, refs.agents_defined))
        return None
    if agent in refs.agent_at:
        who = refs.agents[agent].name if agent in refs.agents else "?"
        rep.add(path, f'agent "{agent}" ({who}) already sits at {refs.agent_at[agent]}')
        return None
    refs.agent_at[agent] = where
    return agent


def _desk_queues(
    tbl: Mapping[str, Any], where: str, account: str | None, refs: _Refs, rep: _Report
) -> list[str]:
    """Queues of the desk's own account only: its console runs that account's codes."""
    path = _join(where, "queues")
    out: list[str] = []
    for i, name in enumerate(_str_list(tbl, "queues", where, rep)):
        problem = _desk_queue_problem(name, account, out, refs)
        if problem:
            rep.add(f"{path}[{i}]", problem)
        elif name in refs.queues:
            out.append(name)
    return out


def _desk_queue_problem(name: str, account: str | None, taken: Sequence[str], refs: _Refs) -> str:
    """What is wrong with one queue of a desk ("" when nothing, or already reported)."""
    if name in taken:
        return f'queue "{name}" is listed twice'
    if name not in refs.queues_defined:
        if account is None:  # the desk's account is wrong: every queue is a candidate
            return _unknown("queue", name, refs.queues_defined)
        own = [q.name for q in refs.queues.values() if q.account == account]
        if not own:
            return f'unknown queue "{name}" (account "{account}" has no queues)'
        return _unknown("queue", name, own)
    queue = refs.queues.get(name)
    if queue is not None and account is not None and queue.account != account:
        return (
            f'queue "{name}" belongs to account "{queue.account}", '
            f'not to this desk\'s account "{account}"'
        )
    return ""


def _desk_place(row: int, col: int, where: str, refs: _Refs, rep: _Report) -> None:
    """Two desks on one spot is a typo in the floor plan; row or col 0 means unplaced."""
    if row == 0 or col == 0:
        return
    other = refs.place_at.get((row, col))
    if other is not None:
        rep.add(where, f"row {row}, col {col} is already the place of {other}")
        return
    refs.place_at[(row, col)] = where


# --- watching the file while the daemon runs


@dataclass(frozen=True)
class FloorCheck:
    """What one `FloorWatcher.check()` found.

    floor:          the floor in force, the last good one (None until one loaded).
    changed:        floor is new since the previous check: sync it to the store
                    and push changed account configs.
    errors:         what is wrong with the file now (empty while it is good).
    errors_changed: errors differ from the previous check's: log them (or log
                    that the file is good again) and count them, once per edit.
    """

    floor: Floor | None
    changed: bool = False
    errors: tuple[str, ...] = ()
    errors_changed: bool = False


class FloorWatcher:
    """Picks up edits to the floor file; a bad edit never takes the floor away.

    Call `check()` every second or so.  It costs one stat() while the file is
    unchanged; a changed file is read and hashed only once it has been still
    for `settle_s` (an editor or `cp` may be half-way through writing it), and
    parsed only when its content differs.  It never raises: a missing,
    unreadable or bad file is reported in `errors` and the last good floor
    stays in force.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        settle_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = os.fspath(path)
        self.settle_s = settle_s
        self._clock = clock  # wall clock: compared with the file's mtime
        self._floor: Floor | None = None
        self._errors: tuple[str, ...] = ()
        self._read_sig: tuple[int, int, int, int] | None = None
        self._digest: str | None = None

    @property
    def floor(self) -> Floor | None:
        """The last good floor, None until one loaded."""
        return self._floor

    @property
    def errors(self) -> tuple[str, ...]:
        return self._errors

    def check(self, force: bool = False) -> FloorCheck:
        """Looks at the file now; `force` (an operator's reload) reads it even
        if it looks unchanged or is still settling."""
        try:
            st = os.stat(self.path)
        except OSError as e:
            return self._failed([f"{self.path}: cannot read: {_os_reason(e)}"])
        if stat.S_ISDIR(st.st_mode):
            return self._failed([f"{self.path}: is a directory, not a floor file"])
        sig = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        if not force and (sig == self._read_sig or self._still_being_written(st.st_mtime_ns)):
            return self._unchanged()
        try:
            data = Path(self.path).read_bytes()
        except OSError as e:
            return self._failed([f"{self.path}: cannot read: {_os_reason(e)}"])
        self._read_sig = sig
        digest = hashlib.sha256(data).hexdigest()
        if digest == self._digest:
            return self._unchanged()  # touched, or rewritten with the same content
        self._digest = digest
        try:
            floor = _parse_bytes(data, self.path)
        except FloorConfigError as e:
            return self._failed(e.problems, keep_digest=True)
        return self._loaded(floor)

    def _still_being_written(self, mtime_ns: int) -> bool:
        # A future mtime (clock skew) cannot settle by waiting: read it now.
        age = self._clock() - mtime_ns / 1e9
        return 0 <= age < self.settle_s

    def _unchanged(self) -> FloorCheck:
        return FloorCheck(self._floor, errors=self._errors)

    def _failed(self, errors: Sequence[str], keep_digest: bool = False) -> FloorCheck:
        if not keep_digest:
            # Gone or unreadable: whatever appears next must be read again,
            # even with the same content as before.
            self._read_sig = None
            self._digest = None
        new = tuple(errors)
        changed = new != self._errors
        self._errors = new
        return FloorCheck(self._floor, errors=new, errors_changed=changed)

    def _loaded(self, floor: Floor) -> FloorCheck:
        changed = self._floor is None or floor.sha256 != self._floor.sha256
        errors_changed = bool(self._errors)
        self._floor = floor
        self._errors = ()
        return FloorCheck(floor, changed=changed, errors_changed=errors_changed)


# --- writing a floor back as TOML


def dump_floor(floor: Floor) -> str:
    """A floor as canonical TOML, loading back to the same Floor (comments are not kept)."""
    out = ["[floor]", f"name = {_toml_string(floor.name)}", ""]
    for account in floor.accounts.values():
        out += _dump_account(account)
    for queue in floor.queues.values():
        out += [f"[{_join('queues', queue.name)}]", f"account = {_toml_string(queue.account)}", ""]
    for agent in floor.agents.values():
        out += [f"[{_join('agents', agent.id)}]", f"name = {_toml_string(agent.name)}", ""]
    for desk in floor.desks.values():
        out += _dump_desk(desk)
    if "help" in floor.extra:
        out += ["[help]"]
        out += [f"{_join('', k)} = {_toml_value(v)}" for k, v in floor.extra["help"].items()]
        out += [""]
    return "\n".join(out)


def _dump_account(account: Account) -> list[str]:
    where = _join("accounts", account.key)
    cfg = {**cfgcheck.DEFAULT, **account.console_config}
    out = [f"[{where}]", f"name = {_toml_string(account.name)}"]
    for key in ("mode", "acw_s", "fallback", "hotline", "severity", "brightness"):
        out.append(f"{key} = {_toml_value(cfg[key])}")
    for key in ("keepalive_s", "heartbeat_s"):
        out.append(f"{key} = {_toml_value(cfg[key])}")
    out += [
        "",
        f"[{where}.sl]",
        f"target_pct = {account.sl_target_pct}",
        f"threshold_s = {account.sl_threshold_s}",
        f"amber_pct = {account.sl_amber_pct}",
        f"short_abandon_s = {account.short_abandon_s}",
        f"variant = {_toml_string(account.sl_variant)}",
        f"shrinkage_pct = {account.shrinkage_pct}",
        "",
    ]
    for code in account.codes:
        out += [
            f"[[{where}.codes]]",
            f"code = {code.code}",
            f"label = {_toml_string(code.label)}",
            f"failure_demand = {_toml_value(code.failure_demand)}",
            "",
        ]
    for name, value in account.extra.items():
        out += [f"[{_join(where, name)}]"]
        out += [f"{_join('', k)} = {_toml_value(v)}" for k, v in value.items()]
        out += [""]
    return out


def _dump_desk(desk: Desk) -> list[str]:
    out = [
        f"[{_join('desks', desk.name)}]",
        f"console = {_toml_string(desk.console)}",
        f"account = {_toml_string(desk.account)}",
    ]
    if desk.agent is not None:
        out.append(f"agent = {_toml_string(desk.agent)}")
    out.append(f"queues = {_toml_value(list(desk.queues))}")
    out += [f"row = {desk.row}", f"col = {desk.col}", ""]
    return out


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{_join('', k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    # TOML dates and times print as TOML reads them.
    return str(value)


def _toml_string(text: str) -> str:
    """A TOML basic string; control characters escaped, the rest as it is."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


# --- a generated floor for the demo and tests

_DEMO_ACCOUNTS = """\
# Volt Energy: an energy supplier.  The agent must key a code; after 30 s the
# console files 99 for them, so every call is coded.
[accounts.volt]
name = "Volt Energy"
mode = "mandatory_timeout"
acw_s = 30
fallback = 99
hotline = "+44 20 7946 0101"
severity = 2

[accounts.volt.sl]
target_pct = 80
threshold_s = 20
amber_pct = 5
short_abandon_s = 5

[[accounts.volt.codes]]
code = 1
label = "Billing query"
failure_demand = true

[[accounts.volt.codes]]
code = 2
label = "Meter reading"

[[accounts.volt.codes]]
code = 3
label = "Payment plan"

[[accounts.volt.codes]]
code = 4
label = "Moving home"

[[accounts.volt.codes]]
code = 5
label = "Smart meter fault"
failure_demand = true

[[accounts.volt.codes]]
code = 7
label = "Confusing bill"
failure_demand = true

[[accounts.volt.codes]]
code = 8
label = "Complaint"

[[accounts.volt.codes]]
code = 99
label = "ACW timeout"

# Northwind Mobile: a telco.  Wrap-up is cut at 15 s whatever the agent is
# doing (forced), filing 98 when nothing was keyed.
[accounts.northwind]
name = "Northwind Mobile"
mode = "forced_timeout"
acw_s = 15
fallback = 98
hotline = "+44 161 496 0202"
severity = 3
keepalive_s = 10

[accounts.northwind.sl]
target_pct = 90
threshold_s = 30
amber_pct = 3
short_abandon_s = 3

[[accounts.northwind.codes]]
code = 1
label = "Network fault"
failure_demand = true

[[accounts.northwind.codes]]
code = 2
label = "Upgrade"

[[accounts.northwind.codes]]
code = 3
label = "Roaming charges"
failure_demand = true

[[accounts.northwind.codes]]
code = 4
label = "Port out (PAC)"

[[accounts.northwind.codes]]
code = 5
label = "Lost or stolen"

[[accounts.northwind.codes]]
code = 7
label = "Bill shock"
failure_demand = true

[[accounts.northwind.codes]]
code = 9
label = "Cancel contract"

[[accounts.northwind.codes]]
code = 98
label = "Forced end"

# Harbour Bank: a bank.  No time limit, but the desk takes no call until a
# code is keyed: the regulator wants every contact classified.
[accounts.harbour]
name = "Harbour Bank"
mode = "mandatory"
acw_s = 90
hotline = "+44 113 496 0303"
severity = 2
brightness = 30

[accounts.harbour.sl]
target_pct = 80
threshold_s = 60
amber_pct = 5
short_abandon_s = 10

[[accounts.harbour.codes]]
code = 1
label = "Card lost or stolen"

[[accounts.harbour.codes]]
code = 2
label = "Balance query"

[[accounts.harbour.codes]]
code = 3
label = "Payment not received"
failure_demand = true

[[accounts.harbour.codes]]
code = 4
label = "Fraud report"

[[accounts.harbour.codes]]
code = 7
label = "Chasing a callback"
failure_demand = true

[[accounts.harbour.codes]]
code = 8
label = "App login failed"
failure_demand = true

[[accounts.harbour.codes]]
code = 12
label = "Mortgage enquiry"
"""

_DEMO_QUEUES = {
    "volt": ("volt-billing", "volt-moves", "volt-smart"),
    "northwind": ("nw-tech", "nw-billing", "nw-retention"),
    "harbour": ("hb-cards", "hb-fraud"),
}

_FIRST_NAMES = (
    "Priya Tom Aisha Ben Chloe Dev Ewa Finn Grace Hamza Isla Jakub Kemi Liam Maya Nia "
    "Omar Pia Rhys Sana Theo Uma Vik Zoe"
).split()
_SURNAMES = (
    "Shah Wright Begum Lee Evans Patel Nowak Murphy Okafor Ali Reid Kowal Adeyemi Byrne "
    "Chen Jones Hussain Larsen Price Khan Walsh Rao Singh Clarke"
).split()

DEMO_ROW = 6  # desks per row in a generated floor


def demo_floor_toml(consoles: int) -> str:
    """A floor for N virtual consoles (device ids desk-01..), so the demo and
    tests run on the same accounts as examples/floor.toml.

    Desks go to the three accounts in blocks, as a floor seats each client's
    team together, six to a row; every desk has an agent and its account's
    queues.
    """
    if not 0 <= consoles <= 999:
        raise ValueError(f"a demo floor has 0..999 consoles, not {consoles}")
    keys = list(_DEMO_QUEUES)
    out = [
        f"# Generated by deskline.floorconfig.demo_floor_toml({consoles}).",
        "[floor]",
        f'name = "Demo floor ({consoles} desks)"',
        "",
        _DEMO_ACCOUNTS,
    ]
    for key, names in _DEMO_QUEUES.items():
        out += [f"[queues.{name}]\naccount = {_toml_string(key)}\n" for name in names]
    for i in range(consoles):
        out += [f"[agents.ag-{i + 1:02d}]", f"name = {_toml_string(_demo_agent(i))}", ""]
    for i in range(consoles):
        number = f"{i + 1:02d}"  # as the demo names its virtual consoles
        account = keys[i * len(keys) // consoles]
        out += [
            f"[desks.desk-{number}]",
            f'console = "desk-{number}"',
            f'account = "{account}"',
            f'agent = "ag-{number}"',
            f"queues = {_toml_value(list(_DEMO_QUEUES[account]))}",
            f"row = {i // DEMO_ROW + 1}",
            f"col = {i % DEMO_ROW + 1}",
            "",
        ]
    return "\n".join(out)


def _demo_agent(i: int) -> str:
    first = _FIRST_NAMES[i % len(_FIRST_NAMES)]
    # A step prime to the list length pairs every first name with every surname.
    last = _SURNAMES[(i * 5 + i // len(_FIRST_NAMES)) % len(_SURNAMES)]
    return f"{first} {last}"
