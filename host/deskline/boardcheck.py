"""Check a board definition (hardware/boards/*.json) against its chip's pin rules."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

Level = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """One problem in a board file; `pin`/`gpio` are None when it is not about one pin."""

    level: Level
    pin: str | None
    gpio: int | None
    rule: str
    message: str


@dataclass(frozen=True)
class Chip:
    """What a chip allows: its GPIOs and the ones a console must not (or should not) use."""

    name: str
    gpios: frozenset[int]
    usb_modes: tuple[str, ...]
    # Mappings give GPIO -> its role, quoted in the message.
    flash: frozenset[int] = frozenset()
    flash_note: str = ""
    input_only: frozenset[int] = frozenset()
    native_usb: Mapping[int, str] = field(default_factory=dict)
    uart0: Mapping[int, str] = field(default_factory=dict)
    octal_psram: frozenset[int] = frozenset()
    strapping: Mapping[int, str] = field(default_factory=dict)


CHIPS: Mapping[str, Chip] = {
    "esp32": Chip(
        name="esp32",
        gpios=frozenset(range(40)) - {20, 24, 28, 29, 30, 31},
        usb_modes=("bridge",),
        flash=frozenset(range(6, 12)),
        flash_note="GPIO 6-11 connect the SPI flash",
        input_only=frozenset(range(34, 40)),
        uart0={1: "U0TXD", 3: "U0RXD"},
        strapping={
            0: "boot mode: low at reset enters the ROM loader; the BOOT button pulls it low",
            2: "boot mode: must be low or floating at reset to enter the ROM loader",
            5: "SDIO slave timing, pulled up on the module",
            12: "MTDI selects the flash voltage: high at reset picks 1.8 V and the module "
            "fails to boot",
            15: "MTDO: low at reset silences the boot log and changes SDIO timing",
        },
    ),
    "esp32s3": Chip(
        name="esp32s3",
        gpios=frozenset(range(22)) | frozenset(range(26, 49)),
        usb_modes=("native", "bridge"),
        flash=frozenset(range(26, 33)),
        flash_note="GPIO 26-32 connect the SPI flash and quad PSRAM",
        native_usb={19: "D-", 20: "D+"},
        uart0={43: "U0TXD", 44: "U0RXD"},
        octal_psram=frozenset(range(33, 38)),
        strapping={
            0: "boot mode: low at reset enters the ROM loader; the BOOT button pulls it low",
            3: "selects the JTAG signal source at reset",
            45: "VDD_SPI voltage: high at reset picks 1.8 V flash",
            46: "boot mode and ROM log: must not be high while GPIO 0 is low at reset",
        },
    ),
    "sim": Chip(name="sim", gpios=frozenset(range(64)), usb_modes=("virtual",)),
}

# The firmware (board.py) looks these names up; each must be wired as this direction.
REQUIRED_PINS: Mapping[str, str] = {
    "escalate": "in",
    "hook": "in",
    "row0": "out",
    "row1": "out",
    "row2": "out",
    "row3": "out",
    "col0": "in",
    "col1": "in",
    "col2": "in",
    "pixels": "out",
    "buzzer": "out",
    "sda": "io",
    "scl": "io",
}

_TOP_KEYS = ("board", "title", "chip", "usb", "pins", "keypad", "pixels", "oled", "buzzer")
_PIN_KEYS = ("gpio", "dir", "pull", "active")
_OPTIONAL_PIN_KEYS = ("pull", "active")
_DIRS = ("in", "out", "io")
_PULLS = ("up", "down")
_KEY_CHARS = "0123456789*#"
_PIXEL_COUNT = 3
_PIXEL_ORDERS = ("RGB", "RBG", "GRB", "GBR", "BRG", "BGR")
_OLED_KEYS = ("width", "height", "addr", "i2c", "freq")
_OLED_SIZE = (128, 32)


@dataclass(frozen=True)
class _Pin:
    name: str
    gpio: int
    dir: str
    pull: str | None
    active: int | None


class _Report:
    # Collects findings; the checks below only append.
    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def error(
        self, rule: str, message: str, pin: str | None = None, gpio: int | None = None
    ) -> None:
        self.findings.append(Finding("error", pin, gpio, rule, message))

    def warning(
        self, rule: str, message: str, pin: str | None = None, gpio: int | None = None
    ) -> None:
        self.findings.append(Finding("warning", pin, gpio, rule, message))


def _as_int(value: object) -> int | None:
    # JSON true/false arrive as bool, a subclass of int; they are not numbers here.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _ranges(numbers: frozenset[int]) -> str:
    # "0-19, 21-23, 25" for a message listing a chip's GPIOs.
    parts: list[str] = []
    ordered = sorted(numbers)
    start = prev = ordered[0]
    for n in [*ordered[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ", ".join(parts)


def _type_name(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if _as_int(value) is not None:
        return "an integer"
    return names.get(type(value), "a " + type(value).__name__)


def _check_keys(
    report: _Report,
    where: str,
    obj: Mapping[object, object],
    allowed: tuple[str, ...],
    pin: str | None = None,
) -> None:
    # Every allowed key is required except a pin's optional "pull" and "active".
    for key in obj:
        if key not in allowed:
            report.error(
                "unknown-key",
                f"{where} has unknown key {json.dumps(str(key))}; allowed: {', '.join(allowed)}",
                pin,
            )
    for key in allowed:
        if key not in obj and key not in _OPTIONAL_PIN_KEYS:
            report.error("missing-key", f"{where} is missing required key {json.dumps(key)}", pin)


def _parse_pin(report: _Report, name: object, entry: object) -> _Pin | None:
    if not isinstance(name, str):
        report.error("schema", f"pin name {name!r} must be a string")
        return None
    if not name:
        # Reported, then checked like any other pin so its GPIO is still judged.
        report.error("schema", "a pin name is empty")
    where = f'pin "{name}"'
    if not isinstance(entry, dict):
        report.error("schema", f"{where} must be an object, not {_type_name(entry)}", name)
        return None
    _check_keys(report, where, entry, _PIN_KEYS, name)
    gpio = _as_int(entry.get("gpio"))
    direction = entry.get("dir")
    pull = entry.get("pull")
    active = entry.get("active")
    ok = True
    if "gpio" in entry and gpio is None:
        raw = _type_name(entry["gpio"])
        report.error("schema", f'{where}: "gpio" must be an integer, not {raw}', name)
        ok = False
    if "dir" in entry and direction not in _DIRS:
        report.error(
            "schema", f'{where}: "dir" must be one of "in", "out", "io", not {direction!r}', name
        )
        ok = False
    if "pull" in entry and pull not in _PULLS:
        report.error("schema", f'{where}: "pull" must be "up" or "down", not {pull!r}', name)
        ok = False
    if "active" in entry and _as_int(active) not in (0, 1):
        report.error("schema", f'{where}: "active" must be 0 or 1, not {active!r}', name)
        ok = False
    if not ok or gpio is None or not isinstance(direction, str):
        return None
    return _Pin(name, gpio, direction, pull if isinstance(pull, str) else None, _as_int(active))


def _check_pin_electrics(report: _Report, pin: _Pin, role: str | None) -> None:
    # Direction and pull against what the firmware does with the pin.
    name, gpio = pin.name, pin.gpio
    where = f'pin "{name}" (GPIO {gpio})'
    if role is not None and pin.dir != role:
        report.error(
            "pin-dir",
            f'{where} has dir "{pin.dir}", but the firmware uses "{name}" as "{role}"',
            name,
            gpio,
        )
    if pin.pull is not None and pin.dir == "out":
        report.warning(
            "pull-on-output",
            f'{where} is an output; its pull "{pin.pull}" has no effect',
            name,
            gpio,
        )
    if pin.dir == "out":
        return
    if pin.active == 0 and pin.pull == "down":
        report.error(
            "pull-sense",
            f'{where} is active low but pulled down, so it always reads active; use pull "up"',
            name,
            gpio,
        )
    elif pin.active == 1 and pin.pull == "up":
        report.error(
            "pull-sense",
            f'{where} is active high but pulled up, so it always reads active; use pull "down"',
            name,
            gpio,
        )


def _check_chip_rules(report: _Report, pin: _Pin, chip: Chip, usb: object) -> None:
    name, gpio = pin.name, pin.gpio
    lead = f'pin "{name}" uses GPIO {gpio}'
    if gpio not in chip.gpios:
        report.error(
            "no-such-gpio",
            f"{lead}, which {chip.name} does not have (it has GPIO {_ranges(chip.gpios)}); "
            "choose another GPIO",
            name,
            gpio,
        )
        return
    if gpio in chip.flash:
        report.error(
            "flash-pin",
            f"{lead}, a flash pin on {chip.name} ({chip.flash_note}); choose another GPIO",
            name,
            gpio,
        )
    if gpio in chip.native_usb and usb == "native":
        pair = "/".join(str(g) for g in sorted(chip.native_usb))
        report.error(
            "native-usb",
            f"{lead}, the native USB {chip.native_usb[gpio]} pin on {chip.name} "
            f'(GPIO {pair} carry the console\'s USB link when usb is "native"); '
            "choose another GPIO",
            name,
            gpio,
        )
    if gpio in chip.uart0:
        report.error(
            "uart0",
            f"{lead}, UART0 {chip.uart0[gpio]} on {chip.name} (the REPL UART, which "
            "carries the console protocol); choose another GPIO",
            name,
            gpio,
        )
    if gpio in chip.input_only:
        span = _ranges(chip.input_only)
        if pin.dir in ("out", "io"):
            report.error(
                "input-only",
                f"{lead}, an input-only pin on {chip.name} (GPIO {span} cannot drive), "
                f'but its dir is "{pin.dir}"; choose another GPIO',
                name,
                gpio,
            )
        elif pin.pull is not None:
            report.error(
                "no-internal-pull",
                f'{lead} with pull "{pin.pull}", but GPIO {span} on {chip.name} have no '
                'internal pulls; fit an external resistor and drop "pull", or choose another GPIO',
                name,
                gpio,
            )
    if gpio in chip.octal_psram:
        report.warning(
            "octal-psram",
            f"{lead}, an octal-PSRAM pin on {chip.name} modules with octal PSRAM "
            f"(GPIO {_ranges(chip.octal_psram)} on e.g. WROOM-1-N8R8); "
            "use it only on quad-PSRAM or no-PSRAM modules",
            name,
            gpio,
        )
    if gpio in chip.strapping:
        report.warning(
            "strapping",
            f"{lead}, a strapping pin on {chip.name} ({chip.strapping[gpio]}); "
            "keep it unloaded at reset or choose another GPIO",
            name,
            gpio,
        )


def _check_keypad(report: _Report, keypad: object, pins: Mapping[str, object]) -> dict[str, str]:
    # Returns the direction each keypad pin must have (rows driven, columns read).
    roles: dict[str, str] = {}
    if not isinstance(keypad, dict):
        report.error("schema", f'"keypad" must be an object, not {_type_name(keypad)}')
        return roles
    _check_keys(report, '"keypad"', keypad, ("rows", "cols", "keys"))
    sizes: list[int] = []
    for part, role in (("rows", "out"), ("cols", "in")):
        names = keypad.get(part)
        if part not in keypad:
            continue
        if not isinstance(names, list) or not names:
            report.error("keypad", f'"keypad.{part}" must be a non-empty array of pin names')
            continue
        sizes.append(len(names))
        seen: set[str] = set()
        for ref in names:
            if not isinstance(ref, str):
                report.error("keypad", f'"keypad.{part}" holds {ref!r}, which is not a pin name')
                continue
            if ref in seen:
                report.error("keypad", f'"keypad.{part}" lists pin "{ref}" twice', ref)
            seen.add(ref)
            if ref not in pins:
                report.error("keypad", f'"keypad.{part}" refers to pin "{ref}", not in "pins"', ref)
            elif ref in roles and roles[ref] != role:
                report.error("keypad", f'pin "{ref}" is both a keypad row and a column', ref)
            else:
                roles[ref] = role
    keys = keypad.get("keys")
    if "keys" not in keypad:
        return roles
    if not isinstance(keys, str):
        report.error("keypad", f'"keypad.keys" must be a string, not {_type_name(keys)}')
        return roles
    if len(sizes) == 2 and len(keys) != sizes[0] * sizes[1]:
        report.error(
            "keypad",
            f'"keypad.keys" has {len(keys)} keys, but {sizes[0]} rows x {sizes[1]} cols '
            f"make {sizes[0] * sizes[1]}",
        )
    bad = sorted({c for c in keys if c not in _KEY_CHARS})
    if bad:
        report.error(
            "keypad",
            f'"keypad.keys" holds {"".join(bad)!r}; keys are digits, "*" and "#"',
        )
    twice = sorted({c for c in keys if keys.count(c) > 1})
    if twice:
        report.error("keypad", f'"keypad.keys" repeats {"".join(twice)!r}')
    return roles


def _int_field(
    report: _Report, where: str, obj: Mapping[object, object], key: str, bounds: tuple[int, int]
) -> int | None:
    low, high = bounds
    if key not in obj:
        return None
    value = _as_int(obj[key])
    if value is None or not low <= value <= high:
        report.error(
            "schema", f'"{where}.{key}" must be an integer {low}..{high}, not {obj[key]!r}'
        )
        return None
    return value


def _check_parts(report: _Report, data: Mapping[object, object]) -> None:
    # The pixels, oled and buzzer sections.
    pixels = _section(report, data, "pixels")
    if pixels is not None:
        _check_keys(report, '"pixels"', pixels, ("count", "order"))
        count = pixels.get("count")
        if "count" in pixels and _as_int(count) != _PIXEL_COUNT:
            report.error(
                "pixels",
                f'"pixels.count" must be {_PIXEL_COUNT} (floor SL, personal state, '
                f"escalation), not {count!r}",
            )
        order = pixels.get("order")
        if "order" in pixels and order not in _PIXEL_ORDERS:
            report.error(
                "pixels",
                f'"pixels.order" must be one of {", ".join(_PIXEL_ORDERS)}, '
                f"not {order!r} (WS2812B is GRB)",
            )
    oled = _section(report, data, "oled")
    if oled is not None:
        _check_keys(report, '"oled"', oled, _OLED_KEYS)
        width = _int_field(report, "oled", oled, "width", (1, 1024))
        height = _int_field(report, "oled", oled, "height", (1, 1024))
        _int_field(report, "oled", oled, "addr", (0x08, 0x77))
        _int_field(report, "oled", oled, "i2c", (0, 1))
        _int_field(report, "oled", oled, "freq", (10_000, 1_000_000))
        if width is not None and height is not None and (width, height) != _OLED_SIZE:
            report.warning(
                "oled-size",
                f"the OLED is {width}x{height}; the firmware lays out 4 text lines "
                f"for {_OLED_SIZE[0]}x{_OLED_SIZE[1]}",
            )
    buzzer = _section(report, data, "buzzer")
    if buzzer is not None:
        _check_keys(report, '"buzzer"', buzzer, ("freq",))
        _int_field(report, "buzzer", buzzer, "freq", (20, 20_000))


def check_board(data: object) -> list[Finding]:
    """Check a parsed board definition; returns its findings, empty when clean."""
    report = _Report()
    if not isinstance(data, dict):
        report.error("schema", f"a board file must hold a JSON object, not {_type_name(data)}")
        return report.findings
    _check_keys(report, "the board file", data, _TOP_KEYS)
    for key in ("board", "title"):
        if key in data and not (isinstance(data[key], str) and data[key]):
            report.error("schema", f'"{key}" must be a non-empty string, not {data[key]!r}')

    chip: Chip | None = None
    chip_name = data.get("chip")
    if "chip" in data:
        if isinstance(chip_name, str) and chip_name in CHIPS:
            chip = CHIPS[chip_name]
        else:
            report.error(
                "unknown-chip",
                f'"chip" is {chip_name!r}; known chips: {", ".join(CHIPS)}',
            )
    usb = data.get("usb")
    if chip is not None and "usb" in data and usb not in chip.usb_modes:
        modes = " or ".join(f'"{m}"' for m in chip.usb_modes)
        report.error("usb", f'"usb" is {usb!r}, but {chip.name} boards use {modes}')

    raw_pins = data.get("pins")
    pin_entries: dict[str, object] = {}
    if "pins" in data:
        if isinstance(raw_pins, dict):
            pin_entries = {k: v for k, v in raw_pins.items() if isinstance(k, str)}
        else:
            report.error("schema", f'"pins" must be an object, not {_type_name(raw_pins)}')
    roles = dict(REQUIRED_PINS)
    if "keypad" in data:
        roles.update(_check_keypad(report, data["keypad"], pin_entries))
    if isinstance(raw_pins, dict):
        for name in REQUIRED_PINS:
            if name not in raw_pins:
                report.error(
                    "required-pin",
                    f'pin "{name}" is missing; the firmware needs it as "{REQUIRED_PINS[name]}"',
                    name,
                )
        users: dict[int, str] = {}
        for name, entry in raw_pins.items():
            pin = _parse_pin(report, name, entry)
            if pin is None:
                continue
            _check_pin_electrics(report, pin, roles.get(pin.name))
            if chip is not None:
                _check_chip_rules(report, pin, chip, usb)
            first = users.setdefault(pin.gpio, pin.name)
            if first != pin.name:
                report.error(
                    "duplicate-gpio",
                    f'pins "{first}" and "{pin.name}" both use GPIO {pin.gpio}; '
                    "each GPIO can serve one pin",
                    pin.name,
                    pin.gpio,
                )
    _check_parts(report, data)
    return report.findings


def check_file(path: Path) -> list[Finding]:
    """Read and check one board file; unreadable or malformed JSON gives one error."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return [Finding("error", None, None, "file", f"cannot read {path}: {exc.strerror or exc}")]
    except UnicodeDecodeError as exc:
        return [Finding("error", None, None, "file", f"{path} is not UTF-8 text: {exc.reason}")]
    duplicates: list[str] = []

    # json keeps the last of two equal keys silently; a pin listed twice would vanish.
    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        out: dict[str, object] = {}
        for key, value in items:
            if key in out:
                duplicates.append(key)
            out[key] = value
        return out

    def constant(name: str) -> object:
        raise ValueError(f"{name} is not JSON")

    try:
        data = json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except json.JSONDecodeError as exc:
        return [
            Finding(
                "error",
                None,
                None,
                "json",
                f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            )
        ]
    except (ValueError, RecursionError) as exc:
        return [Finding("error", None, None, "json", f"invalid JSON: {exc}")]
    found = [
        Finding(
            "error",
            None,
            None,
            "duplicate-key",
            f"key {json.dumps(key)} appears twice in one object; only the last would be used",
        )
        for key in duplicates
    ]
    return found + check_board(data)


def _count(findings: list[Finding], level: Level) -> int:
    return sum(1 for f in findings if f.level == level)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def format_findings(path: str, findings: list[Finding]) -> str:
    """Human report: one `error:`/`warning:` line per finding, then a summary line."""
    lines = [f"{f.level}: {path}: {f.message} [{f.rule}]" for f in findings]
    errors, warnings = _count(findings, "error"), _count(findings, "warning")
    verdict = "ok" if errors == 0 else "FAILED"
    lines.append(f"{path}: {verdict}, {_plural(errors, 'error')}, {_plural(warnings, 'warning')}")
    return "\n".join(lines)


def findings_json(path: str, findings: list[Finding]) -> dict[str, object]:
    """Machine report for `--json`: ok is true when there are no errors."""
    errors = _count(findings, "error")
    return {
        "file": path,
        "ok": errors == 0,
        "errors": errors,
        "warnings": _count(findings, "warning"),
        "findings": [asdict(f) for f in findings],
    }


def _section(
    report: _Report, data: Mapping[object, object], key: str
) -> dict[object, object] | None:
    """data[key] when it is an object; None (with an error if present) otherwise."""
    value = data.get(key)
    if key not in data:
        return None
    if not isinstance(value, dict):
        report.error("schema", f'"{key}" must be an object, not {_type_name(value)}')
        return None
    return value
