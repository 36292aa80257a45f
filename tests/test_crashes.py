"""kill -9 loops: the receiving daemon is killed at random moments of a large sync, and restarted.

At the end its replica is whole (SQLite's integrity check, every signature and hash chain
re-verified by `peernode check`), holds exactly what the sender holds, and was sent nothing twice.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .nodes import BOOKS, NodeProc, peer, wait_for

MakeNode = Callable[[str], NodeProc]
pytestmark = pytest.mark.slow

KILLS = 3
RECORDS = 30_000  # several transactions: a sync groups what arrives while one is written


def entry_counts(node: NodeProc) -> tuple[int, int]:
    """(entries, records) straight from the file, daemon or not."""
    conn = sqlite3.connect(f"file:{node.home / 'node.db'}?mode=ro", uri=True, timeout=10)
    try:
        entries = int(conn.execute("SELECT count(*) FROM entries").fetchone()[0])
        records = int(conn.execute("SELECT count(*) FROM records").fetchone()[0])
        return entries, records
    finally:
        conn.close()


def progressed(node: NodeProc, before: int) -> Callable[[], bool]:
    return lambda: node.records() > before


def test_kill_9_again_and_again_during_a_sync(make_node: MakeNode, tmp_path: Path) -> None:
    rng = random.Random(1234)  # the moments vary with the machine's speed, the plan does not
    a, b = make_node("Library A"), make_node("Library B")
    big = tmp_path / "big.jsonl"
    books = json.loads(BOOKS.read_text("utf-8"))
    with big.open("w", encoding="utf-8") as out:
        for copy in range(RECORDS // len(books)):
            for record in books:
                out.write(json.dumps({**record, "id": f"{record['id']}-{copy}"}) + "\n")
    a.cli("catalog", "import", str(big))
    a.start()
    b.start()
    peer(a, b)
    kills: list[int] = []
    for _ in range(KILLS):
        before = b.records()
        if before >= RECORDS:
            break
        # Wait for some progress in this run, then kill at a random moment after it.
        wait_for(progressed(b, before), 60, "B to make progress", step=0.01)
        time.sleep(rng.uniform(0.0, 0.2))
        b.kill9()
        kills.append(b.records())
        b.start()
    assert kills and min(kills) < RECORDS, "the sync finished before any kill: use more records"
    wait_for(lambda: b.records() >= RECORDS, 120, "B to converge after the kills")
    a_entries, a_records = entry_counts(a)
    wait_for(lambda: entry_counts(b)[0] >= a_entries, 30, "B to hold every entry A holds")
    assert entry_counts(b) == (a_entries, a_records)
    status = b.status()
    assert status["duplicates_received"] == 0, status  # nothing committed was sent again
    assert status["rejected"] == 0 and status["forks"] == 0, status
    b.stop()
    check = b.cli("check", check=False)
    assert check.returncode == 0 and "integrity: ok" in check.stdout, check.stdout
    assert f"entries:   {a_entries} in" in check.stdout
    print(f"records at each kill: {kills}")
