# The host-confirmed SAVED light: the whole app on the fake board of
# session.py, with a host that acks only when the test says so.
# session goes first: it puts its fake clock in place of the time module
# before any firmware module imports from time.
import session  # noqa: I001
from session import CLOCK

import gc

import keys as K
import leds as L
import wire as W

CFG = (
    b'{"version": 1, "account": "ACME", "mode": "mandatory_timeout", "acw_s": 30,'
    b' "fallback": 99, "codes": [[1, "Billing query", true], [99, "ACW timeout", false]]}'
)
_S_PERSONAL = 3  # index of led_personal in a STATUS frame

_made = []  # one app for the module: a second one would not fit the heap


class Host(session.HostStream):
    # Acks only on ack(seq); keeps (seq, kind) of each event and the fields
    # of each STATUS frame.
    def __init__(self):
        super().__init__()
        self.auto_ack = False
        self.log = []
        self.statuses = []
        self.seen = W.Decoder()

    def write(self, frame):
        d = self.seen
        for b in frame:
            n = d.push(b)
            if n:
                f = W.parse(d.buf, n)
                if f[1] == W.EVENT:
                    self.log.append((f[2][0], f[2][3]))
                elif f[1] == W.STATUS:
                    self.statuses.append(f[2])
        return super().write(frame)

    def ack(self, seq):
        self.inbox.extend(self.enc.encode(W.ACK, (seq,)))


def _app():
    # Each test leaves garbage; the app's 96K heap wants it gone in one piece.
    gc.collect()
    if not _made:
        session.mount_flash()
        import app as A

        board = session.FakeBoard()
        host = board.stream_in = board.stream_out = Host()
        a = A.App(board)
        assert a.apply_config(CFG)[0] == W.OK
        a.start()
        _made.append((a, host))
    a, host = _made[0]
    # Start from a quiet desk: everything acked, no SAVED on show.
    host.ack(a.journal.next_seq - 1)
    _run(a, host, 1500)
    assert a.journal.depth() == 0 and a.leds.snapshot()[1] != L.SAVED
    del host.log[:]
    del host.statuses[:]
    return a, host


def _run(a, host, ms):
    # The app's tasks at their periods, on the fake clock.
    end = CLOCK.now + ms
    while CLOCK.now < end:
        CLOCK.now += 25
        if CLOCK.now % 1000 == 0:
            host.keepalive(1795392000 + CLOCK.now // 1000)
        a.link.poll_rx()
        if CLOCK.now % 50 == 0:
            a.step(CLOCK.now)
        a.leds.tick(CLOCK.now)


def _press(a, host, key):
    a.on_key(K.PRESS, key, 40)
    _run(a, host, 50)
    a.on_key(K.RELEASE, key, 40)
    _run(a, host, 50)


def _seq_of(host, kind):
    seqs = [s for s, k in host.log if k == kind]
    assert seqs, host.log
    return seqs[-1]


def _personal_sent(host):
    return [f[_S_PERSONAL] for f in host.statuses]


def test_ack_covering_the_wrapup_shows_saved_then_returns():
    a, host = _app()
    a.on_key(K.HOOK_OFF, K.NO_KEY, 0)
    _run(a, host, 200)
    a.on_key(K.HOOK_ON, K.NO_KEY, 0)
    _run(a, host, 200)
    _press(a, host, 1)
    _press(a, host, K.HASH)
    wrap = _seq_of(host, W.EV_WRAPUP)
    assert a.leds.snapshot()[1] == L.READY
    # An ack short of the wrap-up (up to the '#' press) owes nothing.
    host.ack(wrap - 1)
    _run(a, host, 1200)  # past the 1 s retry: the unacked events go again
    assert a.journal.first_unacked() == wrap
    assert a.leds.snapshot()[1] == L.READY
    assert L.SAVED not in _personal_sent(host), _personal_sent(host)
    # The ack that covers it: SAVED at once, and the host's mirror hears so.
    del host.statuses[:]
    host.ack(wrap)
    _run(a, host, 50)
    assert a.leds.snapshot()[1] == L.SAVED
    assert a.leds.top() == L.SAVED  # nothing else going on
    assert a.display.lines[1] == "Saved", a.display.lines
    _run(a, host, 100)
    assert _personal_sent(host) == [L.SAVED], host.statuses
    # About a second later the light is READY's again.
    _run(a, host, 800)
    assert a.leds.snapshot()[1] == L.SAVED
    _run(a, host, 150)
    assert a.leds.snapshot()[1] == L.READY
    assert _personal_sent(host)[-1] == L.READY
    # Once only: further acks owe nothing more.
    host.ack(a.journal.next_seq - 1)
    _run(a, host, 500)
    assert a.leds.snapshot()[1] == L.READY


def test_saved_status_reaches_the_host_within_100_ms():
    # The host acks at once, as a live host does: the STATUS saying SAVED must
    # not wait for the next second behind the 100 ms status spacing.
    a, host = _app()
    a.on_key(K.HOOK_OFF, K.NO_KEY, 0)
    _run(a, host, 200)
    a.on_key(K.HOOK_ON, K.NO_KEY, 0)
    _run(a, host, 200)
    _press(a, host, 1)
    a.on_key(K.PRESS, K.HASH, 40)
    _run(a, host, 50)  # the press's STATUS (READY) goes out here
    host.ack(_seq_of(host, W.EV_WRAPUP))
    t0 = CLOCK.now
    while L.SAVED not in _personal_sent(host):
        assert CLOCK.now - t0 <= 150, _personal_sent(host)
        _run(a, host, 25)
    _run(a, host, 1100)
    assert _personal_sent(host)[-1] == L.READY


def test_escalation_saved_over_on_call_then_back():
    a, host = _app()
    a.on_key(K.HOOK_OFF, K.NO_KEY, 0)
    _run(a, host, 200)
    _press(a, host, 2)  # severity
    a.on_key(K.SHORT, K.ESC, 200)
    _run(a, host, 100)
    esc = _seq_of(host, W.EV_ESC_RAISE)
    assert a.leds.snapshot()[1:] == (L.ON_CALL, L.PENDING)
    host.ack(esc - 1)
    _run(a, host, 300)
    assert a.leds.snapshot()[1] == L.ON_CALL
    host.ack(esc)
    _run(a, host, 50)
    assert a.leds.snapshot()[1:] == (L.SAVED, L.PENDING)
    assert a.leds.top() == L.PENDING  # the open escalation outranks it
    assert a.display.lines[1] == "Saved", a.display.lines
    _run(a, host, 1100)
    assert a.leds.snapshot()[1:] == (L.ON_CALL, L.PENDING)
    # Leave the desk quiet for the next test.
    a.on_key(K.LONG, K.ESC, 1500)
    a.on_key(K.HOOK_ON, K.NO_KEY, 0)
    _run(a, host, 100)
    _press(a, host, 1)
    _press(a, host, K.HASH)
    assert a.agent.state == 0 and not a.agent.escalations


def test_no_saved_for_a_record_sent_as_lost():
    # A record the journal lost to flash damage goes as EV_LOST: the host's
    # ack then covers a placeholder, not the wrap-up, so nothing is claimed.
    a, host = _app()
    a.on_key(K.HOOK_OFF, K.NO_KEY, 0)
    _run(a, host, 200)
    a.on_key(K.HOOK_ON, K.NO_KEY, 0)
    _run(a, host, 200)
    _press(a, host, 1)
    _press(a, host, K.HASH)
    wrap = _seq_of(host, W.EV_WRAPUP)
    a.link.lost = wrap  # as pump_events records a damaged record
    host.ack(a.journal.next_seq - 1)
    _run(a, host, 300)
    assert a.journal.depth() == 0
    assert a.leds.snapshot()[1] == L.READY
    assert L.SAVED not in _personal_sent(host)
