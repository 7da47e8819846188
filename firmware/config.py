# Account configuration on flash: load, save, apply.
# Validation lives in cfgcheck.py, loaded only while a config is parsed.
import gc
import json
import sys

try:
    import os
except ImportError:  # pragma: no cover
    import uos as os

# Wrap-up modes; cfgcheck.MODES holds the same names (a test keeps them equal).
MODES = ("optional", "mandatory", "mandatory_timeout", "forced_timeout", "agent_requested")
M_OPTIONAL = 0
M_MANDATORY = 1
M_MANDATORY_TIMEOUT = 2
M_FORCED_TIMEOUT = 3
M_AGENT_REQUESTED = 4
MAX_BYTES = 8192


class Config:
    # The live configuration; codes maps code -> (label, failure_demand).
    # d is a config that passed cfgcheck when it arrived; absent fields take
    # the defaults here, so loading it at boot needs no validator in RAM.
    def __init__(self, d=None):
        d = d or {}
        g = d.get
        self.version = g("version", 0)
        self.account = g("account", "")
        self.mode = MODES.index(g("mode", "optional"))
        self.acw_ms = g("acw_s", 60) * 1000
        self.fallback = g("fallback", 0)
        self.codes = {}
        for code, label, fd in g("codes", ()):
            self.codes[code] = (label, fd)
        self.sl_target = g("sl", {}).get("target_pct", 80)
        self.brightness = g("brightness", 40)
        self.hotline = g("hotline", "")
        self.severity = g("severity", 2)
        self.keepalive_ms = g("keepalive_s", 15) * 1000
        self.heartbeat_ms = g("heartbeat_s", 10) * 1000

    def label(self, code):
        entry = self.codes.get(code)
        return entry[0] if entry else None


def parse(raw):
    # Raw JSON bytes -> (Config, None) or (None, message).
    if len(raw) > MAX_BYTES:
        return None, "config over %d bytes" % MAX_BYTES
    try:
        obj = json.loads(raw)
    except ValueError:
        return None, "config is not valid JSON"
    gc.collect()  # the validator's code wants room in few pieces
    try:
        import cfgcheck

        err = cfgcheck.validate(obj)
    finally:
        sys.modules.pop("cfgcheck", None)
    if err:
        return None, err
    return Config(obj), None


def load(path):
    # The stored config, or the defaults when there is none or it is unreadable.
    try:
        with open(path, "rb") as f:
            raw = f.read()
        # Validated when it arrived; written atomically since.
        return Config(json.loads(raw))
    except (OSError, ValueError, KeyError, TypeError):
        return Config()


def save(path, raw):
    # Atomic on littlefs: write a temporary file, then rename over the old.
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(raw)
    os.rename(tmp, path)
