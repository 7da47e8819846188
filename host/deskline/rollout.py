"""Staged rollout of a bundle across a floor, driven from `deskline update`.

Canary consoles go first; the rest follow only once every canary came back
healthy on the new app, a few at a time.  The first rollback or failure
halts the rollout: nothing new starts, what runs finishes.  The daemon does
each console's update (deskline.update); this side only decides who goes
when, through the control socket, so a rollout can be followed, stopped
(Ctrl-C leaves running consoles to finish) and reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deskline.errors import DesklineError
from deskline.firmware.updcodes import HELLO_TRIAL as TRIAL

Request = Callable[[dict[str, Any]], dict[str, Any]]
TERMINAL = ("done", "failed", "rolled_back", "up_to_date")
JOB_TIMEOUT_S = 900.0  # one console, firmware included, on a slow line


@dataclass
class Plan:
    canaries: list[str]
    rest: list[str]
    up_to_date: list[str] = field(default_factory=list)
    offline: list[str] = field(default_factory=list)

    @property
    def targets(self) -> list[str]:
        return self.canaries + self.rest


@dataclass
class Outcome:
    """One console's part in the rollout."""

    device: str
    result: str  # updated, up_to_date, rolled_back, failed, skipped, offline
    canary: bool = False
    from_version: str = ""
    to_version: str = ""
    error: str = ""
    seconds: float = 0.0
    resends: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class Report:
    version: str
    outcomes: list[Outcome]
    halted: str = ""  # why the rollout stopped early

    @property
    def ok(self) -> bool:
        return not self.halted and all(o.result in ("updated", "up_to_date") for o in self.outcomes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "version": self.version,
            "halted": self.halted,
            "consoles": [o.as_dict() for o in self.outcomes],
        }


def make_plan(
    consoles: list[dict[str, Any]],
    version: str,
    only: list[str] | None = None,
    canary: int = 1,
    canary_ids: list[str] | None = None,
    force: bool = False,
) -> Plan:
    """Who updates, canaries first; consoles already on version are left out."""
    known = {c["device"]: c for c in consoles}
    wanted = list(only) if only else sorted(known)
    missing = [d for d in [*wanted, *(canary_ids or [])] if d not in known]
    if missing:
        raise DesklineError(
            f"no console {', '.join(sorted(set(missing)))} has said hello to the daemon: "
            "check `deskline devices`"
        )
    plan = Plan([], [])
    todo = []
    for d in wanted:
        c = known[d]
        if not c.get("online"):
            plan.offline.append(d)
        elif c.get("app_version") == version and not force and not c.get("flags", 0) & TRIAL:
            plan.up_to_date.append(d)
        else:
            todo.append(d)
    if canary_ids:
        plan.canaries = [d for d in canary_ids if d in todo]
    else:
        plan.canaries = todo[: max(canary, 0)]
    plan.rest = [d for d in todo if d not in plan.canaries]
    return plan


def run_rollout(
    request: Request,
    bundle: str,
    version: str,
    plan: Plan,
    parallel: int = 4,
    firmware: str | bool | None = None,
    force: bool = False,
    on_change: Callable[[dict[str, dict[str, Any]]], None] | None = None,
    poll_s: float = 0.25,
) -> Report:
    """Runs the plan wave by wave; on_change(jobs by device) as they move."""
    outcomes: dict[str, Outcome] = {}
    for d in plan.up_to_date:
        outcomes[d] = Outcome(d, "up_to_date", from_version=version, to_version=version)
    for d in plan.offline:
        outcomes[d] = Outcome(d, "offline", error="not online")
    halted = ""
    for wave, canary in ((plan.canaries, True), (plan.rest, False)):
        if halted:
            for d in wave:
                outcomes[d] = Outcome(d, "skipped", canary, error=f"rollout halted: {halted}")
            continue
        halted = _wave(
            request, bundle, wave, canary, parallel, firmware, force, outcomes, on_change, poll_s
        )
        if halted and canary:
            halted = f"canary {halted}"
    order = {d: i for i, d in enumerate([*plan.targets, *plan.up_to_date, *plan.offline])}
    return Report(version, sorted(outcomes.values(), key=lambda o: order.get(o.device, 0)), halted)


def _wave(
    request: Request,
    bundle: str,
    devices: list[str],
    canary: bool,
    parallel: int,
    firmware: str | bool | None,
    force: bool,
    outcomes: dict[str, Outcome],
    on_change: Callable[[dict[str, dict[str, Any]]], None] | None,
    poll_s: float,
) -> str:
    queue = list(devices)
    running: dict[str, float] = {}  # device -> start time
    halted = ""
    while queue or running:
        while queue and len(running) < max(parallel, 1) and not halted:
            d = queue.pop(0)
            req: dict[str, Any] = {"op": "update", "device": d, "bundle": bundle, "force": force}
            if firmware:
                req["firmware"] = firmware
            reply = request(req)
            if not reply.get("ok"):
                outcomes[d] = Outcome(d, "failed", canary, error=str(reply.get("error", reply)))
                halted = halted or f"{d} failed: {outcomes[d].error}"
                continue
            running[d] = time.monotonic()
        if halted:
            for d in queue:
                outcomes[d] = Outcome(d, "skipped", canary, error=f"rollout halted: {halted}")
            queue = []
        if not running:
            break
        time.sleep(poll_s)
        status = request({"op": "update_status"})
        jobs = {j["device"]: j for j in status.get("jobs", [])}
        if on_change is not None:
            on_change(jobs)
        for d in list(running):
            job = jobs.get(d)
            late = time.monotonic() - running[d] > JOB_TIMEOUT_S
            if job is None or (job["state"] not in TERMINAL and not late):
                continue
            started = running.pop(d)
            o = _outcome(d, job, canary, time.monotonic() - started, late)
            outcomes[d] = o
            if o.result in ("rolled_back", "failed") and not halted:
                halted = f"{d} {o.result.replace('_', ' ')}: {o.error}"
    return halted


def _outcome(d: str, job: dict[str, Any], canary: bool, seconds: float, late: bool) -> Outcome:
    state = job["state"]
    result = {"done": "updated", "up_to_date": "up_to_date"}.get(state, state)
    error = job.get("error", "")
    if late and state not in TERMINAL:
        result, error = "failed", f"no verdict in {JOB_TIMEOUT_S:.0f} s ({state})"
    return Outcome(
        d,
        result,
        canary,
        from_version=job.get("from_version", ""),
        to_version=job.get("to_version", ""),
        error=error,
        seconds=round(seconds, 1),
        resends=int(job.get("resends", 0)),
    )
