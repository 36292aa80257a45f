"""Snapshots: a new node starts from each catalogue's signed checkpoint, never from a forgery."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import msgpack
import pytest

from peernode.bundles import export_bundle, import_bundle
from peernode.catalog import CATALOG_LOG, import_catalog
from peernode.check import check_store
from peernode.home import Home
from peernode.snapshots import SnapshotError, export_snapshot, import_snapshot
from peernode.store import OwnHeadUnconfirmed, Store
from protocol import CATALOG, CHECKPOINT, DecodeError, Head, LogKey
from protocol.encoding import pack
from protocol.messages import Frontier, decode_message, encode_message
from protocol.snapshots import STATE_CONTEXT, check_record, state_digest

from .nodes import BOOKS, SHARED_DATA, NodeProc, peer, trusting, wait_for
from .nodes import offline_home as node

SLIMS = SHARED_DATA / "slims" / "sampledata.sql"
MakeNode = Callable[[str], NodeProc]


def catalogue(tmp_path: Path, name: str, records: list[dict[str, object]]) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(records), "utf-8")
    return path


def history(tmp_path: Path, home: Home, rounds: int = 3, size: int = 300) -> Store:
    """A library that re-imported its catalogue ``rounds`` times, editing a third each time."""
    store = home.open_store()
    records = json.loads(BOOKS.read_text("utf-8"))[:size]
    for round_ in range(rounds):
        for index, record in enumerate(records):
            if index % 3 == round_ % 3:
                record["title"] = f"{record['title']} (rev. {round_})"
        import_catalog(store, home.key, catalogue(tmp_path, "cat.json", records[: size - round_]))
    return store


def rows(store: Store, author: bytes) -> list[tuple[str, bytes]]:
    return store.conn.execute(
        "SELECT rid, digest FROM records WHERE author = ? ORDER BY rid", (author,)
    ).fetchall()


def test_a_snapshot_gives_the_same_catalogue_as_replaying_its_history(tmp_path: Path) -> None:
    a, b, c = node(tmp_path, "a"), node(tmp_path, "b"), node(tmp_path, "c")
    a_store = history(tmp_path, a)
    snap = export_snapshot(a_store, tmp_path / "a.pns")
    full = export_bundle(a_store, tmp_path / "a.pnb", {})
    assert snap.records == 298 and snap.logs == 2 and not snap.skipped
    assert snap.bytes < full.bytes  # the state, not three rounds of edits

    b_store = b.open_store()
    loaded = import_snapshot(b_store, tmp_path / "a.pns", trusting(b, a))
    assert loaded.complete and not loaded.skipped and loaded.records == 298
    c_store = c.open_store()
    import_bundle(c_store, tmp_path / "a.pnb", trusting(c, a))  # the long way round

    assert rows(b_store, a.public_key) == rows(c_store, a.public_key) == rows(a_store, a.public_key)
    key = LogKey(a.public_key, CATALOG_LOG)
    assert b_store.head(key) == a_store.head(key) == c_store.head(key)
    assert b_store.bases() == {key: a_store.head(key).seq}  # type: ignore[union-attr]
    assert check_store(b_store).ok and check_store(c_store).ok
    # Replay checked every checkpoint it passed against what it had built.
    assert c_store.counter("checkpoint_mismatch") == 0


def test_changes_after_the_last_checkpoint_travel_as_entries(tmp_path: Path) -> None:
    a, b = node(tmp_path, "a"), node(tmp_path, "b")
    a_store = history(tmp_path, a, rounds=2)
    first_rid = rows(a_store, a.public_key)[0][0]
    a_store.append(a.key, CATALOG_LOG, CATALOG, {"ops": [["del", first_rid]]})
    a_store.append(a.key, CATALOG_LOG, CATALOG, {"ops": [["put", "new-1", {"title": "Baru"}]]})
    snap = export_snapshot(a_store, tmp_path / "a.pns")
    assert snap.entries == 1 + 2  # the profile, and the two edits after the checkpoint
    b_store = b.open_store()
    import_snapshot(b_store, tmp_path / "a.pns", trusting(b, a))
    assert rows(b_store, a.public_key) == rows(a_store, a.public_key)
    assert first_rid not in dict(rows(b_store, a.public_key))
    assert check_store(b_store).ok


def test_a_node_started_from_a_snapshot_serves_a_snapshot_of_its_own(tmp_path: Path) -> None:
    a, b, c = node(tmp_path, "a"), node(tmp_path, "b"), node(tmp_path, "c")
    a_store = history(tmp_path, a, rounds=2)
    export_snapshot(a_store, tmp_path / "a.pns")
    b_store = b.open_store()
    import_snapshot(b_store, tmp_path / "a.pns", trusting(b, a))
    again = export_snapshot(b_store, tmp_path / "b.pns")
    assert not again.skipped
    c_store = c.open_store()
    import_snapshot(c_store, tmp_path / "b.pns", trusting(c, a))
    assert rows(c_store, a.public_key) == rows(a_store, a.public_key)


def rewrite(path: Path, out: Path, change: Callable[[list[object]], None]) -> None:
    with gzip.open(path) as handle:
        values = list(msgpack.Unpacker(handle, raw=False))
    change(values)
    out.write_bytes(gzip.compress(b"".join(msgpack.packb(v, use_bin_type=True) for v in values)))


def test_an_altered_record_leaves_that_catalogue_out_whole(tmp_path: Path) -> None:
    a, b = node(tmp_path, "a"), node(tmp_path, "b")
    a_store = history(tmp_path, a, rounds=1, size=50)
    export_snapshot(a_store, tmp_path / "a.pns")

    def swap_title(values: list[object]) -> None:
        for index, value in enumerate(values):
            if isinstance(value, bytes) and b"Botanical" in value:
                rid, record = msgpack.unpackb(value, raw=False)
                record["title"] = "Forged"
                values[index] = msgpack.packb([rid, dict(sorted(record.items()))])
                return
        raise AssertionError("no record to alter")

    rewrite(tmp_path / "a.pns", tmp_path / "bad.pns", swap_title)
    b_store = b.open_store()
    result = import_snapshot(b_store, tmp_path / "bad.pns", trusting(b, a))
    assert any("do not match the author's checkpoint" in line for line in result.skipped)
    assert rows(b_store, a.public_key) == []  # nothing half-loaded
    assert b_store.head(LogKey(a.public_key, CATALOG_LOG)) is None
    reasons = [r for (r,) in b_store.conn.execute("SELECT reason FROM rejections")]
    assert reasons == ["snapshot"]
    assert check_store(b_store).ok


def test_records_out_of_order_or_not_canonical_are_refused(tmp_path: Path) -> None:
    a, b = node(tmp_path, "a"), node(tmp_path, "b")
    a_store = history(tmp_path, a, rounds=1, size=20)
    export_snapshot(a_store, tmp_path / "a.pns")

    def swap_two(values: list[object]) -> None:
        first = next(i for i, v in enumerate(values) if isinstance(v, bytes) and b"Botanical" in v)
        values[first], values[first + 1] = values[first + 1], values[first]

    rewrite(tmp_path / "a.pns", tmp_path / "order.pns", swap_two)
    result = import_snapshot(b.open_store(), tmp_path / "order.pns", trusting(b, a))
    assert any("out of order" in line for line in result.skipped), result.skipped


def test_a_cut_file_loads_nothing_of_the_log_it_cut(tmp_path: Path) -> None:
    a, b = node(tmp_path, "a"), node(tmp_path, "b")
    a_store = history(tmp_path, a, rounds=1, size=300)
    export_snapshot(a_store, tmp_path / "a.pns")
    raw = gzip.decompress((tmp_path / "a.pns").read_bytes())
    (tmp_path / "cut.pns").write_bytes(gzip.compress(raw[: len(raw) * 2 // 3]))
    b_store = b.open_store()
    result = import_snapshot(b_store, tmp_path / "cut.pns", trusting(b, a))
    assert not result.complete
    assert rows(b_store, a.public_key) == []
    assert check_store(b_store).ok
    with pytest.raises(SnapshotError, match="not a peernode snapshot"):
        import_snapshot(b_store, SLIMS, trusting(b, a))


def test_a_library_that_is_not_a_peer_is_left_out(tmp_path: Path) -> None:
    a, b = node(tmp_path, "a"), node(tmp_path, "b")
    export_snapshot(history(tmp_path, a, rounds=1, size=10), tmp_path / "a.pns")
    b_store = b.open_store()
    result = import_snapshot(b_store, tmp_path / "a.pns", trusting(b))
    assert len(result.skipped) == 2 and all("not a peer" in s for s in result.skipped)
    assert rows(b_store, a.public_key) == []


def test_every_import_ends_with_a_checkpoint_of_the_whole_catalogue(tmp_path: Path) -> None:
    a = node(tmp_path, "a")
    store = history(tmp_path, a, rounds=1, size=30)
    key = LogKey(a.public_key, CATALOG_LOG)
    (kind,) = store.conn.execute(
        "SELECT kind FROM entries WHERE author = ? AND log = ? ORDER BY seq DESC LIMIT 1",
        (key.author, key.log),
    ).fetchone()
    assert kind == CHECKPOINT
    assert store.state_of(a.public_key) == state_digest(rows(store, a.public_key))
    assert store.state_of(a.public_key)[0] == 30
    head = store.head(key)
    unchanged = import_catalog(store, a.key, tmp_path / "cat.json")
    assert unchanged.entries == 0 and unchanged.checkpoint is None
    assert store.head(key) == head  # nothing changed, nothing signed


@pytest.mark.slow
def test_a_new_library_starts_from_a_snapshot_and_syncs_only_what_is_newer(
    make_node: MakeNode,
) -> None:
    """A's catalogue on a USB stick starts C; C then syncs with A over the wire."""
    a, c = make_node("Library A"), make_node("Library C")
    a.cli("catalog", "import", str(SLIMS))
    records = json.loads(BOOKS.read_text("utf-8"))[:200]
    path = a.home.parent / "books.json"
    path.write_text(json.dumps(records), "utf-8")
    a.cli("catalog", "import", str(path), "--source", "books")
    snap = a.home.parent / "a.pns"
    a.cli("snapshot", "export", str(snap))
    a_id = a.status()["node_id"]
    c.cli("peer", "add", a_id, "--name", "Library A")
    out = c.cli("snapshot", "import", str(snap)).stdout
    assert "loaded" in out and "left out" not in out, out
    assert c.records() == a.records()

    a.start()
    c.start()
    peer(a, c)
    path.write_text(json.dumps(records[:150]), "utf-8")  # 50 withdrawn
    a.cli("catalog", "import", str(path), "--source", "books")
    wait_for(lambda: c.records() == a.records(), 30, "A's withdrawals to reach C")
    assert c.cli("check").returncode == 0

    # D joins through C, which holds A's catalogue only from the checkpoint on and says so:
    # D fetches that history from a node that has it (A, found by peer exchange), never a
    # gapped log from C.
    d = make_node("Library D")
    d.start()
    peer(c, d)
    wait_for(lambda: d.records() == a.records(), 60, "A's catalogue to reach D")
    assert d.cli("check").returncode == 0


def test_a_frontier_says_where_a_log_held_from_a_snapshot_begins() -> None:
    key, other = LogKey(b"\x01" * 32, "catalog"), LogKey(b"\x02" * 32, "profile")
    msg = Frontier(((key, Head(7, b"\x03" * 32)), (other, Head(1, b"\x04" * 32))), ((key, 5),))
    assert decode_message(encode_message(msg)) == msg
    # A base past the head it qualifies makes no sense: refused, not believed.
    bad = Frontier(((key, Head(7, b"\x03" * 32)),), ((key, 8),))
    with pytest.raises(DecodeError, match="past its head"):
        decode_message(encode_message(bad))


def test_the_state_digest_vectors_in_the_protocol_doc() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text("utf-8")
    block = doc.split("<!-- snapshot-vectors -->", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    vectors = json.loads(block)
    assert bytes.fromhex(vectors["state_context"]) == STATE_CONTEXT
    pairs = []
    for item in vectors["records"]:
        blob = pack([item["id"], item["record"]])
        assert blob.hex() == item["encoded"]
        assert check_record(blob) == (item["id"], item["record"])
        assert hashlib.sha256(blob).hexdigest() == item["digest"]
        pairs.append((item["id"], bytes.fromhex(item["digest"])))
    count, state = state_digest(sorted(pairs, key=lambda p: p[0].encode()))
    body = vectors["checkpoint_body"]
    assert (count, state.hex()) == (body["records"], body["state"])
    with pytest.raises(DecodeError, match="out of order"):
        state_digest(pairs)  # given in the wrong order


def test_our_own_catalogue_from_a_snapshot_signs_nothing_until_a_sync(tmp_path: Path) -> None:
    """A library that lost its database gets its own catalogue back from a partner's snapshot:
    the copy may be older than what it signed, so signing waits for a sync (no self-fork)."""
    a, b = node(tmp_path, "a"), node(tmp_path, "b")
    a_store = history(tmp_path, a, rounds=1, size=20)
    b_store = b.open_store()
    export_snapshot(a_store, tmp_path / "a.pns")
    import_snapshot(b_store, tmp_path / "a.pns", trusting(b, a))
    export_snapshot(b_store, tmp_path / "from-b.pns")
    a_store.conn.close()
    (tmp_path / "a" / "node.db").unlink()
    lost = a.open_store()
    import_snapshot(lost, tmp_path / "from-b.pns", trusting(a, b))
    assert rows(lost, a.public_key) == rows(b_store, a.public_key)
    assert lost.restored_note() is not None
    edited = catalogue(tmp_path, "cat.json", [{"id": "x1", "title": "Baru"}])
    with pytest.raises(OwnHeadUnconfirmed):
        import_catalog(lost, a.key, edited)
