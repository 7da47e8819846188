"""One console's protocol session, with no IO of its own.

The daemon feeds it bytes and clock ticks and drains what it produced:
bytes for the port, rows for the store, log lines, finished commands.  Kept
free of sockets, threads and SQLite so hypothesis can throw any byte stream
and any interleaving at it, and so a misbehaving console can only ever hurt
its own session.

Exactly-once rests on three rules kept here and in the store: events are
forwarded to the store in sequence order only (a gap waits for the console's
go-back-N resend), the ACK names only what the store reported committed, and
a commit that failed rewinds forwarding to the last committed sequence.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from deskline.firmware import updcodes as upd
from deskline.store import Batch, EventRow, HelloOutcome
from deskline.wire import StreamDecoder, WireError, codec, decode, encode
from deskline.xferout import FileSend

log = logging.getLogger("deskline.session")

PROTOCOL = codec.VERSION
KEEPALIVE_S = 5.0  # well inside the console's 15 s default keepalive_s
HELLO_RETRY_S = (1.0, 2.0, 4.0, 8.0, 15.0)
COMMAND_TIMEOUT_S = 5.0
XFER_CHUNK = 512
XFER_RETRIES = 5
CONFIG_RETRY_S = 30.0
NO_SPACE_RETRY_S = 2.0
EARLY_MAX = 64
ACK_REPEAT_S = 0.2  # a duplicate re-ack at most this often: noise must not flood
ESC_CLOSED = (codec.ESC_RESOLVED, codec.ESC_CANCELLED)
AWAIT_HELLO, ONLINE, INCOMPATIBLE, RELEASED = "await-hello", "online", "incompatible", "released"
CLOSED = "closed"  # the port went away; the worker makes a new session when it is back


@dataclass
class FloorLight:
    """What a desk's floor light should show, as the FLOOR frame carries it."""

    band: int = codec.BAND_UNKNOWN
    sl_permille: int = 0
    target_pct: int = 80
    waiting: int = 0
    longest_wait: int = 0


@dataclass
class Command:
    """A host command in flight; `status` is set when the console answered."""

    kind: str
    cmd_id: int
    deadline: float
    status: int | None = None  # a RESULT status, or -1 on timeout / link loss
    text: str = ""
    on_done: Callable[[Command], None] | None = None

    @property
    def done(self) -> bool:
        return self.status is not None


@dataclass
class _ConfigPush:
    version: int
    raw: bytes
    xfer_id: int
    begin_cmd: int
    stage: str = "begin"  # begin -> data -> end
    offset: int = 0
    tries: int = 0
    deadline: float = 0.0
    end_cmd: int = 0


@dataclass
class Health:
    """Link health as `deskline devices` and the floor view show it."""

    frames_in: int = 0
    frames_out: int = 0
    bad_frames: int = 0
    wrong_version: int = 0
    bad_schema: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    events_before_hello: int = 0
    last_frame: float = 0.0


class Session:
    """The host end of one console link (see the module docstring)."""

    def __init__(
        self,
        port: str,
        now: float,
        *,
        wall: Callable[[], float] = time.time,
        floor_light: FloorLight | None = None,
    ) -> None:
        self.port = port
        self.wall = wall
        self.state = AWAIT_HELLO
        self.device_id = ""
        self.hello: dict[str, Any] = {}
        self.decoder = StreamDecoder()
        self.health = Health()
        self.floor_light = floor_light or FloorLight()
        # Outputs, drained by the driver after each call.
        self.out = bytearray()
        self.batch = Batch()
        self.pending_hello: dict[str, Any] | None = None
        self.notes: list[tuple[int, str]] = []
        self.finished: list[Command] = []
        # Sequence bookkeeping.
        self.acked = 0  # committed in the store and acknowledged
        self.forwarded = 0  # handed to the store (>= acked)
        self._last_ack_sent = 0.0
        # Timers.
        self._hello_tries = 0
        self._next_hello_req = now  # ask at once: the console may be mid-run
        self._next_keepalive = now
        self._cmd = 0
        self._xfer = 0
        self.commands: dict[int, Command] = {}
        self.config_push: _ConfigPush | None = None
        self.config_wanted: tuple[int, bytes] | None = None
        self._config_retry_at = 0.0
        self._config_force = False  # push config_wanted even at the version the console runs
        self.config_failures = 0
        # An update's file on its way (xferout.py) and those queued behind
        # it; one XFER at a time, so a config push waits for them and they
        # wait for a config push.
        self.file_send: FileSend | None = None
        self.file_queue: list[FileSend] = []
        self.file_ending: list[FileSend] = []  # END sent, its answer awaited
        self.update_events: list[dict[str, Any]] = []  # EV_UPDATE, for update jobs
        self.hellos = 0  # hellos heard: a new one after a switch means it restarted
        self.status_mirror: dict[str, Any] = {}
        self._seen_bad = 0
        self._early: list[dict[str, Any]] = []

    # --- inputs ---------------------------------------------------------------------
    def feed(self, data: bytes, now: float) -> None:
        """Bytes from the port; never raises on what a console or the line did."""
        if self.state == RELEASED:
            return
        for body in self.decoder.feed(data):
            try:
                msg = decode(body)
            except WireError as e:
                self._bad(str(e), body)
                continue
            except (KeyError, ValueError, IndexError, UnicodeError) as e:
                self._bad(f"undecodable frame: {e}", body)
                continue
            self.health.frames_in += 1
            self.health.last_frame = now
            self._handle(msg, now)
        bad = self.decoder.crc_errors + self.decoder.cobs_errors + self.decoder.oversize
        if bad != self._seen_bad:
            self.health.bad_frames += bad - self._seen_bad
            self._count("bad_frames", bad - self._seen_bad)
            self._seen_bad = bad

    def tick(self, now: float) -> None:
        """Timers: hello retries, keepalive and time sync, command deadlines."""
        if self.state == RELEASED:
            return
        if self.state in (AWAIT_HELLO, INCOMPATIBLE) and now >= self._next_hello_req:
            if self.pending_hello is None:
                self._send(codec.HELLO_REQ)
            step = HELLO_RETRY_S[min(self._hello_tries, len(HELLO_RETRY_S) - 1)]
            self._hello_tries += 1
            self._next_hello_req = now + step
        if self.state == ONLINE and now >= self._next_keepalive:
            self._keepalive()
            self._floor()
            self._next_keepalive = now + KEEPALIVE_S
        for cmd in list(self.commands.values()):
            if now >= cmd.deadline:
                self._finish(cmd, -1, "no answer from the console")
        self._tick_config(now)
        self._tick_file(now)

    def hello_stored(
        self,
        outcome: HelloOutcome,
        now: float,
        *,
        config: tuple[int, bytes] | None = None,
        escalations: list[dict[str, Any]] | None = None,
    ) -> None:
        """The store has the hello: resume, sync time, catch the desk up."""
        self.pending_hello = None
        self.state = ONLINE
        level = logging.WARNING if outcome.new_epoch or outcome.gap else logging.INFO
        for note in outcome.notes:
            self.notes.append((level, note))
        self.acked = self.forwarded = outcome.acked_seq
        self._keepalive()
        # The console holds everything after first_unacked-1; tell it at once
        # what the store already has so it does not resend that.
        if self.hello.get("first_unacked", 1) - 1 < self.acked:
            self._ack(now, force=True)
        self._floor()
        self._next_keepalive = now + KEEPALIVE_S
        for esc in escalations or []:
            self._send_esc(esc, now)
        early, self._early = self._early, []
        for f in early:
            self._on_event(f, now)
        self.config_wanted = config
        self._config_retry_at = now
        self._tick_config(now)

    def committed(self, acked: int, now: float) -> None:
        """The store committed events up to acked: now they may be acknowledged."""
        if acked > self.acked:
            self.acked = acked
            self.forwarded = max(self.forwarded, acked)
            self._ack(now, force=True)

    def commit_failed(self) -> None:
        """The store refused a batch: forward again from what it has."""
        self.forwarded = self.acked

    def release(self) -> None:
        """The port is handed to another tool: stop speaking on it."""
        self.state = RELEASED
        for cmd in list(self.commands.values()):
            self._finish(cmd, -1, "port released")
        self._file_failed("port released")

    def closed(self) -> None:
        """The port went away: whatever waits on the console fails now."""
        for cmd in list(self.commands.values()):
            self._finish(cmd, -1, "console disconnected")
        self.config_push = None
        self._file_failed("console disconnected")
        if self.state != RELEASED:
            self.state = CLOSED

    # --- commands down --------------------------------------------------------------
    def command(
        self,
        what: str,
        now: float,
        on_done: Callable[[Command], None] | None = None,
        timeout: float = COMMAND_TIMEOUT_S,
        **fields: Any,
    ) -> Command:
        """Sends a cmd_id-carrying command (reboot, repl, call, esc_status)."""
        mtype = {
            "reboot": codec.REBOOT,
            "repl": codec.REPL,
            "call": codec.CALL,
            "esc_status": codec.ESC_STATUS,
        }[what]
        cmd = Command(what, self._next_cmd(), now + timeout, on_done=on_done)
        if self.state != ONLINE:
            self._finish(cmd, -1, f"console not online ({self.state})")
            return cmd
        self.commands[cmd.cmd_id] = cmd
        self._send(mtype, cmd_id=cmd.cmd_id, **fields)
        return cmd

    def set_floor(self, light: FloorLight) -> None:
        self.floor_light = light
        if self.state == ONLINE:
            self._floor()

    def want_config(
        self, config: tuple[int, bytes] | None, now: float, force: bool = False
    ) -> None:
        """The floor config changed: push it unless the console runs it already
        (force: a supervisor asked to push it again all the same)."""
        self.config_wanted = config
        self._config_force = force
        self.config_failures = 0
        self._config_retry_at = now
        self._tick_config(now)

    # --- frames up ------------------------------------------------------------------
    def _handle(self, msg: Any, now: float) -> None:
        name = msg.name
        if name == "hello":
            self._on_hello(msg.fields, now)
        elif name == "event":
            self._on_event(msg.fields, now)
        elif name == "heartbeat" and self.device_id:
            self.batch.heartbeats.append((self.device_id, self.wall(), dict(msg.fields)))
        elif name == "status":
            self.status_mirror = dict(msg.fields)
            if self.device_id:
                self.batch.statuses[self.device_id] = (self.wall(), dict(msg.fields))
        elif name == "log":
            self.batch.logs.append((self.device_id, self.wall(), msg["level"], msg["text"]))
            self.notes.append((logging.INFO, f"console says: {msg['text']}"))
        elif name == "result":
            self._on_result(msg.fields, now)
        elif name == "xfer_ack":
            self._on_xfer_ack(msg.fields, now)
        else:  # a host-bound type from a console: echo or crossed wires
            self._bad(f"unexpected {name} frame from a console", b"")

    def _on_hello(self, f: dict[str, Any], now: float) -> None:
        if f["proto"] != PROTOCOL:
            self._incompatible(f"console speaks protocol {f['proto']}, this daemon {PROTOCOL}")
            return
        if not f["device_id"]:
            self._incompatible("console sent an empty device id")
            return
        if self.device_id and f["device_id"] != self.device_id:
            self.notes.append(
                (logging.WARNING, f"port now has console {f['device_id']} (was {self.device_id})")
            )
            self.acked = self.forwarded = 0
        self.device_id = f["device_id"]
        self.hello = dict(f)
        self.hellos += 1
        self.state = AWAIT_HELLO
        self.pending_hello = dict(f)
        self._early = []
        self.config_push = None  # a rebooted console forgot any transfer
        self._file_failed("console restarted")
        for cmd in list(self.commands.values()):
            if cmd.kind not in ("reboot", "repl"):
                self._finish(cmd, -1, "console restarted")
            else:
                self._finish(cmd, codec.OK, "console restarted")

    def _on_event(self, f: dict[str, Any], now: float) -> None:
        if self.state != ONLINE:
            # Right after a hello the console resends its window while the
            # store looks the console up: keep those rather than wait out
            # a go-back-N timeout.
            if self.pending_hello is not None and len(self._early) < EARLY_MAX:
                self._early.append(f)
            else:
                self.health.events_before_hello += 1
            return
        seq = f["seq"]
        if seq <= self.forwarded:
            self.health.duplicates += 1
            if seq <= self.acked:
                self._ack(now, force=False)
            return
        if seq != self.forwarded + 1:
            self.health.out_of_order += 1
            return
        self.forwarded = seq
        if f["kind"] == upd.EV_UPDATE:
            self.update_events.append(dict(f))
            # The hello said "on trial"; the verdict changes that.
            done = {upd.UPD_APP_OK: upd.HELLO_TRIAL, upd.UPD_FW_OK: upd.HELLO_FW_TRIAL}
            self.hello["flags"] = self.hello.get("flags", 0) & ~done.get(f["a"], 0)
        self.batch.events.append(
            EventRow(
                self.device_id,
                seq,
                f["uptime_ms"],
                f["epoch"],
                f["kind"],
                f["a"],
                f["b"],
                f["c"],
                f["ref"],
                f["text"],
                self.wall(),
            )
        )

    def _on_result(self, f: dict[str, Any], now: float) -> None:
        for fs in self._files():
            if fs.on_result(f, now, self._send):
                self._file_settled(now)
                return
        push = self.config_push
        if push is not None and f["cmd_id"] in (push.begin_cmd, push.end_cmd):
            self._config_result(push, f, now)
            return
        cmd = self.commands.get(f["cmd_id"])
        if cmd is not None:
            self._finish(cmd, f["status"], f["text"])

    def _finish(self, cmd: Command, status: int, text: str) -> None:
        self.commands.pop(cmd.cmd_id, None)
        cmd.status = status
        cmd.text = text
        self.finished.append(cmd)
        if cmd.on_done is not None:
            cmd.on_done(cmd)

    # --- config push ----------------------------------------------------------------
    def _tick_config(self, now: float) -> None:
        push = self.config_push
        if push is not None:
            if now >= push.deadline:
                push.tries += 1
                if push.tries > XFER_RETRIES:
                    self._config_failed(f"config {push.version}: no answer", now)
                else:
                    self._config_send(push, now)
            return
        wanted = self.config_wanted
        if self.state != ONLINE or wanted is None or now < self._config_retry_at:
            return
        if self.file_send is not None or self.file_queue or self.file_ending:
            return  # after the update's files
        version, raw = wanted
        if self.hello.get("config_version") == version and not self._config_force:
            return
        self._config_force = False
        self._xfer = (self._xfer % 0xFFFF) + 1
        push = _ConfigPush(version, raw, self._xfer, self._next_cmd())
        self.config_push = push
        self.notes.append((logging.INFO, f"pushing config {version} ({len(raw)} bytes)"))
        self._config_send(push, now)

    def _config_send(self, push: _ConfigPush, now: float) -> None:
        push.deadline = now + 2.0
        if push.stage == "begin":
            self._send(
                codec.XFER_BEGIN,
                cmd_id=push.begin_cmd,
                xfer_id=push.xfer_id,
                kind=codec.XFER_CONFIG,
                size=len(push.raw),
                sha256=hashlib.sha256(push.raw).digest(),
                name="config.json",
            )
        elif push.stage == "data":
            end = min(push.offset + XFER_CHUNK, len(push.raw))
            self._send(
                codec.XFER_DATA,
                xfer_id=push.xfer_id,
                offset=push.offset,
                data=push.raw[push.offset : end],
            )
        else:
            self._send(codec.XFER_END, cmd_id=push.end_cmd, xfer_id=push.xfer_id)

    def _config_result(self, push: _ConfigPush, f: dict[str, Any], now: float) -> None:
        status = f["status"]
        if push.stage == "begin" and f["cmd_id"] == push.begin_cmd:
            if status != codec.OK:
                self._config_failed(f"config {push.version} refused at begin: {f['text']}", now)
                return
            push.stage, push.tries = "data", 0
            self._config_send(push, now)
        elif push.stage == "end" and f["cmd_id"] == push.end_cmd:
            self.config_push = None
            if status == codec.OK:
                self.hello["config_version"] = push.version
                self.config_failures = 0
                self.notes.append((logging.INFO, f"config {push.version} applied"))
            else:
                self._config_failed(
                    f"config {push.version} refused: {f['text']}",
                    now,
                    soon=status == codec.E_NO_SPACE,
                )

    def _on_xfer_ack(self, f: dict[str, Any], now: float) -> None:
        fs = self.file_send
        if fs is not None and f["xfer_id"] == fs.xfer_id:
            fs.on_ack(f, now, self._send)
            self._file_settled(now)
            return
        push = self.config_push
        if push is None or push.stage != "data" or f["xfer_id"] != push.xfer_id:
            return
        if f["status"] != codec.OK:
            self._config_failed(f"config {push.version}: transfer refused ({f['status']})", now)
            return
        push.offset = min(f["offset"], len(push.raw))
        push.tries = 0
        if push.offset >= len(push.raw):
            push.stage = "end"
            push.end_cmd = self._next_cmd()
        self._config_send(push, now)

    def _config_failed(self, text: str, now: float, soon: bool = False) -> None:
        self.config_push = None
        self.config_failures += 1
        self._count("config_push_failed", 1)
        # A console short of heap right now may have room a moment later; a
        # refused or unanswered config waits longer.
        if soon:
            self.notes.append((logging.WARNING, text))
            wait = NO_SPACE_RETRY_S * min(self.config_failures, 5)
        else:
            self.notes.append((logging.ERROR, text))
            wait = CONFIG_RETRY_S * min(self.config_failures, 10)
        self._config_retry_at = now + wait

    # --- update files ---------------------------------------------------------------
    def send_file(
        self,
        kind: int,
        name: str,
        data: bytes,
        now: float,
        on_done: Callable[[FileSend], None] | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> FileSend:
        """Streams one file (XFER kind 2 or 3) after those queued; on_done(fs) when it ended.

        The next file starts the moment one ends, without a round trip
        through the caller.
        """
        self._xfer = (self._xfer % 0xFFFF) + 1
        begin = self._next_cmd()
        fs = FileSend(kind, name, data, self._xfer, begin, self._next_cmd(), on_done, on_progress)
        if self.state != ONLINE:
            fs.finish(-1, f"console not online ({self.state})")
        else:
            self.file_queue.append(fs)
            self._tick_file(now)
        return fs

    def drop_files(self, text: str) -> None:
        """Fails the files queued behind the one on its way."""
        queue, self.file_queue = self.file_queue, []
        for fs in queue:
            fs.finish(-1, text)

    def _tick_file(self, now: float) -> None:
        for fs in self._files():
            fs.tick(now, self._send)
        self._file_settled(now)

    def _files(self) -> list[FileSend]:
        return [*self.file_ending, *([self.file_send] if self.file_send else [])]

    def _file_settled(self, now: float) -> None:
        # A file whose END is out makes way for the next at once: the
        # console takes END, then the next BEGIN, in order.
        fs = self.file_send
        if fs is not None and (fs.done or fs.stage == "end"):
            self.file_send = None
            if not fs.done:
                self.file_ending.append(fs)
        self.file_ending = [f for f in self.file_ending if not f.done]
        if self.file_send is None and self.file_queue and self.config_push is None:
            self.file_send = self.file_queue.pop(0)
            self.file_send.start(now, self._send)

    def _file_failed(self, text: str) -> None:
        files = self._files()
        self.file_send, self.file_ending = None, []
        for fs in files:
            fs.finish(-1, text)
        self.drop_files(text)

    # --- helpers --------------------------------------------------------------------
    def _incompatible(self, text: str) -> None:
        if self.state != INCOMPATIBLE:
            self.notes.append((logging.ERROR, f"{text}: not served (update the daemon or reflash)"))
        self.state = INCOMPATIBLE
        self.health.wrong_version += 1
        self._count("wrong_version", 1)

    def _bad(self, text: str, body: bytes) -> None:
        if text.startswith("protocol version"):
            theirs = text.rsplit(" ", 1)[-1]
            self._incompatible(f"console speaks protocol {theirs}, this daemon {PROTOCOL}")
            return
        self.health.bad_schema += 1
        self._count("bad_schema", 1)
        if self.health.bad_schema <= 3 or self.health.bad_schema % 100 == 0:
            self.notes.append((logging.WARNING, f"bad frame ({text}); {len(body)} bytes"))

    def _count(self, name: str, n: int) -> None:
        self.batch.counters.append((self.device_id or None, name, n))

    def _next_cmd(self) -> int:
        self._cmd = (self._cmd % 0xFFFF) + 1
        return self._cmd

    def _send(self, mtype: int, **fields: Any) -> None:
        self.out += encode(mtype, **fields)
        self.health.frames_out += 1

    def _ack(self, now: float, force: bool) -> None:
        if force or now - self._last_ack_sent >= ACK_REPEAT_S:
            self._send(codec.ACK, seq=self.acked)
            self._last_ack_sent = now

    def _keepalive(self) -> None:
        t = self.wall()
        self._send(codec.KEEPALIVE, epoch=int(t) & 0xFFFFFFFF, ms=int(t * 1000) % 1000)

    def _floor(self) -> None:
        light = self.floor_light
        self._send(
            codec.FLOOR,
            band=light.band,
            sl_permille=min(light.sl_permille, 0xFFFF),
            target_pct=light.target_pct,
            waiting=min(light.waiting, 0xFFFF),
            longest_wait=min(light.longest_wait, 0xFFFF),
        )

    def _send_esc(self, esc: dict[str, Any], now: float) -> None:
        self.command(
            "esc_status",
            now,
            esc_id=int(esc["esc_seq"]),
            kind=int(esc.get("kind", 0)),
            status=int(esc["status"]),
            deadline_s=int(esc.get("deadline_s", 0x7FFFFFFF)),
            ticket=str(esc.get("ticket", "")),
            hotline=str(esc.get("hotline", "")),
        )

    def drain(self) -> tuple[bytes, Batch]:
        """Takes the bytes to write and the rows to store produced so far."""
        out, self.out = bytes(self.out), bytearray()
        batch, self.batch = (
            self.batch,
            Batch(),
        )
        return out, batch
