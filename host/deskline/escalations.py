"""The escalation service: from the desk's ESCALATE to the client's answer, on the clock.

The store already holds each escalation the moment its ESC_RAISE committed
(`store.py` derives the row in the event's transaction).  This service,
run by the daemon, takes it from there:

- adopts each new row: gives it the id the client sees (`ext_id`), its
  acknowledge and resolve deadlines from the account's policy
  (`escpolicy`), the case context (`webhook.Case`), and queues the trigger
  in the outbox, all in one transaction;
- delivers the outbox (`outbox`, `webhook.send`): delivered, or retried
  with backoff, or given up and reported to the desk as failed;
- sends a cancel event when the desk cancels;
- marks missed deadlines (breached) and tells the desk;
- takes the client's acknowledge/resolve (signed callback, `web.py`) and
  the supervisor's (`deskline escalation ack|resolve`), and tells the desk
  at once.

Floor help (kind 1, a long press of `*`) runs the same lifecycle toward the
floor supervisors: the floor's `[help]` policy, delivered when a
supervisor's view lists it (or by a help webhook), answered by the
supervisor CLI.

Every store read and write runs on the writer thread (`StoreWriter.call`);
a desk is told what a transaction committed, right after it, in commit
order, so a desk never shows an older state over a newer one.  A crash
anywhere loses nothing: each step is decided again from the committed rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from deskline import esccase, escpolicy, outbox, webhook
from deskline.errors import DesklineError
from deskline.escpolicy import Policy
from deskline.floormodel import Floor
from deskline.store import Store
from deskline.wire import codec
from deskline.writer import StoreWriter

log = logging.getLogger("deskline.escalations")

RAISED = codec.ESC_RAISED
DELIVERED = codec.ESC_DELIVERED
ACKED = codec.ESC_ACKED
RESOLVED = codec.ESC_RESOLVED
BREACHED = codec.ESC_BREACHED
CANCELLED = codec.ESC_CANCELLED
FAILED = codec.ESC_FAILED
STATUS_NAMES = {
    RAISED: "raised",
    DELIVERED: "delivered",
    ACKED: "acknowledged",
    RESOLVED: "resolved",
    BREACHED: "breached",
    CANCELLED: "cancelled",
    FAILED: "failed",
}
KIND_NAMES = {0: "client", 1: "floor_help"}
SUPERVISOR = "supervisor"  # the outbox target of floor help
NO_DEADLINE = 0x7FFFFFFF
ACTIONS = ("acknowledge", "resolve")
CALLBACK_PATH = "/api/v1/callbacks"  # served by web.py
MAX_TICKET = 64
_LIVE = (RAISED, DELIVERED, ACKED, BREACHED)  # the SLA clocks run

# One desk push: the device, and the ESC_STATUS fields (deadline as a time).
Push = Callable[[str, dict[str, Any], Callable[[int], None]], bool]


class EscalationError(DesklineError):
    """A request about an escalation that cannot be done; `code` and `http`
    are for API replies (`unknown_escalation` 404, `conflict` 409, ...)."""

    def __init__(self, code: str, http: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.http = http


@dataclass(frozen=True)
class Policies:
    """The floor's policies, resolved once per floor file."""

    floor: Floor | None
    accounts: Mapping[str, Policy] = field(default_factory=dict)
    help: Policy = escpolicy.HELP_POLICY

    def of(self, kind: int, account: str | None) -> Policy:
        if kind == 1:
            return self.help
        return self.accounts.get(account or "", Policy())

    def of_target(self, target: str) -> Policy:
        return self.help if target == SUPERVISOR else self.accounts.get(target, Policy())

    def hotline(self, account: str | None) -> str:
        acct = self.floor.accounts.get(account or "") if self.floor else None
        return acct.hotline if acct else ""


def build_policies(floor: Floor | None) -> tuple[Policies, list[escpolicy.Finding]]:
    """Every account's policy and what the daemon should log about them (a
    secret in clear, an unset secret variable): the floor check has already
    refused anything worse."""
    findings: list[escpolicy.Finding] = []
    accounts: dict[str, Policy] = {}
    for key, acct in (floor.accounts if floor else {}).items():
        where = f"accounts.{key}.escalation"
        raw = acct.extra.get("escalation")
        policy, found = (
            escpolicy.check_account(raw, where) if isinstance(raw, Mapping) else (Policy(), [])
        )
        accounts[key] = policy
        findings += found + escpolicy.secret_findings(policy, where)
    raw_help = floor.extra.get("help") if floor is not None else None
    help_ = escpolicy.HELP_POLICY
    if isinstance(raw_help, Mapping):
        help_, found = escpolicy.check_help(raw_help)
        findings += found + escpolicy.secret_findings(help_, "help")
    return Policies(floor, accounts, help_), findings


def ext_id_for(device_id: str, journal_epoch: int, seq: int) -> str:
    """The client-facing id: fixed by the escalation's key, so it never changes."""
    return f"DL-{device_id}-{journal_epoch}-{seq}"


def current_deadline(row: Mapping[str, Any]) -> float | None:
    """The deadline the desk counts down to: acknowledge, then resolve; once
    one is missed, the missed one (the desk counts past it)."""
    status = row["status"]
    acked = row.get("acked") is not None or status == ACKED
    if status in (RAISED, DELIVERED):
        return _float(row.get("ack_due"))
    if status == ACKED:
        return _float(row.get("resolve_due"))
    if status == BREACHED:
        late_resolve = "resolve" in (row.get("breached") or "")
        return _float(row.get("resolve_due") if acked or late_resolve else row.get("ack_due"))
    return None


def _float(v: Any) -> float | None:
    return None if v is None else float(v)


def _missed(row: Mapping[str, Any], now: float) -> list[str]:
    """The deadlines the escalation has missed by now (not yet recorded ones too)."""
    missed = [m for m in (row.get("breached") or "").split(",") if m]
    status = row["status"]
    if status not in _LIVE:
        return missed
    ack_due, resolve_due = row.get("ack_due"), row.get("resolve_due")
    acked = row.get("acked") is not None or status == ACKED
    if "ack" not in missed and not acked and ack_due is not None and now > ack_due:
        missed.append("ack")
    if "resolve" not in missed and resolve_due is not None and now > resolve_due:
        missed.append("resolve")
    return missed


def _dicts(cur: sqlite3.Cursor, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
    c = cur.execute(sql, tuple(params))
    names = [d[0] for d in c.description]
    return [dict(zip(names, row, strict=True)) for row in c.fetchall()]


_ROW = (
    "SELECT e.console_id, e.journal_epoch, e.seq, e.call_seq, e.acd_call_id, e.kind,"
    " e.severity, e.status, e.ticket, e.deadline, e.raised, e.updated, e.desk, e.agent,"
    " e.account, e.ext_id, e.queue, e.callerid, e.repeat_count, e.ack_due, e.resolve_due,"
    " e.delivered, e.acked, e.resolved, e.cancelled, e.breached, c.device_id,"
    " e.journal_epoch = c.journal_epoch AS current"
    " FROM escalations e JOIN consoles c ON c.id = e.console_id"
)
_KEY = "console_id = ? AND journal_epoch = ? AND seq = ?"
_HISTORY = (
    "INSERT INTO escalation_history (console_id, journal_epoch, esc_seq, status, at, ticket,"
    " deadline, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def _key(row: Mapping[str, Any]) -> tuple[int, int, int]:
    return (int(row["console_id"]), int(row["journal_epoch"]), int(row["seq"]))


def _set(cur: sqlite3.Cursor, row: dict[str, Any], now: float, note: str, **cols: Any) -> None:
    """Writes cols onto the escalation, keeps `deadline` the desk's one, and
    records the step in its history; row is updated in place."""
    row.update(cols)
    row["deadline"] = current_deadline(row)
    row["updated"] = now
    names = [*cols, "deadline", "updated"]
    cur.execute(
        f"UPDATE escalations SET {', '.join(f'{n} = ?' for n in names)} WHERE {_KEY}",
        (*(row[n] for n in names), *_key(row)),
    )
    cur.execute(_HISTORY, (*_key(row), row["status"], now, row["ticket"], row["deadline"], note))


@dataclass
class _Sweep:
    pushes: list[dict[str, Any]] = field(default_factory=list)
    due: list[outbox.Item] = field(default_factory=list)
    notes: list[tuple[int, str]] = field(default_factory=list)  # (log level, text)


class EscalationService:
    """Runs the escalation lifecycle for the daemon; see the module docstring."""

    def __init__(
        self,
        writer: StoreWriter,
        floor: Callable[[], Floor | None],
        push: Push,
        *,
        clock: Callable[[], float] = time.time,
        tick_s: float = 0.25,
        public_url: str = "",
        http: httpx.AsyncClient | None = None,
        rng: random.Random | None = None,
        max_in_flight: int = 8,
    ) -> None:
        self.writer = writer
        self.floor = floor
        self.push = push
        self.clock = clock
        self.tick_s = tick_s
        self.public_url = public_url.rstrip("/")
        self.rng = rng or random.Random()
        self._http = http
        self._own_http = http is None
        self._policies: Policies | None = None
        self._policy_sha: str | None = None
        self._in_flight: set[int] = set()
        self._history_mark: int | None = None  # escalation_history id seen by _cancels
        self._slots = asyncio.Semaphore(max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None

    # --- life cycle ----------------------------------------------------------------
    async def start(self) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(follow_redirects=False)
        self._task = asyncio.create_task(self._run(), name="escalations")

    async def stop(self) -> None:
        """Stops sweeping and delivering; an attempt cut short is retried after
        a restart under its one idempotency key."""
        tasks = [t for t in (self._task, *self._tasks) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._http is not None and self._own_http:
            await self._http.aclose()
            self._http = None

    async def drain(self, timeout: float = 10.0) -> None:
        """Until no delivery or desk push is in flight (tests, orderly stops)."""
        end = time.monotonic() + timeout
        while self._tasks and time.monotonic() < end:
            await asyncio.wait(list(self._tasks), timeout=max(0.0, end - time.monotonic()))

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("escalation sweep failed")
            await asyncio.sleep(self.tick_s)

    def policies(self) -> Policies:
        floor = self.floor()
        sha = floor.sha256 if floor is not None else ""
        if self._policies is None or sha != self._policy_sha:
            self._policies, findings = build_policies(floor)
            self._policy_sha = sha
            for f in findings:
                level = logging.WARNING if f.warning else logging.ERROR
                log.log(level, "escalation policy: %s", f)
        return self._policies

    # --- the sweep -------------------------------------------------------------------
    async def tick(self) -> None:
        """One pass: adopt, cancel, breach, and start what the outbox has due."""
        pol = self.policies()
        now = self.clock()
        busy = frozenset(self._in_flight)
        sweep = await self.writer.call(self._sweep, now, pol, busy)
        self._pushes(sweep.pushes)
        for level, text in sweep.notes:
            log.log(level, "%s", text)
        for item in sweep.due:
            if item.id in self._in_flight:
                continue
            self._in_flight.add(item.id)
            task = asyncio.create_task(self._deliver(item, pol), name=f"deliver-{item.id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _sweep(self, store: Store, now: float, pol: Policies, busy: frozenset[int]) -> _Sweep:
        sweep = _Sweep()
        with store.transaction() as cur:
            self._adopt(cur, now, pol, sweep)
            self._cancels(cur, now, sweep)
            self._breaches(cur, now, pol, sweep)
            sweep.due = outbox.due(cur, now, busy=busy)
        return sweep

    def _adopt(self, cur: sqlite3.Cursor, now: float, pol: Policies, sweep: _Sweep) -> None:
        for row in _dicts(cur, _ROW + " WHERE e.ext_id IS NULL ORDER BY e.raised LIMIT 100"):
            policy = pol.of(row["kind"], row["account"])
            ack_due, resolve_due = policy.due(int(row["severity"]), float(row["raised"]))
            ext_id = ext_id_for(row["device_id"], row["journal_epoch"], row["seq"])
            links = {"callback": self.public_url + CALLBACK_PATH} if self.public_url else {}
            case = esccase.build(cur, row, ext_id, (ack_due, resolve_due), policy, pol.floor, links)
            context = case.context()
            cols: dict[str, Any] = {
                "ext_id": ext_id,
                "queue": case.queue,
                "callerid": case.callerid,
                "repeat_count": case.repeat_count,
                "context": json.dumps(context, sort_keys=True),
                "ack_due": ack_due,
                "resolve_due": resolve_due,
            }
            if row["status"] == CANCELLED:
                cols["cancelled"] = row["updated"]
            hook = policy.webhook
            target = SUPERVISOR if row["kind"] == 1 else (row["account"] or "")
            queued = ""
            if hook is not None and row["status"] in _LIVE:
                outbox.enqueue(
                    cur,
                    target=target,
                    url=hook.url,
                    event="trigger",
                    ext_id=ext_id,
                    body=webhook.trigger_body(case),
                    now=now,
                )
                queued = f"; trigger queued for {hook.url}"
            clock = policy.hours.describe()
            _set(
                cur,
                row,
                now,
                f"adopted as {ext_id}: acknowledge by {webhook.iso(ack_due)}, "
                f"resolve by {webhook.iso(resolve_due)} ({clock}){queued}",
                **cols,
            )
            what = "help request" if row["kind"] == 1 else "escalation"
            where = f"{row['desk'] or row['device_id']}" + (
                f" for {row['account']}" if row["account"] else ""
            )
            sweep.notes.append(
                (
                    logging.INFO,
                    f"{what} {ext_id} raised at {where}, severity {row['severity']}"
                    + (queued or ("" if row["kind"] == 1 else "; no webhook: hotline only")),
                )
            )
            if row["status"] in _LIVE:
                sweep.pushes.append(self._view(row, pol))

    def _cancels(self, cur: sqlite3.Cursor, now: float, sweep: _Sweep) -> None:
        """The desk cancelled: tell the client, unless it never heard of it.

        Cancels are found through the history's new rows (the store writes one
        with each), so a sweep does not scan every escalation ever cancelled;
        the first sweep after a start looks at all of them.
        """
        where = " WHERE e.status = 5 AND e.cancelled IS NULL AND e.ext_id IS NOT NULL"
        mark = self._history_mark
        top = cur.execute("SELECT coalesce(max(id), 0) FROM escalation_history").fetchone()[0]
        if mark is None:
            rows = _dicts(cur, _ROW + where)
        elif top == mark:
            rows = []
        else:
            rows = _dicts(
                cur,
                _ROW + where + " AND (e.console_id, e.journal_epoch, e.seq) IN (SELECT"
                " console_id, journal_epoch, esc_seq FROM escalation_history"
                " WHERE id > ? AND id <= ? AND status = 5)",
                (mark, top),
            )
        self._history_mark = top
        for row in rows:
            ext_id = row["ext_id"]
            trigger = outbox.get(cur, outbox.idem_key(ext_id, "trigger"))
            if trigger is None:
                note = "cancelled; no webhook to tell"
            elif trigger.gave_up is not None:
                note = "cancelled; its trigger was never delivered, so no cancel is sent"
            elif trigger.delivered is None and trigger.attempts == 0:
                outbox.give_up(cur, trigger.id, now, "cancelled at the desk before it was sent")
                note = "cancelled before its trigger was sent: nothing goes to the client"
            else:
                outbox.enqueue(
                    cur,
                    target=trigger.target,
                    url=trigger.url,
                    event="cancel",
                    ext_id=ext_id,
                    body=webhook.cancel_body(ext_id, float(row["updated"])),
                    now=now,
                )
                note = "cancel queued for the client"
            _set(cur, row, now, note, cancelled=row["updated"])
            sweep.notes.append((logging.INFO, f"escalation {ext_id} {note} (at the desk)"))

    def _breaches(self, cur: sqlite3.Cursor, now: float, pol: Policies, sweep: _Sweep) -> None:
        rows = _dicts(
            cur,
            # "NOT IN (3, 5)" as the partial index escalations_open says it.
            _ROW + " WHERE e.status NOT IN (3, 5) AND e.status != 6 AND e.ext_id IS NOT NULL AND ("
            "(e.acked IS NULL AND e.status != 2 AND e.ack_due < ?"
            " AND instr(e.breached, 'ack') = 0)"
            " OR (e.resolved IS NULL AND e.resolve_due < ? AND instr(e.breached, 'resolve') = 0))",
            (now, now),
        )
        for row in rows:
            missed = _missed(row, now)
            new = [m for m in missed if m not in (row["breached"] or "").split(",")]
            _set(
                cur,
                row,
                now,
                f"missed the {' and '.join(new)} deadline",
                status=BREACHED,
                breached=",".join(missed),
            )
            where = row["desk"] or row["device_id"]
            text = f"escalation {row['ext_id']} ({where}) missed its {' and '.join(new)} deadline"
            sweep.notes.append((logging.WARNING, text))
            sweep.pushes.append(self._view(row, pol))

    # --- delivery ----------------------------------------------------------------------
    async def _deliver(self, item: outbox.Item, pol: Policies) -> None:
        try:
            async with self._slots:
                await self._attempt(item, pol)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("delivery of %s failed", item.idem_key)
        finally:
            self._in_flight.discard(item.id)

    async def _attempt(self, item: outbox.Item, pol: Policies) -> None:
        policy = pol.of_target(item.target)
        hook = policy.webhook
        timeout = hook.timeout_s if hook else 10.0
        # Killed mid-attempt, the daemon retries it as if it had failed.
        lease = timeout + policy.retry.delay(item.attempts + 1, self.rng)
        now = self.clock()
        item_id = item.id
        item = await self.writer.call(
            lambda s: _in_tx(s, lambda cur: outbox.begin_attempt(cur, item_id, now, lease))
        )
        if hook is None:
            outcome = webhook.Outcome(
                False, None, f"{item.target} has no webhook in the floor config any more"
            )
        else:
            try:
                secret = hook.secret.read()
            except DesklineError as e:
                outcome = webhook.Outcome(False, None, str(e))
            else:
                assert self._http is not None
                outcome = await webhook.send(
                    self._http,
                    hook.url,
                    item.body,
                    secret=secret,
                    key=item.idem_key,
                    event=item.event,
                    attempt=item.attempts,
                    timeout_s=timeout,
                )
        done = self.clock()
        sweep = await self.writer.call(self._recorded, item, outcome, done, policy, pol)
        self._pushes(sweep.pushes)
        for level, text in sweep.notes:
            log.log(level, "%s", text)

    def _recorded(
        self,
        store: Store,
        item: outbox.Item,
        outcome: webhook.Outcome,
        now: float,
        policy: Policy,
        pol: Policies,
    ) -> _Sweep:
        sweep = _Sweep()
        with store.transaction() as cur:
            row = _one(cur, item.ext_id)
            if outcome.ok:
                outbox.delivered(cur, item.id, now, outcome.status or 0)
                dup = " (the client already had it)" if outcome.duplicate else ""
                sweep.notes.append(
                    (logging.INFO, f"{item.idem_key} delivered, attempt {item.attempts}{dup}")
                )
                if row is not None and item.event == "trigger" and row["delivered"] is None:
                    via = f"delivered to {item.url}{dup}"
                    if row["status"] == RAISED:
                        _set(cur, row, now, via, delivered=now, status=DELIVERED)
                        sweep.pushes.append(self._view(row, pol))
                    else:
                        _set(cur, row, now, via, delivered=now)
                return sweep
            gave_up = outbox.failed(
                cur, item.id, now, outcome.status, outcome.error, policy.retry, self.rng
            )
            if not gave_up:
                text = f"{item.idem_key} attempt {item.attempts} failed, retrying: {outcome.error}"
                sweep.notes.append((logging.WARNING, text))
                return sweep
            given = policy.retry.give_up_s
            text = f"{item.idem_key} given up after {item.attempts} attempts over {given:g} s"
            sweep.notes.append((logging.ERROR, f"{text}: {outcome.error}"))
            if row is not None and item.event == "trigger" and row["status"] in _LIVE:
                if row["status"] != ACKED and row["acked"] is None:
                    _set(
                        cur,
                        row,
                        now,
                        f"not delivered to {item.url}: {outcome.error}",
                        status=FAILED,
                    )
                    sweep.pushes.append(self._view(row, pol))
        return sweep

    # --- answers: the client's callback, the supervisor's CLI ------------------------------
    async def answer(
        self, ext_id: str, action: str, *, via: str, ticket: str = "", note: str = ""
    ) -> dict[str, Any]:
        """Acknowledges or resolves; returns the escalation as it now stands and
        whether this changed it.  EscalationError: unknown (404), cancelled or
        already resolved (409), a bad ticket (400)."""
        if action not in ACTIONS:
            raise EscalationError("bad_action", 404, f"{action!r} is not one of {ACTIONS}")
        ticket = check_ticket(ticket)
        pol = self.policies()
        now = self.clock()
        changed, row, view = await self.writer.call(
            self._answer, ext_id, action, now, via, ticket, note, pol
        )
        if view is not None:
            self._pushes([view])
        if changed:
            log.info(
                "escalation %s %s by %s%s",
                ext_id,
                "acknowledged" if action == "acknowledge" else "resolved",
                via,
                f" (late: {row['breached']})" if row["breached"] else "",
            )
        return {"changed": changed, "escalation": _public(row, now)}

    def _answer(
        self,
        store: Store,
        ext_id: str,
        action: str,
        now: float,
        via: str,
        ticket: str,
        note: str,
        pol: Policies,
    ) -> tuple[bool, dict[str, Any], dict[str, Any] | None]:
        with store.transaction() as cur:
            row = _one(cur, ext_id)
            if row is None:
                raise EscalationError("unknown_escalation", 404, f"no escalation {ext_id}")
            status = row["status"]
            if status == CANCELLED:
                raise EscalationError(
                    "cancelled",
                    409,
                    f"{ext_id} was cancelled at the desk at {webhook.iso(row['updated'])}; "
                    f"there is nothing to {action}",
                )
            done = (
                status == RESOLVED
                if action == "resolve"
                else (row["acked"] is not None or status == ACKED)
            )
            if action == "acknowledge" and status == RESOLVED:
                raise EscalationError(
                    "already_resolved",
                    409,
                    f"{ext_id} was resolved at {webhook.iso(row['resolved'])}: too late to "
                    "acknowledge",
                )
            if done:
                return False, row, None
            missed = _missed(row, now)
            cols: dict[str, Any] = {"breached": ",".join(missed)}
            if ticket:
                cols["ticket"] = ticket
            if action == "acknowledge":
                late = "resolve" in missed
                cols.update(acked=now, status=BREACHED if late else ACKED)
            else:
                cols.update(resolved=now, acked=row["acked"] or now, status=RESOLVED)
            text = f"{'acknowledged' if action == 'acknowledge' else 'resolved'} by {via}"
            if missed:
                text += f" (missed: {', '.join(missed)})"
            if note:
                text += f": {note[:500]}"
            _set(cur, row, now, text, **cols)
            return True, row, self._view(row, pol)

    async def help_shown(self, via: str) -> int:
        """A supervisor's view listed the open help requests: they are delivered."""
        pol = self.policies()
        now = self.clock()
        views = await self.writer.call(self._help_shown, now, via, pol)
        self._pushes(views)
        return len(views)

    def _help_shown(
        self, store: Store, now: float, via: str, pol: Policies
    ) -> list[dict[str, Any]]:
        views = []
        with store.transaction() as cur:
            rows = _dicts(
                cur,
                _ROW + " WHERE e.kind = 1 AND e.status = ? AND e.ext_id IS NOT NULL",
                (RAISED,),
            )
            for row in rows:
                _set(
                    cur, row, now, f"shown to a supervisor ({via})", status=DELIVERED, delivered=now
                )
                views.append(self._view(row, pol))
        return views

    async def listing(self, open_only: bool = False, limit: int = 500) -> list[dict[str, Any]]:
        """Escalations and help requests, newest first, as the CLI and API show them."""
        now = self.clock()
        rows = await self.writer.call(
            lambda s: s.query(_LIST + (_OPEN if open_only else "") + _ORDER, (limit,))
        )
        return [_public(r, now) for r in rows]

    async def secret_for(self, ext_id: str) -> bytes:
        """The secret a callback about ext_id must be signed with."""
        rows = await self.writer.call(
            lambda s: s.query("SELECT kind, account FROM escalations WHERE ext_id = ?", (ext_id,))
        )
        if not rows:
            raise EscalationError("unknown_escalation", 404, f"no escalation {ext_id}")
        policy = self.policies().of(rows[0]["kind"], rows[0]["account"])
        if policy.webhook is None:
            raise EscalationError(
                "no_webhook",
                403,
                f"{ext_id}'s {'help policy' if rows[0]['kind'] == 1 else 'account'} has no "
                "webhook secret, so no signed callback can be checked: answer it with "
                "`deskline escalation ack|resolve`",
            )
        try:
            return policy.webhook.secret.read()
        except DesklineError as e:
            log.error("callback for %s: %s", ext_id, e)
            raise EscalationError(
                "secret_unavailable",
                503,
                "the daemon cannot read the account's webhook secret: see its log",
            ) from e

    # --- the desk --------------------------------------------------------------------------
    def _view(self, row: Mapping[str, Any], pol: Policies) -> dict[str, Any]:
        return {
            "device_id": row["device_id"],
            "current": bool(row["current"]),
            "key": _key(row),
            "esc_seq": int(row["seq"]),
            "kind": int(row["kind"]),
            "status": int(row["status"]),
            "ticket": row["ticket"] or "",
            "deadline": current_deadline(row),
            "hotline": pol.hotline(row["account"]),
            "tries": 0,
        }

    def _pushes(self, views: Iterable[dict[str, Any]]) -> None:
        for view in views:
            if view["current"]:
                self._push_now(view)

    def _push_now(self, view: dict[str, Any]) -> None:
        deadline = view["deadline"]
        left = NO_DEADLINE if deadline is None else int(deadline - self.clock())
        esc = {
            "esc_seq": view["esc_seq"],
            "kind": view["kind"],
            "status": view["status"],
            "ticket": view["ticket"][:MAX_TICKET],
            "deadline_s": max(-NO_DEADLINE, min(NO_DEADLINE, left)),
            "hotline": view["hotline"],
        }

        def done(status: int) -> None:
            # A lost frame: try again with what the store holds then (the
            # console gets everything again at its next hello anyway).
            if status == -1 and view["tries"] < 2:
                view["tries"] += 1
                loop = asyncio.get_running_loop()
                loop.call_later(1.0, self._repush, view)

        self.push(view["device_id"], esc, done)

    def _repush(self, view: dict[str, Any]) -> None:
        async def again() -> None:
            rows = await self.writer.call(
                lambda s: s.query(
                    _ROW + " WHERE e.console_id = ? AND e.journal_epoch = ? AND e.seq = ?",
                    view["key"],
                )
            )
            if rows:
                fresh = self._view(rows[0], self.policies())
                fresh["tries"] = view["tries"]
                self._pushes([fresh])

        task = asyncio.create_task(again())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _in_tx(store: Store, fn: Callable[[sqlite3.Cursor], Any]) -> Any:
    with store.transaction() as cur:
        return fn(cur)


def _one(cur: sqlite3.Cursor, ext_id: str) -> dict[str, Any] | None:
    rows = _dicts(cur, _ROW + " WHERE e.ext_id = ?", (ext_id,))
    return rows[0] if rows else None


def check_ticket(ticket: str) -> str:
    """The client's ticket reference: printable ASCII the desk can carry."""
    if not isinstance(ticket, str):
        raise EscalationError("bad_ticket", 400, "ticket must be a string")
    ticket = ticket.strip()
    if len(ticket) > MAX_TICKET or not all(" " <= ch <= "~" for ch in ticket):
        raise EscalationError(
            "bad_ticket", 400, f"ticket must be printable ASCII, at most {MAX_TICKET} characters"
        )
    return ticket


_LIST = (
    "SELECT e.ext_id, e.kind, e.severity, e.status, e.ticket, e.raised, e.updated, e.desk,"
    " e.agent, e.account, e.queue, e.acd_call_id, e.callerid, e.repeat_count, e.ack_due,"
    " e.resolve_due, e.delivered, e.acked, e.resolved, e.cancelled, e.breached, e.deadline,"
    " c.device_id, e.seq AS esc_seq,"
    " (SELECT o.attempts FROM outbox o WHERE o.idem_key = e.ext_id || '/trigger') AS attempts,"
    " (SELECT o.last_error FROM outbox o WHERE o.idem_key = e.ext_id || '/trigger')"
    " AS last_error"
    " FROM escalations e JOIN consoles c ON c.id = e.console_id WHERE e.ext_id IS NOT NULL"
)
_OPEN = " AND e.status NOT IN (3, 5)"
_ORDER = " ORDER BY e.raised DESC LIMIT ?"


def _public(row: Mapping[str, Any], now: float) -> dict[str, Any]:
    """An escalation as the CLI and API show it: names for codes, seconds left."""
    out = {
        k: row.get(k)
        for k in (
            "ext_id",
            "severity",
            "ticket",
            "raised",
            "updated",
            "desk",
            "agent",
            "account",
            "queue",
            "acd_call_id",
            "callerid",
            "repeat_count",
            "ack_due",
            "resolve_due",
            "delivered",
            "acked",
            "resolved",
            "cancelled",
            "device_id",
            "esc_seq",
        )
    }
    if "device_id" not in row:
        out.pop("device_id")
    out["status"] = STATUS_NAMES.get(int(row["status"]), str(row["status"]))
    out["kind"] = KIND_NAMES.get(int(row["kind"]), str(row["kind"]))
    out["breached"] = [m for m in (row.get("breached") or "").split(",") if m]
    deadline = current_deadline(row)
    out["deadline"] = deadline
    out["left_s"] = None if deadline is None else round(deadline - now)
    if "attempts" in row:
        out["delivery"] = {"attempts": row["attempts"], "last_error": row["last_error"] or ""}
    return out
