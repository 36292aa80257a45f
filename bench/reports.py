"""Cooperation reports at volume: overlap matrix, unique titles and new acquisitions over a
replica holding several libraries' catalogues.

Four libraries each hold a random half of a generated catalogue (bench/generate.py), so titles
overlap the way a network's do; each library's records arrive as real signed catalogue
entries (1,000 records each, timestamps spread over 60 days) applied to one replica. Each
report runs several times; the median is reported beside the bare SQLite pass it rests on: a
GROUP BY over the same (union key, library) index, with nothing computed.

    python -m bench.reports --records 100000
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peernode.catalog import CATALOG_LOG
from peernode.home import init_home
from peernode.importers.base import Imported
from peernode.importers.tabular import read_json
from peernode.reports import DAY_MS, new_acquisitions, overlap, unique_titles
from protocol import CATALOG, LogKey, public_bytes, sign_entry

from .generate import write_jsonl

LIBRARIES = 4
HOLD_SHARE = 0.5  # each library holds each title with this chance (at least one holds it)
BATCH = 1000
RUNS = 5


@dataclass
class Timing:
    name: str
    seconds: float  # median
    result: str


def build(work: Path, records: int) -> tuple[Path, int]:
    """A replica with ``LIBRARIES`` catalogues of about ``records`` records in all."""
    root = work / "reports"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    titles = max(1, int(records / (LIBRARIES * HOLD_SHARE)))
    data = write_jsonl(root / f"titles-{titles}.jsonl", titles, seed=7)
    wires = [(o.record.rid, o.record.to_wire()) for o in read_json(data) if isinstance(o, Imported)]
    home = init_home(root / "replica", name="Replica", isil="", contact="", listen="127.0.0.1:1")
    store = home.open_store()
    rng = random.Random(7)
    keys = [Ed25519PrivateKey.generate() for _ in range(LIBRARIES)]
    held: list[list[tuple[str, dict[str, Any]]]] = [[] for _ in keys]
    for rid, wire in wires:
        holders = [i for i in range(LIBRARIES) if rng.random() < HOLD_SHARE]
        for index in holders or [rng.randrange(LIBRARIES)]:
            held[index].append((f"{index}-{rid}", wire))
    now = int(time.time() * 1000)
    total = 0
    for key, rows in zip(keys, held, strict=True):
        author = public_bytes(key)
        prev = None
        batches = [rows[i : i + BATCH] for i in range(0, len(rows), BATCH)]
        for seq, batch in enumerate(batches, start=1):
            # Oldest first, spread evenly over the last 60 days: a 30-day report takes half.
            stamp = now - 60 * DAY_MS + (seq * 60 * DAY_MS) // (len(batches) + 1)
            entry = sign_entry(
                key,
                log=CATALOG_LOG,
                seq=seq,
                prev=prev,
                timestamp=stamp,
                kind=CATALOG,
                body={"ops": [["put", rid, wire] for rid, wire in batch]},
            )
            result = store.apply(LogKey(author, CATALOG_LOG), [entry])
            assert result.error is None and result.applied == 1, result
            prev = entry.hash
            total += len(batch)
    store.conn.execute("ANALYZE")
    store.conn.close()
    return home.path, total


def _median(fn: Callable[[], str]) -> tuple[float, str]:
    times = []
    result = ""
    for _ in range(RUNS):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def measure(home_path: Path) -> list[Timing]:
    from peernode.home import Home

    conn = Home(home_path).open_store().conn
    now = int(time.time() * 1000)

    def bare() -> str:
        row = conn.execute(
            "SELECT count(*) FROM (SELECT match_key, author FROM records "
            "GROUP BY match_key, author)"
        ).fetchone()
        return f"{row[0]:,} (title, library) pairs"

    def matrix() -> str:
        result = overlap(conn)
        return f"{result.entries:,} union entries, {sum(result.unique.values()):,} unique"

    def unique() -> str:
        return f"{unique_titles(conn, None, 100)['total']:,} titles, first 100 listed"

    def new() -> str:
        return f"{new_acquisitions(conn, now, 30, None, 100)['total']:,} new in 30 days"

    out = []
    for name, fn in [
        ("bare SQLite: GROUP BY (union key, library)", bare),
        ("overlap matrix + unique counts", matrix),
        ("unique titles (count + first page)", unique),
        ("new acquisitions, 30 days (count + first page)", new),
    ]:
        seconds, result = _median(fn)
        out.append(Timing(name, seconds, result))
    conn.close()
    return out


def section(timings: list[Timing], records: int, command: str) -> list[str]:
    base = timings[0].seconds
    lines = [
        "## Cooperation reports",
        "",
        f"Command: `{command}`  ",
        f"{records:,} records of {LIBRARIES} libraries in one replica, each library holding a "
        "random half of the titles (bench/reports.py); median of "
        f"{RUNS} runs. Baseline: the bare SQLite GROUP BY over the same covering index.",
        "",
        "| report | ms | vs bare GROUP BY | result |",
        "| --- | ---: | ---: | --- |",
    ]
    for timing in timings:
        lines.append(
            f"| {timing.name} | {timing.seconds * 1000:.1f} | "
            f"{timing.seconds / base:.1f}x | {timing.result} |"
        )
    lines += [
        "",
        "Overlap is one ordered pass over `records_union (match_key, author)`; Python only",
        "counts pairs at each title held by several libraries. New acquisitions read",
        "`record_added`, kept by a trigger as records are first put.",
        "",
    ]
    return lines


def reports_section(work: Path, records: int, command: str) -> list[str]:
    home, total = build(work, records)
    return section(measure(home), total, command)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.reports", description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="5,000 records, for the tests")
    parser.add_argument("--work", type=Path, default=Path("bench-data"))
    args = parser.parse_args()
    records = 5_000 if args.quick else args.records
    command = f"python -m bench.reports --records {records}"
    print("\n".join(reports_section(args.work, records, command)))


if __name__ == "__main__":
    main()
