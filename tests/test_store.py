"""The replica store: own appends, applying a peer's entries, forks, search, migrations."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
import sqlite_utils
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peernode import db as dbmod
from peernode.check import check_store
from peernode.records import BibRecord
from peernode.search import fts_query, search
from peernode.store import ForkDetected, Store
from protocol import CATALOG, PROFILE, ChainError, Entry, LogKey, public_bytes, sign_entry


def make_store(tmp_path: Path, name: str = "node") -> tuple[Store, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    return Store(dbmod.connect(tmp_path / f"{name}.db"), public_bytes(key)), key


def put(rid: str, title: str, **fields: object) -> list[object]:
    return ["put", rid, {"title": title, **fields}]


def chain(
    key: Ed25519PrivateKey, bodies: list[dict[str, object]], log: str = "catalog"
) -> list[Entry]:
    out: list[Entry] = []
    for body in bodies:
        out.append(
            sign_entry(
                key,
                log=log,
                seq=len(out) + 1,
                prev=out[-1].hash if out else None,
                timestamp=1_700_000_000_000,
                kind=CATALOG,
                body=body,
            )
        )
    return out


def test_own_append_materializes_and_is_searchable(tmp_path: Path) -> None:
    store, key = make_store(tmp_path)
    store.append(key, "profile", PROFILE, {"name": "Perpustakaan Ambon"})
    store.append(
        key, "catalog", CATALOG, {"ops": [put("r1", "Sejarah Maluku", authors=["Rumphius"])]}
    )
    store.append(key, "catalog", CATALOG, {"ops": [put("r2", "Botanical materia medica")]})
    heads = store.heads()
    assert heads[LogKey(public_bytes(key), "catalog")].seq == 2
    hits = search(store.conn, "maluku")
    assert [h.title for h in hits] == ["Sejarah Maluku"]
    assert hits[0].holdings[0].library == "Perpustakaan Ambon"
    assert check_store(store).ok


def test_apply_in_order_counts_duplicates_and_stops_at_gaps(tmp_path: Path) -> None:
    store, _ = make_store(tmp_path)
    author = Ed25519PrivateKey.generate()
    entries = chain(author, [{"ops": [put(f"r{i}", f"Title {i}")]} for i in range(5)])
    key = LogKey(public_bytes(author), "catalog")
    # 4 and 5 arrive before 3 (a reordering link): 1-2 apply, the rest waits.
    result = store.apply(key, [entries[0], entries[1], entries[3], entries[4]])
    assert (result.applied, result.head and result.head.seq) == (2, 2)
    result = store.apply(key, entries)
    assert (result.applied, result.duplicates) == (3, 2)
    assert store.counter("entries_duplicate") == 2
    assert store.conn.execute("SELECT count(*) FROM records").fetchone()[0] == 5


def test_wrong_previous_hash_is_a_chain_error_and_changes_nothing(tmp_path: Path) -> None:
    store, _ = make_store(tmp_path)
    author = Ed25519PrivateKey.generate()
    good = chain(author, [{"ops": [put("a", "A")]}, {"ops": [put("b", "B")]}])
    other = chain(author, [{"ops": [put("x", "X")]}, {"ops": [put("y", "Y")]}])
    key = LogKey(public_bytes(author), "catalog")
    store.apply(key, good[:1])
    result = store.apply(key, [other[1]])  # seq 2 pointing at a different seq 1
    assert isinstance(result.error, ChainError)
    assert result.applied == 0
    assert [r[0] for r in store.conn.execute("SELECT rid FROM records")] == ["a"]


def test_fork_is_proved_stored_and_freezes_the_log(tmp_path: Path) -> None:
    store, _ = make_store(tmp_path)
    author = Ed25519PrivateKey.generate()
    first = chain(author, [{"ops": [put("a", "A")]}, {"ops": [put("b", "B")]}])
    second = chain(author, [{"ops": [put("a", "A")]}, {"ops": [put("c", "C")]}])
    key = LogKey(public_bytes(author), "catalog")
    assert store.apply(key, first).applied == 2
    result = store.apply(key, [second[1]])
    assert isinstance(result.error, ForkDetected)
    a, b = result.error.proof.verify()
    assert (a.seq, b.seq) == (2, 2) and a.hash != b.hash
    assert len(store.forks()) == 1
    third = chain(
        author, [{"ops": [put("a", "A")]}, {"ops": [put("b", "B")]}, {"ops": [put("d", "D")]}]
    )
    assert store.apply(key, [third[2]]).applied == 0  # frozen at the fork


def test_same_isbn_from_two_libraries_is_one_hit_with_two_holdings(tmp_path: Path) -> None:
    store, key = make_store(tmp_path)
    store.append(key, "profile", PROFILE, {"name": "Library A"})
    other = Ed25519PrivateKey.generate()
    profile = sign_entry(
        other,
        log="profile",
        seq=1,
        prev=None,
        timestamp=1,
        kind=PROFILE,
        body={"name": "Library B"},
    )
    store.apply(LogKey(public_bytes(other), "profile"), [profile])
    isbn = BibRecord("x", "t", isbn=("9780596001087",)).isbn[0]
    store.append(key, "catalog", CATALOG, {"ops": [put("1", "Learning Python", isbn=[isbn])]})
    theirs = chain(other, [{"ops": [put("77", "Learning Python.", isbn=[isbn])]}])
    store.apply(LogKey(public_bytes(other), "catalog"), theirs)
    hits = search(store.conn, "0-596-00108-8")  # ISBN-10 with hyphens finds the ISBN-13
    assert len(hits) == 1
    assert sorted(h.library for h in hits[0].holdings) == ["Library A", "Library B"]


@pytest.mark.parametrize(
    "query", ['"', "*", "NEAR(a b)", "a OR", "-x", "title:foo", "^", "((", "' OR 1=1 --", "\x00"]
)
def test_hostile_queries_never_reach_fts_syntax(tmp_path: Path, query: str) -> None:
    store, key = make_store(tmp_path)
    store.append(key, "catalog", CATALOG, {"ops": [put("1", "foo bar")]})
    search(store.conn, query)  # must not raise sqlite3.OperationalError
    expression = fts_query(query)
    # Every part is a quoted string, after column names taken from search.py's fixed table.
    parts = [] if expression is None else expression.split(" AND ")
    assert all(re.match(r'(\{[a-z ]+\}|[a-z]+) : \(?"', p) for p in parts), parts


def test_newer_schema_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    dbmod.connect(path).conn.close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {dbmod.SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(dbmod.DatabaseError, match="newer peernode"):
        dbmod.connect(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == dbmod.SCHEMA_VERSION + 1
    conn.close()


def test_check_finds_a_corrupted_entry(tmp_path: Path) -> None:
    store, key = make_store(tmp_path)
    entry = store.append(key, "catalog", CATALOG, {"ops": [put("1", "Judul")]})
    flipped = bytearray(entry.raw)
    flipped[len(flipped) // 2] ^= 0x01
    store.conn.execute("UPDATE entries SET raw = ?", (bytes(flipped),))
    report = check_store(store)
    assert not report.ok
    assert "catalog#1" in report.problems[0]


def test_every_earlier_schema_migrates_with_its_data(tmp_path: Path) -> None:
    for version in range(1, dbmod.SCHEMA_VERSION):
        path = tmp_path / f"v{version}.db"
        conn = sqlite3.connect(path, isolation_level=None)
        db = sqlite_utils.Database(conn)
        for migration in dbmod.MIGRATIONS[:version]:
            migration(db)
        conn.execute(f"PRAGMA user_version = {version}")
        conn.execute(
            "INSERT INTO peers (key, name, address, added_at) VALUES (?, 'Lama', NULL, 1)",
            (b"\x07" * 32,),
        )
        conn.close()
        migrated = dbmod.connect(path)
        assert migrated.execute("PRAGMA user_version").fetchone()[0] == dbmod.SCHEMA_VERSION
        assert migrated.execute("SELECT name FROM peers").fetchall() == [("Lama",)]
        assert migrated.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        migrated.conn.close()


def test_a_sync_writes_as_a_bulk_load_but_our_own_entries_stay_durable(tmp_path: Path) -> None:
    """While records stream in (``start_bulk_load``) commits skip the fsync and the cache grows;
    our own entries are still committed with synchronous=FULL, and the end of the sync puts
    everything back, with the rows applied meanwhile all there."""
    store, key = make_store(tmp_path)
    peer = Ed25519PrivateKey.generate()

    def setting(name: str) -> int:
        return int(store.conn.execute(f"PRAGMA {name}").fetchone()[0])

    cache, checkpoint = setting("cache_size"), setting("wal_autocheckpoint")
    assert setting("synchronous") == 2  # FULL
    store.start_bulk_load()
    assert setting("synchronous") == 1 and setting("cache_size") < cache  # NORMAL, KiB
    entries = chain(peer, [{"ops": [put(f"r{n}", f"Buku {n}")]} for n in range(3)])
    results = store.apply_many([(LogKey(public_bytes(peer), "catalog"), entries)])
    assert results[0].applied == 3 and results[0].error is None
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    store.append(key, "catalog", CATALOG, {"ops": [put("own", "Milik kami")]})
    store.conn.set_trace_callback(None)
    begin = statements.index("BEGIN IMMEDIATE")
    assert "PRAGMA synchronous = FULL" in statements[:begin]  # the commit waits for the disk
    assert statements[-1] == "PRAGMA synchronous = NORMAL"  # and the sync goes on without
    store.end_bulk_load()
    assert (setting("synchronous"), setting("cache_size")) == (2, cache)
    assert setting("wal_autocheckpoint") == checkpoint
    assert store.conn.execute("SELECT count(*) FROM records").fetchone()[0] == 4


def test_the_sync_cache_is_a_setting(tmp_path: Path) -> None:
    from dataclasses import replace

    from peernode.home import HomeError, init_home

    home = init_home(tmp_path / "n", name="N", isil="", contact="", listen="127.0.0.1:1")
    home.save_config(replace(home.config, sync_cache_mb=8))
    store = home.open_store()
    store.start_bulk_load()
    assert store.conn.execute("PRAGMA cache_size").fetchone()[0] == -8 * 1024
    store.end_bulk_load()
    home.save_config(replace(home.config, sync_cache_mb=1))
    with pytest.raises(HomeError, match="sync_cache_mb"):
        home.open_store()
