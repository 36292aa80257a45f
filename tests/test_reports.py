"""Cooperation reports on a real replica: new acquisitions dated by the entry that first put a
record, the overlap matrix and unique titles checked against a count made independently from
the imported files, the CLI and the bench harness in quick mode."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
from click.testing import CliRunner

from peernode.bundles import export_bundle, import_bundle
from peernode.catalog import CATALOG_LOG, import_catalog
from peernode.cli import cli
from peernode.clusters import CLUSTER_OF
from peernode.home import Home
from peernode.records import match_key
from peernode.reports import DAY_MS, new_acquisitions, overlap, unique_titles
from protocol import CATALOG

from .nodes import BOOKS, ROOT, offline_home, trusting

NAMES = ("Perpustakaan A", "Perpustakaan B", "Perpustakaan C")


def _network(tmp_path: Path) -> tuple[Home, dict[str, list[dict[str, object]]]]:
    """Three libraries holding overlapping slices of the Library of Congress records; A holds
    every catalogue (received in bundles)."""
    books = json.loads(BOOKS.read_text("utf-8"))[:600]
    slices = {
        NAMES[0]: books[:300],
        NAMES[1]: books[200:500],
        NAMES[2]: books[250:260] + books[550:],
    }
    homes = [offline_home(tmp_path, name) for name in NAMES]
    for home, name in zip(homes, NAMES, strict=True):
        path = tmp_path / f"{home.path.name}.json"
        path.write_text(json.dumps(slices[name]), "utf-8")
        import_catalog(home.open_store(), home.key, path)
    a = homes[0]
    for other in homes[1:]:
        export_bundle(other.open_store(), tmp_path / "x.pnb", {})
        result = import_bundle(a.open_store(), tmp_path / "x.pnb", trusting(a, *homes[1:]))
        assert not result.rejected
    return a, slices


def _key(book: dict[str, object]) -> str:
    authors = [str(book["author"]).rstrip(",")] if book.get("author") else []
    return match_key(str(book["title"]).rstrip(" /:,"), authors, None, [])


def test_overlap_and_unique_match_an_independent_count(tmp_path: Path) -> None:
    a, slices = _network(tmp_path)
    conn = a.open_store().conn
    held: dict[str, set[str]] = defaultdict(set)
    for name, books in slices.items():
        for book in books:
            held[name].add(
                str(
                    conn.execute(
                        f"SELECT {CLUSTER_OF} FROM records r "
                        "JOIN libraries l ON l.author = r.author WHERE l.name = ? AND r.rid = ?",
                        (name, str(book["id"])),
                    ).fetchone()[0]
                )
            )
    report = overlap(conn).as_dict(conn)
    rows = {r["library"]: r for r in report["libraries"]}
    ids = {name: rows[name]["node_id"] for name in NAMES}
    for name in NAMES:
        others = set().union(*(held[o] for o in NAMES if o != name))
        assert rows[name]["titles"] == len(held[name])
        assert rows[name]["unique"] == len(held[name] - others)
        for other in NAMES:
            if other != name:
                assert rows[name]["in_common"][ids[other]] == len(held[name] & held[other])
    assert report["union_entries"] == len(set().union(*held.values()))
    assert rows[NAMES[0]]["in_common"][ids[NAMES[1]]] >= 95  # books 200..299, bar duplicates
    # The list of titles only one library holds: C's own are books 550..599.
    only_c = unique_titles(
        conn,
        conn.execute("SELECT author FROM libraries WHERE name = ?", (NAMES[2],)).fetchone()[0],
        limit=1000,
    )
    assert only_c["total"] == len(held[NAMES[2]] - held[NAMES[0]] - held[NAMES[1]])
    assert {t["library"] for t in only_c["titles"]} == {NAMES[2]}
    everyone = unique_titles(conn, None, limit=10, offset=5)
    assert everyone["total"] == sum(r["unique"] for r in rows.values())
    assert len(everyone["titles"]) == 10 and everyone["offset"] == 5


def test_report_commands_print_json_and_text(tmp_path: Path) -> None:
    a, _ = _network(tmp_path)
    runner = CliRunner()
    home = ["--home", str(a.path)]
    data = json.loads(runner.invoke(cli, [*home, "report", "overlap", "--json"]).output)
    assert {r["library"] for r in data["libraries"]} == set(NAMES)
    text = runner.invoke(cli, [*home, "report", "overlap"]).output
    assert "Titles in common" in text and "Perpustakaan B" in text
    result = runner.invoke(cli, [*home, "report", "unique", "--library", "perpustakaan c"])
    assert result.exit_code == 0 and "Titles held by one library only" in result.output
    new = json.loads(runner.invoke(cli, [*home, "report", "new", "--json"]).output)
    assert new["total"] == 300 + 300 + 60
    wrong = runner.invoke(cli, [*home, "report", "new", "--library", "Nowhere"])
    assert wrong.exit_code == 1 and "no library called 'Nowhere'" in wrong.output
    vague = runner.invoke(cli, [*home, "report", "unique", "--library", "Perpustakaan"])
    assert vague.exit_code == 1 and "matches several libraries" in vague.output


def test_new_acquisitions_date_a_record_by_its_first_put(tmp_path: Path) -> None:
    home = offline_home(tmp_path, "Perpustakaan A")
    store = home.open_store()
    now = int(time.time() * 1000)

    def put(rid: str, title: str, days_ago: float) -> None:
        body = {"ops": [["put", rid, {"title": title}]]}
        store.append(home.key, CATALOG_LOG, CATALOG, body, timestamp=int(now - days_ago * DAY_MS))

    put("old", "Bought long ago", 90)
    put("edited", "Bought long ago, edited", 90)
    put("edited", "Bought long ago, edited today", 0)  # an edit: still not new
    put("recent", "Bought last week", 7)
    put("gone", "Withdrawn, then bought again", 90)
    store.append(home.key, CATALOG_LOG, CATALOG, {"ops": [["del", "gone"]]}, timestamp=now)
    put("gone", "Withdrawn, then bought again", 1)
    report = new_acquisitions(store.conn, now, 30)
    assert [r["record_id"] for r in report["records"]] == ["gone", "recent"]
    assert report["total"] == 2 and report["libraries"][0]["added"] == 2
    older = new_acquisitions(store.conn, now, 100)["records"]  # ties: by library, then id
    assert [r["record_id"] for r in older] == ["gone", "recent", "edited", "old"]
    only = new_acquisitions(store.conn, now, 30, author=b"\x00" * 32)
    assert only["total"] == 0 and only["records"] == []


@pytest.mark.slow
def test_quick_bench_measures_every_report_beside_the_bare_group_by(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.reports", "--quick", "--work", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split(" | ") for line in result.stdout.splitlines() if line.startswith("| ")]
    names = [row[0].strip("| ") for row in rows[2:]]
    assert names[0].startswith("bare SQLite") and len(names) == 4
    assert all(float(row[1]) > 0 for row in rows[2:])
