"""`deskline monitor`: a console's frames, decoded live, for technicians."""

from __future__ import annotations

import json
import time

from deskline.serial_link import ConsoleLink
from deskline.wire import Message, codec

_KEEPALIVE_S = 2.0
EVENT_NAMES = {
    codec.EV_PRESS: "press",
    codec.EV_CALL_START: "call_start",
    codec.EV_CALL_END: "call_end",
    codec.EV_WRAPUP: "wrapup",
    codec.EV_ESC_RAISE: "esc_raise",
    codec.EV_ESC_CANCEL: "esc_cancel",
    codec.EV_CODE_REFUSED: "code_refused",
    codec.EV_STATE: "state",
    codec.EV_BOOT: "boot",
    codec.EV_CONFIG: "config",
    codec.EV_JOURNAL_GAP: "journal_gap",
    codec.EV_WRAP_REQUEST: "wrap_request",
    codec.EV_LOST: "lost",
}
KEY_LABELS = "0123456789*#E"
HOW = {
    codec.HOW_CODE: "entered",
    codec.HOW_TIMEOUT: "timeout, fallback",
    codec.HOW_SKIPPED: "skipped",
    codec.HOW_FORCED: "forced timeout",
    codec.HOW_INTERRUPTED: "interrupted by a call",
}


def describe(msg: Message) -> str:
    """One human line for a frame."""
    f = msg.fields
    if msg.name == "event":
        kind = EVENT_NAMES.get(f["kind"], f"kind{f['kind']}")
        extra = ""
        k = f["kind"]
        if k == codec.EV_PRESS:
            key = f["a"]
            extra = f" key={KEY_LABELS[key] if key < len(KEY_LABELS) else key}"
        elif k == codec.EV_WRAPUP:
            how = HOW.get(f["c"], str(f["c"]))
            extra = f" code={f['a']} acw={f['b']}s ({how}) call=#{f['ref']}"
        elif k == codec.EV_CALL_START:
            src = "handset" if f["a"] == 1 else "host"
            extra = f" from {src}" + (f" acd={f['text']}" if f["text"] else "")
        elif k == codec.EV_CALL_END:
            extra = f" talk={f['b']}s call=#{f['ref']}"
        elif k == codec.EV_ESC_RAISE:
            what = "supervisor help" if f["c"] else "escalation"
            extra = f" {what} severity={f['a']} call=#{f['ref']}"
        else:
            extra = f" a={f['a']} b={f['b']} c={f['c']} ref={f['ref']}"
            if f["text"]:
                extra += f" text={f['text']!r}"
        return f"event #{f['seq']} {kind}{extra}"
    if msg.name == "status":
        lines = " | ".join(f[f"line{i}"] for i in range(4))
        return f"status [{lines}] leds={f['led_floor']},{f['led_personal']},{f['led_escalation']}"
    if msg.name == "heartbeat":
        return (
            f"heartbeat up={f['uptime_ms'] // 1000}s heap={f['free_heap']}/{f['min_free_heap']} "
            f"journal={f['journal_depth']} rx_err={f['rx_errors']} retx={f['retransmits']}"
        )
    if msg.name == "hello":
        return (
            f"hello {f['device_id']} board={f['board']} fw={f['fw_version']} "
            f"app={f['app_version']} reason=0x{f['reboot_reason']:02x} "
            f"journal={f['journal_depth']} next_seq={f['next_seq']}"
        )
    return f"{msg.name} {f}"


def monitor(
    port: str, baud: int = 115200, as_json: bool = False, ack: bool = True, seconds: float = 0.0
) -> int:
    end = time.monotonic() + seconds if seconds else None
    with ConsoleLink(port, baud) as link:
        link.send(codec.HELLO_REQ)
        next_keepalive = 0.0
        acked: int | None = None
        while end is None or time.monotonic() < end:
            now = time.monotonic()
            if now >= next_keepalive:
                t = time.time()
                link.send(codec.KEEPALIVE, epoch=int(t), ms=int(t * 1000) % 1000)
                next_keepalive = now + _KEEPALIVE_S
            msg = link.recv(0.2)
            if msg is None:
                continue
            if as_json:
                fields = {
                    k: (v.hex() if isinstance(v, bytes) else v) for k, v in msg.fields.items()
                }
                print(json.dumps({"type": msg.name, **fields}), flush=True)
            else:
                print(time.strftime("%H:%M:%S"), describe(msg), flush=True)
            if not ack:
                continue
            if msg.name == "hello":
                acked = max(acked or 0, msg["first_unacked"] - 1)
            elif msg.name == "event" and (acked is None or msg["seq"] <= acked + 1):
                # Cumulative: only a gap-free run may be acknowledged.
                acked = max(acked or 0, msg["seq"])
                link.send(codec.ACK, seq=acked)
    return 0
