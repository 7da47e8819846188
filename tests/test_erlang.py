"""Erlang C staffing against published worked examples, exact arithmetic, and
the properties any staffing answer must have."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest
from deskline import erlang
from hypothesis import given, settings
from hypothesis import strategies as st


def test_the_textbook_example_100_calls_in_30_min_180_s_80_20() -> None:
    # pyworkforce's README and its tests (rodrigo-arenas/pyworkforce,
    # pyworkforce/queuing/tests/test_erlang.py) after callcentrehelper.com's
    # "Erlang C formula - example": 14 agents, 20 rostered with 30% shrinkage,
    # service_level 0.8883500191794669, occupancy 0.7142857142857143,
    # waiting_probability 0.1741319335950498.
    s = erlang.staffing(100, 30, 180, 80, 20, shrinkage=0.3)
    assert (s.traffic_erlangs, s.agents, s.scheduled) == (10.0, 14, 20)
    assert s.sl_pct == pytest.approx(88.83500191794669, rel=1e-12)
    assert s.occupancy_pct == pytest.approx(71.42857142857143, rel=1e-12)
    assert s.p_wait_pct == pytest.approx(17.41319335950498, rel=1e-12)
    assert not s.high_occupancy


def test_the_reference_docs_table_and_pyworkforce_s_90_percent_case() -> None:
    # ../shared/reference/contact-centre.md §2.4: N, P(wait), SL(20 s), ASA.
    table = {12: (44.9, 64.0, 40.4), 13: (28.5, 79.6, 17.1), 14: (17.4, 88.8, 7.8)}
    for n, (p_wait, sl, asa) in table.items():
        got = erlang.predict(n, 10.0, 180, 20)
        assert (round(got.p_wait_pct, 1), round(got.sl_pct, 1), round(got.asa_s, 1)) == (
            p_wait,
            sl,
            asa,
        )
    # pyworkforce test_over_occupancy_erlangc: 15 agents, 22 rostered at 30%
    # shrinkage, SL 0.941, occupancy 0.667, waiting probability 0.102.
    s = erlang.staffing(100, 30, 180, 90, 20, shrinkage=0.3)
    assert (s.agents, s.scheduled) == (15, 22)
    assert (round(s.sl_pct / 100, 3), round(s.occupancy_pct / 100, 3)) == (0.941, 0.667)
    assert round(s.p_wait_pct / 100, 3) == 0.102


def test_erlang_b_against_the_classic_table() -> None:
    assert erlang.erlang_b(1, 1.0) == pytest.approx(0.5)
    assert erlang.erlang_b(2, 1.0) == pytest.approx(0.2)
    # 10 Erlangs at a 2% grade of service need 17 lines (Erlang B tables).
    assert erlang.erlang_b(17, 10.0) <= 0.02 < erlang.erlang_b(16, 10.0)


def test_no_calls_need_no_agents() -> None:
    s = erlang.staffing(0, 30, 180, 80, 20, shrinkage=0.3)
    assert (s.agents, s.scheduled, s.sl_pct, s.asa_s) == (0, 0, 100.0, 0.0)


def test_huge_traffic_stays_finite() -> None:
    s = erlang.staffing(200_000, 60, 300, 80, 20)
    assert s.traffic_erlangs == pytest.approx(16666.67, rel=1e-6)
    assert s.agents > s.traffic_erlangs and math.isfinite(s.asa_s)
    assert 80 <= s.sl_pct < 100


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-1, 30, 180, 80, 20), "calls must be 0 or more"),
        ((10, 0, 180, 80, 20), "interval must be over 0"),
        ((10, 30, 0, 80, 20), "handle time must be over 0"),
        ((10, 30, 180, 100, 20), "under 100%"),
        ((10, 30, 180, 80, -1), "target time must be 0 s or more"),
    ],
)
def test_bad_inputs_are_refused_by_name(args: tuple[float, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        erlang.staffing(*args)
    with pytest.raises(ValueError, match="shrinkage"):
        erlang.staffing(10, 30, 180, 80, 20, shrinkage=1.0)


@pytest.mark.parametrize(
    ("text", "want"), [("80/20", (80.0, 20.0)), ("90%/15s", (90.0, 15.0)), (" 85 / 0 ", (85, 0))]
)
def test_targets_parse(text: str, want: tuple[float, float]) -> None:
    assert erlang.parse_target(text) == want


@pytest.mark.parametrize("text", ["80", "80/", "x/20", "100/20", "0/20", "80/-1", "80/20/5"])
def test_bad_targets_say_the_shape(text: str) -> None:
    with pytest.raises(ValueError, match="target"):
        erlang.parse_target(text)


def exact_erlang_c(n: int, a: Fraction) -> Fraction:
    """The textbook formula with factorials, in exact rational arithmetic."""
    top = a**n / math.factorial(n) * Fraction(n) / (n - a)
    return top / (sum(a**k / math.factorial(k) for k in range(n)) + top)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 60), num=st.integers(1, 6000))
def test_recursion_equals_the_factorial_formula(n: int, num: int) -> None:
    a = Fraction(num, 100)
    if a >= n:
        assert erlang.erlang_c(n, float(a)) == 1.0
        return
    assert erlang.erlang_c(n, float(a)) == pytest.approx(float(exact_erlang_c(n, a)), rel=1e-9)


@settings(max_examples=80, deadline=None)
@given(
    calls=st.floats(0.5, 5000),
    interval=st.sampled_from([15, 30, 60]),
    aht=st.floats(10, 1800),
    target_pct=st.floats(1, 99.5),
    target_s=st.floats(0, 120),
    shrinkage=st.floats(0, 0.6),
)
def test_staffing_is_the_smallest_stable_count_meeting_the_target(
    calls: float, interval: int, aht: float, target_pct: float, target_s: float, shrinkage: float
) -> None:
    s = erlang.staffing(calls, interval, aht, target_pct, target_s, shrinkage)
    a = s.traffic_erlangs
    assert s.agents > a
    assert s.sl_pct >= target_pct
    below = s.agents - 1
    if below > a:
        assert erlang.predict(below, a, aht, target_s).sl_pct < target_pct
    assert s.scheduled == math.ceil(s.agents / (1 - shrinkage) - 1e-9)
    assert s.occupancy_pct == pytest.approx(100 * a / s.agents)
    # More agents never serve worse, and never make callers wait longer.
    more = [erlang.predict(s.agents + k, a, aht, target_s) for k in range(4)]
    assert all(x.sl_pct <= y.sl_pct + 1e-9 for x, y in itertools.pairwise(more))
    assert all(x.asa_s >= y.asa_s - 1e-9 for x, y in itertools.pairwise(more))


# --- deskline erlang ---------------------------------------------------------------------


def test_cli_erlang(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from deskline.cli import main

    base = ["erlang", "--calls", "100", "--interval", "30", "--aht", "180", "--target", "80/20"]
    assert main([*base, "--shrinkage", "30%", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert (d["agents"], d["scheduled"], d["high_occupancy"]) == (14, 20, False)
    assert [r["agents"] for r in d["table"]] == [12, 13, 14, 15, 16]
    assert main([*base, "--shrinkage", "0.3"]) == 0
    out = capsys.readouterr().out
    assert "needs 14 agents on the phones (20 rostered at 30% shrinkage)" in out
    assert "SL 88.8%, ASA 7.8 s" in out
    assert main([*base[:-1], "80"]) == 1
    assert "PERCENT/SECONDS" in capsys.readouterr().err
    assert main([*base, "--shrinkage", "1.5"]) == 1
    assert "--shrinkage '1.5'" in capsys.readouterr().err
