# Account configuration rules: one validator for the console and the host.
# The console loads this only while a config arrives, then frees it.
# Wrap-up modes, as the big contact-centre platforms name them.
MODES = ("optional", "mandatory", "mandatory_timeout", "forced_timeout", "agent_requested")

MAX_LABEL = 39  # bytes, as Cisco Finesse wrap-up reasons
MAX_ACW_S = 7200

DEFAULT = {
    "version": 0,
    "account": "",
    "mode": "optional",
    "acw_s": 60,
    "fallback": 0,
    "codes": [],
    "sl": {"target_pct": 80, "threshold_s": 20, "amber_pct": 5},
    "brightness": 40,
    "hotline": "",
    "severity": 2,
    "keepalive_s": 15,
    "heartbeat_s": 10,
}

_KEYS = {
    "version": int,
    "account": str,
    "mode": str,
    "acw_s": int,
    "fallback": int,
    "codes": list,
    "sl": dict,
    "brightness": int,
    "hotline": str,
    "severity": int,
    "keepalive_s": int,
    "heartbeat_s": int,
}


def _blen(s):
    return len(s.encode())


def _int(v):
    # bool is an int in Python; a config never means True by 1.
    return isinstance(v, int) and not isinstance(v, bool)


def validate(obj):
    # Returns None for a good config, else a message naming the field.
    if not isinstance(obj, dict):
        return "config must be a JSON object"
    for k in obj:
        if k not in _KEYS:
            return "unknown field %r" % k
    for k, t in _KEYS.items():
        if k not in obj:
            continue
        v = obj[k]
        if t is int:
            if not _int(v):
                return "%s must be an integer" % k
        elif not isinstance(v, t):
            return "%s must be a %s" % (k, t.__name__)
    if "version" not in obj:
        return "version is required"
    if obj["version"] < 0 or obj["version"] > 0xFFFFFFFF:
        return "version out of range"
    mode = obj.get("mode", DEFAULT["mode"])
    if mode not in MODES:
        return "mode must be one of " + ", ".join(MODES)
    acw = obj.get("acw_s", DEFAULT["acw_s"])
    if acw < 0 or acw > MAX_ACW_S:
        return "acw_s must be 0..%d" % MAX_ACW_S
    if acw == 0 and mode in ("mandatory_timeout", "forced_timeout", "agent_requested"):
        return "mode %s needs acw_s > 0" % mode
    if _blen(obj.get("account", "")) > 39:
        return "account name over 39 bytes"
    if _blen(obj.get("hotline", "")) > 32:
        return "hotline over 32 bytes"
    seen = {}
    for i, row in enumerate(obj.get("codes", [])):
        where = "codes[%d]" % i
        if not isinstance(row, list) or len(row) != 3:
            return where + " must be [code, label, failure_demand]"
        code, label, fd = row
        if not _int(code) or code < 1 or code > 99:
            return where + " code must be 1..99"
        if not isinstance(label, str) or not label:
            return where + " label must be a non-empty string"
        if _blen(label) > MAX_LABEL:
            return "%s label %r over %d bytes" % (where, label, MAX_LABEL)
        if not isinstance(fd, bool):
            return where + " failure_demand must be true or false"
        if code in seen:
            return "%s code %d repeats codes[%d]" % (where, code, seen[code])
        seen[code] = i
    fb = obj.get("fallback", 0)
    if fb:
        if fb not in seen:
            return "fallback code %d is not in codes" % fb
    elif mode in ("mandatory_timeout", "forced_timeout"):
        return "mode %s needs a fallback code" % mode
    sl = obj.get("sl", DEFAULT["sl"])
    for k in sl:
        if k not in ("target_pct", "threshold_s", "amber_pct"):
            return "unknown field sl.%s" % k
        if not _int(sl[k]):
            return "sl.%s must be an integer" % k
    if not 1 <= sl.get("target_pct", 80) <= 100:
        return "sl.target_pct must be 1..100"
    if not 1 <= sl.get("threshold_s", 20) <= 3600:
        return "sl.threshold_s must be 1..3600"
    if not 0 <= sl.get("amber_pct", 5) <= 50:
        return "sl.amber_pct must be 0..50"
    if not 0 <= obj.get("brightness", 40) <= 100:
        return "brightness must be 0..100"
    if not 1 <= obj.get("severity", 2) <= 4:
        return "severity must be 1..4"
    if not 5 <= obj.get("keepalive_s", 15) <= 300:
        return "keepalive_s must be 5..300"
    if not 1 <= obj.get("heartbeat_s", 10) <= 3600:
        return "heartbeat_s must be 1..3600"
    return None
