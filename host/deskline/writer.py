"""The one thread that writes the store, batching whatever the ports produced.

SQLite allows one writer; every port's rows funnel through here.  While a
commit runs, new rows pile up and go in the next transaction together, so
the batch grows with the load by itself: one fsync per batch, not per event.
Callbacks run on the event loop after the commit, and only then may a
session acknowledge — the daemon never acks what a crash could lose.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from deskline.store import Batch, Store

log = logging.getLogger("deskline.writer")
T = TypeVar("T")
Done = Callable[[dict[str, int] | None], None]


class StoreWriter:
    """Owns the Store on a private thread; see the module docstring."""

    def __init__(self, path: Path | str, *, synchronous: str = "FULL") -> None:
        self.path = path
        self.synchronous = synchronous
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="store")
        self._store: Store | None = None
        self._pending = Batch()
        self._callbacks: list[Done] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.committed_events = 0
        self.batches = 0
        self.failures = 0
        self.last_error = ""
        self.rate = 0.0  # events/s, smoothed
        self._rate_mark = (time.monotonic(), 0)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._store = await loop.run_in_executor(
            self._pool, lambda: Store(self.path, synchronous=self.synchronous)
        )
        self._task = asyncio.create_task(self._run(), name="store-writer")

    def submit(self, batch: Batch, done: Done | None = None) -> None:
        """Queues rows; done(acked per device) runs after they committed."""
        self._pending.add(batch)
        if done is not None:
            self._callbacks.append(done)
        self._wake.set()

    def submit_disconnect(self, device_id: str) -> None:
        """Marks a console offline in the store, after its queued rows."""
        now = time.time()

        async def run() -> None:
            try:
                await self.call(lambda store: store.disconnected(device_id, now))
            except Exception:
                log.exception("could not mark %s disconnected", device_id)

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Runs fn(store, ...) on the store thread after what is queued now."""
        await self.flush()
        loop = asyncio.get_running_loop()
        store = self._store
        assert store is not None, "writer not started"
        return await loop.run_in_executor(self._pool, lambda: fn(store, *args, **kwargs))

    async def flush(self) -> None:
        """Commits what is queued (and waits for a commit in progress)."""
        if self._pending.is_empty() and not self._callbacks:
            # Still wait for a batch that is being written: a caller asking
            # after its own rows must see them.
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._pool, lambda: None)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def done(_: dict[str, int] | None) -> None:
            if not fut.done():
                fut.set_result(None)

        self.submit(Batch(), done)
        await fut

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, Batch()
            callbacks, self._callbacks = self._callbacks, []
            acked: dict[str, int] | None
            store = self._store
            assert store is not None
            try:
                acked = await loop.run_in_executor(self._pool, store.apply, batch)
                self.batches += 1
                self.committed_events += len(batch.events)
                self._measure()
            except Exception as e:  # the store could not commit: nothing is acked
                self.failures += 1
                self.last_error = str(e)
                log.error(
                    "store commit failed (%d rows not acknowledged): %s", len(batch.events), e
                )
                acked = None
                # Do not spin on a full disk; sessions rewind and the
                # consoles resend, so nothing is lost meanwhile.
                await asyncio.sleep(0.5)
            for cb in callbacks:
                try:
                    cb(acked)
                except Exception:
                    log.exception("commit callback failed")
            if self._closing and self._pending.is_empty() and not self._callbacks:
                return

    def _measure(self) -> None:
        now = time.monotonic()
        t0, n0 = self._rate_mark
        if now - t0 >= 1.0:
            rate = (self.committed_events - n0) / (now - t0)
            self.rate = rate if self.rate == 0 else 0.5 * self.rate + 0.5 * rate
            self._rate_mark = (now, self.committed_events)

    def current_rate(self) -> float:
        """Events/s, decaying to zero when nothing arrives."""
        t0, n0 = self._rate_mark
        idle = time.monotonic() - t0
        if idle > 2.0 and self.committed_events == n0:
            return 0.0
        return self.rate

    async def close(self) -> None:
        """Commits what is queued, then closes the store."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 10)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
        store = self._store
        if store is not None:
            await asyncio.get_running_loop().run_in_executor(self._pool, store.close)
        self._pool.shutdown(wait=True)
