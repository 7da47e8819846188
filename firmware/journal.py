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
#
# RAM index, one array("H") per live segment: first seq (low, high half),
# seq count, stride, then the offset of every stride-th record.  A read
# walks at most _K - 1 record headers from that offset.  Stride is 1 (every
# record, _HOLE for a lost seq) only for a segment found damaged at boot.
import os
from array import array
from binascii import crc32
from struct import pack, pack_into, unpack_from

from micropython import const

_MAGIC = const(0xA5)  # neither erased flash (0xFF) nor zero fill
_HDR = const(7)  # magic, flags, len, seq
_OVER = const(11)  # header + crc
_REC = const(266)  # _OVER + the longest body (255)
_TELE = const(1)  # flags bit
_HOLE = const(0xFFFF)  # offset of a seq lost to corruption
_K = const(8)  # index stride
_X = const(4)  # index header: first low, first high, count, stride
_ST_MAGIC = const(0x414A4C44)  # ack file: magic, acked, floor, crc32 (u32le)
# crc32 over data followed by its own crc32 (u32le) always gives this.
_RESIDUE = const(0x2144DF1C)


class Journal:
    def __init__(self, root, seg_bytes=4096, max_segs=16):
        # A record must fit an empty segment; offsets are u16 below _HOLE.
        assert _REC <= seg_bytes < _HOLE and max_segs >= 2
        self._ack = root + "/ack"  # ack state, written to it + ".tmp" first
        self._fmt = root + "/%08x.seg"  # segment file, by its first seq
        self._sb = seg_bytes
        self.capacity_bytes = seg_bytes * max_segs
        self.dropped_telemetry = 0
        self.refused_events = 0
        self.torn_records = 0
        self.last_telemetry = 0  # flags bit of the record read() last returned
        self._rec = rec = bytearray(_REC)
        self._hv = memoryview(rec)[1:_HDR]  # flags..seq, for the crc
        self._dirty = False
        self._af = None  # active segment (the last), "a+b": appends and reads
        self._asize = 0
        self._rf = None  # one cached reader for closed segments
        self._rfirst = -1
        self._segs = segs = []  # index arrays, oldest first
        p = "" if root[0] == "/" else "."
        for part in root.split("/"):
            if part:
                p += "/" + part
                try:
                    os.mkdir(p)
                except OSError:
                    pass

        # Persisted state, from both files: a cut between writing tmp and the
        # rename leaves the newer state in tmp.  Values only grow: the larger.
        acked = 0
        floor = 1  # next_seq as last persisted
        for p in (self._ack, self._ack + ".tmp"):
            try:
                f = open(p, "rb")
                b = f.read(17)
                f.close()
                m, a, n = unpack_from("<III", b)
                if len(b) == 16 and m == _ST_MAGIC and crc32(b) == _RESIDUE:
                    acked = max(acked, a)
                    floor = max(floor, n)
            except (OSError, ValueError):
                pass

        # Recovery: index every segment file.  A record is good when its
        # magic, length, seq (increasing) and crc check; bad bytes are skipped
        # one at a time until a good record starts again, each bad run
        # counting one torn record.
        names = []
        for ent in os.ilistdir(root):
            p = ent[0]
            if len(p) == 12 and p[8:] == ".seg":
                try:
                    names.append(int(p[:8], 16))
                except ValueError:
                    pass
        names.sort()
        mv = memoryview(rec)
        cap = max(1, seg_bytes >> 8)  # index slots: _K * cap records a segment
        last = 0  # newest good seq so far: seqs must increase
        empty = []
        tail = False  # the newest file ends with a good record, room after it
        first = size = 0
        for first in names:
            offs = array("H")
            bad = gap = False
            f = open(self._fmt % first, "rb")
            size = f.seek(0, 2)
            off = 0
            while off < size:
                f.seek(off)
                k = f.readinto(rec)
                n = rec[2]  # stale unless k >= n + _OVER, checked first
                seq = unpack_from("<I", rec, 3)[0]
                if (
                    n + _OVER <= k
                    and off < _HOLE
                    and rec[0] == _MAGIC
                    and last < seq
                    and 0 <= seq - first <= off // _OVER
                    and crc32(mv[1 : _HDR + n + 4]) == _RESIDUE
                ):
                    gap |= bad  # a good record after bad bytes
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
            f.close()
            c = len(offs)
            tail = c and not (bad or gap) and c < cap * _K and size + _OVER <= seg_bytes
            if not c:
                empty.append(first)
                continue
            # Damaged: every offset.  Otherwise every _K-th, with room for
            # the records an appended-to segment can still take.
            k = 1 if gap else _K
            ix = array("H", bytearray(2 * (_X + max(cap, (c + k - 1) // k))))
            ix[0] = first & 0xFFFF
            ix[1] = first >> 16
            ix[2] = c
            ix[3] = k
            for i in range(0, c, k):
                ix[_X + i // k] = offs[i]
            segs.append(ix)
        self.segments = len(segs)  # live segment files, the active one included
        # A torn record's seq is handed out again: append() returns a seq
        # only once its flush (atomic in littlefs) is done, so nobody has
        # seen it; skipping it would leave a hole that the host's gap-free
        # cumulative ack never passes.
        self.next_seq = n = max(last + 1, floor, acked + 1)
        # Segments are deleted only when fully acked, so everything before
        # the oldest one (or before next_seq if none) was acked.
        if segs:
            acked = max(acked, (segs[0][0] | segs[0][1] << 16) - 1)
        else:
            acked = n - 1
        self._acked = min(acked, n - 1)
        self._floor = floor
        for c in empty:  # no good record: nothing to lose
            try:
                os.remove(self._fmt % c)
            except OSError:
                pass
        if tail:
            # Keep appending to the newest segment rather than start a file
            # per boot.
            try:
                self._af = open(self._fmt % first, "a+b")
                self._asize = size
            except OSError:
                pass
        self.ack(0)

    # --- the append path: O(1), one write + flush, no allocation ------------
    # (on 32-bit ports crc32 results >= 2**30 are boxed, which is unavoidable)
    def append(self, body, telemetry=False):
        n = len(body)
        if n > _REC - _OVER:
            raise ValueError("body")
        need = n + _OVER
        segs = self._segs
        f = self._af
        rot = f is None
        if not rot:
            ix = segs[-1]
            # A segment also closes when its index is full.
            rot = self._asize + need > self._sb or ix[2] >= (len(ix) - _X) * _K
        if telemetry and self.used_bytes() * 4 >= self.capacity_bytes * 3:
            f = None
        elif rot:
            f = None
            if self.segments < self.capacity_bytes // self._sb:
                self.close()
                first = self.next_seq
                p = self._fmt % first
                try:
                    os.remove(p)  # never expected; "a+b" must start empty
                except OSError:
                    pass
                try:
                    f = open(p, "a+b")
                except OSError:
                    pass
                if f:
                    ix = array("H", bytearray(2 * (_X + max(1, self._sb >> 8))))
                    ix[0] = first & 0xFFFF
                    ix[1] = first >> 16
                    ix[3] = _K
                    segs.append(ix)
                    self.segments += 1
                    self._af = f
        if f:
            seq = self.next_seq
            r = self._rec
            r[0] = _MAGIC
            r[1] = _TELE if telemetry else 0
            r[2] = n
            pack_into("<I", r, 3, seq)
            r[_HDR : _HDR + n] = body
            pack_into("<I", r, _HDR + n, crc32(body, crc32(self._hv)))
            try:
                # flush commits the littlefs file: the record is on flash (or,
                # after a power cut, absent) before the caller may send it.
                if f.write(r, 0, need) != need:
                    raise OSError(28)
                f.flush()
            except OSError:
                # Typically ENOSPC.  Stop appending to this file; a partial
                # record at its tail is found and counted at recovery.
                self.close()
            else:
                ix = segs[-1]
                c = ix[2]
                if not c % _K:
                    ix[_X + c // _K] = self._asize
                ix[2] = c + 1
                self._asize += need
                self.next_seq = seq + 1
                if rot:
                    # Only now: the new segment holds the newest seq, so fully
                    # acked older ones can go without persisting next_seq first.
                    self.ack(0)
                return seq
        if telemetry:
            self.dropped_telemetry += 1
        else:
            self.refused_events += 1
        return 0

    # --- reads for (re)transmission ----------------------------------------
    # Copies the body of `seq` into buf (>= 255 bytes); -1 when acked, lost or
    # unknown.  The crc was checked at recovery (or the record was written by
    # this boot), so only headers are read here: that keeps read free of
    # allocation (a crc over an exact slice would need a memoryview).
    def read(self, seq, buf):
        if seq <= self._acked or seq >= self.next_seq:
            return -1
        segs = self._segs
        for ix in segs:
            first = ix[0] | ix[1] << 16
            d = seq - first
            if 0 <= d < ix[2]:
                break
        else:
            return -1
        k = ix[3]
        off = ix[_X + d // k]
        if off == _HOLE:
            return -1
        f = self._af
        if f is None or ix is not segs[-1]:
            # A second handle on the active file would not see its appends.
            f = self._rf
            if f is None or self._rfirst != first:
                self._rfirst = -1
                if f:
                    f.close()
                f = self._rf = open(self._fmt % first, "rb")
                self._rfirst = first
        h = self._rec
        for _ in range(d % k):
            f.seek(off)
            f.readinto(h, _HDR)
            off += h[2] + _OVER
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
        self.last_telemetry = h[1] & _TELE
        return n

    # --- acks ----------------------------------------------------------------
    def first_unacked(self):
        return self._acked + 1

    # Unacked seqs, a seq lost to corruption included (read() gives -1).
    def depth(self):
        return self.next_seq - 1 - self._acked

    # Cumulative.  Persisted lazily by sync(): after a power cut the records
    # acked since the last sync are sent again and the host drops them by seq.
    # Also deletes the oldest segments while all their records are acked
    # (ack(0) does only that).
    def ack(self, seq):
        seq = min(seq, self.next_seq - 1)
        if seq > self._acked:
            self._acked = seq
            self._dirty = True
        segs = self._segs
        while segs and not (self._af and len(segs) == 1):
            ix = segs[0]
            first = ix[0] | ix[1] << 16
            c = ix[2]
            if c and first + c - 1 > self._acked:
                break
            if c and first + c == self.next_seq > self._floor:
                # This file holds the newest seq: persist next_seq before
                # it goes, or a reboot would hand out old seqs again.
                self._dirty = True
                if not self.sync():
                    break
            rf = self._rf
            if self._rfirst == first and rf is not None:
                self._rfirst = -1
                rf.close()
            try:
                os.remove(self._fmt % first)
            except OSError:
                pass
            segs.pop(0)
            self.segments -= 1

    # Writes the ack pointer if it moved; True when the state is on flash.
    # Write tmp, then rename (atomic in littlefs).
    def sync(self):
        if self._dirty:
            n = self.next_seq
            b = pack("<III", _ST_MAGIC, self._acked, n)
            p = self._ack
            try:
                with open(p + ".tmp", "wb") as f:
                    f.write(b + pack("<I", crc32(b)))
                os.rename(p + ".tmp", p)
            except OSError:
                return False
            self._floor = n
            self._dirty = False
        return True

    def used_bytes(self):
        # A closed segment counts whole: its tail is never written again.
        return (self.segments - (self._af is not None)) * self._sb + self._asize

    # Also closes the active segment when append rotates or fails.
    def close(self):
        self.sync()
        f = self._af
        self._af = None
        self._asize = 0
        self._rfirst = -1
        if self._rf:
            self._rf.close()
        if f:
            try:
                f.close()
            except OSError:
                pass
