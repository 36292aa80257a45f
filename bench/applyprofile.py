"""Where the receiving side of a sync spends its time: decode, then ``Store.apply``, offline.

Reads the signed catalogue entries of a node that holds them (the replication scenario's A),
decodes and verifies them as a receiver does, then applies them to a fresh store three entries
at a time (one 512 KiB sync message's worth), first as the store stands and then without each
piece of per-record write work in turn (``PIECES``), so the price of each shows:

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
from protocol import LogKey
from protocol.entries import Entry, decode_entry

PER_MESSAGE = 3  # catalogue entries of 1,000 records in one 512 KiB sync message


def entries(source: Path, count: int) -> list[Entry]:
    conn = sqlite3.connect(f"file:{source / 'node.db'}?mode=ro", uri=True)
    rows = conn.execute(
        "SELECT raw FROM entries WHERE kind = 'catalog' ORDER BY author, log, seq LIMIT ?",
        (count,),
    )
    raws = [raw for (raw,) in rows]
    conn.close()
    return [decode_entry(raw, now_ms=None) for raw in raws]


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


def apply_seconds(batch: list[Entry], without: str | None) -> float:
    """Apply ``batch`` to a fresh store, with one piece of ``PIECES`` taken away."""
    with tempfile.TemporaryDirectory() as tmp:
        store = init_home(
            Path(tmp) / "b", name="B", isil="", contact="", listen="127.0.0.1:1"
        ).open_store()
        patches = PIECES[without] if without is not None else []
        saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
        for owner, name, stand_in in patches:
            setattr(owner, name, stand_in)
        key = LogKey(batch[0].author, batch[0].log)
        try:
            started = time.perf_counter()
            for first in range(0, len(batch), PER_MESSAGE):
                result = store.apply(key, batch[first : first + PER_MESSAGE])
                assert result.error is None, result.error
            return time.perf_counter() - started
        finally:
            for owner, name, value in saved:
                setattr(owner, name, value)
            store.conn.close()


def profile(home: Path, count: int) -> list[str]:
    """Table rows: decode rate, apply rate, and apply without each piece of per-record work."""
    started = time.perf_counter()
    batch = entries(home, count)
    records = sum(len(e.body["ops"]) for e in batch)
    decode = time.perf_counter() - started
    rows = [f"| decode and verify (event loop) | {records / decode:,.0f} | |"]
    whole = apply_seconds(batch, None)
    rows.append(
        f"| `Store.apply`, as the schema stands (database thread) | {records / whole:,.0f} | |"
    )
    for without in PIECES:
        seconds = apply_seconds(batch, without)
        rows.append(
            f"| `Store.apply` without {without} | {records / seconds:,.0f} | "
            f"{max(0.0, (whole - seconds) / whole):.0%} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.applyprofile", description=__doc__)
    parser.add_argument("home", type=Path, help="a node home holding a catalogue")
    parser.add_argument("--entries", type=int, default=30, help="catalogue entries to apply")
    args = parser.parse_args()
    print("| step | records/s | share of apply |")
    print("| --- | ---: | ---: |")
    print("\n".join(profile(args.home, args.entries)))


if __name__ == "__main__":
    main()
