"""The command line as a librarian meets it: set-up, clear errors, and the JSON contracts."""

from __future__ import annotations

import json
import socket
import stat
from collections.abc import Callable
from pathlib import Path

from protocol import parse_node_id

from .nodes import SHARED_DATA, NodeProc

MakeNode = Callable[[str], NodeProc]


def test_init_creates_a_private_key_and_a_readable_node_id(make_node: MakeNode) -> None:
    node = make_node("Perpustakaan Kota")
    key = node.home / "node.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    status = node.status()
    assert parse_node_id(status["node_id"])  # the printed id parses back, check char included
    assert status["name"] == "Perpustakaan Kota"
    assert status["records"] == 0 and status["peers"] == [] and status["daemon_running"] is False
    assert key.read_text() not in node.cli("status").stdout


def test_second_init_is_refused_and_changes_nothing(make_node: MakeNode) -> None:
    node = make_node("Library A")
    before = (node.home / "node.key").read_bytes()
    result = node.cli("init", "--name", "Other", check=False)
    assert result.returncode != 0 and "already holds a node" in result.stderr
    assert (node.home / "node.key").read_bytes() == before


def test_commands_without_a_node_say_how_to_make_one(tmp_path: Path) -> None:
    node = NodeProc(tmp_path / "nothing", "x")
    result = node.cli("status", check=False)
    assert result.returncode == 1
    assert "peernode --home" in result.stderr and "init" in result.stderr
    assert "Traceback" not in result.stderr


def test_world_readable_key_is_refused(make_node: MakeNode) -> None:
    node = make_node("Library A")
    (node.home / "node.key").chmod(0o644)
    result = node.cli(
        "catalog", "import", str(SHARED_DATA / "slims" / "sampledata.sql"), check=False
    )
    assert result.returncode == 1 and "chmod 600" in result.stderr


def test_import_reports_counts_and_rejections_with_positions(make_node: MakeNode) -> None:
    node = make_node("Library A")
    result = node.cli("catalog", "import", str(SHARED_DATA / "marc-pymarc" / "bad_records.mrc"))
    assert "rejected" in result.stdout
    summary = json.loads(
        node.cli(
            "catalog", "import", str(SHARED_DATA / "marc-pymarc" / "bad_records.mrc"), "--json"
        ).stdout
    )
    assert summary["rejected"] >= 1
    assert all(r["position"] and r["reason"] for r in summary["rejections"])
    missing = node.cli("catalog", "import", "/nonexistent/katalog.mrc", check=False)
    assert missing.returncode == 1 and "/nonexistent/katalog.mrc" in missing.stderr


def test_search_json_contract(make_node: MakeNode) -> None:
    node = make_node("Library A")
    node.cli("catalog", "import", str(SHARED_DATA / "slims" / "sampledata.sql"))
    hits = node.search("corruption")
    assert hits
    for hit in hits:
        assert isinstance(hit["title"], str) and isinstance(hit["authors"], list)
        assert isinstance(hit["isbn"], list) and "year" in hit
        assert all({"library", "node_id"} <= set(h) for h in hit["holdings"])
    assert node.search("zzzzqqqq") == []


def test_invite_code_is_the_last_line_and_a_bad_code_is_explained(make_node: MakeNode) -> None:
    a, b = make_node("Library A"), make_node("Library B")
    code = a.cli("peer", "invite").stdout.strip().splitlines()[-1]
    assert code.startswith("pn1.")
    damaged = b.cli("peer", "join", code[:-6], check=False)
    assert damaged.returncode == 1 and "damaged" in damaged.stderr
    offline = b.cli("peer", "join", code, check=False)  # A's daemon is not running
    assert offline.returncode == 1 and "could not reach" in offline.stderr
    assert json.loads(b.cli("peer", "list", "--json").stdout) == []


def test_an_invite_works_once(make_node: MakeNode) -> None:
    a, b, c = make_node("Library A"), make_node("Library B"), make_node("Library C")
    a.start()
    code = a.cli("peer", "invite").stdout.strip().splitlines()[-1]
    b.cli("peer", "join", code)
    again = c.cli("peer", "join", code, check=False)
    assert again.returncode == 1 and "already used" in again.stderr
    peers = json.loads(a.cli("peer", "list", "--json").stdout)
    assert [p["name"] for p in peers] == ["Library B"]
    assert {"node_id", "name", "address", "connected", "last_sync"} <= set(peers[0])


def test_a_taken_port_and_a_damaged_database_are_explained(make_node: MakeNode) -> None:
    node = make_node("Library A")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", node.port))
        taken.listen()
        result = node.cli("run", check=False, timeout=30)
    assert result.returncode == 1 and "cannot listen on" in result.stderr
    assert "Traceback" not in result.stderr
    db = node.home / "node.db"
    original = db.read_bytes()
    db.write_bytes(b"X" * 100 + original[100:])
    result = node.cli("status", check=False)
    assert result.returncode == 1 and "damaged" in result.stderr
    assert "Traceback" not in result.stderr
    assert db.read_bytes()[:100] == b"X" * 100  # left as found, for whoever investigates


def test_an_invite_from_a_wildcard_address_asks_for_advertise(tmp_path: Path) -> None:
    node = NodeProc(tmp_path / "lan", "LAN")
    node.cli("init", "--name", "LAN", "--listen", "0.0.0.0:8470")
    result = node.cli("peer", "invite", check=False)
    assert result.returncode == 1 and "advertise" in result.stderr
    result = node.cli("peer", "invite", env={"PEERNODE_ADVERTISE": "192.0.2.10:8470"})
    code = result.stdout.strip().splitlines()[-1]
    assert code.startswith("pn1.")
