# Receives a chunked transfer from the host (XFER_BEGIN/DATA/END), acking
# the contiguous offset so the host resends from the first gap: a config
# into RAM here; app files (appupdate.py) and firmware images (fwupdate.py)
# stream to flash, their code loaded only for the transfer.
import hashlib
import sys

import wire as W
from micropython import const

_MAX_RAM = const(8192)  # a config fits; larger kinds stream to flash


class Transfer:
    def __init__(self):
        self.xfer_id = -1
        self.kind = 0
        self.buf = None
        self.impl = None  # appupdate.AppFile or fwupdate.Image
        self.mod = ""
        self.got = 0
        self.size = 0
        self.sha = b""
        self.name = b""

    def begin(self, xfer_id, kind, size, sha, name):
        # Returns a RESULT status; the caller answers with it.
        if len(sha) != 32:
            return W.E_BAD_REQUEST, "sha256 must be 32 bytes"
        if kind == W.XFER_APP_FILE or kind == W.XFER_FIRMWARE:
            self.mod = "appupdate" if kind == W.XFER_APP_FILE else "fwupdate"
            impl = None
            try:
                mod = __import__(self.mod)
                impl = mod.AppFile() if kind == W.XFER_APP_FILE else mod.Image()
                st, text = impl.begin(size, sha, name)
            except MemoryError:
                st, text = W.E_NO_SPACE, "console out of memory: send it again"
            if st != W.OK or impl is None:
                self._unload()
                return st, text
            self.impl = impl
        elif kind != W.XFER_CONFIG:
            return W.E_UNSUPPORTED, "transfer kind %d not supported" % kind
        elif size > _MAX_RAM:
            return W.E_NO_SPACE, "transfer of %d bytes over %d" % (size, _MAX_RAM)
        else:
            self.buf = bytearray(size)
            text = ""
        self.xfer_id = xfer_id
        self.kind = kind
        self.got = 0
        self.size = size
        self.sha = sha
        self.name = name
        return W.OK, text

    def data(self, xfer_id, offset, chunk):
        # Returns (acked offset, status) for the XFER_ACK answer.
        if xfer_id != self.xfer_id:
            return 0, W.E_STATE
        if self.impl is not None:
            return self.impl.data(offset, chunk)
        if self.buf is None:
            return 0, W.E_STATE
        if offset == self.got and offset + len(chunk) <= self.size:
            self.buf[offset : offset + len(chunk)] = chunk
            self.got += len(chunk)
        return self.got, W.OK

    def end(self, xfer_id):
        # Returns (status, text, data): data is the verified payload (a
        # config) or None.
        if xfer_id != self.xfer_id:
            return W.E_STATE, "no such transfer", None
        self.xfer_id = -1
        impl = self.impl
        if impl is not None:
            self.impl = None
            st, text = impl.end()
            self._unload()
            return st, text, None
        data = self.buf
        self.buf = None
        if data is None:
            return W.E_STATE, "no such transfer", None
        if self.got != self.size:
            return W.E_BAD_REQUEST, "got %d of %d bytes" % (self.got, self.size), None
        if hashlib.sha256(data).digest() != self.sha:
            return W.E_CHECKSUM, "sha256 mismatch", None
        return W.OK, "", data

    def _unload(self):
        # The update code goes with the transfer (the heap is ~100 KB).
        for name in (self.mod, "appupdate", "ed25519", "updcodes", "bootslot"):
            if name and name in sys.modules:
                del sys.modules[name]
