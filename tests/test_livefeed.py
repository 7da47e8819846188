"""The live feed (livefeed.py): what a dashboard's stream sees as the floor changes.

A fake floor view stands in for the daemon: each section is a value the test
sets, so a test changes the floor and looks at what a watcher (one
dashboard's event stream) receives, and when.  Beats and the idle time are
shrunk so the loop's own pace shows in a fraction of a second.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Any

import pytest
from deskline import livefeed
from deskline.livefeed import SECTIONS, LiveFeed
from hypothesis import given, settings
from hypothesis import strategies as st

NOW = 1795400000.25
IDLE_S = 0.1  # the shrunk idle time (see the `fast` fixture)
Event = tuple[str, int, dict[str, Any]]

HELP_REQUEST = {
    "ext_id": "DL-desk-03-1-57",
    "kind": "floor_help",
    "status": "raised",
    "desk": "desk-03",
    "urgency": "no_deadline",
}


def floor_at_start() -> dict[str, Any]:
    return {
        "desks": [{"desk": "desk-01", "state": "ready"}],
        "service": {"acd": False, "accounts": [], "queues": []},
        "escalations": [],
        "floor": {"name": "Test floor", "errors": []},
        "daemon": {"online": 1},
        "health": [{"device_id": "desk-01", "online": True}],
        "demand": [],
    }


class FakeView:
    """Stands in for FloorView: every section is whatever the test set last."""

    def __init__(self) -> None:
        self.now = NOW
        self.values = floor_at_start()
        self.builds: Counter[str] = Counter()
        self.failing: set[str] = set()

    def clock(self) -> float:
        return self.now

    def _build(self, name: str) -> Any:
        self.builds[name] += 1
        if name in self.failing:
            raise RuntimeError(f"{name} is broken")
        return copy.deepcopy(self.values[name])

    def desks(self) -> Any:
        return self._build("desks")

    def service(self) -> Any:
        return self._build("service")

    def floor(self) -> Any:
        return self._build("floor")

    def daemon_figures(self) -> Any:
        return self._build("daemon")

    # The store-backed sections give the loop a turn, as the writer's reads do.
    async def escalations(self) -> Any:
        await asyncio.sleep(0)
        return self._build("escalations")

    async def health(self) -> Any:
        await asyncio.sleep(0)
        return self._build("health")

    async def demand(self) -> Any:
        await asyncio.sleep(0)
        return self._build("demand")


class Watcher:
    """A dashboard's stream, read in the background; `slow` gives the loop a
    turn after each event, as writing it to the network does."""

    def __init__(self, feed: LiveFeed, slow: bool = False) -> None:
        self.stream = feed.watch()
        self.slow = slow
        self.events: list[Event] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for event in self.stream:
            self.events.append(event)
            if self.slow:
                await asyncio.sleep(0)

    def shown(self) -> dict[str, Any]:
        """What the dashboard shows after applying every event in order."""
        out: dict[str, Any] = {}
        for _, _, body in self.events:
            out.update({k: body[k] for k in SECTIONS if k in body})
        return out

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.stream.aclose()


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(main(), 5))


async def settle() -> None:
    """Lets every task that can run, run (nothing here waits on a timer)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def eventually(check: Callable[[], bool], what: str, timeout: float = 1.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            pytest.fail(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.005)


async def next_event(stream: AsyncGenerator[Event, None]) -> Event:
    return await anext(stream)


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(livefeed, "IDLE_S", IDLE_S)
    monkeypatch.setattr(livefeed, "TICK_S", 0.005)
    monkeypatch.setattr(livefeed, "BEATS", dict.fromkeys(SECTIONS, 0.01))


# --- what a watcher receives ------------------------------------------------------------
def test_a_watcher_gets_the_snapshot_then_only_what_changed() -> None:
    async def main() -> None:
        view = FakeView()
        feed = LiveFeed(view)
        stream = feed.watch()
        name, version, whole = await anext(stream)
        assert name == "snapshot"
        assert whole == {"version": version, "generated": NOW, **floor_at_start()}

        view.values["desks"] = [{"desk": "desk-01", "state": "on_call"}]
        await feed.refresh(*SECTIONS)  # every section rebuilt, one changed
        name, desks_version, body = await anext(stream)
        assert name == "desks"
        assert desks_version > version
        assert body == {"version": desks_version, "generated": NOW, "desks": view.values["desks"]}

        # Rebuilt to the same JSON: nothing goes out, the version stays.
        pending = asyncio.create_task(next_event(stream))
        await feed.refresh(*SECTIONS)
        await settle()
        assert not pending.done()
        assert feed.version == desks_version

        view.values["health"][0]["online"] = False
        await feed.refresh("health")
        name, health_version, body = await pending
        assert (name, body["health"]) == ("health", [{"device_id": "desk-01", "online": False}])
        assert health_version > desks_version
        await stream.aclose()

    run(main)


def test_several_changes_between_reads_arrive_as_the_latest_only() -> None:
    async def main() -> None:
        view = FakeView()
        feed = LiveFeed(view)
        stream = feed.watch()
        await anext(stream)
        for state in ("on_call", "wrap_up", "ready"):
            view.values["desks"] = [{"desk": "desk-01", "state": state}]
            await feed.refresh("desks")
        view.values["daemon"] = {"online": 0}
        await feed.refresh("daemon")

        first, second = await anext(stream), await anext(stream)
        assert (first[0], first[2]["desks"]) == ("desks", [{"desk": "desk-01", "state": "ready"}])
        assert (second[0], second[2]["daemon"]) == ("daemon", {"online": 0})
        assert first[1] < second[1] == feed.version
        pending = asyncio.create_task(next_event(stream))
        await settle()
        assert not pending.done(), "nothing else changed"
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
        await stream.aclose()

    run(main)


def test_a_slow_watcher_still_sees_versions_grow() -> None:
    async def main() -> None:
        view = FakeView()
        feed = LiveFeed(view)
        stream = feed.watch()
        await anext(stream)
        view.values["service"] = {"acd": True, "accounts": [], "queues": []}
        await feed.refresh("service")
        _, service_version, _ = await anext(stream)  # the stream now rests after "service"
        view.values["desks"] = []
        view.values["floor"] = {"name": "Renamed floor", "errors": []}
        await feed.refresh("desks", "floor")
        versions = [(await anext(stream))[1] for _ in range(2)]
        assert [service_version, *versions] == sorted([service_version, *versions])
        await stream.aclose()

    run(main)


@settings(max_examples=30, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(SECTIONS), st.integers(0, 3), st.integers(0, 2)),
        max_size=25,
    ),
    slow=st.booleans(),
)
def test_a_watcher_that_reads_everything_shows_the_latest_of_every_section(
    steps: list[tuple[str, int, int]], slow: bool
) -> None:
    """Whatever changes and however the reads interleave, applying every event
    leaves the dashboard equal to the snapshot, and each event is a new change."""

    async def main() -> None:
        view = FakeView()
        feed = LiveFeed(view)
        watcher = Watcher(feed, slow=slow)
        await eventually(lambda: bool(watcher.events), "the first snapshot")
        for section, value, turns in steps:
            view.values[section] = [value]
            await feed.refresh(section)
            for _ in range(turns):
                await asyncio.sleep(0)
        await eventually(lambda: watcher.shown() == feed.sections, "caught up")
        await settle()
        whole = await feed.snapshot()
        assert watcher.shown() == {k: whole[k] for k in SECTIONS}
        last: dict[str, int] = {}
        for name, version, body in watcher.events[1:]:
            assert version > last.get(name, 0), f"{name} sent again without a change"
            assert body["version"] == version
            last[name] = version
        await watcher.stop()

    run(main)


# --- reading, idling, waking ---------------------------------------------------------------
def test_a_read_after_a_quiet_spell_builds_every_section_fresh(fast: None) -> None:
    async def main() -> None:
        view = FakeView()
        feed = LiveFeed(view)
        first = await feed.snapshot()
        assert view.builds == Counter(SECTIONS)
        assert first == {"version": feed.version, "generated": NOW, **floor_at_start()}

        # A read moments later is served from memory: nothing is rebuilt.
        view.values["desks"] = []
        await feed.snapshot()
        assert view.builds == Counter(SECTIONS)

        await asyncio.sleep(IDLE_S * 1.5)
        view.now += 1
        again = await feed.snapshot()
        assert view.builds == Counter(SECTIONS * 2)
        assert again["desks"] == []
        assert again["generated"] == NOW + 1
        assert again["version"] > first["version"]

    run(main)


def test_the_loop_sleeps_while_nobody_reads_and_wakes_on_a_read(fast: None) -> None:
    async def main() -> None:
        view = FakeView()
        feed = LiveFeed(view)
        loop = asyncio.create_task(feed.run())
        await asyncio.sleep(0.05)
        assert not view.builds, "nobody has looked: nothing is built"

        await feed.snapshot()
        view.values["desks"] = []
        await eventually(lambda: feed.sections["desks"] == [], "the loop rebuilds desks")

        await asyncio.sleep(IDLE_S + 0.1)
        asleep = view.builds.total()
        await asyncio.sleep(0.1)
        assert view.builds.total() == asleep, "nobody read for IDLE_S: the loop sleeps"

        view.values["desks"] = [{"desk": "desk-01", "state": "wrap_up"}]
        assert (await feed.snapshot())["desks"] == view.values["desks"]
        view.values["desks"] = [{"desk": "desk-01", "state": "ready"}]
        await eventually(lambda: feed.sections["desks"] == view.values["desks"], "awake again")

        feed.close()
        await asyncio.wait_for(loop, 1)

    run(main)


def test_a_stream_opened_after_a_quiet_spell_is_live(fast: None) -> None:
    async def main() -> None:
        view = FakeView()
        feed = LiveFeed(view)
        loop = asyncio.create_task(feed.run())
        await feed.snapshot()
        await asyncio.sleep(IDLE_S + 0.1)  # the loop sleeps

        view.values["desks"] = [{"desk": "desk-01", "state": "on_call"}]
        watcher = Watcher(feed)
        try:
            await eventually(
                lambda: watcher.shown().get("desks") == view.values["desks"], "fresh", 0.2
            )
            view.values["desks"] = [{"desk": "desk-01", "state": "wrap_up"}]
            await eventually(lambda: watcher.shown()["desks"] == view.values["desks"], "live", 0.2)
        finally:
            feed.close()
            await watcher.stop()
            await asyncio.wait_for(loop, 1)

    run(main)


def test_refresh_publishes_at_once() -> None:
    async def main() -> None:
        view = FakeView()
        feed = LiveFeed(view)  # no loop runs: only the refresh can publish
        stream = feed.watch()
        await anext(stream)
        pending = asyncio.create_task(next_event(stream))
        view.values["escalations"] = [{**HELP_REQUEST, "kind": "client", "status": "acknowledged"}]
        await feed.refresh("escalations")
        name, _, body = await asyncio.wait_for(pending, 1)
        assert (name, body["escalations"]) == ("escalations", view.values["escalations"])
        await stream.aclose()

    run(main)


def test_close_ends_every_watchers_stream(fast: None) -> None:
    async def main() -> None:
        feed = LiveFeed(FakeView())
        loop = asyncio.create_task(feed.run())
        watchers = [Watcher(feed), Watcher(feed)]
        await eventually(lambda: all(w.events for w in watchers), "both have the snapshot")
        assert feed.watchers == 2
        feed.close()
        await asyncio.wait_for(asyncio.gather(loop, *(w.task for w in watchers)), 1)
        assert feed.watchers == 0

    run(main)


def test_a_failing_section_is_logged_and_the_others_still_publish(
    fast: None, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        view = FakeView()
        feed = LiveFeed(view)
        loop = asyncio.create_task(feed.run())
        watcher = Watcher(feed)
        await eventually(lambda: bool(watcher.events), "the snapshot")
        view.failing.add("health")
        view.values["desks"] = []
        await eventually(lambda: watcher.shown()["desks"] == [], "desks go on")
        view.failing.clear()
        view.values["health"] = []
        await eventually(lambda: watcher.shown()["health"] == [], "health back")
        feed.close()
        await asyncio.wait_for(asyncio.gather(loop, watcher.task), 1)

    with caplog.at_level(logging.ERROR, logger="deskline.livefeed"):
        run(main)
    assert any("section health failed" in r.getMessage() for r in caplog.records)


def test_a_section_failing_on_the_waking_read_spoils_neither_the_read_nor_the_loop(
    fast: None,
) -> None:
    async def main() -> None:
        view = FakeView()
        feed = LiveFeed(view)
        loop = asyncio.create_task(feed.run())
        await feed.snapshot()
        await asyncio.sleep(IDLE_S + 0.1)  # the loop sleeps
        view.failing.add("health")
        view.values["desks"] = []
        try:
            assert (await feed.snapshot())["desks"] == []
            view.failing.clear()
            view.values["desks"] = [{"desk": "desk-01", "state": "ready"}]
            await eventually(lambda: feed.sections["desks"] == view.values["desks"], "live", 0.2)
        finally:
            feed.close()
            await asyncio.wait_for(loop, 1)

    run(main)


def test_two_first_reads_at_once_both_get_every_section() -> None:
    async def main() -> None:
        feed = LiveFeed(FakeView())
        a, b = await asyncio.gather(feed.snapshot(), feed.snapshot())
        assert set(SECTIONS) <= a.keys()
        assert set(SECTIONS) <= b.keys()

    run(main)


# --- help requests on the wall screen -----------------------------------------------------
class HelpShown:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1


def test_a_help_request_published_to_a_watcher_counts_as_shown() -> None:
    async def main() -> None:
        view = FakeView()
        shown = HelpShown()
        feed = LiveFeed(view, on_help_shown=shown)
        stream = feed.watch()
        await anext(stream)
        assert shown.calls == 0
        view.values["escalations"] = [HELP_REQUEST]
        await feed.refresh("escalations")
        assert shown.calls == 1
        await stream.aclose()

    run(main)


def test_a_help_request_open_when_a_stream_opens_counts_as_shown() -> None:
    async def main() -> None:
        view = FakeView()
        view.values["escalations"] = [HELP_REQUEST]
        shown = HelpShown()
        feed = LiveFeed(view, on_help_shown=shown)
        stream = feed.watch()
        _, _, whole = await anext(stream)
        assert whole["escalations"] == [HELP_REQUEST]
        assert shown.calls == 1
        await stream.aclose()

    run(main)


def test_a_help_request_nobody_watches_is_not_shown() -> None:
    async def main() -> None:
        view = FakeView()
        shown = HelpShown()
        feed = LiveFeed(view, on_help_shown=shown)
        view.values["escalations"] = [HELP_REQUEST]
        await feed.snapshot()  # a one-off read (an API call, `deskline status`)
        await feed.refresh("escalations")
        assert shown.calls == 0

    run(main)


@pytest.mark.parametrize(
    "escalation",
    [
        {**HELP_REQUEST, "status": "delivered"},  # shown already
        {**HELP_REQUEST, "kind": "client"},  # a client's escalation is not the floor's
    ],
)
def test_only_a_raised_help_request_counts_as_shown(escalation: dict[str, Any]) -> None:
    async def main() -> None:
        view = FakeView()
        shown = HelpShown()
        feed = LiveFeed(view, on_help_shown=shown)
        stream = feed.watch()
        await anext(stream)
        view.values["escalations"] = [escalation]
        await feed.refresh("escalations")
        assert shown.calls == 0
        await stream.aclose()

    run(main)


def test_every_stream_shares_one_serialisation_of_a_change() -> None:
    async def main() -> None:
        view = FakeView()
        feed = LiveFeed(view)
        one, two = feed.watch(), feed.watch()
        await anext(one)
        await anext(two)
        view.values["desks"] = [{"desk": "desk-01", "state": "on_call"}]
        await feed.refresh("desks")
        (name, version, body), (_, version2, _) = await anext(one), await anext(two)
        assert version == version2
        text = feed.event_text(name, version)
        assert text is not None and text is feed.event_text(name, version)
        assert json.loads(text) == {**body, "generated": json.loads(text)["generated"]}
        view.values["desks"] = [{"desk": "desk-01", "state": "wrap_up"}]
        await feed.refresh("desks")
        assert feed.event_text(name, version) is None  # that version is gone: dumps it
        await one.aclose()
        await two.aclose()

    run(main)
