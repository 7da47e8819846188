"""The floor snapshot: what the supervisors' views show, built from the daemon's state.

One JSON document (docs/dashboard.md) serves the web dashboard, its live
stream, the REST API, `/metrics` and `deskline status`, so a number a
supervisor reads on the wall screen is the number Prometheus stores and the
terminal prints.  Each section has its own builder because each changes at
its own pace and costs differently: desks are read from memory on every
console frame, escalations and health from the store, today's failure
demand from a read-only connection in a thread, away from the writer.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from deskline import consolestate, report
from deskline.errors import DesklineError
from deskline.escalations import STATUS_NAMES
from deskline.escpolicy import SEVERITIES
from deskline.wire import codec

if TYPE_CHECKING:
    from deskline.daemon import Daemon
    from deskline.floormodel import Account, Desk, Floor
    from deskline.portworker import PortWorker
    from deskline.servicelevel import ScopeView

log = logging.getLogger("deskline.floorview")

BAND_NAMES = {
    codec.BAND_UNKNOWN: "unknown",
    codec.BAND_GREEN: "green",
    codec.BAND_AMBER: "amber",
    codec.BAND_RED: "red",
}
DUE_SOON_S = 300  # a running deadline this close is "due soon" whatever its allowance
DUE_SOON_SHARE = 0.25  # ...and so is one with a quarter of its allowance left


def _link_state(w: PortWorker | None) -> str:
    if w is None:
        return "absent"
    if w.released:
        return "released"
    if w.online:
        return "online"
    if w.state == "open":
        return "connecting"
    return "offline"


def placements(floor: Floor | None, consoles: Iterable[str]) -> Iterator[tuple[str, Desk | None]]:
    """Every console a floor view lists: the floor's desks in order, then the
    consoles no desk names (sorted), with no desk."""
    seen: set[str] = set()
    if floor is not None:
        for desk in floor.desks.values():
            seen.add(desk.console)
            yield desk.console, desk
    for device_id in sorted(consoles):
        if device_id not in seen:
            yield device_id, None


def _r(v: float | None, nd: int = 1) -> float | None:
    return None if v is None else round(v, nd)


class FloorView:
    """Builds each section of the snapshot from a running daemon."""

    def __init__(self, daemon: Daemon, clock: Callable[[], float] = time.time) -> None:
        self.daemon = daemon
        self.clock = clock
        self._since: dict[str, tuple[bool, float | None]] = {}

    # --- floor --------------------------------------------------------------------
    def floor(self) -> dict[str, Any]:
        d = self.daemon
        f = d.floor
        if f is None:
            return {
                "name": "",
                "errors": list(d.floor_errors),
                "rows": 0,
                "cols": 0,
                "accounts": [],
            }
        return {
            "name": f.name,
            "errors": list(d.floor_errors),
            "rows": max((k.row for k in f.desks.values()), default=0),
            "cols": max((k.col for k in f.desks.values()), default=0),
            "accounts": [
                {
                    "key": a.key,
                    "name": a.name,
                    "target_pct": a.sl_target_pct,
                    "threshold_s": a.sl_threshold_s,
                    "variant": a.sl_variant,
                }
                for a in sorted(f.accounts.values(), key=lambda a: a.key)
            ],
        }

    # --- desks --------------------------------------------------------------------
    def desks(self) -> list[dict[str, Any]]:
        f = self.daemon.floor
        out = []
        for device_id, desk in placements(f, self.daemon.by_device):
            if desk is None or f is None:
                where: dict[str, Any] = {
                    "desk": "",
                    "account": "",
                    "account_name": "",
                    "agent": None,
                    "agent_name": None,
                    "row": 0,
                    "col": 0,
                    "on_floor": False,
                }
            else:
                acct = f.accounts.get(desk.account)
                agent = f.agents.get(desk.agent) if desk.agent else None
                where = {
                    "desk": desk.name,
                    "account": desk.account,
                    "account_name": acct.name if acct else desk.account,
                    "agent": desk.agent,
                    "agent_name": agent.name if agent else desk.agent,
                    "row": desk.row,
                    "col": desk.col,
                    "on_floor": True,
                }
            out.append(self._desk(device_id, **where))
        return out

    def _desk(self, device_id: str, **where: Any) -> dict[str, Any]:
        w = self.daemon.by_device.get(device_id)
        link = _link_state(w)
        online = link == "online"
        was = self._since.get(device_id)
        if was is None:
            since = self.clock() if online else None
        else:
            since = self.clock() if was[0] != online else was[1]
        self._since[device_id] = (online, since)
        m = dict(w.session.status_mirror) if online and w and w.session else {}
        esc = None
        if m.get("esc_id"):
            left = m.get("esc_left")
            esc = {
                "id": int(m["esc_id"]),
                "status": _esc_status(m.get("esc_status")),
                "left_s": None if left is None or abs(int(left)) >= 0x7FFFFFFF else int(left),
            }
        leds = (
            {layer: consolestate.led(m.get(f"led_{layer}")) for layer in consolestate.LAYERS}
            if m
            else None
        )
        light = self.daemon.floor_light_for(device_id)
        return {
            **where,
            "console": device_id,
            "online": online,
            "link": link,
            "since": since,
            "state": consolestate.AGENT_STATES.get(int(m["state"])) if "state" in m else None,
            "leds": leds,
            "top": m.get("top"),
            "display": [str(m.get(f"line{i}", "")) for i in range(4)] if m else [],
            "acw_left_s": m.get("acw_left") if m.get("state") == 2 else None,
            "escalation": esc,
            "band": BAND_NAMES.get(light.band, "unknown"),
        }

    # --- service level --------------------------------------------------------------
    def service(self) -> dict[str, Any]:
        acd = self.daemon.acd
        f = self.daemon.floor
        snap = acd.lit if acd is not None else None
        if acd is None or snap is None or f is None:
            return {
                "acd": acd is not None,
                "interval_min": 0,
                "interval_start": None,
                "accounts": [],
                "queues": [],
            }
        accounts = []
        for key, view in sorted(snap.accounts.items()):
            acct = f.accounts.get(key)
            if acct is not None:
                band = acd.bands.get(f"a:{key}")
                accounts.append(_sl_row("account", key, acct.name, acct, view, band))
        queues = []
        for name, view in sorted(snap.queues.items()):
            q = f.queues.get(name)
            acct = f.accounts.get(q.account) if q else None
            band = acd.bands.get(f"q:{name}")
            queues.append(_sl_row("queue", name, name, acct, view, band))
        starts = [v.current.start for v in snap.accounts.values()]
        return {
            "acd": True,
            "interval_min": snap.interval_min,
            "interval_start": min(starts) if starts else None,
            "accounts": accounts,
            "queues": queues,
        }

    # --- escalations ----------------------------------------------------------------
    async def escalations(self) -> list[dict[str, Any]]:
        svc = self.daemon.escalations
        if svc is None:
            return []
        rows = await svc.listing(open_only=True)
        now = self.clock()
        names = self.daemon.floor.accounts if self.daemon.floor else {}
        out = []
        for r in rows:
            acct = names.get(r.get("account") or "")
            deadline, left = r.get("deadline"), r.get("left_s")
            raised = r.get("raised") or now
            # Past its deadline is breached on the screen at once, before the
            # escalation service's sweep marks it so in the store.
            if r.get("breached") or r["status"] == "breached" or (left is not None and left < 0):
                urgency = "breached"
            elif deadline is None:
                urgency = "no_deadline"
            elif left is not None and (
                left <= DUE_SOON_S or left <= DUE_SOON_SHARE * max(0.0, deadline - raised)
            ):
                urgency = "due_soon"
            else:
                urgency = "running"
            out.append(
                {
                    "ext_id": r["ext_id"],
                    "kind": r["kind"],
                    "severity": SEVERITIES.get(r.get("severity") or 0, str(r.get("severity"))),
                    "status": r["status"],
                    "desk": r.get("desk") or "",
                    "agent": r.get("agent") or "",
                    "account": r.get("account") or "",
                    "account_name": acct.name if acct else (r.get("account") or ""),
                    "queue": r.get("queue") or "",
                    "ticket": r.get("ticket") or "",
                    "raised": r.get("raised"),
                    "age_s": round(now - raised),
                    "ack_due": r.get("ack_due"),
                    "resolve_due": r.get("resolve_due"),
                    "acked": r.get("acked"),
                    "deadline": deadline,
                    "left_s": left,
                    "breached": list(r.get("breached") or []),
                    "urgency": urgency,
                }
            )
        out.sort(key=_urgency_key)
        return out

    # --- failure demand today -----------------------------------------------------------
    async def demand(self) -> list[dict[str, Any]]:
        f = self.daemon.floor
        if f is None:
            return []
        accounts = sorted(f.accounts)
        return await asyncio.to_thread(self._demand, accounts)

    def _demand(self, accounts: list[str]) -> list[dict[str, Any]]:
        # Its own short-lived connection, on this worker thread: a snapshot read
        # that never waits on, or holds up, the writer.
        try:
            db = report.open_readonly(self.daemon.opts.db)
        except DesklineError as e:
            log.warning("today's failure demand: %s", e, extra={"console": "-", "port": "-"})
            return []
        try:
            out = []
            for key in accounts:
                d = report.today(db, key)
                if d.summary.contacts:
                    out.append(_demand_row(d))
            return out
        except (sqlite3.Error, DesklineError) as e:
            log.warning("today's failure demand: %s", e, extra={"console": "-", "port": "-"})
            return []
        finally:
            db.close()

    # --- console health ---------------------------------------------------------------
    async def health(self) -> list[dict[str, Any]]:
        d = self.daemon
        rows = await d.writer.call(lambda store: store.devices())
        now = self.clock()
        out = []
        for row in rows:
            device_id = row["device_id"]
            w = d.by_device.get(device_id)
            s = w.session if w else None
            h = s.health if s else None
            hello = s.hello if s else {}
            hb = row.get("last_heartbeat")
            out.append(
                {
                    "device_id": device_id,
                    "desk": row.get("desk") or "",
                    "online": _link_state(w) == "online",
                    "last_heartbeat": hb,
                    "heartbeat_age_s": None if hb is None else round(max(0.0, now - hb), 1),
                    "fw_version": row.get("fw_version") or "",
                    "app_version": row.get("app_version") or "",
                    "app_slot": int(hello.get("app_slot", 0) or 0),
                    "free_heap": row.get("free_heap"),
                    "min_free_heap": row.get("min_free_heap"),
                    "boots": row.get("boots"),
                    "last_reset_cause": row.get("last_reset_cause"),
                    "reset_cause_name": consolestate.reboot_reason(row.get("last_reboot_reason")),
                    "journal_depth": row.get("journal_depth"),
                    "link_errors": (h.bad_frames + h.bad_schema) if h else 0,
                    "rx_errors": row.get("rx_errors") or 0,
                    "reconnects": w.reconnects if w else 0,
                    "config_version": row.get("config_version"),
                    "config_expected": row.get("config_expected"),
                }
            )
        return out

    # --- the daemon itself ----------------------------------------------------------
    def daemon_figures(self) -> dict[str, Any]:
        d = self.daemon
        workers = list(d.workers.values())
        link_errors = sum(
            (w.session.health.bad_frames + w.session.health.bad_schema)
            for w in workers
            if w.session is not None
        )
        return {
            "started": d.started,
            "uptime_s": round(self.clock() - d.started, 1),
            "events_per_s": round(d.writer.current_rate(), 1),
            "committed_events": d.writer.committed_events,
            "store_failures": d.writer.failures,
            "ports": len(workers),
            "online": sum(1 for w in workers if _link_state(w) == "online"),
            "link_errors": link_errors,
        }


def _esc_status(code: Any) -> str | None:
    return None if code is None else STATUS_NAMES.get(int(code), str(code))


def _sl_row(
    scope: str, key: str, name: str, acct: Account | None, view: ScopeView, band: Any
) -> dict[str, Any]:
    variant = acct.sl_variant if acct else "short_excluded"
    cur, today = view.current, view.today
    return {
        "scope": scope,
        "key": key,
        "name": name,
        "account": acct.key if acct else "",
        "band": BAND_NAMES.get(band.band if band else codec.BAND_UNKNOWN, "unknown"),
        "target_pct": acct.sl_target_pct if acct else 80,
        "threshold_s": view.thresholds.answer_s,
        "variant": variant,
        "sl_interval": _r(cur.sl(variant)),
        "sl_today": _r(today.sl(variant)),
        "offered_interval": cur.offered,
        "offered_today": today.offered,
        "answered_today": today.answered,
        "abandoned_today": today.abandoned,
        "asa_interval_s": _r(cur.asa_s),
        "asa_today_s": _r(today.asa_s),
        "abandon_rate_interval_pct": _r(cur.abandon_rate_pct),
        "abandon_rate_today_pct": _r(today.abandon_rate_pct),
        "waiting": view.waiting,
        "longest_waiting_s": _r(view.longest_waiting_s),
    }


def _demand_row(d: report.DemandReport) -> dict[str, Any]:
    return {
        "account": d.account,
        "account_name": d.account_name,
        "contacts": d.summary.contacts,
        "failure_demand": d.summary.failure,
        "failure_demand_pct": _r(d.summary.failure_pct),
        "codes": [
            {
                "code": c.code,
                "label": c.label,
                "contacts": c.contacts,
                "share_pct": _r(c.share_pct),
                "cumulative_pct": _r(c.cumulative_pct),
                "failure_demand": c.demand == "failure",
            }
            for c in d.codes
        ],
    }


def _urgency_key(e: dict[str, Any]) -> tuple[int, float]:
    """Breached first (longest overdue first), then least time left, then oldest."""
    left = e["left_s"]
    if e["urgency"] == "breached":
        return (0, float(left) if left is not None else -float(e["age_s"]))
    if left is not None:
        return (1, float(left))
    return (2, -float(e["age_s"]))
