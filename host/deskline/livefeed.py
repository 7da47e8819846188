"""Keeps the floor snapshot fresh while somebody looks at it, and tells the watchers what changed.

Each section is rebuilt on its own beat (desks ten times a second, today's
failure demand every ten seconds) and published only when its JSON changed,
under a version number that grows with every change.  A watcher (one
dashboard's server-sent-event stream) gets the whole snapshot first, then
every section that changed since it last looked, so a press on a console
reaches the wall screen within one desk beat plus the network.

Nobody looking costs nothing: after `IDLE_S` without a reader or a watcher
the loop sleeps until the next one, who gets a snapshot built on the spot.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from deskline.floorview import FloorView

log = logging.getLogger("deskline.livefeed")
_NOBODY = {"console": "-", "port": "-"}

IDLE_S = 30.0
TICK_S = 0.1
# section: seconds between rebuilds (the desks' beat bounds a press's delay)
BEATS: dict[str, float] = {
    "desks": 0.1,
    "service": 0.5,
    "escalations": 1.0,
    "floor": 1.0,
    "daemon": 1.0,
    "health": 2.0,
    "demand": 10.0,
}
SECTIONS = tuple(BEATS)


class LiveFeed:
    def __init__(
        self,
        view: FloorView,
        on_help_shown: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        self.view = view
        self.on_help_shown = on_help_shown
        self.version = 0
        self.sections: dict[str, Any] = {}
        self.versions: dict[str, int] = {}
        self._json: dict[str, str] = {}
        self._events: dict[str, tuple[int, str]] = {}  # section: (version, event JSON)
        self._due: dict[str, float] = {}
        self._cond = asyncio.Condition()
        self._wake = asyncio.Event()
        self._last_read = -IDLE_S
        self._watchers = 0
        self._closed = False
        self._lock = asyncio.Lock()
        self._asleep = False  # run() waits for a reader: the sections may be old

    # --- readers --------------------------------------------------------------------
    async def snapshot(self) -> dict[str, Any]:
        """The whole snapshot, fresh (built now when nobody has looked lately)."""
        await self._touch()
        return self._whole()

    async def section(self, name: str) -> Any:
        await self._touch()
        return self.sections[name]

    async def refresh(self, *names: str) -> None:
        """Rebuilds these sections now (after an action, so its effect shows at once)."""
        async with self._lock:
            for name in names:
                await self._build_logged(name, time.monotonic())

    async def watch(self) -> AsyncGenerator[tuple[str, int, dict[str, Any]], None]:
        """("snapshot", version, whole) first, then (section, version, {section: ...})."""
        self._watchers += 1
        try:
            await self._touch()
            seen = dict(self.versions)
            yield "snapshot", self.version, self._whole()
            while not self._closed:
                async with self._cond:
                    await self._cond.wait_for(
                        lambda: (
                            self._closed
                            or any(self.versions[n] != seen.get(n) for n in self.versions)
                        )
                    )
                self._last_read = time.monotonic()
                # Oldest change first, chosen afresh after each yield: versions grow
                # even when sections change while this watcher is busy.
                while changed := [(v, n) for n, v in self.versions.items() if v != seen.get(n)]:
                    v, name = min(changed)
                    seen[name] = v
                    yield (
                        name,
                        v,
                        {
                            "version": v,
                            "generated": self.view.clock(),
                            name: self.sections[name],
                        },
                    )
        finally:
            self._watchers -= 1

    def event_text(self, name: str, version: int) -> str | None:
        """A section event's JSON as `watch` gives it, serialised once for every
        watcher (None when the section has changed since that version)."""
        if self.versions.get(name) != version:
            return None
        cached = self._events.get(name)
        if cached is None or cached[0] != version:
            generated = json.dumps(self.view.clock())
            text = f'{{"version":{version},"generated":{generated},"{name}":{self._json[name]}}}'
            cached = self._events[name] = (version, text)
        return cached[1]

    @property
    def watchers(self) -> int:
        return self._watchers

    def close(self) -> None:
        """Ends every watcher's stream (the daemon is stopping)."""
        self._closed = True
        self._wake.set()

        async def wake_all() -> None:
            async with self._cond:
                self._cond.notify_all()

        task = asyncio.get_running_loop().create_task(wake_all())
        task.add_done_callback(lambda t: t.exception())

    # --- the loop -------------------------------------------------------------------
    async def run(self) -> None:
        while not self._closed:
            if self._idle():
                self._asleep = True
                self._wake.clear()
                await self._wake.wait()
                continue
            now = time.monotonic()
            async with self._lock:
                for name in SECTIONS:
                    if now >= self._due.get(name, 0.0):
                        await self._build_logged(name, now)
            await asyncio.sleep(TICK_S)

    def _idle(self) -> bool:
        return self._watchers == 0 and time.monotonic() - self._last_read > IDLE_S

    async def _touch(self) -> None:
        quiet = self._idle()
        self._last_read = time.monotonic()
        try:
            # Under the lock: a reader arriving during a build waits for it
            # rather than reading half a snapshot (or building it again).
            async with self._lock:
                if quiet or self._asleep or len(self.sections) < len(SECTIONS):
                    now = time.monotonic()
                    for name in SECTIONS:
                        await self._build_logged(name, now)
                self._asleep = False
        finally:
            self._wake.set()

    async def _build_logged(self, name: str, now: float) -> None:
        try:
            await self._build(name, now)
        except Exception:
            log.exception("floor view: section %s failed", name, extra=_NOBODY)
            self._due[name] = now + BEATS[name]

    async def _build(self, name: str, now: float) -> None:
        self._due[name] = now + BEATS[name]
        value = await self._value(name)
        text = json.dumps(value, separators=(",", ":"))
        if self._json.get(name) == text:
            return
        self._json[name] = text
        self.sections[name] = value
        self.version += 1
        self.versions[name] = self.version
        async with self._cond:
            self._cond.notify_all()
        if name == "escalations" and self._watchers and self.on_help_shown is not None:
            if any(e["kind"] == "floor_help" and e["status"] == "raised" for e in value):
                await self.on_help_shown()

    async def _value(self, name: str) -> Any:
        v = self.view
        if name == "desks":
            return v.desks()
        if name == "service":
            return v.service()
        if name == "escalations":
            return await v.escalations()
        if name == "floor":
            return v.floor()
        if name == "daemon":
            return v.daemon_figures()
        if name == "health":
            return await v.health()
        if name == "demand":
            return await v.demand()
        raise KeyError(name)

    def _whole(self) -> dict[str, Any]:
        return {"version": self.version, "generated": self.view.clock(), **self.sections}
