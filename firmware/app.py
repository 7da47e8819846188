# The console application: wires the board, journal, keys, agent, LEDs,
# display and host link together as asyncio tasks.
import asyncio
import gc
import sys
from time import ticks_add, ticks_diff, ticks_ms

import agent as A
import buzzer
import config as C
import display
import journal as J
import keys as K
import leds as L
import link
import micropython
import wire as W
from micropython import const

APP_VERSION = "0.1.0"
CONFIG_PATH = "/data/config.json"
JOURNAL_DIR = "/data/journal"

_HOUSE_MS = const(50)
_SYNC_MS = const(1000)
_FEED_MS = const(500)
_STATUS_MIN_MS = const(100)
_MSG_MS = const(2500)
_SAVED_MS = const(1000)  # how long the personal light shows SAVED
_NO_DEADLINE = const(0x7FFFFFFF)
# bootinfo reasons, kept here so bootinfo.py need not stay loaded.
_HOST_REBOOT = const(0x02)
_REPL_EXIT = const(0x03)
_APP_UPDATE = const(0x04)
_FW_UPDATE = const(0x05)
_CRASH = const(0x81)
# An update on trial is confirmed once the host stored this boot's hello
# (its keepalive came) and the app has run this long; past the deadline
# without that, the console goes back (apptrial.py, bootslot.py).
_HEALTHY_MS = const(2000)
_TRIAL_MS = const(60000)
# updcodes.py's, copied so it need not load: HELLO flags, REBOOT modes.
_HELLO_TRIAL = const(0x01)
_HELLO_ROLLED_BACK = const(0x02)
_HELLO_FW_TRIAL = const(0x04)
_REBOOT_APP = const(1)
_REBOOT_FIRMWARE = const(2)

# Event kinds that are telemetry: the journal drops these first when full.
_TELEMETRY = (W.EV_CODE_REFUSED, W.EV_STATE, W.EV_BOOT, W.EV_CONFIG)
_ESC_WORD = ("SENT", "DLVD", "ACK", "DONE", "BRCH", "CANC", "FAIL")


def _mkdirs(path):
    import os

    cur = ""
    for part in path.strip("/").split("/"):
        cur += "/" + part
        try:
            os.mkdir(cur)
        except OSError:
            pass


class App:
    def __init__(self, board):
        # Long-lived buffers first, while the heap still has room in one piece.
        enc = W.Encoder()
        dec = W.Decoder()
        self.body = bytearray(256)
        self.body_mv = memoryview(self.body)
        self.board = board
        _mkdirs(JOURNAL_DIR)
        self.cfg = C.load(CONFIG_PATH)
        self.journal = J.Journal(JOURNAL_DIR)
        import bootinfo

        self.reason, self.boots = bootinfo.take(board)
        _drop("bootinfo")
        # The app slot boot.py chose (bootslot.py), an update on trial (HELLO
        # flags) and a rollback to report; none of it without bootslot.
        b = sys.modules.get("bootslot")
        self.slot = b.slot if b else ""
        self.trial = (_HELLO_TRIAL if b and b.trial else 0) | (
            _HELLO_FW_TRIAL if b and b.fw_trial else 0
        )
        self.rolled = b.note if b else ""
        self.rolled_back = _HELLO_ROLLED_BACK if self.rolled else 0
        del b
        _drop("bootslot")
        self.reset_cause = board.reset_cause()
        self.device_id = board.unique_id()
        self.leds = L.Leds(board.pixels, self.cfg.brightness)
        self.display = display.Display(board.oled)
        self.buzzer = buzzer.Buzzer(board.pwm, board.pwm.freq())
        self.agent = A.Agent(self.cfg, self.emit, self)
        self.keys = K.Keys(
            board.escalate, board.rows, board.cols, board.keymap, board.hook, self.on_key
        )
        self.link = link.Link(
            board.stream_in, board.stream_out, self.journal, self.on_frame, enc, dec
        )
        self.xfer = None  # a Transfer while the host sends one (xfer.py)
        self.t0 = ticks_ms()
        self.epoch = 0  # host wall clock at self.epoch_at, 0 until synced
        self.epoch_at = 0
        self.floor = (W.BAND_UNKNOWN, 0, 0, 0, 0)
        self.msg = ""
        self.msg_until = 0
        self.refused_seen = 0
        # The seq of the agent's last outcome (wrap-up or escalation) until
        # the host's ack covers it (0: none owed); then when SAVED began.
        self.outcome = 0
        self.saved_at = None  # None while SAVED is not shown
        self.min_free = gc.mem_free()
        self.dirty = True
        self.last_status = None
        self.status_at = 0
        self.scans_seen = -1
        self.last_sec = -1
        self.last_online = None
        self.last_sync = self.last_feed = self.last_beat = ticks_ms()
        self.stopping = False
        self.tasks = []

    # --- events into the journal ---------------------------------------------
    def emit(self, kind, a, b, c, ref, text):
        now = ticks_ms()
        n = W.pack(
            self.body,
            0,
            W.EVENT_BODY,
            (ticks_diff(now, self.t0) & 0xFFFFFFFF, self.epoch_now(now), kind, a, b, c, ref, text),
        )
        tele = kind in _TELEMETRY
        seq = self.journal.append(self.body_mv[:n], tele)
        if not seq and not tele:
            self.refuse("JOURNAL FULL")
        elif seq and (kind == W.EV_WRAPUP or kind == W.EV_ESC_RAISE):
            self.outcome = seq
        self.dirty = True
        self.link.pump_events(now)
        return seq

    def epoch_now(self, now):
        if not self.epoch:
            return 0
        return self.epoch + ticks_diff(now, self.epoch_at) // 1000

    # --- feedback to the agent (the Agent's ui) -------------------------------
    def refuse(self, msg):
        self.buzzer.refuse()
        self._message(msg)

    def confirm(self, msg):
        self.buzzer.confirm()
        self._message(msg)

    def _message(self, msg):
        self.msg = msg
        self.msg_until = ticks_add(ticks_ms(), _MSG_MS)
        self.dirty = True

    # --- inputs ----------------------------------------------------------------
    def on_key(self, kind, key, held_ms):
        now = ticks_ms()
        if kind == K.HOOK_OFF:
            self.agent.hook(True, now)
        elif kind == K.HOOK_ON:
            self.agent.hook(False, now)
        elif kind != K.RELEASE:
            self.agent.key(kind, key, held_ms, now)
        self.dirty = True

    def _saved(self, now, acked):
        # True when the host's ack (acked: the highest seq it stored) just
        # covered the agent's last outcome.
        o = self.outcome
        if o and self.link.lost == o:
            self.outcome = 0  # sent as LOST: the host never stored it
        elif o and acked >= o:
            self.outcome = 0
            self.saved_at = now
            self._message("Saved")
            return True
        return False

    def on_frame(self, mtype, f):
        now = ticks_ms()
        if mtype == W.ACK:
            # The agent sees "Saved" as soon as the store has the code.
            if self._saved(now, f[0]):
                self.dirty = False
                self.send_status(now, self.compose(now))
        elif mtype == W.KEEPALIVE:
            if f[0]:
                self.epoch = f[0]
                self.epoch_at = now - f[1]
        elif mtype == W.HELLO_REQ:
            self.send_hello()
            self.link.rewind()
        elif mtype == W.FLOOR:
            self.floor = f
            self.dirty = True
        elif mtype == W.CALL:
            self.agent.host_call(f[1], f[2].decode(), now)
            self._result(f[0], W.OK, "")
            self.dirty = True
        elif mtype == W.ESC_STATUS:
            ok = self.agent.esc_status(f[1], f[2], f[3], f[4], f[5].decode(), now)
            self._result(f[0], W.OK if ok else W.E_UNKNOWN, "" if ok else "unknown escalation")
            self.dirty = True
        elif mtype == W.REBOOT:
            if f[1]:
                self._activate(f[0], f[1])
                return
            self._result(f[0], W.OK, "rebooting")
            self.restart(_HOST_REBOOT)
        elif mtype == W.REPL:
            self._result(f[0], W.OK, "leaving the app for the REPL")
            self.record(_REPL_EXIT)
            self.stopping = True
        elif mtype == W.XFER_BEGIN:
            # The transfer code is loaded only while a transfer runs.
            import xfer

            self.xfer = xfer.Transfer()
            st, text = self.xfer.begin(f[1], f[2], f[3], f[4], f[5])
            if st != W.OK:
                self._end_xfer()
            self._result(f[0], st, text)
        elif mtype == W.XFER_DATA:
            if self.xfer is None:
                self.link.send(W.XFER_ACK, (f[0], 0, W.E_STATE))
                return
            got, st = self.xfer.data(f[0], f[1], f[2])
            self.link.send(W.XFER_ACK, (f[0], got, st))
        elif mtype == W.XFER_END:
            if self.xfer is None:
                self._result(f[0], W.E_STATE, "no transfer")
                return
            kind = self.xfer.kind
            st, text, data = self.xfer.end(f[1])
            self._end_xfer()
            if st == W.OK and kind == W.XFER_CONFIG:
                st, text = self.apply_config(data)
            self._result(f[0], st, text)

    def _activate(self, cmd_id, mode):
        # REBOOT mode 1 (app) or 2 (firmware): checks what was staged, then
        # restarts into it on trial.
        if mode == _REBOOT_APP:
            name, reason = "appupdate", _APP_UPDATE
        elif mode == _REBOOT_FIRMWARE:
            name, reason = "fwupdate", _FW_UPDATE
        else:
            self._result(cmd_id, W.E_BAD_REQUEST, "unknown reboot mode %d" % mode)
            return
        try:
            st, text = __import__(name).activate(self.board.wdt.feed)
        except MemoryError:
            st, text = W.E_NO_SPACE, "console out of memory: send it again"
        for n in (name, "appupdate", "updcodes", "bootslot"):
            _drop(n)
        self._result(cmd_id, st, text)
        if st == W.OK:
            self.restart(reason)

    def _end_xfer(self):
        self.xfer = None
        _drop("xfer")

    def _result(self, cmd_id, status, text):
        self.link.send(W.RESULT, (cmd_id, status, text))

    def apply_config(self, raw):
        # A bad config is refused and the old one kept.  So is one that
        # does not fit the heap right now: the host may send it again.
        try:
            cfg, err = C.parse(raw)
        except MemoryError:
            gc.collect()
            try:
                cfg, err = C.parse(raw)
            except MemoryError:
                self.emit(W.EV_CONFIG, 0, 0, 0, 0, "out of memory")
                return W.E_NO_SPACE, "console out of memory: config kept, send it again"
        if cfg is None:
            err = err or "config refused"
            self.emit(W.EV_CONFIG, 0, 0, 0, 0, err[:60])
            return W.E_BAD_CONFIG, err
        C.save(CONFIG_PATH, raw)
        self.cfg = cfg
        self.agent.cfg = cfg
        self.leds.set_brightness(cfg.brightness)
        self.emit(W.EV_CONFIG, 1, 0, 0, cfg.version, "")
        return W.OK, "config %d applied" % cfg.version

    # --- outputs ---------------------------------------------------------------
    def send_hello(self):
        j = self.journal
        v = sys.implementation.version
        self.link.send(
            W.HELLO,
            (
                W.VERSION,
                self.trial | self.rolled_back,
                self.boots,
                ticks_diff(ticks_ms(), self.t0) & 0xFFFFFFFF,
                j.next_seq,
                j.first_unacked(),
                min(j.depth(), 0xFFFF),
                self.cfg.version,
                self.reset_cause,
                self.reason,
                " ab".find(self.slot) if self.slot else 0,
                self.device_id,
                self.board.name,
                "%d.%d.%d" % (v[0], v[1], v[2]),
                APP_VERSION,
            ),
        )

    def send_heartbeat(self, now):
        j = self.journal
        d = self.link.dec
        # Measured after a collection: without it the figure only tells how
        # much garbage is waiting, and the low-water mark sinks to zero.
        gc.collect()
        free = gc.mem_free()
        self.min_free = min(self.min_free, free)
        self.link.send(
            W.HEARTBEAT,
            (
                ticks_diff(now, self.t0) & 0xFFFFFFFF,
                free,
                self.min_free,
                self.reset_cause,
                self.reason,
                d.frames & 0xFFFFFFFF,
                min(self.link.rx_errors(), 0xFFFF),
                min(d.oversize, 0xFFFF),
                self.link.tx_frames & 0xFFFFFFFF,
                min(self.link.retransmits, 0xFFFF),
                min(j.depth(), 0xFFFF),
                min(j.dropped_telemetry, 0xFFFF),
                min(j.refused_events, 0xFFFF),
                min(j.torn_records, 0xFFFF),
                self.boots,
            ),
        )

    def compose(self, now):
        # The four OLED lines and the LED layers, from the agent's state.
        ag = self.agent
        st = ag.state
        if st == A.ON_CALL:
            l0 = "ON CALL " + display.mmss(ag.talk_ms(now) // 1000)
            personal = L.ON_CALL
        elif st == A.WRAP_UP:
            left = ag.acw_left_ms(now) if self.cfg.acw_ms else 0
            l0 = "WRAP-UP " + (display.mmss(left // 1000) if self.cfg.acw_ms else "")
            personal = L.WRAP_OVERDUE if ag.wrap_overdue(now) else L.WRAP_DUE
        else:
            l0 = "READY"
            personal = L.READY
        if self.journal.refused_events != self.refused_seen:
            if self.journal.depth() < 8:
                # Space again: tell the host how many agent events were refused.
                gap = self.journal.refused_events - self.refused_seen
                self.refused_seen = self.journal.refused_events
                self.emit(W.EV_JOURNAL_GAP, 0, min(gap, 0xFFFF), 0, 0, "")
            else:
                personal = L.JOURNAL_FULL
        if self.saved_at is not None:
            personal = L.higher(personal, L.SAVED)  # JOURNAL_FULL still wins
        if ticks_diff(self.msg_until, now) > 0:
            l1 = self.msg
        elif ag.typed >= 0 and st == A.WRAP_UP:
            label = self.cfg.label(ag.typed)
            l1 = "%d %s" % (ag.typed, label if label else "?")
        elif ag.typed >= 0 and st == A.ON_CALL:
            # On a call a digit is the severity of the next ESCALATE.
            l1 = "Sev %d then ESC" % ag.typed
        elif st == A.WRAP_UP:
            l1 = "Code then #"
        else:
            l1 = self.cfg.account
        worst, help_open = ag.esc_summary()
        esc = L.NONE
        if worst is not None:
            status = worst[3]
            left = ag.esc_left_ms(worst, now)
            l2 = "E%d %s" % (worst[0] % 10000, _ESC_WORD[status])
            if left is not None:
                l2 += " " + display.mmss(left // 1000)
            if status == W.ESC_BREACHED:
                esc = L.BREACHED
            elif status == W.ESC_ACKED:
                esc = L.ACKED
            else:
                esc = L.PENDING
        elif help_open:
            l2 = "HELP requested"
            esc = L.HELP
        else:
            l2 = self.cfg.hotline
        online = self.link.online(now, self.cfg.keepalive_ms)
        band = self.floor[0]
        if not online:
            l3 = "HOST LINK LOST"
        elif band == W.BAND_UNKNOWN:
            l3 = "SL --"
        else:
            l3 = "SL %d%% >%d%%" % (self.floor[1] // 10, self.cfg.sl_target)
        self.leds.offline(not online)
        self.leds.floor(band)
        self.leds.personal(personal)
        self.leds.escalation(esc)
        dp = self.display
        dp.line(0, l0)
        dp.line(1, l1)
        dp.line(2, l2)
        dp.line(3, l3)
        dp.flush()
        return worst

    def send_status(self, now, worst):
        ag = self.agent
        lines = self.display.lines
        snap = self.leds.snapshot()
        key = (ag.state, snap[0], snap[1], snap[2], lines[0], lines[1], lines[2], lines[3])
        if key == self.last_status:
            return
        if ticks_diff(now, self.status_at) < _STATUS_MIN_MS:
            # Too soon: compose again next pass, so the host's mirror gets
            # a short-lived state (SAVED) within 100 ms, not at the next second.
            self.dirty = True
            return
        self.last_status = key
        self.status_at = now
        esc_id = esc_status = 0
        esc_left = _NO_DEADLINE
        if worst is not None:
            esc_id, esc_status = worst[0], worst[3]
            left = ag.esc_left_ms(worst, now)
            if left is not None:
                esc_left = left // 1000
        acw = ag.acw_left_ms(now) // 1000 if ag.state == A.WRAP_UP else 0
        self.link.send(
            W.STATUS,
            (
                ag.state,
                self.leds.top(),
                snap[0],
                snap[1],
                snap[2],
                max(-32768, min(acw, 32767)),
                ag.typed if ag.typed >= 0 else 0xFFFF,
                esc_id,
                esc_status,
                esc_left,
                lines[0],
                lines[1],
                lines[2],
                lines[3],
            ),
        )

    # --- tasks -------------------------------------------------------------------
    def step(self, now):
        # One housekeeping pass: timeouts, events out, display, heartbeat,
        # watchdog.  Separate from the task so a test can drive the clock.
        self.agent.tick(now)
        self.link.pump_events(now)
        self._saved(now, self.journal.first_unacked() - 1)
        if self.saved_at is not None and ticks_diff(now, self.saved_at) >= _SAVED_MS:
            self.saved_at = None
            self.dirty = True
        sec = now // 1000
        online = self.link.online(now, self.cfg.keepalive_ms)
        if self.dirty or sec != self.last_sec or online != self.last_online:
            self.dirty = False
            self.last_online = online
            self.last_sec = sec
            worst = self.compose(now)
            self.send_status(now, worst)
        if ticks_diff(now, self.last_sync) >= _SYNC_MS:
            self.last_sync = now
            self.journal.sync()
        if ticks_diff(now, self.last_beat) >= self.cfg.heartbeat_ms:
            self.last_beat = now
            self.send_heartbeat(now)
        if ticks_diff(now, self.last_feed) >= _FEED_MS:
            # Feed only while the input scan is alive, not just this task.
            self.last_feed = now
            if self.keys.scans != self.scans_seen:
                self.scans_seen = self.keys.scans
                self.board.wdt.feed()
        if self.trial:
            up = ticks_diff(now, self.t0)
            healthy = bool(self.epoch) and up >= _HEALTHY_MS
            if healthy or up >= _TRIAL_MS:
                import apptrial

                apptrial.settle(self, healthy)
                _drop("apptrial")

    async def housekeeping(self):
        while not self.stopping:
            self.step(ticks_ms())
            await asyncio.sleep_ms(_HOUSE_MS)

    def start(self):
        # What a boot announces before the tasks run.
        self.emit(W.EV_BOOT, self.reason, self.reset_cause, 0, self.boots, "")
        self.send_hello()
        if self.trial or self.rolled:
            import apptrial

            apptrial.started(self)
            _drop("apptrial")

    async def run(self):
        self.start()
        for coro in (
            self.keys.run(),
            self.leds.run(),
            self.buzzer.run(),
            self.link.run(),
        ):
            self.tasks.append(asyncio.create_task(coro))
        try:
            await self.housekeeping()
        finally:
            for t in self.tasks:
                t.cancel()
            self.journal.sync()
            self.journal.close()

    def record(self, reason):
        import bootinfo

        bootinfo.record(self.board, reason, self.boots)

    def restart(self, reason):
        self.record(reason)
        self.journal.sync()
        self.board.reset()


def _drop(name):
    # Frees a module needed only now and then (the heap is ~100 KB).
    if name in sys.modules:
        del sys.modules[name]
    gc.collect()


def _crash_handler(app):
    # An exception escaping a task: record why, then reset like a panic would.
    def handler(loop, context):
        sys.print_exception(context["exception"])
        app.restart(_CRASH)

    return handler


def main(board):
    app = App(board)
    asyncio.get_event_loop().set_exception_handler(_crash_handler(app))
    micropython.kbd_intr(-1)  # frames may carry 0x03: no Ctrl-C while we run
    try:
        asyncio.run(app.run())
    finally:
        micropython.kbd_intr(3)
        asyncio.new_event_loop()
