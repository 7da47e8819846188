# Four lines of text on the 128x32 OLED (8x8 font: 16 columns), redrawn
# only when a line changed: show() moves 513 bytes over I2C, ~12 ms at 400 kHz.
from micropython import const

_LINE_PX = const(8)


class Display:
    def __init__(self, oled, cols=16, rows=4):
        self._oled = oled
        self._cols = cols
        self.lines = [""] * rows  # read-only outside: the host mirrors them
        # The panel holds whatever was on it before reset: draw on first flush.
        self._dirty = True

    # Sets line i; the app may call this every tick with the same text.
    def line(self, i, text):
        if len(text) > self._cols:
            text = text[: self._cols]
        if text != self.lines[i]:
            self.lines[i] = text
            self._dirty = True

    # Redraws and shows the panel if any line changed; True when it did.
    def flush(self):
        if not self._dirty:
            return False
        self._dirty = False
        oled = self._oled
        oled.fill(0)
        lines = self.lines
        for i in range(len(lines)):
            oled.text(lines[i], 0, i * _LINE_PX, 1)
        oled.show()
        return True

    # Forces a full redraw on the next flush (e.g. after the panel powered up).
    def invalidate(self):
        self._dirty = True


# Seconds as "M:SS", "H:MM:SS" from an hour, with a leading "-" when overdue.
# One format call: its string and argument tuple are the only allocations.
def mmss(seconds):
    seconds = int(seconds)
    sign = ""
    if seconds < 0:
        sign = "-"
        seconds = -seconds
    m = seconds // 60
    if m < 60:
        return "%s%d:%02d" % (sign, m, seconds % 60)
    return "%s%d:%02d:%02d" % (sign, m // 60, m % 60, seconds % 60)
