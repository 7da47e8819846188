# LED layers on the 3 WS2812 pixels: floor SL, personal state, escalation.
# Each state has its own colour AND blink pattern, so it reads without colour vision.
import asyncio
from time import ticks_add, ticks_diff, ticks_ms

from micropython import const

# State ids, unique across the three layers, so top() and snapshot() are
# unambiguous (the host mirrors them; docs/leds.md is the table).
# Pixel 0, floor: floor(band) takes FLOOR_UNKNOWN..FLOOR_RED; STALE is offline.
FLOOR_UNKNOWN = const(0)
FLOOR_GREEN = const(1)
FLOOR_AMBER = const(2)
FLOOR_RED = const(3)
STALE = const(4)
# Pixel 1, personal.
READY = const(5)
ON_CALL = const(6)
WRAP_DUE = const(7)
WRAP_OVERDUE = const(8)
JOURNAL_FULL = const(9)
# Pixel 2, escalation.
NONE = const(10)
PENDING = const(11)
ACKED = const(12)
BREACHED = const(13)
HELP = const(14)
# Pixel 1 again, for ~1 s: the host's ack covered the agent's last wrap-up
# code or escalation, so it is in the host's store.  Numbered after the
# others so ids 0-14 keep their meaning.
SAVED = const(15)

_N_PIXELS = const(3)
_P_FLOOR = const(0)
_P_PERSONAL = const(1)
_P_ESCALATION = const(2)

# Patterns: 16 slots of 125 ms (a 2 s cycle), slot 0 in bit 15.  Every
# pattern starts "on", and a state change restarts its pixel's cycle, so a
# new state shows at once.
_SLOT_MS = const(125)
_CYCLE_MS = const(2000)
_TICK_MS = const(25)
_MASKS = (
    0x0000,  # 0 OFF
    0xFFFF,  # 1 SOLID
    0xFF00,  # 2 SLOW: 1 s on, 1 s off
    0xF0F0,  # 3 MEDIUM: 1 Hz
    0xAAAA,  # 4 FAST: 4 Hz, reserved for "act now"
    0xCC00,  # 5 DOUBLE: two 250 ms flashes, then dark
    0xA800,  # 6 TRIPLE: three 125 ms flashes, then dark
    0x8000,  # 7 WINK: one 125 ms flash every 2 s
    0x8888,  # 8 TICK: a 125 ms flash every 500 ms, only for STALE
    0xA000,  # 9 PAIR: two quick 125 ms flashes, then dark (SAVED, shown once)
)

# Colours at full scale, 3 bytes each.  Every colour's channels sum to at
# most 255, so a lit pixel draws at most one channel's full current (~20 mA
# on a WS2812B) whatever its hue: 3 pixels <= 60 mA at 100 %, 24 mA at 40 %.
_RGB = (
    b"\x00\x00\x00"  # 0 off
    b"\x55\x55\x55"  # 1 white
    b"\x00\xff\x00"  # 2 green
    b"\xc8\x37\x00"  # 3 amber
    b"\xff\x00\x00"  # 4 red
    b"\x00\x00\xff"  # 5 blue
    b"\x80\x00\x7f"  # 6 magenta
)
_N_COLOURS = const(7)

# Per state id: colour index, pattern index, priority rank (higher wins).
_COLOUR = b"\x01\x02\x03\x04\x05\x02\x05\x03\x03\x06\x00\x03\x02\x04\x01\x02"
_PATTERN = b"\x07\x01\x02\x05\x08\x07\x01\x03\x04\x06\x00\x05\x02\x04\x03\x09"
# offline > journal full > breached > pending > help > acked > saved
# > wrap overdue > wrap due > floor light > on call / ready > no escalation.
_RANK = b"\x02\x02\x02\x02\x0b\x01\x01\x03\x04\x0a\x00\x08\x06\x09\x07\x05"


# The full-scale colour and the pattern bitmask of a state (docs, tests, host).
def look(state):
    c = _COLOUR[state] * 3
    return (_RGB[c], _RGB[c + 1], _RGB[c + 2]), _MASKS[_PATTERN[state]]


# The state with the higher priority: folds several escalations into one.
def higher(a, b):
    return a if _RANK[a] >= _RANK[b] else b


class Leds:
    def __init__(self, pixels, brightness=40):
        assert pixels.n >= _N_PIXELS
        self._pixels = pixels
        self._band = FLOOR_UNKNOWN
        self._offline = 0
        self._state = bytearray((FLOOR_UNKNOWN, READY, NONE))
        self._restart = bytearray(b"\x01\x01\x01")
        self._start = [0] * _N_PIXELS
        # Colour index each pixel shows now; 255 forces the first write.
        self._shown = bytearray(b"\xff\xff\xff")
        self._rgb = [(0, 0, 0)] * _N_COLOURS
        self._running = False
        self.set_brightness(brightness)

    # Scales the colour table once here, so tick() only picks tuples.
    def set_brightness(self, pct):
        pct = max(0, min(100, pct))
        self.brightness = pct
        for i in range(_N_COLOURS):
            c = i * 3
            r, g, b = _RGB[c], _RGB[c + 1], _RGB[c + 2]
            self._rgb[i] = (_scale(r, pct), _scale(g, pct), _scale(b, pct))
        for i in range(_N_PIXELS):
            self._shown[i] = 255

    def floor(self, band):
        assert FLOOR_UNKNOWN <= band <= FLOOR_RED
        self._band = band
        self._set(_P_FLOOR, STALE if self._offline else band)

    # No keepalive from the host: the console can no longer vouch for the floor.
    def offline(self, flag):
        self._offline = 1 if flag else 0
        self._set(_P_FLOOR, STALE if flag else self._band)

    def personal(self, state):
        assert READY <= state <= JOURNAL_FULL or state == SAVED
        self._set(_P_PERSONAL, state)

    def escalation(self, state):
        assert NONE <= state <= HELP
        self._set(_P_ESCALATION, state)

    def _set(self, i, state):
        if self._state[i] != state:
            self._state[i] = state
            self._restart[i] = 1

    def top(self):
        best = self._state[0]
        for i in range(1, _N_PIXELS):
            s = self._state[i]
            if _RANK[s] > _RANK[best]:
                best = s
        return best

    def snapshot(self):
        s = self._state
        return (s[0], s[1], s[2])

    # Shows the current slot of each pixel's pattern; writes only on change.
    # Must not allocate: it runs 40 times a second.
    def tick(self, now_ms):
        changed = False
        for i in range(_N_PIXELS):
            if self._restart[i]:
                self._restart[i] = 0
                self._start[i] = now_ms
            d = ticks_diff(now_ms, self._start[i])
            if d >= _CYCLE_MS or d < 0:
                # Keep the phase within one cycle, so ticks wrap-around never shows.
                d %= _CYCLE_MS
                self._start[i] = ticks_add(now_ms, -d)
            state = self._state[i]
            on = _MASKS[_PATTERN[state]] & (0x8000 >> (d // _SLOT_MS))
            c = _COLOUR[state] if on else 0
            if c != self._shown[i]:
                self._shown[i] = c
                self._pixels[i] = self._rgb[c]
                changed = True
        if changed:
            self._pixels.write()
        return changed

    async def run(self):
        self._running = True
        while self._running:
            self.tick(ticks_ms())
            await asyncio.sleep_ms(_TICK_MS)

    # Stops run() and leaves the pixels dark.
    def deinit(self):
        self._running = False
        for i in range(_N_PIXELS):
            self._pixels[i] = self._rgb[0]
            self._shown[i] = 0
        self._pixels.write()


# A lit channel stays lit at low brightness, so no state ever vanishes.
def _scale(v, pct):
    return (v * pct // 100 or 1) if v and pct else 0
