"""Terminal views of the daemon's floor: `deskline status` and `devices`.

Each desk shows what its console shows — state, the three LED layers and
the OLED's first line — so a supervisor at a terminal sees the floor as it
looks from the aisle; offline desks say so in words as well as colour.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from deskline import control
from deskline.errors import DesklineError

# LED state ids (firmware/leds.py, docs/leds.md): name and colour.
LED = {
    0: ("floor ?", "grey50"),
    1: ("SL green", "green"),
    2: ("SL amber", "yellow"),
    3: ("SL red", "red"),
    4: ("stale", "grey50"),
    5: ("ready", "green"),
    6: ("on call", "blue"),
    7: ("wrap due", "yellow"),
    8: ("wrap late", "red"),
    9: ("journal full", "magenta"),
    10: ("-", "grey50"),
    11: ("esc pending", "yellow"),
    12: ("esc acked", "cyan"),
    13: ("esc BREACHED", "bold red"),
    14: ("help", "magenta"),
    15: ("saved", "green"),
}
STATES = {0: "READY", 1: "ON CALL", 2: "WRAP-UP"}


def led(state: Any) -> Text:
    name, colour = LED.get(int(state), (f"led {state}", "white")) if state is not None else ("", "")
    return Text(f"● {name}", style=colour) if name else Text("")


def desk_rows(reply: dict[str, Any]) -> list[dict[str, Any]]:
    """Desks in floor order (row, col), then consoles not on the floor."""
    return sorted(
        reply["desks"], key=lambda d: (d["row"] or 999, d["col"], d["desk"], d["console"])
    )


def status_table(reply: dict[str, Any]) -> Group:
    head = Text()
    head.append(f"{reply['floor'] or 'floor (no config)'}  ", style="bold")
    head.append(
        f"{reply['online']}/{len(reply['desks'])} online · {reply['events_per_s']:.1f} events/s · "
        f"{reply['committed_events']} stored"
    )
    if reply.get("store_failures"):
        head.append(f" · {reply['store_failures']} store failures", style="bold red")
    if reply.get("floor_errors"):
        head.append(f"\nfloor config errors ({len(reply['floor_errors'])}): ", style="bold red")
        head.append(reply["floor_errors"][0])
    parts: list[Any] = [head]
    if reply.get("service"):
        parts.append(service_table(reply["service"]))
    table = Table(expand=True, pad_edge=False, show_edge=False)
    for col in (
        "desk",
        "agent",
        "account",
        "state",
        "floor",
        "personal",
        "escalation",
        "display",
        "link",
    ):
        table.add_column(col, overflow="ellipsis", no_wrap=True)
    for d in desk_rows(reply):
        m = d["mirror"]
        link = d["link"]
        if d["online"] and m:
            state = Text(STATES.get(m.get("state", -1), "?"))
            lights = [
                led(m.get("led_floor")),
                led(m.get("led_personal")),
                led(m.get("led_escalation")),
            ]
            display = m.get("line0", "") + (" | " + m["line1"] if m.get("line1") else "")
        else:
            state = Text("OFFLINE", style="bold red reverse")
            lights = [Text(""), Text(""), Text("")]
            display = link.get("error") or link.get("state", "")
        health = f"{link.get('frames_in', 0)} fr"
        if link.get("bad_frames"):
            health += f" · {link['bad_frames']} bad"
        if link.get("reconnects"):
            health += f" · {link['reconnects']} reconn"
        age = link.get("last_frame_age")
        if age is not None and age > 15:
            health += f" · silent {age:.0f}s"
        table.add_row(
            d["desk"] or "(not on floor)",
            d["agent"] or "",
            d["account"],
            state,
            *lights,
            display,
            health,
        )
    return Group(*parts, table)


BANDS = {0: ("no calls", "dim"), 1: ("GREEN", "green"), 2: ("AMBER", "yellow"), 3: ("RED", "red")}


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}%"


def service_table(rows: list[dict[str, Any]]) -> Table:
    """Service level per account: the light, this interval and today, who waits."""
    table = Table(expand=True, pad_edge=False, show_edge=False)
    for col in (
        "account",
        "light",
        "SL interval",
        "SL today",
        "target",
        "offered",
        "ASA",
        "abandoned",
        "waiting",
    ):
        table.add_column(col, no_wrap=True)
    for r in rows:
        name, colour = BANDS.get(int(r["band"]), ("?", "white"))
        asa = r.get("asa_today_s")
        wait = f"{r['waiting']}"
        if r.get("longest_waiting_s"):
            wait += f" (longest {r['longest_waiting_s']:.0f}s)"
        table.add_row(
            r["name"],
            Text(f"■ {name}", style=colour),
            _pct(r.get("sl_interval")),
            _pct(r.get("sl_today")),
            f"{r['target_pct']}/{r['threshold_s']}s ({r['variant']})",
            str(r.get("offered_today", 0)),
            "-" if asa is None else f"{asa:.0f}s",
            _pct(r.get("abandon_rate_today_pct")),
            wait,
        )
    return table


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


def watch(socket_path: Path, interval: float = 0.5, once: bool = False) -> int:
    """The live terminal floor view, until Ctrl-C."""
    out = console()
    if once:
        out.print(status_table(control.request(socket_path, {"op": "status"})))
        return 0
    with Live(console=out, auto_refresh=False, screen=False) as live:
        while True:
            try:
                view: Any = status_table(control.request(socket_path, {"op": "status"}))
            except DesklineError as e:
                view = Text(f"{e} — retrying", style="bold red")
            live.update(view, refresh=True)
            time.sleep(interval)
