"""Interlibrary loan end to end: real daemons on loopback, the real CLI, real SQLite files.

Four libraries: D links A, B and C; C reaches A and B only through D. C asks for a title that
A and B hold; A declines, the rota moves to B by itself, B ships, C receives, renews, returns;
everyone, D too, derives the same history, and D cannot read the sealed notes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from peernode.home import Home
from protocol import node_id

from .nodes import NodeProc, peer, wait_for

MakeNode = Callable[[str], NodeProc]
ONLY_PINNED = {"PEERNODE_MAX_PEERS": "1"}  # C must not dial A or B: D is its only way
SECRET = "kirim ke Jl. Pattimura 1, Ambon; telp 0911-1234"
BOOK = {"title": "Sejarah Maluku", "authors": ["Leirissa, R. Z."], "year": 1999}


def write_book(path: Path, rid: str, **extra: Any) -> Path:
    path.write_text(json.dumps([{"id": rid, **BOOK, **extra}]), "utf-8")
    return path


def query(node: NodeProc, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{node.home / 'node.db'}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def key_of(node: NodeProc) -> bytes:
    return Home(node.home).public_key


def state_at(node: NodeProc, request_id: str) -> tuple[str, bytes] | None:
    rows = query(node, "SELECT state, lender FROM loans WHERE hex(id) = upper(?)", request_id)
    return (str(rows[0][0]), bytes(rows[0][1])) if rows else None


def show(node: NodeProc, request_id: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(node.cli("loan", "show", request_id, "--json").stdout)
    return data


@pytest.mark.slow
def test_a_request_travels_through_a_relay_and_moves_to_the_next_lender(
    make_node: MakeNode, tmp_path: Path
) -> None:
    a, b, c, d = (make_node(f"Library {x}") for x in "ABCD")
    for node in (a, b, c, d):
        node.start(env=ONLY_PINNED)
    a.cli("catalog", "import", str(write_book(tmp_path / "a.json", "a-17")))
    b.cli("catalog", "import", str(write_book(tmp_path / "b.json", "b-4")))
    for other in (a, b, c):
        peer(d, other)
    wait_for(
        lambda: (
            query(c, "SELECT count(*) FROM records")[0][0] == 2
            and query(c, "SELECT count(*) FROM entries WHERE log = 'profile'")[0][0] >= 4
        ),
        40,
        "A's and B's records and profiles to reach C through D",
    )

    # C asks A first, then B; the note is sealed to C, A and B.
    out = c.cli(
        "loan",
        "request",
        "a-17",
        "--note",
        SECRET,
        "--lender",
        node_id(key_of(a)),
        "--lender",
        node_id(key_of(b)),
        "--json",
    ).stdout
    request_id = json.loads(out)["id"]
    wait_for(lambda: state_at(a, request_id) is not None, 30, "the request to reach A")
    assert show(a, request_id)["details"] == SECRET  # a lender of the rota reads it

    # An illegal step: C ships back a loan that was never shipped.
    refused = c.cli("loan", "ship-back", request_id, check=False)
    assert refused.returncode != 0
    assert request_id[:12] in refused.stderr and "RequestReceived" in refused.stderr

    a.cli("loan", "answer", request_id, "unfilled", "--reason", "on loan until June")
    wait_for(
        lambda: state_at(b, request_id) == ("RequestReceived", key_of(b)),
        30,
        "the request to move on to B by itself",
    )
    # A declined: answering it again (another library's request now) is refused.
    again = a.cli("loan", "answer", request_id, "supply", check=False)
    assert again.returncode != 0 and "only the current lender" in again.stderr
    assert "RequestReceived" in again.stderr and request_id[:12] in again.stderr

    b.cli("loan", "answer", request_id, "supply")
    b.cli("loan", "ship", request_id, "--note", "paket pos 1234")
    wait_for(lambda: state_at(c, request_id) == ("Loaned", key_of(b)), 30, "C to see it shipped")
    # C goes offline: its steps are signed into its own log and wait there, queued.
    c.stop()
    c.cli("loan", "receive", request_id)
    c.cli("loan", "renew", request_id)
    assert state_at(c, request_id) == ("RenewPending", key_of(b))
    assert state_at(b, request_id) == ("Loaned", key_of(b))
    c.start(env=ONLY_PINNED)  # back online: the queued steps leave through D
    wait_for(
        lambda: not query(c, "SELECT 1 FROM meta WHERE key = 'own_head_check_until'"),
        30,
        "C's daemon to confirm its own head with D (it signs nothing before)",
    )
    wait_for(lambda: state_at(b, request_id) == ("RenewPending", key_of(b)), 30, "the renewal")
    b.cli("loan", "renew-answer", request_id, "yes")
    wait_for(lambda: state_at(c, request_id) == ("Received", key_of(b)), 30, "C to see yes")
    c.cli("loan", "ship-back", request_id)
    wait_for(lambda: state_at(b, request_id) == ("ShippedReturn", key_of(b)), 30, "the return")
    repeat = b.cli("loan", "complete", request_id)
    assert "now LoanCompleted" in repeat.stdout
    assert "already signed" in b.cli("loan", "complete", request_id).stdout  # idempotent

    for node in (a, c, d):
        wait_for(
            lambda n=node: state_at(n, request_id) == ("LoanCompleted", key_of(b)),  # type: ignore[misc]
            30,
            f"{node.name} to see the loan completed",
        )
    views = {n.name: show(n, request_id) for n in (a, b, c, d)}
    histories = {
        name: [(h["action"], h["by"]["node_id"], h["at"]) for h in v["history"]]
        for name, v in views.items()
    }
    assert len({json.dumps(h) for h in histories.values()}) == 1, histories
    assert [h[0] for h in histories["Library C"]] == [
        "Unfilled",
        "WillSupply",
        "Loaned",
        "Received",
        "Renew",
        "RenewAccepted",
        "ShippedReturn",
        "LoanCompleted",
    ]
    assert views["Library C"]["details"] == SECRET
    assert views["Library B"]["history"][2]["details"] == "paket pos 1234"

    # D relayed every entry and can read none of the details, by CLI, API or file.
    assert "details" not in views["Library D"]
    assert "details" not in views["Library D"]["history"][2]
    api = d.api(f"/api/loans/{request_id}")
    assert api["state"] == "LoanCompleted" and "details" not in api
    for path in d.home.glob("node.db*"):
        data = path.read_bytes()
        assert SECRET.encode() not in data and b"paket pos" not in data, path
    assert query(d, "SELECT count(*) FROM entries WHERE log = 'loans'")[0][0] == 9

    stats = {r["name"]: r for r in d.api("/api/loans/stats")["libraries"]}
    assert stats["Library B"]["lent"] == 1 and stats["Library C"]["borrowed"] == 1
    assert stats["Library A"]["declined"] == 1 and stats["Library A"]["lent"] == 0
    assert stats["Library B"]["fill_rate"] == 1.0
    own = json.loads(c.cli("loan", "stats", "--json").stdout)
    assert own["partners"] == [
        {
            "node_id": node_id(key_of(a)),
            "name": "Library A",
            "lent_to": 0,
            "borrowed_from": 0,
            "declined_to": 0,
            "declined_by": 1,
        },
        {
            "node_id": node_id(key_of(b)),
            "name": "Library B",
            "lent_to": 0,
            "borrowed_from": 1,
            "declined_to": 0,
            "declined_by": 0,
        },
    ]
