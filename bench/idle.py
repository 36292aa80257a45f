"""RSS and CPU of an idle daemon holding the replicated catalogue, its peer connected.

Read from /proc: resident memory (VmRSS, and the peak VmHWM) at the end, and user+system CPU
seconds over the idle window, after the daemon has settled (connected, caught up).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from .daemons import daemons

SETTLE_SECONDS = 10.0


@dataclass
class Idle:
    records: int
    seconds: float
    cpu_seconds: float
    rss_mib: float
    peak_mib: float

    @property
    def cpu_share(self) -> float:
        return self.cpu_seconds / self.seconds


def cpu_seconds(stat: str) -> float:
    """User + system CPU seconds from the text of a /proc/<pid>/stat (or task/<tid>/stat)."""
    fields = stat.rsplit(")", 1)[1].split()  # the name, in parentheses, may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _cpu_seconds(pid: int) -> float:
    return cpu_seconds(Path(f"/proc/{pid}/stat").read_text())


def _memory_mib(pid: int) -> tuple[float, float]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def peak_mib(pid: int) -> int | None:
    """A running process's peak resident memory (VmHWM), or None where /proc has no answer."""
    try:
        return round(_memory_mib(pid)[1])
    except (OSError, KeyError):
        return None


def measure(watched: Path, peer: Path, records: int, seconds: float) -> Idle:
    """``watched`` and ``peer``: homes in sync. Runs both daemons, measures ``watched``."""
    with daemons(watched, peer) as (proc, _):
        time.sleep(SETTLE_SECONDS)
        cpu_before = _cpu_seconds(proc.pid)
        started = time.perf_counter()
        time.sleep(seconds)
        cpu = _cpu_seconds(proc.pid) - cpu_before
        elapsed = time.perf_counter() - started
        rss, peak = _memory_mib(proc.pid)
    return Idle(records, elapsed, cpu, rss, peak)
