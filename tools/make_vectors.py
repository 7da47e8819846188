"""Regenerates tests/vectors/wire.json from the codec (review the diff!).

The vectors pin the wire format: a change here is a protocol change and
must bump wire.VERSION.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "firmware"))
import wire as w

CASES: list[tuple[str, int, list[object]]] = [
    ("ack", w.ACK, [1]),
    ("ack_max", w.ACK, [0xFFFFFFFF]),
    ("keepalive", w.KEEPALIVE, [1795392000, 250]),
    ("hello_req", w.HELLO_REQ, []),
    ("floor_amber", w.FLOOR, [w.BAND_AMBER, 785, 80, 3, 41]),
    ("call_start", w.CALL, [7, w.CALL_START, "1700000000.42", "billing"]),
    (
        "esc_status_acked",
        w.ESC_STATUS,
        [9, 1042, 0, w.ESC_ACKED, 7140, "INC0012345", "+44 20 7946 0000"],
    ),
    ("reboot", w.REBOOT, [3, 0]),
    ("repl", w.REPL, [4]),
    (
        "xfer_begin",
        w.XFER_BEGIN,
        [5, 1, w.XFER_CONFIG, 512, {"hex": "00" * 31 + "01"}, "config.json"],
    ),
    ("xfer_data_zeros", w.XFER_DATA, [1, 0, {"hex": "00" * 300}]),
    ("xfer_end", w.XFER_END, [6, 1]),
    (
        "hello",
        w.HELLO,
        [
            1,
            0,
            3,
            12000,
            57,
            50,
            7,
            4,
            1,
            0x81,
            0,
            "a1b2c3d4e5f6",
            "esp32s3-devkitc1",
            "1.29.0",
            "0.1.0",
        ],
    ),
    ("event_press", w.EVENT, [1, 1500, 0, w.EV_PRESS, 12, 80, 0, 0, ""]),
    ("event_wrapup", w.EVENT, [88, 912345, 1795392000, w.EV_WRAPUP, 12, 47, w.HOW_CODE, 80, ""]),
    ("event_call_text", w.EVENT, [89, 1, 2, w.EV_CALL_START, 2, 0, 0, 0, "1700000000.42"]),
    ("heartbeat", w.HEARTBEAT, [60000, 51234, 40960, 1, 1, 100, 2, 0, 300, 1, 0, 0, 0, 0, 1]),
    (
        "status",
        w.STATUS,
        [
            2,
            5,
            1,
            4,
            0,
            -12,
            0xFFFF,
            0,
            0,
            0x7FFFFFFF,
            "WRAP-UP -0:12",
            "Code then #",
            "",
            "SL 78% >80%",
        ],
    ),
    ("result_error", w.RESULT, [5, w.E_BAD_CONFIG, "codes[3] code must be 1..99"]),
    ("log", w.LOG, [2, "oled not found"]),
    ("xfer_ack", w.XFER_ACK, [1, 4096, 0]),
]


def _value(v: object) -> object:
    if isinstance(v, dict):
        return bytes.fromhex(v["hex"])
    return v


def main() -> None:
    out = []
    for name, mtype, values in CASES:
        frame = bytes(w.Encoder().encode(mtype, tuple(_value(v) for v in values)))
        out.append({"name": name, "type": mtype, "values": values, "frame": frame.hex()})
    cobs = [
        # Classic COBS examples (Cheshire & Baker): raw -> encoded, no delimiters.
        {"raw": "00", "cobs": "0101"},
        {"raw": "0000", "cobs": "010101"},
        {"raw": "00110000", "cobs": "0102110101"},
        {"raw": "11220033", "cobs": "0311220233"},
        {"raw": "11223344", "cobs": "0511223344"},
        {"raw": "11000000", "cobs": "0211010101"},
        {
            "raw": "".join("%02x" % i for i in range(1, 255)),
            "cobs": "ff" + "".join("%02x" % i for i in range(1, 255)),
        },
        {
            "raw": "".join("%02x" % i for i in range(1, 256)),
            "cobs": "ff" + "".join("%02x" % i for i in range(1, 255)) + "02ff",
        },
    ]
    path = Path(__file__).resolve().parents[1] / "tests" / "vectors" / "wire.json"
    doc = {
        "version": w.VERSION,
        "crc32_check": {"data": "313233343536373839", "crc": "cbf43926"},
        "cobs": cobs,
        "frames": out,
    }
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
