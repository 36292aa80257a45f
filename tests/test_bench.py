"""`make bench` in quick mode, so the harness cannot rot between benchmark runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .nodes import ROOT

pytestmark = pytest.mark.slow


def test_quick_bench_measures_every_figure_beside_its_baseline(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--no-write", "--work", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    tables = {_first_cell(t): t for t in _tables(result.stdout)}
    # 1. Replication beside both raw SQLite ceilings and PouchDB (or why PouchDB was not run).
    rates = tables["raw SQLite executemany, same rows, no index"]
    names = [row[0] for row in rates]
    assert any("A→B replication" in n for n in names), rates
    assert any("PouchDB" in n for n in names), rates
    for row in rates:
        if row[1] not in ("", "—"):  # "—": a figure not measured, and the row says why
            assert float(row[1].replace(",", "")) > 0, row
    # 2. Resync: peernode's bytes were counted at the socket, beside the changed bytes.
    resync = tables["**peernode**"]
    assert int(resync[0][1].replace(",", "")) > 0, resync
    assert resync[0][2].endswith("x"), resync
    # 5. MARC import beside pymarc's bare parse; 6. the idle daemon's memory and CPU.
    marc = tables["pymarc MARCReader, parse only (baseline)"]
    assert len(marc) == 2 and float(marc[1][1].replace(",", "")) > 0, marc
    idle = tables["resident memory (VmRSS)"]
    assert float(idle[0][1].split()[0]) > 0, idle
    # Starting from a snapshot vs replaying: both measured, beside the raw insert.
    bootstrap = tables["replay every entry (bundle)"]
    assert [row[0] for row in bootstrap][:2] == ["replay every entry (bundle)", "snapshot"]
    assert all(float(row[1]) > 0 for row in bootstrap[:2]), bootstrap


def _first_cell(table: list[list[str]]) -> str:
    return table[0][0] if table and table[0] else ""


def _tables(text: str) -> list[list[list[str]]]:
    """The markdown tables in ``text``: rows of cells, header and rule left out."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] | None = None
    for line in text.splitlines():
        if not line.startswith("| "):
            current = None
            continue
        if current is None:
            current = []
            tables.append(current)
            continue  # the header
        if "---" not in line:
            current.append([cell.strip() for cell in line.strip("| ").split(" | ")])
    return tables
