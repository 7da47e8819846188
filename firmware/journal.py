# Deskline event journal: append-only records in littlefs segment files,
# sequence numbers that never go backwards, cumulative acks. docs/journal.md.
#
# Full policy: telemetry is accepted only while used_bytes() < 75 % of
# capacity_bytes (seg_bytes * max_segs), agent events while there is room
# (up to 100 %).  A refused agent event makes append() return 0 and counts
# in refused_events (the app shows JOURNAL FULL and buzzes; the heartbeat
# reports the counter); a refused telemetry record counts in dropped_telemetry.
# Nothing is dropped silently.
#
# Record: magic u8 | flags u8 | len u8 | seq u32le | body | crc32le u32 over
# flags..body.  Segment files are named by the first seq they hold, in hex.
import os
from array import array
from binascii import crc32
from struct import pack_into, unpack_from

from micropython import const

_MAGIC = const(0xA5)  # neither erased flash (0xFF) nor zero fill
_HDR = const(7)  # magic, flags, len, seq
_OVER = const(11)  # header + crc
_MAX_BODY = const(255)
_F_TELEMETRY = const(1)
_HOLE = const(0xFFFF)  # index entry of a seq lost to corruption
# Index slots per segment are seg_bytes // _REC_AVG: a segment also closes
# when its index is full, which bounds the index at 4 KB for 16 x 4 KB.
_REC_AVG = const(32)
_ST_MAGIC = const(0x414A4C44)  # "DLJA"
_ST_LEN = const(16)  # magic, acked, floor, crc32 (u32le each)


class Journal:
    def __init__(self, root, seg_bytes=4096, max_segs=16):
        # A record must fit an empty segment; offsets are u16 below _HOLE.
        assert _OVER + _MAX_BODY <= seg_bytes < _HOLE and max_segs >= 2
        self.root = root
        self.capacity_bytes = seg_bytes * max_segs
        self.dropped_telemetry = 0
        self.refused_events = 0
        self.torn_records = 0
        self.segments = 0  # live segment files, the active one included
        self.next_seq = 1
        self.last_telemetry = 0  # flags bit of the record read() last returned
        self._seg_bytes = seg_bytes
        self._max_segs = max_segs
        self._r = max(8, seg_bytes // _REC_AVG)
        self._rec = bytearray(_OVER + _MAX_BODY)
        self._hdrv = memoryview(self._rec)[1:_HDR]  # flags..seq, for the crc
        self._st = bytearray(_ST_LEN)
        self._ack_path = root + "/ack"
        self._tmp_path = root + "/ack.tmp"
        self._acked = 0
        self._floor = 1  # next_seq as last persisted
        self._dirty = False
        self._af = None  # active segment, opened "a+b": appends and its reads
        self._aslot = -1
        self._asize = 0
        self._rf = None  # one cached reader for closed segments
        self._rfirst = -1
        self._head = 0
        self._cslot = -1  # slot of the last lookup: sequential reads hit it
        _mkdirs(root)
        self._recover()

    # --- the append path: O(1), one write + flush, no allocation ------------
    # (on 32-bit ports crc32 results >= 2**30 are boxed, which is unavoidable)
    def append(self, body, telemetry=False):
        n = len(body)
        if n > _MAX_BODY:
            raise ValueError("body")
        if telemetry and self.used_bytes() * 4 >= self.capacity_bytes * 3:
            self.dropped_telemetry += 1
            return 0
        need = n + _OVER
        f = self._af
        rotated = False
        if f is None or self._asize + need > self._seg_bytes or self._cnt[self._aslot] >= self._r:
            f = self._rotate()
            if f is None:
                return self._refuse(telemetry)
            rotated = True
        seq = self.next_seq
        r = self._rec
        r[0] = _MAGIC
        r[1] = _F_TELEMETRY if telemetry else 0
        r[2] = n
        pack_into("<I", r, 3, seq)
        r[_HDR : _HDR + n] = body
        pack_into("<I", r, _HDR + n, crc32(body, crc32(self._hdrv)))
        try:
            # flush commits the littlefs file: the record is on flash (or,
            # after a power cut, absent) before the caller may send it.
            if f.write(r, 0, need) != need:
                raise OSError(28)
            f.flush()
        except OSError:
            # Typically ENOSPC.  Stop appending to this file; a partial
            # record at its tail is found and counted at recovery.
            self._close_active()
            return self._refuse(telemetry)
        s = self._aslot
        c = self._cnt[s]
        self._offs[s][c] = self._asize
        self._cnt[s] = c + 1
        self._asize += need
        self.next_seq = seq + 1
        if rotated:
            # Only now: the new segment holds the newest seq, so fully
            # acked older ones can go without persisting next_seq first.
            self._prune()
        return seq

    def _refuse(self, telemetry):
        if telemetry:
            self.dropped_telemetry += 1
        else:
            self.refused_events += 1
        return 0

    # --- reads for (re)transmission ----------------------------------------
    # Copies the body of `seq` into buf (>= 255 bytes); -1 when acked, lost or
    # unknown.  The crc was checked at recovery (or the record was written by
    # this boot), so only the header is checked here: that keeps read free
    # of allocation (a crc over an exact slice would need a memoryview).
    def read(self, seq, buf):
        if seq <= self._acked or seq >= self.next_seq:
            return -1
        s = self._find(seq)
        if s < 0:
            return -1
        first = self._first[s]
        off = self._offs[s][seq - first]
        if off == _HOLE:
            return -1
        if s == self._aslot:
            f = self._af  # a second handle would not see unclosed appends
        else:
            f = self._rf
            if self._rfirst != first:
                if f is not None:
                    f.close()
                self._rf = None
                f = open(self._path(first), "rb")
                self._rf = f
                self._rfirst = first
        h = self._rec
        f.seek(off)
        if f.readinto(h, _HDR) != _HDR or h[0] != _MAGIC:
            return -1
        if h[3] | h[4] << 8 | h[5] << 16 | h[6] << 24 != seq:
            return -1
        n = h[2]
        if len(buf) < n:
            raise ValueError("buf")
        if f.readinto(buf, n) != n:
            return -1
        self.last_telemetry = h[1] & _F_TELEMETRY
        return n

    def _find(self, seq):
        first = self._first
        cnt = self._cnt
        s = self._cslot
        if s >= 0 and first[s] <= seq < first[s] + cnt[s]:
            return s
        s = self._head
        n = len(first)
        for _ in range(self.segments):
            if first[s] <= seq < first[s] + cnt[s]:
                self._cslot = s
                return s
            s += 1
            if s == n:
                s = 0
        return -1

    # --- acks ----------------------------------------------------------------
    def first_unacked(self):
        return self._acked + 1

    # Unacked seqs, a seq lost to corruption included (read() gives -1).
    def depth(self):
        return self.next_seq - 1 - self._acked

    # Cumulative.  Persisted lazily by sync(): after a power cut the records
    # acked since the last sync are sent again and the host drops them by seq.
    def ack(self, seq):
        if seq >= self.next_seq:
            seq = self.next_seq - 1
        if seq <= self._acked:
            return
        self._acked = seq
        self._dirty = True
        self._prune()

    # Writes the ack pointer if it moved; True when the state is on flash.
    def sync(self):
        if self._dirty:
            try:
                self._save()
            except OSError:
                return False
        return True

    def used_bytes(self):
        # A closed segment counts whole: its tail is never written again.
        closed = self.segments
        if self._af is not None:
            closed -= 1
        return closed * self._seg_bytes + self._asize

    def close(self):
        self.sync()
        self._close_active()
        if self._rf is not None:
            self._rf.close()
            self._rf = None
            self._rfirst = -1

    # --- segments ------------------------------------------------------------
    def _path(self, first):
        return "%s/%08x.seg" % (self.root, first)

    def _close_active(self):
        if self._af is not None:
            try:
                self._af.close()
            except OSError:
                pass
            self._af = None
            self._aslot = -1
            self._asize = 0

    def _rotate(self):
        if self.segments >= self._max_segs:
            return None
        self._close_active()
        first = self.next_seq
        path = self._path(first)
        try:
            os.remove(path)  # never expected; "a+b" must start empty
        except OSError:
            pass
        try:
            f = open(path, "a+b")
        except OSError:
            return None
        s = (self._head + self.segments) % len(self._first)
        self._first[s] = first
        self._cnt[s] = 0
        self.segments += 1
        self._af = f
        self._aslot = s
        self._asize = 0
        return f

    # Deletes the oldest segments while all their records are acked.
    def _prune(self):
        first = self._first
        cnt = self._cnt
        while self.segments:
            s = self._head
            if s == self._aslot:
                break
            c = cnt[s]
            if c and first[s] + c - 1 > self._acked:
                break
            if self._floor < self.next_seq and not self._newer_records():
                # This file holds the newest seq: persist next_seq before
                # it goes, or a reboot would hand out old seqs again.
                try:
                    self._save()
                except OSError:
                    break
            if self._rfirst == first[s]:
                self._rf.close()
                self._rf = None
                self._rfirst = -1
            try:
                os.remove(self._path(first[s]))
            except OSError:
                pass
            cnt[s] = 0
            self._head = (s + 1) % len(first)
            self.segments -= 1

    def _newer_records(self):
        n = len(self._first)
        s = self._head
        for _ in range(self.segments - 1):
            s = (s + 1) % n
            if self._cnt[s]:
                return True
        return False

    # --- persisted ack pointer: write tmp, then rename (atomic in littlefs) --
    def _save(self):
        st = self._st
        nxt = self.next_seq
        pack_into("<III", st, 0, _ST_MAGIC, self._acked, nxt)
        pack_into("<I", st, 12, crc32(memoryview(st)[:12]))
        with open(self._tmp_path, "wb") as f:
            f.write(st)
        os.rename(self._tmp_path, self._ack_path)
        self._floor = nxt
        self._dirty = False

    def _load(self):
        # Both files: a cut between writing tmp and the rename leaves the
        # newer state in tmp.  Values only grow, so take the larger.
        acked = 0
        floor = 1
        for path in (self._ack_path, self._tmp_path):
            try:
                with open(path, "rb") as f:
                    b = f.read(_ST_LEN)
            except OSError:
                continue
            if len(b) != _ST_LEN:
                continue
            m, a, fl, c = unpack_from("<IIII", b)
            if m == _ST_MAGIC and c == crc32(memoryview(b)[:12]):
                acked = max(acked, a)
                floor = max(floor, fl)
        return acked, floor

    # --- recovery --------------------------------------------------------------
    def _recover(self):
        acked, floor = self._load()
        names = []
        for ent in os.ilistdir(self.root):
            nm = ent[0]
            if len(nm) == 12 and nm[8:] == ".seg":
                try:
                    names.append(int(nm[:8], 16))
                except ValueError:
                    pass
        names.sort()
        # All index memory is taken here, at boot, in one go: 2 bytes per
        # record slot, seg_bytes // 16 bytes per segment.
        n = max(self._max_segs, len(names))
        r = self._r
        self._first = array("I", bytearray(4 * n))
        self._cnt = array("I", bytearray(4 * n))
        self._offs = [array("H", bytearray(2 * r)) for _ in range(n)]
        last = 0  # newest good seq so far: seqs must increase
        empty = []
        clean = False
        size = 0
        for first in names:
            offs, last, clean, size = self._scan(first, last)
            if not offs:
                empty.append(first)
                continue
            s = self.segments
            self._first[s] = first
            self._cnt[s] = len(offs)
            if len(offs) <= r:
                dst = self._offs[s]
                for i in range(len(offs)):
                    dst[i] = offs[i]
            else:  # written with a larger seg_bytes
                self._offs[s] = offs
            self.segments += 1
        # A torn record's seq is handed out again: append() returns a seq
        # only once its flush (atomic in littlefs) is done, so nobody has
        # seen it; skipping it would leave a hole the host never gets.
        nxt = max(last + 1, floor, acked + 1)
        self.next_seq = nxt
        # Segments are deleted only when fully acked, so everything before
        # the oldest one (or before next_seq if none) was acked.
        if self.segments:
            acked = max(acked, self._first[0] - 1)
        else:
            acked = nxt - 1
        self._acked = min(acked, nxt - 1)
        self._floor = floor
        for first in empty:  # no good record: nothing to lose
            try:
                os.remove(self._path(first))
            except OSError:
                pass
        s = self.segments - 1
        if s >= 0 and clean and self._cnt[s] < r and size + _OVER <= self._seg_bytes:
            # The newest segment ends with a good record: keep appending to
            # it rather than start a file per boot.
            try:
                self._af = open(self._path(self._first[s]), "a+b")
                self._aslot = s
                self._asize = size
            except OSError:
                pass
        self._prune()

    # Indexes one segment file.  A record is good when its magic, length,
    # seq (increasing) and crc check; bad bytes are skipped one at a time
    # until a good record starts again, each bad run counting one torn record.
    def _scan(self, first, last):
        rec = self._rec
        mv = memoryview(rec)
        offs = array("H")
        bad = False
        with open(self._path(first), "rb") as f:
            size = f.seek(0, 2)
            off = 0
            while off < size:
                ok = False
                k = min(len(rec), size - off)
                if k >= _OVER and off < _HOLE:
                    f.seek(off)
                    f.readinto(rec, k)
                    n = rec[2]
                    if rec[0] == _MAGIC and n + _OVER <= k:
                        seq = unpack_from("<I", rec, 3)[0]
                        ok = (
                            seq > last
                            and seq >= first
                            and (seq - first) * _OVER <= off
                            and crc32(mv[1 : _HDR + n]) == unpack_from("<I", rec, _HDR + n)[0]
                        )
                if ok:
                    while len(offs) < seq - first:
                        offs.append(_HOLE)
                    offs.append(off)
                    last = seq
                    off += n + _OVER
                    bad = False
                else:
                    if not bad:
                        self.torn_records += 1
                        bad = True
                    off += 1
        return offs, last, not bad, size


def _mkdirs(path):
    p = "" if path[0] == "/" else "."
    for part in path.split("/"):
        if part:
            p += "/" + part
            try:
                os.mkdir(p)
            except OSError:
                pass
