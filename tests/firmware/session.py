# A scripted shift for the whole console app on the unix port, with a fake
# clock, a fake board and an in-process host that acks every event.
# Used by test_session.py and bench/firmware.py.
import gc
import io
import random
import sys

import vfs


class _Clock:
    # Replaces the time module for the app: the script moves time on.
    def __init__(self):
        self.now = 0

    def ticks_ms(self):
        return self.now

    def ticks_diff(self, a, b):
        return a - b

    def ticks_add(self, a, b):
        return a + b

    def time(self):
        return 1795392000 + self.now // 1000

    def sleep_ms(self, ms):
        self.now += ms


CLOCK = _Clock()
sys.modules["time"] = CLOCK  # before any app module imports time


class FileFlash:
    # Flash on a host file: the heap is for the app, not for the image.
    def __init__(self, path, blocks):
        self.blocks = blocks
        self.f = open(path, "w+b")
        blank = b"\xff" * 4096
        for _ in range(blocks):
            self.f.write(blank)

    def readblocks(self, n, buf, off=0):
        self.f.seek(n * 4096 + off)
        self.f.readinto(buf)

    def writeblocks(self, n, buf, off=None):
        self.f.seek(n * 4096 + (off or 0))
        self.f.write(buf)

    def ioctl(self, op, arg):
        if op == 4:
            return self.blocks
        if op == 5:
            return 4096
        if op == 6:
            return 0
        return None


class HostStream(io.IOBase):
    # The console's REPL UART.  What the console writes reaches the fake
    # host at once; the host's answers wait here for the console to read.
    def __init__(self):
        import wire

        self.wire = wire
        self.inbox = bytearray()
        self.dec = wire.Decoder()
        self.enc = wire.Encoder()
        self.events = 0
        self.last_seq = 0
        self.duplicates = 0
        self.out_of_order = 0
        self.frames = 0
        self.acks = 0
        self.auto_ack = True  # False: a test sends the ACKs itself

    def ioctl(self, req, arg):
        if req == 3:  # MP_STREAM_POLL
            return arg & 1 if self.inbox else 0
        return 0

    def readinto(self, buf):
        n = min(len(buf), len(self.inbox))
        buf[:n] = self.inbox[:n]
        self.inbox = self.inbox[n:]
        return n

    def write(self, frame):
        w = self.wire
        for b in frame:
            n = self.dec.push(b)
            if not n:
                continue
            self.frames += 1
            if self.dec.buf[1] == w.EVENT:
                seq = w.parse(self.dec.buf, n)[2][0]
                if seq <= self.last_seq:
                    self.duplicates += 1
                elif seq != self.last_seq + 1:
                    self.out_of_order += 1
                else:
                    self.last_seq = seq
                    self.events += 1
                if self.auto_ack:
                    self.inbox.extend(self.enc.encode(w.ACK, (self.last_seq,)))
                    self.acks += 1
        return len(frame)

    def keepalive(self, epoch):
        self.inbox.extend(self.enc.encode(self.wire.KEEPALIVE, (epoch, 0)))


class _Row:
    def __init__(self):
        self.v = 1

    def value(self, v):
        self.v = v


class _Col:
    def __init__(self, board, c):
        self.board = board
        self.c = c

    def value(self):
        k = self.board.key
        if k is not None and k % 3 == self.c and self.board.rows[k // 3].v == 0:
            return 0
        return 1


class _Sink:
    n = 3

    def __init__(self):
        self.writes = 0

    def __setitem__(self, i, v):
        pass

    def write(self):
        self.writes += 1

    def fill(self, c):
        pass

    def text(self, s, x, y, c=1):
        pass

    def show(self):
        self.writes += 1

    def freq(self, hz=None):
        return 2700

    def duty_u16(self, d):
        pass

    def feed(self):
        pass


class FakeBoard:
    name = "session"
    chip = "sim"
    keymap = "123456789*0#"

    def __init__(self):
        self.key = None  # matrix position held down, or None
        self.esc = 0
        self.off_hook = 0
        self.escalate = lambda: self.esc
        self.hook = lambda: self.off_hook
        self.rows = [_Row() for _ in range(4)]
        self.cols = [_Col(self, c) for c in range(3)]
        self.pixels = self.oled = self.pwm = self.wdt = _Sink()
        self.stream_in = self.stream_out = HostStream()
        self._rtc = b""

    def rtc_memory(self, data=None):
        if data is None:
            return self._rtc
        self._rtc = bytes(data)
        return None

    def reset_cause(self):
        return 1

    def reset(self):
        raise SystemExit("reset")

    def unique_id(self):
        return "session-0"


# Matrix position of each key code (keymap "123456789*0#").
_POS = {1: 0, 2: 1, 3: 2, 4: 3, 5: 4, 6: 5, 7: 6, 8: 7, 9: 8, 10: 9, 0: 10, 11: 11}


def mount_flash(blocks=128):
    flash = FileFlash("/tmp/deskline-session-%d.img" % id(CLOCK), blocks)
    vfs.VfsLfs2.mkfs(flash)
    try:
        vfs.umount("/data")
    except OSError:
        pass
    vfs.mount(vfs.VfsLfs2(flash), "/data")


def run(presses, seed=1, press_ms=40, gap_ms=60):
    # Acts out calls until `presses` keys were pressed; returns figures.
    mount_flash()
    import app as A
    import wire as W

    gc.collect()
    base = gc.mem_alloc()
    board = FakeBoard()
    app = A.App(board)
    host = board.stream_in
    link = app.link
    random.seed(seed)
    rnd = random
    cfg = (
        '{"version": 1, "account": "ACME", "mode": "mandatory_timeout", "acw_s": 30,'
        ' "fallback": 99, "codes": [[1, "Billing query", true], [12, "Meter read", false],'
        ' [47, "Payment plan", true], [99, "ACW timeout", false]]}'
    )
    assert app.apply_config(cfg.encode())[0] == W.OK
    peak = 0
    done = 0
    app.start()
    host.keepalive(1795392000)

    def run_for(ms):
        nonlocal peak
        end = CLOCK.now + ms
        while CLOCK.now < end:
            CLOCK.now += 5
            app.keys.scan(CLOCK.now)
            link.poll_rx()
            if CLOCK.now % 50 == 0:
                app.step(CLOCK.now)
                app.leds.tick(CLOCK.now)
                if CLOCK.now % 2000 == 0:
                    host.keepalive(1795392000 + CLOCK.now // 1000)
                if CLOCK.now % 1000 == 0:
                    # Live data only: what a collection cannot free.
                    gc.collect()
                    used = gc.mem_alloc()
                    peak = max(peak, used)

    def press(code):
        nonlocal done
        if code == 12:
            board.esc = 1
        else:
            board.key = _POS[code]
        run_for(press_ms)
        board.esc = 0
        board.key = None
        run_for(gap_ms)
        done += 1

    codes = sorted(app.cfg.codes) or [0]
    while done < presses:
        board.off_hook = 1
        run_for(200)
        if rnd.randint(0, 9) == 0:
            press(1 + rnd.randint(0, 3))  # severity digit
            press(12)  # ESCALATE
        board.off_hook = 0
        run_for(200)
        code = codes[rnd.randint(0, len(codes) - 1)]
        for d in str(code):
            press(int(d))
        press(11)  # '#'
        if rnd.randint(0, 20) == 0:
            press(9)  # a stray digit outside wrap-up
            press(10)  # '*' clears it
    run_for(3000)  # let the last events drain
    gc.collect()
    return {
        "presses": done,
        "events_received": host.events,
        "journal_next_seq": app.journal.next_seq,
        "journal_depth": app.journal.depth(),
        "duplicates": host.duplicates,
        "out_of_order": host.out_of_order,
        "frames": host.frames,
        "peak_heap": peak,  # live GC heap, sampled each simulated second: modules, app, harness
        "peak_app_data": peak - base,  # beyond the loaded modules: what frozen firmware would use
        "app_objects": gc.mem_alloc() - base,
        "heap_total": gc.mem_alloc() + gc.mem_free(),
        "simulated_s": CLOCK.now // 1000,
        "refused": app.journal.refused_events,
    }
