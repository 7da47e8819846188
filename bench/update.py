"""Update figures: a bundle through the daemon vs `mpremote fs cp` on one link.

Usage: bench/update.py [--pad KB]

One virtual console on a 115200-baud line (the pseudo-terminal paced as a
UART is).  First the daemon streams a signed bundle into its inactive slot
(`deskline update`: the app's .mpy files plus --pad KB of random bytes, so
most of what crosses is incompressible), timed on the line itself by a tap
from the first XFER_BEGIN to the last XFER_END; then the same files go onto
the same console over the same line with `mpremote fs cp` (the console in
safe boot, the REPL free).  Line rate is 11,520 bytes/s (10 bits a byte).

Targets: the update >= 3x faster than mpremote; >= 80 % of line rate for
the random (incompressible) files while they stream.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from deskline import bundle as B
from deskline import control
from deskline.sim.console import VirtualConsole
from deskline.wire import StreamDecoder, codec, decode

BIN = Path(sys.executable).parent
BAUD = 115200
LINE_RATE = BAUD / 10  # bytes/s on an 8N1 line
TARGET_SPEEDUP = 3.0
TARGET_LINE = 0.80


class Tap:
    """What crossed the line towards the console, frame by frame, with times."""

    def __init__(self) -> None:
        self.decoder = StreamDecoder()
        self.frames: list[tuple[float, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, direction: str, data: bytes, when: float) -> None:
        if direction != "down":
            return
        with self.lock:
            for body in self.decoder.feed(data):
                try:
                    self.frames.append((when, decode(body)))
                except codec.WireError:
                    pass


def wait(pred: Any, timeout: float, what: str) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            got = pred()
        except Exception:
            got = None
        if got:
            return got
        time.sleep(0.05)
    raise SystemExit(f"bench/update: timed out waiting for {what}")


def stream_figures(tap: Tap, pads: set[str]) -> dict[str, float]:
    """Whole stream and random files only, from the frames on the line."""
    begin = end = None
    names: dict[int, str] = {}
    pad_first: dict[str, float] = {}
    pad_last: dict[str, float] = {}
    data_bytes = 0
    for when, msg in tap.frames:
        if msg.name == "xfer_begin" and msg["kind"] == codec.XFER_APP_FILE:
            begin = begin if begin is not None else when
            names[msg["xfer_id"]] = msg["name"]
        elif msg.name == "xfer_end":
            end = when
        elif msg.name == "xfer_data":
            data_bytes += len(msg["data"])
            name = names.get(msg["xfer_id"], "")
            if name in pads:
                pad_first.setdefault(name, when - len(msg["data"]) * 10 / BAUD)
                pad_last[name] = when
    assert begin is not None and end is not None
    pad_s = sum(pad_last[n] - pad_first[n] for n in pad_first)
    return {"stream_s": end - begin, "data_bytes": data_bytes, "pad_s": pad_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pad", type=int, default=48, help="KB of random files in the bundle")
    args = ap.parse_args()
    key = Ed25519PrivateKey.generate()
    arch = B.native_arch()
    files = B.compile_app(arch, "9.0.0")
    rng = random.Random(2026)
    half = args.pad * 512
    pads = {"pad1.mpy": rng.randbytes(half), "pad2.mpy": rng.randbytes(args.pad * 1024 - half)}
    files.update(pads)
    bundle = B.sign_bundle(key, "9.0.0", arch, B.mpy_version(), files)
    app_bytes = sum(e.size for e in bundle.app_entries)
    pad_bytes = sum(len(d) for d in pads.values())
    with tempfile.TemporaryDirectory(prefix="deskline-bench-update-") as tmp:
        work = Path(tmp)
        path = work / "bench.dlb"
        B.write_bundle(bundle, path)
        tap = Tap()
        vc = VirtualConsole(
            work / "vc", device_id="bench-1", baud=BAUD, fleet_key=B.public_bytes(key)
        )
        vc.tap = tap
        vc.start()
        state = work / "state"
        sock = state / "deskline.sock"
        log = open(work / "daemon.log", "wb")
        daemon = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "deskline.cli",
                "daemon",
                "--state",
                str(state),
                "--no-usb",
                "--port",
                str(vc.port_link),
            ],
            stdout=log,
            stderr=log,
        )
        try:
            wait(
                lambda: sock.exists() and control.request(sock, {"op": "ping"})["ok"],
                20,
                "the daemon",
            )

            def online() -> bool:
                st = control.request(sock, {"op": "update_status"})
                return any(c["online"] for c in st["consoles"])

            wait(online, 30, "the console")
            # --- ours: the daemon's update -------------------------------------------
            started = time.monotonic()
            reply = control.request(
                sock, {"op": "update", "device": "bench-1", "bundle": str(path)}
            )
            assert reply["ok"], reply

            def finished() -> dict[str, Any] | None:
                for j in control.request(sock, {"op": "update_status"})["jobs"]:
                    if j["state"] in ("done", "failed", "rolled_back"):
                        return dict(j)
                return None

            job = wait(finished, 300, "the update")
            total_s = time.monotonic() - started
            if job["state"] != "done":
                raise SystemExit(f"bench/update: the update {job['state']}: {job['error']}")
            ours = stream_figures(tap, set(pads))
            # --- reference: mpremote fs cp of the same files, same line ------------------
            control.request(sock, {"op": "release", "port": str(vc.port_link)})
            vc.down("ESC")  # safe boot: the REPL, and no app (nor its watchdog)
            vc.power_cut()
            wait(lambda: b"safe boot" in vc.tail[-400:], 20, "safe boot")
            vc.up("ESC")
            src = work / "files"
            src.mkdir()
            for e in bundle.app_entries:
                (src / e.name).write_bytes(bundle.files[e.name])
            cmd = [
                str(BIN / "mpremote"),
                "connect",
                str(vc.port_link),
                "resume",
                "fs",
                "mkdir",
                ":/bench",
                "+",
                "fs",
                "cp",
                *[str(src / e.name) for e in bundle.app_entries],
                ":/bench/",
            ]
            t0 = time.monotonic()
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
            mpremote_s = time.monotonic() - t0
            if out.returncode:
                raise SystemExit(f"bench/update: mpremote failed: {out.stderr[-500:]}")
        finally:
            daemon.terminate()
            daemon.wait(15)
            log.close()
            vc.stop()
    stream_s = ours["stream_s"]
    speedup = mpremote_s / stream_s
    line = app_bytes / stream_s / LINE_RATE
    pad_line = pad_bytes / ours["pad_s"] / LINE_RATE
    print(
        f"bundle {bundle.version}: {len(bundle.app_entries)} files, {app_bytes} bytes "
        f"({pad_bytes} of them random) on a {BAUD}-baud line ({LINE_RATE:.0f} bytes/s)"
    )
    print(
        f"update stream: {stream_s:.2f} s, {app_bytes / stream_s:.0f} bytes/s = "
        f"{line:.0%} of line rate; random files alone {pad_line:.0%} "
        f"(target {TARGET_LINE:.0%}); whole update with check, restart and "
        f"confirmation {total_s:.1f} s"
    )
    print(
        f"mpremote fs cp of the same files: {mpremote_s:.2f} s, "
        f"{app_bytes / mpremote_s:.0f} bytes/s"
    )
    print(f"speedup: {speedup:.1f}x (target {TARGET_SPEEDUP:.0f}x)")
    ok = speedup >= TARGET_SPEEDUP and pad_line >= TARGET_LINE
    print(
        json.dumps(
            {
                "bench": "update",
                "figures": {
                    "files": len(bundle.app_entries),
                    "bytes": app_bytes,
                    "random_bytes": pad_bytes,
                    "stream_s": round(stream_s, 2),
                    "stream_bytes_per_s": round(app_bytes / stream_s),
                    "line_rate_fraction": round(line, 3),
                    "random_line_rate_fraction": round(pad_line, 3),
                    "update_total_s": round(total_s, 1),
                    "speedup": round(speedup, 2),
                },
                "reference": {
                    "mpremote_fs_cp_s": round(mpremote_s, 2),
                    "mpremote_bytes_per_s": round(app_bytes / mpremote_s),
                    "baud": BAUD,
                },
                "target": {"speedup": TARGET_SPEEDUP, "random_line_rate_fraction": TARGET_LINE},
                "ok": ok,
            }
        )
    )


if __name__ == "__main__":
    main()
