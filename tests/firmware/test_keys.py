# Tests for keys.py: matrix scan, debounce, long/short actions, hook sense.
# Simulated clock and fake pins; run with tests/firmware/run.py test_keys.
from array import array
from time import ticks_add, ticks_diff

import keys as K
import micropython

KEYMAP = "123456789*0#"
CODES = (1, 2, 3, 4, 5, 6, 7, 8, 9, K.STAR, 0, K.HASH)
# Start close to the ticks wrap-around so every test crosses it.
T0 = ticks_add(0, -3000)


class FakeRow:
    def __init__(self, matrix, r):
        self.matrix = matrix
        self.r = r

    def value(self, v):
        self.matrix.low[self.r] = 0 if v else 1


class FakeCol:
    def __init__(self, matrix, c):
        self.matrix = matrix
        self.c = c

    # Pulled up; 0 when a pressed key sits on a row driven low.
    def value(self):
        m = self.matrix
        lows = 0
        level = 1
        for r in range(4):
            if m.low[r]:
                lows += 1
                if m.down[r * 3 + self.c]:
                    level = 0
        if lows != 1:
            m.bad_reads += 1
        return level


class FakeMatrix:
    def __init__(self):
        self.low = bytearray(4)
        self.down = bytearray(12)  # per matrix position
        self.bad_reads = 0
        self.rows = [FakeRow(self, r) for r in range(4)]
        self.cols = [FakeCol(self, c) for c in range(3)]

    def set(self, ch, v):
        self.down[KEYMAP.index(ch)] = v


class Rig:
    def __init__(self, long_ms=1500):
        self.m = FakeMatrix()
        self.esc = bytearray(1)
        self.hook_level = bytearray(1)
        self.events = []
        self.now = T0
        self.keys = K.Keys(
            lambda: self.esc[0],
            self.m.rows,
            self.m.cols,
            KEYMAP,
            lambda: self.hook_level[0],
            self.on_event,
            long_ms,
        )

    def on_event(self, kind, key, held_ms):
        self.events.append((kind, key, held_ms, ticks_diff(self.now, T0)))

    # Scans every 5 ms for ms milliseconds.
    def run(self, ms, step=5):
        end = ticks_add(self.now, ms)
        while ticks_diff(end, self.now) > 0:
            self.keys.scan(self.now)
            self.now = ticks_add(self.now, step)

    def kinds(self, key=None):
        return [e[0] for e in self.events if key is None or e[1] == key]


def test_codes_and_idle_rows():
    rig = Rig()
    for i, ch in enumerate(KEYMAP):
        code = CODES[i]
        rig.m.set(ch, 1)
        rig.run(40)
        rig.m.set(ch, 0)
        rig.run(40)
        assert rig.events[-1][:2] == (K.RELEASE, code), (ch, rig.events[-1])
    presses = [e[1] for e in rig.events if e[0] == K.PRESS]
    assert presses == list(CODES), presses
    # Idle between scans: every row high; while reading: exactly one row low.
    assert bytes(rig.m.low) == bytes(4)
    assert rig.m.bad_reads == 0


def test_press_needs_20ms_stable():
    rig = Rig()
    rig.m.set("5", 1)
    rig.run(15)
    assert rig.events == []
    rig.run(10)
    assert rig.kinds() == [K.PRESS]
    assert rig.events[0][2] >= 20
    # A 15 ms glitch never counts, in either direction.
    rig.m.set("5", 0)
    rig.run(15)
    rig.m.set("5", 1)
    rig.run(100)
    assert rig.kinds() == [K.PRESS]


class Lcg:
    def __init__(self, seed):
        self.x = seed

    def next(self, n):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.x >> 8) % n


# 10 presses/s for 30 s: press 40 ms, gap 60 ms, 4 ms of chatter at both edges,
# scans jittering 3-7 ms apart (a busy event loop): not one press lost.
def test_300_presses_with_bounce_and_jitter():
    # Compact records: a 96 KB heap holds no list of 900 event tuples.
    presses = bytearray()
    releases = bytearray()
    held = array("H")
    other = bytearray()

    def on_event(kind, key, held_ms):
        if kind == K.PRESS:
            presses.append(key)
        elif kind == K.RELEASE:
            releases.append(key)
            held.append(held_ms)
        else:
            other.append(kind)

    rig = Rig()
    rig.keys._on_event = on_event
    rnd = Lcg(1)
    period, press, bounce = 100, 40, 4
    total = 300
    elapsed = 0
    expected = bytes(CODES[i % 12] for i in range(total))
    while elapsed < total * period + 200:
        i = elapsed // period
        t = elapsed % period
        for p in range(12):
            rig.m.down[p] = 0
        if i < total:
            if t < bounce or press <= t < press + bounce:
                level = rnd.next(2)
            else:
                level = 1 if t < press else 0
            rig.m.down[i % 12] = level
        rig.keys.scan(rig.now)
        elapsed += 3 + rnd.next(5)
        rig.now = ticks_add(T0, elapsed)
    assert len(presses) == total, len(presses)
    assert bytes(presses) == expected
    assert bytes(releases) == expected
    # '*' released well before 1.5 s: SHORT each time, never LONG.
    assert bytes(other) == bytes([K.SHORT]) * (total // 12), other
    # held_ms measures the stable press: about 40 ms, chatter aside.
    lo, hi = min(held), max(held)
    assert lo >= press - bounce - 7 and hi <= press + bounce + 7, (lo, hi)


def test_esc_long_press():
    rig = Rig()
    rig.esc[0] = 1
    rig.run(2000)
    assert rig.kinds() == [K.PRESS, K.LONG]
    _, key, held, at = rig.events[1]
    assert key == K.ESC
    assert 1500 <= held < 1510, held
    assert at < 2000  # fired while still held
    rig.esc[0] = 0
    rig.run(100)
    assert rig.kinds() == [K.PRESS, K.LONG, K.RELEASE]
    assert K.SHORT not in rig.kinds()


def test_esc_short_press():
    rig = Rig()
    rig.esc[0] = 1
    rig.run(300)
    rig.esc[0] = 0
    rig.run(100)
    assert rig.kinds() == [K.PRESS, K.SHORT, K.RELEASE]
    assert all(e[1] == K.ESC for e in rig.events)
    assert 295 <= rig.events[1][2] <= 305, rig.events[1]


def test_star_long_and_long_ms():
    rig = Rig(long_ms=800)
    rig.m.set("*", 1)
    rig.run(1000)
    rig.m.set("*", 0)
    rig.run(100)
    assert rig.kinds() == [K.PRESS, K.LONG, K.RELEASE]
    assert rig.events[1][1] == K.STAR and rig.events[1][2] >= 800


def test_digits_and_hash_have_no_long_action():
    rig = Rig()
    rig.m.set("#", 1)
    rig.m.set("0", 1)
    rig.run(3000)
    rig.m.set("#", 0)
    rig.m.set("0", 0)
    rig.run(100)
    assert sorted(rig.kinds()) == [K.PRESS, K.PRESS, K.RELEASE, K.RELEASE]


def test_two_keys_at_once():
    rig = Rig()
    rig.m.set("1", 1)
    rig.m.set("5", 1)
    rig.esc[0] = 1
    rig.run(40)
    presses = [e for e in rig.events if e[0] == K.PRESS]
    assert [e[1] for e in presses] == [1, 5, K.ESC]
    assert presses[0][3] == presses[1][3] == presses[2][3]  # same scan
    # A third key while two are held; then release in another order.
    rig.m.set("9", 1)
    rig.run(40)
    rig.m.set("1", 0)
    rig.run(40)
    rig.esc[0] = 0
    rig.m.set("5", 0)
    rig.m.set("9", 0)
    rig.run(40)
    got = [(e[0], e[1]) for e in rig.events]
    assert got == [
        (K.PRESS, 1),
        (K.PRESS, 5),
        (K.PRESS, K.ESC),
        (K.PRESS, 9),
        (K.RELEASE, 1),
        (K.RELEASE, 5),
        (K.RELEASE, 9),
        (K.SHORT, K.ESC),
        (K.RELEASE, K.ESC),
    ], got


def test_hook_debounce():
    rig = Rig()
    # The handset rattles for 40 ms as it is lifted: nothing yet.
    for i in range(8):
        rig.hook_level[0] = i & 1
        rig.run(5)
    rig.hook_level[0] = 1
    rig.run(45)
    assert rig.events == []
    rig.run(10)
    assert [(e[0], e[1]) for e in rig.events] == [(K.HOOK_OFF, K.NO_KEY)]
    # A 30 ms drop is a bump, not a hang-up.
    rig.hook_level[0] = 0
    rig.run(30)
    rig.hook_level[0] = 1
    rig.run(200)
    assert len(rig.events) == 1
    rig.hook_level[0] = 0
    rig.run(60)
    assert rig.kinds() == [K.HOOK_OFF, K.HOOK_ON]
    # Keys' 20 ms debounce is not the hook's: a 30 ms key press counts.
    rig.m.set("2", 1)
    rig.run(30)
    assert rig.kinds()[-1] == K.PRESS


def test_scan_does_not_allocate():
    counts = bytearray(8)

    def on_event(kind, key, held_ms):
        counts[kind] += 1

    m = FakeMatrix()
    esc = bytearray(1)
    hook = bytearray(1)
    keys = K.Keys(lambda: esc[0], m.rows, m.cols, KEYMAP, lambda: hook[0], on_event)
    now = T0
    for _ in range(10):  # warm-up
        keys.scan(now)
        now = ticks_add(now, 5)
    micropython.heap_lock()
    try:
        # Press everything, hold past the long threshold, release everything.
        for p in range(12):
            m.down[p] = 1
        esc[0] = 1
        hook[0] = 1
        for _ in range(400):
            keys.scan(now)
            now = ticks_add(now, 5)
        for p in range(12):
            m.down[p] = 0
        esc[0] = 0
        hook[0] = 0
        for _ in range(20):
            keys.scan(now)
            now = ticks_add(now, 5)
    finally:
        micropython.heap_unlock()
    assert counts[K.PRESS] == 13, counts[K.PRESS]
    assert counts[K.LONG] == 2  # ESC and *
    assert counts[K.RELEASE] == 13
    assert counts[K.SHORT] == 0
    assert counts[K.HOOK_OFF] == 1 and counts[K.HOOK_ON] == 1
    assert keys.scans == 430


def test_run_and_deinit():
    import asyncio

    rig = Rig()
    rig.esc[0] = 1
    rig.events_real = []

    async def main():
        task = asyncio.create_task(rig.keys.run())
        await asyncio.sleep_ms(80)
        rig.keys.deinit()
        await asyncio.sleep_ms(20)
        return task.done()

    assert asyncio.run(main())
    assert rig.kinds() == [K.PRESS]
    assert bytes(rig.m.low) == bytes(4)
