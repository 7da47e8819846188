# The console's session with the host over the REPL UART: frames in and out,
# the journal's event window with go-back-N retransmission, and counters.
import asyncio
import select
from time import ticks_diff, ticks_ms

import wire as W
from micropython import const

_WINDOW = const(16)  # events in flight before waiting for an ack
_RETRY_MS = const(1000)  # no ack progress for this long: resend from the oldest


class Link:
    # on_frame(mtype, fields) handles every good host frame; an ACK only
    # when it moved the journal on.
    def __init__(self, stream_in, stream_out, journal, on_frame, enc, dec):
        self.sin = stream_in
        self.sout = stream_out
        self.journal = journal
        self.on_frame = on_frame
        self.enc = enc  # wire.Encoder and wire.Decoder, made early by the
        self.dec = dec  # caller while the heap is still in one piece
        self.one = bytearray(1)
        self.one_mv = memoryview(self.one)
        self.rec = bytearray(256)
        self.rec_mv = memoryview(self.rec)
        self.poller = select.poll()
        self.poller.register(stream_in, select.POLLIN)
        self.next_send = journal.first_unacked()
        self.last_progress = ticks_ms()
        self.last_rx = None  # ticks of the last good host frame; None = never
        self.tx_frames = 0
        self.retransmits = 0
        self.bad_frames = 0  # good CRC but unknown version/type/schema
        self.lost = 0  # the newest seq sent as EV_LOST (its record was damaged)
        self.running = True

    # --- transmit ------------------------------------------------------------
    def send(self, mtype, values):
        self._write(self.enc.encode(mtype, values))

    def _write(self, frame):
        self.sout.write(frame)
        self.tx_frames += 1

    def pump_events(self, now):
        # Sends journal records inside the window; resends after silence.
        j = self.journal
        first = j.first_unacked()
        self.next_send = max(self.next_send, first)
        if self.next_send > first and ticks_diff(now, self.last_progress) > _RETRY_MS:
            self.retransmits += 1
            self.next_send = first
            self.last_progress = now
        end = j.next_seq
        if self.next_send == first and end > first:
            # The window was empty: the ack timer starts with this send.
            self.last_progress = now
        while self.next_send < end and self.next_send - first < _WINDOW:
            seq = self.next_send
            self.next_send = seq + 1
            n = j.read(seq, self.rec)
            if n < 0:
                # A record lost to flash damage: say so, or the host's
                # gap-free acks would stop at it for ever.
                self.lost = seq
                self._write(self.enc.encode(W.EVENT, (seq, 0, 0, W.EV_LOST, 0, 0, 0, 0, "")))
                continue
            self._write(self.enc.encode_raw(W.EVENT, "I", (seq,), self.rec_mv[:n]))

    def rewind(self):
        # The host (re)connected: everything unacked goes again.
        self.next_send = self.journal.first_unacked()
        self.last_progress = ticks_ms()

    def online(self, now, keepalive_ms):
        return self.last_rx is not None and ticks_diff(now, self.last_rx) < keepalive_ms

    # --- receive -------------------------------------------------------------
    def poll_rx(self):
        # Reads what is waiting, one byte at a time (a larger read would
        # block until filled; ipoll does not allocate), up to the end of one
        # frame: an update streams frames back to back, and draining them all
        # in one go starved the key scan long enough to miss a press.
        p = self.poller
        rd = self.sin.readinto
        one = self.one_mv
        dec = self.dec
        while True:
            ready = False
            for _ in p.ipoll(0):
                ready = True
            if not ready:
                return
            if not rd(one):
                return
            n = dec.push(self.one[0])
            if n:
                self._frame(n)
                return

    def _frame(self, n):
        try:
            _, mtype, fields = W.parse(self.dec.buf, n)
        except W.WireError:
            self.bad_frames += 1
            return
        self.last_rx = ticks_ms()
        if mtype == W.ACK:
            seq = fields[0]
            if seq >= self.journal.first_unacked():
                # Progress can confirm the agent's last code: the app shows
                # it now, before the journal's own bookkeeping on flash.
                self.on_frame(mtype, fields)
                self.journal.ack(seq)
                self.last_progress = self.last_rx
        else:
            self.on_frame(mtype, fields)

    async def run(self):
        # Wakes on input through asyncio's poller, then reads the rest of the
        # frame without waiting; the await between frames lets the other
        # tasks (the key scan first) run.
        sreader = asyncio.StreamReader(self.sin)
        while self.running:
            if await sreader.readinto(self.one_mv):
                n = self.dec.push(self.one[0])
                if n:
                    self._frame(n)
                else:
                    self.poll_rx()

    def rx_errors(self):
        d = self.dec
        return d.crc_errors + d.cobs_errors + self.bad_frames

    def deinit(self):
        self.running = False
