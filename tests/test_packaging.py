"""The built wheel is the whole program: `pip install` of it gives a working `peernode`."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .nodes import ROOT

pytestmark = pytest.mark.slow


def test_the_wheel_carries_code_templates_and_the_command(tmp_path: Path) -> None:
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    [wheel] = tmp_path.glob("peernode-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "peernode/webui/templates/search.html" in names
    assert "peernode/webui/static/style.css" in names
    assert "peernode/webui/translations/id/LC_MESSAGES/messages.po" in names
    assert "protocol/session.py" in names and "peernode/importers/marc.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "peernode = peernode.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()

    target = tmp_path / "site"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    # Run from outside the source tree, so only the installed copy can be imported.
    env = {**os.environ, "PYTHONPATH": str(target)}
    home = tmp_path / "home"
    for args in (["init", "--name", "Perpustakaan Wheel"], ["status", "--json"]):
        result = subprocess.run(
            [sys.executable, "-m", "peernode", "--home", str(home), *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env=env,
        )
        assert result.returncode == 0, result.stderr
    assert "Perpustakaan Wheel" in result.stdout
