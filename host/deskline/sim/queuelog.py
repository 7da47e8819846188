"""Asterisk `queue_log` lines: write them as app_queue does, audit them.

The virtual floor plays the ACD as well as the agents, and an ACD reports
what its queues did in this file; the daemon ingests it beside the consoles'
events.  Writing the exact Asterisk shape lets the same ingestion read a real
PBX's log.

Format checked against Asterisk's source (asterisk/asterisk @ f0c1c1a7b79b):
- main/logger.c:1041 `ast_queue_log`: `"%ld|%s|%s|%s|%s|"` (time(NULL),
  callid, queuename, agent, event) then the event's own format, one line,
  fflush()ed; :2185 `logger_queue_start` writes QUEUESTART with data ""
  (so the line ends "|").
- apps/app_queue.c:
  :8988/8994 ENTERQUEUE `"%s|%s|%d"` url, caller id number, qe.opos (a 4th
  field, the caller id name, only with enable_cidname_logging);
  :7640 CONNECT `"%ld|%s|%ld"` holdtime s (now - qe->start), the member
  channel's uniqueid, ringtime s;
  :6917 COMPLETEAGENT / COMPLETECALLER `"%ld|%ld|%d"` holdtime s, calltime s,
  origposition;
  :9188 ABANDON `"%d|%d|%ld"` position, origposition, waittime s;
  :5317 RINGNOANSWER `"%d"` ring time in **ms**;
  :3862/8673/10962/11359 ADDMEMBER `"%s"` "PAUSED" or "" (uniqueid
  "REALTIME", the channel's, "MANAGER" or "CLI", by who added the member).
Also docs.asterisk.org "Queue Logs" and ../shared/reference/contact-centre.md §2.5.
Reading lines back is the host's parser (deskline.queuelog), so the floor's
log and a real PBX's go through the same code.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

# One parser for the floor's log and a real PBX's: the host's.
from deskline.queuelog import (
    ABANDON,
    ADDMEMBER,
    COMPLETEAGENT,
    COMPLETECALLER,
    CONNECT,
    ENTERQUEUE,
    NONE,
    QUEUESTART,
    RINGNOANSWER,
    Entry,
    member_name,
    parse_line,
)

__all__ = [
    "ABANDON",
    "ADDMEMBER",
    "CLOCK_FIELDS",
    "COMPLETEAGENT",
    "COMPLETECALLER",
    "CONNECT",
    "ENTERQUEUE",
    "EVENTS",
    "NONE",
    "QUEUESTART",
    "RINGNOANSWER",
    "Entry",
    "QueueLogWriter",
    "audit",
    "format_line",
    "member_name",
    "normalise",
    "parse_line",
]

# The events the virtual floor's ACD writes (a subset of what the host reads).
EVENTS = frozenset(
    {
        QUEUESTART,
        ADDMEMBER,
        ENTERQUEUE,
        CONNECT,
        COMPLETEAGENT,
        COMPLETECALLER,
        ABANDON,
        RINGNOANSWER,
    }
)
# Data fields (by event) that are clock readings; two runs of one seed differ
# only in these and in the line times.
CLOCK_FIELDS: dict[str, tuple[int, ...]] = {
    CONNECT: (0, 2),
    COMPLETEAGENT: (0, 1),
    COMPLETECALLER: (0, 1),
    ABANDON: (2,),
    RINGNOANSWER: (0,),
}


def format_line(
    epoch: int, uniqueid: str, queue: str, agent: str, event: str, *data: object
) -> str:
    """One queue_log line, without the newline."""
    fields = [str(epoch), uniqueid, queue, agent, event]
    values = [str(d) for d in data] or [""]
    for f in (*fields, *values):
        # The format has no escaping: a separator inside a field would shift
        # every field after it for whoever reads the file.
        if "|" in f or "\n" in f or "\r" in f:
            raise ValueError(f"queue_log field {f!r} holds a separator")
    return "|".join(fields) + "|" + "|".join(values)


class QueueLogWriter:
    """Appends lines to a queue_log file (or only keeps them), flushing each."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._file: TextIO | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Appended like Asterisk's, so a tailing reader never sees a
            # truncated file and earlier shifts stay.
            self._file = path.open("a", encoding="utf-8")

    def write(
        self, epoch: int, uniqueid: str, queue: str, agent: str, event: str, *data: object
    ) -> str:
        line = format_line(epoch, uniqueid, queue, agent, event, *data)
        with self._lock:
            self.lines.append(line)
            if self._file is not None:
                # Flushed per line, as Asterisk does: a tailing daemon sees
                # each event as it happens.
                self._file.write(line + "\n")
                self._file.flush()
        return line

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def normalise(line: str) -> str:
    """A line without what differs between two runs of one seed (times, clock readings).

    Unique ids keep only their counter (`<epoch>.<n>` becomes `.<n>`).
    """
    e = parse_line(line)
    data = list(e.data)
    for i in CLOCK_FIELDS.get(e.event, ()):
        if i < len(data):
            data[i] = "*"
    if e.event == CONNECT and len(data) > 1:
        data[1] = _counter(data[1])
    return "|".join(["*", _counter(e.uniqueid), e.queue, e.agent, e.event, *data])


def _counter(uniqueid: str) -> str:
    head, dot, tail = uniqueid.partition(".")
    return dot + tail if dot and head.isdigit() else uniqueid


def audit(lines: Iterable[str], allow_open: bool = False) -> list[str]:
    """What is wrong with a queue_log: shape, call life cycles, times that disagree.

    Every caller that entered a queue must end answered (CONNECT, then one
    COMPLETEAGENT/COMPLETECALLER) or abandoned, with hold, call and wait
    times equal to the differences of the line times, as app_queue computes
    them.  Calls still open at the end are problems unless allow_open.
    """
    problems: list[str] = []
    members: set[tuple[str, str]] = set()
    calls: dict[str, list[Entry]] = {}
    last_epoch = 0
    for n, line in enumerate(lines, 1):
        try:
            e = parse_line(line)
        except ValueError as err:
            problems.append(f"line {n}: {err}")
            continue
        where = f"line {n} ({e.event} {e.uniqueid})"
        if e.event not in EVENTS:
            problems.append(f"{where}: unknown event")
            continue
        if e.epoch < last_epoch:
            problems.append(f"{where}: time goes back ({e.epoch} < {last_epoch})")
        last_epoch = max(last_epoch, e.epoch)
        try:
            _check_fields(e)
        except (ValueError, IndexError) as err:
            problems.append(f"{where}: bad data {e.data}: {err}")
            continue
        if e.event == QUEUESTART:
            continue
        if e.event == ADDMEMBER:
            members.add((e.queue, e.agent))
            continue
        history = calls.setdefault(e.uniqueid, [])
        problems.extend(f"{where}: {p}" for p in _next_in_call(history, e, members))
        history.append(e)
    if not allow_open:
        for uid, history in calls.items():
            if history and history[-1].event not in (COMPLETEAGENT, COMPLETECALLER, ABANDON):
                problems.append(f"call {uid}: still open after {history[-1].event}")
    return problems


_FIELD_COUNTS = {
    QUEUESTART: 1,
    ADDMEMBER: 1,
    ENTERQUEUE: 3,
    CONNECT: 3,
    COMPLETEAGENT: 3,
    COMPLETECALLER: 3,
    ABANDON: 3,
    RINGNOANSWER: 1,
}
_NUMERIC = {
    ENTERQUEUE: (2,),
    CONNECT: (0, 2),
    COMPLETEAGENT: (0, 1, 2),
    COMPLETECALLER: (0, 1, 2),
    ABANDON: (0, 1, 2),
    RINGNOANSWER: (0,),
}


def _check_fields(e: Entry) -> None:
    want = _FIELD_COUNTS[e.event]
    if len(e.data) != want:
        raise ValueError(f"{len(e.data)} data fields, want {want}")
    for i in _NUMERIC.get(e.event, ()):
        if int(e.data[i]) < 0:
            raise ValueError(f"field {i} negative")


def _next_in_call(history: list[Entry], e: Entry, members: set[tuple[str, str]]) -> list[str]:
    """Problems with e as the next line of a call whose earlier lines are history."""
    if not history:
        return [] if e.event == ENTERQUEUE else ["call does not start with ENTERQUEUE"]
    enter = history[0]
    last = history[-1]
    if e.event == ENTERQUEUE:
        return ["second ENTERQUEUE for one unique id"]
    if last.event in (COMPLETEAGENT, COMPLETECALLER, ABANDON):
        return [f"after the call ended ({last.event})"]
    if e.queue != enter.queue:
        return [f"queue {e.queue} differs from ENTERQUEUE's {enter.queue}"]
    out: list[str] = []
    if e.agent != NONE and (e.queue, e.agent) not in members:
        out.append(f"{e.agent} was never added to {e.queue}")
    if e.event in (RINGNOANSWER, ABANDON, CONNECT) and last.event == CONNECT:
        out.append(f"{e.event} after CONNECT")
    if e.event == ABANDON:
        if e.num(2) != e.epoch - enter.epoch:
            out.append(f"waittime {e.num(2)} s, lines {e.epoch - enter.epoch} s apart")
        if e.num(1) != enter.num(2):
            out.append(f"origposition {e.num(1)}, ENTERQUEUE said {enter.num(2)}")
        if not 1 <= e.num(0) <= e.num(1):
            out.append(f"position {e.num(0)} outside 1..origposition")
    elif e.event == CONNECT:
        if e.num(0) != e.epoch - enter.epoch:
            out.append(f"holdtime {e.num(0)} s, lines {e.epoch - enter.epoch} s apart")
    elif e.event in (COMPLETEAGENT, COMPLETECALLER):
        if last.event != CONNECT:
            return [f"{e.event} without CONNECT"]
        if e.agent != last.agent:
            out.append(f"completed by {e.agent}, connected to {last.agent}")
        if e.num(0) != last.num(0):
            out.append(f"holdtime {e.num(0)}, CONNECT said {last.num(0)}")
        if e.num(1) != e.epoch - last.epoch:
            out.append(f"calltime {e.num(1)} s, lines {e.epoch - last.epoch} s apart")
        if e.num(2) != enter.num(2):
            out.append(f"origposition {e.num(2)}, ENTERQUEUE said {enter.num(2)}")
    return out
