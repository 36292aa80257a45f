"""The node's web page renders another library's catalogue data inert."""

from __future__ import annotations

import csv
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from .nodes import NodeProc

MakeNode = Callable[[str], NodeProc]
pytestmark = pytest.mark.slow

HOSTILE = [
    "<script>alert('judul')</script>",
    '"><img src=x onerror=alert(1)>',
    "Buku \u202etxt.exe",
]


def test_hostile_titles_are_escaped_and_scripts_forbidden(
    make_node: MakeNode, tmp_path: Path
) -> None:
    node = make_node("Library A")
    path = tmp_path / "hostile.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["id", "title", "author"])
        for number, title in enumerate(HOSTILE):
            writer.writerow([f"h{number}", title, "<b>Penulis</b>"])
    node.cli("catalog", "import", str(path))
    node.start()
    for query in ("script", "onerror", "Buku"):
        url = f"http://{node.address}/?q={urllib.parse.quote(query)}"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read().decode("utf-8")
            csp = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp
        assert "<script>alert" not in body and "<img src=x" not in body and "<b>Penulis" not in body
        assert "&lt;script&gt;" in body or "&lt;img" in body or "Buku" in body
