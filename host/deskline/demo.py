"""`deskline demo`: virtual consoles acting out a shift, watched live.

Each console runs the real firmware on the MicroPython unix port; a driver
plays the agent at the desk (handset, wrap-up codes, escalations) and a host
session per console pushes its account config, keeps it online, sets the
floor light and prints what arrives.
"""

from __future__ import annotations

import json
import random
import signal
import tempfile
import threading
import time
from pathlib import Path

from deskline.monitor import describe
from deskline.serial_link import ConsoleLink
from deskline.sim.console import VirtualConsole, serve_panel
from deskline.wire import codec

CONFIG = {
    "version": 1,
    "account": "ACME Energy",
    "mode": "mandatory_timeout",
    "acw_s": 20,
    "fallback": 99,
    "codes": [
        [1, "Billing query", True],
        [2, "Meter reading", False],
        [3, "Payment plan", False],
        [7, "Confusing bill", True],
        [99, "ACW timeout", False],
    ],
    "hotline": "+44 20 7946 0000",
}


def _agent(vc: VirtualConsole, rng: random.Random, stop: threading.Event) -> None:
    """Plays one agent: calls, codes, now and then an escalation."""
    while not stop.wait(rng.uniform(1.0, 3.0)):
        vc.hook(True)
        if stop.wait(rng.uniform(2.0, 5.0)):
            return
        if rng.random() < 0.2:
            vc.press(str(rng.randint(1, 2)))
            vc.press("ESC", ms=150)
        vc.hook(False)
        if stop.wait(rng.uniform(0.5, 2.0)):
            return
        for digit in str(rng.choice([1, 2, 3, 7])):
            vc.press(digit)
        vc.press("#")


def _host(vc: VirtualConsole, stop: threading.Event, lock: threading.Lock) -> None:
    """A host session: config, keepalive, floor light, acks, live log."""
    with ConsoleLink(str(vc.port_link)) as link:
        link.send(codec.HELLO_REQ)
        link.expect("hello", 15)
        for _attempt in range(3):
            try:
                if link.push_config(json.dumps(CONFIG).encode())["status"] == codec.OK:
                    break
            except TimeoutError:
                pass
            time.sleep(1.0)
        else:
            with lock:
                print(f"{vc.device_id}: the console did not take its config", flush=True)
        acked = 0
        next_tick = 0.0
        band = codec.BAND_GREEN
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_tick:
                t = time.time()
                link.send(codec.KEEPALIVE, epoch=int(t), ms=int(t * 1000) % 1000)
                band = random.choice([band, band, codec.BAND_GREEN, codec.BAND_AMBER])
                link.send(
                    codec.FLOOR,
                    band=band,
                    sl_permille=860 if band == 1 else 770,
                    target_pct=80,
                    waiting=2,
                    longest_wait=14,
                )
                next_tick = now + 2.0
            msg = link.recv(0.2)
            if msg is None:
                continue
            if msg.name == "event":
                if msg["seq"] <= acked + 1:
                    acked = max(acked, msg["seq"])
                    link.send(codec.ACK, seq=acked)
                if msg["kind"] == codec.EV_ESC_RAISE:
                    link.send(
                        codec.ESC_STATUS,
                        cmd_id=link.next_cmd(),
                        esc_id=msg["seq"],
                        kind=0,
                        status=codec.ESC_ACKED,
                        deadline_s=7200,
                        ticket=f"INC{msg['seq']:05d}",
                        hotline="",
                    )
            if msg.name in ("event", "hello") and (
                msg.name == "hello" or msg["kind"] not in (codec.EV_PRESS, codec.EV_STATE)
            ):
                with lock:
                    print(
                        f"{time.strftime('%H:%M:%S')} {vc.device_id}: {describe(msg)}", flush=True
                    )


def run_demo(consoles: int = 4, seconds: float = 0.0) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="deskline-demo-"))
    stop = threading.Event()
    lock = threading.Lock()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    fleet = []
    for i in range(consoles):
        vc = VirtualConsole(workdir / f"desk-{i + 1:02d}", device_id=f"desk-{i + 1:02d}")
        vc.start()
        serve_panel(vc, vc.workdir / "panel.sock")
        fleet.append(vc)
    print(f"Deskline demo: {consoles} virtual consoles (the real firmware on MicroPython)")
    for vc in fleet:
        print(f"  {vc.device_id}: serial {vc.port_link}, panel {vc.workdir / 'panel.sock'}")
    print(
        "  try: deskline sim panel --socket <panel> state    (Ctrl-C stops the demo)\n", flush=True
    )
    threads = []
    for i, vc in enumerate(fleet):
        for target, args in ((_host, (vc, stop, lock)), (_agent, (vc, random.Random(i), stop))):
            t = threading.Thread(target=target, args=args, daemon=True)
            t.start()
            threads.append(t)
    end = time.monotonic() + seconds if seconds else None
    try:
        while not stop.is_set() and (end is None or time.monotonic() < end):
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    stop.set()
    for t in threads:
        t.join(timeout=3)
    for vc in fleet:
        vc.stop()
        crash = vc.traceback()
        if crash:
            print(f"{vc.device_id} crashed during the demo:\n{crash}")
    print("demo stopped; flash images kept in", workdir)
    return 0
