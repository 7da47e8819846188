"""Tests for deskline.boardcheck: the shipped boards, each pin rule, malformed files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from deskline.boardcheck import (
    CHIPS,
    REQUIRED_PINS,
    Finding,
    check_board,
    check_file,
    findings_json,
    format_findings,
)
from hypothesis import given, settings
from hypothesis import strategies as st

BOARDS = Path(__file__).resolve().parent.parent / "hardware" / "boards"
SHIPPED = {"esp32": "esp32-devkitc-v4", "esp32s3": "esp32s3-devkitc1", "sim": "sim"}


def load(chip: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((BOARDS / f"{SHIPPED[chip]}.json").read_text())
    return data


def with_pin(chip: str, name: str, **entry: Any) -> dict[str, Any]:
    # A shipped board with one pin's fields replaced.
    data = load(chip)
    data["pins"][name].update(entry)
    return data


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.level == "error"]


def only(findings: list[Finding], rule: str) -> Finding:
    hits = [f for f in findings if f.rule == rule]
    assert len(hits) == 1, findings
    return hits[0]


# --- shipped boards


@pytest.mark.parametrize("name", sorted(SHIPPED.values()))
def test_shipped_board_is_clean(name: str) -> None:
    path = BOARDS / f"{name}.json"
    assert check_file(path) == []
    assert json.loads(path.read_text())["board"] == name


def test_every_board_file_is_shipped_and_clean() -> None:
    files = sorted(p.stem for p in BOARDS.glob("*.json"))
    assert files == sorted(SHIPPED.values())


@pytest.mark.parametrize("chip", sorted(SHIPPED))
def test_shipped_board_matches_its_chip(chip: str) -> None:
    data = load(chip)
    assert data["chip"] == chip
    assert set(REQUIRED_PINS) <= set(data["pins"])


# --- per-chip pin rules, each naming pin, GPIO and rule


@pytest.mark.parametrize(
    ("chip", "name", "gpio", "rule", "words"),
    [
        ("esp32", "row0", 6, "flash-pin", "a flash pin on esp32 (GPIO 6-11 connect the SPI flash)"),
        ("esp32", "col1", 11, "flash-pin", "a flash pin on esp32"),
        ("esp32s3", "row2", 27, "flash-pin", "a flash pin on esp32s3 (GPIO 26-32"),
        ("esp32", "row1", 24, "no-such-gpio", "which esp32 does not have"),
        ("esp32", "row1", 20, "no-such-gpio", "0-19, 21-23, 25-27, 32-39"),
        ("esp32s3", "row1", 22, "no-such-gpio", "which esp32s3 does not have"),
        ("esp32s3", "row1", 49, "no-such-gpio", "0-21, 26-48"),
        ("sim", "row1", 64, "no-such-gpio", "which sim does not have (it has GPIO 0-63)"),
        ("sim", "row1", -1, "no-such-gpio", "uses GPIO -1"),
        ("esp32", "pixels", 36, "input-only", "an input-only pin on esp32 (GPIO 34-39"),
        ("esp32", "sda", 39, "input-only", 'but its dir is "io"'),
        ("esp32", "hook", 34, "no-internal-pull", 'with pull "up", but GPIO 34-39 on esp32'),
        ("esp32", "row3", 1, "uart0", "UART0 U0TXD on esp32 (the REPL UART"),
        ("esp32", "col0", 3, "uart0", "UART0 U0RXD on esp32"),
        ("esp32s3", "row3", 43, "uart0", "UART0 U0TXD on esp32s3"),
        ("esp32s3", "col0", 44, "uart0", "UART0 U0RXD on esp32s3"),
        ("esp32s3", "buzzer", 19, "native-usb", "the native USB D- pin on esp32s3"),
        ("esp32s3", "buzzer", 20, "native-usb", "the native USB D+ pin on esp32s3"),
    ],
)
def test_error_rule(chip: str, name: str, gpio: int, rule: str, words: str) -> None:
    findings = check_board(with_pin(chip, name, gpio=gpio))
    hit = only(findings, rule)
    assert (hit.level, hit.pin, hit.gpio) == ("error", name, gpio)
    assert hit.message.startswith(f'pin "{name}" uses GPIO {gpio}')
    assert words in hit.message
    assert errors(findings) == [hit]


def test_flash_message_matches_the_documented_example() -> None:
    hit = only(check_board(with_pin("esp32", "row0", gpio=6)), "flash-pin")
    assert hit.message == (
        'pin "row0" uses GPIO 6, a flash pin on esp32 '
        "(GPIO 6-11 connect the SPI flash); choose another GPIO"
    )


@pytest.mark.parametrize(
    ("chip", "name", "gpio", "rule", "words"),
    [
        ("esp32", "buzzer", 0, "strapping", "a strapping pin on esp32 (boot mode"),
        ("esp32", "buzzer", 2, "strapping", "a strapping pin on esp32"),
        ("esp32", "buzzer", 5, "strapping", "a strapping pin on esp32"),
        ("esp32", "buzzer", 12, "strapping", "flash voltage"),
        ("esp32", "buzzer", 15, "strapping", "MTDO"),
        ("esp32s3", "row0", 0, "strapping", "a strapping pin on esp32s3"),
        ("esp32s3", "row0", 3, "strapping", "JTAG signal source"),
        ("esp32s3", "row0", 45, "strapping", "VDD_SPI"),
        ("esp32s3", "row0", 46, "strapping", "a strapping pin on esp32s3"),
        ("esp32s3", "row0", 33, "octal-psram", "an octal-PSRAM pin on esp32s3"),
        ("esp32s3", "row0", 37, "octal-psram", "GPIO 33-37"),
    ],
)
def test_warning_rule(chip: str, name: str, gpio: int, rule: str, words: str) -> None:
    findings = check_board(with_pin(chip, name, gpio=gpio))
    assert errors(findings) == []
    hit = only(findings, rule)
    assert (hit.level, hit.pin, hit.gpio) == ("warning", name, gpio)
    assert hit.message.startswith(f'pin "{name}" uses GPIO {gpio}')
    assert words in hit.message


def test_input_only_pin_without_pull_is_fine_for_an_input() -> None:
    # GPIO 34-39 suit inputs with an external pull-up: leave "pull" out.
    data = load("esp32")
    del data["pins"]["hook"]["pull"]
    data["pins"]["hook"]["gpio"] = 34
    assert check_board(data) == []


def test_native_usb_pins_are_free_with_a_bridge() -> None:
    data = with_pin("esp32s3", "buzzer", gpio=19)
    data["usb"] = "bridge"
    assert check_board(data) == []


def test_sim_has_no_chip_rules_beyond_range() -> None:
    # Flash, UART0 and strapping numbers of real chips mean nothing to the sim.
    data = load("sim")
    gpios = (6, 1, 3, 0, 12, 34, 19, 43, 35, 45, 63, 62, 61)
    for name, gpio in zip(REQUIRED_PINS, gpios, strict=True):
        data["pins"][name]["gpio"] = gpio
    assert check_board(data) == []


# --- duplicates and required pins


def test_duplicate_gpio_names_both_pins() -> None:
    data = with_pin("esp32s3", "buzzer", gpio=4)  # escalate's GPIO
    hit = only(check_board(data), "duplicate-gpio")
    assert (hit.level, hit.pin, hit.gpio) == ("error", "buzzer", 4)
    assert hit.message == (
        'pins "escalate" and "buzzer" both use GPIO 4; each GPIO can serve one pin'
    )


def test_duplicate_gpio_on_sim() -> None:
    data = with_pin("sim", "scl", gpio=12)
    hit = only(check_board(data), "duplicate-gpio")
    assert (hit.pin, hit.gpio) == ("scl", 12)


def test_three_pins_on_one_gpio_give_two_findings() -> None:
    data = load("esp32")
    data["pins"]["row0"]["gpio"] = 4
    data["pins"]["row1"]["gpio"] = 4
    hits = [f for f in check_board(data) if f.rule == "duplicate-gpio"]
    # The first user in file order keeps the GPIO; each later one is reported.
    assert [(f.pin, f.gpio) for f in hits] == [("row1", 4), ("buzzer", 4)]
    assert all(f.message.startswith('pins "row0" and ') for f in hits)


@pytest.mark.parametrize("name", sorted(REQUIRED_PINS))
def test_missing_required_pin(name: str) -> None:
    data = load("esp32s3")
    del data["pins"][name]
    findings = errors(check_board(data))
    hit = only(findings, "required-pin")
    assert hit.pin == name
    assert f'pin "{name}" is missing' in hit.message


def test_required_pin_with_wrong_direction() -> None:
    hit = only(check_board(with_pin("esp32s3", "row0", dir="in")), "pin-dir")
    assert (hit.level, hit.pin, hit.gpio) == ("error", "row0", 15)
    assert 'dir "in"' in hit.message
    assert 'as "out"' in hit.message


def test_extra_pins_are_allowed_and_checked() -> None:
    data = load("esp32")
    data["pins"]["spare"] = {"gpio": 9, "dir": "out"}
    hit = only(check_board(data), "flash-pin")
    assert hit.pin == "spare"


@pytest.mark.parametrize(
    ("pull", "active", "problem"),
    [("down", 0, "active low but pulled down"), ("up", 1, "active high but pulled up")],
)
def test_pull_against_sense(pull: str, active: int, problem: str) -> None:
    hit = only(check_board(with_pin("esp32s3", "hook", pull=pull, active=active)), "pull-sense")
    assert (hit.level, hit.pin, hit.gpio) == ("error", "hook", 5)
    assert problem in hit.message


def test_pull_on_output_is_a_warning() -> None:
    hit = only(check_board(with_pin("esp32s3", "row0", pull="up")), "pull-on-output")
    assert hit.level == "warning"


# --- structure


@pytest.mark.parametrize(
    ("change", "rule", "words"),
    [
        (lambda d: d.pop("oled"), "missing-key", 'missing required key "oled"'),
        (lambda d: d.update(extra=1), "unknown-key", 'unknown key "extra"'),
        (lambda d: d.update(chip="esp8266"), "unknown-chip", "'esp8266'"),
        (lambda d: d.update(usb="native"), "usb", '"bridge"'),
        (lambda d: d.update(pins=[]), "schema", '"pins" must be an object'),
        (lambda d: d.update(title=""), "schema", '"title" must be a non-empty string'),
        (lambda d: d["pins"]["row0"].update(colour="red"), "unknown-key", 'pin "row0"'),
        (lambda d: d["pins"]["row0"].pop("gpio"), "missing-key", '"gpio"'),
        (lambda d: d["pins"]["row0"].update(gpio="15"), "schema", "must be an integer"),
        (lambda d: d["pins"]["row0"].update(gpio=1.5), "schema", "must be an integer"),
        (lambda d: d["pins"]["row0"].update(gpio=True), "schema", "not a boolean"),
        (lambda d: d["pins"]["row0"].update(dir="output"), "schema", '"dir" must be one of'),
        (lambda d: d["pins"]["col0"].update(pull="strong"), "schema", '"pull" must be'),
        (lambda d: d["pins"]["hook"].update(active=2), "schema", '"active" must be 0 or 1'),
        (lambda d: d["pins"].update(row0=15), "schema", 'pin "row0" must be an object'),
        (lambda d: d["keypad"].update(rows=["row0", "row9"]), "keypad", 'pin "row9"'),
        (lambda d: d["keypad"].update(keys="123456789*0"), "keypad", "11 keys, but 4 rows x 3"),
        (lambda d: d["keypad"].update(keys="123456789*0A"), "keypad", "'A'"),
        (lambda d: d["keypad"].update(keys="123456789*00"), "keypad", "repeats '0'"),
        (lambda d: d["keypad"].update(cols=[]), "keypad", "non-empty array"),
        (lambda d: d["keypad"].update(cols=["col0", "col0", "col1"]), "keypad", "twice"),
        (lambda d: d["keypad"].update(cols=["col0", "row0", "col2"]), "keypad", "both"),
        (lambda d: d["pixels"].update(count=4), "pixels", '"pixels.count" must be 3'),
        (lambda d: d["pixels"].update(count=True), "pixels", '"pixels.count" must be 3'),
        (lambda d: d["pixels"].update(order="RGBW"), "pixels", "WS2812B is GRB"),
        (lambda d: d["oled"].update(addr=0x80), "schema", '"oled.addr" must be an integer 8..119'),
        (lambda d: d["oled"].update(i2c=2), "schema", '"oled.i2c"'),
        (lambda d: d["buzzer"].update(freq=0), "schema", '"buzzer.freq"'),
        (lambda d: d.update(buzzer=2700), "schema", '"buzzer" must be an object'),
    ],
)
def test_structure_errors(change: Any, rule: str, words: str) -> None:
    data = load("esp32")
    change(data)
    findings = check_board(data)
    assert findings, "expected a finding"
    hits = [f for f in findings if f.rule == rule and f.level == "error"]
    assert hits, findings
    assert any(words in f.message for f in hits), hits


def test_oled_of_another_size_is_a_warning() -> None:
    data = load("esp32s3")
    data["oled"]["height"] = 64
    hit = only(check_board(data), "oled-size")
    assert hit.level == "warning"
    assert "128x64" in hit.message


def test_keypad_row_wired_as_input_is_reported() -> None:
    data = load("esp32s3")
    data["pins"]["k0"] = {"gpio": 21, "dir": "in"}
    data["keypad"]["rows"] = ["k0", "row1", "row2", "row3"]
    hit = only(check_board(data), "pin-dir")
    assert hit.pin == "k0"


@pytest.mark.parametrize("data", [None, [], "board", 3, True, {}])
def test_not_a_board(data: object) -> None:
    findings = check_board(data)
    assert errors(findings)


# --- files


def test_malformed_json_reports_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "board": "x",\n  "chip": esp32\n}\n')
    [hit] = check_file(path)
    assert (hit.level, hit.rule, hit.pin, hit.gpio) == ("error", "json", None, None)
    assert "line 3, column 11" in hit.message


def test_trailing_comma_is_malformed(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"board": "x",}')
    [hit] = check_file(path)
    assert hit.rule == "json"
    assert "line 1" in hit.message


def test_nan_is_not_json(tmp_path: Path) -> None:
    data = load("esp32")
    path = tmp_path / "nan.json"
    path.write_text(json.dumps(data).replace('"freq": 4000', '"freq": NaN'))
    [hit] = check_file(path)
    assert hit.rule == "json"
    assert "NaN" in hit.message


def test_duplicate_key_in_file(tmp_path: Path) -> None:
    text = (BOARDS / "esp32s3-devkitc1.json").read_text()
    text = text.replace('"row1": {"gpio": 16', '"row0": {"gpio": 16', 1)
    path = tmp_path / "dup.json"
    path.write_text(text)
    rules = [f.rule for f in check_file(path)]
    assert "duplicate-key" in rules
    assert "required-pin" in rules  # row1 is now missing


def test_missing_and_binary_files(tmp_path: Path) -> None:
    [hit] = check_file(tmp_path / "absent.json")
    assert (hit.level, hit.rule) == ("error", "file")
    path = tmp_path / "bin.json"
    path.write_bytes(b"\xff\xfe\x00")
    [hit] = check_file(path)
    assert hit.rule == "file"


# --- reports


def test_format_findings() -> None:
    findings = check_board(with_pin("esp32", "row0", gpio=6)) + check_board(
        with_pin("esp32", "buzzer", gpio=12)
    )
    text = format_findings("x.json", findings)
    lines = text.splitlines()
    assert lines[0].startswith('error: x.json: pin "row0" uses GPIO 6')
    assert lines[0].endswith("[flash-pin]")
    assert lines[1].startswith("warning: x.json:")
    assert lines[-1] == "x.json: FAILED, 1 error, 1 warning"


def test_format_clean() -> None:
    assert format_findings("b.json", []) == "b.json: ok, 0 errors, 0 warnings"


def test_findings_json() -> None:
    findings = check_board(with_pin("esp32s3", "row0", gpio=0))
    report = findings_json("s3.json", findings)
    assert report == {
        "file": "s3.json",
        "ok": True,
        "errors": 0,
        "warnings": 1,
        "findings": [
            {
                "level": "warning",
                "pin": "row0",
                "gpio": 0,
                "rule": "strapping",
                "message": findings[0].message,
            }
        ],
    }
    assert json.loads(json.dumps(report)) == report
    assert findings_json("e.json", check_board(None))["ok"] is False


# --- properties

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
pin_names = st.sampled_from(sorted(REQUIRED_PINS)) | st.text(max_size=6)
pin_entries = st.fixed_dictionaries(
    {"gpio": st.integers(-5, 70), "dir": st.sampled_from(["in", "out", "io"])},
    optional={"pull": st.sampled_from(["up", "down"]), "active": st.sampled_from([0, 1])},
)
pin_maps = st.dictionaries(pin_names, pin_entries | json_values, max_size=16)


@settings(max_examples=200)
@given(st.sampled_from(sorted(CHIPS)), pin_maps, json_values)
def test_random_pin_maps_never_raise(chip: str, pins: dict[str, Any], junk: Any) -> None:
    data = load(chip)
    data["pins"] = pins
    for findings in (check_board(data), check_board(junk), check_board({**data, "keypad": junk})):
        assert all(isinstance(f, Finding) and f.level in ("error", "warning") for f in findings)
        findings_json("f.json", findings)
        format_findings("f.json", findings)


@settings(max_examples=200)
@given(st.sampled_from(sorted(CHIPS)), st.dictionaries(pin_names, pin_entries, max_size=16))
def test_gpio_outside_the_chip_is_always_reported(chip: str, pins: dict[str, Any]) -> None:
    data = load(chip)
    data["pins"] = pins
    found = {(f.pin, f.gpio) for f in check_board(data) if f.rule == "no-such-gpio"}
    expected = {(n, e["gpio"]) for n, e in pins.items() if e["gpio"] not in CHIPS[chip].gpios}
    assert found == expected


@given(
    st.sampled_from(sorted(CHIPS)),
    st.sampled_from(sorted(REQUIRED_PINS)),
    st.integers(-(2**40), 2**40),
)
def test_any_gpio_outside_the_chip_in_a_shipped_board(chip: str, name: str, gpio: int) -> None:
    data = with_pin(chip, name, gpio=gpio)
    findings = check_board(data)
    if gpio in CHIPS[chip].gpios:
        assert not any(f.rule == "no-such-gpio" for f in findings)
    else:
        hit = only(findings, "no-such-gpio")
        assert (hit.level, hit.pin, hit.gpio) == ("error", name, gpio)
        assert f'pin "{name}" uses GPIO {gpio}' in hit.message
