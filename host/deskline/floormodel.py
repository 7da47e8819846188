"""The floor as the daemon sees it: who sits where, for which client.

Plain frozen data, built from the floor configuration file
(`deskline.floorconfig`) and synced into the store; nothing here does IO.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any


@dataclass(frozen=True)
class WrapCode:
    code: int
    label: str
    failure_demand: bool = False


@dataclass(frozen=True)
class Account:
    """A client account: its contract and the config its consoles run."""

    key: str  # the TOML table name, e.g. "acme"
    name: str  # shown at the desk (<= 39 bytes)
    codes: tuple[WrapCode, ...]
    # The console config for this account, as firmware/cfgcheck.py checks
    # it, without "version" (the store numbers rendered configs).
    console_config: dict[str, Any]
    sl_target_pct: int = 80
    sl_threshold_s: int = 20
    sl_amber_pct: int = 5
    short_abandon_s: int = 5
    sl_variant: str = "short_excluded"  # which service-level formula the contract uses
    shrinkage_pct: int = 30  # for staffing checks: paid time not on the phones
    hotline: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # later issues' settings


@dataclass(frozen=True)
class Queue:
    name: str
    account: str  # Account.key


@dataclass(frozen=True)
class Agent:
    id: str
    name: str


@dataclass(frozen=True)
class Desk:
    name: str
    console: str  # the console's device_id
    account: str  # Account.key
    agent: str | None = None  # Agent.id
    queues: tuple[str, ...] = ()
    row: int = 0
    col: int = 0


@dataclass(frozen=True)
class Floor:
    name: str
    accounts: dict[str, Account]
    queues: dict[str, Queue]
    agents: dict[str, Agent]
    desks: dict[str, Desk]
    sha256: str = ""  # of the source file, to tell a changed file
    # Floor-wide tables of later features, as read: "help" (the supervisor-help
    # policy, checked by deskline.escpolicy).
    extra: dict[str, Any] = field(default_factory=dict)

    def desk_for_console(self, device_id: str) -> Desk | None:
        return self._desk_by_console.get(device_id)

    @cached_property
    def _desk_by_console(self) -> dict[str, Desk]:
        # Asked for every desk on every beat of the floor view: a scan would
        # make that quadratic in the floor's size.
        out: dict[str, Desk] = {}
        for desk in self.desks.values():
            out.setdefault(desk.console, desk)
        return out

    def console_config(self, device_id: str) -> dict[str, Any] | None:
        """The config (without version) the console should run, or None."""
        desk = self.desk_for_console(device_id)
        if desk is None:
            return None
        return dict(self.accounts[desk.account].console_config)
