"""The ACD's calls in the store, and repeat contacts.

One `acd_calls` row per queue_log uniqueid, written as its events arrive:
entered, then connected, then its end.  Every write is an upsert on the
uniqueid, so replaying a queue_log after a restart lands on the same rows.

A repeat contact is the same caller (caller id, within one account) again
within the account's window (7 days unless the escalation policy says
otherwise).  It is decided when the call enters the queue, so the agent's
escalation can carry it; a repeat while an escalation about the caller is
still open is linked to that escalation: the client sees the caller had to
ring again.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from deskline.escpolicy import DEFAULT_REPEAT_DAYS

DAY_S = 86400.0

# Caller ids that name nobody: never a repeat of each other.
ANONYMOUS = frozenset({"", "anonymous", "unknown", "restricted", "private", "unavailable"})


@dataclass(frozen=True)
class Entered:
    uniqueid: str
    queue: str
    account: str | None
    callerid: str
    at: float
    origposition: int | None = None


@dataclass(frozen=True)
class Connected:
    uniqueid: str
    at: float
    agent: str | None
    hold_s: int


@dataclass(frozen=True)
class Ended:
    uniqueid: str
    queue: str
    account: str | None
    callerid: str
    entered: float
    connected: float | None
    ended: float
    outcome: str
    agent: str | None
    hold_s: int | None
    talk_s: int | None
    origposition: int | None
    flagged: str = ""


Change = Entered | Connected | Ended


@dataclass(frozen=True)
class Repeat:
    uniqueid: str
    callerid: str
    account: str
    repeat_of: str
    count: int
    escalation: str | None


def record(cur: sqlite3.Cursor, changes: list[Change], repeat_days: dict[str, int]) -> list[Repeat]:
    """Writes the changes in order, in the caller's transaction; returns new repeats."""
    repeats: list[Repeat] = []
    for ch in changes:
        if isinstance(ch, Entered):
            rep = _entered(cur, ch, repeat_days)
            if rep is not None:
                repeats.append(rep)
        elif isinstance(ch, Connected):
            cur.execute(
                "UPDATE acd_calls SET connected = ?, agent = coalesce(?, agent), hold_s = ?,"
                " outcome = CASE outcome WHEN 'waiting' THEN 'answered' ELSE outcome END"
                " WHERE uniqueid = ?",
                (ch.at, ch.agent, ch.hold_s, ch.uniqueid),
            )
        else:
            _ended(cur, ch, repeat_days)
    return repeats


def _entered(cur: sqlite3.Cursor, ch: Entered, repeat_days: dict[str, int]) -> Repeat | None:
    if not _insert(cur, ch.uniqueid, ch.queue, ch.account, ch.callerid, ch.at, ch.origposition):
        return None  # a replay: the row and its repeat flag are already there
    return _flag_repeat(cur, ch.uniqueid, ch.account, ch.callerid, ch.at, repeat_days)


def _ended(cur: sqlite3.Cursor, ch: Ended, repeat_days: dict[str, int]) -> None:
    # A call whose ENTERQUEUE the feed never saw (the log started mid-call)
    # still gets its row from the end record.
    inserted = _insert(
        cur, ch.uniqueid, ch.queue, ch.account, ch.callerid, ch.entered, ch.origposition
    )
    cur.execute(
        "UPDATE acd_calls SET connected = coalesce(?, connected), ended = ?, outcome = ?,"
        " agent = coalesce(?, agent), hold_s = coalesce(?, hold_s), talk_s = ?,"
        " origposition = coalesce(?, origposition), flagged = ?,"
        " callerid = CASE callerid WHEN '' THEN ? ELSE callerid END"
        " WHERE uniqueid = ?",
        (
            ch.connected,
            ch.ended,
            ch.outcome,
            ch.agent,
            ch.hold_s,
            ch.talk_s,
            ch.origposition,
            ch.flagged,
            ch.callerid,
            ch.uniqueid,
        ),
    )
    if inserted:
        _flag_repeat(cur, ch.uniqueid, ch.account, ch.callerid, ch.entered, repeat_days)


def _insert(
    cur: sqlite3.Cursor,
    uniqueid: str,
    queue: str,
    account: str | None,
    callerid: str,
    entered: float,
    origposition: int | None,
) -> bool:
    """Whether the call is new: a replay finds its row there already."""
    return bool(
        cur.execute(
            "INSERT INTO acd_calls (uniqueid, queue, account, callerid, entered, origposition)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (uniqueid) DO NOTHING",
            (uniqueid, queue, account, callerid, entered, origposition),
        ).rowcount
    )


def _flag_repeat(
    cur: sqlite3.Cursor,
    uniqueid: str,
    account: str | None,
    callerid: str,
    at: float,
    repeat_days: dict[str, int],
) -> Repeat | None:
    if account is None or callerid.strip().lower() in ANONYMOUS:
        return None
    window = repeat_days.get(account, DEFAULT_REPEAT_DAYS) * DAY_S
    earlier = cur.execute(
        "SELECT uniqueid FROM acd_calls WHERE account = ? AND callerid = ?"
        " AND entered >= ? AND entered < ? AND uniqueid != ? ORDER BY entered DESC",
        (account, callerid, at - window, at, uniqueid),
    ).fetchall()
    if not earlier:
        return None
    open_esc = cur.execute(
        "SELECT ext_id FROM escalations WHERE account = ? AND callerid = ? AND kind = 0"
        " AND ext_id IS NOT NULL AND status NOT IN (3, 5) ORDER BY raised DESC LIMIT 1",
        (account, callerid),
    ).fetchone()
    esc = open_esc[0] if open_esc else None
    cur.execute(
        "UPDATE acd_calls SET repeat_of = ?, repeat_count = ?, escalation = ? WHERE uniqueid = ?",
        (earlier[0][0], len(earlier), esc, uniqueid),
    )
    return Repeat(uniqueid, callerid, account, earlier[0][0], len(earlier), esc)
