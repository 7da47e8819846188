"""The floor light's band: the thresholds, and hysteresis that stops flicker."""

from __future__ import annotations

import itertools

from deskline.slband import AMBER, GREEN, RED, UNKNOWN, BandLight, raw_band
from hypothesis import given, settings
from hypothesis import strategies as st


def test_thresholds_are_inclusive() -> None:
    assert raw_band(None, 80, 5) == UNKNOWN
    assert raw_band(80.0, 80, 5) == GREEN
    assert raw_band(79.99, 80, 5) == AMBER
    assert raw_band(75.0, 80, 5) == AMBER
    assert raw_band(74.99, 80, 5) == RED


def test_first_figure_shows_at_once_and_a_clear_move_at_once() -> None:
    b = BandLight(80, 5)
    assert b.update(None, 0) == UNKNOWN
    assert b.update(79.5, 1) == AMBER
    assert b.update(81.5, 2) == GREEN  # past the 1-point deadband
    assert b.update(60.0, 3) == RED


def test_a_move_inside_the_deadband_shows_after_the_hold() -> None:
    b = BandLight(80, 5, deadband_pct=1.0, hold_s=30)
    b.update(85, 0)
    assert b.update(79.5, 1) == GREEN
    assert b.update(79.5, 30) == GREEN
    assert b.update(79.5, 31) == AMBER  # held for 30 s


@settings(max_examples=200, deadline=None)
@given(
    target=st.integers(50, 99),
    amber=st.integers(0, 20),
    start=st.floats(0, 100),
    wiggle=st.lists(st.floats(-0.99, 0.99), min_size=1, max_size=29),
    boundary=st.sampled_from(["target", "amber"]),
)
def test_noise_within_the_deadband_never_flickers(
    target: int, amber: int, start: float, wiggle: list[float], boundary: str
) -> None:
    """Around a boundary, changes shorter than the hold never move the light twice."""
    b = BandLight(target, amber, deadband_pct=1.0, hold_s=30)
    edge = target if boundary == "target" else target - amber
    b.update(start, 0.0)
    shown = [b.update(edge + w, 1.0 + i) for i, w in enumerate(wiggle)]  # 1 s apart, < hold
    changes = sum(1 for x, y in itertools.pairwise(shown) if x != y)
    assert changes <= 1


@settings(max_examples=200, deadline=None)
@given(
    target=st.integers(50, 99),
    amber=st.integers(0, 20),
    a=st.floats(0, 100),
    b=st.floats(0, 100),
)
def test_a_real_move_always_shows_within_the_hold(
    target: int, amber: int, a: float, b: float
) -> None:
    light = BandLight(target, amber, deadband_pct=1.0, hold_s=30)
    light.update(a, 0.0)
    for t in range(1, 32):
        light.update(b, float(t))
    assert light.band == raw_band(b, target, amber)
