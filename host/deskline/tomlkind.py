"""How a TOML value is named in a configuration error ("must be a whole
number, not a string"): one wording for the floor file and every table a
feature module checks in it."""

from __future__ import annotations

from typing import Any


def kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "a number"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__
