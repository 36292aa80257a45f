"""Publishing our own catalogue: only differences travel, and a damaged file deletes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from peernode.catalog import import_catalog
from peernode.home import Home, init_home
from peernode.importers import ImportFileError

from .nodes import BOOKS


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return init_home(
        tmp_path / "node", name="Perpustakaan Uji", isil="", contact="", listen="127.0.0.1:1"
    )


def write(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text(json.dumps(records), "utf-8")
    return path


def sample(n: int = 20) -> list[dict[str, object]]:
    records: list[dict[str, object]] = json.loads(BOOKS.read_text("utf-8"))[:n]
    return records


def test_reimport_publishes_only_differences(home: Home, tmp_path: Path) -> None:
    store = home.open_store()
    records = sample()
    first = import_catalog(store, home.key, write(tmp_path / "cat.json", records))
    assert (first.added, first.entries) == (20, 1)
    again = import_catalog(store, home.key, write(tmp_path / "cat.json", records))
    assert (again.unchanged, again.entries) == (20, 0)  # nothing changed, nothing signed

    records[3] = {**records[3], "title": "Judul yang diperbaiki"}
    del records[7]
    changed = import_catalog(store, home.key, write(tmp_path / "cat.json", records))
    assert (changed.added, changed.changed, changed.deleted, changed.entries) == (0, 1, 1, 1)
    assert store.conn.execute("SELECT count(*) FROM records").fetchone()[0] == 19


def test_another_source_does_not_delete_this_one(home: Home, tmp_path: Path) -> None:
    store = home.open_store()
    import_catalog(store, home.key, write(tmp_path / "a.json", sample(10)))
    other = [{**r, "id": f"x{r['id']}"} for r in sample(5)]
    summary = import_catalog(store, home.key, write(tmp_path / "b.json", other))
    assert (summary.added, summary.deleted) == (5, 0)
    assert store.conn.execute("SELECT count(*) FROM records").fetchone()[0] == 15


def test_a_truncated_file_deletes_nothing(home: Home, tmp_path: Path) -> None:
    store = home.open_store()
    path = write(tmp_path / "cat.json", sample())
    import_catalog(store, home.key, path)
    text = path.read_text("utf-8")
    path.write_text(text[: len(text) // 2], "utf-8")  # cut mid-record, as a failed copy would
    summary = import_catalog(store, home.key, path)
    assert summary.deletions_skipped
    assert summary.deleted == 0
    assert any(r.stopped for r in summary.rejected)
    assert store.conn.execute("SELECT count(*) FROM records").fetchone()[0] == 20


def test_unreadable_file_publishes_nothing(home: Home, tmp_path: Path) -> None:
    store = home.open_store()
    with pytest.raises(ImportFileError, match=r"missing\.json"):
        import_catalog(store, home.key, tmp_path / "missing.json")
    assert (
        store.conn.execute("SELECT count(*) FROM entries WHERE log = 'catalog'").fetchone()[0] == 0
    )
