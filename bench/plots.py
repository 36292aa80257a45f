"""The figures of docs/benchmarks.md as PNG: replication rates, and mesh propagation percentiles.

The propagation plot is read back from the mesh table in the document itself, so it matches
the table whether the mesh section was re-run or kept from an earlier full run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt

if TYPE_CHECKING:
    from .run import SizeRun


def replication(path: Path, sizes: list[SizeRun], dry: bool) -> None:
    """Records/s of each way of moving the catalogue, one group of bars per catalogue size."""
    if dry or not sizes:
        return
    from .pouch import PouchRun

    labels = ["raw SQLite,\nno index", "raw SQLite,\nschema's indexes", "peernode\nreplication"]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    width = 0.8 / len(sizes)
    for index, size in enumerate(sizes):
        plain, fts, _, replicated = size.figures
        rates = [plain.rate, fts.rate, replicated.rate]
        names = list(labels)
        for run in size.pouch:
            if isinstance(run, PouchRun) and run.rate:
                names.append(f"PouchDB\n{run.adapter}")
                rates.append(run.rate)
        xs = [i + index * width for i in range(len(rates))]
        bars = ax.bar(xs, rates, width, label=f"{size.records:,} records")
        ax.bar_label(bars, labels=[f"{r:,.0f}" for r in rates], fontsize=7, rotation=90)
        if index == 0 or len(names) > len(ax.get_xticks()):
            ax.set_xticks([i + width * (len(sizes) - 1) / 2 for i in range(len(names))], names)
    ax.set_yscale("log")
    ax.set_ylabel("records per second (log)")
    ax.set_title("Replicating a catalogue: peernode beside its ceilings and PouchDB")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


_ROW = re.compile(r"^\| (\d+) \| [\d.]+ \| [\d.]+ \| (\d+) ms \| (\d+) ms \| (\d+) ms \|")


def propagation(doc: Path, path: Path) -> None:
    """p50, p99 and max arrival per mesh size, beside the one-second goal."""
    rows = [_ROW.match(line) for line in doc.read_text("utf-8").splitlines()]
    points = [(int(m[1]), int(m[2]), int(m[3]), int(m[4])) for m in rows if m]
    if not points:
        return
    fig, ax = plt.subplots(figsize=(6, 3.6))
    sizes = [p[0] for p in points]
    for column, label in ((1, "p50"), (2, "p99"), (3, "max")):
        ax.plot(sizes, [p[column] for p in points], marker="o", label=label)
    ax.axhline(1000, color="grey", linestyle="--", label="goal: p99 < 1 s")
    ax.set_xlabel("nodes in the mesh")
    ax.set_ylabel("ms until a node holds a new entry")
    ax.set_title("Propagation of one new entry")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
