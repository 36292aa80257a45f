"""Offline bundles: verified like the wire, incremental, and carried across nodes."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from peernode.bundles import (
    export_bundle,
    import_bundle,
    read_frontier,
    write_frontier,
)
from peernode.catalog import import_catalog
from peernode.check import check_store
from peernode.search import search

from .nodes import BOOKS, SHARED_DATA, NodeProc, peer, trusting, wait_for
from .nodes import offline_home as node

SLIMS = SHARED_DATA / "slims" / "sampledata.sql"
MakeNode = Callable[[str], NodeProc]


def test_a_bundle_round_trip_applies_everything_once(tmp_path: Path) -> None:
    a, b = node(tmp_path, "a"), node(tmp_path, "b")
    a_store, b_store = a.open_store(), b.open_store()
    import_catalog(a_store, a.key, SLIMS)
    summary = export_bundle(a_store, tmp_path / "a.pnb", {})
    # profile + one catalogue batch + its checkpoint
    assert summary.entries == 3 and summary.logs == 2
    result = import_bundle(b_store, tmp_path / "a.pnb", trusting(b, a))
    assert (result.applied, result.duplicates, result.rejected) == (3, 0, [])
    assert search(b_store.conn, "corruption")[0].holdings[0].library == "a"
    again = import_bundle(b_store, tmp_path / "a.pnb", trusting(b, a))
    assert (again.applied, again.duplicates) == (0, 3)
    assert check_store(b_store).ok


def test_entries_of_a_library_that_is_not_a_peer_are_refused(tmp_path: Path) -> None:
    a, b = node(tmp_path, "a"), node(tmp_path, "b")
    import_catalog(a.open_store(), a.key, SLIMS)
    export_bundle(a.open_store(), tmp_path / "a.pnb", {})
    store = b.open_store()
    result = import_bundle(store, tmp_path / "a.pnb", trusting(b))
    assert result.applied == 0 and len(result.rejected) == 2
    assert all("untrusted" in line and "peer add" in line for line in result.rejected)
    assert store.conn.execute("SELECT count(*) FROM records").fetchone()[0] == 0


def test_a_tampered_entry_is_rejected_and_the_rest_applies(tmp_path: Path) -> None:
    a, b = node(tmp_path, "a"), node(tmp_path, "b")
    import_catalog(a.open_store(), a.key, SLIMS)
    export_bundle(a.open_store(), tmp_path / "a.pnb", {})
    data = bytearray(gzip.decompress((tmp_path / "a.pnb").read_bytes()))
    at = data.index(b"Corruption")  # inside the catalogue entry, behind its signature
    data[at] ^= 0x20
    (tmp_path / "bad.pnb").write_bytes(gzip.compress(bytes(data)))
    store = b.open_store()
    result = import_bundle(store, tmp_path / "bad.pnb", trusting(b, a))
    assert result.applied == 1  # the profile entry
    assert len(result.rejected) == 1 and "signature" in result.rejected[0]
    assert store.conn.execute("SELECT count(*) FROM records").fetchone()[0] == 0
    assert store.conn.execute("SELECT count(*) FROM rejections").fetchone()[0] == 1


def test_a_bundle_cut_short_keeps_what_verified_and_says_so(tmp_path: Path) -> None:
    a, b = node(tmp_path, "a"), node(tmp_path, "b")
    import_catalog(a.open_store(), a.key, BOOKS)
    export_bundle(a.open_store(), tmp_path / "a.pnb", {})
    data = (tmp_path / "a.pnb").read_bytes()
    (tmp_path / "cut.pnb").write_bytes(data[: len(data) // 2])
    store = b.open_store()
    result = import_bundle(store, tmp_path / "cut.pnb", trusting(b, a))
    assert not result.complete and result.rejected
    assert 0 < result.applied < 11
    assert check_store(store).ok


def test_since_a_frontier_exports_only_what_is_new(tmp_path: Path) -> None:
    a, b = node(tmp_path, "a"), node(tmp_path, "b")
    a_store, b_store = a.open_store(), b.open_store()
    import_catalog(a_store, a.key, SLIMS)
    export_bundle(a_store, tmp_path / "first.pnb", {})
    import_bundle(b_store, tmp_path / "first.pnb", trusting(b, a))
    write_frontier(b_store, tmp_path / "b.frontier")
    records = json.loads(BOOKS.read_text("utf-8"))[:50]
    (tmp_path / "more.json").write_text(json.dumps(records), "utf-8")
    import_catalog(a_store, a.key, tmp_path / "more.json")
    summary = export_bundle(
        a_store, tmp_path / "second.pnb", read_frontier(tmp_path / "b.frontier")
    )
    assert summary.entries == 2  # the new catalogue batch and its checkpoint only
    result = import_bundle(b_store, tmp_path / "second.pnb", trusting(b, a))
    assert (result.applied, result.duplicates) == (2, 0)


@pytest.mark.slow
def test_a_bundle_carried_across_three_nodes_two_never_connect(make_node: MakeNode) -> None:
    """A has no link. Its bundle reaches B by hand; B, online, passes it on to C."""
    a, b, c = make_node("Library A"), make_node("Library B"), make_node("Library C")
    a.cli("catalog", "import", str(SLIMS))
    a_id = a.status()["node_id"]
    bundle = a.home.parent / "a-to-b.pnb"
    a.cli("bundle", "export", str(bundle))
    for far in (b, c):
        far.cli("peer", "add", a_id, "--name", "Library A")
    b.start()
    c.start()
    peer(b, c)
    out = b.cli("bundle", "import", str(bundle)).stdout
    assert "3 new" in out  # profile, catalogue batch, checkpoint
    wait_for(lambda: bool(c.search("corruption")), 30, "A's records to reach C through B")
    hits = c.search("corruption")
    assert any(h["node_id"] == a_id for hit in hits for h in hit["holdings"])
    assert "Library A" not in json.dumps(a.status()["peers"])  # A never met anyone

    # C knows from syncing what B holds: a bundle "for B" leaves that out.
    c.stop()  # the session's last word on B's holdings is saved when it ends
    full = c.cli("bundle", "export", str(bundle.with_name("all.pnb"))).stdout
    b_id = b.status()["node_id"]
    for_b = c.cli("bundle", "export", str(bundle.with_name("b.pnb")), "--for", b_id).stdout
    assert int(for_b.split()[1]) < int(full.split()[1]), (for_b, full)
    typo = a_id[:-1] + ("A" if a_id[-1] != "A" else "B")
    result = c.cli("peer", "add", typo, check=False)
    assert result.returncode == 1 and "check character" in result.stderr
