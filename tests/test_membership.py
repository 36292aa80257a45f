"""Membership across real daemons: trust travels by signed, replicated member statements.

Four libraries: A founds the network; B joins A; C and D join B. A never connects to C or D, so
whatever passes between them goes through B, as signed entries B relays.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from peernode import members
from peernode.cli import cli
from peernode.home import Home, init_home
from protocol import LogKey, decode_entry, node_id, public_bytes, short_id
from protocol.membership import ADMIT, REMOVE

from .nodes import NodeProc, peer, wait_for

MakeNode = Callable[[str], NodeProc]
# Dial only the peers the librarian gave (no gossip-learned ones), so the line stays a line.
ONLY_PINNED = {"PEERNODE_MAX_PEERS": "1"}


def write_books(path: Path, prefix: str, count: int) -> Path:
    books = [{"id": f"{prefix}{n}", "title": f"{prefix} volume {n}"} for n in range(count)]
    path.write_text(json.dumps(books), "utf-8")
    return path


def query(node: NodeProc, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Read the node's SQLite file directly (read-only): cheaper than a CLI run in a wait loop."""
    conn = sqlite3.connect(f"file:{node.home / 'node.db'}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def key_of(node: NodeProc) -> bytes:
    return Home(node.home).public_key


def short(node: NodeProc) -> str:
    return short_id(key_of(node))


def records_by(node: NodeProc, author: NodeProc) -> int:
    rows = query(node, "SELECT count(*) FROM records WHERE author = ?", key_of(author))
    return int(rows[0][0])


def status_of(node: NodeProc, member: NodeProc) -> str | None:
    """``member``'s standing in ``node``'s members table (the daemon keeps it current)."""
    rows = query(node, "SELECT status FROM members WHERE key = ?", key_of(member))
    return str(rows[0][0]) if rows else None


def test_statements_materialise_replicate_and_fold_in_the_store(tmp_path: Path) -> None:
    a, b = (
        init_home(tmp_path / n, name=n, isil="", contact="", listen="127.0.0.1:1") for n in "AB"
    )
    c = public_bytes(Ed25519PrivateKey.generate())
    a_store, b_store = a.open_store(), b.open_store()
    assert members.load(a_store).founders == {a.public_key}  # init alone founds a network
    members.sign(a_store, a.key, ADMIT, b.public_key, "B")
    members.sign(a_store, a.key, ADMIT, c, "C")
    assert members.load(a_store).current == {a.public_key, b.public_key, c}

    # B joins A's network: it adopts A's founders, then receives A's log through the sync door.
    assert members.is_fresh(b_store)
    members.adopt_founders(b_store, [a.public_key])
    key = LogKey(a.public_key, "members")
    raws = a_store.entry_raws(key, 1, 10, 1 << 20)
    b_store.apply(key, [decode_entry(raw, now_ms=None) for raw in raws])
    trust = members.TrustView(b_store)
    assert trust(a.public_key) and trust(c) and trust(b.public_key)
    members.save(b_store)  # what the daemon does after applying statements
    status = dict(b_store.conn.execute("SELECT key, status FROM members"))
    assert status[c] == "member"  # the table the daemon's queries (search) read

    # B is no admin and did not admit C: the CLI will not sign a removal that would not count.
    runner = CliRunner()
    refused = runner.invoke(cli, ["--home", str(b.path), "member", "remove", node_id(c)])
    assert refused.exit_code == 1 and "only an admin" in refused.output
    founder = runner.invoke(cli, ["--home", str(b.path), "member", "remove", node_id(a.public_key)])
    assert "founders cannot be removed" in founder.output
    members.sign(a_store, a.key, REMOVE, c, "C", reason="closed")
    b_store.apply(key, [decode_entry(a_store.entry_raws(key, 3, 3, 1 << 20)[0], now_ms=None)])
    assert not trust(c)
    members.block(b_store.conn, a.public_key, "testing")
    assert not members.TrustView(b_store)(a.public_key)
    assert not members.is_fresh(b_store)


@pytest.mark.slow
def test_a_line_of_libraries_shares_members_removals_and_revocations(
    make_node: MakeNode, tmp_path: Path
) -> None:
    a, b, c, d = (make_node(f"Library {x}") for x in "ABCD")
    for node in (a, b, c, d):
        node.start(env=ONLY_PINNED)
    a.cli("catalog", "import", str(write_books(tmp_path / "a.json", "Alpha", 5)))
    peer(a, b)
    peer(b, c)
    peer(b, d)

    # A's records reach C through B: C trusts A because the statements say A is a member.
    wait_for(lambda: records_by(c, a) == 5, 30, "A's records to reach C through B")
    wait_for(lambda: status_of(a, c) == "member", 20, "A to see C admitted (by B)")
    rows = {r["name"]: r for r in json.loads(c.cli("member", "list", "--json").stdout)}
    assert rows["Library A"]["founder"] and rows["Library A"]["status"] == "member"
    assert rows["Library A"]["role"] == "admin"
    assert {"Library A", "Library C"} <= set(rows["Library B"]["admitted_by"])  # mutual
    assert rows["Library C"]["admitted_by"] == ["Library B"] and rows["Library C"]["self"]
    assert "connected to Library C" not in a.log() and "connected to Library D" not in a.log()

    # A, an admin, removes C: the statement travels through B, which then refuses C.
    a.cli("member", "remove", node_id(key_of(c)), "--reason", "left the network")
    wait_for(lambda: status_of(b, c) == "removed", 20, "B to learn of C's removal")
    wait_for(lambda: status_of(d, c) == "removed", 20, "D to learn of C's removal through B")
    c.cli("catalog", "import", str(write_books(tmp_path / "c.json", "Gamma", 3)))
    wait_for(
        lambda: f"rejected from {short(c)}: not-member" in b.log(),
        30,
        "B to refuse C's session, naming C",
    )
    assert records_by(b, c) == 0 and records_by(a, c) == 0

    # D declares its key stolen: every member stops trusting it, even A, which never met D.
    d.cli("catalog", "import", str(write_books(tmp_path / "d.json", "Delta", 2)))
    wait_for(lambda: records_by(a, d) == 2, 30, "D's records to reach A")
    d.cli("key", "revoke", "--yes", "--reason", "PC stolen")
    wait_for(lambda: status_of(a, d) == "revoked", 20, "A to learn that D revoked its key")
    wait_for(lambda: status_of(b, d) == "revoked", 20, "B to learn that D revoked its key")
    d.cli("catalog", "import", str(write_books(tmp_path / "d2.json", "Epsilon", 2)))
    wait_for(
        lambda: f"rejected from {short(d)}: not-member" in b.log(),
        30,
        "B to refuse the revoked key's sessions",
    )
    assert query(b, "SELECT count(*) FROM records WHERE title LIKE 'Epsilon%'")[0][0] == 0
    listed = {r["name"]: r for r in json.loads(a.cli("member", "list", "--json").stdout)}
    assert (
        listed["Library D"]["status"] == "revoked" and listed["Library D"]["reason"] == "PC stolen"
    )
    assert listed["Library C"]["status"] == "removed"


@pytest.mark.slow
def test_a_blocked_key_is_refused_at_the_handshake(make_node: MakeNode, tmp_path: Path) -> None:
    a, b = make_node("Library A"), make_node("Library B")
    for node in (a, b):
        node.start()
    peer(a, b)
    a.cli("catalog", "import", str(write_books(tmp_path / "one.json", "First", 2)))
    wait_for(lambda: records_by(b, a) == 2, 30, "A's records to reach B")

    b.cli("block", "add", node_id(key_of(a)), "--reason", "testing")
    assert short(a) in b.cli("block", "list").stdout
    a.cli("catalog", "import", str(write_books(tmp_path / "two.json", "Second", 3)))
    wait_for(
        lambda: f"rejected from {short(a)}: blocked" in b.log(),
        30,
        "B to refuse A at the handshake with a 'blocked' error naming A",
    )
    assert records_by(b, a) == 2
    assert query(b, "SELECT count(*) FROM rejections WHERE reason = 'blocked'")[0][0] >= 1
    assert json.loads(b.cli("search", "First", "--json").stdout) == []  # hidden while blocked

    b.cli("block", "remove", node_id(key_of(a)))
    wait_for(lambda: records_by(b, a) == 5, 60, "B to sync with A again once unblocked")
