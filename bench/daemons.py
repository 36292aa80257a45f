"""Running peernode's own CLI and daemons for a benchmark: the helpers every scenario shares."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cli(home: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "peernode", "--home", str(home), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if result.returncode != 0:
        sys.exit(f"peernode {' '.join(args)} failed: {result.stderr}")
    return result.stdout


def count(home: Path) -> int:
    conn = sqlite3.connect(f"file:{home / 'node.db'}?mode=ro", uri=True, timeout=10)
    try:
        return int(conn.execute("SELECT count(*) FROM records").fetchone()[0])
    finally:
        conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def daemons(*homes: Path, settle: float = 0.0) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``peernode run`` for each home, given ``settle`` seconds to bind their sockets; stopped
    (and waited for) on the way out."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "peernode", "--home", str(home), "run"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for home in homes
    ]
    try:
        time.sleep(settle)
        yield procs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)


def heads(home: Path) -> dict[tuple[bytes, str], int]:
    """The seq of every log ``home`` holds, by (author, log): a few rows, read in well under
    a millisecond."""
    conn = sqlite3.connect(f"file:{home / 'node.db'}?mode=ro", uri=True, timeout=10)
    try:
        return {
            (author, log): seq
            for author, log, seq in conn.execute("SELECT author, log, seq FROM heads")
        }
    finally:
        conn.close()


def holds(b: Path, target: dict[tuple[bytes, str], int]) -> bool:
    """Whether ``b`` holds every log of ``target`` at least as far."""
    held = heads(b)
    return all(held.get(key, 0) >= seq for key, seq in target.items())


def join_and_wait(a: Path, b: Path, records: int, timeout: float) -> float:
    """B joins A by invitation, as a librarian would; seconds from the join command until B
    holds every log of A's as far as A does, and so all ``records`` records.

    Done is read from B's heads, written in the transaction that stores the entries; counting
    the records instead costs a scan (milliseconds at 100,000 records, tens at a million)
    that, every 50 ms, would take a share of the cores the daemons are measured on."""
    target = heads(a)
    code = cli(a, "peer", "invite").strip().splitlines()[-1]
    started = time.perf_counter()
    cli(b, "peer", "join", code)
    while not holds(b, target):
        if time.perf_counter() - started > timeout:
            sys.exit(f"replication did not finish in {timeout} s ({count(b)} of {records})")
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    if count(b) != records:
        sys.exit(f"B holds {count(b)} records once it holds A's logs, not {records}")
    return seconds
