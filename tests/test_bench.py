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
    rows = [
        line for line in result.stdout.splitlines() if line.startswith("| ") and "---" not in line
    ]
    names = [row.split(" | ")[0] for row in rows[1:]]
    assert len(names) == 4 and any("replication" in n for n in names), rows
    for row in rows[1:]:
        rate = float(row.split(" | ")[1].replace(",", ""))
        assert rate > 0, row
