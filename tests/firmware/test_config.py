# Config parsing and persistence on the unix port: a bad config is refused
# and the stored one kept; validation code is freed after use.
import json
import os
import sys

import config as C

GOOD = {
    "version": 3,
    "account": "ACME",
    "mode": "forced_timeout",
    "acw_s": 45,
    "fallback": 99,
    "codes": [[1, "Billing query", True], [99, "ACW timeout", False]],
}
PATH = "/tmp/deskline-test-config.json"


def test_parse_good():
    cfg, err = C.parse(json.dumps(GOOD).encode())
    assert err is None
    assert cfg.mode == C.M_FORCED_TIMEOUT and cfg.acw_ms == 45000
    assert cfg.label(1) == "Billing query" and cfg.label(2) is None
    assert cfg.keepalive_ms == 15000 and cfg.brightness == 40
    assert "cfgcheck" not in sys.modules


def test_parse_bad_names_the_field():
    bad = dict(GOOD)
    bad["codes"] = [[1, "x" * 40, False]]
    cfg, err = C.parse(json.dumps(bad).encode())
    assert cfg is None and "over 39 bytes" in err
    assert C.parse(b"{nope") == (None, "config is not valid JSON")
    assert "cfgcheck" not in sys.modules


def test_save_and_load_round_trip_and_defaults():
    try:
        os.remove(PATH)
    except OSError:
        pass
    assert C.load(PATH).version == 0
    raw = json.dumps(GOOD).encode()
    C.save(PATH, raw)
    C.save(PATH, raw)  # rename over an existing file
    assert C.load(PATH).version == 3
    with open(PATH, "wb") as f:
        f.write(b"garbage")
    assert C.load(PATH).version == 0
    os.remove(PATH)
