"""Power cuts: kill -9 the virtual console at random points while pressing.

Every press the console registered before a cut reaches the host exactly
once (the host dedupes by sequence), in the order it was pressed; a press
that was still being debounced when the power went may be lost, as on a
real desk, but never duplicated or reordered.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

from deskline.sim.console import VirtualConsole
from deskline.wire import codec
from testhost import TestHost

DIGITS = "0123456789"


def test_presses_survive_random_power_cuts(tmp_path: Path) -> None:
    rng = random.Random(20261122)
    vc = VirtualConsole(tmp_path / "vc", device_id="desk-pc")
    vc.start()
    host = TestHost(str(vc.port_link))
    pressed: list[tuple[int, bool]] = []  # (key, certain to be registered)
    cuts = 0
    try:
        host.wait_frame("hello")
        for _ in range(8):
            for _ in range(rng.randint(3, 8)):
                key = rng.randrange(10)
                vc.press(DIGITS[key], ms=80, gap_ms=80)
                pressed.append((key, True))
            # Cut the power somewhere inside the next press.
            key = rng.randrange(10)
            delay = rng.uniform(0.0, 0.16)
            timer = threading.Timer(delay, vc.power_cut)
            boots = vc.boots
            mark = len(host.frames)
            timer.start()
            vc.press(DIGITS[key], ms=80, gap_ms=80)
            timer.join()
            pressed.append((key, False))
            cuts += 1
            vc.up(DIGITS[key])
            deadline = time.monotonic() + 10
            while vc.boots <= boots and time.monotonic() < deadline:
                time.sleep(0.01)
            assert vc.boots > boots, "the console did not restart"
            # The new boot's hello (reset cause 1: power-on).
            host.wait_frame("hello", lambda m: m["reset_cause"] == 1, after=mark, timeout=15)
        # Everything journaled drains to the host.
        assert host.wait(lambda: host.last("heartbeat") is not None, 20)
        assert host.wait(
            lambda: (hb := host.last("heartbeat")) is not None and hb["journal_depth"] == 0, 30
        )
        time.sleep(0.5)
        got = [m["a"] for m in host.events_of(codec.EV_PRESS)]
    finally:
        host.close()
        vc.stop()
    seqs = sorted(host.events)
    assert seqs == list(range(1, len(seqs) + 1)), "a sequence number was skipped"
    # got must be `pressed` with only uncertain presses possibly missing.
    i = 0
    for key, certain in pressed:
        if i < len(got) and got[i] == key:
            i += 1
        elif certain:
            raise AssertionError(f"press of {key} lost: pressed {pressed}, got {got}")
    assert i == len(got), f"extra presses arrived: {got[i:]}"
    print(
        f"{len(pressed)} presses, {cuts} power cuts, {len(got)} delivered, "
        f"{host.duplicates} retransmissions deduplicated"
    )
