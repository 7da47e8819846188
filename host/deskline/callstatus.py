"""Wrap-up codes written back as queue_log CALLSTATUS lines.

Queue reporting tools (QueueMetrics and the like) read dispositions as
`epoch|uniqueid|queue|agent|CALLSTATUS|status||code` lines: data1 is the
status and data3 the tool's own disposition code.  We write them to a log of
our own, never into the ACD's queue_log, which belongs to Asterisk; a site
points its reporting tool at both.  Only calls the ACD named get a line: a
disposition under an id the ACD never logged would be noise to those tools.

The position (the last wrap-up written) is kept in the store's meta table
after the line is on disk, so a crash between the two repeats a line rather
than losing one; a reporting tool takes the last CALLSTATUS of a call.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deskline.store import Store

META_KEY = "callstatus_rowid"

# A wrap-up joined to its call and the ACD call behind it.  rowid orders
# the wrap-ups as the store received them.
_NEW_WRAPUPS = """
SELECT w.rowid AS rowid, w.at AS at, w.code AS code, w.acw_s AS acw_s, w.how AS how,
       w.agent AS agent, w.account AS account, w.failure_demand AS failure_demand,
       c.acd_call_id AS uniqueid, a.queue AS queue
FROM wrapups w
LEFT JOIN calls c
  ON c.console_id = w.console_id AND c.journal_epoch = w.journal_epoch AND c.seq = w.call_seq
LEFT JOIN acd_calls a ON a.uniqueid = c.acd_call_id AND c.acd_call_id != ''
WHERE w.rowid > ?
ORDER BY w.rowid
LIMIT ?
"""


@dataclass(frozen=True)
class WrapUp:
    rowid: int
    at: float
    code: int
    acw_s: int
    agent: str | None
    account: str | None
    uniqueid: str
    queue: str | None


def new_wrapups(store: Store, after: int, limit: int = 500) -> list[WrapUp]:
    """Wrap-ups the store took after rowid `after`, oldest first."""
    return [_wrapup(r) for r in store.query(_NEW_WRAPUPS, (after, limit))]


def _wrapup(r: dict[str, Any]) -> WrapUp:
    return WrapUp(
        rowid=int(r["rowid"]),
        at=float(r["at"]),
        code=int(r["code"]),
        acw_s=int(r["acw_s"]),
        agent=r["agent"],
        account=r["account"],
        uniqueid=str(r["uniqueid"] or ""),
        queue=r["queue"],
    )


def position(store: Store) -> int:
    rows = store.query("SELECT value FROM meta WHERE key = ?", (META_KEY,))
    return int(rows[0]["value"]) if rows else 0


def set_position(store: Store, rowid: int) -> None:
    with store.transaction() as cur:
        cur.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (META_KEY, str(rowid)),
        )


def line(w: WrapUp) -> str | None:
    """The CALLSTATUS line for a wrap-up, or None when the ACD never named the call."""
    if not w.uniqueid or not w.queue:
        return None
    member = f"Agent/{w.agent}" if w.agent else "NONE"
    code = str(w.code)
    return "|".join((str(int(w.at)), w.uniqueid, w.queue, member, "CALLSTATUS", code, "", code))


class CallStatusLog:
    """Appends CALLSTATUS lines; each batch is on disk before it returns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, lines: list[str]) -> None:
        if not lines:
            return
        # Opened per batch: a log rotated away by logrotate is recreated.
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("".join(text + "\n" for text in lines))
            f.flush()
            os.fsync(f.fileno())
