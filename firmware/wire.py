# Deskline wire codec: COBS framing, CRC-32 and the message schemas.
# One source, run by the console (MicroPython) and by the host (CPython).
#
# A frame on the wire is 0x00, COBS(body + crc32le(body)), 0x00, where
# body = version u8 | type u8 | payload.  The leading zero resynchronises a
# receiver after REPL text or line noise; an empty frame is ignored.
# The full specification is docs/protocol.md.
try:
    from micropython import const  # pyright: ignore[reportAssignmentType]  # the host's stand-in below is typed looser
except ImportError:  # CPython (the host)

    def const(x):
        return x


from binascii import crc32
from struct import pack_into, unpack_from

VERSION = const(1)
# 512-byte transfer chunks keep a 115200-baud line ~97 % busy with data
# while three frame buffers stay small on a ~100 KB heap.
MAX_PAYLOAD = const(540)
MAX_BODY = const(542)  # version + type + payload
MAX_FRAME = const(551)  # COBS of body + CRC, with both delimiters

# Console -> host.
HELLO = const(0x01)
EVENT = const(0x02)
HEARTBEAT = const(0x03)
STATUS = const(0x04)
RESULT = const(0x05)
LOG = const(0x06)
XFER_ACK = const(0x07)
# Host -> console.
ACK = const(0x41)
KEEPALIVE = const(0x42)
FLOOR = const(0x43)
CALL = const(0x44)
ESC_STATUS = const(0x45)
REBOOT = const(0x46)
REPL = const(0x47)
HELLO_REQ = const(0x48)
XFER_BEGIN = const(0x49)
XFER_DATA = const(0x4A)
XFER_END = const(0x4B)

# Payload layouts.  B/H/I/b/h/i are little-endian integers; s is a byte
# string of up to 255 bytes behind a u8 length; r is the rest of the frame.
# The host names the fields (host/deskline/wire.py): the console never needs them.
SCHEMAS = {
    HELLO: "BBIIIIHIBBBssss",
    EVENT: "IIIBBHHIs",
    HEARTBEAT: "IIIBBIHHIHHHHHI",
    STATUS: "BBBBBhHIBissss",
    RESULT: "HBs",
    LOG: "Bs",
    XFER_ACK: "HIB",
    ACK: "I",
    KEEPALIVE: "IH",
    FLOOR: "BHBHH",
    CALL: "HBss",
    ESC_STATUS: "HIBBiss",
    REBOOT: "HB",
    REPL: "H",
    HELLO_REQ: "",
    XFER_BEGIN: "HHBIss",
    XFER_DATA: "HIr",
    XFER_END: "HH",
}


# The journal stores an event's body: the EVENT payload without its seq.
EVENT_BODY = "IIBBHHIs"

# Event kinds (EVENT.kind).  Agent events are never dropped for telemetry.
EV_PRESS = const(1)  # a=key code, b=held ms
EV_CALL_START = const(2)  # a=source (1 hook, 2 host), text=ACD call id
EV_CALL_END = const(3)  # a=source, b=talk s, ref=call
EV_WRAPUP = const(4)  # a=code, b=ACW s, c=how, ref=call
EV_ESC_RAISE = const(5)  # a=severity, c=kind (0 client, 1 help), ref=call; id = seq
EV_ESC_CANCEL = const(6)  # ref=escalation id, c=kind
EV_CODE_REFUSED = const(7)  # a=typed code (telemetry)
EV_STATE = const(8)  # a=new state, b=old state (telemetry)
EV_BOOT = const(9)  # a=reboot reason, b=reset cause (telemetry)
EV_CONFIG = const(10)  # a=1 applied / 0 refused, ref=config version (telemetry)
EV_JOURNAL_GAP = const(11)  # b=agent events refused while the journal was full
EV_WRAP_REQUEST = const(12)  # agent asked for after-call work (agent-requested mode)
EV_LOST = const(13)  # the journal lost this seq to flash damage; nothing else is known

# How a wrap-up ended (EV_WRAPUP.c).
HOW_CODE = const(1)  # the agent entered a code
HOW_TIMEOUT = const(2)  # timeout: the account's fallback code was recorded
HOW_SKIPPED = const(3)  # optional mode: the agent ended ACW without a code
HOW_FORCED = const(4)  # forced timeout ended ACW while the agent was typing
HOW_INTERRUPTED = const(5)  # a new call started before a code: fallback recorded

# RESULT.status
OK = const(0)
E_BAD_REQUEST = const(1)
E_BAD_CONFIG = const(2)
E_BUSY = const(3)
E_UNSUPPORTED = const(4)
E_CHECKSUM = const(5)
E_NO_SPACE = const(6)
E_UNKNOWN = const(7)
E_STATE = const(8)

# ESC_STATUS.status
ESC_RAISED = const(0)
ESC_DELIVERED = const(1)
ESC_ACKED = const(2)
ESC_RESOLVED = const(3)
ESC_BREACHED = const(4)
ESC_CANCELLED = const(5)
ESC_FAILED = const(6)

# CALL.op
CALL_END = const(0)
CALL_START = const(1)

# XFER_BEGIN.kind
XFER_CONFIG = const(1)
XFER_APP_FILE = const(2)
XFER_FIRMWARE = const(3)

# FLOOR.band
BAND_UNKNOWN = const(0)
BAND_GREEN = const(1)
BAND_AMBER = const(2)
BAND_RED = const(3)

_SIZES = {"B": 1, "b": 1, "H": 2, "h": 2, "I": 4, "i": 4}
_FMT = {"B": "<B", "b": "<b", "H": "<H", "h": "<h", "I": "<I", "i": "<i"}


class WireError(ValueError):
    pass


def pack(buf, off, fmt, values):
    # Writes values at buf[off:] by the schema letters; returns the end offset.
    i = 0
    for ch in fmt:
        v = values[i]
        i += 1
        if ch == "s" or ch == "r":
            if isinstance(v, str):
                v = v.encode()
            n = len(v)
            if ch == "s":
                if n > 255:
                    raise WireError("string field over 255 bytes")
                buf[off] = n
                off += 1
            if off + n > len(buf):
                raise WireError("frame too long")
            buf[off : off + n] = v
            off += n
        else:
            pack_into(_FMT[ch], buf, off, v)
            off += _SIZES[ch]
    return off


def unpack(fmt, buf, off, end):
    # Reads a schema from buf[off:end]; raises WireError on a short payload.
    out = []
    for ch in fmt:
        if ch == "s":
            if off >= end:
                raise WireError("truncated")
            n = buf[off]
            off += 1
            if off + n > end:
                raise WireError("truncated")
            out.append(bytes(buf[off : off + n]))
            off += n
        elif ch == "r":
            out.append(bytes(buf[off:end]))
            off = end
        else:
            n = _SIZES[ch]
            if off + n > end:
                raise WireError("truncated")
            out.append(unpack_from(_FMT[ch], buf, off)[0])
            off += n
    if off != end:
        raise WireError("trailing bytes")
    return tuple(out)


def cobs_encode(src, n, dst):
    # COBS of src[:n] into dst[1:] behind a leading zero, plus the closing zero;
    # returns the number of bytes to send.  dst must hold n + n // 254 + 3.
    dst[0] = 0
    code_at = 1
    out = 2
    code = 1
    for i in range(n):
        b = src[i]
        if b:
            dst[out] = b
            out += 1
            code += 1
            if code == 0xFF and i + 1 < n:
                dst[code_at] = code
                code_at = out
                out += 1
                code = 1
        else:
            dst[code_at] = code
            code_at = out
            out += 1
            code = 1
    dst[code_at] = code
    dst[out] = 0
    return out + 1


def cobs_decode(buf, n):
    # Decodes buf[:n] in place (output never outruns input); returns the
    # decoded length, or -1 for an invalid encoding.
    i = 0
    out = 0
    while i < n:
        code = buf[i]
        if code == 0 or i + code > n:
            return -1
        i += 1
        for _ in range(code - 1):
            b = buf[i]
            if b == 0:
                return -1
            buf[out] = b
            out += 1
            i += 1
        if code != 0xFF and i < n:
            buf[out] = 0
            out += 1
    return out


class Encoder:
    # Builds frames in preallocated buffers: no allocation per frame on the
    # console beyond what the caller's values already are.
    def __init__(self):
        self.body = bytearray(MAX_BODY + 4)
        self.frame = bytearray(MAX_FRAME)
        self.view = memoryview(self.frame)

    def encode(self, mtype, values):
        # Returns a memoryview of the complete frame for values of mtype.
        b = self.body
        b[0] = VERSION
        b[1] = mtype
        end = pack(b, 2, SCHEMAS[mtype], values)
        return self._seal(end)

    def encode_raw(self, mtype, head_fmt, head, tail):
        # A frame of head (packed by head_fmt) followed by raw tail bytes;
        # how an EVENT is sent straight from a journal record.
        b = self.body
        b[0] = VERSION
        b[1] = mtype
        end = pack(b, 2, head_fmt, head)
        n = len(tail)
        if end + n > MAX_BODY:
            raise WireError("frame too long")
        b[end : end + n] = tail
        return self._seal(end + n)

    def _seal(self, end):
        b = self.body
        pack_into("<I", b, end, crc32(memoryview(b)[:end]) & 0xFFFFFFFF)
        n = cobs_encode(b, end + 4, self.frame)
        return self.view[:n]


class Decoder:
    # Reassembles frames from a byte stream.  Never raises on bad input:
    # errors are counted and the stream resynchronises at the next 0x00.
    def __init__(self, size=MAX_FRAME):
        self.buf = bytearray(size)
        self.n = 0
        self.overrun = False
        self.frames = 0
        self.crc_errors = 0
        self.cobs_errors = 0
        self.oversize = 0

    def push(self, byte):
        # Feeds one byte; returns the body length (>0) when a good frame
        # ended, with the body in self.buf[:length]; else 0.
        if byte:
            if self.n < len(self.buf):
                self.buf[self.n] = byte
                self.n += 1
            else:
                self.overrun = True
            return 0
        n = self.n
        self.n = 0
        if self.overrun:
            self.overrun = False
            self.oversize += 1
            return 0
        if n == 0:
            return 0
        return self._check(n)

    def _check(self, n):
        m = cobs_decode(self.buf, n)
        if m < 6:
            self.cobs_errors += 1
            return 0
        body = m - 4
        got = unpack_from("<I", self.buf, body)[0]
        if crc32(memoryview(self.buf)[:body]) & 0xFFFFFFFF != got:
            self.crc_errors += 1
            return 0
        self.frames += 1
        return body


def parse(body, n=None):
    # Splits a checked body into (version, type, fields); WireError when the
    # version or type is unknown or the payload does not fit the schema.
    if n is None:
        n = len(body)
    if n < 2:
        raise WireError("short body")
    if body[0] != VERSION:
        raise WireError("protocol version %d" % body[0])
    mtype = body[1]
    fmt = SCHEMAS.get(mtype)
    if fmt is None:
        raise WireError("unknown type 0x%02x" % mtype)
    return body[0], mtype, unpack(fmt, body, 2, n)
