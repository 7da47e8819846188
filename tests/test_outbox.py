"""The persistent outbox: one key per event, order per escalation, backoff, leases, give-up."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from deskline import outbox
from deskline.outbox import Retry
from deskline.store import Store
from hypothesis import given, settings
from hypothesis import strategies as st


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "d.db") as s:
        yield s


def put(store: Store, ext_id: str, event: str, now: float = 100.0) -> int | None:
    with store.transaction() as cur:
        return outbox.enqueue(
            cur,
            target="volt",
            url="http://c/h",
            event=event,
            ext_id=ext_id,
            body=f"{ext_id} {event}".encode(),
            now=now,
        )


def due(store: Store, now: float, busy: frozenset[int] = frozenset()) -> list[str]:
    with store.transaction() as cur:
        return [it.idem_key for it in outbox.due(cur, now, busy=busy)]


@settings(max_examples=200, deadline=None)
@given(st.floats(0.05, 60), st.floats(0.05, 3600), st.integers(1, 80), st.integers(0, 2**32))
def test_backoff_doubles_with_jitter_up_to_the_cap(
    base: float, cap: float, attempts: int, seed: int
) -> None:
    retry = Retry(base, max(cap, base))
    step = min(retry.cap_s, base * 2 ** (attempts - 1))
    d = retry.delay(attempts, random.Random(seed))
    assert step / 2 <= d <= step
    assert d <= retry.cap_s


def test_an_event_is_queued_once_under_one_derived_key(store: Store) -> None:
    first = put(store, "DL-a-1-1", "trigger")
    assert first is not None
    assert put(store, "DL-a-1-1", "trigger", now=200.0) is None  # no second row, no second key
    with store.transaction() as cur:
        item = outbox.get(cur, "DL-a-1-1/trigger")
    assert item is not None and item.id == first and item.created == 100.0
    assert item.body == b"DL-a-1-1 trigger" and item.attempts == 0
    assert store.query("SELECT count(*) AS n FROM outbox")[0]["n"] == 1


def test_a_cancel_waits_for_its_trigger_others_do_not(store: Store) -> None:
    put(store, "DL-a-1-1", "trigger")
    put(store, "DL-a-1-1", "cancel")
    put(store, "DL-b-1-1", "trigger")
    assert due(store, 100.0) == ["DL-a-1-1/trigger", "DL-b-1-1/trigger"]
    with store.transaction() as cur:
        trigger = outbox.get(cur, "DL-a-1-1/trigger")
        assert trigger is not None
        outbox.delivered(cur, trigger.id, 101.0, 202)
    assert due(store, 101.0) == ["DL-a-1-1/cancel", "DL-b-1-1/trigger"]
    assert due(store, 101.0, busy=frozenset({3})) == ["DL-a-1-1/cancel"]


def test_a_lease_outlives_a_crash_and_the_retry_keeps_the_key(store: Store) -> None:
    """Killed after the lease committed and before the outcome did: the row
    comes back when the lease runs out, same key, same bytes, attempt 2."""
    item_id = put(store, "DL-a-1-1", "trigger")
    assert item_id is not None
    with store.transaction() as cur:
        leased = outbox.begin_attempt(cur, item_id, 100.0, lease_s=12.0)
    assert leased.attempts == 1 and leased.next_try == 112.0
    assert due(store, 111.9) == []  # in flight (or its daemon died): not yet
    path = store.path
    store.close()
    with Store(path) as again:  # a new daemon on the same file
        assert due(again, 112.0) == ["DL-a-1-1/trigger"]
        with again.transaction() as cur:
            retry = outbox.begin_attempt(cur, item_id, 112.0, lease_s=12.0)
            assert (retry.idem_key, retry.body, retry.attempts) == (leased.idem_key, leased.body, 2)
            outbox.delivered(cur, item_id, 113.0, 409)
        assert due(again, 10_000.0) == []
        with again.transaction() as cur:
            assert outbox.next_try(cur) is None


def test_failures_back_off_then_give_up(store: Store) -> None:
    retry = Retry(base_s=1.0, cap_s=4.0, give_up_s=60.0)
    item_id = put(store, "DL-a-1-1", "trigger")
    assert item_id is not None
    now, waits = 100.0, []
    while True:
        with store.transaction() as cur:
            outbox.begin_attempt(cur, item_id, now, lease_s=5.0)
            gave_up = outbox.failed(cur, item_id, now, 500, "HTTP 500", retry, random.Random(1))
            item = outbox.get(cur, "DL-a-1-1/trigger")
        assert item is not None
        if gave_up:
            break
        waits.append(item.next_try - now)
        now = item.next_try
    assert 0.5 <= waits[0] <= 1.0 and all(2.0 <= w <= 4.0 for w in waits[3:])
    assert item.gave_up == now and item.last_status == 500 and item.last_error == "HTTP 500"
    assert now - 100.0 >= 60.0 and due(store, 10_000.0) == []


def test_giving_up_an_unsent_row_and_the_escalations_rows(store: Store) -> None:
    trigger = put(store, "DL-a-1-1", "trigger")
    assert trigger is not None
    with store.transaction() as cur:
        outbox.give_up(cur, trigger, 100.0, "cancelled at the desk before it was sent")
        rows = outbox.for_escalation(cur, "DL-a-1-1")
    assert [r.gave_up for r in rows] == [100.0]
    assert due(store, 1000.0) == []
