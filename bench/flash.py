"""Flashing consoles in parallel: 8 at once against one alone, in one run.

Usage: bench/flash.py [--consoles N] [--kb N] [--baud N] [--plain-esptool]

Each console is a simulated ROM loader (deskline.sim.romloader) in its own
process, its line paced at the baud rate esptool sets on the port: it
connects at 115200, then writes at --baud.  The flashing is the product's
own path, `flash.flash_many`: per port an esptool process to identify the
chip and one to write (compressed, through the flasher stub) and verify by
MD5, as `deskline flash` runs them.  The image is a well-formed fake
MicroPython firmware of the size of the real one (ESP32_GENERIC v1.24 is
about 1.6 MB) that compresses about as well (~60 %).

The reference, in the same run: one console flashed alone, with the same
image at the same baud.  Target: 8 in parallel take <= 1.3x as long.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from deskline import flash
from deskline.fwimage import read_image
from deskline.sim import fakefirmware

TARGET_RATIO = 1.3


def start_sims(work: Path, count: int, first: int) -> list[tuple[subprocess.Popen[str], str]]:
    sims = []
    for n in range(first, first + count):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "deskline.sim.romloader",
                "--chip",
                "esp32",
                "--mac",
                f"24:0a:c4:00:01:{n:02x}",
                "--link",
                str(work / f"tty{n}"),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        sims.append((proc, info["link"]))
    return sims


def stop_sims(sims: list[tuple[subprocess.Popen[str], str]]) -> None:
    for proc, _ in sims:
        proc.terminate()
    for proc, _ in sims:
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()


def timed(ports: list[str], image: flash.FirmwareImage, opts: flash.FlashOptions) -> float:
    t = time.monotonic()
    results = flash.flash_many(ports, [image], opts)
    elapsed = time.monotonic() - t
    bad = [r for r in results if r.status != "flashed"]
    if bad:
        raise SystemExit(f"flashing failed: {bad[0].port}: {bad[0].error}")
    return elapsed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--consoles", type=int, default=8)
    p.add_argument("--kb", type=int, default=1600, help="image size (MicroPython's: ~1600)")
    p.add_argument("--baud", type=int, default=460800)
    p.add_argument(
        "--plain-esptool",
        action="store_true",
        help="run `python -m esptool` rather than deskline's launcher (for comparison)",
    )
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="deskline-bench-flash-"))
    try:
        image = read_image(fakefirmware.write(work / "fw.bin", "esp32", args.kb * 1024, seed=7))
        opts = flash.FlashOptions(baud=args.baud, connect_attempts=2)
        if args.plain_esptool:
            opts.esptool = (sys.executable, "-m", "esptool")
        print(f"image: {image.describe()}; write at {args.baud} baud, connect at 115200")

        alone = start_sims(work, 1, 0)
        try:
            one_s = timed([alone[0][1]], image, opts)
        finally:
            stop_sims(alone)
        print(f"one console alone:            {one_s:6.2f} s")

        many = start_sims(work, args.consoles, 1)
        try:
            many_s = timed([link for _, link in many], image, opts)
        finally:
            stop_sims(many)
        ratio = many_s / one_s
        print(f"{args.consoles} consoles in parallel:      {many_s:6.2f} s")
        print(f"parallel / one: {ratio:.2f} (target <= {TARGET_RATIO})")
        rate = args.consoles * image.size / many_s / 1024
        print(f"floor throughput: {rate:.0f} KiB/s of firmware written and verified")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        json.dumps(
            {
                "bench": "flash",
                "figures": {
                    "consoles": args.consoles,
                    "image_kb": args.kb,
                    "baud": args.baud,
                    "one_s": round(one_s, 2),
                    "parallel_s": round(many_s, 2),
                    "ratio": round(ratio, 2),
                    "kib_per_s": round(rate),
                    "esptool": " ".join(opts.esptool[1:]),
                },
                "reference": "one console flashed alone, same image and baud, same run",
                "target": f"{args.consoles} in parallel <= {TARGET_RATIO}x one",
                "ok": ratio <= TARGET_RATIO,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
