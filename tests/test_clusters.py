"""Clustering: precision and recall on the labelled pairs, and union entries kept incrementally
in a real replica (records arriving, changing, leaving; splits and joins that last)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peernode import clusters
from peernode import db as dbmod
from peernode.cli import cli
from peernode.db import transaction
from peernode.home import init_home
from peernode.matchkeys import edition_number, part_number, record_keys
from peernode.store import Store
from protocol import CATALOG, node_id, public_bytes
from tools.cluster_pairs import PAIRS, evaluate, read_pairs

# Floors under the measured figures (docs/clustering.md): a change that loses more fails here.
PRECISION_FLOOR = 0.93
RECALL_FLOOR = 0.95


def test_precision_and_recall_on_the_labelled_pairs() -> None:
    pairs = read_pairs(PAIRS)
    assert len(pairs) >= 400
    assert {p.label for p in pairs} == {"same", "different"}
    score, _ = evaluate(pairs)
    assert score.precision >= PRECISION_FLOOR, score
    assert score.recall >= RECALL_FLOOR, score


def test_keys_forgive_cataloguing_habits() -> None:
    base = {
        "title": "Producing open source software : how to run a successful free software project",
        "authors": ["Fogel, Karl"],
        "year": 2005,
        "publisher": "O'Reilly",
        "edition": "1st ed.",
        "isbn": ["9780596007591"],
    }
    other = dict(
        base,
        title="PRODUCING OPEN SOURCE SOFTWARE /",
        authors=["Karl Fogel"],
        publisher="OReilly Media",
        edition="First edition",
        isbn=[],
    )
    assert set(record_keys(base)) & set(record_keys(other))
    assert edition_number("Edisi kedua") == edition_number("2nd ed.") == "2"
    assert part_number("Sejarah Maluku. Jilid 3") == "3" and part_number("Part IV") == "4"
    # Volumes of a set carry the set's ISBN, and still stay apart.
    one = dict(base, title="Ensiklopedi Islam. Jilid 1")
    two = dict(base, title="Ensiklopedi Islam. Jilid 2")
    assert not set(record_keys(one)) & set(record_keys(two))
    # A record with a title and nothing else gets no edition key: it links to nothing.
    assert record_keys({"title": "Annual report"}) == []


def put(store: Store, key: Ed25519PrivateKey, *records: tuple[str, dict[str, Any]]) -> None:
    ops = [["put", rid, data] for rid, data in records]
    store.append(key, "catalog", CATALOG, {"ops": ops})


def delete(store: Store, key: Ed25519PrivateKey, rid: str) -> None:
    store.append(key, "catalog", CATALOG, {"ops": [["del", rid]]})


def record_id(store: Store, author: bytes, rid: str) -> int:
    row = store.conn.execute(
        "SELECT id FROM records WHERE author = ? AND rid = ?", (author, rid)
    ).fetchone()
    return int(row[0])


def members(store: Store, author: bytes, rid: str) -> set[str]:
    found = clusters.union_members(store.conn, record_id(store, author, rid))
    return {f"{m.author.hex()[:4]}/{m.rid}" for m in found}


BOOK = {"title": "Laskar pelangi", "authors": ["Hirata, Andrea"], "year": 2005}


def test_union_entries_grow_merge_split_and_survive(tmp_path: Path) -> None:
    keys = [Ed25519PrivateKey.generate() for _ in range(3)]
    a, b, c = (public_bytes(k) for k in keys)
    store = Store(dbmod.connect(tmp_path / "node.db"), a)
    tag = {a: a.hex()[:4], b: b.hex()[:4], c: c.hex()[:4]}

    # A has the book by ISBN-13; B the same edition with an ISBN-10 and no year; C by its
    # edition key alone. Each arrives separately and joins the same union entry.
    put(store, keys[0], ("a1", dict(BOOK, isbn=["9789793062792"], publisher="Bentang")))
    put(store, keys[1], ("b1", {"title": "LASKAR PELANGI /", "isbn": ["9789793062792"]}))
    put(store, keys[2], ("c1", dict(BOOK, publisher="Bentang Pustaka", authors=["Andrea Hirata"])))
    put(
        store,
        keys[2],
        ("c2", {"title": "Sang pemimpi", "authors": ["Hirata, Andrea"], "year": 2006}),
    )
    everyone = {f"{tag[a]}/a1", f"{tag[b]}/b1", f"{tag[c]}/c1"}
    assert members(store, c, "c1") == everyone
    assert members(store, c, "c2") == {f"{tag[c]}/c2"}

    # A record that links two existing entries merges them.
    put(store, keys[1], ("b2", {"title": "Sang pemimpi", "isbn": ["9789793062808"]}))
    put(store, keys[0], ("a2", dict(BOOK, title="Sang pemimpi", year=2006, isbn=["9789793062808"])))
    assert members(store, a, "a2") == {f"{tag[a]}/a2", f"{tag[b]}/b2", f"{tag[c]}/c2"}

    # A wrong merge is split here; it stays split when its library changes the record.
    with transaction(store.conn) as conn:
        clusters.split(conn, record_id(store, c, "c1"))
    assert members(store, c, "c1") == {f"{tag[c]}/c1"}
    assert members(store, a, "a1") == {f"{tag[a]}/a1", f"{tag[b]}/b1"}
    put(store, keys[2], ("c1", dict(BOOK, publisher="Bentang", edition="Cet. 1")))
    assert members(store, c, "c1") == {f"{tag[c]}/c1"}

    # A join by hand links records whose keys differ, and lasts through a delete and re-put.
    put(store, keys[1], ("b3", {"title": "Laskar pelangi (edisi sinema)", "authors": ["Hirata"]}))
    with transaction(store.conn) as conn:
        clusters.join(conn, record_id(store, b, "b3"), record_id(store, a, "a1"))
    assert f"{tag[b]}/b3" in members(store, a, "a1")
    delete(store, keys[1], "b3")
    assert f"{tag[b]}/b3" not in members(store, a, "a1")
    put(store, keys[1], ("b3", {"title": "Laskar pelangi (edisi sinema)", "authors": ["Hirata"]}))
    assert f"{tag[b]}/b3" in members(store, a, "a1")

    # Deleting the record that tied an entry together lets it fall apart again.
    delete(store, keys[0], "a2")
    assert members(store, b, "b2") == {f"{tag[b]}/b2"}
    assert members(store, c, "c2") == {f"{tag[c]}/c2"}

    # Rebuilding from scratch (the migration's path) gives the same union entries.
    before = {rid: members(store, author, rid) for author, rid in _all(store)}
    with transaction(store.conn) as conn:
        clusters.rebuild(conn)
    assert {rid: members(store, author, rid) for author, rid in _all(store)} == before


def _all(store: Store) -> list[tuple[bytes, str]]:
    return [(a, r) for a, r in store.conn.execute("SELECT author, rid FROM records")]


def test_cluster_commands(tmp_path: Path) -> None:
    home = init_home(tmp_path / "n", name="N", isil="", contact="", listen="127.0.0.1:1")
    store = home.open_store()
    other = Ed25519PrivateKey.generate()
    put(store, home.key, ("mine", dict(BOOK, isbn=["9789793062792"])))
    put(store, other, ("theirs", {"title": "Laskar pelangi", "isbn": ["9789793062792"]}))
    put(store, other, ("film", {"title": "Laskar pelangi : the film", "authors": ["Riri Riza"]}))
    store.conn.close()
    run = CliRunner()
    base = ["--home", str(home.path)]
    mine, theirs = f"{node_id(home.public_key)}/mine", f"{node_id(public_bytes(other))}/theirs"
    film = f"{node_id(public_bytes(other))}/film"
    shown = run.invoke(cli, [*base, "cluster", "show", mine])
    assert shown.exit_code == 0 and "2 records" in shown.output and theirs in shown.output
    split = run.invoke(cli, [*base, "cluster", "split", theirs])
    assert split.exit_code == 0, split.output
    assert "1 records" in run.invoke(cli, [*base, "cluster", "show", mine]).output
    undo = run.invoke(cli, [*base, "cluster", "split", theirs, "--undo"])
    assert undo.exit_code == 0
    assert "2 records" in run.invoke(cli, [*base, "cluster", "show", mine]).output
    joined = run.invoke(cli, [*base, "cluster", "join", mine, film])
    assert joined.exit_code == 0, joined.output
    assert "3 records" in run.invoke(cli, [*base, "cluster", "show", film]).output
    missing = run.invoke(cli, [*base, "cluster", "show", "ABCD/nothing"])
    assert missing.exit_code == 1 and "not a node id" in missing.output
    unknown = run.invoke(cli, [*base, "cluster", "show", f"{node_id(home.public_key)}/nope"])
    assert unknown.exit_code == 1 and "holds no record 'nope'" in unknown.output
