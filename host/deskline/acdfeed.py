"""The daemon's ACD feed: the queue_log in, service level and call events out.

Follows the ACD's queue_log as Asterisk writes it, and from it:
- keeps the service level per queue and account (servicelevel.py), which
  supervisors read (control op "sla") and which drives each desk's floor
  light, with hysteresis (slband.py);
- stores the ACD's calls with their repeat-contact flags (acdcalls.py), so an
  escalation can tell the client the caller's history;
- tells a desk's console when the ACD connected a call to its agent and when
  it ended, so the console's call carries the ACD's call id;
- feeds the consoles' after-call work back into AHT, and writes each wrap-up
  code as a CALLSTATUS line for queue reporting tools (callstatus.py).

On start the file is replayed from its beginning to rebuild today's figures;
store writes are upserts, and consoles are only told about calls once the
replay has caught up with the end of the file.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deskline import acdcalls, callstatus, erlang, escpolicy
from deskline.floormodel import Floor
from deskline.queuelog import QueueLogParser, QueueLogTail
from deskline.servicelevel import (
    Connected,
    Ended,
    Entered,
    Happening,
    ScopeView,
    ServiceLevel,
    Snapshot,
    Stats,
    floor_settings,
)
from deskline.session import FloorLight
from deskline.slband import BandLight
from deskline.store import Store
from deskline.wire import codec

if TYPE_CHECKING:
    from deskline.daemon import Daemon

log = logging.getLogger("deskline.acd")
_NOBODY = {"console": "-", "port": "-"}

POLL_S = 0.25
LIGHTS_S = 1.0
# The light reads the current interval once it has this many calls to judge
# by; before that (just after the interval turned) it reads today so far,
# so a light does not jump to red on the interval's first late answer.
MIN_CALLS = 5


@dataclass
class AcdOptions:
    queue_log: Path
    callstatus_log: Path | None = None
    interval_min: int = 30
    max_age_s: int = 4 * 3600


def light_window(view: ScopeView, variant: str) -> Stats:
    """The window a floor light judges: the current interval, or today while it is thin."""
    if view.current.sl_terms(variant)[1] >= MIN_CALLS:
        return view.current
    return view.today


class AcdFeed:
    def __init__(self, daemon: Daemon, opts: AcdOptions) -> None:
        self.daemon = daemon
        self.opts = opts
        self.parser = QueueLogParser()
        self.tail = QueueLogTail(opts.queue_log, self.parser)
        self.sl = ServiceLevel(interval_min=opts.interval_min, max_age_s=opts.max_age_s)
        self.callstatus = (
            callstatus.CallStatusLog(opts.callstatus_log) if opts.callstatus_log else None
        )
        self.bands: dict[str, BandLight] = {}  # per queue, and per account for desks with none
        self.lights: dict[str, FloorLight] = {}  # per console device id
        self.caught_up = False
        self.records = 0
        self._floor: Floor | None = None
        self._repeat_days: dict[str, int] = {}
        self._wrapup_pos: int | None = None
        self.lit: Snapshot | None = None  # the figures the lights were last judged by

    # --- configuration ------------------------------------------------------------
    def set_floor(self, floor: Floor | None) -> None:
        self._floor = floor
        if floor is None:
            return
        accounts, thresholds = floor_settings(floor)
        self.sl.configure(accounts, thresholds)
        self._repeat_days = escpolicy.repeat_days(floor)

    # --- the loop -------------------------------------------------------------------
    async def run(self) -> None:
        log.info("following the ACD's queue_log %s", self.opts.queue_log, extra=_NOBODY)
        next_lights = 0.0
        while True:
            try:
                await self._step()
                now = time.time()
                if now >= next_lights:
                    next_lights = now + LIGHTS_S
                    await self._wrapups()
                    self._update_lights(now)
            except asyncio.CancelledError:
                self.tail.close()
                raise
            except Exception:
                # The feed must outlive one bad step: the consoles do not need it.
                log.exception("ACD feed step failed; going on", extra=_NOBODY)
            await asyncio.sleep(POLL_S)

    async def _step(self) -> None:
        seen = len(self.parser.problems)
        records = self.tail.poll()
        happenings: list[Happening] = self.sl.feed_all(records)
        happenings += self.sl.close_stale(time.time())
        self.records += len(records)
        for p in self.parser.problems[seen:]:
            log.warning("queue_log %s: line skipped", p, extra=_NOBODY)
        changes = [c for h in happenings if (c := _change(h)) is not None]
        if changes:
            repeat_days = dict(self._repeat_days)
            repeats = await self.daemon.writer.call(
                lambda store: _record(store, changes, repeat_days)
            )
            for r in repeats:
                log.info(
                    "repeat contact: caller %s on %s again (%d earlier within the window)%s",
                    r.callerid,
                    r.account,
                    r.count,
                    f", about open escalation {r.escalation}" if r.escalation else "",
                    extra=_NOBODY,
                )
        if self.caught_up:
            for h in happenings:
                self._tell_console(h)
        elif not records:
            self.caught_up = True
            log.info(
                "queue_log replayed: %d records, %d calls open",
                self.records,
                self.sl.open_calls(),
                extra=_NOBODY,
            )

    # --- consoles -----------------------------------------------------------------------
    def _tell_console(self, h: Happening) -> None:
        if isinstance(h, Connected):
            agent, op, uid, queue = h.agent, codec.CALL_START, h.uniqueid, h.queue
        elif isinstance(h, Ended) and h.call.connected is not None:
            agent, op, uid, queue = h.call.agent, codec.CALL_END, h.call.uniqueid, h.call.queue
        else:
            return
        worker = self._worker_of(agent)
        if worker is None:
            return
        worker.command(
            "call", on_done=_log_refusal(worker.device_id, uid), op=op, call_id=uid, queue=queue
        )
        worker.poke()

    def _worker_of(self, agent: str | None) -> Any:
        if agent is None or self._floor is None:
            return None
        for desk in self._floor.desks.values():
            if desk.agent == agent:
                return self.daemon.by_device.get(desk.console)
        return None

    # --- wrap-ups: ACW into AHT, CALLSTATUS out -----------------------------------------------
    async def _wrapups(self) -> None:
        if self._wrapup_pos is None:
            self._wrapup_pos = await self.daemon.writer.call(callstatus.position)
        after = self._wrapup_pos
        wrapups = await self.daemon.writer.call(lambda store: callstatus.new_wrapups(store, after))
        if not wrapups:
            return
        for w in wrapups:
            if w.agent:
                self.sl.add_acw(w.agent, w.acw_s, w.at, queue=w.queue, uniqueid=w.uniqueid or None)
        if self.callstatus is not None:
            lines = [x for w in wrapups if (x := callstatus.line(w)) is not None]
            await asyncio.to_thread(self.callstatus.append, lines)
        last = wrapups[-1].rowid
        await self.daemon.writer.call(lambda store: callstatus.set_position(store, last))
        self._wrapup_pos = last

    # --- floor lights ---------------------------------------------------------------------
    def _update_lights(self, now: float) -> None:
        floor = self._floor
        if floor is None or not self.caught_up:
            return
        snap = self.lit = self.sl.snapshot(now, history=False)
        judged: dict[str, tuple[int, FloorLight]] = {}  # scope key -> (band, light)

        def judge(key: str, view: ScopeView, account: str) -> tuple[int, FloorLight]:
            if key in judged:
                return judged[key]
            acct = floor.accounts[account]
            stats = light_window(view, acct.sl_variant)
            sl = stats.sl(acct.sl_variant)
            band_light = self.bands.get(key)
            if band_light is None or band_light.target_pct != acct.sl_target_pct:
                band_light = self.bands[key] = BandLight(acct.sl_target_pct, acct.sl_amber_pct)
            band = band_light.update(sl, now)
            light = FloorLight(
                band=band,
                sl_permille=0 if sl is None else round(sl * 10),
                target_pct=acct.sl_target_pct,
                waiting=view.waiting,
                longest_wait=round(view.longest_waiting_s or 0),
            )
            judged[key] = (band, light)
            return judged[key]

        for key, view in snap.accounts.items():
            if key in floor.accounts:  # the account's own light, for supervisors
                judge(f"a:{key}", view, key)
        for desk in floor.desks.values():
            views = [(f"q:{q}", snap.queues[q]) for q in desk.queues if q in snap.queues]
            if not views and desk.account in snap.accounts:
                views = [(f"a:{desk.account}", snap.accounts[desk.account])]
            if not views:
                continue
            lights = [judge(key, view, desk.account) for key, view in views]
            light = _desk_light(lights)
            if self.lights.get(desk.console) != light:
                self.lights[desk.console] = light
                worker = self.daemon.by_device.get(desk.console)
                if worker is not None and worker.session is not None:
                    worker.session.set_floor(light)
                    worker.poke()

    # --- for supervisors -------------------------------------------------------------------
    def _staffing(self, view: ScopeView, acct: Any) -> dict[str, Any] | None:
        try:
            return _staffing_for(view, acct, self.sl.interval_min)
        except (ValueError, ArithmeticError) as e:
            return {"error": str(e)}

    def summary(self) -> list[dict[str, Any]]:
        """One line per account for the terminal floor view: its light and today.

        From the figures the lights were last judged by (at most LIGHTS_S
        old), so a view polled often costs no snapshot of its own and shows
        each band beside the figure that set it.
        """
        floor, snap = self._floor, self.lit
        if floor is None or snap is None:
            return []
        out = []
        for key, view in sorted(snap.accounts.items()):
            acct = floor.accounts.get(key)
            if acct is None:
                continue
            band = self.bands.get(f"a:{key}")
            out.append(
                {
                    "account": key,
                    "name": acct.name,
                    "variant": acct.sl_variant,
                    "target_pct": acct.sl_target_pct,
                    "threshold_s": acct.sl_threshold_s,
                    "band": band.band if band else codec.BAND_UNKNOWN,
                    "sl_interval": view.current.sl(acct.sl_variant),
                    "sl_today": view.today.sl(acct.sl_variant),
                    "offered_today": view.today.offered,
                    "asa_today_s": view.today.asa_s,
                    "abandon_rate_today_pct": view.today.abandon_rate_pct,
                    "waiting": view.waiting,
                    "longest_waiting_s": view.longest_waiting_s,
                }
            )
        return out

    def sla(self, now: float | None = None, history: bool = False) -> dict[str, Any]:
        """Every queue and account now, for the control op "sla" (and the dashboard)."""
        snap = self.sl.snapshot(time.time() if now is None else now, history=history)
        floor = self._floor

        def variant_of(view: ScopeView) -> str:
            if floor is None:
                return "short_excluded"
            account = view.scope.name if view.scope.kind == "account" else None
            if account is None:
                q = floor.queues.get(view.scope.name)
                account = q.account if q else None
            acct = floor.accounts.get(account or "")
            return acct.sl_variant if acct else "short_excluded"

        def one(view: ScopeView) -> dict[str, Any]:
            variant = variant_of(view)
            band = self.bands.get(
                ("a:" if view.scope.kind == "account" else "q:") + view.scope.name
            )
            out: dict[str, Any] = {
                "variant": variant,
                "threshold_s": view.thresholds.answer_s,
                "band": band.band if band else codec.BAND_UNKNOWN,
                "waiting": view.waiting,
                "longest_waiting_s": view.longest_waiting_s,
                "talking": view.talking,
                "current": view.current.to_dict(),
                "rolling": view.rolling.to_dict(),
                "today": view.today.to_dict(),
            }
            if history:
                out["intervals"] = [s.to_dict() for s in view.intervals]
            if view.scope.kind == "account" and floor is not None:
                out["staffing"] = self._staffing(view, floor.accounts.get(view.scope.name))
            return out

        return {
            "now": snap.now,
            "interval_min": snap.interval_min,
            "caught_up": self.caught_up,
            "records": self.records,
            "problems": self.parser.problem_count,
            "queues": {k: one(v) for k, v in snap.queues.items()},
            "accounts": {k: one(v) for k, v in snap.accounts.items()},
        }


def _staffing_for(view: ScopeView, acct: Any, interval_min: int) -> dict[str, Any] | None:
    """Erlang C for the account's target at this interval's arrivals and AHT.

    Arrivals are the current interval's so far, scaled to the whole interval;
    AHT is today's (an interval's first calls have no talk time yet).
    """
    if acct is None:
        return None
    cur, today = view.current, view.today
    aht = today.aht_s
    elapsed = max(60.0, min(view.current.end, time.time()) - cur.start)
    if not aht or not cur.offered:
        return None
    calls = cur.offered * (interval_min * 60) / elapsed
    shrinkage = acct.shrinkage_pct / 100
    st = erlang.staffing(
        calls, interval_min, aht, acct.sl_target_pct, acct.sl_threshold_s, shrinkage
    )
    return {"calls_forecast": round(calls, 1), "aht_s": round(aht, 1), **st.to_dict()}


def _desk_light(lights: list[tuple[int, FloorLight]]) -> FloorLight:
    """A desk on several queues shows the one in most trouble, and all their callers waiting."""
    rank = {codec.BAND_RED: 3, codec.BAND_AMBER: 2, codec.BAND_GREEN: 1, codec.BAND_UNKNOWN: 0}
    worst = max(lights, key=lambda bl: (rank.get(bl[0], 0), -bl[1].sl_permille))[1]
    return FloorLight(
        band=worst.band,
        sl_permille=worst.sl_permille,
        target_pct=worst.target_pct,
        waiting=sum(light.waiting for _, light in lights),
        longest_wait=max(light.longest_wait for _, light in lights),
    )


def _change(h: Happening) -> acdcalls.Change | None:
    if isinstance(h, Entered):
        return acdcalls.Entered(h.uniqueid, h.queue, h.account, h.callerid, h.at, h.origposition)
    if isinstance(h, Connected):
        return acdcalls.Connected(h.uniqueid, h.at, h.agent, h.hold_s)
    if isinstance(h, Ended):
        c = h.call
        return acdcalls.Ended(
            c.uniqueid,
            c.queue,
            c.account,
            c.callerid,
            c.entered,
            c.connected,
            c.ended,
            c.outcome,
            c.agent,
            c.hold_s,
            c.talk_s,
            c.origposition,
            c.flagged,
        )
    return None


def _record(store: Store, changes: list[acdcalls.Change], days: dict[str, int]) -> list[Any]:
    with store.transaction() as cur:
        return acdcalls.record(cur, changes, days)


def _log_refusal(device_id: str | None, uid: str) -> Callable[[Any], None]:
    def done(cmd: Any) -> None:
        if cmd.status not in (codec.OK, None):
            log.info(
                "call %s: console did not take the ACD's call event: %s",
                uid,
                cmd.text,
                extra={"console": device_id or "-", "port": "-"},
            )

    return done
