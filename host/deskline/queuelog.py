"""Asterisk `queue_log`: parse lines into typed records, replay a file, tail a live one.

The ACD reports what its queues did in this file; the service-level engine
(servicelevel.py) reads nothing else from it.  One line is
`epoch|uniqueid|queue|agent|EVENT|data1|data2|...`, no escaping, one line
per event, flushed as written (main/logger.c `ast_queue_log`).

Field orders, checked against asterisk/asterisk @ f0c1c1a7b79b
(apps/app_queue.c unless named):
- ENTERQUEUE :8988/8994 url|callerid|origposition[|calleridname]
- CONNECT :7640 holdtime s|bridged uniqueid|ringtime s (Asterisk 1.2 had no ringtime)
- COMPLETEAGENT/COMPLETECALLER :6917 holdtime s|calltime s|origposition
- ABANDON :9188 (and :7502, logged with the member when the caller hung up
  as the member answered), EXITWITHTIMEOUT :9055, EXITEMPTY :9109/:6107:
  position|origposition|waittime s (1.4 logged only position)
- WITHDRAW :9180 position|origposition|waittime s|info
- EXITWITHKEY :9200 key|position|origposition|waittime s
- RINGNOANSWER :5317 and RINGCANCELED :5860: ring time in **milliseconds**
- BLINDTRANSFER :6652 extension|context|holdtime|calltime|origposition;
  ATTENDEDTRANSFER :6566 BRIDGE|<bridge> or APP|<app> or LINK|<chan>|<chan>,
  then holdtime|calltime|origposition; TRANSFER (before Asterisk 12)
  extension|context|holdtime|calltime[|origposition].  No COMPLETE* follows
  a transfer: the transfer line ends the call for the queue.
- ADDMEMBER/REMOVEMEMBER :3862/:4047 "PAUSED" or ""; PAUSE/UNPAUSE :8094 reason
- QUEUESTART main/logger.c:2185 (Asterisk started: every queued call is gone),
  CONFIGRELOAD main/logger.c:1275.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypedDict

from deskline.errors import DesklineError

QUEUESTART = "QUEUESTART"
ENTERQUEUE = "ENTERQUEUE"
CONNECT = "CONNECT"
COMPLETEAGENT = "COMPLETEAGENT"
COMPLETECALLER = "COMPLETECALLER"
ABANDON = "ABANDON"
EXITWITHTIMEOUT = "EXITWITHTIMEOUT"
EXITEMPTY = "EXITEMPTY"
EXITWITHKEY = "EXITWITHKEY"
WITHDRAW = "WITHDRAW"
RINGNOANSWER = "RINGNOANSWER"
RINGCANCELED = "RINGCANCELED"
TRANSFER = "TRANSFER"
BLINDTRANSFER = "BLINDTRANSFER"
ATTENDEDTRANSFER = "ATTENDEDTRANSFER"
ADDMEMBER = "ADDMEMBER"
REMOVEMEMBER = "REMOVEMEMBER"
PAUSE = "PAUSE"
UNPAUSE = "UNPAUSE"
NONE = "NONE"

# How a caller left the queue without an agent, by event: the outcome names
# the store's acd_calls table uses.
EXIT_OUTCOMES: dict[str, str] = {
    ABANDON: "abandoned",
    EXITWITHTIMEOUT: "timeout",
    EXITEMPTY: "empty",
    WITHDRAW: "withdrawn",
    EXITWITHKEY: "key",
}
TRANSFERS = frozenset({TRANSFER, BLINDTRANSFER, ATTENDEDTRANSFER})
MEMBER_EVENTS = frozenset({ADDMEMBER, REMOVEMEMBER, PAUSE, UNPAUSE})
# Written by Asterisk, its agents, or tools such as QueueMetrics (CALLSTATUS,
# INFO, DID via the QueueLog() app); nothing the service level needs.
IGNORED_EVENTS = frozenset(
    {
        "CONFIGRELOAD",
        "AGENTLOGIN",
        "AGENTLOGOFF",
        "AGENTCALLBACKLOGIN",
        "AGENTCALLBACKLOGOFF",
        "AGENTDUMP",
        "SYSCOMPAT",
        "PAUSEALL",
        "UNPAUSEALL",
        "PAUSEREASON",
        "PENALTY",
        "RINGINUSE",
        "OUTCALL",
        "INFO",
        "CALLSTATUS",
        "DID",
    }
)
KNOWN_EVENTS = frozenset(
    {
        QUEUESTART,
        ENTERQUEUE,
        CONNECT,
        COMPLETEAGENT,
        COMPLETECALLER,
        RINGNOANSWER,
        RINGCANCELED,
        *EXIT_OUTCOMES,
        *TRANSFERS,
        *MEMBER_EVENTS,
        *IGNORED_EVENTS,
    }
)
_AGENT_PREFIX = "Agent/"
# A line longer than this is not queue_log (Asterisk's own lines are < 1 KB):
# it is reported, not held in memory waiting for a newline.
MAX_LINE = 64 * 1024


def member_name(agent_id: str) -> str:
    """The queue member name an agent's calls are logged under (the agent field)."""
    return f"{_AGENT_PREFIX}{agent_id}"


def agent_id(member: str) -> str | None:
    """The agent id in a member name `Agent/<id>`; None for NONE, SIP/..., and the like."""
    if member.startswith(_AGENT_PREFIX) and len(member) > len(_AGENT_PREFIX):
        return member[len(_AGENT_PREFIX) :]
    return None


# --- raw lines ------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One line split into its fields, not yet typed."""

    epoch: int
    uniqueid: str
    queue: str
    agent: str
    event: str
    data: tuple[str, ...]

    def num(self, i: int) -> int:
        return int(self.data[i])


def parse_line(line: str) -> Entry:
    """Splits one line; ValueError when it is not queue_log shaped."""
    parts = line.rstrip("\r\n").split("|")
    if len(parts) < 6:
        raise ValueError(f"{len(parts)} fields, a queue_log line has at least 6")
    if not (parts[0].isascii() and parts[0].isdigit()):
        raise ValueError(f"time {parts[0][:20]!r} is not a Unix epoch")
    if not parts[4]:
        raise ValueError("no event name")
    return Entry(int(parts[0]), parts[1], parts[2], parts[3], parts[4], tuple(parts[5:]))


# --- typed records --------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """A line the service level uses; `line` is its number in its file (1-based)."""

    at: int  # epoch seconds, as Asterisk's time(NULL)
    uniqueid: str
    queue: str
    member: str  # the agent field: "NONE", "Agent/e1", "SIP/8007", ...
    event: str
    line: int = 0

    @property
    def agent(self) -> str | None:
        return agent_id(self.member)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueStart(Record):
    """Asterisk (re)started: every call it had queued or bridged is gone."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EnterQueue(Record):
    url: str
    callerid: str
    origposition: int
    calleridname: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Connect(Record):
    hold_s: int
    bridged: str  # the member channel's uniqueid
    ring_s: int | None  # seconds (unlike RINGNOANSWER); absent before Asterisk 1.4


@dataclass(frozen=True, slots=True, kw_only=True)
class Complete(Record):
    """COMPLETEAGENT or COMPLETECALLER: the answered call ended."""

    hold_s: int
    talk_s: int
    origposition: int | None

    @property
    def ended_by(self) -> str:
        return "agent" if self.event == COMPLETEAGENT else "caller"


@dataclass(frozen=True, slots=True, kw_only=True)
class Exit(Record):
    """The caller left the queue unanswered: ABANDON, EXITWITHTIMEOUT, EXITEMPTY,
    WITHDRAW or EXITWITHKEY."""

    position: int
    origposition: int | None  # absent in Asterisk 1.4 lines
    wait_s: int | None  # likewise
    key: str = ""  # EXITWITHKEY: the digit pressed
    info: str = ""  # WITHDRAW: the withdraw info

    @property
    def outcome(self) -> str:
        return EXIT_OUTCOMES[self.event]


@dataclass(frozen=True, slots=True, kw_only=True)
class Ring(Record):
    """RINGNOANSWER or RINGCANCELED: a member was rung and did not take the call."""

    ring_ms: int  # milliseconds, unlike every other duration in the file


@dataclass(frozen=True, slots=True, kw_only=True)
class Transfer(Record):
    """TRANSFER, BLINDTRANSFER or ATTENDEDTRANSFER: the answered call left the queue's agent."""

    target: tuple[str, ...]  # (extension, context), or (method, data...) for attended
    hold_s: int
    talk_s: int
    origposition: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberChange(Record):
    """ADDMEMBER, REMOVEMEMBER, PAUSE or UNPAUSE; `detail` is "PAUSED" or the reason."""

    detail: str


class _Head(TypedDict):
    at: int
    uniqueid: str
    queue: str
    member: str
    event: str
    line: int


def to_record(e: Entry, line: int = 0) -> Record | None:
    """The typed record of a known event; None for one that is known but not used.

    Raises ValueError (the reason) for an unknown event or data that does
    not fit it.
    """
    head = _Head(
        at=e.epoch, uniqueid=e.uniqueid, queue=e.queue, member=e.agent, event=e.event, line=line
    )
    ev, d = e.event, e.data
    if ev in IGNORED_EVENTS:
        return None
    if ev == QUEUESTART:
        return QueueStart(**head)
    if ev == ENTERQUEUE:
        _need(d, 3, "url|callerid|origposition")
        name = d[3] if len(d) > 3 else ""
        return EnterQueue(
            **head, url=d[0], callerid=d[1], origposition=_int(d, 2), calleridname=name
        )
    if ev == CONNECT:
        _need(d, 2, "holdtime|bridged uniqueid|ringtime")
        ring = _int(d, 2) if len(d) > 2 and d[2] != "" else None
        return Connect(**head, hold_s=_int(d, 0), bridged=d[1], ring_s=ring)
    if ev in (COMPLETEAGENT, COMPLETECALLER):
        _need(d, 2, "holdtime|calltime|origposition")
        return Complete(**head, hold_s=_int(d, 0), talk_s=_int(d, 1), origposition=_opt(d, 2))
    if ev == EXITWITHKEY:
        _need(d, 2, "key|position|origposition|waittime")
        return Exit(
            **head,
            key=d[0],
            position=_int(d, 1),
            origposition=_opt(d, 2),
            wait_s=_opt(d, 3),
        )
    if ev in EXIT_OUTCOMES:
        _need(d, 1, "position|origposition|waittime")
        info = d[3] if ev == WITHDRAW and len(d) > 3 else ""
        return Exit(
            **head, position=_int(d, 0), origposition=_opt(d, 1), wait_s=_opt(d, 2), info=info
        )
    if ev in (RINGNOANSWER, RINGCANCELED):
        _need(d, 1, "ringtime ms")
        return Ring(**head, ring_ms=_int(d, 0))
    if ev in TRANSFERS:
        return _transfer(head, ev, d)
    if ev in MEMBER_EVENTS:
        return MemberChange(**head, detail=d[0])
    raise ValueError(f"unknown event {ev[:40]!r}")


def _transfer(head: _Head, ev: str, d: tuple[str, ...]) -> Transfer:
    # The description before the times has 2 or 3 fields (LINK names two
    # channels), so the times are read from the end; TRANSFER before
    # Asterisk 1.6 had no origposition.
    if ev == TRANSFER and len(d) == 4:
        return Transfer(
            **head,
            target=d[:2],
            hold_s=_int(d, 2),
            talk_s=_int(d, 3),
            origposition=None,
        )
    _need(d, 5, "target|holdtime|calltime|origposition")
    n = len(d)
    return Transfer(
        **head,
        target=d[: n - 3],
        hold_s=_int(d, n - 3),
        talk_s=_int(d, n - 2),
        origposition=_opt(d, n - 1),
    )


def _need(d: tuple[str, ...], n: int, shape: str) -> None:
    if len(d) < n:
        raise ValueError(f"{len(d)} data fields, want {shape}")


def _int(d: tuple[str, ...], i: int) -> int:
    s = d[i]
    if not (s.isascii() and s.isdigit()):
        raise ValueError(f"data field {i + 1} {s[:20]!r} is not a whole number >= 0")
    return int(s)


def _opt(d: tuple[str, ...], i: int) -> int | None:
    return _int(d, i) if len(d) > i and d[i] != "" else None


# --- problems and the parser that counts them -----------------------------------------


@dataclass(frozen=True)
class Problem:
    """A line that could not be used, with where it was and why."""

    line: int
    reason: str
    text: str  # the line, cut to 120 characters
    path: str = ""

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.path else f"line {self.line}"
        return f"{where}: {self.reason}: {self.text!r}"


class QueueLogParser:
    """Turns lines into records, counting and keeping what it could not use."""

    def __init__(self, keep: int = 1000) -> None:
        self.keep = keep  # problems kept in full; the rest only counted
        self.lines = 0
        self.records = 0
        self.ignored: Counter[str] = Counter()  # known events not used, by name
        self.unknown = 0  # lines with an event name nobody writes
        self.malformed = 0  # lines not queue_log shaped, or with data that does not fit
        self.problems: list[Problem] = []

    @property
    def problem_count(self) -> int:
        return self.unknown + self.malformed

    def parse(self, text: str, line: int = 0, path: str = "") -> Record | None:
        """The line's record; None for a blank, ignored or bad line (bad ones are kept)."""
        self.lines += 1
        text = text.rstrip("\r\n")
        if not text.strip():
            return None
        try:
            entry = parse_line(text)
        except ValueError as e:
            self._problem(line, str(e), text, path, unknown=False)
            return None
        try:
            rec = to_record(entry, line)
        except ValueError as e:
            self._problem(line, str(e), text, path, unknown=entry.event not in KNOWN_EVENTS)
            return None
        if rec is None:
            self.ignored[entry.event] += 1
            return None
        self.records += 1
        return rec

    def _problem(self, line: int, reason: str, text: str, path: str, unknown: bool) -> None:
        if unknown:
            self.unknown += 1
        else:
            self.malformed += 1
        if len(self.problems) < self.keep:
            self.problems.append(Problem(line, reason, text[:120], path))

    def summary(self) -> dict[str, object]:
        """Counts for a report or a log line."""
        return {
            "lines": self.lines,
            "records": self.records,
            "ignored": dict(self.ignored),
            "unknown": self.unknown,
            "malformed": self.malformed,
        }


# --- a whole file ---------------------------------------------------------------------


def replay(path: str | os.PathLike[str], parser: QueueLogParser | None = None) -> Iterator[Record]:
    """The records of a queue_log file in order; problems go to `parser`."""
    parser = parser or QueueLogParser()
    name = os.fspath(path)
    try:
        f = open(name, "rb")
    except FileNotFoundError:
        raise DesklineError(
            f"queue_log {name}: no such file (Asterisk writes it to "
            "/var/log/asterisk/queue_log when logger.conf has queue_log = yes)"
        ) from None
    except OSError as e:
        raise DesklineError(f"queue_log {name}: cannot read: {e.strerror or e}") from e
    with f:
        for n, raw in enumerate(f, 1):
            rec = parser.parse(raw.decode("utf-8", "replace"), n, name)
            if rec is not None:
                yield rec


def read_file(path: str | os.PathLike[str]) -> tuple[list[Record], QueueLogParser]:
    """Every record of a file, and the parser holding its counts and problems."""
    parser = QueueLogParser()
    return list(replay(path, parser)), parser


# --- a live file ----------------------------------------------------------------------


class QueueLogTail:
    """Follows a live queue_log across rotation, handing out only whole lines.

    poll() reads what was appended since the last call.  Rotation by rename
    (logrotate's default, Asterisk's `logger rotate`): the rest of the old
    file is read, then the new one from its start.  Rotation by copytruncate:
    the file shrinks, or its first line changes, so it is read again from 0.
    A missing file is waited for.  A line without its newline yet is left
    for the next poll, so a record is never built from half a line.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        parser: QueueLogParser | None = None,
        from_start: bool = True,
    ) -> None:
        self.path = os.fspath(path)
        self.parser = parser or QueueLogParser()
        self.rotations = 0  # renames and truncations seen
        self._from_start = from_start  # only for the first file opened
        self._f: _Followed | None = None

    def poll(self) -> list[Record]:
        """The records of the lines completed since the last poll."""
        out: list[Record] = []
        if self._f is None:
            self._f = self._open()
            if self._f is None:
                return out
        f = self._f
        try:
            st = os.stat(self.path)
        except OSError:
            st = None  # renamed away, the new one not there yet: keep the old
        if st is not None and (st.st_dev, st.st_ino) != f.ident:
            f.read_lines(self.parser, out)  # what was written before the rename
            f.finish(self.parser)
            f.close()
            self.rotations += 1
            new = self._open(rotated=True)
            self._f = new
            if new is None:
                return out
            f = new
        elif st is not None and f.truncated(st.st_size):
            # Checked before reading: bytes past the old position in a
            # rewritten file are not the rest of the line we stopped at.
            self.rotations += 1
            f.restart()
        f.read_lines(self.parser, out)
        return out

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def __enter__(self) -> QueueLogTail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self, rotated: bool = False) -> _Followed | None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            self._from_start = True  # whatever appears later is new
            return None
        f = _Followed(fd, self.path)
        if not (rotated or self._from_start):
            f.skip_to_end()
        self._from_start = True
        return f


class _Followed:
    """One open file of the tail: where the next whole line starts."""

    _CHUNK = 1 << 16
    _HEAD = 256  # bytes of the first line remembered, to tell a rewritten file

    def __init__(self, fd: int, path: str) -> None:
        self.fd = fd
        self.path = path
        st = os.fstat(fd)
        self.ident = (st.st_dev, st.st_ino)
        self.offset = 0
        self.line = 0
        self.head = b""

    def skip_to_end(self) -> None:
        # Start at the last whole line: what is already there is history.
        size = os.fstat(self.fd).st_size
        data = os.pread(self.fd, min(size, self._CHUNK), max(0, size - self._CHUNK))
        cut = data.rfind(b"\n")
        self.offset = size - len(data) + cut + 1 if cut >= 0 else 0
        self.head = os.pread(self.fd, self._HEAD, 0)
        self.head = self.head[: self.head.find(b"\n") + 1] if b"\n" in self.head else b""

    def read_lines(self, parser: QueueLogParser, out: list[Record]) -> None:
        while True:
            data = os.pread(self.fd, self._CHUNK, self.offset)
            if not data:
                return
            end = data.rfind(b"\n")
            if end < 0:
                if len(data) >= MAX_LINE:
                    self._overlong(parser, data)
                    continue
                return  # half a line: wait for its newline
            if self.offset == 0 and not self.head:
                first = data[: data.find(b"\n") + 1]
                self.head = first[: self._HEAD]
            for raw in data[:end].split(b"\n"):
                self.line += 1
                rec = parser.parse(raw.decode("utf-8", "replace"), self.line, self.path)
                if rec is not None:
                    out.append(rec)
            self.offset += end + 1
            if len(data) < self._CHUNK:
                return

    def _overlong(self, parser: QueueLogParser, data: bytes) -> None:
        self.line += 1
        parser.malformed += 1
        if len(parser.problems) < parser.keep:
            text = data[:120].decode("utf-8", "replace")
            parser.problems.append(Problem(self.line, "line over 64 KiB", text, self.path))
        self.offset += len(data)

    def finish(self, parser: QueueLogParser) -> None:
        # The file was renamed away: a last line without its newline will
        # never be completed.
        rest = os.pread(self.fd, MAX_LINE, self.offset)
        if rest:
            self.line += 1
            parser.malformed += 1
            if len(parser.problems) < parser.keep:
                text = rest[:120].decode("utf-8", "replace")
                parser.problems.append(
                    Problem(self.line, "unfinished last line of a rotated file", text, self.path)
                )
            self.offset += len(rest)

    def truncated(self, size: int) -> bool:
        if size < self.offset:
            return True
        if self.head and size >= len(self.head):
            # copytruncate, then more lines than were read before: the size
            # alone does not show it, the first line does.
            return os.pread(self.fd, len(self.head), 0) != self.head
        return False

    def restart(self) -> None:
        self.offset = 0
        self.line = 0
        self.head = b""

    def close(self) -> None:
        os.close(self.fd)
