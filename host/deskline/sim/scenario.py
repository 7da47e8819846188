"""A seeded shift acted out on virtual consoles: callers, queues and agents at their desks.

The driver plays both sides of a contact centre that a test cannot otherwise
have: an ACD (Poisson callers per queue, routing to free agents, rings nobody
answers, callers who give up) that writes an Asterisk queue_log, and the
agents, who lift the handset, escalate, hang up and key wrap-up codes on the
real firmware.  Every decision comes from one `random.Random(seed)` on a
planned timeline that never looks at how the consoles are doing, so a seed
replays the same shift (`plan()` computes it without consoles at all); what
the agents did is kept as ground truth to hold the consoles' journals, the
daemon's store and the queue_log against.
"""

from __future__ import annotations

import heapq
import itertools
import math
import queue
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from deskline.floormodel import Account, Agent, Desk, Floor, Queue, WrapCode
from deskline.sim import queuelog as ql
from deskline.sim.console import VirtualConsole
from deskline.wire import codec

KEY_STAR = 10
KEY_HASH = 11
KEY_ESC = 12
KEY_NAMES = "0123456789*#"

HOW_CODE: int = codec.HOW_CODE
HOW_TIMEOUT: int = codec.HOW_TIMEOUT
HOW_SKIPPED: int = codec.HOW_SKIPPED

OPTIONAL = "optional"
MANDATORY = "mandatory"
MANDATORY_TIMEOUT = "mandatory_timeout"
FORCED_TIMEOUT = "forced_timeout"
AGENT_REQUESTED = "agent_requested"

# A fault-injector may cut a console this long after the driver's last key
# release: the release is debounced (20 ms) and the press journaled by then,
# with room for a loaded machine.  0.15 s was once too little on a machine
# saturated by an apt install and five other jobs: a console starved that
# long had not journaled the press when its power was cut, and the test
# counted it lost (the console cannot keep what it never saw).
QUIET_AFTER_RELEASE_S = 0.5
# Seconds for a console to come back from a power cut or reset.
BOOT_TIMEOUT_S = 15.0

HOOK = "hook"
KEY = "key"


def key_name(code: int) -> str:
    """The panel's name for a wire key code (0-9, 10 '*', 11 '#', 12 ESCALATE)."""
    return "ESC" if code == KEY_ESC else KEY_NAMES[code]


@dataclass(frozen=True)
class Tempo:
    """How a shift goes at speed 1: durations in seconds, chances per call.

    A real floor's minutes are compressed to seconds so a demo shows each desk
    busy every few seconds; the scenario's `speed` divides the ACD's and the
    agents' durations further.  Key timing is never scaled: a press has to
    last through the console's debounce on a loaded machine, as a finger's
    does.  The consoles' own ACW timers (account acw_s) run in real time.
    """

    occupancy: float = 0.85  # the share of time agents are meant to be busy
    talk_s: tuple[float, float] = (3.0, 7.0)
    ring_s: tuple[float, float] = (0.4, 1.5)
    ring_timeout_s: float = 4.0  # a ring nobody answers ends (RINGNOANSWER)
    rna_pause_s: float = 2.0  # the agent who missed it is not rung meanwhile
    patience_s: tuple[float, float] = (4.0, 25.0)  # a caller waits this long, then abandons
    think_s: tuple[float, float] = (0.4, 1.2)  # hang-up to the first wrap-up key
    p_ring_no_answer: float = 0.06
    p_escalate: float = 0.15
    p_severity: float = 0.5  # an escalation with a severity digit before ESC
    p_help: float = 0.03  # a long '*' (supervisor help) on a call
    p_caller_hangs_up: float = 0.5
    p_typo: float = 0.05  # a code not in the table first (refused), then the right one
    p_timeout: float = 0.12  # let the ACW timer run out, where the mode has one
    p_skip: float = 0.25  # optional mode: '#' alone
    p_request: float = 0.5  # agent-requested mode: '#' on the call asks for ACW
    max_timeout_acw_s: float = 30.0  # longer ACW timers are never waited out on purpose
    press_ms: int = 80
    gap_ms: int = 120
    esc_ms: int = 120  # well under the 1.5 s long press
    help_ms: int = 1800  # over the 1.5 s long press
    settle_s: float = 0.6  # after an ACW timeout, before the desk counts as free


# --- ground truth ---------------------------------------------------------------------
@dataclass(frozen=True)
class Input:
    """One thing the agent did at the desk."""

    kind: str  # "key" or "hook"
    value: int  # key code 0-12; hook 1 lifted, 0 replaced
    t: float  # seconds since the shift began, when the input changed
    held_ms: int = 0
    call: str = ""  # the ACD unique id of the call it belongs to


@dataclass
class CallTruth:
    """One caller, from ENTERQUEUE to its end."""

    uniqueid: str
    queue: str
    callerid: str
    enter_epoch: int = 0
    outcome: str = "waiting"  # "answered", "abandoned", or still "waiting"
    device_id: str = ""
    member: str = ""
    connect_epoch: int = 0
    end_epoch: int = 0
    hung_up_by: str = ""  # "agent" or "caller"
    rang_unanswered: list[str] = field(default_factory=list)  # members
    # (kind, severity): kind 0 client escalation, 1 supervisor help (long
    # '*'); severity the digit keyed before ESC, 0 for the account default.
    escalations: list[tuple[int, int]] = field(default_factory=list)
    # The WRAPUP the console should record (code, how); None when the
    # account's mode goes straight back to READY.
    wrap: tuple[int, int] | None = None


@dataclass
class DeskTruth:
    device_id: str
    desk: str
    member: str
    account: str
    inputs: list[Input] = field(default_factory=list)
    calls: list[CallTruth] = field(default_factory=list)

    def keys(self) -> list[int]:
        return [i.value for i in self.inputs if i.kind == KEY]

    def hooks(self) -> list[int]:
        return [i.value for i in self.inputs if i.kind == HOOK]

    def sequence(self) -> list[tuple[str, int]]:
        return [(i.kind, i.value) for i in self.inputs]


@dataclass
class ShiftTruth:
    epoch0: int  # wall clock (s) at the shift's t = 0; also the unique ids' prefix
    desks: dict[str, DeskTruth]
    calls: dict[str, CallTruth]
    lines: list[str]  # the queue_log lines, as written


# --- the plan ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Step:
    t: float
    kind: str
    value: int
    held_ms: int = 0


@dataclass
class _Call:
    n: int
    queue: str
    t_enter: float
    deadline: float
    opos: int
    truth: CallTruth
    agent_uid: str
    state: str = "waiting"  # waiting, ringing, answered, abandoned
    t_ring: float = 0.0
    seat: _Seat | None = None  # who it rings


@dataclass
class _Job:
    """One answered call at one desk, from the handset lifted to the desk free again."""

    call: _Call
    device_id: str
    t_ring: float
    t_connect: float
    steps: list[_Step]
    t_free: float

    def presses(self) -> int:
        return sum(1 for s in self.steps if s.kind == KEY)


@dataclass
class _Seat:
    """An agent at a desk, as the ACD sees them."""

    index: int
    desk: Desk
    device_id: str
    member: str
    account: Account
    mode: str
    acw_s: int
    fallback: int
    codes: list[int]
    free: bool = True
    free_since: float = 0.0
    done: bool = False  # has had its presses: serves who is waiting, then retires
    retired: bool = False
    presses: int = 0

    def in_table(self, code: int) -> bool:
        return any(c.code == code for c in self.account.codes)


def _seats(floor: Floor, device_ids: Iterable[str]) -> list[_Seat]:
    """Desks with an agent, queues and a console in the shift, in desk-name order."""
    wanted = set(device_ids)
    seats: list[_Seat] = []
    for name in sorted(floor.desks):
        desk = floor.desks[name]
        if desk.console not in wanted or not desk.agent or not desk.queues:
            continue
        account = floor.accounts[desk.account]
        cfg = account.console_config
        fallback = int(cfg.get("fallback", 0))
        codes = [c.code for c in account.codes if c.code != fallback] or [
            c.code for c in account.codes
        ]
        seats.append(
            _Seat(
                index=len(seats),
                desk=desk,
                device_id=desk.console,
                member=ql.member_name(desk.agent),
                account=account,
                mode=str(cfg.get("mode", OPTIONAL)),
                acw_s=int(cfg.get("acw_s", 60)),
                fallback=fallback,
                codes=codes,
            )
        )
    return seats


class _Acd:
    """The ACD and the agents' decisions, as a discrete-event simulation.

    It runs on planned times only: the live driver calls step() when the
    wall clock reaches next_time(), plan() calls it straight away, and both
    get the same shift.
    """

    def __init__(
        self,
        seats: list[_Seat],
        seed: int,
        speed: float,
        tempo: Tempo,
        ledger: _Ledger,
        dispatch: Callable[[_Job], None],
        uid_base: int,
        seconds: float | None,
        presses: int | None,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.rng = random.Random(seed)
        self.seats = seats
        self.speed = speed
        self.tempo = tempo
        self.ledger = ledger
        self.dispatch = dispatch
        self.uid_base = uid_base
        self.seconds = seconds
        self.presses = presses
        self.now = 0.0
        self._heap: list[tuple[float, int, str, _Call | _Seat | str]] = []
        self._order = itertools.count()
        self._calls = itertools.count()
        self.queued: dict[str, list[_Call]] = {}
        self.serving: dict[str, list[_Seat]] = {}
        for seat in seats:
            for q in seat.desk.queues:
                self.serving.setdefault(q, []).append(seat)
                self.queued.setdefault(q, [])
        if presses is not None and presses <= 0:
            for seat in seats:
                seat.done = seat.retired = True
        self.rates = self._rates()
        for q in sorted(self.rates):
            self._at(self.rng.expovariate(self.rates[q]), "arrive", q)

    # --- timeline ---------------------------------------------------------------
    def next_time(self) -> float | None:
        # Events that can no longer do anything go, so a shift that is over
        # ends now rather than at its last caller's patience or next arrival.
        while self._heap and self._stale(*self._heap[0]):
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def _stale(self, t: float, _order: int, what: str, obj: _Call | _Seat | str) -> bool:
        if what == "patience" and isinstance(obj, _Call):
            return obj.state in ("answered", "abandoned")
        if what == "arrive" and isinstance(obj, str):
            over = self.seconds is not None and t > self.seconds
            return over or all(seat.done for seat in self.serving[obj])
        return False

    def step(self) -> None:
        t, _, what, obj = heapq.heappop(self._heap)
        self.now = t
        if what == "arrive" and isinstance(obj, str):
            self._arrive(obj, t)
        elif what == "patience" and isinstance(obj, _Call):
            if obj.state == "waiting":
                self._abandon(obj)
        elif what == "rna" and isinstance(obj, _Call):
            self._ring_no_answer(obj, t)
        elif what == "answer" and isinstance(obj, _Call):
            obj.state = "answered"
            self.queued[obj.queue].remove(obj)
        elif what == "free" and isinstance(obj, _Seat):
            self._seat_free(obj, t)

    def _at(self, t: float, what: str, obj: _Call | _Seat | str) -> None:
        heapq.heappush(self._heap, (t, next(self._order), what, obj))

    def _s(self, span: tuple[float, float]) -> float:
        return self.rng.uniform(*span) / self.speed

    # --- load -----------------------------------------------------------------------
    def _rates(self) -> dict[str, float]:
        """Calls per second per queue, to keep agents busy about `occupancy` of the time."""
        rates: dict[str, float] = {}
        for seat in self.seats:
            share = self.tempo.occupancy / (self._cycle(seat) * len(seat.desk.queues))
            for q in seat.desk.queues:
                rates[q] = rates.get(q, 0.0) + share
        return rates

    def _cycle(self, seat: _Seat) -> float:
        tp = self.tempo
        mean = sum(tp.ring_s) / 2 / self.speed + sum(tp.talk_s) / 2 / self.speed
        entry = sum(tp.think_s) / 2 / self.speed + 3 * (tp.press_ms + tp.gap_ms) / 1000 + 0.2
        acw = seat.acw_s + tp.settle_s
        timed = seat.mode != MANDATORY and 0 < seat.acw_s <= tp.max_timeout_acw_s
        wrap = entry if not timed else (1 - tp.p_timeout) * entry + tp.p_timeout * acw
        if seat.mode == FORCED_TIMEOUT:
            wrap = max(entry, acw)
        elif seat.mode == AGENT_REQUESTED:
            wrap = tp.p_request * wrap + (1 - tp.p_request) * tp.settle_s
        return mean + wrap

    # --- callers ----------------------------------------------------------------------
    def _arrive(self, q: str, t: float) -> None:
        if self.seconds is not None and t > self.seconds:
            return
        if all(seat.done for seat in self.serving[q]):
            return
        n = next(self._calls)
        truth = CallTruth(
            uniqueid=f"{self.uid_base}.{2 * n}",
            queue=q,
            callerid=f"07700900{self.rng.randrange(1000):03d}",  # Ofcom's drama range
        )
        call = _Call(
            n=n,
            queue=q,
            t_enter=t,
            deadline=t + self._s(self.tempo.patience_s),
            opos=len(self.queued[q]) + 1,
            truth=truth,
            agent_uid=f"{self.uid_base}.{2 * n + 1}",
        )
        self.queued[q].append(call)
        self.ledger.enter(call)
        self._at(call.deadline, "patience", call)
        free = [s for s in self.serving[q] if s.free and not s.retired]
        if free:
            self._offer(call, min(free, key=lambda s: (s.free_since, s.index)), t)
        self._at(t + self.rng.expovariate(self.rates[q]), "arrive", q)

    def _abandon(self, call: _Call) -> None:
        position = self.queued[call.queue].index(call) + 1
        self.queued[call.queue].remove(call)
        call.state = "abandoned"
        self.ledger.abandon(call, position)

    def _ring_no_answer(self, call: _Call, t: float) -> None:
        seat = call.seat
        assert seat is not None
        self.ledger.ring_no_answer(call, seat.member)
        call.state = "waiting"
        self._at(t + self.tempo.rna_pause_s / self.speed, "free", seat)
        if t >= call.deadline:
            self._abandon(call)
            return
        free = [s for s in self.serving[call.queue] if s.free and not s.retired]
        if free:
            self._offer(call, min(free, key=lambda s: (s.free_since, s.index)), t)

    def _seat_free(self, seat: _Seat, t: float) -> None:
        seat.free = True
        seat.free_since = t
        if self.presses is not None and seat.presses >= self.presses:
            seat.done = True
        waiting = [c for q in seat.desk.queues for c in self.queued[q] if c.state == "waiting"]
        if waiting:
            self._offer(min(waiting, key=lambda c: (c.t_enter, c.n)), seat, t)
        elif seat.done:
            seat.retired = True

    def _offer(self, call: _Call, seat: _Seat, t: float) -> None:
        seat.free = False
        call.state = "ringing"
        call.t_ring = t
        call.seat = seat
        if self.rng.random() < self.tempo.p_ring_no_answer:
            call.truth.rang_unanswered.append(seat.member)
            self._at(t + self.tempo.ring_timeout_s / self.speed, "rna", call)
            return
        job = self._job(call, seat, t)
        seat.presses += job.presses()
        truth = call.truth
        truth.device_id = seat.device_id
        truth.member = seat.member
        self._at(job.t_connect, "answer", call)
        self._at(job.t_free, "free", seat)
        self.dispatch(job)

    # --- the agent -------------------------------------------------------------------------
    def _job(self, call: _Call, seat: _Seat, t_ring: float) -> _Job:
        tp, rng = self.tempo, self.rng
        t_connect = t_ring + self._s(tp.ring_s)
        talk = self._s(tp.talk_s)
        mid: list[tuple[int, int]] = []
        if rng.random() < tp.p_escalate:
            severity = 0
            if rng.random() < tp.p_severity:
                severity = rng.randint(1, 4)
                mid.append((severity, tp.press_ms))
            mid.append((KEY_ESC, tp.esc_ms))
            call.truth.escalations.append((0, severity))
        if rng.random() < tp.p_help:
            mid.append((KEY_STAR, tp.help_ms))
            call.truth.escalations.append((1, 0))
        requested = False
        if seat.mode == AGENT_REQUESTED and rng.random() < tp.p_request:
            mid.append((KEY_HASH, tp.press_ms))
            requested = True
        gap = tp.gap_ms / 1000
        mid_s = sum(held / 1000 + gap for _, held in mid)
        # Keys on a call start 0.5 s after the lift and end 0.5 s before the
        # hang-up, clear of the hook's 50 ms debounce.
        talk = max(talk, mid_s + 1.2)
        steps = [_Step(t_connect, HOOK, 1)]
        t = t_connect + 0.5 + rng.uniform(0.0, talk - mid_s - 1.0)
        for code, held in mid:
            steps.append(_Step(t, KEY, code, held))
            t += held / 1000 + gap
        t_end = t_connect + talk
        call.truth.hung_up_by = "caller" if rng.random() < tp.p_caller_hangs_up else "agent"
        steps.append(_Step(t_end, HOOK, 0))
        wrap, keys, t_free = self._wrap_up(seat, t_end, requested)
        call.truth.wrap = wrap
        steps.extend(keys)
        return _Job(call, seat.device_id, t_ring, t_connect, steps, t_free)

    def _wrap_up(
        self, seat: _Seat, t_end: float, requested: bool
    ) -> tuple[tuple[int, int] | None, list[_Step], float]:
        """The wrap-up the agent does after hanging up: its outcome, keys, and when it is over."""
        tp, rng = self.tempo, self.rng
        if seat.mode == AGENT_REQUESTED and not requested:
            return None, [], t_end + 0.3
        timed = seat.mode != MANDATORY and seat.acw_s > 0
        acw_end = t_end + seat.acw_s
        timed_out = (0, HOW_SKIPPED) if seat.mode == OPTIONAL else (seat.fallback, HOW_TIMEOUT)
        over = acw_end + tp.settle_s
        if timed and seat.acw_s <= tp.max_timeout_acw_s and rng.random() < tp.p_timeout:
            return timed_out, [], over
        t = t_end + max(0.4, self._s(tp.think_s))
        keys: list[int] = []
        wrap: tuple[int, int]
        if seat.mode == OPTIONAL and (not seat.codes or rng.random() < tp.p_skip):
            keys = [KEY_HASH]
            wrap = (0, HOW_SKIPPED)
        elif seat.codes:
            code = rng.choice(seat.codes)
            if rng.random() < tp.p_typo:
                typo = rng.randint(10, 99)
                if not seat.in_table(typo):
                    keys += [*_digits(typo), KEY_HASH]
            keys += [*_digits(code), KEY_HASH]
            wrap = (code, HOW_CODE)
        elif timed:
            return timed_out, [], over
        else:
            # No code to key and no timer: cfgcheck refuses such an account.
            return None, [], t_end + 0.3
        per_key = (tp.press_ms + tp.gap_ms) / 1000
        done = t + len(keys) * per_key
        if timed and done > acw_end - 0.4:
            # Too slow for this timer: it ends the wrap-up first.
            return timed_out, [], over
        steps = [_Step(t + i * per_key, KEY, k, tp.press_ms) for i, k in enumerate(keys)]
        return wrap, steps, (over if seat.mode == FORCED_TIMEOUT else done + 0.2)


def _digits(code: int) -> list[int]:
    return [int(c) for c in str(code)]


# --- what happened: queue_log lines and ground truth under one clock -------------------
class _Ledger:
    """Writes the queue_log and the ground truth, with times from one clock.

    Clock readings in the log (hold, call and wait times) are differences of
    the lines' own epochs, as app_queue computes them, so the log is
    consistent with itself even when a desk runs late.
    """

    def __init__(self, writer: ql.QueueLogWriter, truth: ShiftTruth, now: Callable[[], float]):
        self.writer = writer
        self.truth = truth
        self.now = now
        self.lock = threading.Lock()

    def _epoch(self) -> int:
        return self.truth.epoch0 + math.floor(self.now())

    def start(self, seats: list[_Seat]) -> None:
        with self.lock:
            epoch = self._epoch()
            self.writer.write(epoch, ql.NONE, ql.NONE, ql.NONE, ql.QUEUESTART)
            for seat in seats:
                for q in seat.desk.queues:
                    # Logged in by the agent's desktop over AMI.
                    self.writer.write(epoch, "MANAGER", q, seat.member, ql.ADDMEMBER, "")

    def enter(self, call: _Call) -> None:
        with self.lock:
            c = call.truth
            c.enter_epoch = self._epoch()
            self.truth.calls[c.uniqueid] = c
            self.writer.write(
                c.enter_epoch,
                c.uniqueid,
                c.queue,
                ql.NONE,
                ql.ENTERQUEUE,
                "",
                c.callerid,
                call.opos,
            )

    def abandon(self, call: _Call, position: int) -> None:
        with self.lock:
            c = call.truth
            epoch = self._epoch()
            c.outcome = "abandoned"
            c.end_epoch = epoch
            self.writer.write(
                epoch,
                c.uniqueid,
                c.queue,
                ql.NONE,
                ql.ABANDON,
                position,
                call.opos,
                epoch - c.enter_epoch,
            )

    def ring_no_answer(self, call: _Call, member: str) -> None:
        with self.lock:
            ms = max(0, round((self.now() - call.t_ring) * 1000))
            c = call.truth
            self.writer.write(self._epoch(), c.uniqueid, c.queue, member, ql.RINGNOANSWER, ms)

    def input(self, desk: DeskTruth, job: _Job, step: _Step, t: float) -> None:
        """Records an input the agent made; a hook change is also the call's CONNECT or end."""
        with self.lock:
            c = job.call.truth
            desk.inputs.append(Input(step.kind, step.value, t, step.held_ms, c.uniqueid))
            if step.kind != HOOK:
                return
            # Read under the lock, so the file's times never go back.
            epoch = self._epoch()
            if step.value:
                c.outcome = "answered"
                c.connect_epoch = epoch
                self.writer.write(
                    epoch,
                    c.uniqueid,
                    c.queue,
                    c.member,
                    ql.CONNECT,
                    epoch - c.enter_epoch,
                    job.call.agent_uid,
                    max(0, math.floor(t - job.t_ring)),
                )
            else:
                c.end_epoch = epoch
                event = ql.COMPLETECALLER if c.hung_up_by == "caller" else ql.COMPLETEAGENT
                self.writer.write(
                    epoch,
                    c.uniqueid,
                    c.queue,
                    c.member,
                    event,
                    c.connect_epoch - c.enter_epoch,
                    epoch - c.connect_epoch,
                    job.call.opos,
                )


def _new_truth(seats: list[_Seat], epoch0: int, writer: ql.QueueLogWriter) -> ShiftTruth:
    desks = {
        s.device_id: DeskTruth(s.device_id, s.desk.name, s.member, s.account.key) for s in seats
    }
    return ShiftTruth(epoch0=epoch0, desks=desks, calls={}, lines=writer.lines)


def _assigned(job: _Job, truth: ShiftTruth) -> None:
    truth.desks[job.device_id].calls.append(job.call.truth)


def plan(
    floor: Floor,
    device_ids: Iterable[str],
    seed: int,
    *,
    speed: float = 1.0,
    tempo: Tempo | None = None,
    seconds: float | None = None,
    presses_per_console: int | None = None,
    epoch0: int = 1_700_000_000,
) -> ShiftTruth:
    """The shift a seed gives, computed at once without consoles.

    A live `Scenario` with the same arguments makes the same inputs, calls
    and queue_log events; only the times differ.
    """
    if seconds is None and presses_per_console is None:
        raise ValueError("plan() needs seconds or presses_per_console: a shift must end")
    seats = _seats(floor, device_ids)
    writer = ql.QueueLogWriter(None)
    clock = [0.0]
    truth = _new_truth(seats, epoch0, writer)
    ledger = _Ledger(writer, truth, lambda: clock[0])
    steps: list[tuple[float, int, _Job, _Step]] = []
    order = itertools.count()

    def dispatch(job: _Job) -> None:
        _assigned(job, truth)
        for step in job.steps:
            heapq.heappush(steps, (step.t, next(order), job, step))

    acd = _Acd(
        seats, seed, speed, tempo or Tempo(), ledger, dispatch, epoch0, seconds, presses_per_console
    )
    ledger.start(seats)
    while True:
        t_acd = acd.next_time()
        if steps and (t_acd is None or steps[0][0] <= t_acd):
            t, _, job, step = heapq.heappop(steps)
            clock[0] = t
            ledger.input(truth.desks[job.device_id], job, step, t)
        elif t_acd is not None:
            clock[0] = t_acd
            acd.step()
        else:
            return truth


# --- the live shift ------------------------------------------------------------------------
class _Gate:
    """Lets a fault-injector in between an agent's calls, never during one."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy = False  # the agent is on a call or in its wrap-up
        self._quiet = False  # a fault-injector holds the desk
        self._waiting = 0  # fault-injectors queued for it: they go first

    def enter_call(self, stop: threading.Event) -> bool:
        with self._cond:
            while self._quiet or self._waiting:
                if stop.is_set():
                    return False
                self._cond.wait(0.1)
            self._busy = True
            return True

    def leave_call(self) -> None:
        with self._cond:
            self._busy = False
            self._cond.notify_all()

    def enter_quiet(self, timeout: float) -> None:
        with self._cond:
            self._waiting += 1
            try:
                ok = self._cond.wait_for(lambda: not self._busy and not self._quiet, timeout)
            finally:
                self._waiting -= 1
                self._cond.notify_all()
            if not ok:
                raise TimeoutError(f"the desk was not idle within {timeout} s")
            self._quiet = True

    def leave_quiet(self) -> None:
        with self._cond:
            self._quiet = False
            self._cond.notify_all()


@dataclass
class _Runner:
    vc: VirtualConsole
    gate: _Gate = field(default_factory=_Gate)
    jobs: queue.Queue[_Job | None] = field(default_factory=queue.Queue)
    last_release: float = 0.0  # time.monotonic() of the driver's last key release
    max_lag: float = 0.0
    stalls: int = 0  # times the console was not READY when the plan said it would be
    # The console did not follow the plan last time (not configured for
    # the account?): check READY without waiting, so the desk does not fall
    # further behind at every call.
    out_of_step: bool = False


def _ready(vc: VirtualConsole, timeout: float) -> bool:
    return vc.wait_for(lambda s: s.display[0].startswith("READY"), timeout)


class Scenario:
    """A seeded shift on live virtual consoles: start()/stop(), or run() to the end.

    consoles maps device ids to running consoles; desks of `floor` whose
    console is missing, or that have no agent or no queues, take no calls.
    The consoles should already run their accounts' configs (the daemon or
    a test host pushes them): the driver keys what the account's wrap-up
    mode calls for and expects the console to follow it.
    """

    def __init__(
        self,
        floor: Floor,
        consoles: dict[str, VirtualConsole],
        seed: int,
        queue_log: Path | None = None,
        speed: float = 1.0,
        tempo: Tempo | None = None,
        ready_timeout: float = 5.0,
    ) -> None:
        self.floor = floor
        self.consoles = consoles
        self.seed = seed
        self.queue_log = queue_log
        self.speed = speed
        self.tempo = tempo or Tempo()
        self.ready_timeout = ready_timeout
        self.truth: ShiftTruth | None = None
        self.errors: list[BaseException] = []
        self._runners = {d: _Runner(vc) for d, vc in consoles.items()}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._writer: ql.QueueLogWriter | None = None
        self._ledger: _Ledger | None = None
        self._mono0 = 0.0

    # --- running ----------------------------------------------------------------------
    def start(self, seconds: float | None = None, presses_per_console: int | None = None) -> None:
        """Starts the shift in threads; without a limit it runs until stop()."""
        if self._threads:
            raise RuntimeError("a Scenario runs once")
        seats = _seats(self.floor, self.consoles)
        self._writer = ql.QueueLogWriter(self.queue_log)
        # t = 0 on a whole wall-clock second: every line's epoch is then
        # epoch0 + floor(t), and the log's times agree with the plan's.
        wall = time.time()
        epoch0 = math.floor(wall) + 1
        time.sleep(epoch0 - wall)
        self._mono0 = time.monotonic()
        truth = _new_truth(seats, epoch0, self._writer)
        self.truth = truth
        ledger = _Ledger(self._writer, truth, self._now)
        self._ledger = ledger

        def dispatch(job: _Job) -> None:
            _assigned(job, truth)
            self._runners[job.device_id].jobs.put(job)

        acd = _Acd(
            seats,
            self.seed,
            self.speed,
            self.tempo,
            ledger,
            dispatch,
            epoch0,
            seconds,
            presses_per_console,
        )
        ledger.start(seats)
        acd_thread = threading.Thread(
            target=self._acd_loop, args=(acd,), name="scenario:acd", daemon=True
        )
        self._threads.append(acd_thread)
        for seat in seats:
            runner = self._runners[seat.device_id]
            desk = truth.desks[seat.device_id]
            self._threads.append(
                threading.Thread(
                    target=self._desk_loop,
                    args=(runner, desk, ledger),
                    name=f"scenario:{seat.device_id}",
                    daemon=True,
                )
            )
        for t in self._threads:
            t.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Waits for a limited shift to end (every caller done); False on timeout."""
        end = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            t.join(None if end is None else max(0.0, end - time.monotonic()))
            if t.is_alive():
                return False
        self._raise_errors()
        return True

    def stop(self) -> None:
        """Stops the shift where it is (a call may be left open)."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5.0)
        if self._writer is not None:
            self._writer.close()

    def run(
        self,
        seconds: float | None = None,
        presses_per_console: int | None = None,
        timeout: float | None = None,
    ) -> ShiftTruth:
        """Runs a shift to its end: callers arrive for `seconds`, or until every
        console has had at least `presses_per_console` key presses; then the
        calls under way finish and waiting callers are served or give up."""
        if seconds is None and presses_per_console is None:
            raise ValueError("run() needs seconds or presses_per_console; use start() to run on")
        self.start(seconds, presses_per_console)
        try:
            if not self.wait(timeout):
                raise TimeoutError(f"the shift did not end within {timeout} s")
        finally:
            self.stop()
        assert self.truth is not None
        return self.truth

    def _raise_errors(self) -> None:
        if self.errors:
            raise RuntimeError(f"the scenario failed: {self.errors[0]!r}") from self.errors[0]

    def _now(self) -> float:
        return time.monotonic() - self._mono0

    def _sleep_until(self, t: float) -> bool:
        """Sleeps until shift time t; False when stopped meanwhile."""
        left = t - self._now()
        return not (left > 0 and self._stop.wait(left)) and not self._stop.is_set()

    def _acd_loop(self, acd: _Acd) -> None:
        try:
            while not self._stop.is_set():
                t = acd.next_time()
                if t is None or not self._sleep_until(t):
                    break
                acd.step()
        except Exception as e:  # reported by wait()/run()
            self.errors.append(e)
        finally:
            for runner in self._runners.values():
                runner.jobs.put(None)

    def _desk_loop(self, runner: _Runner, desk: DeskTruth, ledger: _Ledger) -> None:
        try:
            while not self._stop.is_set():
                job = runner.jobs.get()
                if job is None or not self._play(runner, desk, ledger, job):
                    return
        except Exception as e:  # reported by wait()/run()
            self.errors.append(e)

    def _play(self, runner: _Runner, desk: DeskTruth, ledger: _Ledger, job: _Job) -> bool:
        """Plays one call at a desk; False when stopped part way."""
        if not runner.gate.enter_call(self._stop):
            return False
        try:
            vc = runner.vc
            # The plan expects READY here; a console that lags is waited for
            # rather than interrupted in its wrap-up.
            self._await_ready(runner)
            if not self._sleep_until(job.t_connect):
                return False
            # Late (a fault-injector held the desk, or the machine is slow):
            # the whole call moves, keeping its own pace.
            shift = max(0.0, self._now() - job.t_connect)
            runner.max_lag = max(runner.max_lag, shift)
            for step in job.steps:
                if not self._sleep_until(step.t + shift):
                    return False
                if step.kind == HOOK:
                    vc.hook(bool(step.value))
                    ledger.input(desk, job, step, self._now())
                else:
                    name = key_name(step.value)
                    vc.down(name)
                    t = self._now()
                    time.sleep(step.held_ms / 1000)
                    vc.up(name)
                    runner.last_release = time.monotonic()
                    ledger.input(desk, job, step, t)
            if not self._sleep_until(job.t_free + shift):
                return False
            self._await_ready(runner)
            return True
        finally:
            runner.gate.leave_call()

    def _await_ready(self, runner: _Runner) -> None:
        ok = _ready(runner.vc, 0.0 if runner.out_of_step else self.ready_timeout)
        runner.out_of_step = not ok
        runner.stalls += not ok

    # --- chaos ----------------------------------------------------------------------------
    @contextmanager
    def quiet(self, device_id: str, timeout: float = 60.0) -> Iterator[VirtualConsole]:
        """Holds a desk idle for a fault-injector: on hook, no call, no wrap-up,
        and QUIET_AFTER_RELEASE_S past the last key release, so every press the
        driver made is journaled.  After a power cut or reset inside, waits
        until the console's app runs again before the agent carries on."""
        runner = self._runners[device_id]
        runner.gate.enter_quiet(timeout)
        try:
            rest = runner.last_release + QUIET_AFTER_RELEASE_S - time.monotonic()
            if rest > 0:
                time.sleep(rest)
            vc = runner.vc
            proc, boots = vc.proc, vc.boots
            yield vc
            _wait_back(vc, proc, boots)
        finally:
            runner.gate.leave_quiet()

    def stats(self) -> dict[str, float]:
        """Counts for a summary line: calls, answered, abandoned, presses, lag."""
        truth, ledger = self.truth, self._ledger
        calls: list[CallTruth] = []
        presses = 0
        if truth is not None and ledger is not None:
            with ledger.lock:  # the ACD and desk threads add to these
                calls = list(truth.calls.values())
                presses = sum(len(d.keys()) for d in truth.desks.values())
        return {
            "calls": len(calls),
            "answered": sum(1 for c in calls if c.outcome == "answered"),
            "abandoned": sum(1 for c in calls if c.outcome == "abandoned"),
            "unanswered_rings": sum(len(c.rang_unanswered) for c in calls),
            "presses": presses,
            "max_lag_s": max((r.max_lag for r in self._runners.values()), default=0.0),
            "stalls": sum(r.stalls for r in self._runners.values()),
        }


def _wait_back(vc: VirtualConsole, proc: object, boots: int) -> None:
    """Waits for a console cut or reset inside quiet() to run its app again."""
    # SIGKILL lands within a scheduler tick; give a loaded machine 0.2 s to show it.
    end = time.monotonic() + 0.2
    while True:
        p = vc.proc
        if vc.boots != boots or p is not proc or (p is not None and p.poll() is not None):
            break
        if time.monotonic() > end:
            return  # nothing was cut
        time.sleep(0.01)
    # A new boot's first display draw: its app runs, and scans the keys.
    if not vc.wait_for(lambda s: vc.boots != boots and s.draws > 0, BOOT_TIMEOUT_S):
        raise TimeoutError(f"{vc.device_id} did not come back from a reset")


# --- a floor to act on when there is no floor file -------------------------------------------
def demo_floor(device_ids: list[str]) -> Floor:
    """Two client accounts over the given consoles, alternating desk by desk."""
    volt_codes = (
        WrapCode(1, "Billing query", True),
        WrapCode(2, "Meter reading"),
        WrapCode(3, "Payment plan"),
        WrapCode(7, "Confusing bill", True),
        WrapCode(99, "ACW timeout"),
    )
    nw_codes = (
        WrapCode(1, "Network fault", True),
        WrapCode(2, "Upgrade"),
        WrapCode(5, "Lost or stolen"),
        WrapCode(98, "Forced end"),
    )

    def account(
        key: str, name: str, mode: str, acw: int, fb: int, codes: tuple[WrapCode, ...]
    ) -> Account:
        cfg = {
            "account": name,
            "mode": mode,
            "acw_s": acw,
            "fallback": fb,
            "codes": [[c.code, c.label, c.failure_demand] for c in codes],
            "hotline": "+44 20 7946 0000",
        }
        return Account(key=key, name=name, codes=codes, console_config=cfg)

    accounts = {
        "volt": account("volt", "Volt Energy", MANDATORY_TIMEOUT, 20, 99, volt_codes),
        "northwind": account("northwind", "Northwind Mobile", FORCED_TIMEOUT, 8, 98, nw_codes),
    }
    queues = {
        "volt-billing": Queue("volt-billing", "volt"),
        "volt-moves": Queue("volt-moves", "volt"),
        "nw-tech": Queue("nw-tech", "northwind"),
    }
    agents: dict[str, Agent] = {}
    desks: dict[str, Desk] = {}
    for i, device_id in enumerate(device_ids):
        agent = f"e{1001 + i}"
        agents[agent] = Agent(agent, f"Agent {i + 1}")
        volt = i % 2 == 0
        desks[device_id] = Desk(
            name=device_id,
            console=device_id,
            account="volt" if volt else "northwind",
            agent=agent,
            queues=("volt-billing", "volt-moves") if volt else ("nw-tech",),
            row=i // 6 + 1,
            col=i % 6 + 1,
        )
    return Floor("Demo floor", accounts, queues, agents, desks)
