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
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    tables = _tables(result.stdout)
    rates, bootstrap = tables[0], tables[1]
    names = [row[0] for row in rates]
    assert len(names) == 4 and any("replication" in n for n in names), rates
    for row in rates:
        assert float(row[1].replace(",", "")) > 0, row
    # Starting from a snapshot vs replaying: both measured, beside the raw insert.
    assert [row[0] for row in bootstrap][:2] == ["replay every entry (bundle)", "snapshot"]
    assert all(float(row[1]) > 0 for row in bootstrap), bootstrap


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
