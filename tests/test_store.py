"""The store: exactly-once ingest, journal epochs, derived rows, migrations, durability."""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from deskline.errors import DesklineError
from deskline.firmware import cfgcheck
from deskline.floormodel import Account, Agent, Desk, Floor, Queue, WrapCode
from deskline.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Batch,
    EventRow,
    Store,
    connect,
    migrate,
)
from deskline.wire import codec
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

T0 = 1_800_000_000.0


def hello_fields(
    next_seq: int = 1, first_unacked: int | None = None, boot_count: int = 1, **kw: Any
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "proto": 1,
        "flags": 0,
        "boot_count": boot_count,
        "uptime_ms": 1000,
        "next_seq": next_seq,
        "first_unacked": next_seq if first_unacked is None else first_unacked,
        "journal_depth": 0,
        "config_version": 0,
        "reset_cause": 1,
        "reboot_reason": 1,
        "app_slot": 0,
        "device_id": "",
        "board": "esp32s3-devkit",
        "fw_version": "1.24.1",
        "app_version": "0.1.0",
    }
    fields.update(kw)
    return fields


def ev(
    device: str,
    seq: int,
    kind: int = codec.EV_PRESS,
    a: int = 0,
    b: int = 0,
    c: int = 0,
    ref: int = 0,
    text: str = "",
    epoch: int = 0,
    received: float | None = None,
) -> EventRow:
    return EventRow(
        device,
        seq,
        seq * 100,
        epoch,
        kind,
        a,
        b,
        c,
        ref,
        text,
        T0 + seq if received is None else received,
    )


def presses(device: str, first: int, last: int) -> list[EventRow]:
    return [ev(device, s) for s in range(first, last + 1)]


def seqs(store: Store, device: str) -> list[tuple[int, int]]:
    return [(e["journal_epoch"], e["seq"]) for e in store.events(device)]


ACME_CONFIG: dict[str, Any] = {
    "account": "ACME Energy",
    "mode": "mandatory_timeout",
    "acw_s": 60,
    "fallback": 99,
    "codes": [[1, "Billing query", False], [2, "Meter fault", True], [99, "ACW timeout", False]],
    "sl": {"target_pct": 80, "threshold_s": 20, "amber_pct": 5},
    "brightness": 40,
    "hotline": "+44 20 7946 0000",
}


def make_floor(
    seating: dict[str, tuple[str, str | None]] | None = None, acme_acw: int = 60
) -> Floor:
    """desk name -> (console, agent); d1 and d2 on acme, d3 on globex by default."""
    acme_cfg = dict(ACME_CONFIG, acw_s=acme_acw)
    globex_cfg = dict(ACME_CONFIG, account="Globex", codes=[[7, "Refund", True]], fallback=7)
    accounts = {
        "acme": Account(
            "acme",
            "ACME Energy",
            (
                WrapCode(1, "Billing query"),
                WrapCode(2, "Meter fault", True),
                WrapCode(99, "ACW timeout"),
            ),
            acme_cfg,
            hotline="+44 20 7946 0000",
        ),
        "globex": Account("globex", "Globex", (WrapCode(7, "Refund", True),), globex_cfg),
    }
    seating = seating or {"A1": ("d1", "ann"), "A2": ("d2", "bob"), "G1": ("d3", None)}
    desks = {
        name: Desk(name, console, "globex" if name.startswith("G") else "acme", agent, ("billing",))
        for name, (console, agent) in seating.items()
    }
    return Floor(
        "Floor 3",
        accounts,
        {"billing": Queue("billing", "acme"), "refunds": Queue("refunds", "globex")},
        {
            "ann": Agent("ann", "Ann Smith"),
            "bob": Agent("bob", "Bob Jones"),
            "cy": Agent("cy", "Cy"),
        },
        desks,
        sha256="abc",
    )


@pytest.fixture
def store() -> Any:
    s = Store(":memory:")
    yield s
    s.close()


# --- contiguity and dedupe ----------------------------------------------------------
def test_contiguous_events_are_stored_once_and_acked(store: Store) -> None:
    store.hello("d1", hello_fields(), "/dev/ttyACM0", T0)
    assert store.apply(Batch(events=presses("d1", 1, 5))) == {"d1": 5}
    # A resend overlapping the stored ones, then a gap: only 6 is new.
    batch = [*presses("d1", 3, 6), ev("d1", 9)]
    assert store.apply(Batch(events=batch)) == {"d1": 6}
    assert seqs(store, "d1") == [(1, s) for s in range(1, 7)]
    dev = store.devices()[0]
    assert dev["counters"]["duplicates"] == 3
    assert dev["counters"]["out_of_order"] == 1
    assert dev["acked_seq"] == store.acked("d1") == 6
    assert store.counters()["events_stored"] == 6


def test_only_duplicates_are_acked_again(store: Store) -> None:
    store.hello("d1", hello_fields(), "p", T0)
    store.apply(Batch(events=presses("d1", 1, 3)))
    # The console lost the ack: the host must ack again so it drops them.
    assert store.apply(Batch(events=presses("d1", 1, 3))) == {"d1": 3}


def test_events_of_a_console_without_hello_are_ignored(store: Store) -> None:
    assert store.apply(Batch(events=presses("ghost", 1, 3))) == {}
    assert store.counters()["unknown_device_events"] == 3
    assert store.devices() == []


def test_a_resend_with_other_content_is_flagged(store: Store) -> None:
    store.hello("d1", hello_fields(), "p", T0)
    store.apply(Batch(events=presses("d1", 1, 2)))
    other = ev("d1", 2, kind=codec.EV_STATE, a=1)
    store.apply(Batch(events=[other]))
    assert store.devices()[0]["counters"]["conflicting_duplicates"] == 1
    assert store.events("d1")[1]["kind"] == codec.EV_PRESS


def _inject_failure(store: Store, table: str) -> None:
    """Makes the next write to `table` fail inside apply's transaction, as a full disk would."""
    db = store._db  # the test reaches in: there is no failure hook in production code
    db.execute(
        f"CREATE TEMP TRIGGER fail_{table} BEFORE INSERT ON main.{table} "
        "BEGIN SELECT RAISE(ABORT, 'injected: database or disk is full'); END"
    )


def _clear_failure(store: Store, table: str) -> None:
    store._db.execute(f"DROP TRIGGER IF EXISTS temp.fail_{table}")


@pytest.mark.parametrize("table", ["events", "calls", "counters"])
def test_a_failed_transaction_stores_nothing_and_the_cache_follows(
    store: Store, table: str
) -> None:
    store.hello("d1", hello_fields(), "p", T0)
    store.apply(Batch(events=presses("d1", 1, 2)))
    batch = Batch(
        events=[*presses("d1", 3, 4), ev("d1", 5, codec.EV_CALL_START, a=1, text="ACD-1")],
        heartbeats=[("d1", T0, dict.fromkeys(codec_heartbeat_fields(), 1))],
        logs=[("d1", T0, 1, "hello")],
    )
    _inject_failure(store, table)
    with pytest.raises(sqlite3.Error):
        store.apply(batch)
    assert store.acked("d1") == 2
    assert seqs(store, "d1") == [(1, 1), (1, 2)]
    assert store.query("SELECT count(*) AS n FROM telemetry")[0]["n"] == 0
    assert store.query("SELECT count(*) AS n FROM logs")[0]["n"] == 0
    assert store.counters()["events_stored"] == 2
    _clear_failure(store, table)
    assert store.apply(batch) == {"d1": 5}
    assert seqs(store, "d1") == [(1, s) for s in range(1, 6)]


def codec_heartbeat_fields() -> list[str]:
    from deskline.wire import NAMES

    return list(NAMES[codec.HEARTBEAT][1])


# The model: each console's journal (its epochs), what the store must hold.
_KINDS = [
    codec.EV_PRESS,
    codec.EV_PRESS,
    codec.EV_STATE,
    codec.EV_CALL_START,
    codec.EV_CALL_END,
    codec.EV_WRAPUP,
    codec.EV_ESC_RAISE,
    codec.EV_ESC_CANCEL,
    codec.EV_LOST,
]
DEVICES = ("d1", "d2")


class Journal:
    """A console's journal: seqs from 1, content fixed per (generation, seq)."""

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.next_seq = 1

    def event(self, device: str, seq: int) -> EventRow:
        k = _KINDS[(seq * 7 + self.generation) % len(_KINDS)]
        ref = max(seq - 2, 0) if k != codec.EV_CALL_START else 0
        return EventRow(
            device,
            seq,
            seq * 10 + self.generation,
            0,
            k,
            seq % 13,
            seq % 300,
            1,
            ref,
            f"g{self.generation}",
            T0 + seq,
        )


class Delivery(RuleBasedStateMachine):
    """Random duplicate, reordered, gapped and failing batches, reconnects and
    replaced consoles: the store must hold exactly the gap-free prefix of each
    journal epoch, each seq once, and ack exactly that."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.path = Path(self.tmp.name) / "s.db"
        self.store = Store(self.path, synchronous="OFF")
        self.generations = 0
        self.journals: dict[str, Journal] = {}
        self.epoch: dict[str, int] = {}
        self.acked: dict[str, int] = {}
        self.held: dict[str, list[tuple[int, int, int]]] = {}  # (epoch, seq, uptime_ms)

    def _new_journal(self, device: str) -> None:
        self.generations += 1
        self.journals[device] = Journal(self.generations)

    @initialize()
    def consoles_say_hello(self) -> None:
        for device in DEVICES:
            self._new_journal(device)
            out = self.store.hello(device, hello_fields(), "p", T0)
            assert (out.journal_epoch, out.acked_seq, out.new_epoch) == (1, 0, False)
            self.epoch[device], self.acked[device], self.held[device] = 1, 0, []

    @rule(device=st.sampled_from(DEVICES), n=st.integers(1, 12))
    def console_records(self, device: str, n: int) -> None:
        self.journals[device].next_seq += n

    def _batch(self, data: st.DataObject) -> list[Any]:
        picks = data.draw(
            st.lists(
                st.one_of(
                    st.tuples(st.sampled_from(DEVICES), st.integers(-4, 6)),
                    st.just(("ghost", 1)),
                    st.tuples(st.sampled_from(DEVICES), st.just("bad")),
                ),
                max_size=20,
            )
        )
        events: list[Any] = []
        for device, offset in picks:
            if device == "ghost":
                events.append(ev("ghost", 1))
                continue
            j = self.journals[device]
            if offset == "bad":
                # Bad content under the next seq: skipped, so never acked.
                bad = j.event(device, self.acked[device] + 1)
                bad.kind = 999
                events.append(bad)
                continue
            seq = self.acked[device] + 1 + int(offset)
            if 1 <= seq < j.next_seq:  # the console only sends what it has
                events.append(j.event(device, seq))
        return events

    def _expect(self, events: list[Any]) -> dict[str, int]:
        acks: dict[str, int] = {}
        for e in events:
            if e.device_id == "ghost":
                continue
            acks[e.device_id] = self.acked[e.device_id]
            if e.kind == 999:
                continue
            if e.seq == self.acked[e.device_id] + 1:
                self.acked[e.device_id] = e.seq
                self.held[e.device_id].append((self.epoch[e.device_id], e.seq, e.uptime_ms))
                acks[e.device_id] = e.seq
        return acks

    @rule(data=st.data())
    def deliver(self, data: st.DataObject) -> None:
        events = self._batch(data)
        acks = self.store.apply(Batch(events=events))
        assert acks == self._expect(events)

    @rule(data=st.data(), table=st.sampled_from(["events", "counters", "escalations"]))
    def deliver_into_a_full_disk(self, data: st.DataObject, table: str) -> None:
        events = self._batch(data)
        _inject_failure(self.store, table)
        try:
            self.store.apply(Batch(events=events))
        except sqlite3.Error:
            pass  # nothing stored, nothing acked: the model does not move
        else:  # the failing table was not written by this batch: it committed
            self._expect(events)
        finally:
            _clear_failure(self.store, table)

    @rule(device=st.sampled_from(DEVICES))
    def go_back_n(self, device: str) -> None:
        j = self.journals[device]
        events = [j.event(device, s) for s in range(self.acked[device] + 1, j.next_seq)]
        assert self.store.apply(Batch(events=events)).get(device, 0) == (
            j.next_seq - 1 if events else 0
        )
        self._expect(events)

    @rule(device=st.sampled_from(DEVICES), lag=st.integers(0, 5))
    def reconnect(self, device: str, lag: int) -> None:
        # The console may not have heard the last acks (lost, or not yet synced
        # to flash): it believes less is acked than the store holds.
        j = self.journals[device]
        believed = max(min(self.acked[device], j.next_seq - 1) - lag, 0)
        out = self.store.hello(
            device, hello_fields(j.next_seq, believed + 1, boot_count=1), "p", T0
        )
        assert not out.new_epoch and out.gap == 0
        assert out.acked_seq == self.acked[device]

    @rule(device=st.sampled_from(DEVICES), recorded=st.integers(0, 3))
    def console_replaced(self, device: str, recorded: int) -> None:
        # A wiped or replaced console under the same id: its seqs start again.
        self._new_journal(device)
        j = self.journals[device]
        j.next_seq += recorded
        out = self.store.hello(device, hello_fields(j.next_seq, 1), "p", T0)
        restarted = j.next_seq - 1 < self.acked[device]
        assert out.new_epoch == restarted
        if restarted:
            self.epoch[device] += 1
            self.acked[device] = 0
        assert (out.journal_epoch, out.acked_seq) == (self.epoch[device], self.acked[device])

    @rule()
    def daemon_restarts(self) -> None:
        self.store.close()
        self.store = Store(self.path, synchronous="OFF")

    @invariant()
    def store_holds_the_gap_free_prefix(self) -> None:
        for device in DEVICES:
            assert self.store.acked(device) == self.acked[device]
            got = [
                (e["journal_epoch"], e["seq"], e["uptime_ms"]) for e in self.store.events(device)
            ]
            assert got == self.held[device]
            current = [s for e, s, _ in got if e == self.epoch[device]]
            if current:
                assert current == list(range(current[0], self.acked[device] + 1))

    def teardown(self) -> None:
        self.store.close()
        self.tmp.cleanup()


TestDelivery = Delivery.TestCase
TestDelivery.settings = settings(
    max_examples=150,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# --- journal epochs -------------------------------------------------------------------
def test_a_wiped_console_starts_a_new_journal_epoch(store: Store) -> None:
    store.hello("d1", hello_fields(), "p", T0)
    store.apply(Batch(events=presses("d1", 1, 5)))
    out = store.hello("d1", hello_fields(next_seq=3, first_unacked=1), "p", T0 + 60)
    assert out.new_epoch and out.journal_epoch == 2 and out.acked_seq == 0
    assert any("journal restarted" in n for n in out.notes)
    # Its seqs 1..2 are new events, not duplicates of the old 1..2.
    assert store.apply(Batch(events=presses("d1", 1, 2))) == {"d1": 2}
    assert seqs(store, "d1") == [(1, s) for s in range(1, 6)] + [(2, 1), (2, 2)]
    history = store.query("SELECT journal_epoch, start_acked, end_acked FROM journal_epochs")
    assert history == [
        {"journal_epoch": 1, "start_acked": 0, "end_acked": 5},
        {"journal_epoch": 2, "start_acked": 0, "end_acked": None},
    ]
    assert store.devices()[0]["counters"]["new_epochs"] == 1


def test_a_power_on_is_not_a_new_journal(store: Store) -> None:
    # The boot count lives in RTC memory and starts again at every power-on.
    store.hello("d1", hello_fields(boot_count=7), "p", T0)
    store.apply(Batch(events=presses("d1", 1, 5)))
    out = store.hello("d1", hello_fields(next_seq=6, first_unacked=4, boot_count=1), "p", T0)
    assert not out.new_epoch and out.acked_seq == 5 and out.gap == 0
    store.apply(Batch(events=presses("d1", 4, 6)))
    assert seqs(store, "d1") == [(1, s) for s in range(1, 7)]


def test_a_restored_database_reports_the_gap(store: Store) -> None:
    store.hello("d1", hello_fields(), "p", T0)
    store.apply(Batch(events=presses("d1", 1, 5)))
    out = store.hello("d1", hello_fields(next_seq=12, first_unacked=10), "p", T0)
    assert (out.new_epoch, out.gap, out.acked_seq) == (False, 4, 9)
    assert any("never had 4 of them" in n for n in out.notes)
    assert store.apply(Batch(events=presses("d1", 10, 11))) == {"d1": 11}
    assert store.counters()["gap_events"] == 4


def test_a_console_off_the_floor_is_listed_as_such(store: Store) -> None:
    # The daemon names it in its log (with what it means); the store says so
    # in devices().
    store.hello("dx", hello_fields(), "p", T0)
    assert [d["on_floor"] for d in store.devices()] == [False]
    store.sync_floor(make_floor({"A1": ("dx", "ann")}))
    assert [d["on_floor"] for d in store.devices() if d["device_id"] == "dx"] == [True]


# --- derived rows -------------------------------------------------------------------
def test_agent_events_derive_calls_wrapups_escalations(store: Store) -> None:
    versions = store.sync_floor(make_floor())
    store.hello("d1", hello_fields(), "p", T0)
    E = codec
    batch = [
        ev("d1", 1, E.EV_CALL_START, a=1, text="ACD-77", epoch=1_800_000_100),
        ev("d1", 2, E.EV_CALL_START, a=2, ref=1, text="ACD-77"),  # the host confirms it
        ev("d1", 3, E.EV_PRESS, a=2, ref=1),
        ev("d1", 4, E.EV_CALL_END, a=1, b=42, ref=1, epoch=1_800_000_142),
        ev("d1", 5, E.EV_WRAPUP, a=2, b=15, c=E.HOW_CODE, ref=1),
        ev("d1", 6, E.EV_ESC_RAISE, a=3, c=0, ref=1, text="ACD-77"),
        ev("d1", 7, E.EV_ESC_CANCEL, c=0, ref=6),
        ev("d1", 8, E.EV_ESC_RAISE, a=4, c=1, ref=1, text="ACD-77"),
        ev("d1", 9, E.EV_CONFIG, a=1, ref=versions["acme"]),
        ev("d1", 10, E.EV_CONFIG, a=0, ref=99, text="mode must be one of"),
        ev("d1", 11, E.EV_BOOT, a=0x81, b=4, ref=3),
        ev("d1", 12, E.EV_JOURNAL_GAP, b=5),
        ev("d1", 13, E.EV_LOST),
        ev("d1", 14, E.EV_CALL_END, a=1, b=3, ref=999),  # names no call
        ev("d1", 15, E.EV_ESC_CANCEL, ref=6),  # already cancelled: not an orphan
    ]
    assert store.apply(Batch(events=batch)) == {"d1": 15}
    where = {"desk": "A1", "agent": "ann", "account": "acme"}
    [call] = store.query("SELECT * FROM calls")
    assert call == {
        "console_id": 1,
        "journal_epoch": 1,
        "seq": 1,
        "acd_call_id": "ACD-77",
        "source": 1,
        "confirmed_by": 2,
        "confirmed": T0 + 2,
        "started": 1_800_000_100.0,  # the console's clock, when it had one
        "ended": 1_800_000_142.0,
        "end_source": 1,
        "talk_s": 42,
        "code": 2,
        "wrapup_seq": 5,
        **where,
    }
    [wrap] = store.query("SELECT * FROM wrapups")
    assert wrap["call_seq"] == 1 and (wrap["code"], wrap["acw_s"], wrap["how"]) == (2, 15, 1)
    assert (wrap["label"], wrap["failure_demand"]) == ("Meter fault", 1)
    assert {k: wrap[k] for k in where} == where
    escs = store.query("SELECT seq, status, severity, kind, acd_call_id, desk FROM escalations")
    assert escs == [
        {"seq": 6, "status": 5, "severity": 3, "kind": 0, "acd_call_id": "ACD-77", "desk": "A1"},
        {"seq": 8, "status": 0, "severity": 4, "kind": 1, "acd_call_id": "ACD-77", "desk": "A1"},
    ]
    history = store.query("SELECT esc_seq, status, note FROM escalation_history ORDER BY id")
    assert [(h["esc_seq"], h["status"]) for h in history] == [(6, 0), (6, 5), (8, 0)]
    results = store.query("SELECT seq, applied, version, error FROM config_results")
    assert results == [
        {"seq": 9, "applied": 1, "version": versions["acme"], "error": ""},
        {"seq": 10, "applied": 0, "version": 99, "error": "mode must be one of"},
    ]
    dev = store.devices()[0]
    assert dev["config_version"] == dev["config_expected"] == versions["acme"]
    assert dev["boots"] == 1
    assert (dev["last_reboot_reason"], dev["last_reset_cause"]) == (1, 1)  # the hello's: this boot
    c = dev["counters"]
    assert (c["boots"], c["boot_crash"], c["journal_gaps"], c["journal_gap_events"]) == (1, 1, 1, 5)
    assert (c["lost_events"], c["orphan_refs"]) == (1, 1)
    assert store.counters()["boot_crash"] == 1  # the floor's total


def test_escalation_status_from_the_hotline(store: Store) -> None:
    store.hello("d1", hello_fields(), "p", T0)
    store.apply(
        Batch(
            events=[
                ev("d1", 1, codec.EV_CALL_START, a=1, text="ACD-1"),
                ev("d1", 2, codec.EV_ESC_RAISE, a=2, ref=1, text="ACD-1"),
                ev("d1", 3, codec.EV_ESC_RAISE, a=1, c=1, ref=1),
            ]
        )
    )
    assert [e["esc_seq"] for e in store.open_escalations("d1")] == [2, 3]
    assert store.set_escalation_status("d1", 2, codec.ESC_DELIVERED, T0 + 5, ticket="INC-9")
    assert store.set_escalation_status(
        "d1", 2, codec.ESC_ACKED, T0 + 30, deadline=T0 + 600, note="hotline picked up"
    )
    [open2, _] = store.open_escalations("d1")
    assert (open2["status"], open2["ticket"], open2["deadline"]) == (2, "INC-9", T0 + 600)
    assert store.set_escalation_status("d1", 2, codec.ESC_RESOLVED, T0 + 300)
    # A late word after it closed is kept in the history but does not reopen it.
    assert not store.set_escalation_status("d1", 2, codec.ESC_BREACHED, T0 + 700)
    assert [e["esc_seq"] for e in store.open_escalations("d1")] == [3]
    history = store.query(
        "SELECT status, ticket, note FROM escalation_history WHERE esc_seq = 2 ORDER BY id"
    )
    assert [h["status"] for h in history] == [0, 1, 2, 3, 4]
    assert "not applied" in history[-1]["note"]
    with pytest.raises(KeyError):
        store.set_escalation_status("d1", 77, codec.ESC_DELIVERED, T0)
    with pytest.raises(ValueError, match="status"):
        store.set_escalation_status("d1", 3, 9, T0)


def test_history_keeps_the_desk_it_was_recorded_at(store: Store) -> None:
    store.sync_floor(make_floor())
    store.hello("d1", hello_fields(), "p", T0)
    store.apply(Batch(events=[ev("d1", 1, codec.EV_CALL_START, a=1)]))
    # The console moves to a globex desk with another agent.
    store.sync_floor(make_floor({"G1": ("d1", "cy"), "A2": ("d2", "bob")}))
    store.apply(Batch(events=[ev("d1", 2, codec.EV_CALL_START, a=1)]))
    calls = store.query("SELECT seq, desk, agent, account FROM calls ORDER BY seq")
    assert calls == [
        {"seq": 1, "desk": "A1", "agent": "ann", "account": "acme"},
        {"seq": 2, "desk": "G1", "agent": "cy", "account": "globex"},
    ]


# --- floor and configs ------------------------------------------------------------
def test_sync_floor_numbers_configs_by_content(store: Store) -> None:
    v1 = store.sync_floor(make_floor())
    assert set(v1) == {"acme", "globex"} and v1["acme"] != v1["globex"]
    assert store.sync_floor(make_floor()) == v1  # unchanged file: no new downloads
    v2 = store.sync_floor(make_floor(acme_acw=90))
    assert v2["globex"] == v1["globex"] and v2["acme"] > max(v1.values())
    got = store.config_for_console("d1")
    assert got is not None
    version, body = got
    cfg = json.loads(body)
    assert version == v2["acme"] == cfg["version"] and cfg["acw_s"] == 90
    assert cfgcheck.validate(cfg) is None
    assert store.config_for_console("d3") is not None
    assert store.config_for_console("nobody") is None


def test_sync_floor_replaces_the_floor_and_lists_unseen_consoles(store: Store) -> None:
    store.sync_floor(make_floor())
    store.hello("d1", hello_fields(), "p", T0)
    store.hello("stray", hello_fields(), "p", T0)
    devices = {d["device_id"]: d for d in store.devices()}
    assert set(devices) == {"d1", "stray", "d2", "d3"}
    assert devices["d1"]["desk"] == "A1" and devices["d1"]["agent_name"] == "Ann Smith"
    assert devices["d1"]["account_name"] == "ACME Energy" and devices["d1"]["seen"]
    assert not devices["stray"]["on_floor"] and devices["stray"]["desk"] is None
    assert not devices["d2"]["seen"] and devices["d2"]["on_floor"]
    assert devices["d2"]["config_expected"] is not None
    store.sync_floor(make_floor({"A1": ("d1", None)}))
    assert store.query("SELECT name FROM desks") == [{"name": "A1"}]
    assert store.query("SELECT count(*) AS n FROM desk_queues")[0]["n"] == 1
    assert {d["device_id"] for d in store.devices()} == {"d1", "stray"}
    assert store.query("SELECT value FROM meta WHERE key = 'floor_sha256'") == [{"value": "abc"}]


def test_consoles_may_swap_desks(store: Store) -> None:
    store.sync_floor(make_floor({"A1": ("d1", "ann"), "A2": ("d2", "bob")}))
    store.sync_floor(make_floor({"A1": ("d2", "ann"), "A2": ("d1", "bob")}))
    assert store.query("SELECT name, console FROM desks ORDER BY name") == [
        {"name": "A1", "console": "d2"},
        {"name": "A2", "console": "d1"},
    ]


def test_a_bad_floor_changes_nothing(store: Store) -> None:
    good = store.sync_floor(make_floor())
    with pytest.raises(DesklineError, match="on two desks"):
        store.sync_floor(make_floor({"A1": ("d1", "ann"), "A2": ("d1", "bob")}))
    floor = make_floor()
    bad = Account("acme", "ACME", (), dict(ACME_CONFIG, mode="sometimes"))
    with pytest.raises(DesklineError, match=r"acme.*mode must be one of"):
        store.sync_floor(Floor(floor.name, {**floor.accounts, "acme": bad}, {}, {}, floor.desks))
    assert store.sync_floor(make_floor()) == good
    assert len(store.query("SELECT name FROM desks")) == 3


# --- telemetry, logs, counters -------------------------------------------------------
def test_heartbeats_statuses_logs_and_counters(store: Store) -> None:
    store.sync_floor(make_floor())
    store.hello("d1", hello_fields(), "/dev/ttyACM0", T0)
    names = codec_heartbeat_fields()
    hb1 = {n: i for i, n in enumerate(names)}
    hb2 = dict(hb1, free_heap=50_000, min_free_heap=41_000, rx_errors=3, journal_depth=2)
    status = {
        "state": 2,
        "top": 1,
        "led_floor": 1,
        "led_personal": 0,
        "led_escalation": 0,
        "acw_left": -1,
        "typed": 0xFFFF,
        "esc_id": 0,
        "esc_status": 0,
        "esc_left": 0x7FFFFFFF,
        "line0": "ACME Energy",
        "line1": "ON CALL",
        "line2": "",
        "line3": "SL 82%",
    }
    store.apply(
        Batch(
            heartbeats=[("d1", T0 + 10, hb1), ("d1", T0 + 20, hb2)],
            statuses={"d1": (T0 + 21, status)},
            logs=[("d1", T0 + 22, 2, "journal 80% full")],
            counters=[("d1", "bad_frames", 2), (None, "reconnects", 1), ("d1", "bad_frames", 1)],
        )
    )
    dev = store.devices()[0]
    assert (dev["free_heap"], dev["min_free_heap"], dev["rx_errors"]) == (50_000, 41_000, 3)
    assert dev["last_heartbeat"] == T0 + 20 and dev["journal_depth"] == 2
    assert dev["counters"]["bad_frames"] == 3
    assert store.query("SELECT count(*) AS n FROM telemetry")[0]["n"] == 2
    [mirror] = store.status_mirror()
    assert (
        mirror["device_id"] == "d1"
        and mirror["desk"] == "A1"
        and mirror["agent_name"] == "Ann Smith"
    )
    assert mirror["line1"] == "ON CALL" and mirror["at"] == T0 + 21 and mirror["connected"]
    assert store.query("SELECT device_id, level, text FROM logs") == [
        {"device_id": "d1", "level": 2, "text": "journal 80% full"}
    ]
    totals = store.counters()
    assert (totals["bad_frames"], totals["reconnects"], totals["batches"]) == (3, 1, 1)
    store.disconnected("d1", T0 + 30)
    dev = store.devices()[0]
    assert not dev["connected"] and dev["last_disconnect"] == T0 + 30
    assert dev["counters"]["disconnects"] == 1


def test_bad_rows_are_skipped_and_counted(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    store.hello("d1", hello_fields(), "p", T0)
    good_hb = dict.fromkeys(codec_heartbeat_fields(), 1)
    batch = Batch(
        events=[
            ev("d1", 1),
            EventRow("d1", "2", 0, 0, 1, 0, 0, 0, 0, "", T0),  # type: ignore[arg-type]
            ev("d1", 2, kind=300),
            ev("d1", 2, received=math.nan),
            EventRow("d1", 2, 0, 0, 1, 0, 0, 0, 0, None, T0),  # type: ignore[arg-type]
            None,  # type: ignore[list-item]
            ev("d1", 2, text="bad \udcff surrogate"),  # stored, the surrogate replaced
            ev("d1", 3, a=True),  # type: ignore[arg-type]
        ],
        heartbeats=[("d1", T0, {"uptime_ms": 1}), ("d1", T0, good_hb), ("nobody", T0, good_hb)],
        statuses={"d1": (T0, {"state": "x"})},
        logs=[("d1", T0, "warn", "x"), ("d1", T0, 1, "fine")],
        counters=[("d1", "bad_frames", 1.5), ("d1", "bad_frames", 1)],  # type: ignore[list-item]
    )
    assert store.apply(batch) == {"d1": 2}
    assert store.events("d1")[1]["text"] == "bad ? surrogate"
    assert store.counters()["bad_rows"] == 6 + 1 + 1 + 1 + 1
    assert store.counters()["unknown_device_heartbeats"] == 1
    assert store.query("SELECT count(*) AS n FROM telemetry")[0]["n"] == 1
    assert "skipped a bad event row" in caplog.text


# --- migrations ---------------------------------------------------------------------
def test_a_v1_database_is_upgraded_with_its_data(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    db = connect(path)
    assert migrate(db, target=1) == 1
    db.execute(
        "INSERT INTO accounts VALUES ('acme', 'ACME', ?, 80, 20, 5, 5, '', '{}')",
        (json.dumps([[1, "Billing query", False], [2, "Meter fault", True]]),),
    )
    db.executemany(
        "INSERT INTO wrapups VALUES (1, 1, ?, 1, ?, 10, 1, 0, 'A1', 'ann', 'acme')",
        [(5, 2), (6, 1), (7, 42)],
    )
    db.close()
    store = Store(path)
    rows = store.query("SELECT seq, label, failure_demand FROM wrapups ORDER BY seq")
    assert rows == [
        {"seq": 5, "label": "Meter fault", "failure_demand": 1},
        {"seq": 6, "label": "Billing query", "failure_demand": 0},
        {"seq": 7, "label": "", "failure_demand": None},  # a code the account never had
    ]
    assert store.query("PRAGMA user_version") == [{"user_version": SCHEMA_VERSION}]
    indexes = {
        r["name"] for r in store.query("SELECT name FROM sqlite_schema WHERE type = 'index'")
    }
    assert {"calls_account_started", "escalations_open"} <= indexes
    store.close()


def test_query_only_reads(store: Store) -> None:
    for sql in ("DELETE FROM events", "PRAGMA user_version = 9", "DROP TABLE events"):
        with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
            store.query(sql)
    store.hello("d1", hello_fields(), "p", T0)  # writes still work afterwards
    assert store.query("SELECT device_id FROM consoles") == [{"device_id": "d1"}]


def test_migrations_are_at_least_two_steps() -> None:
    assert SCHEMA_VERSION == len(MIGRATIONS) >= 2


def test_a_failed_step_leaves_the_previous_version(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    db = connect(path)
    migrate(db, target=1)
    db.execute("CREATE INDEX calls_account_started ON calls (account)")  # step 2 will collide
    with pytest.raises(sqlite3.OperationalError):
        migrate(db)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    cols = [r[1] for r in db.execute("PRAGMA table_info(wrapups)")]
    assert "label" not in cols  # step 2's first statement went with it
    db.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(DesklineError, match="newer than this deskline"):
        Store(path)


def test_other_files_are_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    with pytest.raises(DesklineError, match="not a deskline database"):
        Store(other)
    (tmp_path / "text.db").write_text(
        "not sqlite at all, just a text file that is long enough" * 20
    )
    with pytest.raises(DesklineError, match=r"text\.db"):
        Store(tmp_path / "text.db")
    with pytest.raises(DesklineError, match="cannot open"):
        Store(tmp_path / "missing" / "s.db")
    with pytest.raises(ValueError, match="synchronous"):
        Store(":memory:", synchronous="SOMETIMES")


def test_the_database_is_in_wal_mode_and_reopens_with_its_state(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Store(path) as store:
        store.hello("d1", hello_fields(), "p", T0)
        store.apply(Batch(events=presses("d1", 1, 4)))
        assert store.query("PRAGMA journal_mode") == [{"journal_mode": "wal"}]
        assert store.query("PRAGMA synchronous") == [{"synchronous": 2}]  # FULL
    with Store(path) as store:
        assert store.acked("d1") == 4
        assert store.apply(Batch(events=presses("d1", 3, 5))) == {"d1": 5}
        assert seqs(store, "d1") == [(1, s) for s in range(1, 6)]


# --- durability ---------------------------------------------------------------------
_CRASHER = """
import json, sys, time
from deskline.store import Batch, EventRow, Store
store = Store(sys.argv[1])
store.hello("d1", {"next_seq": 1, "first_unacked": 1, "boot_count": 1}, "p", 0.0)
events = [
    EventRow("d1", s, s, 0, 2 if s == 1 else 1, 1, 0, 0, 0, "ACD-%d" % s, 1.0)
    for s in range(1, 101)
]
acks = store.apply(Batch(events=events))
print(json.dumps(acks), flush=True)
time.sleep(60)
"""


def test_an_acked_batch_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", _CRASHER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        acks = json.loads(proc.stdout.readline())
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert acks == {"d1": 100}
    with Store(path) as store:
        assert store.acked("d1") == 100
        assert len(store.events("d1")) == 100
        assert store.query("SELECT acd_call_id FROM calls") == [{"acd_call_id": "ACD-1"}]
