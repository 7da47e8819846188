"""Names for what a console reports in numbers: LED states, agent states, reboot reasons.

The firmware sends ids to save bytes on the wire (firmware/leds.py,
firmware/bootinfo.py, docs/leds.md); every view of the floor — the web
dashboard, `deskline status`, `/metrics` — names them from this one table.
Colours are the pixel's colour in words (a CSS class on the dashboard, a
rich style in the terminal); every state also has a name, so none is told
by colour alone.
"""

from __future__ import annotations

from typing import Any

# id: (name, colour, layer)
LEDS: dict[int, tuple[str, str, str]] = {
    0: ("no SL yet", "grey", "floor"),
    1: ("SL green", "green", "floor"),
    2: ("SL amber", "amber", "floor"),
    3: ("SL red", "red", "floor"),
    4: ("stale", "grey", "floor"),
    5: ("ready", "green", "personal"),
    6: ("on call", "blue", "personal"),
    7: ("wrap due", "amber", "personal"),
    8: ("wrap late", "red", "personal"),
    9: ("journal full", "magenta", "personal"),
    10: ("none", "off", "escalation"),
    11: ("esc pending", "amber", "escalation"),
    12: ("esc acked", "cyan", "escalation"),
    13: ("esc BREACHED", "red", "escalation"),
    14: ("help", "magenta", "escalation"),
    15: ("saved", "green", "personal"),
}
LAYERS = ("floor", "personal", "escalation")

# STATUS.state (firmware/agent.py)
AGENT_STATES = {0: "ready", 1: "on_call", 2: "wrap_up"}

# HELLO/HEARTBEAT reboot_reason (firmware/bootinfo.py): < 0x80 announced.
REBOOT_REASONS = {
    0x01: "power on",
    0x02: "host reboot",
    0x03: "REPL exit",
    0x04: "app update",
    0x05: "firmware update",
    0x06: "config reset",
    0x80: "unexpected reset",
    0x81: "crash",
    0x82: "watchdog",
}

# machine.reset_cause() on the esp32 port
RESET_CAUSES = {1: "power on", 2: "hard reset", 3: "watchdog", 4: "deep sleep", 5: "soft reset"}


def led(state_id: Any) -> dict[str, Any] | None:
    """{"id", "name", "colour"} for an LED state id; None when not known."""
    if state_id is None:
        return None
    i = int(state_id)
    name, colour, _ = LEDS.get(i, (f"led {i}", "grey", ""))
    return {"id": i, "name": name, "colour": colour}


def reboot_reason(code: Any) -> str | None:
    if code is None:
        return None
    return REBOOT_REASONS.get(int(code), f"0x{int(code):02x}")
