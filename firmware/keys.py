# Debounced scan of the ESCALATE button, the 3x4 keypad matrix and hook sense.
# Pure polling: scan(now_ms) reads every input once; run() calls it every SCAN_MS.
import asyncio
from time import ticks_diff, ticks_ms

from micropython import const

# Key codes, shared with the host: 0-9 are the digits.
STAR = const(10)
HASH = const(11)
ESC = const(12)
# key argument of the hook events (no key involved).
NO_KEY = const(-1)

# Event kinds passed to on_event(kind, key, held_ms).
PRESS = const(1)  # key went down (debounced)
SHORT = const(2)  # ESC or * released before its long threshold
LONG = const(3)  # ESC or * held for long_ms; once, while still held
RELEASE = const(4)  # key went up (debounced); every key
HOOK_ON = const(5)  # handset back on the hook
HOOK_OFF = const(6)  # handset lifted

SCAN_MS = const(5)
# A level must hold this long before it counts: 4 scans at SCAN_MS, longer
# than contact chatter, well under the 35 ms a fast press is stable for.
_DEBOUNCE_MS = const(20)
# The hook switch is a big leaf contact that rattles when the handset drops.
_HOOK_MS = const(50)

# Input slots: the matrix positions 0..11, then ESCALATE, then hook.
_N_MATRIX = const(12)
_I_ESC = const(12)
_I_HOOK = const(13)
_N_INPUTS = const(14)


class Keys:
    # The argument list is board.py's hardware contract (docs/design.md).
    def __init__(self, escalate, rows, cols, keymap, hook, on_event, long_ms=1500):
        assert len(rows) * len(cols) == len(keymap) == _N_MATRIX
        self._escalate = escalate
        self._rows = rows
        self._cols = cols
        self._hook = hook
        self._on_event = on_event
        self.long_ms = long_ms
        codes = bytearray(_N_INPUTS)
        for i in range(_N_MATRIX):
            ch = keymap[i]
            codes[i] = STAR if ch == "*" else HASH if ch == "#" else ord(ch) - 48
        codes[_I_ESC] = ESC
        self._codes = codes
        self._i_star = keymap.find("*")
        # Per input: debounced level, last raw sample, when the raw level last
        # changed, when the debounced press began, whether LONG has fired.
        # Lists of small ints and bytearrays: updating them never allocates.
        self._level = bytearray(_N_INPUTS)
        self._raw = bytearray(_N_INPUTS)
        self._since = [0] * _N_INPUTS
        self._down = [0] * _N_INPUTS
        self._longed = bytearray(_N_INPUTS)
        # Scans done, wrapping in small ints: the app feeds the watchdog only
        # while this moves, so a dead scan task resets the console.
        self.scans = 0
        self._running = False
        for row in rows:
            row.value(1)

    # One pass over every input.  Must not allocate: it runs 200 times a second.
    def scan(self, now_ms):
        self.scans = (self.scans + 1) & 0x3FFFFFFF
        rows = self._rows
        cols = self._cols
        ncols = len(cols)
        i = 0
        for r in range(len(rows)):
            # Rows should be open-drain (board.py): two held keys in one
            # column then cannot short a low row to a high one.
            row = rows[r]
            row.value(0)
            for c in range(ncols):
                # Pulled-up column: 0 means a key on the low row is pressed.
                self._feed(i, 0 if cols[c].value() else 1, now_ms, _DEBOUNCE_MS)
                i += 1
            row.value(1)
        self._feed(_I_ESC, 1 if self._escalate() else 0, now_ms, _DEBOUNCE_MS)
        self._feed(_I_HOOK, 1 if self._hook() else 0, now_ms, _HOOK_MS)
        # ESC and * have long actions: LONG fires at the threshold, while held.
        self._check_long(_I_ESC, now_ms)
        if self._i_star >= 0:
            self._check_long(self._i_star, now_ms)

    def _feed(self, i, v, now_ms, debounce_ms):
        if v != self._raw[i]:
            # Any change (a bounce included) restarts the stability timer.
            self._raw[i] = v
            self._since[i] = now_ms
            return
        if v == self._level[i] or ticks_diff(now_ms, self._since[i]) < debounce_ms:
            return
        self._level[i] = v
        # Times count from the raw edge, so held_ms excludes debounce latency.
        edge = self._since[i]
        emit = self._on_event
        if i == _I_HOOK:
            emit(HOOK_OFF if v else HOOK_ON, NO_KEY, 0)
            return
        key = self._codes[i]
        if v:
            self._down[i] = edge
            self._longed[i] = 0
            emit(PRESS, key, ticks_diff(now_ms, edge))
            return
        held = ticks_diff(edge, self._down[i])
        if key in (ESC, STAR) and not self._longed[i]:
            emit(SHORT, key, held)
        emit(RELEASE, key, held)

    def _check_long(self, i, now_ms):
        if self._level[i] and not self._longed[i]:
            held = ticks_diff(now_ms, self._down[i])
            if held >= self.long_ms:
                self._longed[i] = 1
                self._on_event(LONG, self._codes[i], held)

    async def run(self):
        self._running = True
        while self._running:
            self.scan(ticks_ms())
            await asyncio.sleep_ms(SCAN_MS)

    # Stops run() within one scan period and leaves the rows idle (high).
    def deinit(self):
        self._running = False
        for row in self._rows:
            row.value(1)
