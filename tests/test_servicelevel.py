"""The service-level engine: fed a queue_log line by line, it must agree with a
brute-force reference over the whole list of calls, for every figure and
variant and for 15, 30 and 60 minute intervals; plus hand-worked cases."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from deskline import queuelog as ql
from deskline.servicelevel import (
    ACCOUNT,
    QUEUE,
    VARIANTS,
    Connected,
    Ended,
    Entered,
    Ignored,
    Scope,
    ServiceLevel,
    Stats,
    Thresholds,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FIXTURES = Path(__file__).parent / "fixtures" / "queue_log"
LONDON = ZoneInfo("Europe/London")
ACCOUNTS = {"q1": "acme", "q2": "acme", "q3": "volt"}  # q4 has no account
THRESHOLDS = {"acme": Thresholds(20, 5), "volt": Thresholds(30, 0)}
DEFAULT = Thresholds(10, 3)
MAX_AGE = 1200
# 2024-03-30 23:10 GMT: the shift runs over midnight into the spring DST change
# (01:00 GMT on the 31st), and a plain afternoon for comparison.
BASES = (1711840200, 1718283000)
END_EVENTS = (
    ql.COMPLETEAGENT,
    ql.COMPLETECALLER,
    ql.BLINDTRANSFER,
    ql.ATTENDEDTRANSFER,
    ql.TRANSFER,
    None,
)
EXITS = {
    "abandoned": ql.ABANDON,
    "timeout": ql.EXITWITHTIMEOUT,
    "empty": ql.EXITEMPTY,
    "withdrawn": ql.WITHDRAW,
    "key": ql.EXITWITHKEY,
}
GARBAGE = (
    "garbage",
    "",
    "12|x",
    "1711840200|u.1|q1|NONE|BOGUS|1",
    "notatime|u.1|q1|NONE|CONNECT|1|b|2",
    "1711840200|u.1|q1|NONE|CONNECT|x|b|2",
    "1711840200|u.1|q1|NONE|ENTERQUEUE|",
)


# --- the generated histories ---------------------------------------------------------


@dataclass
class Call:
    index: int
    uid: str
    queue: str
    enter: int
    origpos: int
    kind: str  # answered | an EXITS key | noexit
    hold: int = 0  # hold (answered) or wait (exit)
    end_event: str | None = None
    talk: int = 0
    member: str = ""
    rings: list[tuple[int, int]] = field(default_factory=list)  # (at, ms)
    acw: list[tuple[int, int]] = field(default_factory=list)  # (at, seconds)

    @property
    def account(self) -> str | None:
        return ACCOUNTS.get(self.queue)

    @property
    def th(self) -> Thresholds:
        return THRESHOLDS.get(self.account or "", DEFAULT)

    @property
    def connect_at(self) -> int | None:
        return self.enter + self.hold if self.kind == "answered" else None

    @property
    def exit_at(self) -> int | None:
        return self.enter + self.hold if self.kind in EXITS else None

    @property
    def end_at(self) -> int | None:
        """The time of the line that ends the call (COMPLETE*, transfer or exit)."""
        if self.kind in EXITS:
            return self.exit_at
        if self.kind == "answered" and self.end_event is not None:
            return self.enter + self.hold + self.talk
        return None

    @property
    def last_at(self) -> int:
        return max(t for t in (self.enter, self.connect_at, self.end_at) if t is not None)

    def lines(self) -> list[tuple[tuple[int, int, int, int], str]]:
        """Its queue_log lines, each with a sort key (time, 1, call, step)."""
        out = []
        step = 0

        def add(at: int, member: str, event: str, *data: object) -> None:
            nonlocal step
            fields = [str(at), self.uid, self.queue, member, event, *map(str, data)]
            out.append(((at, 1, self.index, step), "|".join(fields)))
            step += 1

        add(self.enter, "NONE", ql.ENTERQUEUE, "", f"0770{self.index:04d}", self.origpos)
        for at, ms in self.rings:
            add(at, self.member or "Agent/x", ql.RINGNOANSWER, ms)
        if self.kind == "answered":
            c = self.connect_at
            assert c is not None
            add(c, self.member, ql.CONNECT, self.hold, f"{self.uid}b", 2)
            end = self.end_at
            if end is not None:
                ev = self.end_event
                if ev in (ql.COMPLETEAGENT, ql.COMPLETECALLER):
                    add(end, self.member, ev, self.hold, self.talk, self.origpos)
                elif ev == ql.BLINDTRANSFER:
                    add(end, self.member, ev, "200", "ctx", self.hold, self.talk, self.origpos)
                elif ev == ql.ATTENDEDTRANSFER:
                    add(end, self.member, ev, "LINK", "a", "b", self.hold, self.talk, 1)
                else:
                    add(end, self.member, ql.TRANSFER, "200", "ctx", self.hold, self.talk)
        elif self.kind in EXITS:
            x = self.exit_at
            assert x is not None
            ev = EXITS[self.kind]
            pos = max(1, self.origpos - 1)
            if ev == ql.EXITWITHKEY:
                add(x, "NONE", ev, "5", pos, self.origpos, self.hold)
            elif ev == ql.WITHDRAW:
                add(x, "NONE", ev, pos, self.origpos, self.hold, "why")
            else:
                add(x, "NONE", ev, pos, self.origpos, self.hold)
        return out


@dataclass
class History:
    base: int
    calls: list[Call]
    queuestarts: list[int]
    checkpoints: list[int]
    garbage: list[tuple[int, str]]  # (position among the lines, text)


# Thresholds' edges (10/20/30 s to answer, 3/5 s short) most of the time.
edges = st.sampled_from([0, 3, 4, 5, 6, 10, 11, 20, 21, 30, 31])
holds = st.one_of(edges, edges, st.integers(0, 400))


@st.composite
def histories(draw: st.DrawFn) -> History:
    base = draw(st.sampled_from(BASES))
    n = draw(st.integers(0, 22))
    calls: list[Call] = []
    # Answers and exits on (or a second off) a quarter-hour boundary, often.
    boundary = (-base) % 900
    event_at = st.one_of(
        st.integers(0, 7200),
        st.builds(lambda k, d: boundary + 900 * k + d, st.integers(0, 7), st.sampled_from([-1, 0])),
    )
    for i in range(n):
        kind = draw(st.sampled_from(["answered", "answered", "noexit", *EXITS]))
        hold = draw(holds) if kind != "noexit" else 0
        c = Call(
            index=i,
            uid=f"{base}.{i}",
            queue=draw(st.sampled_from(["q1", "q2", "q3", "q4"])),
            enter=base + max(0, draw(event_at) - hold),
            origpos=draw(st.integers(1, 5)),
            kind=kind,
            hold=hold,
            member=f"Agent/a{draw(st.integers(1, 4))}",
        )
        if kind == "answered":
            c.end_event = draw(st.sampled_from(END_EVENTS))
            c.talk = draw(st.integers(0, 1500))
            connect = c.connect_at
            assert connect is not None
            # After-call work comes after the call; a console's clock may
            # send it a little early, even before the end line.
            # (Only for calls that end: a uniqueid is used again only after
            # a call without an end, and ACW then would find the new call.)
            reports = draw(st.sampled_from([0, 0, 1, 1, 2])) if c.end_event else 0
            for _ in range(reports):
                at = connect + draw(st.integers(0, c.talk + 60))
                c.acw.append((at, draw(st.integers(0, 120))))
            if c.hold > 2 and draw(st.booleans()):
                c.rings.append((c.enter + 1, draw(st.integers(0, 30000))))
        calls.append(c)
    # A uniqueid used again: only after the earlier call's last line, and only
    # for calls whose exit was never logged (else it is a plain new call).
    for c in calls:
        if draw(st.integers(0, 5)) == 0:
            for k in calls:
                if k.end_at is None and k.index != c.index and k.last_at < c.enter:
                    taken = any(o.uid == k.uid and o.index != k.index for o in calls)
                    if not taken:
                        c.uid = k.uid
                        break
    queuestarts = sorted(
        base + t for t in draw(st.lists(st.integers(0, 9000), max_size=2, unique=True))
    )
    # Checkpoints: anywhere, and where a boundary bites (the rolling window's
    # edge, the close-out age) after some line.
    times = sorted({t for c in calls for t in (c.enter, c.connect_at, c.end_at) if t})
    targeted = (
        draw(
            st.lists(
                st.tuples(
                    st.sampled_from(times), st.sampled_from([299, 300, MAX_AGE, MAX_AGE + 1])
                ),
                max_size=3,
            )
        )
        if times
        else []
    )
    checkpoints = sorted(
        {base + t for t in draw(st.lists(st.integers(0, 9500), max_size=3))}
        | {t + d for t, d in targeted}
        | {base + 9600}
    )
    n_lines = sum(len(c.lines()) for c in calls) + len(queuestarts)
    garbage = draw(
        st.lists(st.tuples(st.integers(0, n_lines), st.sampled_from(GARBAGE)), max_size=3)
    )
    return History(base, calls, queuestarts, checkpoints, sorted(garbage))


def ordered_lines(h: History) -> list[tuple[tuple[int, int, int, int], str]]:
    lines = [ln for c in h.calls for ln in c.lines()]
    lines += [((q, 0, 0, 0), f"{q}|NONE|NONE|NONE|QUEUESTART|") for q in h.queuestarts]
    return sorted(lines)


# --- the reference: figures straight from the list of calls ---------------------------


@dataclass
class Fate:
    """What the engine is expected to have made of a call, from its plan alone."""

    cut: tuple[int, int] | None  # (time, kind 0 queuestart / 1 reentered / 2 stale)
    reason: str = ""

    def applies(self, at: int | None) -> bool:
        """Is a line of the call at this time used (not late after the close-out)?"""
        if at is None:
            return False
        if self.cut is None:
            return True
        t, kind = self.cut
        return at < t or (kind == 2 and at == t)


def fate(c: Call, h: History) -> Fate:
    cuts: list[tuple[int, int, str]] = []
    end = c.end_at
    for q in h.queuestarts:
        if c.enter < q and (end is None or end >= q):
            cuts.append((q, 0, "queuestart"))
    for o in h.calls:
        if o.uid == c.uid and o.enter > c.enter and end is None:
            cuts.append((o.enter, 1, "reentered"))
    for t in h.checkpoints:
        if t < c.enter or (end is not None and end <= t):
            continue
        connect = c.connect_at
        last = connect if connect is not None and connect <= t else c.enter
        if t - last > MAX_AGE:
            cuts.append((t, 2, "stale"))
    if not cuts:
        return Fate(None)
    t, kind, reason = min(cuts)
    return Fate((t, kind), reason)


def local_bucket(t: int, minutes: int, tz: tzinfo) -> int:
    dt = datetime.fromtimestamp(t, tz)
    floored = dt.replace(minute=dt.minute - dt.minute % minutes, second=0, microsecond=0)
    return int(floored.timestamp())


@dataclass
class Known:
    """A call as known at a checkpoint."""

    call: Call
    sl_at: int | None  # answer or exit time, if logged and used
    answered: bool
    handled: bool
    closed_at: int | None
    acw: list[tuple[int, int]]  # reports attached to it


def known_at(h: History, fates: dict[int, Fate], t: int) -> list[Known]:
    out = []
    for c in h.calls:
        if c.enter > t:
            continue
        f = fates[c.index]
        connect, exit_at, end = c.connect_at, c.exit_at, c.end_at
        answered = f.applies(connect) and connect is not None and connect <= t
        exited = f.applies(exit_at) and exit_at is not None and exit_at <= t
        sl_at = connect if answered else exit_at if exited else None
        handled = answered and f.applies(end) and end is not None and end <= t
        closed_at = f.cut[0] if f.cut is not None and f.cut[0] <= t else None
        if closed_at is not None and (handled or exited):
            closed_at = None  # it ended before the cut
        acw = [(a, s) for a, s in c.acw if a <= t]
        out.append(Known(c, sl_at, answered, handled, closed_at, acw))
    return out


def reference(
    known: list[Known], scope: Scope, inside: Any, rolling: bool = False
) -> dict[str, Any]:
    """The figures of one window: `inside(t)` says whether a time is in it."""

    def member(c: Call) -> bool:
        return c.queue == scope.name if scope.kind == QUEUE else c.account == scope.name

    r: dict[str, Any] = dict.fromkeys(
        "answered answered_in abandoned abandoned_in short_abandons timeouts exits_empty "
        "exits_key withdrawn transferred handled closed_out wait_answered_s talk_s "
        "acw_s acw_count acw_handled_s".split(),
        0,
    )
    longest: int | None = None
    agents: dict[str, list[int]] = {}
    for k in known:
        c = k.call
        if not member(c):
            continue
        if k.closed_at is not None and inside(k.closed_at):
            r["closed_out"] += 1
        in_window = k.sl_at is not None and inside(k.sl_at)
        if in_window:
            th = c.th
            longest = c.hold if longest is None else max(longest, c.hold)
            if k.answered:
                r["answered"] += 1
                r["answered_in"] += c.hold <= th.answer_s
                r["wait_answered_s"] += c.hold
                if k.handled:
                    r["handled"] += 1
                    r["talk_s"] += c.talk
                    r["transferred"] += c.end_event not in (ql.COMPLETEAGENT, ql.COMPLETECALLER)
            else:
                r["abandoned"] += 1
                r["abandoned_in"] += c.hold <= th.answer_s
                short = c.kind == "abandoned" and th.short_abandon_s > 0
                r["short_abandons"] += short and c.hold <= th.short_abandon_s
                r["timeouts"] += c.kind == "timeout"
                r["exits_empty"] += c.kind == "empty"
                r["exits_key"] += c.kind == "key"
                r["withdrawn"] += c.kind == "withdrawn"
        for at, seconds in k.acw:
            # With its call when the call counts somewhere, else where it was reported.
            if (k.sl_at is not None and in_window) or (k.sl_at is None and inside(at)):
                r["acw_s"] += seconds
                r["acw_count"] += 1
                if in_window and k.handled:
                    r["acw_handled_s"] += seconds
                row = agents.setdefault(agent_of(c), [0, 0])
                row[0] += seconds
                row[1] += 1
    r["longest_wait_s"] = longest
    r["offered"] = r["answered"] + r["abandoned"]
    r["acw_by_agent"] = tuple((a, float(s), n) for a, (s, n) in sorted(agents.items()))
    return r


def agent_of(c: Call) -> str:
    return c.member.removeprefix("Agent/")


def expected_sl(r: dict[str, Any]) -> dict[str, float | None]:
    a, a_in, b, b_in, s = (
        r["answered"],
        r["answered_in"],
        r["abandoned"],
        r["abandoned_in"],
        r["short_abandons"],
    )

    def pct(n: int, d: int) -> float | None:
        return 100.0 * n / d if d else None

    return {
        "answered": pct(a_in, a),
        "abandons_negative": pct(a_in, a + b),
        "abandons_ignored": pct(a_in, a + b - b_in),
        "short_excluded": pct(a_in, a + b - s),
        "abandons_positive": pct(a_in + b_in, a + b),
    }


def figures(s: Stats) -> dict[str, Any]:
    d = {k: getattr(s, k) for k in s.__dataclass_fields__ if k not in ("start", "end")}
    d["acw_by_agent"] = tuple((a, float(x), n) for a, x, n in s.acw_by_agent)
    return d


# --- driving the engine ---------------------------------------------------------------


def run(h: History, minutes: int, tz: tzinfo) -> None:
    engine = ServiceLevel(
        interval_min=minutes,
        tz=tz,
        accounts=ACCOUNTS,
        thresholds=THRESHOLDS,
        default=DEFAULT,
        max_age_s=MAX_AGE,
    )
    parser = ql.QueueLogParser()
    items = [(key, text, False) for key, text in ordered_lines(h)]
    for pos, text in reversed(h.garbage):  # from the end: earlier positions stay put
        key = items[pos - 1][0] if pos > 0 else (0, 0, 0, 0)
        items.insert(pos, (key, text, True))
    # One stream: lines, after-call work (after the lines of its second) and
    # checkpoints (after everything up to their second); the sort is stable,
    # so a garbage line stays after the line it follows.
    stream: list[tuple[tuple[int, int, int, int], str, Any]] = [
        (key, "line", (n, text)) for n, (key, text, _) in enumerate(items, 1)
    ]
    for c in h.calls:
        for at, seconds in c.acw:
            stream.append(((at, 2, c.index, 0), "acw", (c, at, seconds)))
    for t in h.checkpoints:
        stream.append(((t, 3, 0, 0), "check", t))
    stream.sort(key=lambda x: x[0])
    fates = {c.index: fate(c, h) for c in h.calls}
    for _, what, arg in stream:
        if what == "line":
            n, text = arg
            rec = parser.parse(text, n)
            if rec is not None:
                engine.feed(rec)
        elif what == "acw":
            c, at, seconds = arg
            engine.add_acw(agent_of(c), seconds, at, uniqueid=c.uid)
        else:
            for hap in engine.close_stale(arg):
                assert isinstance(hap, Ended) and hap.call.outcome == "closed-out"
            check(engine, h, fates, arg, minutes, tz)
    assert parser.problem_count == sum(1 for _, g in h.garbage if g.strip())
    garbage_at = [n for n, (_, text, bad) in enumerate(items, 1) if bad and text.strip()]
    assert [p.line for p in parser.problems] == garbage_at


def check(
    engine: ServiceLevel, h: History, fates: dict[int, Fate], t: int, minutes: int, tz: tzinfo
) -> None:
    snap = engine.snapshot(t)
    known = known_at(h, fates, t)
    day = datetime.fromtimestamp(t, tz).date()
    cur = local_bucket(t, minutes, tz)
    scopes = [Scope(QUEUE, q) for q in ("q1", "q2", "q3", "q4")]
    scopes += [Scope(ACCOUNT, a) for a in ("acme", "volt")]
    for scope in scopes:
        views = snap.queues if scope.kind == QUEUE else snap.accounts
        if scope.name not in views:
            assert scope.name == "q4" and not any(k.call.queue == "q4" for k in known)
            continue
        v = views[scope.name]

        def bucket_is(start: int) -> Any:
            return lambda x: local_bucket(x, minutes, tz) == start

        def same_day(x: int) -> bool:
            return datetime.fromtimestamp(x, tz).date() == day

        cases = [
            ("current", v.current, bucket_is(cur)),
            ("today", v.today, same_day),
            ("rolling", v.rolling, lambda x: t - 300 < x),
        ]
        assert v.current.start == cur
        for i, past in enumerate(v.intervals):
            assert past.end == (v.intervals[i + 1].start if i + 1 < len(v.intervals) else cur)
            assert same_day(int(past.start)) and past.start == local_bucket(
                int(past.start), minutes, tz
            )
            if past.end <= h.base:  # nothing happens before the shift starts
                assert (past.offered, past.closed_out, past.acw_count) == (0, 0, 0)
            else:
                cases.append((f"interval {i}", past, bucket_is(int(past.start))))
        if v.intervals:
            assert v.intervals[0].start == v.today.start
        for name, stats, inside in cases:
            want = reference(known, scope, inside)
            got = figures(stats)
            assert got == want, (scope, name, t, diff(got, want))
            for variant, sl in expected_sl(want).items():
                assert stats.sl(variant) == pytest.approx(sl), (scope, name, variant)
        # Every call of the day is in exactly one interval (or the current one).
        total = sum(p.offered for p in v.intervals) + v.current.offered
        assert total == v.today.offered
        waiting = [
            k.call.enter
            for k in known
            if (k.call.queue == scope.name if scope.kind == QUEUE else k.call.account == scope.name)
            and k.sl_at is None
            and k.closed_at is None
        ]
        assert v.waiting == len(waiting), (scope, t)
        assert v.longest_waiting_s == (t - min(waiting) if waiting else None)


def diff(got: dict[str, Any], want: dict[str, Any]) -> dict[str, Any]:
    return {k: (got.get(k), want.get(k)) for k in want if got.get(k) != want.get(k)}


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(h=histories(), minutes=st.sampled_from([15, 30, 60]))
def test_incremental_engine_equals_the_brute_force_reference(h: History, minutes: int) -> None:
    run(h, minutes, LONDON)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(h=histories(), minutes=st.sampled_from([15, 30, 60]))
def test_reference_agrees_in_a_half_hour_time_zone(h: History, minutes: int) -> None:
    run(h, minutes, ZoneInfo("Asia/Kolkata"))


# --- hand-worked cases ----------------------------------------------------------------


def feed_lines(engine: ServiceLevel, text: str) -> list[Any]:
    parser = ql.QueueLogParser()
    out: list[Any] = []
    for n, line in enumerate(text.strip().splitlines(), 1):
        rec = parser.parse(line.strip(), n)
        if rec is not None:
            out += engine.feed(rec)
    return out


T0 = 1_700_000_000 - 1_700_000_000 % 3600  # a whole UTC hour: 2023-11-14 22:00


def test_a_transferred_call_is_answered_once_in_each_queue_it_reaches() -> None:
    e = ServiceLevel(interval_min=15, tz=UTC)
    haps = feed_lines(
        e,
        f"""
        {T0}|c1|sales|NONE|ENTERQUEUE||0770|1
        {T0 + 5}|c1|sales|Agent/a1|CONNECT|5|c1b|1
        {T0 + 65}|c1|sales|Agent/a1|BLINDTRANSFER|300|ctx|5|60|1
        {T0 + 66}|c1|billing|NONE|ENTERQUEUE||0770|1
        {T0 + 96}|c1|billing|Agent/a2|CONNECT|30|c1c|1
        {T0 + 196}|c1|billing|Agent/a2|COMPLETECALLER|30|100|1
        {T0 + 197}|c1|sales|Agent/a1|COMPLETEAGENT|5|132|1
        """,
    )
    kinds = [type(h).__name__ for h in haps]
    assert kinds == [
        "Entered",
        "Connected",
        "Ended",
        "Entered",
        "Connected",
        "Ended",
        "Ignored",
    ]
    assert [h.call.outcome for h in haps if isinstance(h, Ended)] == ["transferred", "completed"]
    snap = e.snapshot(T0 + 200)
    sales, billing = snap.queues["sales"].current, snap.queues["billing"].current
    assert (sales.answered, sales.handled, sales.transferred, sales.talk_s) == (1, 1, 1, 60)
    assert (billing.answered, billing.answered_in, billing.talk_s) == (1, 0, 100)
    ignored = haps[-1]
    assert isinstance(ignored, Ignored) and "already ended: transferred" in ignored.reason


def test_happenings_carry_what_the_store_and_the_console_need() -> None:
    e = ServiceLevel(interval_min=30, tz=UTC, accounts={"q1": "acme"})
    haps = feed_lines(
        e,
        f"""
        {T0}|u1|q1|NONE|ENTERQUEUE||07700900123|2|Ann
        {T0 + 12}|u1|q1|Agent/e7|CONNECT|12|u1b|3
        {T0 + 100}|u1|q1|Agent/e7|COMPLETEAGENT|12|88|2
        """,
    )
    entered, connected, ended = haps
    assert entered == Entered("u1", "q1", "acme", "07700900123", T0, 2)
    assert connected == Connected(
        "u1", "q1", "acme", "07700900123", T0, T0 + 12, "e7", "Agent/e7", 12
    )
    assert isinstance(ended, Ended)
    c = ended.call
    assert (c.outcome, c.agent, c.hold_s, c.talk_s, c.ended, c.ended_by) == (
        "completed",
        "e7",
        12,
        88,
        T0 + 100,
        "agent",
    )
    assert (c.connected, c.origposition, c.flagged, c.account) == (T0 + 12, 2, "", "acme")


def test_closed_out_calls_are_flagged_and_never_counted_twice() -> None:
    e = ServiceLevel(interval_min=60, tz=UTC, max_age_s=600)
    haps = feed_lines(
        e,
        f"""
        {T0}|a|q|NONE|ENTERQUEUE||1|1
        {T0 + 1}|b|q|NONE|ENTERQUEUE||2|2
        {T0 + 2}|c|q|NONE|ENTERQUEUE||3|3
        {T0 + 10}|b|q|Agent/x|CONNECT|9|bb|1
        {T0 + 20}|NONE|NONE|NONE|QUEUESTART|
        {T0 + 30}|a|q|NONE|ABANDON|1|1|30
        {T0 + 31}|b|q|Agent/x|COMPLETEAGENT|9|21|2
        {T0 + 40}|d|q|NONE|ENTERQUEUE||4|1
        {T0 + 50}|d|q|NONE|ENTERQUEUE||4|1
        {T0 + 60}|e|q|NONE|ENTERQUEUE||5|2
        """,
    )
    ended = [h.call for h in haps if isinstance(h, Ended)]
    assert [(c.uniqueid, c.flagged) for c in ended] == [
        ("a", "queuestart"),
        ("b", "queuestart"),
        ("c", "queuestart"),
        ("d", "reentered"),
    ]
    assert all(c.outcome == "closed-out" for c in ended)
    assert [h.reason for h in haps if isinstance(h, Ignored)] == [
        "call a already ended: closed out (queuestart)",
        "call b already ended: closed out (queuestart)",
    ]
    stale = e.close_stale(T0 + 651)
    assert [(h.call.uniqueid, h.call.flagged) for h in stale if isinstance(h, Ended)] == [
        ("d", "stale")
    ]
    assert e.close_stale(T0 + 700)[0].call.uniqueid == "e"
    s = e.snapshot(T0 + 700).queues["q"]
    # b was answered (counted once, at its CONNECT); nothing else has an SL event.
    assert (s.current.offered, s.current.answered, s.current.handled) == (1, 1, 0)
    assert (s.current.abandoned, s.current.closed_out, s.waiting) == (0, 6, 0)
    assert s.current.sl("answered") == 100.0


def test_undefined_service_level_is_none_not_zero() -> None:
    e = ServiceLevel(interval_min=15, tz=UTC)
    view = e.snapshot(T0).queues
    assert view == {}
    feed_lines(e, f"{T0}|a|q|NONE|ENTERQUEUE||1|1")
    v = e.snapshot(T0 + 5).queues["q"]
    assert all(v.current.sl(x) is None for x in VARIANTS)
    assert (v.current.asa_s, v.current.aht_s, v.current.abandon_rate_pct) == (None, None, None)
    assert (v.waiting, v.longest_waiting_s) == (1, 5.0)
    with pytest.raises(ValueError, match="not one of"):
        v.current.sl("bogus")


def test_short_abandons_only_count_callers_hanging_up_and_zero_disables() -> None:
    e = ServiceLevel(
        interval_min=60,
        tz=UTC,
        accounts={"q": "a", "z": "off"},
        thresholds={"a": Thresholds(20, 5), "off": Thresholds(20, 0)},
    )
    feed_lines(
        e,
        f"""
        {T0}|1|q|NONE|ENTERQUEUE||1|1
        {T0 + 5}|1|q|NONE|ABANDON|1|1|5
        {T0}|2|q|NONE|ENTERQUEUE||1|1
        {T0 + 6}|2|q|NONE|ABANDON|1|1|6
        {T0}|3|q|NONE|ENTERQUEUE||1|1
        {T0 + 2}|3|q|NONE|EXITEMPTY|1|1|2
        {T0}|4|z|NONE|ENTERQUEUE||1|1
        {T0}|4|z|NONE|ABANDON|1|1|0
        """,
    )
    snap = e.snapshot(T0 + 10)
    assert snap.queues["q"].current.short_abandons == 1
    assert snap.queues["q"].current.exits_empty == 1
    assert snap.queues["z"].current.short_abandons == 0


def test_after_call_work_follows_the_call_then_the_queue_then_nowhere() -> None:
    e = ServiceLevel(interval_min=15, tz=UTC)
    feed_lines(
        e,
        f"""
        {T0}|1|q|NONE|ENTERQUEUE||1|1
        {T0 + 4}|1|q|Agent/x|CONNECT|4|1b|1
        {T0 + 104}|1|q|Agent/x|COMPLETECALLER|4|100|1
        """,
    )
    later = T0 + 1800  # another interval: the ACW still counts with its call
    e.add_acw("x", 30, later)  # the agent's last call, which has none yet
    e.add_acw("x", 12, later, queue="q")  # it has: to the queue, at the time given
    e.add_acw("y", 7, later)  # no call, no queue
    snap = e.snapshot(later + 1)
    first = next(p for p in snap.queues["q"].intervals if p.start == T0)
    assert (first.acw_s, first.acw_handled_s, first.aht_s) == (30, 30, 130.0)
    assert first.acw_per_agent() == {"x": 30.0}
    assert snap.queues["q"].current.acw_s == 12 and snap.queues["q"].current.aht_s is None
    assert e.unattributed_acw == {"y": [7.0, 1.0]}
    assert snap.queues["q"].today.acw_s == 42


def test_rolling_window_forgets_after_five_minutes() -> None:
    e = ServiceLevel(interval_min=60, tz=UTC)
    feed_lines(
        e,
        f"""
        {T0}|1|q|NONE|ENTERQUEUE||1|1
        {T0 + 30}|1|q|Agent/x|CONNECT|30|1b|1
        {T0 + 100}|2|q|NONE|ENTERQUEUE||1|1
        {T0 + 110}|2|q|NONE|ABANDON|1|1|10
        """,
    )
    assert e.snapshot(T0 + 300).queues["q"].rolling.offered == 2
    r = e.snapshot(T0 + 330).queues["q"].rolling
    assert (r.offered, r.answered, r.abandoned, r.longest_wait_s) == (1, 0, 1, 10)
    feed_lines(e, f"{T0 + 340}|1|q|Agent/x|COMPLETEAGENT|30|310|1")
    r = e.snapshot(T0 + 411).queues["q"].rolling
    assert (r.offered, r.handled, r.talk_s, r.longest_wait_s) == (0, 0, 0, None)
    assert e.snapshot(T0 + 412).queues["q"].current.talk_s == 310


def test_interval_boundaries_follow_the_local_wall_clock() -> None:
    # 2024-03-31 00:50 GMT, 10 minutes before the clocks go forward.
    t = 1711846200
    e = ServiceLevel(interval_min=30, tz=LONDON)
    feed_lines(
        e,
        f"""
        {t}|1|q|NONE|ENTERQUEUE||1|1
        {t + 1}|1|q|NONE|ABANDON|1|1|1
        {t + 600}|2|q|NONE|ENTERQUEUE||1|1
        {t + 601}|2|q|NONE|ABANDON|1|1|1
        """,
    )
    snap = e.snapshot(t + 700)  # 02:01:40 BST
    v = snap.queues["q"]
    assert datetime.fromtimestamp(v.current.start, LONDON).strftime("%H:%M") == "02:00"
    assert v.current.offered == 1
    assert [datetime.fromtimestamp(p.start, LONDON).strftime("%H:%M") for p in v.intervals] == [
        "00:00",
        "00:30",
    ]
    assert v.intervals[1].offered == 1 and v.today.offered == 2
    assert v.today.end - v.today.start == 23 * 3600


def test_bad_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="does not divide a day"):
        ServiceLevel(interval_min=7)


def test_many_queues_feed_and_snapshot_fast() -> None:
    import time

    e = ServiceLevel(interval_min=15, tz=UTC, accounts={f"q{i}": f"a{i % 10}" for i in range(100)})
    recs = []
    for i in range(6000):
        q, at, uid = f"q{i % 100}", T0 + i, f"u{i}"
        recs.append(
            ql.EnterQueue(
                at=at,
                uniqueid=uid,
                queue=q,
                member="NONE",
                event=ql.ENTERQUEUE,
                url="",
                callerid="1",
                origposition=1,
            )
        )
        recs.append(
            ql.Connect(
                at=at + 7,
                uniqueid=uid,
                queue=q,
                member="Agent/x",
                event=ql.CONNECT,
                hold_s=7,
                bridged="b",
                ring_s=1,
            )
        )
        recs.append(
            ql.Complete(
                at=at + 90,
                uniqueid=uid,
                queue=q,
                member="Agent/x",
                event=ql.COMPLETEAGENT,
                hold_s=7,
                talk_s=83,
                origposition=1,
            )
        )
    recs.sort(key=lambda r: r.at)
    start = time.perf_counter()
    for r in recs:
        e.feed(r)
    fed = time.perf_counter() - start
    start = time.perf_counter()
    for k in range(5):
        snap = e.snapshot(T0 + 6100 + k)
    snapped = (time.perf_counter() - start) / 5
    assert len(snap.queues) == 100 and snap.queues["q0"].today.handled == 60
    # Generous bounds for a loaded 2-core machine: about 0.4 s and 10 ms idle.
    assert fed < 3.0 and snapped < 0.25, (fed, snapped)


# --- the hand-worked fixture logs -----------------------------------------------------


@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("*.log")))
def test_hand_worked_fixture(name: str) -> None:
    spec = json.loads((FIXTURES / f"{name}.json").read_text())
    tz = timezone(timedelta(hours=spec.get("utc_offset_h", 0)))
    e = ServiceLevel(
        interval_min=spec["interval_min"],
        tz=tz,
        accounts=spec.get("accounts", {}),
        thresholds={k: Thresholds(**v) for k, v in spec.get("thresholds", {}).items()},
        default=Thresholds(**spec.get("default", {})),
        max_age_s=spec.get("max_age_s", 4 * 3600),
    )
    records, parser = ql.read_file(FIXTURES / f"{name}.log")
    haps = e.feed_all(records)
    if "close_stale_at" in spec:
        haps += e.close_stale(spec["close_stale_at"])
    assert [[p.line, p.reason] for p in parser.problems] == spec.get("problems", [])
    ignored = [[h.record.line, h.reason] for h in haps if isinstance(h, Ignored)]
    assert ignored == spec.get("ignored", [])
    outcomes = {
        h.call.uniqueid: [h.call.outcome, h.call.flagged] for h in haps if isinstance(h, Ended)
    }
    assert outcomes == spec["outcomes"]
    snap = e.snapshot(spec["now"])
    for where, expected in spec["expect"].items():
        kind, scope, window = where.split(":")
        view = (snap.queues if kind == QUEUE else snap.accounts)[scope]
        if window.startswith("interval"):
            stats = view.intervals[int(window.removeprefix("interval"))]
        else:
            stats = getattr(view, window)
        got = stats.to_dict()
        got.update((f"sl.{v}", pct) for v, pct in got.pop("sl").items())
        want = dict(expected)
        want.update((f"sl.{v}", pct) for v, pct in want.pop("sl", {}).items())
        for key, value in want.items():
            assert got[key] == (None if value is None else pytest.approx(value, abs=5e-4)), (
                where,
                key,
            )


# --- the virtual floor's own queue_log --------------------------------------------------


def test_a_planned_shift_on_the_virtual_floor_adds_up() -> None:
    from deskline.servicelevel import floor_settings
    from deskline.sim.scenario import demo_floor, plan

    ids = [f"desk-{i:02d}" for i in range(1, 7)]
    floor = demo_floor(ids)
    truth = plan(floor, ids, 5, speed=4.0, seconds=120)
    accounts, thresholds = floor_settings(floor)
    e = ServiceLevel(interval_min=15, tz=UTC, accounts=accounts, thresholds=thresholds)
    parser = ql.QueueLogParser()
    haps = []
    for n, line in enumerate(truth.lines, 1):
        rec = parser.parse(line, n)
        if rec is not None:
            haps += e.feed(rec)
    assert parser.problems == [] and not any(isinstance(h, Ignored) for h in haps)
    ended = {h.call.uniqueid: h.call for h in haps if isinstance(h, Ended)}
    finished = {u: c for u, c in truth.calls.items() if c.outcome != "waiting"}
    assert ended.keys() == finished.keys()
    for uid, c in finished.items():
        got = ended[uid]
        assert got.outcome == {"answered": "completed", "abandoned": "abandoned"}[c.outcome]
        if c.outcome == "answered":
            assert (got.member, got.connected, got.ended) == (
                c.member,
                c.connect_epoch,
                c.end_epoch,
            )
            assert got.ended_by == c.hung_up_by
    connected = [h for h in haps if isinstance(h, Connected)]
    assert all(h.agent is not None and h.agent in floor.agents for h in connected)
    snap = e.snapshot(truth.epoch0 + 600)
    total = sum(v.today.offered for v in snap.queues.values())
    assert total == len(finished)
    answered = sum(1 for c in finished.values() if c.outcome == "answered")
    assert sum(v.today.answered for v in snap.accounts.values()) == answered


# --- deskline sla ------------------------------------------------------------------------


def test_cli_sla_json_has_every_figure_and_variant(capsys: pytest.CaptureFixture[str]) -> None:
    from deskline.cli import main

    log = str(FIXTURES / "day.log")
    args = ["sla", "--queue-log", log, "--interval", "15", "--threshold", "20"]
    assert main([*args, "--short-abandon", "5", "--tz", "Etc/GMT-1", "--json"]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert [p["line"] for p in report["problems"]] == [8, 30, 31]
    assert report["ignored_lines"] == [
        {"line": 29, "reason": "call s10 already ended: closed out (queuestart)"}
    ]
    sales = report["queues"]["sales"]
    first = sales["intervals"][0]
    assert first["label"] == "2024-06-13 09:00"
    assert (first["offered"], first["answered_in"], first["short_abandons"]) == (6, 1, 1)
    assert first["sl"]["short_excluded"] == pytest.approx(20.0)
    assert sales["days"][0]["sl"]["abandons_ignored"] == pytest.approx(100 / 3)
    assert "line 8: 1 fields" in err and "1 call still open" in err


def test_cli_sla_table_and_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from deskline.cli import main

    log = str(FIXTURES / "day.log")
    assert main(["sla", "--queue-log", log, "--interval", "30", "--threshold", "20"]) == 0
    out, _ = capsys.readouterr()
    assert "queue sales" in out and "service level %" in out and "Asterisk SL2" in out
    assert (
        main(["sla", "--queue-log", str(tmp_path / "x"), "--interval", "15", "--threshold", "20"])
        == 1
    )
    assert "no such file" in capsys.readouterr().err
    assert main(["sla", "--queue-log", log, "--interval", "7", "--threshold", "20"]) == 1
    assert "divide a day" in capsys.readouterr().err
    assert (
        main(
            [
                "sla",
                "--queue-log",
                log,
                "--interval",
                "15",
                "--threshold",
                "20",
                "--tz",
                "Nowhere/X",
            ]
        )
        == 1
    )
    assert "not a time zone" in capsys.readouterr().err
    assert (
        main(["sla", "--queue-log", log, "--interval", "15", "--threshold", "20", "--queue", "zz"])
        == 1
    )
    assert "no calls in queue zz" in capsys.readouterr().err
