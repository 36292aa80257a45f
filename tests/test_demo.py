"""`make demo` is the README's first command: it must build a converged three-library network."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .nodes import ROOT

pytestmark = pytest.mark.slow


def test_demo_converges_and_prints_addresses(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "peernode.demo", "--check", "--dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("http://127.0.0.1:") == 3
    assert "Perpustakaan Umum Kota Ambon" in result.stdout
