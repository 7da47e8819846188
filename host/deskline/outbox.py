"""The persistent outbox: what must reach a client's system, until it has.

A row is written in the same transaction as the change it announces (an
escalation adopted, cancelled), so a crash can never leave one without the
other.  Its idempotency key is fixed then and derived from the event
(`<ext_id>/<event>`, unique in the table), and its body is stored as it
will be sent: every retry, before or after a crash, carries the same bytes
under the same key, and the client refuses what it already has.

Each attempt first takes a lease (attempts + 1, next try pushed past the
attempt's timeout) and commits it, then sends, then records the outcome.
Killed anywhere in between, the daemon finds the row due again once the
lease runs out and sends it again under its one key: at least once on the
wire, exactly once at a client that honours the key.

Rows of one escalation go out in order (a cancel never overtakes its
trigger); retries back off exponentially with jitter up to a cap, and a row
undelivered after `give_up_s` is given up, which the caller reports.

Every function takes a cursor in the caller's write transaction
(`Store.transaction()`, on the writer thread).
"""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Retry:
    """Backoff between attempts, and when to stop trying."""

    base_s: float = 2.0
    cap_s: float = 300.0
    give_up_s: float = 86400.0

    def delay(self, attempts: int, rng: random.Random | None = None) -> float:
        """The wait after `attempts` failed attempts: the exponential step
        (base, 2 base, 4 base ... up to the cap) with "equal jitter", half of
        it fixed and half random, so retries of many rows after one outage
        spread out but none comes back at once."""
        step = min(self.cap_s, self.base_s * 2.0 ** min(max(attempts, 1) - 1, 62))
        return step / 2 + (rng or random).random() * step / 2


@dataclass(frozen=True)
class Item:
    """One outbox row."""

    id: int
    idem_key: str
    target: str  # the account key, or "supervisor" for floor help
    url: str
    event: str  # trigger | cancel
    ext_id: str
    body: bytes
    created: float
    attempts: int
    next_try: float
    last_status: int | None
    last_error: str
    delivered: float | None
    gave_up: float | None


_COLS = (
    "id, idem_key, target, url, event, ext_id, body, created, attempts, next_try, "
    "last_status, last_error, delivered, gave_up"
)


def _item(row: Any) -> Item:
    values = list(row)
    values[6] = bytes(values[6])
    return Item(*values)


def idem_key(ext_id: str, event: str) -> str:
    """The one key an event is ever sent under (derived, so it cannot change)."""
    return f"{ext_id}/{event}"


def enqueue(
    cur: sqlite3.Cursor,
    *,
    target: str,
    url: str,
    event: str,
    ext_id: str,
    body: bytes,
    now: float,
) -> int | None:
    """Queues an event for delivery now; None when it was already queued (the
    key is unique: enqueueing twice never makes a second key or row)."""
    cur.execute(
        "INSERT INTO outbox (idem_key, target, url, event, ext_id, body, created, next_try)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (idem_key) DO NOTHING",
        (idem_key(ext_id, event), target, url, event, ext_id, body, now, now),
    )
    return cur.lastrowid if cur.rowcount == 1 else None


def get(cur: sqlite3.Cursor, key: str) -> Item | None:
    row = cur.execute(f"SELECT {_COLS} FROM outbox WHERE idem_key = ?", (key,)).fetchone()
    return None if row is None else _item(row)


def due(
    cur: sqlite3.Cursor, now: float, limit: int = 32, busy: frozenset[int] = frozenset()
) -> list[Item]:
    """Rows to attempt now, oldest first; a row waits while an earlier row of
    the same escalation is undelivered, and rows in `busy` (in flight) are left."""
    rows = cur.execute(
        f"SELECT {_COLS} FROM outbox o WHERE delivered IS NULL AND gave_up IS NULL"
        " AND next_try <= ? AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.ext_id = o.ext_id"
        " AND p.id < o.id AND p.delivered IS NULL AND p.gave_up IS NULL)"
        " ORDER BY next_try, id LIMIT ?",
        (now, limit + len(busy)),
    ).fetchall()
    return [it for it in map(_item, rows) if it.id not in busy][:limit]


def next_try(cur: sqlite3.Cursor) -> float | None:
    """When the next pending row falls due (None: nothing pending)."""
    row = cur.execute(
        "SELECT min(next_try) FROM outbox WHERE delivered IS NULL AND gave_up IS NULL"
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def begin_attempt(cur: sqlite3.Cursor, item_id: int, now: float, lease_s: float) -> Item:
    """Counts the attempt and leases the row for lease_s; commit before sending."""
    cur.execute(
        "UPDATE outbox SET attempts = attempts + 1, next_try = ? WHERE id = ?",
        (now + lease_s, item_id),
    )
    row = cur.execute(f"SELECT {_COLS} FROM outbox WHERE id = ?", (item_id,)).fetchone()
    if row is None:
        raise KeyError(f"outbox row {item_id} is gone")
    return _item(row)


def delivered(cur: sqlite3.Cursor, item_id: int, now: float, status: int) -> None:
    cur.execute(
        "UPDATE outbox SET delivered = coalesce(delivered, ?), last_status = ?, last_error = ''"
        " WHERE id = ?",
        (now, status, item_id),
    )


def failed(
    cur: sqlite3.Cursor,
    item_id: int,
    now: float,
    status: int | None,
    error: str,
    retry: Retry,
    rng: random.Random | None = None,
) -> bool:
    """Records a failed attempt and schedules the next; True when the row was
    given up (undelivered for retry.give_up_s)."""
    row = cur.execute("SELECT created, attempts FROM outbox WHERE id = ?", (item_id,)).fetchone()
    if row is None:
        return False
    created, attempts = float(row[0]), int(row[1])
    give_up = now - created >= retry.give_up_s
    cur.execute(
        "UPDATE outbox SET last_status = ?, last_error = ?, next_try = ?,"
        " gave_up = CASE WHEN ? THEN ? ELSE gave_up END WHERE id = ?",
        (status, error[:500], now + retry.delay(attempts, rng), give_up, now, item_id),
    )
    return give_up


def give_up(cur: sqlite3.Cursor, item_id: int, now: float, reason: str) -> None:
    """Stops trying a row (e.g. a trigger never sent when the desk cancelled)."""
    cur.execute(
        "UPDATE outbox SET gave_up = coalesce(gave_up, ?), last_error = ?"
        " WHERE id = ? AND delivered IS NULL",
        (now, reason[:500], item_id),
    )


def for_escalation(cur: sqlite3.Cursor, ext_id: str) -> list[Item]:
    rows = cur.execute(
        f"SELECT {_COLS} FROM outbox WHERE ext_id = ? ORDER BY id", (ext_id,)
    ).fetchall()
    return [_item(r) for r in rows]
