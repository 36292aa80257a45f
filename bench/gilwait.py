"""What one busy Python thread does to SQLite writes on another, row by row or many a statement.

Python's sqlite3 lets go of the GIL around every step of a statement and must take it back
after. With another thread running Python, taking it back waits out that thread's switch
interval, so ``executemany`` (a step per row) crawls while a sync decodes and builds rows on
other threads. Measured here on a plain table with two indexes, each way idle and beside a
thread that runs Python without pause (the worst case; a daemon's other threads also wait):

    python -m bench.gilwait --rows 20000
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from peernode.daemon import SWITCH_INTERVAL_S
from peernode.db import insert_many

HEAD = "INSERT INTO t (author, rid, title, n)"


def _rows(count: int) -> list[tuple[Any, ...]]:
    return [(os.urandom(32), f"r{n:07d}", f"Judul buku nomor {n}", n) for n in range(count)]


def _executemany(conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    conn.executemany(f"{HEAD} VALUES (?, ?, ?, ?)", rows)


def _insert_many(conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    insert_many(conn, HEAD, rows)


WAYS: dict[str, Callable[[sqlite3.Connection, Sequence[tuple[Any, ...]]], None]] = {
    "`executemany`, a statement a row": _executemany,
    "`db.insert_many`, up to 2,000 parameters a statement": _insert_many,
}


def seconds(way: str, rows: list[tuple[Any, ...]], busy: bool, interval: float) -> float:
    """Write ``rows`` on a thread of their own, while the main thread spins if ``busy``."""
    stop = threading.Event()
    took: list[float] = []

    def write() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            conn = sqlite3.connect(Path(tmp) / "t.db", isolation_level=None)
            conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, author, rid, title, n)")
            conn.execute("CREATE UNIQUE INDEX t_key ON t (author, rid)")
            conn.execute("CREATE INDEX t_title ON t (title)")
            started = time.perf_counter()
            conn.execute("BEGIN")
            WAYS[way](conn, rows)
            conn.execute("COMMIT")
            took.append(time.perf_counter() - started)
            conn.close()
        stop.set()

    before = sys.getswitchinterval()
    sys.setswitchinterval(interval)
    try:
        writer = threading.Thread(target=write)
        writer.start()
        spins = 0
        while busy and not stop.is_set():
            spins += sum(range(200))  # Python without pause, as a decoder busy with a message
        writer.join()
    finally:
        sys.setswitchinterval(before)
    return took[0]


def table(count: int) -> list[str]:
    rows = _rows(count)
    lines = [
        f"| {count:,} rows written | switch interval | idle | beside a busy thread | slower |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    default = sys.getswitchinterval()
    for way in WAYS:
        for interval in (default, SWITCH_INTERVAL_S):
            idle = seconds(way, rows, False, interval)
            busy = seconds(way, rows, True, interval)
            slower = busy / idle
            lines.append(
                f"| {way} | {interval * 1000:g} ms | {idle:.3f} s | {busy:.3f} s | {slower:,.1f}x |"
                if slower < 10
                else f"| {way} | {interval * 1000:g} ms | {idle:.3f} s | {busy:.3f} s | "
                f"{slower:,.0f}x |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gilwait", description=__doc__)
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    print("\n".join(table(args.rows)))


if __name__ == "__main__":
    main()
