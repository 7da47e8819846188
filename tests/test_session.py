"""The daemon's console session against hostile byte streams, with a real store.

Hypothesis plays a console and a line that drops, flips, duplicates and
reorders; the session must never raise, must only acknowledge what the
store committed, the store must hold a gap-free prefix of each console's
events, and a well-behaved console afterwards must get through.
"""

from __future__ import annotations

from typing import Any

from deskline.session import AWAIT_HELLO, INCOMPATIBLE, ONLINE, Session
from deskline.store import Batch, Store
from deskline.wire import StreamDecoder, codec, decode, encode
from fakeconsole import hello_frame, reframe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

DEV = "fz-01"


def hello(device: str = DEV, proto: int = 1, **over: Any) -> bytes:
    # A console well into its shift: sequences far ahead of anything fuzzed.
    return hello_frame(device, proto, **{"boot_count": 3, "next_seq": 100_000, **over})


def event(seq: int, kind: int = codec.EV_PRESS) -> bytes:
    return encode(
        codec.EVENT,
        seq=seq,
        uptime_ms=seq * 10,
        epoch=0,
        kind=kind,
        a=seq % 12,
        b=60,
        c=0,
        ref=0,
        text="",
    )


def other_version(frame: bytes) -> bytes:
    return reframe(frame, 2)


def mangle(data: bytes, how: int, where: int) -> bytes:
    if not data:
        return data
    i = where % len(data)
    if how == 0:  # drop a byte
        return data[:i] + data[i + 1 :]
    if how == 1:  # flip a bit
        return data[:i] + bytes([data[i] ^ (1 << (where % 8))]) + data[i + 1 :]
    return data[:i] + data[i : i + 1] + data[i:]  # duplicate a byte


frames = st.one_of(
    st.integers(1, 40).map(event),
    st.integers(1, 40).map(lambda s: event(s, codec.EV_WRAPUP)),
    st.just(hello()),
    st.just(hello(proto=2)),
    st.just(hello(device="")),
    st.just(hello(device="fz-02")),
    st.integers(1, 40).map(lambda s: other_version(event(s))),
    st.binary(max_size=40),
    st.just(encode(codec.ACK, seq=5)),  # a host-bound frame echoed back
    st.just(encode(codec.RESULT, cmd_id=7, status=0, text="ok")),
    st.just(encode(codec.XFER_ACK, xfer_id=1, offset=512, status=0)),
    st.just(encode(codec.LOG, level=1, text="hello from the console")),
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("bytes"), frames, st.integers(0, 3), st.integers(0, 10_000)),
        st.tuples(st.just("tick"), st.floats(0.01, 3.0)),
        st.tuples(st.just("commit")),
        st.tuples(st.just("fail")),
    ),
    max_size=60,
)


class Harness:
    """Drives a Session the way PortWorker does, with the real store."""

    def __init__(self) -> None:
        self.store = Store(":memory:", synchronous="OFF")
        self.now = 0.0
        self.s = Session("/dev/fuzz", self.now, wall=lambda: 1.8e9 + self.now)
        self.pending = Batch()
        self.acks: list[int] = []
        self.rx = StreamDecoder()

    def pump(self) -> None:
        out, batch = self.s.drain()
        for body in self.rx.feed(out):
            msg = decode(body)
            if msg.name == "ack":
                # Never acknowledge what the store does not hold.
                assert msg["seq"] <= self.store.acked(self.s.device_id), (msg, self.s.device_id)
                self.acks.append(msg["seq"])
        self.pending.add(batch)
        if self.s.pending_hello is not None:
            self.commit()
            h = self.s.pending_hello
            outcome = self.store.hello(h["device_id"], h, "/dev/fuzz", 1.8e9 + self.now)
            self.s.hello_stored(
                outcome, self.now, config=self.store.config_for_console(h["device_id"])
            )
            self.pump()

    def commit(self) -> None:
        batch, self.pending = self.pending, Batch()
        acked = self.store.apply(batch)
        if self.s.device_id in acked:
            self.s.committed(acked[self.s.device_id], self.now)

    def fail(self) -> None:
        self.pending = Batch()
        self.s.commit_failed()

    def step(self, op: tuple[Any, ...]) -> None:
        if op[0] == "bytes":
            self.s.feed(mangle(op[1], op[2], op[3]) if op[2] < 3 else op[1], self.now)
        elif op[0] == "tick":
            self.now += op[1]
            self.s.tick(self.now)
        elif op[0] == "commit":
            self.commit()
        else:
            self.fail()
        self.pump()

    def check_store(self) -> None:
        for device in (DEV, "fz-02"):
            seqs = [e["seq"] for e in self.store.events(device)]
            assert seqs == list(range(1, len(seqs) + 1)), (device, seqs)
            assert self.store.acked(device) == len(seqs)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_no_input_breaks_the_session_or_the_store(ops: list[tuple[Any, ...]]) -> None:
    h = Harness()
    for op in ops:
        h.step(op)
    h.commit()
    h.pump()
    h.check_store()
    # Recovery: a well-behaved console gets through whatever came before.
    h.s.feed(hello(), h.now)
    h.pump()
    assert h.s.state == ONLINE and h.s.device_id == DEV
    base = h.store.acked(DEV)
    h.s.feed(b"".join(event(seq) for seq in range(base + 1, base + 6)), h.now)
    h.pump()
    h.commit()
    h.pump()
    assert h.store.acked(DEV) == base + 5
    assert h.acks[-1] == base + 5
    h.check_store()


def test_events_only_count_in_order_and_after_commit() -> None:
    h = Harness()
    h.s.feed(hello(), 0)
    h.pump()
    h.s.feed(event(1) + event(3) + event(2) + event(2), 0)
    h.pump()
    assert h.acks == []  # nothing committed yet: nothing acknowledged
    h.commit()
    h.pump()
    assert h.acks == [2]
    assert h.s.health.out_of_order == 1 and h.s.health.duplicates == 1
    h.s.feed(event(3), 0)
    h.fail()  # the store refused the batch holding 3
    h.pump()
    h.s.feed(event(3), 0)  # the console's go-back-N resend
    h.pump()
    h.commit()
    h.pump()
    assert h.acks[-1] == 3
    h.check_store()


def test_wrong_protocol_version_is_named_and_not_served() -> None:
    h = Harness()
    h.s.feed(hello(proto=2), 0)
    h.pump()
    assert h.s.state == INCOMPATIBLE
    assert any("protocol 2" in text for _, text in h.s.notes)
    h.s.feed(other_version(event(1)), 0)
    h.pump()
    assert h.store.events(DEV) == []
    # The console is reflashed in place: it is served.
    h.s.feed(hello(), 0)
    h.pump()
    assert h.s.state == ONLINE


def test_hello_is_asked_for_until_it_comes() -> None:
    h = Harness()
    sent: list[str] = []
    for _ in range(5):
        h.now += 20
        h.s.tick(h.now)
        out, _ = h.s.drain()
        sent += [decode(b).name for b in StreamDecoder().feed(out)]
    assert h.s.state == AWAIT_HELLO
    assert sent.count("hello_req") >= 5
