"""Terminal views of the daemon's floor: `deskline status` and `devices`.

`deskline status` draws the floor snapshot (docs/dashboard.md) that the web
dashboard draws, fetched through the control socket, so the terminal and the
wall screen never disagree.  The desks are laid out as on the floor, row 1 at
the bottom, nearest the supervisors' bench; each desk shows what its console
shows.  Nothing is told by colour alone: an LED carries a letter and a glyph
for its blink pattern, a band its word, an offline desk the word OFFLINE.
A terminal too narrow for the map gets the same desks as a table.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from deskline import consolestate, control
from deskline.errors import DesklineError

Snapshot = Mapping[str, Any]

# Colour words of the snapshot (consolestate.LEDS, the bands) as rich styles.
STYLES = {
    "green": "green",
    "amber": "yellow",
    "red": "bold red",
    "blue": "bright_blue",
    "magenta": "magenta",
    "cyan": "cyan",
    "white": "white",
    "grey": "grey50",
    "off": "grey35",
}

# Per LED state id: a letter (unique within its layer) and a glyph for the
# pixel's blink pattern (docs/leds.md), so a desk's lights read without colour.
_STEADY, _SLOW, _HZ1, _FAST, _DOUBLE, _TRIPLE, _WINK, _TICK, _OFF, _PAIR = "●◐◑✱◎⁂◦∷○✓"
LED_CUES: dict[int, tuple[str, str]] = {
    0: ("?", _WINK),
    1: ("G", _STEADY),
    2: ("A", _SLOW),
    3: ("R", _DOUBLE),
    4: ("S", _TICK),
    5: ("R", _WINK),
    6: ("C", _STEADY),
    7: ("W", _HZ1),
    8: ("L", _FAST),
    9: ("J", _TRIPLE),
    10: ("-", _OFF),
    11: ("P", _DOUBLE),
    12: ("A", _SLOW),
    13: ("B", _FAST),
    14: ("H", _HZ1),
    15: ("S", _PAIR),
}
LEGEND = (
    "lights floor·personal·escalation — floor: G green A amber R red ? no SL S stale; "
    "personal: R ready C on call W wrap due L wrap late J journal full S saved; "
    "escalation: - none P pending A acked B BREACHED H help.  "
    f"blink: {_STEADY} steady {_SLOW} slow {_HZ1} 1 Hz {_FAST} fast {_DOUBLE} double "
    f"{_TRIPLE} triple {_WINK} wink {_TICK} tick {_PAIR} saved {_OFF} off"
)

STATE_WORDS = {"ready": "READY", "on_call": "ON CALL", "wrap_up": "WRAP-UP"}
BANDS = {  # band: (glyph, word, style)
    "green": ("●", "GREEN", "green"),
    "amber": ("▲", "AMBER", "yellow"),
    "red": ("✖", "RED", "bold red"),
    "unknown": ("○", "no data", "grey50"),
}
URGENCY = {  # urgency: (cue, style)
    "breached": ("‼ BREACHED", "bold red"),
    "due_soon": ("▲ due soon", "yellow"),
    "running": ("● running", ""),
    "no_deadline": ("○ no deadline", "grey50"),
}
OFFLINE_STYLE = "bold red reverse"
HEARTBEAT_LATE_S = 30.0
MAP_CELL_WIDTH = 20  # a desk panel's least width: borders and 18 characters
MAP_CELL_MAX = 26  # wider panels only spread the floor out
ROW_LABEL_WIDTH = 6
WIDE = 100  # narrower terminals get the short forms of the tables
_UNEXPECTED_RESETS = {name for code, name in consolestate.REBOOT_REASONS.items() if code >= 0x80}


# --- small formatters -----------------------------------------------------------------


def _dur(seconds: float) -> str:
    """45s, 6m40s, 2h05m: a span a supervisor reads at a glance."""
    s = round(abs(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}%"


def _clock(t: float | None) -> str:
    return "-" if t is None else time.strftime("%H:%M:%S", time.localtime(t))


def led_cue(led: Mapping[str, Any] | None) -> Text:
    """One LED as glyph + letter in its colour, e.g. "●G"."""
    if not led:
        return Text("··", style="grey50")
    i = int(led.get("id", -1))
    letter, glyph = LED_CUES.get(i, ("?", "?"))
    colour = str(led.get("colour") or consolestate.LEDS.get(i, ("", "grey", ""))[1])
    return Text(glyph + letter, style=STYLES.get(colour, ""))


def leds_cue(leds: Mapping[str, Any] | None) -> Text:
    """The three layers, floor·personal·escalation, as the console's pixels sit."""
    if not leds:
        return Text("lights unknown", style="grey50")
    return Text(" ").join(led_cue(leds.get(layer)) for layer in consolestate.LAYERS)


def state_text(desk: Mapping[str, Any]) -> Text:
    """The agent's state in words; an offline desk says OFFLINE."""
    if not desk.get("online"):
        return Text("OFFLINE", style=OFFLINE_STYLE)
    word = STATE_WORDS.get(str(desk.get("state")), "no state yet")
    text = Text(word, style="bold" if desk.get("state") else "grey50")
    left = desk.get("acw_left_s")
    if desk.get("state") == "wrap_up" and left is not None:
        text.append(f" {_dur(left)} left" if left >= 0 else f" {_dur(left)} over")
    return text


def link_text(desk: Mapping[str, Any], now: float) -> str:
    """Why an offline desk is dark, and for how long: "offline 3m05s"."""
    link = str(desk.get("link") or "offline")
    since = desk.get("since")
    return f"{link} {_dur(now - since)}" if since is not None else link


def band_text(band: str | None) -> Text:
    glyph, word, style = BANDS.get(str(band), BANDS["unknown"])
    return Text(f"{glyph} {word}", style=style)


# --- the floor ------------------------------------------------------------------------


def header(snap: Snapshot) -> Text:
    """Floor name, desks online, the daemon's rate and its store's health."""
    floor = snap.get("floor") or {}
    desks = snap.get("desks") or []
    daemon = snap.get("daemon") or {}
    online = sum(1 for d in desks if d.get("online"))
    head = Text()
    head.append(floor.get("name") or "floor (no config)", style="bold")
    head.append(f"  {online}/{len(desks)} online", style="" if online == len(desks) else "yellow")
    head.append(
        f" · {float(daemon.get('events_per_s') or 0):.1f} events/s"
        f" · {daemon.get('committed_events', 0)} stored · "
    )
    failures = int(daemon.get("store_failures") or 0)
    head.append(f"{failures} store failures", style="bold red" if failures else "")
    head.append(f"  (v{snap.get('version', '?')} at {_clock(snap.get('generated'))})", "grey50")
    errors = floor.get("errors") or []
    if errors:
        head.append(f"\nfloor config errors ({len(errors)}):", style="bold red")
        for e in errors:
            head.append(f"\n  {e}", style="red")
    return head


def _placement(snap: Snapshot) -> tuple[dict[tuple[int, int], Mapping[str, Any]], list[Any]]:
    """Desks by (row, col) on the plan, and the rest (unplaced, or a console no desk names)."""
    floor = snap.get("floor") or {}
    rows, cols = int(floor.get("rows") or 0), int(floor.get("cols") or 0)
    placed: dict[tuple[int, int], Mapping[str, Any]] = {}
    rest = []
    for d in snap.get("desks") or []:
        pos = (int(d.get("row") or 0), int(d.get("col") or 0))
        on_plan = d.get("on_floor") and 1 <= pos[0] <= rows and 1 <= pos[1] <= cols
        if on_plan and pos not in placed:
            placed[pos] = d
        else:
            rest.append(d)
    return placed, rest


def desk_cell(desk: Mapping[str, Any], now: float) -> Panel:
    """One desk as its console shows it: agent, state, the three lights, the OLED's first line."""
    lines: list[Text] = []
    agent = desk.get("agent_name") or desk.get("agent")
    lines.append(Text(str(agent)) if agent else Text("spare desk", style="grey50 italic"))
    lines.append(state_text(desk))
    if desk.get("online"):
        lines.append(leds_cue(desk.get("leds")))
        display = desk.get("display") or [""]
        lines.append(Text(str(display[0]), style="italic"))
    else:
        lines.append(Text(link_text(desk, now)))
        lines.append(Text(str(desk.get("account_name") or "")))
    for line in lines:
        line.no_wrap = True
        line.overflow = "ellipsis"
    offline = not desk.get("online")
    return Panel(
        Group(*lines),
        title=str(desk.get("desk") or desk.get("console")),
        title_align="left",
        box=box.ROUNDED,
        padding=(0, 0),
        style=OFFLINE_STYLE if offline else "",
        border_style="red" if offline else "grey50",
    )


def floor_map(snap: Snapshot, width: int) -> Table:
    """The plan as seen from the supervisors' bench: the top row furthest, row 1 nearest."""
    floor = snap.get("floor") or {}
    rows, cols = int(floor["rows"]), int(floor["cols"])
    now = float(snap.get("generated") or time.time())
    placed, _ = _placement(snap)
    cell = max(MAP_CELL_WIDTH, min(MAP_CELL_MAX, (width - ROW_LABEL_WIDTH) // cols))
    grid = Table.grid()
    grid.add_column(width=ROW_LABEL_WIDTH, vertical="middle")
    for _ in range(cols):
        grid.add_column(width=cell)
    for r in range(rows, 0, -1):
        cells: list[RenderableType] = [Text(f"row {r}", style="grey50")]
        for c in range(1, cols + 1):
            d = placed.get((r, c))
            cells.append(desk_cell(d, now) if d else Text(""))
        grid.add_row(*cells)
    grid.add_row(
        Text(""),
        *(Text(f"col {c}", style="grey50", justify="center") for c in range(1, cols + 1)),
    )
    return grid


def _desk_row(desk: Mapping[str, Any], now: float, position: str) -> list[RenderableType]:
    online = bool(desk.get("online"))
    display = desk.get("display") or [""]
    return [
        position,
        str(desk.get("desk") or f"({desk.get('console')})"),
        str(desk.get("agent_name") or desk.get("agent") or "spare"),
        state_text(desk),
        leds_cue(desk.get("leds")) if online else Text(""),
        str(display[0]) if online else link_text(desk, now),
    ]


def desks_table(snap: Snapshot, desks: Iterable[Mapping[str, Any]], title: str = "") -> Table:
    """Desks one a line: the narrow terminal's floor, and the desks the plan has no place for."""
    now = float(snap.get("generated") or time.time())
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, title=title or None, title_justify="left")
    for col, kw in (
        ("pos", {"no_wrap": True}),
        ("desk", {"no_wrap": True}),
        ("agent", {"overflow": "ellipsis", "no_wrap": True, "ratio": 1}),
        ("state", {"no_wrap": True}),
        ("lights", {"no_wrap": True}),
        ("display", {"overflow": "ellipsis", "no_wrap": True, "ratio": 1}),
    ):
        table.add_column(col, **kw)
    for d in desks:
        if not d.get("on_floor"):
            pos = "—"
        elif d.get("row"):
            pos = f"{d['row']}·{d.get('col')}"
        else:
            pos = "none"
        table.add_row(*_desk_row(d, now, pos))
    return table


def floor_order(snap: Snapshot) -> list[Mapping[str, Any]]:
    """Placed desks as the map reads: the furthest row first, left to right."""
    placed, _ = _placement(snap)
    return [placed[k] for k in sorted(placed, key=lambda rc: (-rc[0], rc[1]))]


def unplaced(snap: Snapshot) -> Table | None:
    """The desks the map has no place for; every desk when the floor has no plan."""
    placed, rest = _placement(snap)
    if not rest:
        return None
    if not placed:
        return desks_table(snap, rest, "desks (the floor config places none on a plan)")
    return desks_table(
        snap, rest, "not on the floor plan (pos none), or a console no desk names (—)"
    )


# --- service, escalations, demand, health -------------------------------------------------


def service_table(service: Mapping[str, Any]) -> RenderableType:
    """Service level per account, each account's queues under it; figures "interval/today"."""
    if not service.get("acd"):
        return Text("service level: no ACD feed (the daemon follows no queue_log)", "grey50")
    accounts = list(service.get("accounts") or [])
    queues = list(service.get("queues") or [])
    if not accounts and not queues:
        return Text("service level: no calls seen yet today", style="grey50")
    title = f"service level · this {service.get('interval_min', '?')} min interval"
    start = service.get("interval_start")
    if start:
        title += f" (from {time.strftime('%H:%M', time.localtime(start))})"
    table = Table(
        box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, title_justify="left",
        title=title + " / today",
    )  # fmt: skip
    table.add_column("account/queue", overflow="ellipsis", no_wrap=True, min_width=12)
    table.add_column("band", no_wrap=True)
    for col in ("SL %", "target", "waiting", "ASA s", "abandon %"):
        table.add_column(col, no_wrap=True, justify="right")
    keys = {a.get("key") for a in accounts}
    ordered: list[tuple[Mapping[str, Any], str]] = []
    for a in accounts:
        ordered.append((a, str(a.get("name") or a.get("key"))))
        ordered += [
            (q, "  " + str(q.get("key"))) for q in queues if q.get("account") == a.get("key")
        ]
    ordered += [(q, str(q.get("key"))) for q in queues if q.get("account") not in keys]
    for row, label in ordered:
        waiting = str(row.get("waiting", 0) or 0)
        if row.get("longest_waiting_s") is not None:
            waiting += f" · {_dur(row['longest_waiting_s'])}"
        table.add_row(
            Text(label, style="bold" if row.get("scope") == "account" else ""),
            band_text(row.get("band")),
            _pair(row.get("sl_interval"), row.get("sl_today"), "{:.1f}"),
            f"{row.get('target_pct')}%/{row.get('threshold_s')}s",
            waiting,
            _pair(row.get("asa_interval_s"), row.get("asa_today_s"), "{:.0f}"),
            _pair(
                row.get("abandon_rate_interval_pct"), row.get("abandon_rate_today_pct"), "{:.1f}"
            ),
        )
    return table


def _pair(now: float | None, today: float | None, fmt: str) -> str:
    """This interval's figure and today's: "83.3/79.1", "-" where there were no calls."""
    return "/".join("-" if v is None else fmt.format(v) for v in (now, today))


def _deadline_text(e: Mapping[str, Any]) -> str:
    """Which deadline runs and how it stands: "ack 6m40s OVERDUE", "resolve 1h50m left"."""
    left = e.get("left_s")
    if e.get("deadline") is None or left is None:
        return "no deadline"
    which = "ack" if e.get("deadline") == e.get("ack_due") and not e.get("acked") else "resolve"
    if left < 0:
        return f"{which} {_dur(left)} OVERDUE"
    return f"{which} {_dur(left)} left"


def escalations_table(
    escalations: Sequence[Mapping[str, Any]], narrow: bool = False
) -> RenderableType:
    """Open escalations in the daemon's order of urgency; a breach in bold red.

    A narrow terminal leaves out the account (the desk tells it), the status
    and the age: the urgency and the running deadline say what to do."""
    if not escalations:
        return Text("no open escalations", style="grey50")
    table = Table(
        box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left",
        title="open escalations, most urgent first",
    )  # fmt: skip
    table.add_column("urgency", no_wrap=True)
    table.add_column("id", no_wrap=True, overflow="ellipsis", min_width=10)
    table.add_column("desk", no_wrap=True)
    if not narrow:
        table.add_column("account", no_wrap=True, overflow="ellipsis", ratio=1)
    table.add_column("severity", no_wrap=True)
    if not narrow:
        table.add_column("status", no_wrap=True)
    table.add_column("deadline", no_wrap=True)
    if not narrow:
        table.add_column("age", no_wrap=True, justify="right")
    for e in escalations:
        cue, style = URGENCY.get(str(e.get("urgency")), (str(e.get("urgency")), ""))
        severity = str(e.get("severity"))
        if e.get("kind") == "floor_help":
            severity = f"help {severity}" if not narrow else "help"
        status = str(e.get("status"))
        if e.get("breached"):
            status += f" (missed {'+'.join(e['breached'])})"
        cells = [cue, str(e.get("ext_id")), str(e.get("desk") or "-")]
        if narrow:
            cells += [severity, _deadline_text(e)]
        else:
            account = str(e.get("account_name") or e.get("account") or "-")
            age = _dur(float(e.get("age_s") or 0))
            cells += [account, severity, status, _deadline_text(e), age]
        table.add_row(*cells, style=style)
    return table


def demand_table(demand: Sequence[Mapping[str, Any]]) -> RenderableType:
    """Today's failure-demand share per account, with its three biggest wrap-up codes."""
    if not demand:
        return Text("failure demand: no coded contacts yet today", style="grey50")
    table = Table(
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        title_justify="left",
        title="failure demand today (✱ = a failure-demand code)",
    )
    table.add_column("account", no_wrap=True, overflow="ellipsis")
    table.add_column("contacts", justify="right", no_wrap=True)
    table.add_column("failure demand", justify="right", no_wrap=True)
    table.add_column("top codes", ratio=1)
    for a in demand:
        codes = sorted(a.get("codes") or [], key=lambda c: -int(c.get("contacts") or 0))[:3]
        top = Text()
        for i, c in enumerate(codes):
            if i:
                top.append(" · ")
            mark = "✱" if c.get("failure_demand") else ""
            top.append(
                f"{mark}{c.get('code')} {c.get('label')} {_pct(c.get('share_pct'))}",
                style="yellow" if mark else "",
            )
        table.add_row(
            str(a.get("account_name") or a.get("account")),
            str(a.get("contacts", 0)),
            f"{a.get('failure_demand', 0)} · {_pct(a.get('failure_demand_pct'))}",
            top,
        )
    return table


def health_problems(h: Mapping[str, Any]) -> list[str]:
    """What a supervisor should look at on one console; empty when it is fine."""
    out = []
    age = h.get("heartbeat_age_s")
    if age is None:
        out.append("no heartbeat yet")
    elif age > HEARTBEAT_LATE_S:
        out.append(f"heartbeat {_dur(age)} ago")
    reason = h.get("reset_cause_name")
    if reason in _UNEXPECTED_RESETS or _unnamed_unexpected(reason):
        out.append(f"last reset: {reason} (boot {h.get('boots')})")
    for key, what in (
        ("link_errors", "bad frames"),
        ("rx_errors", "frames it could not read"),
        ("reconnects", "reconnects"),
    ):
        if h.get(key):
            out.append(f"{h[key]} {what}")
    have, want = h.get("config_version"), h.get("config_expected")
    if want is not None and have != want:
        out.append(f"config v{have} behind v{want}")
    return out


def _unnamed_unexpected(reason: Any) -> bool:
    """A reboot reason consolestate has no name for ("0x83"): unexpected from 0x80 up."""
    return isinstance(reason, str) and reason.startswith("0x") and int(reason, 16) >= 0x80


def health_view(health: Sequence[Mapping[str, Any]], everything: bool = False) -> RenderableType:
    """Consoles with problems, a line each; every console's figures with everything=True."""
    if everything:
        return health_table(health)
    lines = []
    for h in health:
        problems = health_problems(h)
        if problems:
            who = str(h.get("device_id"))
            if h.get("desk") and h.get("desk") != who:
                who += f" ({h['desk']})"
            lines.append(Text(f"⚠ {who}: " + " · ".join(problems), style="yellow"))
    if not lines:
        return Text(f"health: all {len(health)} consoles fine (--health for details)", "green")
    return Group(Text(f"console health: {len(lines)} of {len(health)} need a look", "bold"), *lines)


def health_table(health: Sequence[Mapping[str, Any]]) -> Table:
    """Every console's figures, a line each; those with a problem in yellow."""
    table = Table(
        box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True,
        title="console health", title_justify="left",
        caption="heap KB free/least · errors: bad frames / frames it could not read / reconnects",
    )  # fmt: skip
    table.add_column("console", no_wrap=True, overflow="ellipsis", min_width=7)
    table.add_column("last hb", no_wrap=True, justify="right")
    table.add_column("fw/app", no_wrap=True, overflow="ellipsis", min_width=6)
    table.add_column("heap", no_wrap=True, justify="right")
    table.add_column("boots · reset", ratio=1, overflow="fold")
    table.add_column("jrnl", no_wrap=True, justify="right")
    table.add_column("err", no_wrap=True, justify="right")
    table.add_column("config", no_wrap=True)
    for h in health:
        who = str(h.get("device_id"))
        if h.get("desk") and h.get("desk") != who:
            who += f" ({h['desk']})"
        age = h.get("heartbeat_age_s")
        heap = (
            f"{int(h['free_heap']) // 1024}/{int(h.get('min_free_heap') or 0) // 1024}"
            if h.get("free_heap")
            else "-"
        )
        have, want = h.get("config_version"), h.get("config_expected")
        config = "-" if have is None else f"v{have}"
        if want is not None and have != want:
            config += f"→v{want}"
        table.add_row(
            who,
            "never" if age is None else _dur(age),
            f"{h.get('fw_version') or '-'}/{h.get('app_version') or '-'}",
            heap,
            f"{h.get('boots') if h.get('boots') is not None else '-'} · "
            f"{h.get('reset_cause_name') or '-'}",
            str(h.get("journal_depth") if h.get("journal_depth") is not None else "-"),
            f"{h.get('link_errors', 0)}/{h.get('rx_errors', 0)}/{h.get('reconnects', 0)}",
            config,
            style="yellow" if health_problems(h) else "",
        )
    return table


# --- the whole view -------------------------------------------------------------------------


class FloorView:
    """The whole floor; lays the desks out as a map when the terminal is wide enough."""

    def __init__(self, snapshot: Snapshot, health: bool = False) -> None:
        self.snap = snapshot
        self.health = health

    def map_fits(self, width: int) -> bool:
        cols = int((self.snap.get("floor") or {}).get("cols") or 0)
        return cols > 0 and ROW_LABEL_WIDTH + cols * MAP_CELL_WIDTH <= width

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        snap = self.snap
        yield header(snap)
        placed = floor_order(snap)
        if placed and self.map_fits(options.max_width):
            yield floor_map(snap, options.max_width)
            yield Text("      row 1 nearest the supervisors' bench", style="grey50")
        elif placed:
            yield desks_table(snap, placed, "the floor, furthest row first")
        rest = unplaced(snap)
        if rest is not None:
            yield rest
        yield Text(LEGEND, style="grey50")
        for section in (
            service_table(snap.get("service") or {}),
            escalations_table(snap.get("escalations") or [], options.max_width < WIDE),
            demand_table(snap.get("demand") or []),
            health_view(snap.get("health") or [], self.health),
        ):
            yield Text("")
            yield section


def floor_view(snapshot: Snapshot, health: bool = False) -> FloorView:
    """The floor snapshot as one rich renderable; health=True lists every console's health."""
    return FloorView(snapshot, health)


def fetch_snapshot(socket_path: Path, timeout: float = 10.0) -> dict[str, Any]:
    """The floor snapshot from the daemon (op "dashboard"), without the reply's "ok"."""
    reply = control.request(socket_path, {"op": "dashboard"}, timeout=timeout)
    if not reply.get("ok"):
        error = str(reply.get("error") or reply)
        if "unknown op" in error:
            raise DesklineError(
                "the running daemon is older than this deskline and cannot give the floor "
                "snapshot (no control op 'dashboard'); restart it with `deskline daemon`"
            )
        raise DesklineError(f"the daemon could not give the floor snapshot: {error}")
    return {k: v for k, v in reply.items() if k != "ok"}


# --- devices --------------------------------------------------------------------------------


def devices_table(reply: dict[str, Any]) -> Table:
    table = Table(title="consoles", expand=False)
    cols = (
        "device",
        "desk",
        "port",
        "link",
        "firmware",
        "app",
        "last heartbeat",
        "heap free/min",
        "resets",
        "journal",
        "config",
    )
    for col in cols:
        table.add_column(col, no_wrap=True)
    now = time.time()
    for d in reply["devices"]:
        link = d.get("link", {})
        hb = d.get("last_heartbeat")
        hb_text = f"{now - hb:.0f} s ago" if hb else "never"
        heap = (
            f"{d['free_heap'] // 1024} / {d['min_free_heap'] // 1024} KB"
            if d.get("free_heap")
            else ""
        )
        reset = str(d.get("boots", "") or "")
        if d.get("last_reboot_reason") is not None and reset:
            reset += f" (last 0x{int(d['last_reboot_reason']):02x})"
        config = ""
        if d.get("config_version") is not None:
            config = f"v{d['config_version']}"
            want = d.get("config_expected")
            if want is not None and want != d.get("config_version"):
                config += f" → v{want}"
        table.add_row(
            d.get("device_id") or "(no hello)",
            d.get("desk") or "",
            link.get("port") or d.get("port") or "",
            link.get("state", ""),
            d.get("fw_version") or "",
            d.get("app_version") or "",
            hb_text,
            heap,
            reset,
            str(d.get("journal_depth", "") if d.get("journal_depth") is not None else ""),
            config,
        )
    return table


def console() -> Console:
    """A terminal's own width; a pipe or a log gets room for every column."""
    return Console() if sys.stdout.isatty() else Console(width=200)


def live_view(socket_path: Path, health: bool = False) -> RenderableType:
    """The floor now, or what stands in the way, for a view that keeps refreshing."""
    try:
        return floor_view(fetch_snapshot(socket_path), health)
    except DesklineError as e:
        return Text(f"{e} — retrying", style="bold red")


def watch(
    socket_path: Path, interval: float = 0.5, once: bool = False, health: bool = False
) -> int:
    """The floor in the terminal: once, or live until Ctrl-C."""
    out = console()
    if once:
        out.print(floor_view(fetch_snapshot(socket_path), health))
        return 0
    with Live(console=out, auto_refresh=False, screen=False) as live:
        while True:
            live.update(live_view(socket_path, health), refresh=True)
            time.sleep(interval)
