"""Escalations on the wire to a client's system: the body, its signature, the send.

The body carries the case so the client's hotline never asks the agent to
restate it (account, queue, desk and agent, the ACD call id, time on the
call, the caller's earlier contacts and how each was coded).  It is built
once, stored in the outbox, and sent as the same bytes on every attempt.

Signing is HMAC-SHA256 with the account's shared secret over
`<timestamp>.<body>`, sent as

    Deskline-Signature: t=1714557123,v1=5f0c...e1

(the shape Stripe and others use: the timestamp bounds replays, `v1` names
the scheme, several `v1` may be listed while a secret is rotated).  The
client's callbacks to us are signed the same way; `verify` checks both.
`docs/escalations.md` shows a client's check in a few lines.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from deskline.errors import DesklineError

SCHEMA = "deskline.escalation/1"
SIGNATURE_HEADER = "Deskline-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
EVENT_HEADER = "Deskline-Event"
ATTEMPT_HEADER = "Deskline-Attempt"
TOLERANCE_S = 300  # a signature older (or newer) than this is refused
USER_AGENT = "deskline-webhook/1"
KINDS = {0: "client", 1: "floor_help"}
SEVERITY_NAMES = {1: "urgent", 2: "high", 3: "normal", 4: "low"}


class SignatureError(DesklineError):
    """A signature that does not check out; `code` names why, for API replies."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The Deskline-Signature header value for body at timestamp (Unix seconds)."""
    return f"t={timestamp},v1={_mac(secret, body, timestamp)}"


def _mac(secret: bytes, body: bytes, timestamp: int) -> str:
    return hmac.new(secret, b"%d." % timestamp + body, hashlib.sha256).hexdigest()


def verify(
    secret: bytes,
    header: str | None,
    body: bytes,
    now: float | None = None,
    tolerance_s: float = TOLERANCE_S,
) -> int:
    """Checks a Deskline-Signature header; returns its timestamp.

    SignatureError (code missing_signature, malformed_signature,
    stale_signature or bad_signature) says what is wrong.
    """
    if not header:
        raise SignatureError("missing_signature", f"no {SIGNATURE_HEADER} header")
    stamp: int | None = None
    macs: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t" and value.isdigit():
            stamp = int(value)
        elif key == "v1":
            macs.append(value.lower())
    if stamp is None or not macs:
        raise SignatureError(
            "malformed_signature",
            f"{SIGNATURE_HEADER} must read t=<unix seconds>,v1=<hex HMAC-SHA256>",
        )
    skew = (time.time() if now is None else now) - stamp
    if abs(skew) > tolerance_s:
        raise SignatureError(
            "stale_signature",
            f"the signature's timestamp is {abs(skew):.0f} s "
            f"{'old' if skew > 0 else 'ahead'}; at most {tolerance_s:.0f} s is accepted "
            "(sign each request when it is sent; check the clock)",
        )
    want = _mac(secret, body, stamp)
    if not any(hmac.compare_digest(want, mac) for mac in macs):
        raise SignatureError(
            "bad_signature",
            "the signature does not match: sign '<t>.<body>' with HMAC-SHA256 "
            "and the account's shared secret",
        )
    return stamp


def iso(t: float | None) -> str | None:
    """UTC, to the second, as the body carries times."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def canonical(obj: Any) -> bytes:
    """Compact JSON with sorted keys: the same case always makes the same bytes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# --- the case ---------------------------------------------------------------------


@dataclass(frozen=True)
class Contact:
    """One of the caller's earlier contacts, as the ACD and the desks knew it."""

    acd_call_id: str
    at: float
    queue: str
    outcome: str
    agent: str | None = None
    talk_s: int | None = None
    code: int | None = None  # the wrap-up code keyed at the desk
    label: str = ""
    failure_demand: bool | None = None

    def as_json(self) -> dict[str, Any]:
        wrapup = None
        if self.code is not None:
            wrapup = {"code": self.code, "label": self.label, "failure_demand": self.failure_demand}
        return {
            "acd_call_id": self.acd_call_id,
            "at": iso(self.at),
            "queue": self.queue,
            "outcome": self.outcome,
            "agent": self.agent,
            "talk_s": self.talk_s,
            "wrapup": wrapup,
        }


@dataclass(frozen=True)
class Case:
    """Everything the client needs to act on an escalation without a callback to the desk."""

    ext_id: str
    kind: int  # 0 client escalation, 1 floor help
    severity: int
    raised: float
    ack_due: float | None
    resolve_due: float | None
    clock: str  # "24/7" or the business hours the deadlines count in
    account: str | None = None
    account_name: str = ""
    hotline: str = ""
    queue: str | None = None
    desk: str | None = None
    console: str = ""
    agent: str | None = None
    agent_name: str = ""
    acd_call_id: str = ""
    callerid: str = ""
    call_started: float | None = None
    time_on_call_s: int | None = None
    repeat_count: int = 0
    earlier: tuple[Contact, ...] = ()
    links: Mapping[str, str] = field(default_factory=dict)

    def context(self) -> dict[str, Any]:
        """The case as the trigger body carries it (also kept in the store)."""
        return {
            "ext_id": self.ext_id,
            "kind": KINDS.get(self.kind, str(self.kind)),
            "raised_at": iso(self.raised),
            "severity": {"level": self.severity, "name": SEVERITY_NAMES.get(self.severity, "")},
            "sla": {
                "acknowledge_by": iso(self.ack_due),
                "resolve_by": iso(self.resolve_due),
                "clock": self.clock,
            },
            "account": {"key": self.account, "name": self.account_name, "hotline": self.hotline},
            "queue": self.queue,
            "desk": {"name": self.desk, "console": self.console},
            "agent": {"id": self.agent, "name": self.agent_name},
            "call": {
                "acd_call_id": self.acd_call_id,
                "callerid": self.callerid,
                "started_at": iso(self.call_started),
                "time_on_call_s": self.time_on_call_s,
            },
            "caller": {
                "repeat_contacts": self.repeat_count,
                "earlier_contacts": [c.as_json() for c in self.earlier],
            },
        }


def trigger_body(case: Case) -> bytes:
    body: dict[str, Any] = {"schema": SCHEMA, "event": "trigger", **case.context()}
    if case.links:
        body["links"] = dict(case.links)
    return canonical(body)


def cancel_body(ext_id: str, cancelled: float, reason: str = "cancelled at the desk") -> bytes:
    return canonical(
        {
            "schema": SCHEMA,
            "event": "cancel",
            "ext_id": ext_id,
            "cancelled_at": iso(cancelled),
            "reason": reason,
        }
    )


# --- sending ----------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """How one attempt went: ok covers 2xx and 409 (the client already has it)."""

    ok: bool
    status: int | None
    error: str = ""

    @property
    def duplicate(self) -> bool:
        return self.status == 409


def headers(
    secret: bytes, body: bytes, *, key: str, event: str, attempt: int, now: float
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        IDEMPOTENCY_HEADER: key,
        EVENT_HEADER: event,
        ATTEMPT_HEADER: str(attempt),
        SIGNATURE_HEADER: sign(secret, body, int(now)),
    }


async def send(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    *,
    secret: bytes,
    key: str,
    event: str,
    attempt: int = 1,
    timeout_s: float = 10.0,
    now: float | None = None,
) -> Outcome:
    """One POST of a stored body, signed now; never raises for the network's faults."""
    hdrs = headers(
        secret, body, key=key, event=event, attempt=attempt, now=time.time() if now is None else now
    )
    try:
        reply = await client.post(url, content=body, headers=hdrs, timeout=timeout_s)
    except httpx.TimeoutException:
        return Outcome(False, None, f"no answer within {timeout_s:g} s")
    except httpx.HTTPError as e:
        return Outcome(False, None, f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
    status = reply.status_code
    if 200 <= status < 300 or status == 409:
        return Outcome(True, status)
    text = reply.text.strip().replace("\n", " ")[:200]
    return Outcome(False, status, f"HTTP {status}" + (f": {text}" if text else ""))
