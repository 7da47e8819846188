# The virtual console's hardware: pins, pixels, OLED, buzzer, watchdog and
# RTC memory, backed by the supervisor process over a loopback socket.
#
# The supervisor plays the physical world (buttons stay held across a reset,
# the watchdog bites from outside), so the app code is the device's own.
# Lines in:  "E 0|1" escalate, "H 0|1" hook, "K <char> 0|1" keypad, "S" sync.
# Lines out: "L r,g,b;..." pixels, "D l0\tl1\tl2\tl3" display, "B hz duty",
#            "W ms" watchdog feed, "M hex" RTC memory, "X" reset request.
import os
import socket
import sys
import time

_conn = None


class _Hw:
    def __init__(self, port):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
        self.sock = s
        self.level = {}
        self.pending = b""
        # Block until the supervisor has told us every input's level.
        while not self._lines(s.recv(256)):
            pass
        s.setblocking(False)

    def _lines(self, data):
        # Applies complete lines; True once the sync line has been seen.
        if not data:
            raise OSError("virtual console supervisor went away")
        buf = self.pending + data
        synced = False
        while True:
            i = buf.find(b"\n")
            if i < 0:
                break
            line = buf[:i]
            buf = buf[i + 1 :]
            if line == b"S":
                synced = True
            elif len(line) >= 3:
                parts = line.split(b" ")
                self.level[parts[-2] if len(parts) == 3 else parts[0]] = parts[-1] == b"1"
        self.pending = buf
        return synced

    def pump(self):
        try:
            data = self.sock.recv(256)
        except OSError:
            return
        self._lines(data)

    def send(self, line):
        s = self.sock
        s.setblocking(True)
        s.write(line + "\n")
        s.setblocking(False)


def _hw():
    global _conn
    if _conn is None:
        _conn = _Hw(int(os.getenv("DESKLINE_HW")))
    return _conn


def escalate_held(spec):
    return _hw().level.get(b"E", False)


class _Input:
    def __init__(self, hw, name):
        self.hw = hw
        self.name = name

    def __call__(self):
        self.hw.pump()
        return 1 if self.hw.level.get(self.name, False) else 0


class _Row:
    def __init__(self):
        self.v = 1

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v
        return None


class _Col:
    # Reads low while a pressed key joins it to a row driven low.
    def __init__(self, hw, rows, keys):
        self.hw = hw
        self.rows = rows
        self.keys = keys  # one key name per row

    def value(self):
        lv = self.hw.level
        for i in range(len(self.rows)):
            if self.rows[i].v == 0 and lv.get(self.keys[i], False):
                return 0
        return 1


class _Pixels:
    def __init__(self, hw, n):
        self.hw = hw
        self.n = n
        self.px = [(0, 0, 0)] * n

    def __setitem__(self, i, rgb):
        self.px[i] = rgb

    def __getitem__(self, i):
        return self.px[i]

    def write(self):
        self.hw.send("L " + ";".join("%d,%d,%d" % p for p in self.px))


class _Oled:
    # Keeps the text the app draws, one entry per 8-pixel text row.
    def __init__(self, hw, rows):
        self.hw = hw
        self.lines = [""] * rows

    def fill(self, c):
        for i in range(len(self.lines)):
            self.lines[i] = ""

    def text(self, s, x, y, c=1):
        row = y // 8
        if 0 <= row < len(self.lines):
            self.lines[row] = " " * (x // 8) + s

    def show(self):
        self.hw.send("D " + "\t".join(self.lines))


class _Pwm:
    def __init__(self, hw, freq):
        self.hw = hw
        self.f = freq
        self.d = 0

    def freq(self, hz=None):
        if hz is None:
            return self.f
        self.f = hz
        return None

    def duty_u16(self, d=None):
        if d is None:
            return self.d
        if d != self.d:
            self.d = d
            self.hw.send("B %d %d" % (self.f, d))
        return None


class _Wdt:
    # The supervisor resets the console when feeds stop, as the chip would.
    def __init__(self, hw, ms):
        self.hw = hw
        self.ms = ms
        hw.send("W %d" % ms)

    def feed(self):
        self.hw.send("W %d" % self.ms)


class SimBoard:
    def __init__(self, s):
        hw = _hw()
        self.hw = hw
        self.name = s["board"]
        self.chip = s["chip"]
        self.faults = []
        self.escalate = _Input(hw, b"E")
        self.hook = _Input(hw, b"H")
        kp = s["keypad"]
        keys = kp["keys"]
        nr = len(kp["rows"])
        nc = len(kp["cols"])
        self.rows = [_Row() for _ in range(nr)]
        self.cols = [
            _Col(hw, self.rows, [keys[r * nc + c].encode() for r in range(nr)])
            for c in range(nc)
        ]
        self.keymap = keys
        self.pixels = _Pixels(hw, s["pixels"]["count"])
        o = s["oled"]
        self.oled = _Oled(hw, o["height"] // 8)
        self.pwm = _Pwm(hw, s["buzzer"]["freq"])
        self.wdt = _Wdt(hw, 8000)
        rtc = os.getenv("DESKLINE_RTC") or ""
        self._rtc = bytes(int(rtc[i : i + 2], 16) for i in range(0, len(rtc), 2))
        self.stream_in = sys.stdin.buffer
        self.stream_out = sys.stdout.buffer

    def rtc_memory(self, data=None):
        if data is None:
            return self._rtc
        self._rtc = bytes(data)
        self.hw.send("M " + "".join("%02x" % b for b in self._rtc))
        return None

    def reset_cause(self):
        return int(os.getenv("DESKLINE_RESET_CAUSE") or "1")

    def reset(self):
        # The supervisor kills and restarts us, as a real reset would.
        self.hw.send("X")
        while True:
            time.sleep(1)

    def unique_id(self):
        return os.getenv("DESKLINE_ID") or "sim-0"
