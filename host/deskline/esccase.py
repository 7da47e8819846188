"""The case an escalation carries to the client: what the store knows of the call and caller.

Gathered once, when the service adopts the escalation, in its transaction:
the desk's call (when it started), the ACD's record of it (queue, caller id,
repeat contacts, from `acd_calls`), and the caller's earlier contacts with
the wrap-up code each got at a desk, when the desk's call names the ACD's
call id.  What is not known is left empty, never guessed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from deskline.escpolicy import Policy
from deskline.floormodel import Account, Floor
from deskline.webhook import Case, Contact

EARLIER_LIMIT = 10  # the caller's most recent contacts, newest first
_CALL = (
    "SELECT started, acd_call_id FROM calls WHERE console_id = ? AND journal_epoch = ? AND seq = ?"
)


def build(
    cur: sqlite3.Cursor,
    row: Mapping[str, Any],
    ext_id: str,
    due: tuple[float, float],
    policy: Policy,
    floor: Floor | None,
    links: Mapping[str, str],
) -> Case:
    """The case for an escalations row (joined with its console's device_id)."""
    raised = float(row["raised"])
    call = cur.execute(_CALL, (row["console_id"], row["journal_epoch"], row["call_seq"])).fetchone()
    acd_id = row["acd_call_id"] or (call[1] if call else "") or ""
    acd = (
        cur.execute(
            "SELECT queue, callerid, entered, connected, repeat_count, account"
            " FROM acd_calls WHERE uniqueid = ?",
            (acd_id,),
        ).fetchone()
        if acd_id
        else None
    )
    account = row["account"]
    acct = floor.accounts.get(account or "") if floor else None
    desk = floor.desks.get(row["desk"] or "") if floor else None
    agent = floor.agents.get(row["agent"] or "") if floor else None
    # The ACD knows the queue; else the desk's, when it takes only one.
    queue = acd[0] if acd else (desk.queues[0] if desk and len(desk.queues) == 1 else None)
    callerid = str(acd[1]) if acd else ""
    started = float(call[0]) if call and call[0] is not None else None
    if started is None and acd and acd[3] is not None:
        started = float(acd[3])
    earlier: tuple[Contact, ...] = ()
    if acd and callerid and policy.history_days and row["kind"] == 0:
        earlier = _earlier(cur, acd[5] or account, callerid, float(acd[2]), policy, acct)
    return Case(
        ext_id=ext_id,
        kind=int(row["kind"]),
        severity=int(row["severity"]),
        raised=raised,
        ack_due=due[0],
        resolve_due=due[1],
        clock=policy.hours.describe(),
        account=account,
        account_name=acct.name if acct else "",
        hotline=acct.hotline if acct else "",
        queue=queue,
        desk=row["desk"],
        console=row["device_id"],
        agent=row["agent"],
        agent_name=agent.name if agent else "",
        acd_call_id=acd_id,
        callerid=callerid,
        call_started=started,
        time_on_call_s=max(0, round(raised - started)) if started is not None else None,
        repeat_count=int(acd[4]) if acd else 0,
        earlier=earlier,
        links=dict(links),
    )


def _earlier(
    cur: sqlite3.Cursor,
    account: str | None,
    callerid: str,
    entered: float,
    policy: Policy,
    acct: Account | None,
) -> tuple[Contact, ...]:
    rows = cur.execute(
        "SELECT uniqueid, entered, queue, outcome, agent, talk_s FROM acd_calls"
        " WHERE account IS ? AND callerid = ? AND entered < ? AND entered >= ?"
        " ORDER BY entered DESC LIMIT ?",
        (account, callerid, entered, entered - policy.history_days * 86400.0, EARLIER_LIMIT),
    ).fetchall()
    labels = {c.code: (c.label, c.failure_demand) for c in acct.codes} if acct else {}
    out = []
    for uid, at, queue, outcome, agent, talk in rows:
        # The desk's call that took this ACD call, near its time (calls are
        # indexed by account and start).
        code = cur.execute(
            "SELECT k.code, w.label, w.failure_demand FROM calls k LEFT JOIN wrapups w"
            " ON w.console_id = k.console_id AND w.journal_epoch = k.journal_epoch"
            " AND w.seq = k.wrapup_seq WHERE k.account IS ? AND k.started BETWEEN ? AND ?"
            " AND k.acd_call_id = ? AND k.code IS NOT NULL ORDER BY k.started DESC LIMIT 1",
            (account, at - 3600.0, at + 86400.0, uid),
        ).fetchone()
        number: int | None = None
        label = ""
        fd: bool | None = None
        if code is not None:
            number = int(code[0])
            known = labels.get(number, ("", None))
            label = code[1] or known[0]
            fd = bool(code[2]) if code[2] is not None else known[1]
        out.append(Contact(uid, float(at), queue, outcome, agent, talk, number, label, fd))
    return tuple(out)
