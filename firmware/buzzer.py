# Short tone patterns on the piezo's PWM pin: refuse, confirm, alert.
# Non-blocking: the calls choose a pattern; step(now_ms), driven by run(), plays it.
import asyncio
from time import ticks_add, ticks_diff, ticks_ms

from micropython import const

_DUTY = const(32768)  # a 50 % square wave is the loudest a piezo gets
_UNIT_MS = const(10)  # pattern durations count in 10 ms units
_POLL_MS = const(20)  # while playing, run() notices a new pattern this soon

# Patterns: (tone, duration) byte pairs.  Tones: 0 silence, 1 the buzzer's
# resonant frequency, 2 an octave below (quieter, reads as "no"), 3 a fourth below.
_REFUSE = b"\x02\x08\x00\x06\x02\x08"  # two short low beeps
_CONFIRM = b"\x01\x06"  # one short beep
_ALERT = b"\x01\x0c\x03\x0c\x01\x0c\x03\x0c\x01\x0c\x03\x0c"  # two-tone warble


class Buzzer:
    def __init__(self, pwm, freq=2700):
        self._pwm = pwm
        self._hz = (0, freq, freq // 2, freq * 3 // 4)
        self._pattern = None
        self._pos = -1  # -1: the pattern starts at the next step()
        self._due = 0
        self._wake = asyncio.Event()
        self._running = False
        pwm.duty_u16(0)

    # The newest pattern replaces whatever is playing: feedback is for now.
    def refuse(self):
        self._play(_REFUSE)

    def confirm(self):
        self._play(_CONFIRM)

    def alert(self):
        self._play(_ALERT)

    def _play(self, pattern):
        self._pattern = pattern
        self._pos = -1
        self._wake.set()

    def off(self):
        self._pattern = None
        self._pwm.duty_u16(0)

    # Advances the pattern; returns ms until the next step, -1 when silent.
    def step(self, now_ms):
        pattern = self._pattern
        if pattern is None:
            return -1
        if self._pos < 0:
            self._pos = 0
        else:
            left = ticks_diff(self._due, now_ms)
            if left > 0:
                return left
            self._pos += 2
        pos = self._pos
        if pos >= len(pattern):
            self.off()
            return -1
        tone = pattern[pos]
        if tone:
            self._pwm.freq(self._hz[tone])
            self._pwm.duty_u16(_DUTY)
        else:
            self._pwm.duty_u16(0)
        ms = pattern[pos + 1] * _UNIT_MS
        self._due = ticks_add(now_ms, ms)
        return ms

    async def run(self):
        self._running = True
        while self._running:
            ms = self.step(ticks_ms())
            if ms < 0:
                # Nothing to play: sleep until refuse()/confirm()/alert().
                self._wake.clear()
                await self._wake.wait()
            else:
                await asyncio.sleep_ms(min(ms, _POLL_MS))

    def deinit(self):
        self._running = False
        self.off()
        self._wake.set()
