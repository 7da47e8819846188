"""Updates of one console, run inside the daemon (it owns the ports).

An `UpdateJob` streams a signed bundle's files into the console's inactive
app slot while the console keeps serving its desk (`Session.send_file`),
has it check everything and restart into the new app on trial, and waits
for the verdict the console journals: EV_UPDATE "app confirmed" once the new
app ran and heard this daemon, or "rolled back" after it failed.  With a
firmware image (listed in the bundle's signed manifest) the same happens
first for MicroPython itself, through the ESP32 OTA partitions.

A job survives what a floor does to it: the console restarting, the cable
coming out, a chunk lost on the line.  It waits for the console to come
back and sends the file again (files the slot already holds are skipped).
The staged rollout across consoles is `deskline.rollout`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from deskline.bundle import Bundle
from deskline.firmware import updcodes as upd
from deskline.session import ONLINE, Command, Session
from deskline.wire import codec
from deskline.xferout import FileSend

if TYPE_CHECKING:
    from deskline.portworker import PortWorker

log = logging.getLogger("deskline.update")
T = TypeVar("T")

ONLINE_WAIT_S = 60.0  # for the console to (re)appear before giving up
FILE_ATTEMPTS = 6  # sends of one file across restarts and unplugs
# The console confirms after running 2 s and hearing us, or gives up after
# 60 s per start, two starts: beyond that something else is wrong.
VERDICT_WAIT_S = 150.0
POLL_S = 0.1
DONE_STATES = ("done", "failed", "rolled_back", "up_to_date")
# Answers worth sending again: no answer, busy, damaged on the way, short of
# heap for a moment (the console says "out of memory").
_AGAIN = (-1, codec.E_BUSY, codec.E_CHECKSUM, codec.E_NO_SPACE)


class UpdateFailed(Exception):
    """The job ends here; the message says why."""

    def __init__(self, text: str, state: str = "failed") -> None:
        super().__init__(text)
        self.state = state


@dataclass
class UpdateJob:
    """One console's update; `view()` is what `deskline update` shows."""

    device: str
    bundle: Bundle
    firmware: str | None = None  # the bundle's firmware entry to install first
    force: bool = False
    state: str = "queued"  # queued, sending, checking, trial, done, failed, rolled_back, up_to_date
    stage: str = ""
    file: str = ""
    done_bytes: int = 0
    total_bytes: int = 0
    resends: int = 0
    error: str = ""
    from_version: str = ""
    started: float = field(default_factory=time.time)
    finished: float | None = None
    _base: int = 0  # bytes of files already through

    def view(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "state": self.state,
            "stage": self.stage,
            "file": self.file,
            "done_bytes": self.done_bytes,
            "total_bytes": self.total_bytes,
            "resends": self.resends,
            "error": self.error,
            "from_version": self.from_version,
            "to_version": self.bundle.version,
            "started": self.started,
            "finished": self.finished,
        }


class Updater:
    """The daemon's update jobs, keyed by console."""

    def __init__(self, worker_for: Callable[[str], PortWorker | None]) -> None:
        self.worker_for = worker_for
        self.jobs: dict[str, UpdateJob] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, job: UpdateJob) -> None:
        old = self.jobs.get(job.device)
        if old is not None and old.state not in DONE_STATES:
            raise ValueError(f"console {job.device} is already being updated ({old.state})")
        self.jobs[job.device] = job
        self._tasks[job.device] = asyncio.create_task(self._run(job), name=f"update:{job.device}")

    async def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _run(self, job: UpdateJob) -> None:
        try:
            await _Runner(self, job).run()
            if job.state not in DONE_STATES:
                job.state = "done"
        except UpdateFailed as e:
            job.state, job.error = e.state, str(e)
        except asyncio.CancelledError:
            job.state, job.error = "failed", "the daemon stopped"
            raise
        except Exception as e:  # a bug must not take the daemon down
            log.exception("update of %s failed", job.device, extra=_extra(job))
            job.state, job.error = "failed", f"internal error: {e}"
        finally:
            job.finished = time.time()
            level = logging.INFO if job.state in ("done", "up_to_date") else logging.WARNING
            log.log(
                level,
                "update to %s: %s%s",
                job.bundle.version,
                job.state,
                f" ({job.error})" if job.error else "",
                extra=_extra(job),
            )


def _progress(job: UpdateJob, base: int, count: bool) -> Callable[[int, int], None]:
    """A file's progress as the job's bytes (base: the bytes before it)."""

    def progress(acked: int, size: int) -> None:
        if count:
            job.done_bytes = base + acked

    return progress


def _resolver(fut: asyncio.Future[T]) -> Callable[[T], None]:
    """A callback that settles fut once (a session calls back from its own frames)."""

    def settle(value: T) -> None:
        if not fut.done():
            fut.set_result(value)

    return settle


def _extra(job: UpdateJob) -> dict[str, str]:
    return {"console": job.device, "port": "-"}


class _Runner:
    def __init__(self, updater: Updater, job: UpdateJob) -> None:
        self.updater = updater
        self.job = job
        self.seen: dict[int, int] = {}  # id(session) -> update events read

    # --- the console ------------------------------------------------------------------
    async def online(self, timeout: float = ONLINE_WAIT_S) -> tuple[PortWorker, Session]:
        end = time.monotonic() + timeout
        while True:
            w = self.updater.worker_for(self.job.device)
            s = w.session if w is not None else None
            if w is not None and s is not None and w.online:
                return w, s
            if time.monotonic() > end:
                raise UpdateFailed(f"console {self.job.device} is not online")
            await asyncio.sleep(POLL_S)

    def events(self) -> list[dict[str, Any]]:
        """EV_UPDATE events not read yet, across the sessions the port had."""
        w = self.updater.worker_for(self.job.device)
        s = w.session if w is not None else None
        if s is None:
            return []
        start = self.seen.get(id(s), 0)
        new = s.update_events[start:]
        self.seen[id(s)] = len(s.update_events)
        return new

    # --- the steps ------------------------------------------------------------------------
    async def run(self) -> None:
        job, bundle = self.job, self.bundle
        _, s = await self.online()
        job.from_version = str(s.hello.get("app_version", ""))
        fw = bundle.firmware_entry(job.firmware) if job.firmware is not None else None
        app_needed = (
            job.force
            or job.from_version != bundle.version
            or bool(s.hello.get("flags", 0) & upd.HELLO_TRIAL)
        )
        if fw is None and not app_needed:
            job.state = "up_to_date"
            return
        files = [("MANIFEST", bundle.manifest), ("MANIFEST.sig", bundle.signature)]
        job.total_bytes = sum(len(d) for _, d in files)
        if fw is not None:
            job.total_bytes += fw.size
        if app_needed:
            job.total_bytes += sum(e.size for e in bundle.app_entries)
        job.state = "sending"
        job.stage = "manifest"
        await self.send(codec.XFER_APP_FILE, files)
        if fw is not None:
            job.stage = "firmware"
            await self.send(codec.XFER_FIRMWARE, [(fw.name, bundle.files[fw.name])])
            await self.activate(upd.REBOOT_FIRMWARE)
            await self.verdict(upd.UPD_FW_OK, upd.UPD_FW_ROLLBACK, fw.name)
            if not app_needed:
                return
            # The firmware restart may have been the app's first: the
            # slot's manifest is still there, send it again all the same.
            job.state = "sending"
            await self.send(codec.XFER_APP_FILE, files, count=False)
        job.stage = "app"
        await self.send(
            codec.XFER_APP_FILE, [(e.name, bundle.files[e.name]) for e in bundle.app_entries]
        )
        await self.activate(upd.REBOOT_APP)
        await self.verdict(upd.UPD_APP_OK, upd.UPD_APP_ROLLBACK, bundle.version)

    @property
    def bundle(self) -> Bundle:
        return self.job.bundle

    async def send(self, kind: int, files: list[tuple[str, bytes]], count: bool = True) -> None:
        """Files in order, all queued at once on the session (no round trip
        between them); after a restart or an unplug, again from the first
        one not through (the console answers `present` for what it holds)."""
        job = self.job
        pending = list(files)
        attempts = 0
        loop = asyncio.get_running_loop()
        while pending:
            w, s = await self.online()
            queued: list[tuple[str, bytes, asyncio.Future[FileSend], FileSend]] = []
            base = job._base
            for name, data in pending:
                done: asyncio.Future[FileSend] = loop.create_future()
                fs = s.send_file(
                    kind, name, data, time.monotonic(), _resolver(done), _progress(job, base, count)
                )
                queued.append((name, data, done, fs))
                base += len(data)
            w.poke()
            for name, data, done, fs in queued:
                job.file = name
                while not done.done():
                    await asyncio.wait([done], timeout=1.0)
                    if not done.done() and (w.session is not s or s.state != ONLINE):
                        # That session is served no more: nothing will answer.
                        fs.finish(-1, "console disconnected")
                        s.drop_files("console disconnected")
                got = done.result()
                job.resends += got.resends
                if got.status == codec.OK:
                    attempts = 0
                    pending.pop(0)
                    if count:
                        job._base += len(data)
                        job.done_bytes = job._base
                    continue
                s.drop_files("sent again")  # from this file on
                last = got.text or f"status {got.status}"
                if got.status not in _AGAIN:
                    # The console refused it (a signature, a bundle for another
                    # chip, a full flash): sending again will not help.
                    raise UpdateFailed(f"{name}: {last}")
                attempts += 1
                if attempts >= FILE_ATTEMPTS:
                    raise UpdateFailed(f"{name}: {last} ({FILE_ATTEMPTS} attempts)")
                await asyncio.sleep(0.5)
                break

    async def activate(self, mode: int) -> None:
        job = self.job
        job.state, job.stage, job.file = "checking", "activate", ""
        self.events()  # what came before the switch is not the verdict
        w, s = await self.online()
        heard = (s, s.hellos)
        done: asyncio.Future[Command] = asyncio.get_running_loop().create_future()
        for attempt in range(3):
            # Checking a signature and every file takes the console a while.
            s.command("reboot", time.monotonic(), on_done=_resolver(done), timeout=60.0, mode=mode)
            w.poke()
            cmd = await done
            if cmd.status != codec.E_NO_SPACE or attempt == 2:
                break
            await asyncio.sleep(1.0)
            w, s = await self.online()
            done = asyncio.get_running_loop().create_future()
        if cmd.status not in (codec.OK, -1):
            raise UpdateFailed(f"the console refused to switch: {cmd.text}")
        if cmd.status == -1 and cmd.text != "console restarted":
            # No answer: it may still have switched; the next hello tells.
            log.warning("no answer to the switch (%s); waiting for the console", cmd.text)
        job.state = "trial"
        end = time.monotonic() + ONLINE_WAIT_S
        while True:
            # A hello of a fresh start (boot counts restart at a power cut).
            _, s = await self.online()
            if (s, s.hellos) != heard and int(s.hello.get("uptime_ms", 0)) < 30000:
                break
            if time.monotonic() > end:
                raise UpdateFailed("the console did not restart into the update")
            await asyncio.sleep(POLL_S)
        # A power cut before the switch was written restarts the old app
        # with nothing on trial: no verdict will come.
        flags = int(s.hello.get("flags", 0))
        trial = upd.HELLO_TRIAL if mode == upd.REBOOT_APP else upd.HELLO_FW_TRIAL
        if not flags & (trial | upd.HELLO_ROLLED_BACK) and not (
            mode == upd.REBOOT_APP and s.hello.get("app_version") == self.bundle.version
        ):
            raise UpdateFailed("the console restarted without switching to the update")

    async def verdict(self, ok: int, rolled_back: int, what: str) -> None:
        """Waits for the console's EV_UPDATE about the trial."""
        job = self.job
        job.stage = "trial"
        end = time.monotonic() + VERDICT_WAIT_S
        while time.monotonic() < end:
            for ev in self.events():
                if ev["a"] == ok:
                    job.stage = "confirmed"
                    return
                if ev["a"] == rolled_back:
                    raise UpdateFailed(
                        f"{ev['text'] or what} failed on the console and it went back "
                        f"({ev['c']} starts)",
                        "rolled_back",
                    )
            await asyncio.sleep(POLL_S)
        raise UpdateFailed(f"no verdict from the console about {what} in {VERDICT_WAIT_S:.0f} s")
