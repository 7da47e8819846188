"""The daemon's durable store: SQLite in WAL mode, one transaction per batch.

Exactly-once delivery is decided here, not in the daemon: a console's event
is taken only if its seq follows the acked one, the new acked seq is written
in the same transaction as the events, and the daemon acks what `apply`
returns only after that transaction committed.  A crash before the commit
loses nothing the console was told is safe; a crash after it only makes the
console resend events the store then drops as duplicates.

The hot path keeps each console's (journal epoch, acked seq) in memory so a
batch costs no SELECT; the cache is put back when a transaction fails, so the
store and its cache never disagree.

Threads: every public method takes one lock around the one connection, so
the daemon may call `hello` from its link threads while its worker calls
`apply`.  `hello` must not overtake events of the same console that are
still waiting for `apply` (see `Store.hello`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deskline.errors import DesklineError
from deskline.firmware import cfgcheck
from deskline.floormodel import Floor
from deskline.wire import NAMES, codec

log = logging.getLogger("deskline.store")

# Marks the file as ours (PRAGMA application_id), so a stray SQLite file given
# as the database is refused rather than filled with tables.
APPLICATION_ID = 0x44534B4C  # "DSKL"
MAX_CONFIG_BYTES = 8192  # firmware/config.py MAX_BYTES
_U32 = 0xFFFFFFFF
_SYNC_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
ESC_TERMINAL = (codec.ESC_RESOLVED, codec.ESC_CANCELLED)
REBOOT_REASONS = {
    0x01: "power_on",
    0x02: "host_reboot",
    0x03: "repl_exit",
    0x04: "app_update",
    0x05: "firmware_update",
    0x06: "config_reset",
    0x80: "unexpected",
    0x81: "crash",
    0x82: "watchdog",
}
HEARTBEAT_FIELDS: tuple[str, ...] = tuple(NAMES[codec.HEARTBEAT][1])
STATUS_FIELDS: tuple[str, ...] = tuple(NAMES[codec.STATUS][1])
_STATUS_TEXT = frozenset({"line0", "line1", "line2", "line3"})

# --- schema -------------------------------------------------------------------
# Each step is applied in its own transaction and numbered by PRAGMA
# user_version; a step is never edited once released, only followed by a new
# one.  Derived rows carry desk/agent/account as text, as they were when the
# event arrived: the floor may be re-seated later, history must not move.
MIGRATIONS: list[tuple[str, ...]] = [
    (  # 1: the first release
        f"PRAGMA application_id = {APPLICATION_ID}",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT",
        """CREATE TABLE accounts (
            key TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            codes TEXT NOT NULL,  -- JSON [[code, label, failure_demand], ...]
            sl_target_pct INTEGER NOT NULL,
            sl_threshold_s INTEGER NOT NULL,
            sl_amber_pct INTEGER NOT NULL,
            short_abandon_s INTEGER NOT NULL,
            hotline TEXT NOT NULL,
            extra TEXT NOT NULL  -- JSON
        ) STRICT""",
        "CREATE TABLE queues (name TEXT PRIMARY KEY, account TEXT NOT NULL) STRICT",
        "CREATE TABLE agents (id TEXT PRIMARY KEY, name TEXT NOT NULL) STRICT",
        """CREATE TABLE desks (
            name TEXT PRIMARY KEY,
            console TEXT NOT NULL UNIQUE,
            account TEXT NOT NULL,
            agent TEXT,
            row INTEGER NOT NULL,
            col INTEGER NOT NULL
        ) STRICT""",
        """CREATE TABLE desk_queues (
            desk TEXT NOT NULL, queue TEXT NOT NULL, PRIMARY KEY (desk, queue)
        ) STRICT, WITHOUT ROWID""",
        # AUTOINCREMENT: a version number is never handed out twice, even
        # after rows go, so a console's reported version names one config.
        """CREATE TABLE config_versions (
            version INTEGER PRIMARY KEY AUTOINCREMENT,
            account TEXT NOT NULL,
            created REAL NOT NULL,
            sha256 TEXT NOT NULL,  -- of the config without "version"
            body BLOB NOT NULL  -- the JSON sent to the console, "version" included
        ) STRICT""",
        "CREATE INDEX config_versions_account ON config_versions (account, version)",
        """CREATE TABLE consoles (
            id INTEGER PRIMARY KEY,
            device_id TEXT NOT NULL UNIQUE,
            journal_epoch INTEGER NOT NULL,
            acked_seq INTEGER NOT NULL,
            first_seen REAL NOT NULL,
            port TEXT NOT NULL DEFAULT '',
            connected INTEGER NOT NULL DEFAULT 0,
            last_hello REAL,
            last_disconnect REAL,
            last_event REAL,
            board TEXT NOT NULL DEFAULT '',
            fw_version TEXT NOT NULL DEFAULT '',
            app_version TEXT NOT NULL DEFAULT '',
            boot_count INTEGER NOT NULL DEFAULT 0,
            reset_cause INTEGER,
            reboot_reason INTEGER,
            boots INTEGER NOT NULL DEFAULT 0,
            last_boot REAL,
            config_version INTEGER NOT NULL DEFAULT 0,
            config_applied REAL,
            last_heartbeat REAL,
            uptime_ms INTEGER,
            free_heap INTEGER,
            min_free_heap INTEGER,
            journal_depth INTEGER,
            rx_frames INTEGER,
            rx_errors INTEGER,
            rx_dropped INTEGER,
            tx_frames INTEGER,
            retransmits INTEGER,
            dropped_telemetry INTEGER,
            refused_events INTEGER,
            torn_records INTEGER
        ) STRICT""",
        """CREATE TABLE journal_epochs (
            console_id INTEGER NOT NULL,
            journal_epoch INTEGER NOT NULL,
            started REAL NOT NULL,
            start_acked INTEGER NOT NULL,
            end_acked INTEGER,  -- NULL while current: consoles.acked_seq holds it
            reason TEXT NOT NULL,
            PRIMARY KEY (console_id, journal_epoch)
        ) STRICT, WITHOUT ROWID""",
        """CREATE TABLE hellos (
            id INTEGER PRIMARY KEY,
            console_id INTEGER NOT NULL,
            at REAL NOT NULL,
            port TEXT NOT NULL,
            journal_epoch INTEGER NOT NULL,
            boot_count INTEGER NOT NULL,
            uptime_ms INTEGER NOT NULL,
            next_seq INTEGER NOT NULL,
            first_unacked INTEGER NOT NULL,
            journal_depth INTEGER NOT NULL,
            config_version INTEGER NOT NULL,
            reset_cause INTEGER NOT NULL,
            reboot_reason INTEGER NOT NULL,
            fw_version TEXT NOT NULL,
            app_version TEXT NOT NULL
        ) STRICT""",
        # Clustered on the dedupe key: a console's events are one range.
        """CREATE TABLE events (
            console_id INTEGER NOT NULL,
            journal_epoch INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            uptime_ms INTEGER NOT NULL,
            epoch INTEGER NOT NULL,
            kind INTEGER NOT NULL,
            a INTEGER NOT NULL,
            b INTEGER NOT NULL,
            c INTEGER NOT NULL,
            ref INTEGER NOT NULL,
            text TEXT NOT NULL,
            received REAL NOT NULL,
            PRIMARY KEY (console_id, journal_epoch, seq)
        ) STRICT, WITHOUT ROWID""",
        """CREATE TABLE telemetry (
            id INTEGER PRIMARY KEY,
            console_id INTEGER NOT NULL,
            at REAL NOT NULL,
            {}
        ) STRICT""".format(",\n".join(f"{n} INTEGER NOT NULL" for n in HEARTBEAT_FIELDS)),
        "CREATE INDEX telemetry_console_at ON telemetry (console_id, at)",
        """CREATE TABLE status (
            console_id INTEGER PRIMARY KEY,
            at REAL NOT NULL,
            {}
        ) STRICT""".format(
            ",\n".join(
                f"{n} {'TEXT' if n in _STATUS_TEXT else 'INTEGER'} NOT NULL" for n in STATUS_FIELDS
            )
        ),
        """CREATE TABLE logs (
            id INTEGER PRIMARY KEY,
            device_id TEXT NOT NULL,
            at REAL NOT NULL,
            level INTEGER NOT NULL,
            text TEXT NOT NULL
        ) STRICT""",
        """CREATE TABLE counters (
            device TEXT NOT NULL,  -- '' for the daemon-wide totals
            name TEXT NOT NULL,
            value INTEGER NOT NULL,
            PRIMARY KEY (device, name)
        ) STRICT, WITHOUT ROWID""",
        """CREATE TABLE calls (
            console_id INTEGER NOT NULL,
            journal_epoch INTEGER NOT NULL,
            seq INTEGER NOT NULL,  -- the call's id: the seq of its CALL_START
            acd_call_id TEXT NOT NULL,
            source INTEGER NOT NULL,
            confirmed_by INTEGER,  -- the second source, when one confirmed it
            confirmed REAL,
            started REAL NOT NULL,
            ended REAL,
            end_source INTEGER,
            talk_s INTEGER,
            code INTEGER,
            wrapup_seq INTEGER,
            desk TEXT,
            agent TEXT,
            account TEXT,
            PRIMARY KEY (console_id, journal_epoch, seq)
        ) STRICT""",
        """CREATE TABLE wrapups (
            console_id INTEGER NOT NULL,
            journal_epoch INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            call_seq INTEGER NOT NULL,
            code INTEGER NOT NULL,
            acw_s INTEGER NOT NULL,
            how INTEGER NOT NULL,
            at REAL NOT NULL,
            desk TEXT,
            agent TEXT,
            account TEXT,
            PRIMARY KEY (console_id, journal_epoch, seq)
        ) STRICT""",
        """CREATE TABLE escalations (
            console_id INTEGER NOT NULL,
            journal_epoch INTEGER NOT NULL,
            seq INTEGER NOT NULL,  -- the escalation's id: the seq of its ESC_RAISE
            call_seq INTEGER NOT NULL,
            acd_call_id TEXT NOT NULL,
            kind INTEGER NOT NULL,
            severity INTEGER NOT NULL,
            status INTEGER NOT NULL,
            ticket TEXT NOT NULL DEFAULT '',
            deadline REAL,
            raised REAL NOT NULL,
            updated REAL NOT NULL,
            desk TEXT,
            agent TEXT,
            account TEXT,
            PRIMARY KEY (console_id, journal_epoch, seq)
        ) STRICT""",
        """CREATE TABLE escalation_history (
            id INTEGER PRIMARY KEY,
            console_id INTEGER NOT NULL,
            journal_epoch INTEGER NOT NULL,
            esc_seq INTEGER NOT NULL,
            status INTEGER NOT NULL,
            at REAL NOT NULL,
            ticket TEXT NOT NULL DEFAULT '',
            deadline REAL,
            note TEXT NOT NULL DEFAULT ''
        ) STRICT""",
        (
            "CREATE INDEX escalation_history_esc ON escalation_history "
            "(console_id, journal_epoch, esc_seq)"
        ),
        """CREATE TABLE config_results (
            console_id INTEGER NOT NULL,
            journal_epoch INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            at REAL NOT NULL,
            applied INTEGER NOT NULL,
            version INTEGER NOT NULL,
            error TEXT NOT NULL,
            PRIMARY KEY (console_id, journal_epoch, seq)
        ) STRICT""",
    ),
    (  # 2: wrap-ups carry their label and failure-demand flag; report indexes
        "ALTER TABLE wrapups ADD COLUMN label TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE wrapups ADD COLUMN failure_demand INTEGER",  # NULL: code unknown
        # Back-fill from the account's codes as they stand now: the best
        # that is known for rows written before the columns existed.
        """UPDATE wrapups SET
            label = coalesce((
                SELECT json_extract(j.value, '$[1]') FROM accounts a, json_each(a.codes) j
                WHERE a.key = wrapups.account AND json_extract(j.value, '$[0]') = wrapups.code
            ), ''),
            failure_demand = (
                SELECT json_extract(j.value, '$[2]') FROM accounts a, json_each(a.codes) j
                WHERE a.key = wrapups.account AND json_extract(j.value, '$[0]') = wrapups.code
            )""",
        "CREATE INDEX calls_account_started ON calls (account, started)",
        "CREATE INDEX wrapups_account_at ON wrapups (account, at)",
        (
            "CREATE INDEX escalations_open ON escalations (console_id, status) "
            "WHERE status NOT IN (3, 5)"
        ),
    ),
    (  # 3: the ACD's calls, escalation SLA clocks and the delivery outbox
        # One row per ACD call (queue_log uniqueid), upserted as its events
        # arrive; replaying a file lands on the same rows.
        """CREATE TABLE acd_calls (
            uniqueid TEXT PRIMARY KEY,
            queue TEXT NOT NULL,
            account TEXT,
            callerid TEXT NOT NULL DEFAULT '',
            entered REAL NOT NULL,
            connected REAL,
            ended REAL,
            -- waiting | answered | abandoned | timeout | empty | withdrawn
            -- | key | transferred | completed | closed-out
            outcome TEXT NOT NULL DEFAULT 'waiting',
            agent TEXT,
            hold_s INTEGER,
            talk_s INTEGER,
            origposition INTEGER,
            flagged TEXT NOT NULL DEFAULT '',  -- why it was closed out
            repeat_of TEXT,  -- the caller's previous contact within the window
            repeat_count INTEGER NOT NULL DEFAULT 0,  -- earlier contacts within it
            escalation TEXT  -- ext_id of an open escalation this repeat is about
        ) STRICT""",
        "CREATE INDEX acd_calls_caller ON acd_calls (account, callerid, entered)",
        "CREATE INDEX acd_calls_entered ON acd_calls (entered)",
        "ALTER TABLE escalations ADD COLUMN ext_id TEXT",  # the id the client sees
        "ALTER TABLE escalations ADD COLUMN queue TEXT",
        "ALTER TABLE escalations ADD COLUMN callerid TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE escalations ADD COLUMN repeat_count INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE escalations ADD COLUMN context TEXT",  # JSON as delivered
        "ALTER TABLE escalations ADD COLUMN ack_due REAL",
        "ALTER TABLE escalations ADD COLUMN resolve_due REAL",
        "ALTER TABLE escalations ADD COLUMN delivered REAL",
        "ALTER TABLE escalations ADD COLUMN acked REAL",
        "ALTER TABLE escalations ADD COLUMN resolved REAL",
        "ALTER TABLE escalations ADD COLUMN cancelled REAL",
        # '' | 'ack' | 'resolve' | 'ack,resolve': which deadlines were missed
        "ALTER TABLE escalations ADD COLUMN breached TEXT NOT NULL DEFAULT ''",
        "CREATE UNIQUE INDEX escalations_ext_id ON escalations (ext_id)",
        # The body is stored as sent: a retry resends the same bytes under
        # the same idempotency key, so the client can refuse a duplicate.
        """CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            idem_key TEXT NOT NULL UNIQUE,
            target TEXT NOT NULL,  -- account key, or 'supervisor' for floor help
            url TEXT NOT NULL,
            event TEXT NOT NULL,  -- trigger | cancel | ...
            ext_id TEXT NOT NULL,
            body BLOB NOT NULL,
            created REAL NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_try REAL NOT NULL,
            last_status INTEGER,
            last_error TEXT NOT NULL DEFAULT '',
            delivered REAL,
            gave_up REAL
        ) STRICT""",
        (
            "CREATE INDEX outbox_due ON outbox (next_try) "
            "WHERE delivered IS NULL AND gave_up IS NULL"
        ),
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: sqlite3.Connection, target: int = SCHEMA_VERSION, where: str = "") -> int:
    """Brings db up to schema `target`, one transaction per step.

    Each step re-reads user_version under the write lock, so two processes
    opening a fresh file at once do not both apply it.  Returns the version.
    """
    name = where or "the database"
    version = 0
    for step in range(1, target + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise DesklineError(
                    f"{name} has schema v{version}, newer than this deskline knows "
                    f"(v{SCHEMA_VERSION}): upgrade deskline, or give it another database"
                )
            if version == 0:
                app = db.execute("PRAGMA application_id").fetchone()[0]
                tables = db.execute(
                    "SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'"
                ).fetchone()[0]
                if app not in (0, APPLICATION_ID) or tables:
                    raise DesklineError(
                        f"{name} is not a deskline database (it already holds other "
                        "tables): give deskline a new file"
                    )
            elif db.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
                raise DesklineError(f"{name} is not a deskline database: give it a new file")
            if version < step:
                for sql in MIGRATIONS[step - 1]:
                    db.execute(sql)
                db.execute(f"PRAGMA user_version = {step}")
                version = step
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    if target == 0:
        version = db.execute("PRAGMA user_version").fetchone()[0]
    return int(version)


def connect(path: str | Path, synchronous: str = "FULL") -> sqlite3.Connection:
    """A connection with the store's pragmas (the bench opens its reference so).

    Transactions are explicit (isolation_level None): the store says where a
    batch begins and ends, the sqlite3 module must not guess.
    """
    mode = synchronous.upper()
    if mode not in _SYNC_MODES:
        raise ValueError(f"synchronous must be one of {', '.join(_SYNC_MODES)}, not {synchronous}")
    try:
        db = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, cached_statements=256
        )
        db.execute("PRAGMA busy_timeout = 5000")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = " + mode)
    except sqlite3.DatabaseError as err:
        raise DesklineError(f"cannot open the database {path}: {err}") from err
    return db


# --- the daemon's view ----------------------------------------------------------
@dataclass(slots=True)
class EventRow:
    """One EVENT frame from a console."""

    device_id: str
    seq: int
    uptime_ms: int
    epoch: int  # console's wall clock (s), 0 = unknown
    kind: int
    a: int
    b: int
    c: int
    ref: int
    text: str
    received: float  # host time.time() when it arrived


@dataclass
class Batch:
    """What the daemon collected since the last commit."""

    events: list[EventRow] = field(default_factory=list)
    # device_id, host time, HEARTBEAT fields (names as in deskline.wire.NAMES)
    heartbeats: list[tuple[str, float, dict[str, int]]] = field(default_factory=list)
    # the latest STATUS per device: host time, STATUS fields
    statuses: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    # LOG frames: device_id, host time, level, text
    logs: list[tuple[str, float, int, str]] = field(default_factory=list)
    # device_id (None: daemon-wide), counter name, increment
    counters: list[tuple[str | None, str, int]] = field(default_factory=list)

    def add(self, more: Batch) -> None:
        """Takes more's rows after this batch's own (a later STATUS wins)."""
        self.events.extend(more.events)
        self.heartbeats.extend(more.heartbeats)
        self.statuses.update(more.statuses)
        self.logs.extend(more.logs)
        self.counters.extend(more.counters)

    def is_empty(self) -> bool:
        return not (self.events or self.heartbeats or self.statuses or self.logs or self.counters)


@dataclass
class HelloOutcome:
    console_id: int
    journal_epoch: int
    acked_seq: int  # ack this at once: the console drops what the store holds
    config_version: int  # the version the console reports it runs
    new_epoch: bool  # the console's journal restarted: its seqs went back
    gap: int  # events the console believes acked that the store never had
    notes: list[str]  # sentences for the daemon's log


class _Console:
    """The hot path's view of a console: what apply() needs without a SELECT."""

    __slots__ = ("acked", "device_id", "epoch", "id")

    def __init__(self, cid: int, device_id: str, epoch: int, acked: int) -> None:
        self.id = cid
        self.device_id = device_id
        self.epoch = epoch
        self.acked = acked


_NO_DESK: tuple[str | None, str | None, str | None] = (None, None, None)
_EV_PRESS = codec.EV_PRESS
_EV_CALL_START = codec.EV_CALL_START
_EV_CALL_END = codec.EV_CALL_END
_EV_WRAPUP = codec.EV_WRAPUP
_EV_ESC_RAISE = codec.EV_ESC_RAISE
_EV_ESC_CANCEL = codec.EV_ESC_CANCEL
_EV_BOOT = codec.EV_BOOT
_EV_CONFIG = codec.EV_CONFIG
_EV_JOURNAL_GAP = codec.EV_JOURNAL_GAP
_EV_LOST = codec.EV_LOST
_DERIVED = frozenset(
    {
        _EV_CALL_START,
        _EV_CALL_END,
        _EV_WRAPUP,
        _EV_ESC_RAISE,
        _EV_ESC_CANCEL,
        _EV_BOOT,
        _EV_CONFIG,
        _EV_JOURNAL_GAP,
        _EV_LOST,
    }
)
_EVENT_COLS = "seq, uptime_ms, epoch, kind, a, b, c, ref, text, received"

# Statements are module constants so the sqlite3 statement cache finds them.
_INSERT_EVENT = (
    "INSERT INTO events (console_id, journal_epoch, seq, uptime_ms, epoch, kind, a, b, c, ref, "
    "text, received) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPDATE_ACKED = "UPDATE consoles SET acked_seq = ?, last_event = ? WHERE id = ?"
_BUMP_COUNTER = (
    "INSERT INTO counters (device, name, value) VALUES (?, ?, ?) "
    "ON CONFLICT (device, name) DO UPDATE SET value = value + excluded.value"
)
_INSERT_TELEMETRY = (
    f"INSERT INTO telemetry (console_id, at, {', '.join(HEARTBEAT_FIELDS)}) "
    f"VALUES (?, ?, {', '.join('?' for _ in HEARTBEAT_FIELDS)})"
)
_HB_CONSOLE = (
    "uptime_ms",
    "free_heap",
    "min_free_heap",
    "journal_depth",
    "rx_frames",
    "rx_errors",
    "rx_dropped",
    "tx_frames",
    "retransmits",
    "dropped_telemetry",
    "refused_events",
    "torn_records",
)
_HB_INDEX = tuple(HEARTBEAT_FIELDS.index(n) for n in _HB_CONSOLE)
_UPDATE_HEARTBEAT = (
    f"UPDATE consoles SET last_heartbeat = ?, {', '.join(f'{n} = ?' for n in _HB_CONSOLE)} "
    "WHERE id = ?"
)
_UPSERT_STATUS = (
    f"INSERT OR REPLACE INTO status (console_id, at, {', '.join(STATUS_FIELDS)}) "
    f"VALUES (?, ?, {', '.join('?' for _ in STATUS_FIELDS)})"
)
_INSERT_LOG = "INSERT INTO logs (device_id, at, level, text) VALUES (?, ?, ?, ?)"
_KEY = "console_id = ? AND journal_epoch = ? AND seq = ?"
_INSERT_CALL = (
    "INSERT INTO calls (console_id, journal_epoch, seq, acd_call_id, source, started, desk, "
    "agent, account) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_CONFIRM_CALL = (
    "UPDATE calls SET confirmed_by = coalesce(confirmed_by, ?), confirmed = coalesce(confirmed, ?),"
    " acd_call_id = CASE acd_call_id WHEN '' THEN ? ELSE acd_call_id END WHERE " + _KEY
)
_END_CALL = (
    "UPDATE calls SET ended = coalesce(ended, ?), end_source = coalesce(end_source, ?), "
    "talk_s = coalesce(talk_s, ?) WHERE " + _KEY
)
_INSERT_WRAPUP = (
    "INSERT INTO wrapups (console_id, journal_epoch, seq, call_seq, code, acw_s, how, at, desk, "
    "agent, account, label, failure_demand) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_CODE_CALL = "UPDATE calls SET code = ?, wrapup_seq = ? WHERE " + _KEY
_INSERT_ESC = (
    "INSERT INTO escalations (console_id, journal_epoch, seq, call_seq, acd_call_id, kind, "
    "severity, status, raised, updated, desk, agent, account) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)"
)
_INSERT_ESC_HISTORY = (
    "INSERT INTO escalation_history (console_id, journal_epoch, esc_seq, status, at, ticket, "
    "deadline, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_CANCEL_ESC = (
    "UPDATE escalations SET status = 5, updated = ? WHERE " + _KEY + " AND status NOT IN (3, 5)"
)
_INSERT_CONFIG_RESULT = (
    "INSERT INTO config_results (console_id, journal_epoch, seq, at, applied, version, error) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def _event_values(st: _Console, ev: EventRow) -> tuple[Any, ...]:
    """The events row for ev; ValueError if a field is not what the wire gives.

    Type checks are exact (`type(x) is int`) because a bool or a float would
    be stored as something no reader expects.
    """
    u, e, k, a, b, c, r, text, rec = (
        ev.uptime_ms,
        ev.epoch,
        ev.kind,
        ev.a,
        ev.b,
        ev.c,
        ev.ref,
        ev.text,
        ev.received,
    )
    if not (
        type(u) is int
        and type(e) is int
        and type(k) is int
        and type(a) is int
        and type(b) is int
        and type(c) is int
        and type(r) is int
        and 0 <= u <= _U32
        and 0 <= e <= _U32
        and 0 <= k <= 0xFF
        and 0 <= a <= 0xFF
        and 0 <= b <= 0xFFFF
        and 0 <= c <= 0xFFFF
        and 0 <= r <= _U32
    ):
        raise ValueError("a field is not a wire integer in range")
    if type(rec) is not float:
        if type(rec) is not int:
            raise ValueError("received is not a time")
        rec = float(rec)
    if not math.isfinite(rec):
        raise ValueError("received is not a time")
    if type(text) is not str:
        raise ValueError("text is not a str")
    if text:
        try:
            text.encode()
        except UnicodeEncodeError:
            # Lone surrogates cannot be stored; the rest of the text can.
            text = text.encode("utf-8", "replace").decode()
    return (st.id, st.epoch, ev.seq, u, e, k, a, b, c, r, text, rec)


def _ints(values: Iterable[Any]) -> bool:
    return all(type(v) is int and -(2**63) <= v < 2**63 for v in values)


def _time(value: Any) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):
        raise ValueError(f"not a time: {value!r}")
    return float(value)


_READ_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)
_READ_PRAGMAS = frozenset({"table_info", "table_xinfo", "index_list", "index_info"})


def _read_only(action: int, arg1: str | None, arg2: str | None, *_: object) -> int:
    if action in _READ_ACTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and (arg2 is None or arg1 in _READ_PRAGMAS):
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def _lean(cfg: dict[str, Any]) -> dict[str, Any]:
    """The config without fields that equal the console's own defaults.

    The console fills them from the same cfgcheck.DEFAULT, so the meaning is
    unchanged; the JSON it must parse on a ~100 KB heap gets smaller.
    """
    default = cfgcheck.DEFAULT
    return {k: v for k, v in cfg.items() if k == "version" or default.get(k, _MISSING) != v}


_MISSING = object()


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class Store:
    """The daemon's durable state; one instance per database file."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        self.path = str(path)
        self._lock = threading.RLock()
        self._db = connect(path, synchronous)
        try:
            migrate(self._db, where=self.path)
        except sqlite3.DatabaseError as err:
            self._db.close()
            raise DesklineError(f"cannot use the database {self.path}: {err}") from err
        except BaseException:
            self._db.close()
            raise
        self._cur = self._db.cursor()
        self._consoles: dict[str, _Console] = {}
        self._desks: dict[str, tuple[str | None, str | None, str | None]] = {}
        self._codes: dict[str, dict[int, tuple[str, bool]]] = {}
        for cid, device_id, epoch, acked in self._db.execute(
            "SELECT id, device_id, journal_epoch, acked_seq FROM consoles"
        ):
            self._consoles[device_id] = _Console(cid, device_id, epoch, acked)
        self._load_floor()

    def close(self) -> None:
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("PRAGMA optimize")
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transactions -----------------------------------------------------------
    def _rollback(self) -> None:
        # The error that got us here is the one to report, not a failed rollback.
        with contextlib.suppress(sqlite3.Error):
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        """A write transaction for a feature module's own rows (outbox, ACD
        calls); committed on exit, rolled back on an exception.  Run it on
        the writer thread (`StoreWriter.call`), like every other write."""
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def _load_floor(self) -> None:
        self._desks = {
            console: (name, agent, account)
            for name, console, agent, account in self._db.execute(
                "SELECT name, console, agent, account FROM desks"
            )
        }
        self._codes = {}
        for key, codes in self._db.execute("SELECT key, codes FROM accounts"):
            self._codes[key] = {int(c): (str(lbl), bool(fd)) for c, lbl, fd in json.loads(codes)}

    # --- consoles ---------------------------------------------------------------
    def hello(self, device_id: str, fields: dict[str, Any], port: str, now: float) -> HelloOutcome:
        """Records a console's HELLO and settles its journal epoch; commits.

        The console's seqs only go back when its journal restarted (flash
        wiped, or another unit under the same id): then its events start a
        new journal epoch rather than being dropped as duplicates.  The
        boot count is not a sign of that: the console keeps it in RTC memory
        and restarts it at every power-on (firmware/bootinfo.py).

        Call it after the events of the console's previous connection went
        through apply(): an old event applied after a new epoch began would
        be taken as one of the new journal.
        """
        next_seq = int(fields["next_seq"])
        first_unacked = int(fields["first_unacked"])
        boot_count = int(fields.get("boot_count", 0))
        cfg = int(fields.get("config_version", 0))
        console_acked = max(first_unacked - 1, 0)
        notes: list[str] = []
        with self._lock:
            st = self._consoles.get(device_id)
            cur = self._cur
            cur.execute("BEGIN IMMEDIATE")
            try:
                if st is None:
                    cur.execute(
                        "INSERT INTO consoles (device_id, journal_epoch, acked_seq, first_seen) "
                        "VALUES (?, 1, 0, ?)",
                        (device_id, now),
                    )
                    cid = cur.lastrowid
                    assert cid is not None
                    epoch, acked = 1, 0
                    notes.append(f"{device_id}: first seen, on {port}")
                else:
                    cid, epoch, acked = st.id, st.epoch, st.acked
                new_epoch = False
                gap = 0
                if next_seq - 1 < acked:
                    reason = (
                        f"journal restarted: the console's next seq is {next_seq}, "
                        f"the store had acked {acked}"
                    )
                    cur.execute(
                        "UPDATE journal_epochs SET end_acked = ? "
                        "WHERE console_id = ? AND journal_epoch = ?",
                        (acked, cid, epoch),
                    )
                    epoch += 1
                    new_epoch = True
                    acked = console_acked
                    cur.execute(
                        "INSERT INTO journal_epochs VALUES (?, ?, ?, ?, NULL, ?)",
                        (cid, epoch, now, acked, reason),
                    )
                    notes.append(
                        f"{device_id}: {reason} (replaced or wiped console); "
                        f"its events now go to journal epoch {epoch}"
                    )
                    self._count(cur, device_id, "new_epochs", 1)
                    if console_acked:
                        gap = console_acked
                elif console_acked > acked:
                    gap = console_acked - acked
                    acked = console_acked
                if gap:
                    notes.append(
                        f"{device_id}: the console believes events up to {console_acked} "
                        f"acked but the store never had {gap} of them (acked by another "
                        "host, or a restored database): they are not here; the store goes "
                        f"on from {console_acked}"
                    )
                    self._count(cur, device_id, "gap_events", gap)
                if st is None:
                    cur.execute(
                        "INSERT INTO journal_epochs VALUES (?, 1, ?, ?, NULL, 'first hello')",
                        (cid, now, acked),
                    )
                g = fields.get
                cur.execute(
                    "UPDATE consoles SET journal_epoch = ?, acked_seq = ?, port = ?, connected = 1,"
                    " last_hello = ?, board = ?, fw_version = ?, app_version = ?, boot_count = ?,"
                    " reset_cause = ?, reboot_reason = ?, journal_depth = ?, config_version = ?,"
                    " uptime_ms = ? WHERE id = ?",
                    (
                        epoch,
                        acked,
                        port,
                        now,
                        str(g("board", "")),
                        str(g("fw_version", "")),
                        str(g("app_version", "")),
                        boot_count,
                        int(g("reset_cause", 0)),
                        int(g("reboot_reason", 0)),
                        int(g("journal_depth", 0)),
                        cfg,
                        int(g("uptime_ms", 0)),
                        cid,
                    ),
                )
                cur.execute(
                    "INSERT INTO hellos (console_id, at, port, journal_epoch, boot_count, "
                    "uptime_ms, next_seq, first_unacked, journal_depth, config_version, "
                    "reset_cause, reboot_reason, fw_version, app_version) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        cid,
                        now,
                        port,
                        epoch,
                        boot_count,
                        int(g("uptime_ms", 0)),
                        next_seq,
                        first_unacked,
                        int(g("journal_depth", 0)),
                        cfg,
                        int(g("reset_cause", 0)),
                        int(g("reboot_reason", 0)),
                        str(g("fw_version", "")),
                        str(g("app_version", "")),
                    ),
                )
                self._count(cur, device_id, "hellos", 1)
                cur.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            # The cache follows the committed state only.
            if st is None:
                st = self._consoles[device_id] = _Console(cid, device_id, epoch, acked)
            st.epoch, st.acked = epoch, acked
        return HelloOutcome(cid, epoch, acked, cfg, new_epoch, gap, notes)

    def disconnected(self, device_id: str, now: float) -> None:
        with self._lock:
            if device_id not in self._consoles:
                return
            cur = self._cur
            cur.execute("BEGIN IMMEDIATE")
            try:
                cur.execute(
                    "UPDATE consoles SET connected = 0, last_disconnect = ? WHERE device_id = ?",
                    (now, device_id),
                )
                self._count(cur, device_id, "disconnects", 1)
                cur.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def acked(self, device_id: str) -> int:
        """The console's acked seq in its current journal epoch (0 if unknown)."""
        with self._lock:
            st = self._consoles.get(device_id)
            return st.acked if st else 0

    @staticmethod
    def _count(cur: sqlite3.Cursor, device: str | None, name: str, n: int) -> None:
        rows = [("", name, n)] if not device else [(device, name, n), ("", name, n)]
        cur.executemany(_BUMP_COUNTER, rows)

    # --- the hot path -----------------------------------------------------------
    def apply(self, batch: Batch) -> dict[str, int]:
        """Stores a batch in one transaction; returns what may now be acked.

        The result maps each known console with events in the batch to its
        acked seq after the commit (resend duplicates included: acking them
        again lets the console drop them).  A bad row is logged, counted
        (`bad_rows`) and skipped; an SQLite error (disk full, I/O) raises with
        nothing stored, so the daemon must not ack.
        """
        with self._lock:
            touched: dict[_Console, int] = {}
            try:
                return self._apply(batch, touched)
            except BaseException:
                self._rollback()
                for st, acked in touched.items():
                    st.acked = acked
                raise

    def _apply(self, batch: Batch, touched: dict[_Console, int]) -> dict[str, int]:
        consoles = self._consoles
        counts: dict[tuple[str, str], int] = {}
        seen: dict[str, _Console] = {}
        rows: list[tuple[Any, ...]] = []
        derived: list[tuple[_Console, tuple[Any, ...]]] = []
        dups: list[tuple[_Console, int, tuple[Any, ...]]] = []
        last: dict[_Console, float] = {}
        unknown = bad = 0
        for ev in batch.events:
            try:
                st = consoles.get(ev.device_id)
                if st is None:
                    unknown += 1
                    continue
                seq = ev.seq
                if type(seq) is not int:
                    raise ValueError("seq is not an int")
                seen[st.device_id] = st
                acked = st.acked
                if seq == acked + 1:
                    row = _event_values(st, ev)
                    if st not in touched:
                        touched[st] = acked
                    st.acked = seq
                    rows.append(row)
                    last[st] = row[11]
                    if row[5] != _EV_PRESS and row[5] in _DERIVED:
                        derived.append((st, row))
                elif seq <= acked:
                    dups.append((st, seq, (ev.uptime_ms, ev.kind, ev.a, ev.b, ev.c, ev.ref)))
                else:
                    key = (st.device_id, "out_of_order")
                    counts[key] = counts.get(key, 0) + 1
            except Exception as err:  # a bad row never sinks the batch
                bad += 1
                log.warning("store: skipped a bad event row %r: %s", ev, err)
        cur = self._cur
        cur.execute("BEGIN IMMEDIATE")
        if rows:
            cur.executemany(_INSERT_EVENT, rows)
            cur.executemany(_UPDATE_ACKED, [(st.acked, last[st], st.id) for st in touched])
        for st, row in derived:
            self._derive(st, row, counts)
        for st, seq, content in dups:
            self._duplicate(st, seq, content, counts)
        bad += self._telemetry(batch, counts)
        for device, name, n in batch.counters:
            if (
                type(name) is not str
                or type(n) is not int
                or not (device is None or type(device) is str)
            ):
                bad += 1
                log.warning("store: skipped a bad counter %r", (device, name, n))
                continue
            key = (device or "", name)
            counts[key] = counts.get(key, 0) + n
        if unknown:
            counts[("", "unknown_device_events")] = unknown
        if bad:
            counts[("", "bad_rows")] = counts.get(("", "bad_rows"), 0) + bad
        counts[("", "batches")] = 1
        if rows:
            counts[("", "events_stored")] = len(rows)
        totals: dict[tuple[str, str], int] = {}
        for (device, name), n in counts.items():
            totals[(device, name)] = totals.get((device, name), 0) + n
            if device:  # the daemon-wide figure is the floor's total
                totals[("", name)] = totals.get(("", name), 0) + n
        cur.executemany(_BUMP_COUNTER, [(d, name, n) for (d, name), n in totals.items() if n])
        cur.execute("COMMIT")
        return {device: st.acked for device, st in seen.items()}

    def _duplicate(
        self,
        st: _Console,
        seq: int,
        content: tuple[Any, ...],
        counts: dict[tuple[str, str], int],
    ) -> None:
        """Counts a resent event, and a conflicting one loudly.

        A resend carries what the store already holds.  Different content
        under an acked seq means the console's journal restarted without its
        seqs going back past the acked one (a wiped console that ran offline
        for long): nothing can tell its events apart then, so it is flagged.
        """
        key = (st.device_id, "duplicates")
        counts[key] = counts.get(key, 0) + 1
        if content[1] == _EV_LOST:
            return
        stored = self._cur.execute(
            "SELECT uptime_ms, kind, a, b, c, ref FROM events WHERE " + _KEY,
            (st.id, st.epoch, seq),
        ).fetchone()
        if stored is not None and stored != content:
            key = (st.device_id, "conflicting_duplicates")
            counts[key] = counts.get(key, 0) + 1
            log.error(
                "store: %s resent seq %d with other content than the stored event: "
                "was its journal wiped? (uptime_ms, kind, a, b, c, ref stored %r, now %r)",
                st.device_id,
                seq,
                stored,
                content,
            )

    def _derive(
        self, st: _Console, row: tuple[Any, ...], counts: dict[tuple[str, str], int]
    ) -> None:
        """The rows an agent event implies, in the batch's transaction."""
        cid, jep, seq, _up, epoch, kind, a, b, c, ref, text, received = row
        at = float(epoch) if epoch else received
        device = st.device_id
        desk, agent, account = self._desks.get(device, _NO_DESK)
        cur = self._cur
        orphan = False
        if kind == _EV_CALL_START:
            if ref:
                orphan = not cur.execute(_CONFIRM_CALL, (a, at, text, cid, jep, ref)).rowcount
            else:
                cur.execute(_INSERT_CALL, (cid, jep, seq, text, a, at, desk, agent, account))
        elif kind == _EV_CALL_END:
            orphan = not cur.execute(_END_CALL, (at, a, b, cid, jep, ref)).rowcount
        elif kind == _EV_WRAPUP:
            label, fd = self._codes.get(account or "", {}).get(a, ("", None))
            cur.execute(
                _INSERT_WRAPUP,
                (cid, jep, seq, ref, a, b, c, at, desk, agent, account, label, fd),
            )
            if ref:
                orphan = not cur.execute(_CODE_CALL, (a, seq, cid, jep, ref)).rowcount
        elif kind == _EV_ESC_RAISE:
            cur.execute(_INSERT_ESC, (cid, jep, seq, ref, text, c, a, at, at, desk, agent, account))
            cur.execute(
                _INSERT_ESC_HISTORY,
                (cid, jep, seq, codec.ESC_RAISED, at, "", None, "raised at the desk"),
            )
        elif kind == _EV_ESC_CANCEL:
            if cur.execute(_CANCEL_ESC, (at, cid, jep, ref)).rowcount:
                cur.execute(
                    _INSERT_ESC_HISTORY,
                    (cid, jep, ref, codec.ESC_CANCELLED, at, "", None, "cancelled at the desk"),
                )
            else:
                orphan = (
                    cur.execute(
                        "SELECT 1 FROM escalations WHERE " + _KEY, (cid, jep, ref)
                    ).fetchone()
                    is None
                )
        elif kind == _EV_CONFIG:
            cur.execute(_INSERT_CONFIG_RESULT, (cid, jep, seq, at, a, ref, text))
            if a == 1:
                cur.execute(
                    "UPDATE consoles SET config_version = ?, config_applied = ? WHERE id = ?",
                    (ref, at, cid),
                )
        elif kind == _EV_BOOT:
            cur.execute(
                "UPDATE consoles SET boots = boots + 1, last_boot = ? WHERE id = ?", (at, cid)
            )
            for name in ("boots", "boot_" + REBOOT_REASONS.get(a, f"0x{a:02x}")):
                counts[(device, name)] = counts.get((device, name), 0) + 1
        elif kind == _EV_JOURNAL_GAP:
            counts[(device, "journal_gaps")] = counts.get((device, "journal_gaps"), 0) + 1
            key = (device, "journal_gap_events")
            counts[key] = counts.get(key, 0) + b
        elif kind == _EV_LOST:
            counts[(device, "lost_events")] = counts.get((device, "lost_events"), 0) + 1
        if orphan:  # names a call or escalation the store does not hold
            counts[(device, "orphan_refs")] = counts.get((device, "orphan_refs"), 0) + 1

    def _telemetry(self, batch: Batch, counts: dict[tuple[str, str], int]) -> int:
        """Heartbeats, STATUS mirrors and LOG lines; returns the bad rows skipped."""
        consoles = self._consoles
        cur = self._cur
        bad = 0
        tel: list[tuple[Any, ...]] = []
        latest: dict[int, tuple[Any, ...]] = {}
        for item in batch.heartbeats:
            try:
                device, at, f = item
                st = consoles.get(device)
                if st is None:
                    key = ("", "unknown_device_heartbeats")
                    counts[key] = counts.get(key, 0) + 1
                    continue
                vals = tuple(f[n] for n in HEARTBEAT_FIELDS)
                if not _ints(vals):
                    raise ValueError("a field is not an int")
                at = _time(at)
                tel.append((st.id, at, *vals))
                prev = latest.get(st.id)
                if prev is None or at >= prev[0]:
                    latest[st.id] = (at, *(vals[i] for i in _HB_INDEX), st.id)
            except Exception as err:
                bad += 1
                log.warning("store: skipped a bad heartbeat %r: %s", item, err)
        if tel:
            cur.executemany(_INSERT_TELEMETRY, tel)
            cur.executemany(_UPDATE_HEARTBEAT, list(latest.values()))
        return bad + self._statuses(batch) + self._logs(batch)

    def _statuses(self, batch: Batch) -> int:
        consoles = self._consoles
        bad = 0
        mirror: list[tuple[Any, ...]] = []
        for device, item in batch.statuses.items():
            try:
                st = consoles.get(device)
                if st is None:
                    continue
                at, f = item
                vals = tuple(f[n] for n in STATUS_FIELDS)
                for n, v in zip(STATUS_FIELDS, vals, strict=True):
                    if (type(v) is not str) if n in _STATUS_TEXT else not _ints((v,)):
                        raise ValueError(f"{n} is {v!r}")
                mirror.append((st.id, _time(at), *vals))
            except Exception as err:
                bad += 1
                log.warning("store: skipped a bad status of %r: %r (%s)", device, item, err)
        if mirror:
            self._cur.executemany(_UPSERT_STATUS, mirror)
        return bad

    def _logs(self, batch: Batch) -> int:
        bad = 0
        lines: list[tuple[Any, ...]] = []
        for item in batch.logs:
            try:
                device, at, level, text = item
                if type(device) is not str or type(text) is not str or not _ints((level,)):
                    raise ValueError("not (device, time, level, text)")
                lines.append((device, _time(at), level, text.encode("utf-8", "replace").decode()))
            except Exception as err:
                bad += 1
                log.warning("store: skipped a bad log line %r: %s", item, err)
        if lines:
            self._cur.executemany(_INSERT_LOG, lines)
        return bad

    # --- the floor --------------------------------------------------------------
    def sync_floor(self, floor: Floor) -> dict[str, int]:
        """Makes the floor tables match `floor`; returns each account's config version.

        Replaced wholesale in one transaction (consoles may swap desks, which
        row-by-row upserts would trip over); history rows name desks, agents
        and accounts by text, so they stay as they were.  A config gets a
        new version only when its content changed, so re-reading an unchanged
        file does not make every console download again.
        """
        rendered: dict[str, tuple[str, dict[str, Any]]] = {}
        for key, acct in floor.accounts.items():
            cfg = dict(acct.console_config)
            cfg.pop("version", None)
            digest = hashlib.sha256(_canonical(cfg)).hexdigest()
            rendered[key] = (digest, cfg)
        consoles: dict[str, str] = {}
        for desk in floor.desks.values():
            if desk.console in consoles:
                raise DesklineError(
                    f"console {desk.console} is on two desks: {consoles[desk.console]} "
                    f"and {desk.name}"
                )
            consoles[desk.console] = desk.name
        with self._lock:
            cur = self._cur
            now = time.time()
            versions: dict[str, int] = {}
            cur.execute("BEGIN IMMEDIATE")
            try:
                for table in ("accounts", "queues", "agents", "desks", "desk_queues"):
                    cur.execute("DELETE FROM " + table)
                cur.executemany(
                    "INSERT INTO accounts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            a.key,
                            a.name,
                            json.dumps([[w.code, w.label, w.failure_demand] for w in a.codes]),
                            a.sl_target_pct,
                            a.sl_threshold_s,
                            a.sl_amber_pct,
                            a.short_abandon_s,
                            a.hotline,
                            json.dumps(a.extra, sort_keys=True, default=str),
                        )
                        for a in floor.accounts.values()
                    ],
                )
                cur.executemany(
                    "INSERT INTO queues VALUES (?, ?)",
                    [(q.name, q.account) for q in floor.queues.values()],
                )
                cur.executemany(
                    "INSERT INTO agents VALUES (?, ?)",
                    [(a.id, a.name) for a in floor.agents.values()],
                )
                cur.executemany(
                    "INSERT INTO desks VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (d.name, d.console, d.account, d.agent, d.row, d.col)
                        for d in floor.desks.values()
                    ],
                )
                cur.executemany(
                    "INSERT OR IGNORE INTO desk_queues VALUES (?, ?)",
                    [(d.name, q) for d in floor.desks.values() for q in d.queues],
                )
                for key, (digest, cfg) in rendered.items():
                    versions[key] = self._config_version(cur, key, digest, cfg, now)
                meta = {
                    "floor_name": floor.name,
                    "floor_sha256": floor.sha256,
                    "floor_synced": repr(now),
                }
                cur.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(meta.items()))
                cur.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            self._load_floor()
        return versions

    @staticmethod
    def _config_version(
        cur: sqlite3.Cursor, account: str, digest: str, cfg: dict[str, Any], now: float
    ) -> int:
        row = cur.execute(
            "SELECT version, sha256 FROM config_versions WHERE account = ? "
            "ORDER BY version DESC LIMIT 1",
            (account,),
        ).fetchone()
        if row is not None and row[1] == digest:
            return int(row[0])
        cur.execute(
            "INSERT INTO config_versions (account, created, sha256, body) VALUES (?, ?, ?, x'')",
            (account, now, digest),
        )
        version = cur.lastrowid
        assert version is not None
        body = _canonical(_lean({**cfg, "version": version}))
        err = cfgcheck.validate(json.loads(body))
        if err is None and len(body) > MAX_CONFIG_BYTES:
            err = f"{len(body)} bytes, over the console's {MAX_CONFIG_BYTES}"
        if err is not None:
            raise DesklineError(f"account {account}: its console config is refused: {err}")
        cur.execute("UPDATE config_versions SET body = ? WHERE version = ?", (body, version))
        return version

    def config_for_console(self, device_id: str) -> tuple[int, bytes] | None:
        """(version, JSON with "version") for the console's account; None off the floor."""
        with self._lock:
            desk = self._desks.get(device_id)
            if desk is None:
                return None
            row = self._db.execute(
                "SELECT version, body FROM config_versions WHERE account = ? "
                "ORDER BY version DESC LIMIT 1",
                (desk[2],),
            ).fetchone()
            return None if row is None else (int(row[0]), bytes(row[1]))

    # --- escalations ------------------------------------------------------------
    def set_escalation_status(
        self,
        device_id: str,
        esc_seq: int,
        status: int,
        now: float,
        *,
        ticket: str = "",
        deadline: float | None = None,
        note: str = "",
        journal_epoch: int | None = None,
    ) -> bool:
        """Records the hotline's word on an escalation; returns whether the status changed.

        Resolved and cancelled are final: a late word after them (the hotline
        acknowledging what the agent already cancelled) goes into the history
        but does not reopen it.  KeyError if the store has no such escalation.
        """
        if not 0 <= status <= codec.ESC_FAILED:
            raise ValueError(f"escalation status {status} is not 0..{codec.ESC_FAILED}")
        with self._lock:
            st = self._consoles.get(device_id)
            if st is None:
                raise KeyError(f"console {device_id} is not known")
            jep = st.epoch if journal_epoch is None else journal_epoch
            key = (st.id, jep, esc_seq)
            cur = self._cur
            cur.execute("BEGIN IMMEDIATE")
            try:
                row = cur.execute("SELECT status FROM escalations WHERE " + _KEY, key).fetchone()
                if row is None:
                    raise KeyError(f"{device_id} has no escalation {esc_seq} in epoch {jep}")
                changed = row[0] not in ESC_TERMINAL
                if changed:
                    cur.execute(
                        "UPDATE escalations SET status = ?, updated = ?, "
                        "ticket = CASE ? WHEN '' THEN ticket ELSE ? END, "
                        "deadline = coalesce(?, deadline) WHERE " + _KEY,
                        (status, now, ticket, ticket, deadline, *key),
                    )
                elif status != row[0]:
                    note = (note + "; " if note else "") + "after it was closed: not applied"
                cur.execute(_INSERT_ESC_HISTORY, (*key, status, now, ticket, deadline, note))
                cur.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        return changed

    def open_escalations(self, device_id: str) -> list[dict[str, Any]]:
        """The console's escalations not resolved or cancelled, current journal epoch."""
        with self._lock:
            st = self._consoles.get(device_id)
            if st is None:
                return []
            return self._rows(
                "SELECT seq AS esc_seq, journal_epoch, kind, severity, status, ticket, deadline,"
                " call_seq, acd_call_id, raised, updated, desk, agent, account FROM escalations"
                " WHERE console_id = ? AND journal_epoch = ? AND status NOT IN (3, 5)"
                " ORDER BY seq",
                (st.id, st.epoch),
            )

    # --- readers ----------------------------------------------------------------
    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cur = self._db.execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of a query as dicts, for reports and tests; a write is refused.

        SQLite's authorizer does the refusing (sqlite3.DatabaseError "not
        authorized"), so a report can never change what the acks stand on.
        """
        with self._lock:
            self._db.set_authorizer(_read_only)
            try:
                return self._rows(sql, params)
            finally:
                self._db.set_authorizer(None)

    def devices(self) -> list[dict[str, Any]]:
        """One dict per console ever seen, then consoles on the floor never seen."""
        with self._lock:
            counters: dict[str, dict[str, int]] = {}
            for device, name, value in self._db.execute(
                "SELECT device, name, value FROM counters WHERE device != '' ORDER BY name"
            ):
                counters.setdefault(device, {})[name] = value
            out = self._rows(
                """SELECT k.device_id, c.id AS console_id, d.name AS desk, d.agent,
                    ag.name AS agent_name, d.account, ac.name AS account_name, c.port,
                    c.connected, c.board, c.fw_version, c.app_version, c.first_seen,
                    c.last_hello, c.last_disconnect, c.last_event, c.last_heartbeat,
                    c.uptime_ms, c.free_heap, c.min_free_heap, c.journal_depth, c.rx_frames,
                    c.rx_errors, c.rx_dropped, c.tx_frames, c.retransmits, c.dropped_telemetry,
                    c.refused_events, c.torn_records, c.boot_count, c.boots, c.last_boot,
                    c.reset_cause AS last_reset_cause, c.reboot_reason AS last_reboot_reason,
                    c.journal_epoch, c.acked_seq,
                    c.config_version, c.config_applied,
                    (SELECT max(v.version) FROM config_versions v WHERE v.account = d.account)
                        AS config_expected
                FROM (SELECT device_id FROM consoles UNION SELECT console FROM desks) k
                LEFT JOIN consoles c ON c.device_id = k.device_id
                LEFT JOIN desks d ON d.console = k.device_id
                LEFT JOIN agents ag ON ag.id = d.agent
                LEFT JOIN accounts ac ON ac.key = d.account
                ORDER BY c.id IS NULL, k.device_id"""
            )
            for dev in out:
                dev["seen"] = dev["console_id"] is not None
                dev["connected"] = bool(dev["connected"])
                dev["on_floor"] = dev["desk"] is not None
                dev["counters"] = counters.get(dev["device_id"], {})
            return out

    def events(self, device_id: str) -> list[dict[str, Any]]:
        """The console's stored events, every journal epoch, in (epoch, seq) order."""
        with self._lock:
            st = self._consoles.get(device_id)
            if st is None:
                return []
            return self._rows(
                "SELECT journal_epoch, " + _EVENT_COLS + " FROM events WHERE console_id = ? "
                "ORDER BY journal_epoch, seq",
                (st.id,),
            )

    def counters(self) -> dict[str, int]:
        """Daemon-wide counters: the daemon's own and the floor's totals."""
        with self._lock:
            return {
                name: int(value)
                for name, value in self._db.execute(
                    "SELECT name, value FROM counters WHERE device = '' ORDER BY name"
                )
            }

    def status_mirror(self) -> list[dict[str, Any]]:
        """The latest STATUS of each console, with who sits there for which client."""
        with self._lock:
            rows = self._rows(
                """SELECT c.device_id, d.name AS desk, d.agent, ag.name AS agent_name,
                    d.account, ac.name AS account_name, c.connected, s.*
                FROM status s
                JOIN consoles c ON c.id = s.console_id
                LEFT JOIN desks d ON d.console = c.device_id
                LEFT JOIN agents ag ON ag.id = d.agent
                LEFT JOIN accounts ac ON ac.key = d.account
                ORDER BY c.device_id"""
            )
            for row in rows:
                row["connected"] = bool(row["connected"])
                del row["console_id"]
            return rows
