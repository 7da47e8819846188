"""Tests for deskline.floorconfig: the shipped example, every error a technician
can make (by its message), the watcher's reloads, generated and random floors."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest
from deskline.errors import DesklineError
from deskline.firmware import cfgcheck
from deskline.floorconfig import (
    SL_VARIANTS,
    FloorConfigError,
    FloorWatcher,
    demo_floor_toml,
    dump_floor,
    load_floor,
    parse_floor,
)
from deskline.floormodel import Account, Agent, Desk, Floor, Queue, WrapCode
from hypothesis import given, settings
from hypothesis import strategies as st

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "floor.toml"

# A small good floor; each error test changes one thing in it.
BASE = """\
[floor]
name = "Test floor"

[accounts.acme]
name = "ACME Energy"
mode = "mandatory_timeout"
acw_s = 30
fallback = 99
hotline = "+44 20 7946 0000"

[accounts.acme.sl]
target_pct = 80
threshold_s = 20

[[accounts.acme.codes]]
code = 1
label = "Billing query"
failure_demand = true

[[accounts.acme.codes]]
code = 7
label = "Confusing bill"
failure_demand = true

[[accounts.acme.codes]]
code = 99
label = "ACW timeout"

[accounts.tel]
name = "Tel Mobile"
mode = "optional"

[[accounts.tel.codes]]
code = 1
label = "Network fault"

[queues.acme-billing]
account = "acme"

[queues.acme-moves]
account = "acme"

[queues.tel-tech]
account = "tel"

[agents.a1]
name = "Priya Shah"

[agents.a2]
name = "Tom Wright"

[desks.D01]
console = "desk-01"
account = "acme"
agent = "a1"
queues = ["acme-billing", "acme-moves"]
row = 1
col = 1

[desks.D07]
console = "desk-07"
account = "acme"
agent = "a2"
queues = ["acme-billing"]
row = 1
col = 2
"""


def problems(text: str) -> list[str]:
    with pytest.raises(FloorConfigError) as info:
        parse_floor(text, "floor.toml")
    return list(info.value.problems)


def one_problem(text: str) -> str:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


def edit(old: str, new: str, text: str = BASE) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


# --- the example and the base floor


def test_base_floor_parses() -> None:
    floor = parse_floor(BASE)
    assert floor.name == "Test floor"
    assert floor.desks["D07"] == Desk(
        name="D07",
        console="desk-07",
        account="acme",
        agent="a2",
        queues=("acme-billing",),
        row=1,
        col=2,
    )
    acme = floor.accounts["acme"]
    assert acme.codes[0] == WrapCode(1, "Billing query", True)
    assert acme.sl_target_pct == 80
    assert acme.short_abandon_s == 5
    assert floor.console_config("desk-07") == {
        "account": "ACME Energy",
        "mode": "mandatory_timeout",
        "acw_s": 30,
        "fallback": 99,
        "codes": [
            [1, "Billing query", True],
            [7, "Confusing bill", True],
            [99, "ACW timeout", False],
        ],
        "sl": {"target_pct": 80, "threshold_s": 20, "amber_pct": 5},
        "brightness": 40,
        "hotline": "+44 20 7946 0000",
        "severity": 2,
        "keepalive_s": 15,
        "heartbeat_s": 10,
    }
    assert floor.console_config("desk-99") is None


def test_example_floor_loads() -> None:
    floor = load_floor(EXAMPLE)
    assert floor.name == "Leeds floor 2"
    assert list(floor.desks) == [f"desk-{i:02d}" for i in range(1, 25)]
    assert all(desk.console == name for name, desk in floor.desks.items())
    assert len({(d.row, d.col) for d in floor.desks.values()}) == 24
    assert len(floor.accounts) == 3
    modes = {a.console_config["mode"] for a in floor.accounts.values()}
    assert len(modes) == 3
    for key, account in floor.accounts.items():
        assert any(c.failure_demand for c in account.codes), key
        assert any(not c.failure_demand for c in account.codes), key
        assert 2 <= sum(q.account == key for q in floor.queues.values()) <= 3, key
        assert cfgcheck.validate({**account.console_config, "version": 1}) is None
        # `make demo`'s agents key these codes on every account.
        assert {1, 2, 3, 7} <= {c.code for c in account.codes}, key
    assert all(agent.name for agent in floor.agents.values())


def test_example_and_demo_floors_share_their_accounts() -> None:
    example = load_floor(EXAMPLE)
    demo = parse_floor(demo_floor_toml(24))
    # Not their escalation tables: the example's webhooks are the clients'
    # systems, the demo's are its own client simulator.
    assert {k: dataclasses.replace(a, extra={}) for k, a in example.accounts.items()} == {
        k: dataclasses.replace(a, extra={}) for k, a in demo.accounts.items()
    }
    assert example.queues == demo.queues


def test_sha256_is_of_the_file_bytes(tmp_path: Path) -> None:
    path = tmp_path / "floor.toml"
    path.write_bytes(b"\xef\xbb\xbf" + BASE.encode())  # a BOM, as Windows editors save
    import hashlib

    assert load_floor(path).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert parse_floor(BASE).sha256 == hashlib.sha256(BASE.encode()).hexdigest()


def test_extension_table_goes_to_extra() -> None:
    text = BASE + '\n[accounts.tel.escalation]\nrepeat_days = 3\nhours = "24/7"\n'
    assert parse_floor(text).accounts["tel"].extra == {
        "escalation": {"repeat_days": 3, "hours": "24/7"}
    }


def test_optional_parts_may_be_left_out() -> None:
    text = """
[floor]
name = "Empty"
"""
    floor = parse_floor(text)
    assert floor.desks == {} and floor.accounts == {}
    spare = edit('agent = "a2"\n', "")
    assert parse_floor(spare).desks["D07"].agent is None


# --- reading the file


def test_syntax_error_names_line_and_column() -> None:
    text = edit("acw_s = 30", "acw_s = thirty")
    assert one_problem(text) == (
        "floor.toml: line 7, column 9: TOML syntax: invalid value (the line reads: acw_s = thirty)"
    )


def test_cut_short_file_says_so() -> None:
    text = BASE[: BASE.index('hotline = "+44') + 15]
    assert one_problem(text) == (
        "floor.toml: end of file: TOML syntax: unterminated string (is the file cut short?)"
    )


def test_table_declared_twice_is_a_syntax_error() -> None:
    text = BASE + '\n[agents.a1]\nname = "Again"\n'
    assert one_problem(text) == (
        "floor.toml: line 68, column 11: TOML syntax: [agents.a1] is declared twice: "
        "keep one and merge the keys (the line reads: [agents.a1])"
    )


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FloorConfigError) as info:
        load_floor(tmp_path / "floor.toml")
    assert str(info.value) == f"{tmp_path / 'floor.toml'}: cannot read: no such file or directory"
    assert isinstance(info.value, DesklineError)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "floor.toml"
    path.write_bytes(BASE.replace("ACME", "AC\xc9").encode("latin-1"))
    with pytest.raises(FloorConfigError) as info:
        load_floor(path)
    assert str(info.value) == (
        f"{path}: not UTF-8 text (bad byte at offset 55): save the file as UTF-8"
    )


# --- structure


def test_missing_floor_table() -> None:
    text = edit('[floor]\nname = "Test floor"\n', "")
    assert one_problem(text) == (
        'floor.toml: floor: missing: a [floor] table with name = "..." (shown to supervisors)'
    )


def test_unknown_top_level_table() -> None:
    assert one_problem(BASE + "\n[desk.D09]\nconsole = 'x'\n") == (
        'floor.toml: desk: unknown table (did you mean "desks"?)'
    )


def test_misspelt_key_suggests_the_right_one() -> None:
    text = edit('queues = ["acme-billing"]', 'qeues = ["acme-billing"]')
    assert one_problem(text) == 'floor.toml: desks.D07.qeues: unknown key (did you mean "queues"?)'


def test_unknown_key_lists_the_known_ones() -> None:
    text = edit('name = "Tom Wright"', 'name = "Tom Wright"\nshift = "early"')
    assert one_problem(text) == "floor.toml: agents.a2.shift: unknown key (keys: name)"


def test_names_must_be_bare_keys() -> None:
    text = edit("[desks.D07]", '[desks."Desk 7"]')
    assert one_problem(text) == (
        "floor.toml: desks.\"Desk 7\": desk name must be 1-64 letters, digits, '-' or '_'"
    )


def test_a_table_that_is_a_value() -> None:
    assert one_problem(BASE + '\n[queues]\nextra = "x"\n') == (
        "floor.toml: queues.extra: must be a table ([queues.extra]), not a string"
    )
    assert one_problem('[floor]\nname = "F"\n[agents]\nbob = "Bob"\n') == (
        "floor.toml: agents.bob: must be a table ([agents.bob]), not a string"
    )


# --- typed values


def test_wrong_types() -> None:
    text = edit("acw_s = 30", 'acw_s = "30"')
    text = edit(
        "failure_demand = true\n\n[[accounts.acme.codes]]\ncode = 7",
        'failure_demand = "yes"\n\n[[accounts.acme.codes]]\ncode = 7',
        text,
    )
    text = edit("row = 1\ncol = 2", "row = 1.5\ncol = true", text)
    assert problems(text) == [
        "floor.toml: accounts.acme.acw_s: must be a whole number, not a string",
        (
            "floor.toml: accounts.acme.codes[0].failure_demand: "
            "must be true or false (no quotes), not a string"
        ),
        "floor.toml: desks.D07.row: must be a whole number, not a decimal number",
        "floor.toml: desks.D07.col: must be a whole number, not true/false",
    ]


def test_required_values() -> None:
    text = edit('console = "desk-07"\n', "")
    text = edit('name = "Tom Wright"', 'name = ""', text)
    assert problems(text) == [
        (
            "floor.toml: agents.a2.name: must be a non-empty string: the agent's name, shown to "
            "supervisors"
        ),
        (
            "floor.toml: desks.D07.console: missing: the device id of the console on this desk "
            "(its hello says it)"
        ),
    ]


def test_codes_in_the_consoles_json_form_are_refused() -> None:
    text = edit('[[accounts.tel.codes]]\ncode = 1\nlabel = "Network fault"\n', "")
    text = edit(
        'mode = "optional"', 'mode = "optional"\ncodes = [[1, "Network fault", false]]', text
    )
    assert one_problem(text) == (
        "floor.toml: accounts.tel.codes: must be [[accounts.tel.codes]] tables, each with "
        'code = 1..99, label = "..." and failure_demand = true/false'
    )


def test_positions_in_range() -> None:
    assert one_problem(edit("row = 1\ncol = 2", "row = -1\ncol = 2")) == (
        "floor.toml: desks.D07.row: must be 0..999, not -1"
    )


# --- accounts and codes


def test_duplicate_code() -> None:
    text = edit("code = 7", "code = 1")
    assert one_problem(text) == (
        "floor.toml: accounts.acme.codes[1].code: code 1 is already accounts.acme.codes[0]: "
        "each code is keyed at the desk, so it must be unique"
    )


def test_code_out_of_range() -> None:
    assert one_problem(edit("code = 7", "code = 100")) == (
        "floor.toml: accounts.acme.codes[1].code: must be 1..99, not 100"
    )


def test_code_without_number_or_label() -> None:
    text = edit('code = 7\nlabel = "Confusing bill"\n', "")
    assert problems(text) == [
        "floor.toml: accounts.acme.codes[1].code: missing: the number keyed at the desk, 1..99",
        "floor.toml: accounts.acme.codes[1].label: missing: what the code means, shown at the desk",
    ]


def test_label_over_39_bytes() -> None:
    label = "Customer moved house without telling us"  # 39 characters: fits
    assert parse_floor(edit('"Confusing bill"', f'"{label}"')).accounts["acme"].codes[1].label
    assert one_problem(edit('"Confusing bill"', f'"{label}!"')) == (
        'floor.toml: accounts.acme.codes[1].label: "Customer moved house without telling us!" '
        "is 40 bytes; a console takes at most 39"
    )


def test_label_the_display_cannot_show() -> None:
    assert one_problem(edit('"Confusing bill"', '"Facture erronée"')) == (
        'floor.toml: accounts.acme.codes[1].label: "Facture erronée" has "é", which the '
        "console's display cannot show: use plain ASCII letters, digits and punctuation"
    )
    assert one_problem(edit('"Confusing bill"', '"Two\\nlines"')) == (
        'floor.toml: accounts.acme.codes[1].label: "Two\\u000alines" has "\\u000a", which the '
        "console's display cannot show: use plain ASCII letters, digits and punctuation"
    )


def test_account_name_and_hotline_limits() -> None:
    text = edit('name = "ACME Energy"', 'name = "ACME Energy and Gas Supply Company Limited"')
    text = edit(
        'hotline = "+44 20 7946 0000"', 'hotline = "+44 20 7946 0000 extension 123456"', text
    )
    assert problems(text) == [
        (
            'floor.toml: accounts.acme.name: "ACME Energy and Gas Supply Company Limited" is 42 '
            "bytes; a console takes at most 39"
        ),
        (
            'floor.toml: accounts.acme.hotline: "+44 20 7946 0000 extension 123456" is 33 bytes; '
            "a console takes at most 32"
        ),
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("fallback = 99", "fallback = 5"),
            "accounts.acme.fallback: code 5 is not in codes (a console rule)",
        ),
        (
            ('mode = "mandatory_timeout"', 'mode = "mandatory-timeout"'),
            (
                "accounts.acme.mode: must be one of optional, mandatory, mandatory_timeout, "
                "forced_timeout, agent_requested (a console rule)"
            ),
        ),
        (
            ("acw_s = 30", "acw_s = 0"),
            "accounts.acme.mode: mandatory_timeout needs acw_s > 0 (a console rule)",
        ),
        (
            ("fallback = 99", "fallback = 0"),
            "accounts.acme.mode: mandatory_timeout needs a fallback code (a console rule)",
        ),
        (
            ("acw_s = 30", "acw_s = 9000"),
            "accounts.acme.acw_s: must be 0..7200 (a console rule)",
        ),
        (
            ("target_pct = 80", "target_pct = 180"),
            "accounts.acme.sl.target_pct: must be 1..100 (a console rule)",
        ),
        (
            ('hotline = "+44 20 7946 0000"', "brightness = 140"),
            "accounts.acme.brightness: must be 0..100 (a console rule)",
        ),
        (
            ('hotline = "+44 20 7946 0000"', "keepalive_s = 1"),
            "accounts.acme.keepalive_s: must be 5..300 (a console rule)",
        ),
        (
            ('hotline = "+44 20 7946 0000"', "severity = 5"),
            "accounts.acme.severity: must be 1..4 (a console rule)",
        ),
    ],
)
def test_console_rules_are_the_firmwares(change: tuple[str, str], message: str) -> None:
    assert one_problem(edit(*change)) == "floor.toml: " + message


def test_short_abandon_is_checked_by_the_host() -> None:
    text = edit("threshold_s = 20", "threshold_s = 20\nshort_abandon_s = -1")
    assert one_problem(text) == (
        "floor.toml: accounts.acme.sl.short_abandon_s: must be 0..3600, not -1"
    )


def test_sl_variant_is_one_the_metrics_define() -> None:
    assert parse_floor(edit("threshold_s = 20", 'threshold_s = 20\nvariant = "answered"'))
    text = edit("threshold_s = 20", 'threshold_s = 20\nvariant = "best"')
    assert one_problem(text) == (
        "floor.toml: accounts.acme.sl.variant: 'best' is not one of answered, "
        "abandons_negative, abandons_ignored, short_excluded, abandons_positive"
    )


def test_extension_table_must_be_a_table() -> None:
    text = edit('mode = "optional"', 'mode = "optional"\nescalation = 30')
    assert one_problem(text) == (
        "floor.toml: accounts.tel.escalation: must be a table ([accounts.tel.escalation]), "
        "not a number"
    )


def test_unknown_account_key_is_not_extra() -> None:
    text = edit('mode = "optional"', 'mode = "optional"\n[accounts.tel.escalaton]\nack_s = 1')
    assert one_problem(text) == (
        'floor.toml: accounts.tel.escalaton: unknown key (did you mean "escalation"?)'
    )


# --- cross references


def test_unknown_queue_lists_the_accounts_queues() -> None:
    text = edit('queues = ["acme-billing"]', 'queues = ["acme-billing", "acme-bills"]')
    assert one_problem(text) == (
        'floor.toml: desks.D07.queues[1]: unknown queue "acme-bills" '
        "(queues: acme-billing, acme-moves)"
    )


def test_queue_of_another_account() -> None:
    text = edit('queues = ["acme-billing"]', 'queues = ["tel-tech"]')
    assert one_problem(text) == (
        'floor.toml: desks.D07.queues[0]: queue "tel-tech" belongs to account "tel", '
        'not to this desk\'s account "acme"'
    )


def test_queue_listed_twice() -> None:
    text = edit('queues = ["acme-billing"]', 'queues = ["acme-billing", "acme-billing"]')
    assert one_problem(text) == (
        'floor.toml: desks.D07.queues[1]: queue "acme-billing" is listed twice'
    )


def test_queues_not_a_list() -> None:
    text = edit('queues = ["acme-billing"]', 'queues = "acme-billing"')
    assert one_problem(text) == (
        'floor.toml: desks.D07.queues: must be a list of names, e.g. ["a", "b"], not a string'
    )


def test_unknown_account_on_desk_and_queue() -> None:
    text = edit('account = "acme"\nagent = "a2"', 'account = "acmee"\nagent = "a2"')
    text = edit('[queues.tel-tech]\naccount = "tel"', '[queues.tel-tech]\naccount = "tell"', text)
    assert problems(text) == [
        'floor.toml: queues.tel-tech.account: unknown account "tell" (accounts: acme, tel)',
        'floor.toml: desks.D07.account: unknown account "acmee" (accounts: acme, tel)',
    ]


def test_a_broken_definition_is_reported_once() -> None:
    text = edit('name = "Tom Wright"', "")
    text = edit('[queues.acme-moves]\naccount = "acme"', "[queues.acme-moves]", text)
    assert problems(text) == [
        "floor.toml: queues.acme-moves.account: missing: the account whose calls it holds",
        "floor.toml: agents.a2.name: missing: the agent's name, shown to supervisors",
    ]


def test_queue_of_an_account_without_queues() -> None:
    text = edit(
        'account = "acme"\nagent = "a2"\nqueues = ["acme-billing"]',
        'account = "tel"\nagent = "a2"\nqueues = ["tel-sales"]',
    )
    text = edit('[queues.tel-tech]\naccount = "tel"\n', "", text)
    assert one_problem(text) == (
        'floor.toml: desks.D07.queues[0]: unknown queue "tel-sales" (account "tel" has no queues)'
    )


def test_unknown_agent_among_many_suggests_the_nearest() -> None:
    agents = "".join(f'\n[agents.e10{i:02d}]\nname = "Agent {i}"\n' for i in range(20))
    text = edit('agent = "a2"', 'agent = "E1007"', BASE + agents)
    assert one_problem(text) == (
        'floor.toml: desks.D07.agent: unknown agent "E1007" (did you mean "e1007"?)'
    )
    text = edit('agent = "a2"', 'agent = "zz"', BASE + agents)
    assert one_problem(text) == (
        'floor.toml: desks.D07.agent: unknown agent "zz" (22 agents are defined, none like it)'
    )


def test_console_on_two_desks() -> None:
    text = edit('console = "desk-07"', 'console = "desk-01"')
    assert one_problem(text) == (
        'floor.toml: desks.D07.console: console "desk-01" is already on desks.D01: '
        "a console sits on one desk"
    )


def test_bad_console_id() -> None:
    text = edit('console = "desk-07"', 'console = "desk 07"')
    assert one_problem(text) == (
        'floor.toml: desks.D07.console: "desk 07" is not a console device id '
        "(letters, digits, -._:)"
    )


def test_agent_on_two_desks() -> None:
    text = edit('agent = "a2"', 'agent = "a1"')
    assert one_problem(text) == (
        'floor.toml: desks.D07.agent: agent "a1" (Priya Shah) already sits at desks.D01'
    )


def test_two_desks_in_one_place() -> None:
    text = edit("row = 1\ncol = 2", "row = 1\ncol = 1")
    assert (
        one_problem(text) == "floor.toml: desks.D07: row 1, col 1 is already the place of desks.D01"
    )
    unplaced = edit("row = 1\ncol = 2", "row = 0\ncol = 0")
    unplaced = edit("row = 1\ncol = 1", "", unplaced)
    assert parse_floor(unplaced).desks["D07"].row == 0


def test_every_problem_is_reported_at_once() -> None:
    text = edit("code = 7", "code = 1")
    text = edit('console = "desk-07"', 'console = "desk-01"', text)
    text = edit('agent = "a2"', 'agent = "a1"', text)
    text = edit('queues = ["acme-billing"]', 'queues = ["tel-tech"]', text)
    found = problems(text)
    assert [p.split(": ")[1] for p in found] == [
        "accounts.acme.codes[1].code",
        "desks.D07.console",
        "desks.D07.agent",
        "desks.D07.queues[0]",
    ]
    with pytest.raises(FloorConfigError) as info:
        parse_floor(text, "floor.toml")
    assert str(info.value).startswith("4 problems in the floor configuration:\n  floor.toml: ")


# --- the watcher


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def put(path: Path, text: str, clock: Clock) -> None:
    """Writes the file as it would be some seconds into the past, then moves time on."""
    path.write_text(text)
    clock.now += 10
    os.utime(path, (clock.now - 5, clock.now - 5))


def test_watcher_loads_reloads_and_keeps_the_last_good_floor(tmp_path: Path) -> None:
    path = tmp_path / "floor.toml"
    clock = Clock()
    watcher = FloorWatcher(path, clock=clock)
    put(path, BASE, clock)

    first = watcher.check()
    assert first.floor is not None and first.changed and not first.errors
    assert watcher.check() == dataclasses.replace(first, changed=False)

    put(path, edit('name = "Tom Wright"', 'name = "Tom Wright-Smith"'), clock)
    second = watcher.check()
    assert second.changed and second.floor is not None
    assert second.floor.agents["a2"].name == "Tom Wright-Smith"

    put(path, edit("code = 7", "code = 1"), clock)
    bad = watcher.check()
    assert bad.floor is second.floor and not bad.changed
    assert bad.errors_changed
    assert bad.errors == (
        (
            f"{path}: accounts.acme.codes[1].code: code 1 is already "
            "accounts.acme.codes[0]: each code is keyed at the desk, "
            "so it must be unique"
        ),
    )
    again = watcher.check()
    assert again.errors == bad.errors and not again.errors_changed

    os.utime(path, (clock.now, clock.now - 2))  # touched, still bad: not reported again
    clock.now += 5
    assert not watcher.check().errors_changed

    put(path, BASE, clock)
    fixed = watcher.check()
    assert fixed.changed and fixed.errors == () and fixed.errors_changed
    assert fixed.floor is not None and fixed.floor.agents["a2"].name == "Tom Wright"


def test_watcher_before_any_good_floor(tmp_path: Path) -> None:
    path = tmp_path / "floor.toml"
    clock = Clock()
    watcher = FloorWatcher(path, clock=clock)
    missing = watcher.check()
    assert missing.floor is None and missing.errors_changed
    assert missing.errors == (f"{path}: cannot read: no such file or directory",)
    assert not watcher.check().errors_changed

    put(path, "[floor\n", clock)
    bad = watcher.check()
    assert bad.floor is None and bad.errors_changed
    assert bad.errors[0].startswith(f"{path}: line 1, column 7: TOML syntax:")

    put(path, BASE, clock)
    good = watcher.check()
    assert good.floor is not None and good.changed and good.errors_changed


def test_watcher_survives_the_file_going_away(tmp_path: Path) -> None:
    path = tmp_path / "floor.toml"
    clock = Clock()
    watcher = FloorWatcher(path, clock=clock)
    put(path, BASE, clock)
    floor = watcher.check().floor
    path.unlink()
    gone = watcher.check()
    assert gone.floor is floor and gone.errors_changed
    assert gone.errors == (f"{path}: cannot read: no such file or directory",)
    put(path, BASE, clock)  # the same content back: good again, but nothing new to sync
    back = watcher.check()
    assert back.floor is not None and not back.changed
    assert back.errors == () and back.errors_changed


def test_watcher_waits_for_a_file_being_written(tmp_path: Path) -> None:
    path = tmp_path / "floor.toml"
    clock = Clock()
    watcher = FloorWatcher(path, clock=clock, settle_s=1.0)
    put(path, BASE, clock)
    floor = watcher.check().floor
    assert floor is not None

    half = edit('name = "Tom Wright"', 'name = "Tom Wright-Smith"')[:600]
    path.write_text(half)
    os.utime(path, (clock.now, clock.now - 0.2))  # written 0.2 s ago: not yet taken
    waiting = watcher.check()
    assert waiting.floor is floor and not waiting.changed and not waiting.errors

    clock.now += 2  # it stayed half-written: reported, the floor kept
    half_read = watcher.check()
    assert half_read.floor is floor and half_read.errors_changed
    assert "TOML syntax" in half_read.errors[0] or "missing" in half_read.errors[0]

    path.write_text(edit('name = "Tom Wright"', 'name = "Tom Wright-Smith"'))
    os.utime(path, (clock.now, clock.now - 0.1))
    assert watcher.check().floor is floor  # settling
    forced = watcher.check(force=True)  # an operator's reload does not wait
    assert forced.changed and forced.floor is not None
    assert forced.floor.agents["a2"].name == "Tom Wright-Smith"


def test_watcher_on_a_directory_does_not_raise(tmp_path: Path) -> None:
    result = FloorWatcher(tmp_path).check()
    assert result.floor is None
    assert result.errors == (f"{tmp_path}: is a directory, not a floor file",)


# --- generated floors


@pytest.mark.parametrize("n", [1, 8, 24, 48])
def test_demo_floor(n: int) -> None:
    floor = parse_floor(demo_floor_toml(n))
    ids = [f"desk-{i:02d}" for i in range(1, n + 1)]
    assert [d.console for d in floor.desks.values()] == ids
    assert max(d.col for d in floor.desks.values()) == min(n, 6)
    assert max(d.row for d in floor.desks.values()) == (n + 5) // 6
    assert len({a.name for a in floor.agents.values()}) == n
    used = {d.account for d in floor.desks.values()}
    assert used == ({"volt"} if n == 1 else {"volt", "northwind", "harbour"})
    for desk in floor.desks.values():
        assert desk.agent is not None
        assert floor.console_config(desk.console) == floor.accounts[desk.account].console_config


def test_demo_floor_beyond_99_consoles() -> None:
    floor = parse_floor(demo_floor_toml(120))
    assert floor.desks["desk-100"].console == "desk-100"
    with pytest.raises(ValueError):
        demo_floor_toml(1000)


def test_dump_floor_round_trips_the_example() -> None:
    floor = load_floor(EXAMPLE)
    again = parse_floor(dump_floor(floor))
    assert again == dataclasses.replace(floor, sha256=again.sha256)


# --- random valid floors

NAMES = st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True)
DEVICE_IDS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,20}", fullmatch=True)
ASCII = st.characters(min_codepoint=32, max_codepoint=126)


def shown(limit: int) -> st.SearchStrategy[str]:
    return st.text(ASCII, min_size=1, max_size=limit).filter(lambda s: bool(s.strip()))


@st.composite
def accounts(draw: st.DrawFn, key: str) -> Account:
    mode = draw(st.sampled_from(cfgcheck.MODES))
    needs_fallback = mode in ("mandatory_timeout", "forced_timeout")
    numbers = draw(
        st.lists(st.integers(1, 99), min_size=int(needs_fallback), max_size=8, unique=True)
    )
    codes = tuple(WrapCode(n, draw(shown(39)), draw(st.booleans())) for n in numbers)
    fallback = draw(st.sampled_from(numbers)) if needs_fallback else 0
    acw_min = 1 if mode in ("mandatory_timeout", "forced_timeout", "agent_requested") else 0
    sl = {
        "target_pct": draw(st.integers(1, 100)),
        "threshold_s": draw(st.integers(1, 3600)),
        "amber_pct": draw(st.integers(0, 50)),
    }
    name = draw(shown(39))
    hotline = draw(st.text(ASCII, max_size=32))
    config: dict[str, Any] = {
        "account": name,
        "mode": mode,
        "acw_s": draw(st.integers(acw_min, 7200)),
        "fallback": fallback,
        "codes": [[c.code, c.label, c.failure_demand] for c in codes],
        "sl": sl,
        "brightness": draw(st.integers(0, 100)),
        "hotline": hotline,
        "severity": draw(st.integers(1, 4)),
        "keepalive_s": draw(st.integers(5, 300)),
        "heartbeat_s": draw(st.integers(1, 3600)),
    }
    policy = {"repeat_days": 3, "deadlines": {"urgent": {"ack": "5m", "resolve": "1h"}}}
    extra = draw(st.sampled_from([{}, {"escalation": policy}]))
    return Account(
        key=key,
        name=name,
        codes=codes,
        console_config=config,
        sl_target_pct=sl["target_pct"],
        sl_threshold_s=sl["threshold_s"],
        sl_amber_pct=sl["amber_pct"],
        short_abandon_s=draw(st.integers(0, 3600)),
        sl_variant=draw(st.sampled_from(SL_VARIANTS)),
        shrinkage_pct=draw(st.integers(0, 90)),
        hotline=hotline,
        extra=extra,
    )


@st.composite
def floors(draw: st.DrawFn) -> Floor:
    keys = draw(st.lists(NAMES, min_size=1, max_size=3, unique=True))
    accts = {k: draw(accounts(k)) for k in keys}
    queues = {
        q: Queue(q, draw(st.sampled_from(keys)))
        for q in draw(st.lists(NAMES, max_size=6, unique=True))
    }
    agents = {a: Agent(a, draw(shown(30))) for a in draw(st.lists(NAMES, max_size=8, unique=True))}
    desk_names = draw(st.lists(NAMES, max_size=8, unique=True))
    n = len(desk_names)
    consoles = draw(st.lists(DEVICE_IDS, min_size=n, max_size=n, unique=True))
    seated = draw(st.permutations([*agents, *([None] * n)]))
    places = draw(
        st.lists(
            st.tuples(st.integers(1, 999), st.integers(1, 999)), min_size=n, max_size=n, unique=True
        )
    )
    desks = {}
    for i, name in enumerate(desk_names):
        account = draw(st.sampled_from(keys))
        own = [q for q, queue in queues.items() if queue.account == account]
        row, col = places[i] if draw(st.booleans()) else (0, 0)
        desks[name] = Desk(
            name=name,
            console=consoles[i],
            account=account,
            agent=seated[i],
            queues=tuple(draw(st.lists(st.sampled_from(own), unique=True)) if own else ()),
            row=row,
            col=col,
        )
    return Floor(draw(shown(40)), accts, queues, agents, desks)


@settings(max_examples=150, deadline=None)
@given(floors())
def test_random_valid_floors_round_trip(floor: Floor) -> None:
    parsed = parse_floor(dump_floor(floor))
    assert parsed == dataclasses.replace(floor, sha256=parsed.sha256)
