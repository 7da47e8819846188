"""One serial port's life in the daemon: open, serve a session, reconnect.

The port's file descriptor sits in the event loop (`add_reader`), as
pyserial-asyncio does it on POSIX, so a quiet or jammed port costs nothing
and never holds up the others; writes that would block wait in a buffer for
`add_writer`.  Everything protocol lives in `Session`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import termios
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import serial

from deskline.errors import DesklineError
from deskline.serial_link import open_port
from deskline.session import ONLINE, RELEASED, Command, FloorLight, Session

if TYPE_CHECKING:
    from deskline.daemon import Daemon

TICK_S = 0.05
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 5.0)  # hot-plugged consoles come back quickly


class ConsoleLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Every line names the console and its port."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = dict(kwargs.pop("extra", {}))
        extra.update(self.extra or {})
        kwargs["extra"] = extra
        return msg, kwargs


class PortWorker:
    """Keeps one port served until the daemon stops or the port is released."""

    def __init__(self, daemon: Daemon, device: str, baud: int = 115200) -> None:
        self.daemon = daemon
        self.device = device
        self.baud = baud
        self.session: Session | None = None
        self.ser: serial.Serial | None = None
        self.fd = -1
        self.state = "starting"  # starting / open / waiting / released / stopped
        self.last_error = ""
        self.opened_at = 0.0
        self.reconnects = 0
        self.released = False
        self.attach_event = asyncio.Event()
        self.log = ConsoleLog(logging.getLogger("deskline.port"), {"console": "-", "port": device})
        self._outbuf = bytearray()
        self._writing = False
        self._closed = asyncio.Event()
        self._hello_busy = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._stop = False
        self.gone = False  # the port no longer exists (unplugged, glob lost it)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"port:{self.device}")

    async def stop(self) -> None:
        self._stop = True
        self._closed.set()
        self.attach_event.set()
        if self._task is not None:
            await asyncio.wait([self._task], timeout=5)
        self._close()

    @property
    def device_id(self) -> str:
        return self.session.device_id if self.session else ""

    @property
    def online(self) -> bool:
        """The port is open and its console has said hello: it takes commands."""
        return self.state == "open" and self.session is not None and self.session.state == ONLINE

    # --- life cycle -----------------------------------------------------------------
    async def _run(self) -> None:
        failures = 0
        while not self._stop:
            if self.released:
                self.state = "released"
                await self.attach_event.wait()
                self.attach_event.clear()
                continue
            try:
                self._open()
            except DesklineError as e:
                self.gone = not os.path.exists(self.device)
                if str(e) != self.last_error:
                    self.log.warning("%s", e)
                self.last_error = str(e)
                self.state = "waiting"
                delay = BACKOFF_S[min(failures, len(BACKOFF_S) - 1)]
                failures += 1
                await self._sleep(delay)
                continue
            failures = 0
            self.gone = False
            self.last_error = ""
            await self._serve()
            self._close()
            if not self._stop and not self.released:
                self.reconnects += 1
                await self._sleep(BACKOFF_S[0])
        self.state = "stopped"

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.attach_event.wait(), seconds)
            self.attach_event.clear()
        except TimeoutError:
            pass

    def _open(self) -> None:
        ser = open_port(self.device, self.baud)
        self.ser = ser
        self.fd = ser.fd
        self.state = "open"
        self.opened_at = time.time()
        self._closed = asyncio.Event()
        self._outbuf.clear()
        now = time.monotonic()
        self.session = Session(self.device, now, floor_light=FloorLight())
        self.log.extra = {"console": "-", "port": self.device}
        self.log.info("port open")
        asyncio.get_running_loop().add_reader(self.fd, self._readable)

    async def _serve(self) -> None:
        session = self.session
        assert session is not None
        while not self._closed.is_set():
            session.tick(time.monotonic())
            self._pump()
            try:
                await asyncio.wait_for(self._closed.wait(), TICK_S)
            except TimeoutError:
                pass
        session.closed()
        self._pump()
        if session.device_id:
            self.daemon.writer.submit_disconnect(session.device_id)

    def _close(self) -> None:
        loop = asyncio.get_running_loop()
        if self.fd >= 0:
            loop.remove_reader(self.fd)
            if self._writing:
                loop.remove_writer(self.fd)
                self._writing = False
        if self.fd >= 0:
            # Drop the exclusive lock first: where another holder keeps the
            # tty open (a pty's other side, a hub driver) it would outlive
            # our close and lock the next tool out.
            with contextlib.suppress(OSError):
                fcntl.ioctl(self.fd, termios.TIOCNXCL)
        self.fd = -1
        if self.ser is not None:
            try:
                self.ser.close()
            except (serial.SerialException, OSError):
                pass
            self.ser = None
            self.log.info("port closed")

    def _lost(self, why: str) -> None:
        if not self._closed.is_set():
            self.log.warning("link lost: %s", why)
            self._closed.set()
            if self.fd >= 0:
                loop = asyncio.get_running_loop()
                loop.remove_reader(self.fd)

    # --- bytes ----------------------------------------------------------------------
    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return
        except OSError as e:
            self._lost(os.strerror(e.errno) if e.errno else str(e))
            return
        if not data:
            self._lost("end of file")
            return
        session = self.session
        if session is None:
            return
        session.feed(data, time.monotonic())
        self._pump()

    def _write(self, data: bytes) -> None:
        if self.fd < 0 or self._closed.is_set():
            return
        self._outbuf += data
        if not self._writing:
            self._flush_out()

    def _flush_out(self) -> None:
        while self._outbuf:
            try:
                n = os.write(self.fd, self._outbuf)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno == errno.EINTR:
                    continue
                self._lost(f"write failed: {os.strerror(e.errno) if e.errno else e}")
                return
            del self._outbuf[:n]
        loop = asyncio.get_running_loop()
        if self._outbuf and not self._writing:
            loop.add_writer(self.fd, self._flush_out)
            self._writing = True
        elif not self._outbuf and self._writing:
            loop.remove_writer(self.fd)
            self._writing = False

    def _pump(self) -> None:
        """Moves what the session produced to the port, the store and the log."""
        session = self.session
        if session is None:
            return
        out, batch = session.drain()
        if out:
            self._write(out)
        # Taken before acting on them: acting may pump again (a REPL answer
        # releases the port, which pumps).
        notes, session.notes = session.notes, []
        for level, text in notes:
            self.log.log(level, "%s", text)
        finished, session.finished = session.finished, []
        for cmd in finished:
            self.daemon.command_finished(self, cmd)
        if session.pending_hello is not None and not self._hello_busy:
            self._hello_busy = True
            task = asyncio.create_task(self._store_hello(session, dict(session.pending_hello)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if not batch.is_empty():
            if batch.events:
                self.daemon.writer.submit(batch, lambda acked: self._committed(session, acked))
            else:
                self.daemon.writer.submit(batch)

    def _committed(self, session: Session, acked: dict[str, int] | None) -> None:
        if session is not self.session:
            return
        if acked is None:
            session.commit_failed()
        elif session.device_id in acked:
            session.committed(acked[session.device_id], time.monotonic())
        self._pump()

    async def _store_hello(self, session: Session, hello: dict[str, Any]) -> None:
        try:
            device_id = hello["device_id"]
            self.log.extra = {"console": device_id, "port": self.device}
            outcome, config, escalations = await self.daemon.writer.call(
                self.daemon.hello_lookup, device_id, hello, self.device, time.time()
            )
            if session is not self.session or session.pending_hello != hello:
                return  # the console said hello again meanwhile: that one wins
            self.daemon.claim(self, device_id)
            self.log.info(
                "hello: fw %s app %s board %s boot %d reason 0x%02x, resume after seq %d, "
                "journal depth %d, config %d%s",
                hello["fw_version"],
                hello["app_version"],
                hello["board"],
                hello["boot_count"],
                hello["reboot_reason"],
                outcome.acked_seq,
                hello["journal_depth"],
                hello["config_version"],
                "" if config else " (console not on the floor config: no config pushed)",
            )
            session.floor_light = self.daemon.floor_light_for(device_id)
            session.hello_stored(outcome, time.monotonic(), config=config, escalations=escalations)
        except Exception:
            self.log.exception("hello could not be stored; asking again")
            session.pending_hello = None
        finally:
            self._hello_busy = False
            self._pump()

    # --- requests from the daemon ---------------------------------------------------
    def command(
        self, what: str, on_done: Callable[[Command], None] | None = None, **fields: Any
    ) -> Command:
        session = self.session
        if session is None or session.state != ONLINE:
            cmd = Command(what, 0, 0.0, status=-1, text="console not online")
            if on_done:
                on_done(cmd)
            return cmd
        cmd = session.command(what, time.monotonic(), on_done=on_done, **fields)
        self._pump()
        return cmd

    def release(self) -> None:
        """Hands the port over (flashing, mpremote): closes it until attach()."""
        self.released = True
        if self.session is not None:
            self.session.release()
            self._pump()
        self._outbuf.clear()
        self._closed.set()
        self.log.info("port released to another tool")

    def attach(self) -> None:
        self.released = False
        self.attach_event.set()
        self.log.info("port taken back")

    def poke(self) -> None:
        """Re-run the session's output now (after the daemon changed something)."""
        if self.session is not None and self.session.state != RELEASED:
            self._pump()
