# Tests of firmware/journal.py on littlefs2 over a file-backed block device
# (a RAM one would not fit beside the journal in the 96K test heap).
import gc
import os
import random
import struct
import time
from binascii import crc32, hexlify

import micropython
import vfs
from journal import Journal

_BS = 4096
_NBLOCKS = 64
_MNT = "/jt"
_ROOT = "/jt/data/journal"
_IMG = "/tmp/deskline-jt-%s-" % hexlify(os.urandom(4)).decode()


class FileDev:
    # A block device of 4096-byte blocks in a host file; erase is a no-op,
    # as littlefs expects of a device that can overwrite.
    made = 0

    def __init__(self, nblocks, copy_of=None):
        self.nblocks = nblocks
        self.path = _IMG + str(FileDev.made)
        FileDev.made += 1
        z = bytearray(512)
        src = open(copy_of.path, "rb") if copy_of else None
        with open(self.path, "wb") as f:
            for _ in range(nblocks * _BS // 512):
                if src:
                    src.readinto(z)
                f.write(z)
        if src:
            src.close()
        self.f = open(self.path, "r+b")

    # A discarded device ignores the finalizers of files left open on it by
    # an abandoned journal: they must not reach the image.
    def discard(self):
        self.f.close()
        self.f = None
        os.remove(self.path)

    def readblocks(self, block, buf, off=0):
        if self.f:
            self.f.seek(block * _BS + off)
            self.f.readinto(buf)

    def writeblocks(self, block, buf, off=None):
        if self.f:
            self.f.seek(block * _BS + (off or 0))
            self.f.write(buf)

    def ioctl(self, op, arg):
        if op == 4:
            return self.nblocks
        if op == 5:
            return _BS
        if op == 6:
            return 0
        return None


_dev = None  # the device mounted at _MNT


# Runs a test on a freshly formatted filesystem.
def _fs(fn):
    def test(*args):
        global _dev
        _dev = FileDev(_NBLOCKS)
        vfs.VfsLfs2.mkfs(_dev)
        vfs.mount(vfs.VfsLfs2(_dev), _MNT)
        try:
            fn(*args)
        finally:
            try:
                vfs.umount(_MNT)
            except OSError:
                pass
            _dev.discard()
            gc.collect()

    return test


def _crash():
    # Power cut: the filesystem is mounted again from a copy of what had
    # reached the device.  The caller has dropped its journal unclosed; the
    # finalizers of its files run on the old device, then that goes.
    global _dev
    old = _dev
    _dev = FileDev(old.nblocks, old)
    gc.collect()
    vfs.umount(_MNT)
    old.discard()
    vfs.mount(vfs.VfsLfs2(_dev), _MNT)


def _body(seq, n=24):
    return bytes((seq * 7 + i) & 0xFF for i in range(n))


def _segs():
    return sorted(n for n in os.listdir(_ROOT) if n.endswith(".seg"))


def _seg_path(name):
    return _ROOT + "/" + name


def _record(seq, body, flags=0):
    # The documented format, built independently of the module.
    head = struct.pack("<BBBI", 0xA5, flags, len(body), seq)
    return head + body + struct.pack("<I", crc32(head[1:] + body))


def _check(j, seq, body, buf):
    n = j.read(seq, buf)
    assert n == len(body), (seq, n)
    assert buf[:n] == body, seq


@_fs
def test_append_read_ack():
    j = Journal(_ROOT)
    buf = bytearray(255)
    assert j.next_seq == 1 and j.first_unacked() == 1 and j.depth() == 0
    for s in range(1, 6):
        assert j.append(_body(s)) == s
    assert j.next_seq == 6 and j.depth() == 5 and j.first_unacked() == 1
    for s in range(1, 6):
        _check(j, s, _body(s), buf)
    j.ack(3)
    assert j.first_unacked() == 4 and j.depth() == 2
    assert j.read(3, buf) == -1 and j.read(1, buf) == -1
    _check(j, 4, _body(4), buf)
    j.ack(2)  # older than the ack pointer: ignored
    assert j.first_unacked() == 4
    j.ack(1000)  # beyond next_seq: clamped
    assert j.first_unacked() == 6 and j.depth() == 0
    assert j.append(_body(6, 0)) == 6  # empty body
    assert j.read(6, buf) == 0
    assert j.append(memoryview(_body(7, 255))) == 7
    _check(j, 7, _body(7, 255), buf)
    try:
        j.append(bytes(256))
        raise AssertionError("256-byte body accepted")
    except ValueError:
        pass
    j.close()


@_fs
def test_telemetry_flag_and_record_format():
    j = Journal(_ROOT)
    buf = bytearray(255)
    j.append(b"tele", True)
    j.append(b"event")
    assert j.read(1, buf) == 4 and j.last_telemetry
    assert j.read(2, buf) == 5 and not j.last_telemetry
    j.close()
    with open(_seg_path(_segs()[0]), "rb") as f:
        data = f.read()
    assert _segs() == ["00000001.seg"]
    assert data == _record(1, b"tele", 1) + _record(2, b"event")


@_fs
def test_read_unknown_seq():
    j = Journal(_ROOT)
    buf = bytearray(255)
    assert j.read(0, buf) == -1 and j.read(1, buf) == -1
    j.append(b"a")
    assert j.read(2, buf) == -1 and j.read(0xFFFFFFFF, buf) == -1 and j.read(-5, buf) == -1
    j.close()


@_fs
def test_seq_survives_close_and_crash():
    buf = bytearray(255)
    j = Journal(_ROOT)
    for s in range(1, 4):
        j.append(_body(s))
    j.close()
    j = Journal(_ROOT)
    assert j.next_seq == 4 and j.first_unacked() == 1 and j.torn_records == 0
    for s in range(1, 4):
        _check(j, s, _body(s), buf)
    assert j.append(_body(4)) == 4
    j = None
    _crash()  # no close: the flushed appends must all be there
    j = Journal(_ROOT)
    assert j.next_seq == 5 and j.depth() == 4
    _check(j, 4, _body(4), buf)
    # A clean newest segment is appended to again, not one file per boot.
    assert j.append(_body(5)) == 5 and _segs() == ["00000001.seg"]
    j.close()


@_fs
def test_seq_never_regresses_when_all_segments_go():
    j = Journal(_ROOT, seg_bytes=512, max_segs=4)
    for s in range(1, 31):
        assert j.append(_body(s, 40)) == s
    j.ack(30)
    j.close()
    for name in _segs():  # even if every segment vanished
        os.remove(_seg_path(name))
    j = Journal(_ROOT, seg_bytes=512, max_segs=4)
    assert j.next_seq == 31 and j.depth() == 0 and j.segments == 0
    assert j.append(b"x") == 31
    j = None
    _crash()
    # The journal deletes its last segment itself: newest one torn at the
    # tail (so not reopened) and fully acked.  It persists next_seq first.
    with open(_seg_path(_segs()[-1]), "ab") as f:
        f.write(b"\xa5\x00")
    j = Journal(_ROOT, seg_bytes=512, max_segs=4)
    assert j.next_seq == 32 and j.torn_records == 1
    j.ack(31)
    assert j.segments == 0 and _segs() == []
    j = None
    _crash()  # ack not synced, but the segment is gone
    j = Journal(_ROOT, seg_bytes=512, max_segs=4)
    assert j.next_seq == 32 and j.first_unacked() == 32
    assert j.append(b"y") == 32
    j.close()


@_fs
def _torn(tail, next_after):
    buf = bytearray(255)
    j = Journal(_ROOT)
    for s in range(1, 6):
        j.append(_body(s))
    j.close()
    with open(_seg_path("00000001.seg"), "ab") as f:
        f.write(tail)
    for _ in range(2):  # the bad bytes stay: each boot skips them again
        j = Journal(_ROOT)
        assert j.torn_records == 1
        for s in range(1, 6):
            _check(j, s, _body(s), buf)
        assert j.next_seq == next_after
        seq = j.append(_body(next_after))
        assert seq == next_after
        _check(j, seq, _body(seq), buf)
        assert j.segments == 2  # littlefs cannot truncate: a fresh segment
        j.close()
        next_after += 1
    j = Journal(_ROOT)
    assert j.depth() == next_after - 1
    j.close()


def test_torn_last_record_partial_header():
    _torn(_record(6, _body(6))[:5], 6)


def test_torn_last_record_partial_body():
    # Seq 6 was never returned by append() (its flush did not finish), so
    # it is handed out again: no hole for the host's gap-free acks.
    _torn(_record(6, _body(6))[:20], 6)


def test_torn_last_record_bad_crc():
    r = bytearray(_record(6, _body(6)))
    r[-1] ^= 0xFF
    _torn(bytes(r), 6)


def test_torn_last_record_garbage():
    random.seed(5)
    _torn(bytes(random.getrandbits(8) for _ in range(300)), 6)
    _torn(b"\xff" * 40, 6)


def _rewrite(name, pos, xor):
    with open(_seg_path(name), "rb") as f:
        data = bytearray(f.read())
    data[pos] ^= xor
    with open(_seg_path(name), "wb") as f:
        f.write(data)


@_fs
def test_corrupt_crc_in_the_middle():
    buf = bytearray(255)
    j = Journal(_ROOT)
    for s in range(1, 8):
        j.append(_body(s))
    j.close()
    rec = 11 + 24
    _rewrite("00000001.seg", 2 * rec + 15, 0x10)  # body of seq 3
    _rewrite("00000001.seg", 4 * rec + 2, 0x40)  # len of seq 5
    j = Journal(_ROOT)
    assert j.torn_records == 2
    for s in (1, 2, 4, 6, 7):
        _check(j, s, _body(s), buf)
    assert j.read(3, buf) == -1 and j.read(5, buf) == -1
    assert j.next_seq == 8 and j.depth() == 7 and j.first_unacked() == 1
    assert j.append(_body(8)) == 8
    j.ack(4)
    assert j.read(6, buf) == 24
    j.close()


@_fs
def test_segment_rotation_and_deletion():
    buf = bytearray(255)
    j = Journal(_ROOT, seg_bytes=512, max_segs=8)
    for s in range(1, 41):  # 51-byte records: 10 per segment
        assert j.append(_body(s, 40)) == s
    assert j.segments == 4
    assert _segs() == ["00000001.seg", "0000000b.seg", "00000015.seg", "0000001f.seg"]
    for s in range(1, 41):
        _check(j, s, _body(s, 40), buf)
    j.ack(25)
    assert j.segments == 2 and _segs() == ["00000015.seg", "0000001f.seg"]
    assert j.read(25, buf) == -1
    for s in range(26, 41):
        _check(j, s, _body(s, 40), buf)
    j.ack(40)  # the active segment stays; it goes when full
    assert j.segments == 1 and _segs() == ["0000001f.seg"]
    assert j.append(_body(41, 40)) == 41
    assert _segs() == ["00000029.seg"]
    j.close()
    # Tiny records close a segment when its index is full (512 // 32).
    j = Journal(_ROOT, seg_bytes=512, max_segs=8)
    for s in range(42, 42 + 33):
        assert j.append(b"") == s
    assert j.segments == 3 and j.depth() == 34
    j.close()


@_fs
def test_empty_newest_segment_file():
    # A cut between creating a segment file and flushing its first record
    # leaves it empty.  It goes at boot, and the segment before it, though
    # it has room, is not appended to: its end is not where the empty
    # file's was.
    buf = bytearray(255)
    j = Journal(_ROOT, seg_bytes=512, max_segs=8)
    for s in range(1, 6):
        j.append(_body(s, 40))
    j.close()
    open(_seg_path("00000006.seg"), "wb").close()
    j = Journal(_ROOT, seg_bytes=512, max_segs=8)
    assert j.next_seq == 6 and j.segments == 1 and j.torn_records == 0
    for s in range(6, 9):
        assert j.append(_body(s, 40)) == s
    assert _segs() == ["00000001.seg", "00000006.seg"]
    for s in range(1, 9):
        _check(j, s, _body(s, 40), buf)
    j.close()


@_fs
def test_reopen_with_smaller_segments():
    # Segments written with a larger seg_bytes are indexed in full; reads
    # walk at most 7 headers from an indexed offset, across every stride.
    buf = bytearray(255)
    j = Journal(_ROOT)
    for s in range(1, 201):  # 51-byte records: 80 to a 4 KB segment
        assert j.append(_body(s, 40)) == s
    assert j.segments == 3
    j.close()
    j = Journal(_ROOT, seg_bytes=512, max_segs=8)
    assert j.next_seq == 201 and j.segments == 3 and j.depth() == 200
    for s in (200, 1, 81, 80, 7, 8, 9, 161, 160, 199):
        _check(j, s, _body(s, 40), buf)
    for s in range(1, 201):
        _check(j, s, _body(s, 40), buf)
    assert j.append(_body(201, 40)) == 201 and j.segments == 4
    j.ack(160)
    assert j.segments == 2 and j.first_unacked() == 161
    for s in range(161, 202):
        _check(j, s, _body(s, 40), buf)
    j.close()


@_fs
def test_ram():
    # The console runs every firmware module in a 96 KB heap.
    gc.collect()
    m0 = gc.mem_alloc()
    j = Journal(_ROOT)
    gc.collect()
    fresh = gc.mem_alloc() - m0
    n = 0
    while j.append(_body(n)):  # 35-byte records until the journal is full
        n += 1
    gc.collect()
    full = gc.mem_alloc() - m0
    print("  %d B new, %d B with %d segments, %d records" % (fresh, full, j.segments, n))
    assert j.segments == 16 and fresh <= 2048 and full <= 3584, (fresh, full)
    j.close()


@_fs
def test_full_policy():
    buf = bytearray(255)
    j = Journal(_ROOT, seg_bytes=512, max_segs=4)
    assert j.capacity_bytes == 2048
    # 51-byte records, 10 to a segment; a closed segment counts 512 bytes.
    tele = 0
    used = 0
    while True:
        used = j.used_bytes()
        if not j.append(_body(tele, 40), True):
            break
        assert used < 1536  # below 75 % when accepted
        tele += 1
    assert used >= 1536
    assert tele == 31, tele
    assert j.used_bytes() == 3 * 512 + 51 and j.dropped_telemetry == 1, j.used_bytes()
    events = 0
    while j.append(_body(events, 40)):
        events += 1
    assert events == 9 and j.refused_events == 1 and j.segments == 4
    assert j.used_bytes() <= j.capacity_bytes
    assert j.append(b"", True) == 0 and j.dropped_telemetry == 2
    assert j.append(b"e") == 0 and j.refused_events == 2
    assert j.next_seq == 41
    _check(j, 40, _body(8, 40), buf)
    j.ack(10)  # frees one segment: events again, telemetry not yet
    assert j.append(_body(0, 40)) == 41
    assert j.append(b"t", True) == 0 and j.dropped_telemetry == 3
    j.ack(40)
    assert j.append(b"t", True) == 42
    assert j.dropped_telemetry == 3 and j.refused_events == 2
    j.close()


@_fs
def test_lazy_ack_sync():
    buf = bytearray(255)
    j = Journal(_ROOT, seg_bytes=512, max_segs=8)
    for s in range(1, 31):
        j.append(_body(s, 40))
    j.ack(15)  # deletes 1..10; not persisted
    j = None
    _crash()
    j = Journal(_ROOT, seg_bytes=512, max_segs=8)
    # 11..15 come again (the host drops them by seq); nothing is lost.
    assert j.first_unacked() == 11 and j.next_seq == 31
    _check(j, 11, _body(11, 40), buf)
    j.ack(15)
    assert j.sync()
    j = None
    _crash()
    j = Journal(_ROOT, seg_bytes=512, max_segs=8)
    assert j.first_unacked() == 16 and j.depth() == 15
    j.ack(17)
    j.close()  # close syncs
    j = Journal(_ROOT, seg_bytes=512, max_segs=8)
    assert j.first_unacked() == 18
    j.close()


@_fs
def test_state_file_tmp_left_by_cut():
    j = Journal(_ROOT)
    for _ in range(5):
        j.append(b"x")
    j.ack(2)
    j.sync()
    j.ack(4)
    j.sync()
    j.close()
    # A cut between writing ack.tmp and the rename: tmp holds the newer
    # state, "ack" the older one.
    os.rename(_ROOT + "/ack", _ROOT + "/ack.tmp")
    with open(_ROOT + "/ack", "wb") as f:
        f.write(b"garbage")
    j = Journal(_ROOT)
    assert j.first_unacked() == 5 and j.next_seq == 6
    j.close()


@_fs
def test_heap_and_time():
    buf = bytearray(255)
    j = Journal(_ROOT)
    body = memoryview(bytearray(_body(0, 40)))
    t0 = time.ticks_us()
    for i in range(2000):  # fits the 96K heap, the host acking now and then
        seq = j.append(body)
        assert seq == i + 1
        if i % 50 == 49:
            j.ack(seq - 20)
    t_append = time.ticks_diff(time.ticks_us(), t0) // 2000
    # Unacked records in a closed segment and in the active one.
    segs = j.segments
    while j.segments == segs:
        j.append(body)
    for _ in range(3):
        new = j.append(body)
    old = j.first_unacked()
    n1 = j.read(old, buf)  # opens the reader for that segment: allocates
    gc.collect()
    micropython.heap_lock()
    try:
        n2 = j.read(new, buf)
        n3 = j.read(old + 1, buf)
        n4 = j.read(new - 1, buf)
        seq = j.append(body)  # far from a rotation: no allocation (on unix)
        n5 = j.read(seq, buf)
    finally:
        micropython.heap_unlock()
    assert n1 == 40 and n2 == n3 == n4 == n5 == 40 and seq == new + 1
    gc.collect()
    m0 = gc.mem_alloc()
    t0 = time.ticks_us()
    for _ in range(200):
        seq = j.append(body)
        assert j.read(seq, buf) == 40
        j.ack(seq - 3)
    t_loop = time.ticks_diff(time.ticks_us(), t0) // 200
    gc.collect()
    grown = gc.mem_alloc() - m0
    assert grown < 256, grown
    print(
        "  %d us/append; %d us/append+read+ack; heap %d used, %d free; %+d B after 200"
        % (t_append, t_loop, gc.mem_alloc(), gc.mem_free(), grown)
    )
    j.close()


@_fs
def test_fuzz_against_model():
    # Random appends, acks (the host sometimes offline, so the journal
    # fills), syncs, reopens, power cuts, and cuts mid-write, checked
    # against a model of what the journal must hold.
    random.seed(1234)
    seg, segs = 512, 6
    buf = bytearray(255)
    j = Journal(_ROOT, seg, segs)
    model = {}  # seq -> (body, telemetry), all not yet acked on flash
    nxt = 1
    acked = 0  # what the host acknowledged
    synced = 0  # what the journal has on flash
    online = True
    refused = dropped = cuts = 0
    for step in range(1000):
        op = random.randrange(100)
        if op < 3:
            online = not online
        elif op < 60:
            n = random.choice((0, 5, 20, 40, 60, 255))
            tele = random.randrange(4) == 0
            body = _body(nxt + step, n)
            used = j.used_bytes()
            seq = j.append(body, tele)
            if seq:
                assert seq == nxt
                model[seq] = (body, tele)
                nxt += 1
            elif tele:
                assert used * 4 >= seg * segs * 3 or j.segments == segs
                dropped += 1
            else:
                assert j.segments == segs, step
                refused += 1
        elif op < 80:
            if online:
                a = random.randrange(acked - 2, nxt + 3)
                j.ack(a)
                acked = max(acked, min(a, nxt - 1))
        elif op < 84:
            j.sync()
            synced = acked
        elif op < 88:
            j.close()
            synced = acked
            j = Journal(_ROOT, seg, segs)
        elif op < 96:
            j = None
            _crash()
            names = _segs()
            if op >= 93 and names:
                # Cut while writing record nxt: part of it is in the file.
                cuts += 1
                with open(_seg_path(names[-1]), "ab") as f:
                    f.write(_record(nxt, _body(nxt, 40))[: random.randrange(1, 51)])
            j = Journal(_ROOT, seg, segs)
            # Acked since the last sync: sent again, the host acks again.
            got = j.first_unacked() - 1
            assert synced <= got <= acked, (step, synced, got, acked)
            acked = got
        else:
            gc.collect()
        for s in list(model):
            if s <= synced:
                del model[s]
        assert j.next_seq == nxt and (cuts or j.torn_records == 0), (step, op, j.next_seq, nxt)
        assert j.first_unacked() == acked + 1, (step, op, j.first_unacked(), acked)
        assert j.depth() == nxt - 1 - acked
        for s in range(acked - 1, nxt + 2):
            n = j.read(s, buf)
            if s > acked and s in model:
                body, tele = model[s]
                assert n == len(body) and buf[:n] == body, (step, s)
                assert bool(j.last_telemetry) == tele
            else:
                assert n == -1, (step, s)
    j.close()
    assert refused and dropped and cuts, (refused, dropped, cuts)
