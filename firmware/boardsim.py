# The virtual console's hardware, played by the supervisor process over a
# loopback socket (host/deskline/sim/console.py); chip "sim" in board.json.
#
# The supervisor is the physical world: buttons stay held across a reset and
# the watchdog bites from outside, so the app code is the device's own.
# In:  the input levels as 14 ASCII digits, one snapshot per change, each
#      ending in "\n": keypad "123456789*0#" in that order, ESCALATE, hook.
# Out: lines "L r,g,b;..." pixels, "D l0\tl1\tl2\tl3" display, "B hz duty",
#      "W ms" watchdog feed, "M hex" RTC memory, "X" reset request.
import os
import socket
import sys
import time

_hw = None


_KEYS = "123456789*0#"
_ESC = 12
_HOOK = 13


class _Hw:
    def __init__(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.connect(socket.getaddrinfo("127.0.0.1", int(os.getenv("DESKLINE_HW") or "0"))[0][-1])
        self.sock = s
        self.level = bytearray(14)
        self.pending = b""
        # The first snapshot arrives before anything reads an input.
        while not self._take(s.recv(15)):
            pass
        s.setblocking(False)

    def _take(self, data):
        if not data:
            raise OSError("virtual console supervisor went away")
        # Only the newest complete snapshot matters; keep a partial tail.
        buf = self.pending + data
        end = buf.rfind(b"\n")
        if end < 14:
            self.pending = buf[-14:]
            return False
        self.level[:] = buf[end - 14 : end]
        self.pending = buf[end + 1 :]
        return True

    def get(self, i):
        try:
            self._take(self.sock.recv(150))
        except OSError:
            pass
        return self.level[i] == 49  # "1"

    def send(self, line):
        s = self.sock
        s.setblocking(True)
        s.write(line + "\n")
        s.setblocking(False)


def _conn():
    global _hw
    if _hw is None:
        _hw = _Hw()
    return _hw


def escalate_held(spec):
    return _conn().get(_ESC)


class _Row:
    def __init__(self):
        self.v = 1

    def value(self, v):
        self.v = v


class _Col:
    # Reads low while a pressed key joins it to a row driven low.
    def __init__(self, hw, rows, keys):
        self.hw = hw
        self.rows = rows
        self.keys = keys  # this column's input index on each row

    def value(self):
        lv = self.hw.level
        for i in range(len(self.rows)):
            if self.rows[i].v == 0 and lv[self.keys[i]] == 49:
                return 0
        return 1


class _Panel:
    # Every output device at once: NeoPixel (n, []=, write), framebuf text
    # (fill, text, show), PWM (freq, duty_u16) and watchdog (feed).
    def __init__(self, hw, n, rows, freq):
        self.hw = hw
        self.n = n
        self.px = [(0, 0, 0)] * n
        self.lines = [""] * rows
        self.f = freq
        self.d = 0

    def __setitem__(self, i, rgb):
        self.px[i] = rgb

    def write(self):
        self.hw.send("L " + ";".join("%d,%d,%d" % p for p in self.px))

    def fill(self, c):
        for i in range(len(self.lines)):
            self.lines[i] = ""

    def text(self, s, x, y, c=1):
        if 0 <= y // 8 < len(self.lines):
            self.lines[y // 8] = " " * (x // 8) + s

    def show(self):
        self.hw.send("D " + "\t".join(self.lines))

    def freq(self, hz=None):
        if hz is None:
            return self.f
        self.f = hz
        return None

    def duty_u16(self, d):
        if d != self.d:
            self.d = d
            self.hw.send("B %d %d" % (self.f, d))

    def feed(self):
        self.hw.send("W 8000")


class SimBoard:
    def __init__(self, s):
        hw = _conn()
        self.name = s["board"]
        self.chip = s["chip"]
        self.faults = []
        self.escalate = lambda: 1 if hw.get(_ESC) else 0
        self.hook = lambda: 1 if hw.get(_HOOK) else 0
        kp = s["keypad"]
        keys = kp["keys"]
        nr = len(kp["rows"])
        nc = len(kp["cols"])
        self.rows = [_Row() for _ in range(nr)]
        self.cols = [
            _Col(hw, self.rows, [_KEYS.index(keys[r * nc + c]) for r in range(nr)])
            for c in range(nc)
        ]
        self.keymap = keys
        panel = _Panel(hw, s["pixels"]["count"], s["oled"]["height"] // 8, s["buzzer"]["freq"])
        self.pixels = self.oled = self.pwm = self.wdt = panel
        panel.feed()  # arms the watchdog, as machine.WDT() does
        self.hw = hw
        self._rtc = bytes.fromhex(os.getenv("DESKLINE_RTC") or "")
        self.stream_in = sys.stdin.buffer
        self.stream_out = sys.stdout.buffer

    def rtc_memory(self, data=None):
        if data is None:
            return self._rtc
        self._rtc = bytes(data)
        self.hw.send("M " + self._rtc.hex())
        return None

    def keep_fed(self):
        # What the device's hardware timer does at the REPL
        # (boardesp32.keep_fed): the watchdog is fed, so the supervisor stops counting.
        self.hw.send("W -1")

    def reset_cause(self):
        return int(os.getenv("DESKLINE_RESET_CAUSE") or "1")

    def reset(self):
        # The supervisor kills and restarts us, as the reset line would.
        self.hw.send("X")
        while True:
            time.sleep(1)

    def unique_id(self):
        return os.getenv("DESKLINE_ID") or "sim-0"


def partitions():
    # esp32.Partition's stand-in: the fake OTA partitions, kept in their own
    # module so they take heap only while an update uses them.
    import boardsimota

    return boardsimota.Partition
