"""The queue_log reader: every event's fields as app_queue writes them, bad lines
reported with their line numbers, a whole file, and a live file followed across
rotation without ever handing out half a line."""

from __future__ import annotations

import json
import os
import tempfile
from datetime import timedelta, timezone
from pathlib import Path

import pytest
from deskline import queuelog as ql
from deskline.errors import DesklineError
from deskline.servicelevel import ServiceLevel
from hypothesis import given, settings
from hypothesis import strategies as st

FIXTURES = Path(__file__).parent / "fixtures" / "queue_log"


def rec(line: str) -> ql.Record | None:
    return ql.to_record(ql.parse_line(line), 7)


# --- one line at a time ---------------------------------------------------------------


def test_every_event_the_service_level_uses_is_typed_with_asterisks_field_order() -> None:
    e = rec("100|u1|q|NONE|ENTERQUEUE|http://x|07700900123|3|Ann Smith")
    assert e == ql.EnterQueue(
        at=100,
        uniqueid="u1",
        queue="q",
        member="NONE",
        event="ENTERQUEUE",
        line=7,
        url="http://x",
        callerid="07700900123",
        origposition=3,
        calleridname="Ann Smith",
    )
    c = rec("112|u1|q|Agent/e7|CONNECT|12|u1b|4")
    assert isinstance(c, ql.Connect) and (c.hold_s, c.bridged, c.ring_s, c.agent) == (
        12,
        "u1b",
        4,
        "e7",
    )
    old = rec("112|u1|q|Agent/e7|CONNECT|12|u1b")  # Asterisk 1.2: no ring time
    assert isinstance(old, ql.Connect) and old.ring_s is None
    done = rec("200|u1|q|Agent/e7|COMPLETECALLER|12|88|3")
    assert isinstance(done, ql.Complete)
    assert (done.hold_s, done.talk_s, done.origposition, done.ended_by) == (12, 88, 3, "caller")
    agent_end = rec("200|u1|q|Agent/e7|COMPLETEAGENT|12|88|3")
    assert isinstance(agent_end, ql.Complete) and agent_end.ended_by == "agent"


def test_exits_carry_position_origposition_and_wait() -> None:
    for event, outcome in ql.EXIT_OUTCOMES.items():
        if event == ql.EXITWITHKEY:
            r = rec("50|u|q|NONE|EXITWITHKEY|5|2|3|40")
            assert isinstance(r, ql.Exit) and r.key == "5"
        elif event == ql.WITHDRAW:
            r = rec("50|u|q|NONE|WITHDRAW|2|3|40|callback")
            assert isinstance(r, ql.Exit) and r.info == "callback"
        else:
            r = rec(f"50|u|q|NONE|{event}|2|3|40")
        assert isinstance(r, ql.Exit)
        assert (r.position, r.origposition, r.wait_s, r.outcome) == (2, 3, 40, outcome)
    legacy = rec("50|u|q|NONE|EXITWITHTIMEOUT|2")  # Asterisk 1.4: the position only
    assert isinstance(legacy, ql.Exit) and (legacy.origposition, legacy.wait_s) == (None, None)


def test_ring_times_are_milliseconds() -> None:
    r = rec("1366720343|1366720341.7|q1|SIP/8007|RINGNOANSWER|15000")
    assert isinstance(r, ql.Ring) and r.ring_ms == 15000 and r.agent is None
    cancel = rec("1366720343|1366720341.7|q1|Agent/e1|RINGCANCELED|1234")
    assert isinstance(cancel, ql.Ring) and cancel.ring_ms == 1234


def test_transfers_read_their_times_from_the_end() -> None:
    blind = rec("9|u|q|Agent/a|BLINDTRANSFER|2000|from-internal|12|60|1")
    assert isinstance(blind, ql.Transfer)
    assert (blind.target, blind.hold_s, blind.talk_s, blind.origposition) == (
        ("2000", "from-internal"),
        12,
        60,
        1,
    )
    link = rec("9|u|q|Agent/a|ATTENDEDTRANSFER|LINK|SIP/a-1|SIP/b-2|12|60|2")
    assert isinstance(link, ql.Transfer)
    assert (link.target, link.talk_s, link.origposition) == (("LINK", "SIP/a-1", "SIP/b-2"), 60, 2)
    bridge = rec("9|u|q|Agent/a|ATTENDEDTRANSFER|BRIDGE|abc-123|12|60|2")
    assert isinstance(bridge, ql.Transfer) and bridge.target == ("BRIDGE", "abc-123")
    legacy = rec("9|u|q|Agent/a|TRANSFER|2000|ctx|12|60")  # before Asterisk 1.6
    assert isinstance(legacy, ql.Transfer) and (legacy.talk_s, legacy.origposition) == (60, None)


def test_members_and_system_events() -> None:
    add = rec("1|MANAGER|q|Agent/a|ADDMEMBER|PAUSED")
    assert isinstance(add, ql.MemberChange) and add.detail == "PAUSED"
    pause = rec("1|NONE|q|Agent/a|PAUSE|lunch")
    assert isinstance(pause, ql.MemberChange) and pause.detail == "lunch"
    assert isinstance(rec("1|NONE|q|Agent/a|REMOVEMEMBER|"), ql.MemberChange)
    assert isinstance(rec("1|NONE|q|Agent/a|UNPAUSE|Auto-Unpause"), ql.MemberChange)
    assert isinstance(rec("1366720340|NONE|NONE|NONE|QUEUESTART|"), ql.QueueStart)
    for known in ("CONFIGRELOAD", "AGENTLOGIN", "PAUSEALL", "INFO", "CALLSTATUS"):
        assert rec(f"1|NONE|NONE|NONE|{known}|x") is None


def test_member_names_and_agent_ids() -> None:
    assert ql.member_name("e7") == "Agent/e7"
    assert ql.agent_id("Agent/e7") == "e7"
    assert ql.agent_id("NONE") is None
    assert ql.agent_id("SIP/8007") is None
    assert ql.agent_id("Agent/") is None


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("hello", "1 fields, a queue_log line has at least 6"),
        ("x|u|q|NONE|ENTERQUEUE|", "time 'x' is not a Unix epoch"),
        ("-5|u|q|NONE|ENTERQUEUE|||1", "time '-5' is not a Unix epoch"),
        ("5|u|q|NONE||1", "no event name"),
        ("5|u|q|NONE|ENTERQUEUE|url|cid", "2 data fields, want url|callerid|origposition"),
        ("5|u|q|NONE|ABANDON|1|x|3", "data field 2 'x' is not a whole number >= 0"),
        ("5|u|q|NONE|RINGNOANSWER|-10", "data field 1 '-10' is not a whole number >= 0"),
        ("5|u|q|NONE|TELEPORT|1", "unknown event 'TELEPORT'"),
    ],
)
def test_bad_lines_are_counted_with_their_number_and_reason(line: str, reason: str) -> None:
    p = ql.QueueLogParser()
    assert p.parse(line, 42, "queue_log") is None
    assert [(x.line, x.reason) for x in p.problems] == [(42, reason)]
    assert str(p.problems[0]).startswith("queue_log:42: ")
    assert p.problem_count == 1 and p.records == 0


def test_parser_keeps_a_bounded_list_but_counts_every_problem() -> None:
    p = ql.QueueLogParser(keep=2)
    for n in range(5):
        p.parse("junk", n + 1)
    p.parse("5|u|q|NONE|NOPE|1", 6)
    p.parse("", 7)
    p.parse("5|NONE|NONE|NONE|CONFIGRELOAD|", 8)
    assert (p.malformed, p.unknown, p.problem_count, len(p.problems)) == (5, 1, 6, 2)
    assert p.summary() == {
        "lines": 8,
        "records": 0,
        "ignored": {"CONFIGRELOAD": 1},
        "unknown": 1,
        "malformed": 5,
    }


field_st = st.one_of(
    st.sampled_from(["", "5", "NONE", "Agent/a", "PAUSED", "x"]), st.text(max_size=6)
)


@settings(max_examples=200, deadline=None)
@given(
    head=st.lists(field_st, max_size=4),
    event=st.one_of(st.sampled_from(sorted(ql.KNOWN_EVENTS)), st.text(max_size=8)),
    data=st.lists(field_st, max_size=7),
)
def test_no_line_can_break_the_parser(head: list[str], event: str, data: list[str]) -> None:
    p = ql.QueueLogParser()
    text = "|".join([*head, event, *data]).replace("\n", " ").replace("\r", " ")
    got = p.parse(text, 1)
    assert (got is not None) + p.problem_count + sum(p.ignored.values()) <= 1


# --- whole files ----------------------------------------------------------------------


def test_replay_reads_a_file_and_reports_its_bad_lines() -> None:
    records, parser = ql.read_file(FIXTURES / "day.log")
    assert len(records) == 29
    assert [p.line for p in parser.problems] == [8, 30, 31]
    assert parser.ignored == {"CONFIGRELOAD": 1}
    ring = next(r for r in records if isinstance(r, ql.Ring))
    assert (ring.line, ring.ring_ms) == (6, 15000)


def test_replay_of_a_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DesklineError, match=r"no such file .*queue_log = yes"):
        ql.read_file(tmp_path / "nope")


# --- a live file ----------------------------------------------------------------------


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(text)


def events(records: list[ql.Record]) -> list[tuple[str, str]]:
    return [(r.uniqueid, r.event) for r in records]


def test_tail_waits_for_the_newline_and_for_the_file(tmp_path: Path) -> None:
    log = tmp_path / "queue_log"
    with ql.QueueLogTail(log) as tail:
        assert tail.poll() == []  # not there yet
        append(log, "10|u1|q|NONE|ENTERQUEUE||1|1\n20|u1|q|NONE|ABAN")
        assert events(tail.poll()) == [("u1", "ENTERQUEUE")]
        assert tail.poll() == []
        append(log, "DON|1|1|10")
        assert tail.poll() == []  # still no newline
        append(log, "\n")
        got = tail.poll()
        assert events(got) == [("u1", "ABANDON")] and got[0].line == 2


def test_tail_from_the_end_skips_history(tmp_path: Path) -> None:
    log = tmp_path / "queue_log"
    append(log, "10|u1|q|NONE|ENTERQUEUE||1|1\n20|u1|q|NONE|ABANDON|1|1|10\n")
    with ql.QueueLogTail(log, from_start=False) as tail:
        assert tail.poll() == []
        append(log, "30|u2|q|NONE|ENTERQUEUE||1|1\n")
        assert events(tail.poll()) == [("u2", "ENTERQUEUE")]


def test_tail_follows_a_rename_rotation_finishing_the_old_file_first(tmp_path: Path) -> None:
    log = tmp_path / "queue_log"
    old = (FIXTURES / "rotation.1").read_text().splitlines(keepends=True)
    new = (FIXTURES / "rotation.2").read_text().splitlines(keepends=True)
    spec = json.loads((FIXTURES / "rotation.json").read_text())
    engine = ServiceLevel(interval_min=30, tz=timezone(timedelta(hours=1)))
    got: list[ql.Record] = []
    with ql.QueueLogTail(log) as tail:
        append(log, old[0] + old[1][:9])
        got += tail.poll()
        append(log, old[1][9:] + old[2])  # written before the rename, unread
        log.rename(tmp_path / "queue_log.1")
        got += tail.poll()  # the new file is not there yet: keep reading the old
        append(log, new[0] + new[1])
        got += tail.poll()
        append(log, "".join(new[2:]))
        got += tail.poll()
        assert tail.rotations == 1
        assert tail.parser.problems == []
    assert [r.line for r in got] == [1, 2, 3, 1, 2, 3, 4, 5]
    whole, _ = ql.read_file(FIXTURES / "rotation.1")
    whole += ql.read_file(FIXTURES / "rotation.2")[0]
    assert events(got) == events(whole)
    engine.feed_all(got)
    stats = engine.snapshot(spec["now"]).queues["q"].current
    d = stats.to_dict()
    for key, value in spec["expect"].items():
        if key == "sl":
            for variant, pct in value.items():
                assert stats.sl(variant) == pytest.approx(pct, abs=5e-4), variant
        else:
            assert d[key] == pytest.approx(value), key


def test_tail_restarts_a_copytruncated_file(tmp_path: Path) -> None:
    log = tmp_path / "queue_log"
    append(log, "10|u1|q|NONE|ENTERQUEUE||1|1\n20|u1|q|NONE|ABANDON|1|1|10\n")
    with ql.QueueLogTail(log) as tail:
        assert len(tail.poll()) == 2
        log.write_text("30|u2|q|NONE|ENTERQUEUE||1|1\n")  # truncated, then written
        assert events(tail.poll()) == [("u2", "ENTERQUEUE")]
        # Truncated and then written past the old read position before a poll:
        # the size alone cannot tell, the first line does.
        log.write_text("40|u3|q|NONE|ENTERQUEUE||1|1\n" * 3)
        got = tail.poll()
        assert events(got) == [("u3", "ENTERQUEUE")] * 3 and got[0].line == 1
        assert tail.rotations == 2


def test_a_rotated_file_without_its_last_newline_is_reported(tmp_path: Path) -> None:
    log = tmp_path / "queue_log"
    append(log, "10|u1|q|NONE|ENTERQUEUE||1|1\n20|u1|q|NONE|ABAN")
    with ql.QueueLogTail(log) as tail:
        assert len(tail.poll()) == 1
        log.rename(tmp_path / "queue_log.1")
        append(log, "30|u2|q|NONE|ENTERQUEUE||1|1\n")
        assert events(tail.poll()) == [("u2", "ENTERQUEUE")]
        [p] = tail.parser.problems
        assert (p.line, p.reason) == (2, "unfinished last line of a rotated file")


lines_st = st.lists(
    st.builds(
        lambda t, u, q: f"{t}|u{u}|q{q}|NONE|ENTERQUEUE||07700|1\n",
        st.integers(1, 10**9),
        st.integers(0, 99),
        st.integers(0, 9),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=40, deadline=None)
@given(
    lines=lines_st,
    cuts=st.lists(st.integers(0, 2000), max_size=8),
    rotate=st.lists(st.tuples(st.integers(0, 30), st.sampled_from(["rename", "truncate"]))),
)
def test_tail_hands_out_every_line_once_however_it_is_written(
    lines: list[str], cuts: list[int], rotate: list[tuple[int, str]]
) -> None:
    """Written in random pieces, polled between them, rotated at line ends: the
    records polled are the lines written, in order, each once."""
    data = "".join(lines)
    rotate_at = {}
    offset = 0
    ends = []
    for line in lines:
        offset += len(line)
        ends.append(offset)
    for i, how in rotate:
        if i < len(ends):
            rotate_at[ends[i]] = how
    points = sorted({c % (len(data) + 1) for c in cuts} | set(rotate_at) | {len(data)})
    with tempfile.TemporaryDirectory() as d:
        log = Path(d) / "queue_log"
        got: list[ql.Record] = []
        with ql.QueueLogTail(log) as tail:
            start = 0
            for n, p in enumerate(points):
                append(log, data[start:p])
                start = p
                got += tail.poll()
                how = rotate_at.get(p)
                if how == "rename":
                    os.replace(log, Path(d) / f"queue_log.{n}")
                    log.touch()
                elif how == "truncate":
                    got += tail.poll()  # copytruncate copies what was there first
                    log.write_text("")
                got += tail.poll()
        assert [(r.at, r.uniqueid, r.queue) for r in got] == [
            (r.at, r.uniqueid, r.queue) for r in (rec(x) for x in lines) if r is not None
        ]
        assert tail.parser.problems == []
