# Tests for leds.py (layers, patterns, priorities, brightness) and buzzer.py.
# Fake NeoPixel and PWM objects; run with tests/firmware/run.py test_leds.
from time import ticks_add

import buzzer as B
import leds as L
import micropython

FLOOR = (L.FLOOR_UNKNOWN, L.FLOOR_GREEN, L.FLOOR_AMBER, L.FLOOR_RED, L.STALE)
PERSONAL = (L.READY, L.ON_CALL, L.WRAP_DUE, L.WRAP_OVERDUE, L.JOURNAL_FULL, L.SAVED)
ESCALATION = (L.NONE, L.PENDING, L.ACKED, L.BREACHED, L.HELP)
ALL = FLOOR + PERSONAL + ESCALATION
GREEN = L.look(L.FLOOR_GREEN)[0]
T0 = ticks_add(0, -1000)


class FakePixels:
    def __init__(self, n=3):
        self.n = n
        self.buf = [(0, 0, 0)] * n
        self.writes = 0
        self.shown = [(0, 0, 0)] * n

    def __setitem__(self, i, rgb):
        self.buf[i] = rgb

    def write(self):
        self.writes += 1
        for i in range(self.n):
            self.shown[i] = self.buf[i]


def lit(mask, slot):
    return bool(mask & (0x8000 >> slot))


def test_state_ids_unique_and_contiguous():
    assert sorted(ALL) == list(range(16))
    # The ids the host and the docs know keep their numbers; SAVED came last.
    assert (L.STALE, L.READY, L.JOURNAL_FULL, L.NONE, L.HELP, L.SAVED) == (4, 5, 9, 10, 14, 15)


def test_each_state_has_its_own_look():
    looks = [L.look(s) for s in ALL]
    # (colour, pattern) unique across the whole console.
    assert len(set(looks)) == len(ALL)
    # Within a pixel the pattern alone tells the states apart (no colour vision).
    for layer in (FLOOR, PERSONAL, ESCALATION):
        masks = [L.look(s)[1] for s in layer]
        assert len(set(masks)) == len(layer), layer
    # Only NONE is dark; every other state starts its cycle lit.
    for s in ALL:
        rgb, mask = L.look(s)
        if s == L.NONE:
            assert mask == 0
        else:
            assert mask & 0x8000 and rgb != (0, 0, 0), s


def test_documented_pattern_promises():
    mask = {s: L.look(s)[1] for s in ALL}
    # STALE's pattern belongs to STALE alone, on any pixel.
    assert [s for s in ALL if mask[s] == mask[L.STALE]] == [L.STALE]
    # The fast 4 Hz blink means "act now": wrap-up overdue, SLA breached.
    fast = [s for s in ALL if mask[s] == 0xAAAA]
    assert sorted(fast) == sorted([L.WRAP_OVERDUE, L.BREACHED])
    # Green is for good news only.
    green = [s for s in ALL if L.look(s)[0] == GREEN]
    assert sorted(green) == sorted([L.FLOOR_GREEN, L.READY, L.ACKED, L.SAVED])
    # Channels sum to at most 255: the current cap in docs/leds.md.
    for s in ALL:
        assert sum(L.look(s)[0]) <= 255


def test_offline_floor_never_green():
    px = FakePixels()
    leds = L.Leds(px, brightness=100)
    leds.floor(L.FLOOR_GREEN)
    leds.offline(True)
    now = T0
    for slot in range(64):
        leds.tick(now)
        assert px.shown[0] != GREEN, slot
        now = ticks_add(now, 125)
    # The band keeps updating underneath; offline still wins.
    for band in (L.FLOOR_RED, L.FLOOR_GREEN):
        leds.floor(band)
        assert leds.snapshot()[0] == L.STALE
    leds.offline(False)
    assert leds.snapshot()[0] == L.FLOOR_GREEN
    leds.tick(now)
    assert px.shown[0] == GREEN


def test_patterns_follow_slots():
    px = FakePixels()
    leds = L.Leds(px, brightness=100)
    leds.floor(L.FLOOR_AMBER)
    leds.personal(L.WRAP_OVERDUE)
    leds.escalation(L.PENDING)
    now = T0
    for slot in range(32):
        leds.tick(ticks_add(now, 60))  # mid-slot
        for i, s in enumerate(leds.snapshot()):
            rgb, mask = L.look(s)
            want = rgb if lit(mask, slot % 16) else (0, 0, 0)
            assert px.shown[i] == want, (i, s, slot)
        now = ticks_add(now, 125)


def test_state_change_shows_at_once():
    px = FakePixels()
    leds = L.Leds(px, brightness=100)
    now = T0
    leds.tick(now)
    # Mid-cycle, where a wink is dark: a new state restarts the cycle, lit.
    now = ticks_add(now, 700)
    leds.tick(now)
    assert px.shown[2] == (0, 0, 0)
    leds.escalation(L.PENDING)
    leds.tick(now)
    assert px.shown[2] == L.look(L.PENDING)[0]
    # Setting the same state again does not restart it.
    now = ticks_add(now, 300)
    leds.tick(now)
    assert px.shown[2] == (0, 0, 0)  # DOUBLE: off in slot 2
    leds.escalation(L.PENDING)
    leds.tick(now)
    assert px.shown[2] == (0, 0, 0)


def test_priorities():
    leds = L.Leds(FakePixels())
    assert leds.top() in FLOOR  # nothing else going on: the floor light
    leds.floor(L.FLOOR_RED)
    assert leds.top() == L.FLOOR_RED
    leds.personal(L.ON_CALL)
    assert leds.top() == L.FLOOR_RED
    leds.personal(L.WRAP_DUE)
    assert leds.top() == L.WRAP_DUE
    leds.personal(L.WRAP_OVERDUE)
    assert leds.top() == L.WRAP_OVERDUE
    for s in (L.ACKED, L.HELP, L.PENDING):
        leds.escalation(s)
        assert leds.top() == s
    leds.escalation(L.BREACHED)
    assert leds.top() == L.BREACHED
    leds.personal(L.JOURNAL_FULL)
    assert leds.top() == L.JOURNAL_FULL
    leds.offline(True)
    assert leds.top() == L.STALE
    leds.offline(False)
    leds.personal(L.READY)
    leds.escalation(L.NONE)
    assert leds.top() == L.FLOOR_RED
    assert leds.snapshot() == (L.FLOOR_RED, L.READY, L.NONE)
    # Folding several open escalations into the one the pixel shows.
    order = (L.NONE, L.ACKED, L.HELP, L.PENDING, L.BREACHED)
    for i, a in enumerate(order):
        for b in order[i:]:
            assert L.higher(a, b) == b and L.higher(b, a) == b


def test_saved_look_and_rank():
    # Green (good news), two quick flashes: distinct from READY's single wink
    # on the same pixel.  The app shows it for 1 s, so it is seen only once.
    assert L.look(L.SAVED) == (GREEN, 0xA000)
    px = FakePixels()
    leds = L.Leds(px, brightness=100)
    leds.personal(L.SAVED)
    now = T0
    seen = []
    for _ in range(8):  # the 8 slots of the 1 s it shows
        leds.tick(ticks_add(now, 60))
        seen.append(px.shown[1] == GREEN)
        now = ticks_add(now, 125)
    assert seen == [True, False, True, False, False, False, False, False], seen
    # It never hides offline, a full journal, a breach, or the other
    # escalation states; it does outrank the wrap-up lights for its second.
    for s in (L.STALE, L.JOURNAL_FULL, L.BREACHED, L.PENDING, L.HELP, L.ACKED):
        assert L.higher(L.SAVED, s) == s and L.higher(s, L.SAVED) == s, s
    below = (L.WRAP_OVERDUE, L.WRAP_DUE, L.ON_CALL, L.READY, L.NONE)
    for s in below + FLOOR[:4]:
        assert L.higher(L.SAVED, s) == L.SAVED and L.higher(s, L.SAVED) == L.SAVED, s
    leds.floor(L.FLOOR_RED)
    assert leds.top() == L.SAVED
    leds.escalation(L.PENDING)
    assert leds.top() == L.PENDING
    leds.escalation(L.BREACHED)
    assert leds.top() == L.BREACHED
    leds.escalation(L.NONE)
    leds.offline(True)
    assert leds.top() == L.STALE
    assert leds.snapshot() == (L.STALE, L.SAVED, L.NONE)


def test_brightness_scaling():
    px = FakePixels()
    leds = L.Leds(px, brightness=100)
    leds.floor(L.FLOOR_RED)
    leds.tick(T0)
    assert px.shown[0] == (255, 0, 0)
    writes = px.writes
    leds.set_brightness(40)
    leds.tick(T0)
    assert px.writes == writes + 1  # rewritten even in the same slot
    assert px.shown[0] == (102, 0, 0)
    # Dim, but never so dim a state disappears; 0 is dark; >100 is clamped.
    leds.set_brightness(1)
    leds.tick(T0)
    assert px.shown[0] == (2, 0, 0)
    leds.floor(L.FLOOR_UNKNOWN)  # white: 85 * 1 % rounds to 0, shown as 1
    leds.tick(T0)
    assert px.shown[0] == (1, 1, 1)
    leds.set_brightness(0)
    leds.tick(T0)
    assert px.shown == [(0, 0, 0)] * 3
    leds.set_brightness(250)
    assert leds.brightness == 100


def test_writes_only_on_change():
    px = FakePixels()
    leds = L.Leds(px)  # floor unknown (wink), ready (wink), none (off)
    now = T0
    assert leds.tick(now)
    assert px.writes == 1
    for _ in range(4):
        now = ticks_add(now, 25)
        assert not leds.tick(now)  # still slot 0
    assert px.writes == 1
    # Over a 2 s cycle a wink changes twice: on->off in slot 1, off->on at the wrap.
    for _ in range(80):
        now = ticks_add(now, 25)
        leds.tick(now)
    assert px.writes == 3, px.writes


def test_tick_does_not_allocate():
    px = FakePixels()
    leds = L.Leds(px)
    leds.floor(L.FLOOR_AMBER)
    leds.personal(L.WRAP_OVERDUE)
    leds.escalation(L.BREACHED)
    now = T0
    leds.tick(now)
    writes = px.writes
    micropython.heap_lock()
    try:
        for _ in range(400):
            now = ticks_add(now, 25)
            leds.tick(now)
        leds.escalation(L.ACKED)
        leds.offline(True)
        for _ in range(100):
            now = ticks_add(now, 25)
            leds.tick(now)
            leds.top()
    finally:
        micropython.heap_unlock()
    assert px.writes > writes + 40


def test_run_and_deinit():
    import asyncio

    px = FakePixels()
    leds = L.Leds(px)
    leds.escalation(L.BREACHED)

    async def main():
        task = asyncio.create_task(leds.run())
        await asyncio.sleep_ms(60)
        leds.deinit()
        await asyncio.sleep_ms(40)
        return task.done()

    assert asyncio.run(main())
    assert px.writes >= 2
    assert px.shown == [(0, 0, 0)] * 3


# --- buzzer ---------------------------------------------------------------


class FakePwm:
    def __init__(self):
        self.hz = 0
        self.duty = 0
        self.log = []  # (freq while sounding or 0, at)
        self.now = 0

    def freq(self, hz):
        self.hz = hz

    def duty_u16(self, d):
        self.duty = d
        self.log.append((self.hz if d else 0, self.now))


def play(bz, pwm, ms):
    for t in range(0, ms, 5):
        pwm.now = t
        bz.step(t)


def test_buzzer_patterns():
    pwm = FakePwm()
    bz = B.Buzzer(pwm, freq=2700)
    assert pwm.duty == 0
    pwm.log = []
    bz.confirm()
    play(bz, pwm, 300)
    assert pwm.log == [(2700, 0), (0, 60)], pwm.log
    pwm.log = []
    bz.refuse()
    play(bz, pwm, 400)
    assert pwm.log == [(1350, 0), (0, 80), (1350, 140), (0, 220)], pwm.log
    assert bz.step(1000) == -1
    pwm.log = []
    bz.alert()
    play(bz, pwm, 1000)
    tones = [hz for hz, _ in pwm.log]
    assert tones == [2700, 2025] * 3 + [0], tones


def test_buzzer_off_and_preempt():
    pwm = FakePwm()
    bz = B.Buzzer(pwm)
    bz.alert()
    play(bz, pwm, 50)
    assert pwm.duty
    bz.confirm()  # the newest feedback wins
    assert bz.step(55) == 60 and pwm.hz == 2700
    bz.off()
    assert pwm.duty == 0 and bz.step(200) == -1


def test_buzzer_run_and_deinit():
    import asyncio

    pwm = FakePwm()
    bz = B.Buzzer(pwm)

    async def main():
        task = asyncio.create_task(bz.run())
        await asyncio.sleep_ms(10)
        bz.refuse()
        await asyncio.sleep_ms(40)
        sounding = pwm.duty
        await asyncio.sleep_ms(300)
        done = pwm.duty == 0
        bz.deinit()
        await asyncio.sleep_ms(10)
        return sounding, done, task.done()

    assert asyncio.run(main()) == (32768, True, True)
