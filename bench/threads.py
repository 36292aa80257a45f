"""Where the CPU of both daemons goes during one replication, thread by thread.

Copies a node that holds the records (the replication scenario's A), makes a fresh B, joins them
and, once B holds every record, reads each thread's CPU time from /proc (Linux) before the
daemons stop. On a 2-core machine the sum over both daemons against 2 x the wall time says how
much room is left; one thread near 100% of the wall is the bound:

    python -m bench.threads bench-data/nodes-100000/a
    python -m bench.threads bench-data/nodes-1000000/a --native   # B's database thread, sampled
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from peernode.home import init_home

from . import sampling
from .daemons import count, daemons, free_port, join_and_wait
from .idle import cpu_seconds
from .sampling import Samples, kinds, sampled

DATABASE_THREAD = "peernode-db"


@dataclass(frozen=True)
class ThreadTime:
    daemon: str
    thread: str
    seconds: float


def thread_times(daemon: str, pid: int) -> list[ThreadTime]:
    """CPU seconds (user + system) of each live thread of ``pid``, by thread name."""
    totals: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        totals[name] = totals.get(name, 0.0) + cpu_seconds(stat)
    return [ThreadTime(daemon, name, s) for name, s in sorted(totals.items())]


@dataclass
class Profile:
    wall: float
    records: int
    spent: list[ThreadTime]
    database: Counter[str] | None  # B's database thread, sampled (bench/sampling.py)
    error: str = ""  # why it was not sampled


def profile(source: Path, timeout: float, native: bool = False) -> Profile:
    with tempfile.TemporaryDirectory() as tmp:
        a = Path(tmp) / "a"
        shutil.copytree(source, a)  # listens where the scenario's A did: a free port then
        b = Path(tmp) / "b"
        init_home(b, name="Profile B", isil="", contact="", listen=f"127.0.0.1:{free_port()}")
        records = count(a)
        with daemons(a, b, settle=1.5) as procs:
            pids = {"A": procs[0].pid, "B": procs[1].pid}
            before = [t for n, pid in pids.items() for t in thread_times(n, pid)]
            with sampled(pids["B"]) if native else nullcontext(Samples()) as samples:
                wall = join_and_wait(a, b, records, timeout)
                after = [t for n, pid in pids.items() for t in thread_times(n, pid)]
    start = {(t.daemon, t.thread): t.seconds for t in before}
    spent = [
        ThreadTime(t.daemon, t.thread, t.seconds - start.get((t.daemon, t.thread), 0.0))
        for t in after
    ]
    database = kinds(samples.raw, DATABASE_THREAD) if samples.raw is not None else None
    return Profile(wall, records, spent, database, samples.error)


def table(source: Path, timeout: float = 1800) -> list[str]:
    """Markdown: the replication's rate, then each thread's CPU against the wall time."""
    found = profile(source, timeout)
    wall, records, spent = found.wall, found.records, found.spent
    lines = [
        f"{records:,} records in {wall:.2f} s ({records / wall:,.0f} rec/s), from the join "
        "command to the last record:",
        "",
        "| daemon | thread | CPU seconds | share of the wall |",
        "| --- | --- | ---: | ---: |",
    ]
    for t in sorted(spent, key=lambda t: -t.seconds):
        if t.seconds >= 0.01:
            lines.append(f"| {t.daemon} | {t.thread} | {t.seconds:.2f} | {t.seconds / wall:.0%} |")
    total = sum(t.seconds for t in spent)
    cores = os.cpu_count() or 1
    lines += [
        "",
        f"All threads together: {total:.2f} CPU seconds of {cores} cores x {wall:.2f} s "
        f"({total / wall / cores:.0%}).",
    ]
    return lines


def database_table(source: Path, timeout: float = 1800) -> list[str]:
    """Markdown: what B's database thread was doing during a replication, sampled."""
    found = profile(source, timeout, native=True)
    if found.database is None:
        return [f"(not sampled: {found.error})"]
    return [
        f"{found.records:,} records in {found.wall:.2f} s; B's `{DATABASE_THREAD}` thread, "
        f"sampled {sampling.RATE_HZ} times a second:",
        "",
        *sampling.table(found.database),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="a node home that holds the records (A)")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument(
        "--native",
        action="store_true",
        help="instead: sample B's database thread with py-spy, down to SQLite's system calls",
    )
    args = parser.parse_args()
    made = database_table if args.native else table
    print("\n".join(made(args.source, args.timeout)))


if __name__ == "__main__":
    main()
