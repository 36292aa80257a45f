"""Where the receiving side of a sync spends its time, stage by stage, offline.

Reads the signed catalogue entries of a node that holds them (the replication scenario's A) and
runs the three stages a receiving daemon runs for them, one at a time: decode and verify (the
event loop), build the rows (peernode/recordrows.py, a thread of its own), write them
(``Store.apply_many`` with the rows built, on the database thread, with the cache of a sync,
three entries a message and up to four messages a transaction, as peernode/sync.py groups
them). Then the write again without each piece of per-record write work (``PIECES``), so
the price of each shows:

    python -m bench.applyprofile bench-data/nodes-100000/a --entries 30
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from peernode import clusters, rowindex
from peernode.home import init_home
from peernode.recordrows import CatalogRows, build_rows
from peernode.sync import APPLY_QUEUE
from protocol import LogKey
from protocol.entries import Entry, decode_entry

PER_MESSAGE = 3  # catalogue entries of 1,000 records in one 512 KiB sync message
PER_TRANSACTION = PER_MESSAGE * APPLY_QUEUE  # a full apply queue, written together


def entry_raws(source: Path, count: int) -> list[bytes]:
    conn = sqlite3.connect(f"file:{source / 'node.db'}?mode=ro", uri=True)
    rows = conn.execute(
        "SELECT raw FROM entries WHERE kind = 'catalog' ORDER BY author, log, seq LIMIT ?",
        (count,),
    )
    raws = [raw for (raw,) in rows]
    conn.close()
    return raws


# Per-record write work that can be taken away, each by replacing what does it with a no-op.
_NOOP_SQL = "SELECT ?"  # same parameter as the statement it stands for
PIECES: dict[str, list[tuple[Any, str, Any]]] = {
    "the search index (search_fts)": [(rowindex, "_SEARCH", _NOOP_SQL)],
    "the cooperation tables (record_isbns, serial_records)": [
        (rowindex, "_ISBNS", _NOOP_SQL),
        (rowindex, "_SERIALS", _NOOP_SQL),
    ],
    "clustering (clusters.add_records)": [(clusters, "add_records", lambda *a, **k: None)],
}


def apply_seconds(
    batch: list[Entry],
    built: dict[bytes, CatalogRows],
    without: str | None,
    per_transaction: int = PER_TRANSACTION,
) -> float:
    """Write ``batch`` to a fresh store, with one piece of ``PIECES`` taken away."""
    with tempfile.TemporaryDirectory() as tmp:
        store = init_home(
            Path(tmp) / "b", name="B", isil="", contact="", listen="127.0.0.1:1"
        ).open_store()
        store.start_bulk_load()
        patches = PIECES[without] if without is not None else []
        saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
        for owner, name, stand_in in patches:
            setattr(owner, name, stand_in)
        key = LogKey(batch[0].author, batch[0].log)
        try:
            started = time.perf_counter()
            for first in range(0, len(batch), per_transaction):
                chunk = batch[first : first + per_transaction]
                groups = [
                    (key, chunk[one : one + PER_MESSAGE])
                    for one in range(0, len(chunk), PER_MESSAGE)
                ]
                for result in store.apply_many(groups, built):
                    assert result.error is None, result.error
            return time.perf_counter() - started
        finally:
            for owner, name, value in saved:
                setattr(owner, name, value)
            store.conn.close()


def profile(home: Path, count: int) -> list[str]:
    """Table rows: each stage's rate, and the write without each piece of per-record work."""
    raws = entry_raws(home, count)
    started = time.perf_counter()
    batch = [decode_entry(raw, now_ms=None) for raw in raws]
    decode = time.perf_counter() - started
    records = sum(len(e.body["ops"]) for e in batch)
    started = time.perf_counter()
    built = build_rows(batch)
    build = time.perf_counter() - started
    whole = apply_seconds(batch, built, None)
    rows = [
        f"| decode and verify (event loop) | {records / decode:,.0f} | {decode:.2f} | |",
        f"| build the rows (rows thread) | {records / build:,.0f} | {build:.2f} | |",
        f"| write: `Store.apply_many`, as the schema stands (database thread) | "
        f"{records / whole:,.0f} | {whole:.2f} | |",
    ]
    for without in PIECES:
        seconds = apply_seconds(batch, built, without)
        rows.append(
            f"| write without {without} | {records / seconds:,.0f} | {seconds:.2f} | "
            f"{max(0.0, (whole - seconds) / whole):.0%} |"
        )
    serial = decode + build + whole
    rows.append(
        f"| the three stages one after the other | {records / serial:,.0f} | {serial:.2f} | |"
    )
    return rows


def transaction_sizes(home: Path, count: int, sizes: list[int]) -> list[str]:
    """Table rows: the write alone with ``sizes`` catalogue entries a transaction."""
    batch = [decode_entry(raw, now_ms=None) for raw in entry_raws(home, count)]
    records = sum(len(e.body["ops"]) for e in batch)
    built = build_rows(batch)
    rows = []
    for size in sizes:
        seconds = apply_seconds(batch, built, None, size)
        rows.append(f"| {size} | {records / seconds:,.0f} | {seconds:.2f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.applyprofile", description=__doc__)
    parser.add_argument("home", type=Path, help="a node home holding a catalogue")
    parser.add_argument("--entries", type=int, default=30, help="catalogue entries to apply")
    parser.add_argument(
        "--per-transaction",
        type=int,
        nargs="+",
        metavar="N",
        help="instead: the write alone with N catalogue entries a transaction, for each N "
        f"(a sync writes up to {PER_TRANSACTION})",
    )
    args = parser.parse_args()
    if args.per_transaction:
        print("| entries a transaction | records/s | seconds |")
        print("| ---: | ---: | ---: |")
        print("\n".join(transaction_sizes(args.home, args.entries, args.per_transaction)))
        return
    print("| stage | records/s | seconds | share of the write |")
    print("| --- | ---: | ---: | ---: |")
    print("\n".join(profile(args.home, args.entries)))


if __name__ == "__main__":
    main()
