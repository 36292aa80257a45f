"""Where the CPU of both daemons goes during one replication, thread by thread.

Copies a node that holds the records (the replication scenario's A), makes a fresh B, joins them
and, once B holds every record, reads each thread's CPU time from /proc (Linux) before the
daemons stop. On a 2-core machine the sum over both daemons against 2 x the wall time says how
much room is left; one thread near 100% of the wall is the bound:

    python -m bench.threads bench-data/nodes-100000/a
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from peernode.home import init_home

from .run import ROOT, cli, count, free_port


@dataclass(frozen=True)
class ThreadTime:
    daemon: str
    thread: str
    seconds: float


def thread_times(daemon: str, pid: int) -> list[ThreadTime]:
    """CPU seconds (user + system) of each live thread of ``pid``, by thread name."""
    tick = os.sysconf("SC_CLK_TCK")
    totals: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        seconds = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        totals[name] = totals.get(name, 0.0) + seconds
    return [ThreadTime(daemon, name, s) for name, s in sorted(totals.items())]


def profile(source: Path, timeout: float) -> tuple[float, int, list[ThreadTime]]:
    with tempfile.TemporaryDirectory() as tmp:
        a = Path(tmp) / "a"
        shutil.copytree(source, a)  # listens where the scenario's A did: a free port then
        b = Path(tmp) / "b"
        init_home(b, name="Profile B", isil="", contact="", listen=f"127.0.0.1:{free_port()}")
        records = count(a)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        procs = {
            name: subprocess.Popen(
                [sys.executable, "-m", "peernode", "--home", str(home), "run"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=ROOT,
                env=env,
            )
            for name, home in (("A", a), ("B", b))
        }
        try:
            time.sleep(1.5)
            before = {n: thread_times(n, p.pid) for n, p in procs.items()}
            code = cli(a, "peer", "invite").strip().splitlines()[-1]
            started = time.perf_counter()
            cli(b, "peer", "join", code)
            joined = time.perf_counter() - started
            first = 0.0
            while (held := count(b)) < records:
                if not first and held:
                    first = time.perf_counter() - started
                if time.perf_counter() - started > timeout:
                    sys.exit(f"replication did not finish in {timeout} s")
                time.sleep(0.05)
            wall = time.perf_counter() - started
            print(f"join command {joined:.2f} s, first record at {first:.2f} s")
            after = [t for n, p in procs.items() for t in thread_times(n, p.pid)]
        finally:
            for proc in procs.values():
                proc.terminate()
            for proc in procs.values():
                proc.wait(timeout=15)
    start = {(t.daemon, t.thread): t.seconds for ts in before.values() for t in ts}
    spent = [
        ThreadTime(t.daemon, t.thread, t.seconds - start.get((t.daemon, t.thread), 0.0))
        for t in after
    ]
    return wall, records, spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="a node home that holds the records (A)")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    wall, records, spent = profile(args.source, args.timeout)
    print(f"{records:,} records in {wall:.2f} s ({records / wall:,.0f} rec/s)\n")
    print("| daemon | thread | CPU seconds | share of the wall |")
    print("| --- | --- | ---: | ---: |")
    for t in sorted(spent, key=lambda t: -t.seconds):
        if t.seconds >= 0.01:
            print(f"| {t.daemon} | {t.thread} | {t.seconds:.2f} | {t.seconds / wall:.0%} |")
    total = sum(t.seconds for t in spent)
    cores = os.cpu_count() or 1
    print(
        f"\nall threads: {total:.2f} CPU s of {cores} x {wall:.2f} s ({total / wall / cores:.0%})"
    )


if __name__ == "__main__":
    main()
