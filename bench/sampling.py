"""What one thread of a running daemon does, down to the C library: py-spy samples, sorted.

py-spy (a dev dependency) samples the Python and native stacks of a process from outside; it
pauses the process for each sample, so a sampled run is a little slower. ``sampled(pid)``
records while the caller's block runs; ``kinds`` sorts the samples of one thread by what its
stack was doing: writing or reading database pages (the ``pwrite``/``pread`` system calls
SQLite makes), moving the WAL into the database file, SQLite's own B-tree work, waiting for
the GIL, or Python. It needs the right to trace the process (root, or ptrace allowed); where
py-spy cannot attach, ``Samples.error`` says why.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

RATE_HZ = 100
RAW_TO = ("-f", "raw", "-o")


@dataclass
class Samples:
    raw: Path | None = None  # py-spy's collapsed stacks, once it stopped
    error: str = ""


@contextmanager
def sampled(pid: int) -> Iterator[Samples]:
    found = Samples()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out = Path(tempfile.mkdtemp()) / "stacks.txt"
    try:
        proc = subprocess.Popen(
            [
                spy,
                "record",
                "-p",
                str(pid),
                "-r",
                str(RATE_HZ),
                "--threads",
                "--native",
                *RAW_TO,
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
    except OSError as exc:
        found.error = f"py-spy not found ({exc})"
        yield found
        return
    try:
        yield found
    finally:
        proc.send_signal(signal.SIGINT)  # py-spy writes what it has and exits
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            err = "py-spy did not stop"
        if out.exists() and out.stat().st_size:
            found.raw = out
        else:
            found.error = err.strip().splitlines()[-1] if err.strip() else "no samples"


# What a stack was doing, by the frames in it; the first that matches wins.
KINDS = [
    ("moving the WAL into the database file (checkpoint)", ("sqlite3WalCheckpoint",)),
    ("writing pages (pwrite: commits, cache spills)", ("pwrite",)),
    ("reading pages the cache did not hold (pread)", ("pread",)),
    ("waiting for the disk (fsync)", ("fsync", "fdatasync")),
    ("SQLite's own work (B-trees, FTS5, SQL)", ("sqlite3_step", "sqlite3VdbeExec")),
    # Python's sqlite3 takes the GIL back after each step: a wait on a condition there.
    ("waiting for the GIL", ("pthread_cond_timedwait", "take_gil")),
]
PYTHON = "Python: building statements, binding values, glue"


def kinds(raw: Path, thread: str) -> Counter[str]:
    """Samples of the thread named ``thread``, by what its stack was doing (``KINDS``)."""
    counts: Counter[str] = Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, number = line.rpartition(" ")
        frames = stack.split(";")
        if not frames or thread not in frames[0]:
            continue
        kind = next(
            (name for name, marks in KINDS if any(m in f for f in frames for m in marks)), PYTHON
        )
        counts[kind] += int(number)
    return counts


def table(counts: Counter[str]) -> list[str]:
    total = sum(counts.values()) or 1
    lines = ["| what the thread was doing | samples | share |", "| --- | ---: | ---: |"]
    for name in [name for name, _ in KINDS] + [PYTHON]:
        lines.append(f"| {name} | {counts[name]:,} | {counts[name] / total:.0%} |")
    return lines
