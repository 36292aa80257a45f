"""New records rows are indexed by the store's upsert (peernode/rowindex.py), not by triggers:
search_fts, record_isbns and serial_records must hold exactly what the records table implies,
whatever order and repetition the ops of a hostile entry come in."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peernode import db as dbmod
from peernode.search import search
from peernode.store import Store
from protocol import CATALOG, Entry, LogKey, public_bytes, sign_entry


def _store(tmp_path: Path) -> Store:
    return Store(dbmod.connect(tmp_path / "node.db"), b"\x00" * 32)


def _entries(key: Ed25519PrivateKey, bodies: list[list[list[object]]]) -> list[Entry]:
    out: list[Entry] = []
    for ops in bodies:
        out.append(
            sign_entry(
                key,
                log="catalog",
                seq=len(out) + 1,
                prev=out[-1].hash if out else None,
                timestamp=1_700_000_000_000 + len(out),
                kind=CATALOG,
                body={"ops": ops},
            )
        )
    return out


def _indexed_docids(conn: sqlite3.Connection, author: bytes) -> list[int]:
    """Every search_fts docid of ``author``: each row carries its library's facet token."""
    token = "l" + author.hex().upper()[:16]
    return [r for (r,) in conn.execute("SELECT rowid FROM search_fts(?)", (token,))]


def _expected_docids(conn: sqlite3.Connection, author: bytes) -> list[int]:
    rows = conn.execute("SELECT id, title FROM records WHERE author = ?", (author,))
    return sorted((min(len(title), 1023) << 40) | rid for rid, title in rows)


def _side_tables(conn: sqlite3.Connection) -> tuple[list[tuple[str, str]], list[str]]:
    isbns = conn.execute("SELECT isbn, rid FROM record_isbns ORDER BY 1, 2").fetchall()
    serials = [r for (r,) in conn.execute("SELECT rid FROM serial_records ORDER BY 1")]
    return isbns, serials


def test_new_rows_are_indexed_in_every_table(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    author = public_bytes(key)
    store = _store(tmp_path)
    ops: list[list[object]] = [
        ["put", f"r{n}", {"title": "x" * (50 - n) + f" kapal{n}", "isbn": [f"978000000{n:04d}"]}]
        for n in range(40)
    ]
    ops.append(["put", "s1", {"title": "Majalah Ilmiah", "issn": ["0126-0979"]}])
    result = store.apply(LogKey(author, "catalog"), _entries(key, [ops]))
    assert result.error is None and result.applied == 1
    conn = store.conn
    assert _indexed_docids(conn, author) == _expected_docids(conn, author)
    assert [h.title for h in search(conn, "kapal7")] == ["x" * 43 + " kapal7"]
    isbns, serials = _side_tables(conn)
    assert len(isbns) == 40 and ("9780000000007", "r7") in isbns
    assert serials == ["s1"]
    conn.execute("INSERT INTO search_fts (search_fts) VALUES ('integrity-check')")


def test_a_record_put_twice_in_one_entry_is_indexed_once_as_its_last_put(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    author = public_bytes(key)
    store = _store(tmp_path)
    entries = _entries(
        key,
        [
            [
                ["put", "a", {"title": "Sejarah Ambon", "isbn": ["9786020000001"]}],
                ["put", "b", {"title": "Hikayat Tanah Hitu"}],
                ["put", "a", {"title": "Sejarah Maluku panjang", "isbn": ["9786020000002"]}],
            ],
            [["del", "b"], ["put", "b", {"title": "Hikayat Banda"}], ["del", "a"]],
        ],
    )
    log = LogKey(author, "catalog")
    assert store.apply(log, entries[:1]).error is None
    conn = store.conn
    # The first put fixed the id (op order), the last one the values.
    assert conn.execute("SELECT rid, title FROM records ORDER BY id").fetchall() == [
        ("a", "Sejarah Maluku panjang"),
        ("b", "Hikayat Tanah Hitu"),
    ]
    assert _indexed_docids(conn, author) == _expected_docids(conn, author)
    assert search(conn, "ambon") == []
    assert [h.title for h in search(conn, "maluku")] == ["Sejarah Maluku panjang"]
    assert _side_tables(conn)[0] == [("9786020000002", "a")]
    # Deleting and putting again, then deleting, leaves no stray postings behind.
    assert store.apply(log, entries[1:]).error is None
    assert _indexed_docids(conn, author) == _expected_docids(conn, author)
    assert [h.title for h in search(conn, "hikayat")] == ["Hikayat Banda"]
    assert search(conn, "maluku") == [] and search(conn, "tanah") == []
    assert _side_tables(conn) == ([], [])
    conn.execute("INSERT INTO search_fts (search_fts) VALUES ('integrity-check')")


def test_an_edit_reindexes_through_the_update_trigger(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    author = public_bytes(key)
    store = _store(tmp_path)
    entries = _entries(
        key,
        [
            [["put", "a", {"title": "Perahu", "isbn": ["9786020000001"]}]],
            [["put", "a", {"title": "Perahu layar Nusantara", "issn": ["0126-0979"]}]],
        ],
    )
    assert store.apply(LogKey(author, "catalog"), entries).error is None
    conn = store.conn
    assert _indexed_docids(conn, author) == _expected_docids(conn, author)
    assert [h.title for h in search(conn, "layar")] == ["Perahu layar Nusantara"]
    assert _side_tables(conn) == ([], ["a"])
