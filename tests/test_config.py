"""Config validation is shared: the host checks a config by the firmware's rules."""

from __future__ import annotations

from typing import Any

import pytest
from deskline.firmware import cfgcheck as config
from hypothesis import given
from hypothesis import strategies as st

GOOD: dict[str, Any] = {
    "version": 3,
    "account": "ACME Energy",
    "mode": "mandatory_timeout",
    "acw_s": 60,
    "fallback": 99,
    "codes": [[1, "Billing query", True], [2, "Meter read", False], [99, "ACW timeout", False]],
    "sl": {"target_pct": 80, "threshold_s": 20, "amber_pct": 5},
    "brightness": 40,
    "hotline": "+44 20 7946 0000",
}


def with_(**changes: Any) -> dict[str, Any]:
    out = dict(GOOD)
    out.update(changes)
    return out


def test_good_config_passes() -> None:
    assert config.validate(GOOD) is None


def test_console_and_validator_agree_on_modes() -> None:
    from deskline.firmware import config as console_config

    assert console_config.MODES == config.MODES


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (with_(mode="sometimes"), "mode must be one of"),
        (with_(codes=[[0, "Zero", False]]), "codes[0] code must be 1..99"),
        (with_(codes=[[100, "Hundred", False]]), "codes[0] code must be 1..99"),
        (with_(codes=[[5, "x" * 40, False]], fallback=0, mode="optional"), "over 39 bytes"),
        (with_(codes=[[5, "é" * 20, False]], fallback=0, mode="optional"), "over 39 bytes"),
        (with_(codes=[[5, "A", False], [5, "B", True]], fallback=5), "code 5 repeats codes[0]"),
        (with_(codes=[[5, "A", "yes"]], fallback=5), "failure_demand must be true or false"),
        (with_(fallback=42), "fallback code 42 is not in codes"),
        (with_(fallback=0), "needs a fallback code"),
        (with_(acw_s=0), "needs acw_s > 0"),
        (with_(acw_s=True), "acw_s must be an integer"),
        (with_(brightness=101), "brightness must be 0..100"),
        (with_(sl={"target_pct": 0}), "sl.target_pct must be 1..100"),
        (with_(colour="red"), "unknown field 'colour'"),
        ({"mode": "optional"}, "version is required"),
        ([], "config must be a JSON object"),
    ],
)
def test_bad_configs_name_the_field(bad: Any, message: str) -> None:
    err = config.validate(bad)
    assert err is not None and message in err


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=50),
        lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=10), c, max_size=5),
        max_leaves=30,
    )
)
def test_validate_never_raises(obj: object) -> None:
    result = config.validate(obj)
    assert result is None or isinstance(result, str)


@given(
    st.dictionaries(
        st.sampled_from(sorted(GOOD)),
        st.integers(-5, 200)
        | st.text(max_size=45)
        | st.booleans()
        | st.lists(st.integers(0, 120), max_size=3),
    )
)
def test_mutations_never_raise(changes: dict[str, Any]) -> None:
    result = config.validate(with_(**changes))
    assert result is None or isinstance(result, str)
