"""Store ingest: sustained events/s through Store.apply, beside raw sqlite3.

Usage: bench/ingest.py [--consoles N] [--batch N] [--batches N] [--rounds N]

The daemon's path: batches of events from several consoles (mostly key
presses, with the calls, wrap-ups and state changes a shift brings) go
through Store.apply on one core: contiguity checks, the events, the derived
rows, the acked seqs and the counters, one transaction per batch.

The reference, in the same run: the same event rows written with a bare
`executemany` into an identical events table (a database the store itself
created, so the schema, indexes and pragmas are the same), one transaction
per batch of the same size.  Both commit with synchronous=FULL in WAL mode,
so each batch waits for its fsync as the daemon's acks do.  Rounds alternate
the two; the median of each is reported.

Target: >= 30% of the raw rate and >= 20,000 events/s.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from deskline.store import Batch, EventRow, Store, connect
from deskline.wire import codec

TARGET_RATE = 20_000
TARGET_RATIO = 0.30
SYNCHRONOUS = "FULL"


def shift(device: str, count: int, rng: random.Random) -> list[EventRow]:
    """A console's journal: calls with presses, state changes and a wrap-up each."""
    out: list[EventRow] = []
    seq = 0
    t = 1_800_000_000.0

    def emit(kind: int, a: int = 0, b: int = 0, c: int = 0, ref: int = 0, text: str = "") -> int:
        nonlocal seq, t
        seq += 1
        t += 0.5
        out.append(EventRow(device, seq, seq * 500, int(t), kind, a, b, c, ref, text, t + 0.01))
        return seq

    while len(out) < count:
        call = emit(codec.EV_CALL_START, 1, text=f"ACD-{device}-{seq}")
        emit(codec.EV_STATE, 2, 1, ref=call)
        for _ in range(rng.randint(6, 14)):
            emit(codec.EV_PRESS, rng.randint(0, 11), rng.randint(40, 400), ref=call)
        emit(codec.EV_CALL_END, 1, rng.randint(30, 600), ref=call)
        emit(codec.EV_STATE, 3, 2, ref=call)
        for _ in range(rng.randint(2, 4)):
            emit(codec.EV_PRESS, rng.randint(0, 9), rng.randint(40, 400), ref=call)
        emit(codec.EV_WRAPUP, rng.randint(1, 9), rng.randint(5, 60), 1, ref=call)
        emit(codec.EV_STATE, 1, 3, ref=call)
    return out[:count]


def make_batches(consoles: int, batch: int, batches: int) -> list[list[EventRow]]:
    """Batches mixing every console's events in arrival order."""
    rng = random.Random(7)
    per = batch * batches // consoles + 1
    journals = [shift(f"desk-{i:03d}", per, rng) for i in range(consoles)]
    stream = [ev for group in zip(*journals, strict=True) for ev in group]
    return [stream[i * batch : (i + 1) * batch] for i in range(batches)]


def hello(store: Store, device: str) -> None:
    fields = {
        "boot_count": 1,
        "next_seq": 1,
        "first_unacked": 1,
        "journal_depth": 0,
        "config_version": 0,
        "uptime_ms": 0,
    }
    store.hello(device, fields, "bench", time.time())


def run_store(path: Path, batches: list[list[EventRow]]) -> tuple[float, list[float]]:
    store = Store(path, synchronous=SYNCHRONOUS)
    for dev in sorted({ev.device_id for ev in batches[0]}):
        hello(store, dev)
    latencies: list[float] = []
    n = 0
    t0 = time.perf_counter()
    for events in batches:
        t1 = time.perf_counter()
        acks = store.apply(Batch(events=events))
        latencies.append(time.perf_counter() - t1)
        n += len(events)
        assert acks, "nothing acked"
    elapsed = time.perf_counter() - t0
    stored = store.counters().get("events_stored", 0)
    store.close()
    assert stored == n, f"stored {stored} of {n}"
    return n / elapsed, latencies


def raw_row(console_id: int, e: EventRow) -> tuple[object, ...]:
    return (
        console_id,
        1,
        e.seq,
        e.uptime_ms,
        e.epoch,
        e.kind,
        e.a,
        e.b,
        e.c,
        e.ref,
        e.text,
        e.received,
    )


def run_raw(path: Path, batches: list[list[EventRow]]) -> float:
    Store(path, synchronous=SYNCHRONOUS).close()  # the same schema and pragmas
    ids = {dev: i + 1 for i, dev in enumerate(sorted({ev.device_id for ev in batches[0]}))}
    rows = [[raw_row(ids[e.device_id], e) for e in events] for events in batches]
    db = connect(path, SYNCHRONOUS)
    sql = (
        "INSERT INTO events (console_id, journal_epoch, seq, uptime_ms, epoch, kind, a, b, c, "
        "ref, text, received) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    n = 0
    t0 = time.perf_counter()
    for batch in rows:
        db.execute("BEGIN IMMEDIATE")
        db.executemany(sql, batch)
        db.execute("COMMIT")
        n += len(batch)
    elapsed = time.perf_counter() - t0
    db.close()
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--consoles", type=int, default=8)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    batches = make_batches(args.consoles, args.batch, args.batches)
    events = sum(len(b) for b in batches)
    kinds: dict[int, int] = {}
    for b in batches:
        for ev in b:
            kinds[ev.kind] = kinds.get(ev.kind, 0) + 1
    store_rates: list[float] = []
    raw_rates: list[float] = []
    latencies: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = ("store", "raw") if r % 2 == 0 else ("raw", "store")
            for which in order:
                path = Path(tmp) / f"{which}-{r}.db"
                if which == "store":
                    rate, lat = run_store(path, batches)
                    store_rates.append(rate)
                    latencies += lat
                else:
                    raw_rates.append(run_raw(path, batches))
    rate = statistics.median(store_rates)
    raw = statistics.median(raw_rates)
    ratio = rate / raw
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    mix = ", ".join(f"kind {k}: {v / events:.0%}" for k, v in sorted(kinds.items()))
    print(
        f"workload: {events} events from {args.consoles} consoles in batches of {args.batch} "
        f"({mix}); synchronous={SYNCHRONOUS}, WAL, {args.rounds} rounds"
    )
    print(
        f"Store.apply: {rate:,.0f} events/s (median; rounds "
        f"{', '.join(f'{x:,.0f}' for x in store_rates)}); "
        f"per batch p50 {p50:.2f} ms, p99 {p99:.2f} ms"
    )
    print(
        f"raw executemany: {raw:,.0f} events/s (median; rounds "
        f"{', '.join(f'{x:,.0f}' for x in raw_rates)})"
    )
    print(
        f"ratio: {ratio:.0%} of raw (target >= {TARGET_RATIO:.0%}); "
        f"target >= {TARGET_RATE:,} events/s"
    )
    ok = rate >= TARGET_RATE and ratio >= TARGET_RATIO
    print(
        json.dumps(
            {
                "bench": "ingest",
                "events_per_s": round(rate),
                "ratio_of_raw": round(ratio, 3),
                "apply_ms_p50": round(p50, 3),
                "apply_ms_p99": round(p99, 3),
                "events": events,
                "consoles": args.consoles,
                "batch": args.batch,
                "synchronous": SYNCHRONOUS,
                "reference": {"raw_executemany_events_per_s": round(raw)},
                "target": {"events_per_s": TARGET_RATE, "ratio_of_raw": TARGET_RATIO},
                "ok": ok,
            }
        )
    )


if __name__ == "__main__":
    main()
