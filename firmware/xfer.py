# Receives a chunked transfer from the host (XFER_BEGIN/DATA/END) into RAM,
# acking the contiguous offset so the host resends from the first gap.
import hashlib

import wire as W
from micropython import const

_MAX_RAM = const(8192)  # a config fits; larger kinds stream to flash


class Transfer:
    def __init__(self):
        self.xfer_id = -1
        self.kind = 0
        self.buf = None
        self.got = 0
        self.size = 0
        self.sha = b""
        self.name = b""

    def begin(self, xfer_id, kind, size, sha, name):
        # Returns a RESULT status; the caller answers with it.
        if kind != W.XFER_CONFIG:
            return W.E_UNSUPPORTED, "transfer kind %d not supported" % kind
        if size > _MAX_RAM:
            return W.E_NO_SPACE, "transfer of %d bytes over %d" % (size, _MAX_RAM)
        if len(sha) != 32:
            return W.E_BAD_REQUEST, "sha256 must be 32 bytes"
        self.xfer_id = xfer_id
        self.kind = kind
        self.buf = bytearray(size)
        self.got = 0
        self.size = size
        self.sha = sha
        self.name = name
        return W.OK, ""

    def data(self, xfer_id, offset, chunk):
        # Returns (acked offset, status) for the XFER_ACK answer.
        if xfer_id != self.xfer_id or self.buf is None:
            return 0, W.E_STATE
        if offset == self.got and offset + len(chunk) <= self.size:
            self.buf[offset : offset + len(chunk)] = chunk
            self.got += len(chunk)
        return self.got, W.OK

    def end(self, xfer_id):
        # Returns (status, text, data): data is the verified payload or None.
        if xfer_id != self.xfer_id or self.buf is None:
            return W.E_STATE, "no such transfer", None
        data = self.buf
        self.buf = None
        self.xfer_id = -1
        if self.got != self.size:
            return W.E_BAD_REQUEST, "got %d of %d bytes" % (self.got, self.size), None
        if hashlib.sha256(data).digest() != self.sha:
            return W.E_CHECKSUM, "sha256 mismatch", None
        return W.OK, "", data
