"""The ACD's calls in the store: upserts that survive a replay, and repeat contacts."""

from __future__ import annotations

from pathlib import Path

from deskline import acdcalls
from deskline.acdcalls import Connected, Ended, Entered
from deskline.store import Store

DAY = 86400.0
T0 = 1_800_000_000.0


def _store(tmp_path: Path) -> Store:
    return Store(tmp_path / "d.db")


def _enter(uid: str, caller: str, at: float, account: str = "volt") -> Entered:
    return Entered(uid, "volt-billing", account, caller, at, 1)


def _end(uid: str, caller: str, at: float, outcome: str = "completed") -> Ended:
    return Ended(uid, "volt-billing", "volt", caller, at, at + 5, at + 65, outcome, "a1", 5, 60, 1)


def test_a_replay_lands_on_the_same_rows(tmp_path: Path) -> None:
    changes: list[acdcalls.Change] = [
        _enter("u1", "0161", T0),
        Connected("u1", T0 + 5, "a1", 5),
        _end("u1", "0161", T0),
    ]
    with _store(tmp_path) as store:
        for _ in range(2):
            with store.transaction() as cur:
                acdcalls.record(cur, changes, {})
        rows = store.query("SELECT * FROM acd_calls")
    assert len(rows) == 1
    row = rows[0]
    assert (row["outcome"], row["agent"], row["hold_s"], row["talk_s"]) == (
        "completed",
        "a1",
        5,
        60,
    )
    assert row["repeat_count"] == 0


def test_the_same_caller_within_the_window_is_a_repeat(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        with store.transaction() as cur:
            assert acdcalls.record(cur, [_enter("u1", "0161", T0)], {"volt": 7}) == []
            assert acdcalls.record(cur, [_enter("u2", "0999", T0 + 60)], {"volt": 7}) == []
            reps = acdcalls.record(cur, [_enter("u3", "0161", T0 + 3 * DAY)], {"volt": 7})
            assert [(r.uniqueid, r.repeat_of, r.count) for r in reps] == [("u3", "u1", 1)]
            reps = acdcalls.record(cur, [_enter("u4", "0161", T0 + 4 * DAY)], {"volt": 7})
            assert [(r.repeat_of, r.count) for r in reps] == [("u3", 2)]
            # Past the window (u1 is 8 days back, u3 and u4 within 7).
            reps = acdcalls.record(cur, [_enter("u5", "0161", T0 + 8 * DAY)], {"volt": 7})
            assert [(r.repeat_of, r.count) for r in reps] == [("u4", 2)]
            # A shorter window for the account.
            reps = acdcalls.record(cur, [_enter("u6", "0161", T0 + 10 * DAY)], {"volt": 1})
            assert reps == []
        rows = {r["uniqueid"]: r for r in store.query("SELECT * FROM acd_calls")}
    assert rows["u4"]["repeat_of"] == "u3" and rows["u4"]["repeat_count"] == 2
    assert rows["u2"]["repeat_count"] == 0


def test_anonymous_callers_and_other_accounts_are_not_repeats(tmp_path: Path) -> None:
    with _store(tmp_path) as store, store.transaction() as cur:
        acdcalls.record(cur, [_enter("u1", "anonymous", T0), _enter("u2", "0161", T0)], {})
        reps = acdcalls.record(
            cur,
            [_enter("u3", "Anonymous", T0 + 60), _enter("u4", "0161", T0 + 60, account="acme")],
            {},
        )
        assert reps == []


def test_a_repeat_about_an_open_escalation_is_linked(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        with store.transaction() as cur:
            acdcalls.record(cur, [_enter("u1", "0161", T0)], {})
            cur.execute(
                "INSERT INTO escalations (console_id, journal_epoch, seq, call_seq, acd_call_id,"
                " kind, severity, status, raised, updated, account, ext_id, callerid)"
                " VALUES (1, 1, 9, 3, 'u1', 0, 2, 1, ?, ?, 'volt', 'esc-1', '0161')",
                (T0 + 30, T0 + 30),
            )
            reps = acdcalls.record(cur, [_enter("u2", "0161", T0 + 600)], {})
            assert [r.escalation for r in reps] == ["esc-1"]
            cur.execute("UPDATE escalations SET status = 3")  # resolved
            reps = acdcalls.record(cur, [_enter("u3", "0161", T0 + 900)], {})
            assert [r.escalation for r in reps] == [None]


def test_an_end_without_its_enter_still_gets_a_row(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        with store.transaction() as cur:
            acdcalls.record(cur, [_enter("u1", "0161", T0)], {})
            acdcalls.record(cur, [_end("u2", "0161", T0 + DAY, outcome="abandoned")], {})
        row = store.query("SELECT * FROM acd_calls WHERE uniqueid = 'u2'")[0]
    assert (row["outcome"], row["repeat_of"], row["repeat_count"]) == ("abandoned", "u1", 1)
