"""The floor light's band, green / amber / red, with hysteresis.

Green at or above the target, amber within the account's margin below it,
red below that; unknown while there is nothing to judge.  A service level
hovering on a boundary must not make a desk light flicker, so the band
only moves when the value has crossed the boundary by a deadband
(`deadband_pct` points), or has stayed across it for `hold_s` seconds: a
real change always shows, within hold_s at most; noise within the
deadband never does.
"""

from __future__ import annotations

from deskline.wire import codec

UNKNOWN: int = codec.BAND_UNKNOWN
GREEN: int = codec.BAND_GREEN
AMBER: int = codec.BAND_AMBER
RED: int = codec.BAND_RED
NAMES = {UNKNOWN: "unknown", GREEN: "green", AMBER: "amber", RED: "red"}


def raw_band(sl_pct: float | None, target_pct: float, amber_pct: float) -> int:
    """The band without hysteresis (inclusive at the target and at the amber floor)."""
    if sl_pct is None:
        return UNKNOWN
    if sl_pct >= target_pct:
        return GREEN
    if sl_pct >= target_pct - amber_pct:
        return AMBER
    return RED


class BandLight:
    """One light's band over time; update() it with each new service level."""

    def __init__(
        self,
        target_pct: float,
        amber_pct: float,
        deadband_pct: float = 1.0,
        hold_s: float = 30.0,
    ) -> None:
        self.target_pct = target_pct
        self.amber_pct = amber_pct
        self.deadband_pct = deadband_pct
        self.hold_s = hold_s
        self.band: int = UNKNOWN
        self._pending: int | None = None  # a band the value sits in, not yet shown
        self._since = 0.0

    def update(self, sl_pct: float | None, now: float) -> int:
        """The band to show now."""
        want = raw_band(sl_pct, self.target_pct, self.amber_pct)
        if want == self.band or UNKNOWN in (self.band, want):
            # The first figure shows at once; no figure (a new day) is not a change.
            if self.band == UNKNOWN and want != UNKNOWN:
                self.band = want
            self._pending = None
            return self.band
        assert sl_pct is not None
        if self._clear(sl_pct, want):
            self.band = want
            self._pending = None
            return self.band
        if self._pending != want:
            self._pending, self._since = want, now
        elif now - self._since >= self.hold_s:
            self.band = want
            self._pending = None
        return self.band

    def _clear(self, sl: float, want: int) -> bool:
        """Whether sl is past the deadband of the boundary between the shown band and want."""
        d = self.deadband_pct
        t, a = self.target_pct, self.target_pct - self.amber_pct
        if want == GREEN:
            return sl >= t + d
        if want == RED:
            return sl < a - d
        # AMBER: from green it must fall below the target by d; from red rise over the floor by d.
        if self.band == GREEN:
            return sl < t - d
        return sl >= a + d
