"""Press → host commit → ACK → "Saved" at the desk, at 115200 baud.

One virtual console (the real firmware) and the real daemon (its own
process, SQLite with synchronous=FULL).  Each round the agent ends a call
and keys a wrap-up code; the console journals and sends the events, the
daemon commits them and acknowledges, and the console's personal light goes
to SAVED with "Saved" on the display in the same pass (docs/leds.md).

A tap on the paced line timestamps every frame, so each round is printed
beside the wire time of the frames that had to cross: the events from the
'#' press up to the wrap-up, and the ACK that covers it.  Target: p99 from
the first event byte on the wire to "Saved" <= 3x that wire time.  The
figure from the key going down adds the 20 ms debounce a finger needs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from deskline import control
from deskline.floorconfig import demo_floor_toml
from deskline.sim.console import VirtualConsole
from deskline.wire import Message, StreamDecoder, codec, decode

HASH = 11


@dataclass(frozen=True)
class Seen:
    direction: str  # "up" (console to host) or "down"
    t: float  # when its last byte crossed
    size: int  # bytes on the wire, delimiter included
    msg: Message


class Tap:
    """Frames seen on the wire, each with the times its bytes started and ended."""

    def __init__(self, baud: int) -> None:
        self.baud = baud
        self.lock = threading.Lock()
        self.frames: list[Seen] = []
        self._dec = {"up": StreamDecoder(), "down": StreamDecoder()}
        self._size = {"up": 0, "down": 0}

    def __call__(self, direction: str, data: bytes, t: float) -> None:
        try:
            self._take(direction, data, t)
        except Exception as e:  # never take the line down
            print(f"tap: {e!r}", file=sys.stderr)

    def _take(self, direction: str, data: bytes, t: float) -> None:
        dec = self._dec[direction]
        with self.lock:
            # A frame's bytes: count from its delimiter; the chunk arrives
            # whole, so a frame ending in it ends at t.
            parts = data.split(b"\x00")
            for i, part in enumerate(parts):
                if i == len(parts) - 1:  # no delimiter yet: the frame goes on
                    self._size[direction] += len(part)
                    dec.feed(part)
                    continue
                self._size[direction] += len(part) + 1
                for body in dec.feed(part + b"\x00"):
                    try:
                        msg = decode(body)
                    except Exception:
                        continue
                    self.frames.append(Seen(direction, t, self._size[direction], msg))
                    self._size[direction] = 0

    def after(self, t0: float) -> list[Seen]:
        with self.lock:
            return [f for f in self.frames if f.t >= t0]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--baud", type=int, default=115200)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="deskline-latency-"))
    (work / "floor.toml").write_text(demo_floor_toml(1))
    vc = VirtualConsole(work / "desk-01", device_id="desk-01", baud=args.baud)
    tap = Tap(args.baud)
    vc.tap = tap
    vc.start()
    sock = work / "state" / "deskline.sock"
    log = open(work / "daemon.log", "wb")
    daemon = subprocess.Popen(
        [
            *(sys.executable, "-m", "deskline.cli", "daemon", "--state", str(work / "state")),
            *("--floor", str(work / "floor.toml"), "--port", str(vc.port_link), "--no-usb"),
        ],
        stdout=log,
        stderr=log,
    )
    total: list[float] = []
    from_wire: list[float] = []
    wire: list[float] = []
    host: list[float] = []  # first event byte -> the covering ACK at the console
    desk: list[float] = []  # that ACK -> "Saved" on the display
    try:
        end = time.monotonic() + 30
        while not (sock.exists() and vc.wait_display("Volt Energy", 0.5)):
            if time.monotonic() > end:
                raise SystemExit("the console did not get its config from the daemon")
        control.request(sock, {"op": "ping"})
        for _ in range(args.rounds):
            vc.hook(True)
            time.sleep(0.4)
            vc.hook(False)
            time.sleep(0.3)
            vc.press("1")
            vc.wait_for(lambda s: "Saved" not in s.display[1], 3)
            t_press = time.monotonic()
            vc.down("#")  # the console acts on the debounced press, not the release
            time.sleep(0.08)
            vc.up("#")
            if not vc.wait_display("Saved", 5):
                print("round lost: no 'Saved' within 5 s", file=sys.stderr)
                continue
            t_saved = time.monotonic()
            frames = tap.after(t_press)
            up = [f for f in frames if f.direction == "up" and f.msg.name == "event"]
            press = next(
                (f for f in up if f.msg["kind"] == codec.EV_PRESS and f.msg["a"] == HASH), None
            )
            wrap = next((f for f in up if f.msg["kind"] == codec.EV_WRAPUP), None)
            if press is None or wrap is None:
                continue
            ack = next(
                (
                    f
                    for f in frames
                    if f.direction == "down"
                    and f.msg.name == "ack"
                    and f.msg["seq"] >= wrap.msg["seq"]
                ),
                None,
            )
            if ack is None:
                continue
            involved = [f for f in up if press.msg["seq"] <= f.msg["seq"] <= wrap.msg["seq"]]
            wire_s = (sum(f.size for f in involved) + ack.size) * 10 / args.baud
            start = press.t - press.size * 10 / args.baud
            host.append(ack.t - start)
            desk.append(t_saved - ack.t)
            total.append(t_saved - t_press)
            from_wire.append(t_saved - start)
            wire.append(wire_s)
            time.sleep(1.1)  # SAVED ends; the next round starts clean
    finally:
        daemon.terminate()
        daemon.wait(15)
        log.close()
        vc.stop()
    if not from_wire:
        print(json.dumps({"ok": False, "error": "no round completed"}))
        return 1
    wire_ms = statistics.median(wire) * 1000
    p50, p99 = pct(from_wire, 50) * 1000, pct(from_wire, 99) * 1000
    t50, t99 = pct(total, 50) * 1000, pct(total, 99) * 1000
    print(f"rounds {len(from_wire)} at {args.baud} baud (daemon: SQLite WAL, synchronous=FULL)")
    print(f"wire time of the frames involved (events '#'..wrap-up + ACK): {wire_ms:.1f} ms")
    print(f"first event byte -> 'Saved' at the desk: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    print(
        f"  of which: to the ACK back at the console p50 {pct(host, 50) * 1000:.1f} ms, "
        f"from there to 'Saved' seen here p50 {pct(desk, 50) * 1000:.1f} ms"
    )
    print(f"key press -> 'Saved' (adds the 20 ms debounce): p50 {t50:.1f} ms, p99 {t99:.1f} ms")
    ratio = p99 / wire_ms
    print(f"p99 / wire time: {ratio:.2f} (target <= 3)")
    shutil.rmtree(work, ignore_errors=True)
    print(
        json.dumps(
            {
                "bench": "latency",
                "rounds": len(from_wire),
                "baud": args.baud,
                "wire_ms": round(wire_ms, 2),
                "p50_ms": round(p50, 2),
                "p99_ms": round(p99, 2),
                "ack_back_p50_ms": round(pct(host, 50) * 1000, 2),
                "desk_p50_ms": round(pct(desk, 50) * 1000, 2),
                "release_p50_ms": round(t50, 2),
                "release_p99_ms": round(t99, 2),
                "reference": "wire time of the frames involved",
                "ratio_p99": round(ratio, 2),
                "target": "p99 <= 3x wire time",
                "ok": ratio <= 3.0,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
