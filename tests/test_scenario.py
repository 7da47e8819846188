"""The virtual floor and the seeded shift driver.

The live test runs the real firmware on three virtual consoles, each with a
test host that acks and dedupes, and holds what arrived against the driver's
ground truth: every press, in order, around the hook changes; every wrap-up
and escalation the account's mode implies; a queue_log that app_queue could
have written.  The same seed planned without consoles gives the same shift.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from deskline.floormodel import Account, Agent, Desk, Floor, Queue, WrapCode
from deskline.sim import queuelog as ql
from deskline.sim.floor import VirtualFloor
from deskline.sim.scenario import (
    AGENT_REQUESTED,
    FORCED_TIMEOUT,
    HOW_CODE,
    HOW_SKIPPED,
    HOW_TIMEOUT,
    KEY_ESC,
    KEY_HASH,
    MANDATORY,
    MANDATORY_TIMEOUT,
    OPTIONAL,
    CallTruth,
    Input,
    Scenario,
    ShiftTruth,
    Tempo,
    plan,
)
from deskline.wire import Message, codec
from testhost import TestHost

SEED = 20261123
# Busier than a demo, so a short shift sees every kind of call.
TEMPO = Tempo(
    occupancy=0.95,
    p_ring_no_answer=0.1,
    p_escalate=0.3,
    p_help=0.1,
    p_timeout=0.2,
    p_typo=0.1,
)
SPEED = 2.0


def _account(
    key: str, mode: str, acw_s: int, fallback: int, codes: list[int], severity: int = 2
) -> Account:
    wrap = tuple(WrapCode(c, f"Code {c}", c == 7) for c in codes)
    cfg = {
        "account": key.title(),
        "mode": mode,
        "acw_s": acw_s,
        "fallback": fallback,
        "codes": [[w.code, w.label, w.failure_demand] for w in wrap],
        "severity": severity,
        "keepalive_s": 10,
    }
    return Account(key=key, name=key.title(), codes=wrap, console_config=cfg)


def make_floor(modes: dict[str, tuple[str, int, int]]) -> Floor:
    """One desk per console id, each with its own account in the given (mode, acw_s, fallback)."""
    accounts: dict[str, Account] = {}
    queues: dict[str, Queue] = {}
    agents: dict[str, Agent] = {}
    desks: dict[str, Desk] = {}
    for i, (device_id, (mode, acw_s, fallback)) in enumerate(modes.items()):
        key = f"acct{i + 1}"
        codes = [1, 2, 7, 12] + ([fallback] if fallback else [])
        accounts[key] = _account(key, mode, acw_s, fallback, codes, severity=1 + i % 4)
        names = [f"{key}-main"] + ([f"{key}-vip"] if i == 0 else [])
        for q in names:
            queues[q] = Queue(q, key)
        agent = f"e{100 + i}"
        agents[agent] = Agent(agent, f"Agent {i}")
        desks[f"desk {i + 1}"] = Desk(
            name=f"desk {i + 1}", console=device_id, account=key, agent=agent, queues=tuple(names)
        )
    # A spare desk: a console, no agent; it takes no calls.
    accounts["spare"] = _account("spare", OPTIONAL, 10, 0, [1])
    desks["spare"] = Desk(name="spare", console="spare-01", account="spare")
    return Floor("Test floor", accounts, queues, agents, desks)


LIVE = {
    "desk-01": (MANDATORY_TIMEOUT, 3, 99),
    "desk-02": (AGENT_REQUESTED, 3, 97),
    "desk-03": (FORCED_TIMEOUT, 3, 98),
}


# --- queue_log ------------------------------------------------------------------------
def test_queue_log_lines_have_asterisks_shape(tmp_path: Path) -> None:
    w = ql.QueueLogWriter(tmp_path / "queue_log")
    w.write(1366720340, "NONE", "NONE", "NONE", ql.QUEUESTART)
    w.write(1366720341, "1366720341.7", "q1", "NONE", ql.ENTERQUEUE, "", "07700900123", 1)
    w.write(1366720343, "1366720341.7", "q1", "Agent/e1", ql.RINGNOANSWER, 1000)
    w.close()
    assert (tmp_path / "queue_log").read_text().splitlines() == [
        "1366720340|NONE|NONE|NONE|QUEUESTART|",
        "1366720341|1366720341.7|q1|NONE|ENTERQUEUE||07700900123|1",
        "1366720343|1366720341.7|q1|Agent/e1|RINGNOANSWER|1000",
    ]
    e = ql.parse_line("1366720345|1366720341.7|q1|Agent/e1|CONNECT|4|1366720341.8|2")
    assert (e.epoch, e.event, e.num(0), e.data[1]) == (1366720345, ql.CONNECT, 4, "1366720341.8")
    with pytest.raises(ValueError, match="separator"):
        ql.format_line(1, "u", "q|x", "NONE", ql.ENTERQUEUE, "", "", 1)
    assert ql.normalise("5|1366720341.7|q1|Agent/e1|CONNECT|4|1366720341.8|2") == (
        "*|.7|q1|Agent/e1|CONNECT|*|.8|*"
    )


def test_audit_catches_calls_that_do_not_add_up() -> None:
    good = [
        "100|NONE|NONE|NONE|QUEUESTART|",
        "100|MANAGER|q1|Agent/a|ADDMEMBER|",
        "101|9.0|q1|NONE|ENTERQUEUE||07700900001|1",
        "102|9.2|q1|NONE|ENTERQUEUE||07700900002|2",
        "104|9.0|q1|Agent/a|CONNECT|3|9.1|1",
        "107|9.2|q1|NONE|ABANDON|1|2|5",
        "110|9.0|q1|Agent/a|COMPLETECALLER|3|6|1",
    ]
    assert ql.audit(good) == []
    wrong_hold = [*good[:4], "104|9.0|q1|Agent/a|CONNECT|2|9.1|1", *good[5:]]
    assert any("holdtime 2" in p for p in ql.audit(wrong_hold))
    assert any("still open" in p for p in ql.audit(good[:-1]))
    assert ql.audit(good[:-1], allow_open=True) == []
    stranger = [*good[:4], "104|9.0|q1|Agent/b|CONNECT|3|9.1|1"]
    assert any("never added" in p for p in ql.audit(stranger, allow_open=True))
    after_end = [*good, "111|9.2|q1|Agent/a|CONNECT|10|9.3|0"]
    assert any("after the call ended" in p for p in ql.audit(after_end))


# --- the plan -----------------------------------------------------------------------------
EVERY_MODE = {
    "c-opt": (OPTIONAL, 4, 0),
    "c-man": (MANDATORY, 60, 0),
    "c-mto": (MANDATORY_TIMEOUT, 4, 99),
    "c-fto": (FORCED_TIMEOUT, 4, 98),
    "c-req": (AGENT_REQUESTED, 4, 97),
}


def _wraps_follow_the_mode(mode: str, fallback: int, calls: list[CallTruth]) -> None:
    for call in calls:
        code_how = call.wrap
        if mode == AGENT_REQUESTED and code_how is None:
            continue
        assert code_how is not None, (mode, call)
        code, how = code_how
        allowed = {
            OPTIONAL: {HOW_CODE, HOW_SKIPPED},
            MANDATORY: {HOW_CODE},
            MANDATORY_TIMEOUT: {HOW_CODE, HOW_TIMEOUT},
            FORCED_TIMEOUT: {HOW_CODE, HOW_TIMEOUT},
            AGENT_REQUESTED: {HOW_CODE, HOW_TIMEOUT},
        }[mode]
        assert how in allowed, (mode, call)
        if how == HOW_TIMEOUT:
            assert code == fallback, (mode, call)
        elif how == HOW_SKIPPED:
            assert code == 0, (mode, call)
        else:
            assert code in (1, 2, 7, 12), (mode, call)


def test_plan_is_seeded_and_follows_every_wrap_up_mode() -> None:
    floor = make_floor(EVERY_MODE)
    ids = [*EVERY_MODE, "spare-01"]
    one = plan(floor, ids, SEED, tempo=TEMPO, speed=SPEED, presses_per_console=40)
    two = plan(floor, ids, SEED, tempo=TEMPO, speed=SPEED, presses_per_console=40)
    other = plan(floor, ids, SEED + 1, tempo=TEMPO, speed=SPEED, presses_per_console=40)
    assert one.lines == two.lines
    assert {d: t.sequence() for d, t in one.desks.items()} == {
        d: t.sequence() for d, t in two.desks.items()
    }
    assert one.lines != other.lines
    assert ql.audit(one.lines) == []
    assert "spare-01" not in one.desks
    outcomes = {c.outcome for c in one.calls.values()}
    assert outcomes <= {"answered", "abandoned"} and "answered" in outcomes
    for device_id, (mode, _acw, fallback) in EVERY_MODE.items():
        desk = one.desks[device_id]
        assert len(desk.keys()) >= 40
        assert desk.hooks() == [1, 0] * len(desk.calls)
        _wraps_follow_the_mode(mode, fallback, desk.calls)
        # The inputs of a call are the call's, in order: lift, keys, hang up, code.
        assert [i.call for i in desk.inputs if i.kind == "hook"][::2] == [
            c.uniqueid for c in desk.calls
        ]
    requested = one.desks["c-req"]
    # Agent-requested: ACW (and a code) only on calls where '#' was pressed on the call.
    for call in requested.calls:
        on_call = _keys_on_call(requested.inputs, call.uniqueid)
        assert (KEY_HASH in on_call) == (call.wrap is not None)


def _keys_on_call(inputs: list[Input], uniqueid: str) -> list[int]:
    """Keys pressed between lifting and replacing the handset on one call."""
    keys: list[int] = []
    off = False
    for i in inputs:
        if i.call != uniqueid:
            continue
        if i.kind == "hook":
            off = bool(i.value)
        elif off:
            keys.append(i.value)
    return keys


def test_plan_for_seconds_serves_or_loses_every_caller() -> None:
    floor = make_floor(LIVE)
    truth = plan(floor, list(LIVE), 3, speed=4.0, seconds=60)
    assert ql.audit(truth.lines) == []
    entered = [ql.parse_line(x) for x in truth.lines if f"|{ql.ENTERQUEUE}|" in x]
    assert entered and all(e.epoch - truth.epoch0 <= 60 for e in entered)
    assert all(c.outcome in ("answered", "abandoned") for c in truth.calls.values())


# --- live: the real firmware ------------------------------------------------------------------
def _host_sequence(host: TestHost) -> list[tuple[str, int]]:
    """Presses and hook changes as the console journaled them, in sequence order."""
    seq: list[tuple[str, int]] = []
    for m in (host.events[s] for s in sorted(host.events)):
        if m["kind"] == codec.EV_PRESS:
            seq.append(("key", m["a"]))
        elif m["kind"] in (codec.EV_CALL_START, codec.EV_CALL_END) and m["a"] == 1:
            seq.append(("hook", 1 if m["kind"] == codec.EV_CALL_START else 0))
    return seq


def _expected_raises(calls: list[CallTruth], default_severity: int) -> list[tuple[int, int]]:
    """(kind, severity) of the ESC_RAISE events the console should send, by its rules:
    at most 4 open; a long '*' with help open cancels it; no severity means the account's."""
    open_kinds: list[int] = []
    raises: list[tuple[int, int]] = []
    for call in calls:
        for kind, severity in call.escalations:
            if kind == 1 and 1 in open_kinds:
                open_kinds.remove(1)
            elif len(open_kinds) < 4:
                open_kinds.append(kind)
                raises.append((kind, severity or default_severity))
    return raises


def _check_desk(floor: Floor, truth: ShiftTruth, device_id: str, host: TestHost) -> None:
    desk = truth.desks[device_id]
    n_keys, n_hooks = len(desk.keys()), len(desk.hooks())
    wraps = [c.wrap for c in desk.calls if c.wrap is not None]

    def arrived() -> bool:
        kinds = host.kinds()
        return (
            kinds.count(codec.EV_PRESS) >= n_keys
            and kinds.count(codec.EV_CALL_END) >= n_hooks // 2
            and kinds.count(codec.EV_WRAPUP) >= len(wraps)
        )

    assert host.wait(arrived, 20), (device_id, host.kinds())
    # Exactly the driver's presses, in order, around exactly its hook changes.
    assert _host_sequence(host) == desk.sequence(), device_id
    presses = [m["a"] for m in host.events_of(codec.EV_PRESS)]
    assert presses == desk.keys()
    assert KEY_ESC in presses or not any(c.escalations for c in desk.calls)
    # Every wrap-up the account's mode implies, with its code and how it ended.
    got: list[tuple[int, int]] = [(m["a"], m["c"]) for m in host.events_of(codec.EV_WRAPUP)]
    assert got == wraps, device_id
    severity = floor.accounts[desk.account].console_config["severity"]
    raised = [(m["c"], m["a"]) for m in host.events_of(codec.EV_ESC_RAISE)]
    assert raised == _expected_raises(desk.calls, severity), device_id
    # A call's ACD id is not known to the console without the daemon: hook-only calls.
    starts = host.events_of(codec.EV_CALL_START)
    assert len(starts) == len(desk.calls) and all(m["a"] == 1 for m in starts)


def _configure(host: TestHost, cfg: dict[str, object]) -> None:
    """Pushes a config, again when the console had no heap for it right then (as it asks)."""
    for attempt in range(1, 4):
        result = host.push_config(cfg, xfer_id=attempt)
        if result["status"] != codec.E_NO_SPACE:
            break
    assert result["status"] == codec.OK, result


def test_live_shift_matches_ground_truth_through_power_cuts(tmp_path: Path) -> None:
    floor = make_floor(LIVE)
    ids = [*LIVE, "spare-01"]
    vfloor = VirtualFloor(tmp_path / "floor", ids, seed=SEED)
    hosts: dict[str, TestHost] = {}
    cuts: list[tuple[str, int]] = []
    try:
        took = vfloor.start()
        assert set(vfloor.ports()) == set(ids) and all(p.exists() for p in vfloor.ports().values())
        assert all(p.is_socket() for p in vfloor.panels().values())
        print(f"{len(ids)} consoles started in {took:.1f} s")
        for d in ids:
            hosts[d] = TestHost(str(vfloor.ports()[d]))
            hosts[d].wait_frame("hello", timeout=15)
        for d in LIVE:
            cfg = floor.console_config(d)
            assert cfg is not None
            _configure(hosts[d], {**cfg, "version": 1})
        log = tmp_path / "queue_log"
        scenario = Scenario(floor, vfloor.consoles, SEED, queue_log=log, speed=SPEED, tempo=TEMPO)

        def chaos() -> None:
            # Cut the power of two desks mid-shift, each only while it is idle.
            for d in ("desk-02", "desk-03"):
                time.sleep(4.0)
                with scenario.quiet(d) as vc:
                    boots = vc.boots
                    vc.power_cut()
                cuts.append((d, vc.boots - boots))

        chaos_thread = threading.Thread(target=chaos, daemon=True)
        chaos_thread.start()
        t0 = time.monotonic()
        truth = scenario.run(presses_per_console=8, timeout=90)
        chaos_thread.join(30)
        print(f"shift {time.monotonic() - t0:.1f} s: {scenario.stats()}")
        assert cuts == [("desk-02", 1), ("desk-03", 1)]

        for d in LIVE:
            _check_desk(floor, truth, d, hosts[d])
        # The power cuts happened: a second power-on boot, journaled and delivered.
        for d, _ in cuts:
            assert vfloor.consoles[d].resets == [1, 1], d
            assert [m["a"] for m in hosts[d].events_of(codec.EV_BOOT)] == [1, 1], d
        spare: list[Message] = hosts["spare-01"].events_of(codec.EV_PRESS)
        assert spare == []

        lines = log.read_text().splitlines()
        assert lines == truth.lines
        assert ql.audit(lines) == []
        assert sum(1 for x in lines if f"|{ql.ENTERQUEUE}|" in x) == len(truth.calls)
        # The same seed, planned without consoles: the same shift, only the times differ.
        planned = plan(floor, ids, SEED, speed=SPEED, tempo=TEMPO, presses_per_console=8)
        assert {d: t.sequence() for d, t in planned.desks.items()} == {
            d: t.sequence() for d, t in truth.desks.items()
        }
        assert sorted(map(ql.normalise, planned.lines)) == sorted(map(ql.normalise, lines))
        assert [(c.uniqueid.split(".")[1], c.outcome, c.wrap) for c in planned.calls.values()] == [
            (c.uniqueid.split(".")[1], c.outcome, c.wrap) for c in truth.calls.values()
        ]
    finally:
        for h in hosts.values():
            h.close()
        vfloor.stop()
    assert vfloor.crashes() == {}
