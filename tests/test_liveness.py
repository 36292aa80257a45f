"""Liveness, fork gossip and our own head: the sans-IO parts, then real daemons on loopback."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import (
    CATALOG,
    BadSignature,
    Entry,
    ForkReported,
    Head,
    Heard,
    InvalidForkProof,
    LivenessBook,
    LogKey,
    OwnLogBehind,
    Reject,
    Replicator,
    Send,
    Session,
    TimestampError,
    fork_proof,
    public_bytes,
    sign_entry,
    sign_heartbeat,
    verify_fork_proof,
    verify_heartbeat,
)
from protocol.chains import ForkProof
from protocol.liveness import heartbeat_transcript
from protocol.messages import ForkNotice, Heartbeat
from protocol.replication import Action

from .nodes import BOOKS, NodeProc, peer, wait_for
from .test_rogue_peers import handshake, load_key

MakeNode = Callable[[str], NodeProc]
KEY_A = Ed25519PrivateKey.from_private_bytes(b"\x51" * 32)
KEY_B = Ed25519PrivateKey.from_private_bytes(b"\x52" * 32)
KEY_M = Ed25519PrivateKey.from_private_bytes(b"\x53" * 32)  # a member neither side is
PUB_A, PUB_B, PUB_M = (public_bytes(k) for k in (KEY_A, KEY_B, KEY_M))
NOW = 1_700_000_000_000


def entry(key: Ed25519PrivateKey, seq: int, title: str, prev: bytes | None = None) -> Entry:
    return sign_entry(
        key,
        log="catalog",
        seq=seq,
        prev=prev,
        timestamp=NOW - 1000,
        kind=CATALOG,
        body={"ops": [["put", title, {"title": title}]]},
    )


# --- heartbeats ---------------------------------------------------------------------------------


def test_a_heartbeat_verifies_and_a_changed_one_does_not() -> None:
    beat = sign_heartbeat(KEY_M, NOW)
    verify_heartbeat(beat, now_ms=NOW)
    assert beat.signature == KEY_M.sign(heartbeat_transcript(PUB_M, NOW))
    with pytest.raises(BadSignature):
        verify_heartbeat(Heartbeat(PUB_M, NOW + 1, beat.signature), now_ms=NOW)  # replayed later
    with pytest.raises(BadSignature):
        verify_heartbeat(Heartbeat(PUB_A, NOW, beat.signature), now_ms=NOW)  # claimed by another
    with pytest.raises(TimestampError):
        verify_heartbeat(sign_heartbeat(KEY_M, NOW + 3_600_000), now_ms=NOW)


def test_the_book_keeps_only_newer_heartbeats_and_relays_once_per_interval() -> None:
    book = LivenessBook(relay_interval_ms=15_000)
    assert book.note(sign_heartbeat(KEY_M, NOW), NOW)
    assert not book.note(sign_heartbeat(KEY_M, NOW), NOW + 1)  # the same again: a replay
    assert not book.note(sign_heartbeat(KEY_M, NOW - 1), NOW + 2)  # older
    assert book.note(sign_heartbeat(KEY_M, NOW + 30_000), NOW + 30_000)
    assert book.should_relay(PUB_M, NOW)
    assert not book.should_relay(PUB_M, NOW + 14_999)
    assert book.should_relay(PUB_M, NOW + 15_000)


class Pair:
    """Two replicators joined by a perfect link; non-Send actions are collected per side."""

    def __init__(self, *, a_local: dict[LogKey, Head] | None = None) -> None:
        trusted = {PUB_A, PUB_B, PUB_M}
        self.a = Replicator(
            Session(KEY_A, os.urandom(32), "A"),
            dict(a_local or {}),
            accept_peer=lambda k: k == PUB_B,
            trusted=lambda k: k in trusted,
            now=NOW,
        )
        self.b = Replicator(
            Session(KEY_B, os.urandom(32), "B"),
            {},
            accept_peer=lambda k: k == PUB_A,
            trusted=lambda k: k in trusted,
            now=NOW,
        )
        self.seen: dict[str, list[Action]] = {"a": [], "b": []}
        self.run(self.a.start(), self.b.start())
        assert self.a.ready and self.b.ready

    def run(self, from_a: list[Action], from_b: list[Action]) -> None:
        for _ in range(100):
            to_b = [x.data for x in from_a if isinstance(x, Send)]
            to_a = [x.data for x in from_b if isinstance(x, Send)]
            self.seen["a"] += [x for x in from_a if not isinstance(x, Send)]
            self.seen["b"] += [x for x in from_b if not isinstance(x, Send)]
            if not to_a and not to_b:
                return
            from_a = [x for data in to_a for x in self.a.receive(data, NOW)]
            from_b = [x for data in to_b for x in self.b.receive(data, NOW)]
        raise AssertionError("the pair did not go quiet")


def test_a_members_heartbeat_is_heard_and_a_forged_one_rejected() -> None:
    pair = Pair()
    good = sign_heartbeat(KEY_M, NOW)
    forged = Heartbeat(PUB_M, NOW + 5, good.signature)
    stranger = sign_heartbeat(Ed25519PrivateKey.generate(), NOW)
    pair.run(pair.a.heartbeat_messages([good, forged, stranger]), [])
    heard = [x for x in pair.seen["b"] if isinstance(x, Heard)]
    assert [h.beat for h in heard] == [good]  # the stranger's is not kept, not even rejected
    rejects = [x for x in pair.seen["b"] if isinstance(x, Reject)]
    assert len(rejects) == 1 and rejects[0].error.reason == "signature"
    assert "sent a bad heartbeat" in str(rejects[0].error)
    assert not pair.b.session.closed  # a bad heartbeat costs the peer a rejection, not the link


# --- fork proofs --------------------------------------------------------------------------------

E1 = entry(KEY_M, 1, "one")
E2 = entry(KEY_M, 2, "two", E1.hash)
E2_FORK = entry(KEY_M, 2, "zwei", E1.hash)


def proof_of_fork() -> ForkProof:
    proof = fork_proof(E2, E2_FORK)
    assert proof is not None
    return proof


def test_a_fork_proof_verifies_completely() -> None:
    proof, first, second = verify_fork_proof(proof_of_fork().to_bytes())
    assert proof == proof_of_fork()
    assert (first.seq, second.seq) == (2, 2) and first.hash != second.hash
    not_a_fork = ForkProof(E2.raw, E2.raw).to_bytes()
    other_seq = ForkProof(E1.raw, E2.raw).to_bytes()
    other_author = ForkProof(E2.raw, entry(KEY_A, 2, "x", E1.hash).raw).to_bytes()
    flipped = bytearray(E2_FORK.raw)
    flipped[-1] ^= 1
    bad_signature = ForkProof(E2.raw, bytes(flipped)).to_bytes()
    for bad in (not_a_fork, other_seq, other_author, bad_signature, b"\x92\x01\x02", b"junk"):
        with pytest.raises(InvalidForkProof) as caught:
            verify_fork_proof(bad)
        assert caught.value.reason == "fork-proof"


def test_a_fork_notice_is_reported_and_a_bad_one_rejected() -> None:
    pair = Pair()
    pair.run(pair.a.fork_message(proof_of_fork()), [])
    reported = [x for x in pair.seen["b"] if isinstance(x, ForkReported)]
    assert len(reported) == 1
    assert reported[0].key == LogKey(PUB_M, "catalog") and reported[0].seq == 2
    session = pair.a.session
    pair.run([Send(session.send(ForkNotice(ForkProof(E2.raw, E2.raw).to_bytes())))], [])
    rejects = [x for x in pair.seen["b"] if isinstance(x, Reject)]
    assert len(rejects) == 1 and rejects[0].error.reason == "fork-proof"
    assert "sent a fork notice" in str(rejects[0].error)


# --- our own head -------------------------------------------------------------------------------


def test_a_peer_holding_more_of_our_own_log_is_reported_once() -> None:
    # A's own catalog: A holds #1, and B will announce #2 (B holds what A signed later).
    a1 = entry(KEY_A, 1, "one")
    a2 = entry(KEY_A, 2, "two", a1.hash)
    key = LogKey(PUB_A, "catalog")
    pair = Pair(a_local={key: Head(1, a1.hash)})
    assert pair.a.own_head_confirmed  # B's first frontier holds nothing of A's
    pair.run([], pair.b.local_changed({key: Head(2, a2.hash)}))
    behind = [x for x in pair.seen["a"] if isinstance(x, OwnLogBehind)]
    assert behind == [OwnLogBehind(key, 1, Head(2, a2.hash))]
    assert not pair.a.own_head_confirmed
    pair.run(pair.a.applied(key, Head(2, a2.hash)), [])
    assert pair.a.own_head_confirmed
    pair.run([], pair.b.local_changed({key: Head(2, a2.hash)}))
    assert len([x for x in pair.seen["a"] if isinstance(x, OwnLogBehind)]) == 1


# --- real daemons -------------------------------------------------------------------------------

FAST = {"PEERNODE_HEARTBEAT_SECONDS": "1"}
# A line stays a line: no node dials a member it learned of (peer exchange) beyond its own peer.
LINE = {**FAST, "PEERNODE_MAX_PEERS": "1"}


@pytest.mark.slow
def test_liveness_travels_through_the_mesh(make_node: MakeNode) -> None:
    """A - B - C in a line: A learns that C is alive from C's heartbeats, relayed by B."""
    a, b, c = make_node("Library A"), make_node("Library B"), make_node("Library C")
    for node in (a, b, c):
        node.start(env=LINE)
    peer(a, b)
    peer(b, c)
    a_id, c_id = a.status()["node_id"], c.status()["node_id"]
    # A and C follow each other's logs but have no link: only B connects them.
    a.cli("peer", "add", c_id, "--name", "Library C")
    c.cli("peer", "add", a_id, "--name", "Library A")

    def a_sees_c() -> bool:
        rows = {p["node_id"]: p for p in a.api("/api/status")["peers"]}
        return rows[c_id]["last_heartbeat"] is not None and not rows[c_id]["connected"]

    wait_for(a_sees_c, 20, "C's heartbeat to reach A through B")
    rows = {p["node_id"]: p for p in json.loads(a.cli("peer", "list", "--json").stdout)}
    assert rows[c_id]["last_seen"] is not None and rows[c_id]["connected"] is False
    b_row = rows[b.status()["node_id"]]
    assert b_row["connected"] is True and b_row["behind"] == 0
    # The table is written once per heartbeat interval: the CLI sees it without the daemon too.
    wait_for(
        lambda: any(m["node_id"] == c_id for m in a.status()["members_seen"]),
        10,
        "A's liveness table to hold C",
    )
    a.stop()
    offline = {p["node_id"]: p for p in a.status()["peers"]}
    assert offline[c_id]["last_heartbeat"] is not None
    text = a.cli("peer", "list").stdout
    assert "last seen" in text and "Library C" in text


@pytest.mark.slow
async def test_a_fork_proof_is_gossiped_and_freezes_the_log(make_node: MakeNode) -> None:
    """X hands B proof that X forked its own log: B stores it, freezes X's log, logs the author,
    and passes it to C. A proof that proves nothing is a typed rejection of its sender."""
    b, c, x = make_node("Library B"), make_node("Library C"), make_node("Library X")
    for node in (b, c, x):
        node.start(env=FAST)
    peer(b, c)
    peer(b, x)
    x_id = x.status()["node_id"]
    c.cli("peer", "add", x_id, "--name", "Library X")  # C follows X's log, through B
    x.stop()
    x_key = load_key(x.home)
    one = sign_entry(
        x_key,
        log="catalog",
        seq=1,
        prev=None,
        timestamp=1,
        kind=CATALOG,
        body={"ops": [["del", "q"]]},
    )
    other = sign_entry(
        x_key,
        log="catalog",
        seq=1,
        prev=None,
        timestamp=2,
        kind=CATALOG,
        body={"ops": [["del", "r"]]},
    )
    proof = fork_proof(one, other)
    assert proof is not None
    wait_for(lambda: c.status()["peers"][0]["connected"], 20, "B and C to connect")
    session = Session(x_key, os.urandom(32), "Library X")
    async with aiohttp.ClientSession() as http, http.ws_connect(f"http://{b.address}/sync") as ws:
        await handshake(ws, session)
        await ws.send_bytes(session.send(ForkNotice(proof.to_bytes())))
        await ws.send_bytes(session.send(ForkNotice(ForkProof(one.raw, one.raw).to_bytes())))
        wait_for(lambda: b.status()["forks"] == 1, 15, "B to store the proof")
        wait_for(lambda: c.status()["forks"] == 1, 15, "B to pass the proof on to C")
        wait_for(
            lambda: "fork-proof" in b.status()["rejected_by_reason"], 15, "the bad proof refused"
        )
    x_short = x_id[:9]
    assert f"FORK: {x_short}/catalog#1" in b.log()
    assert f"rejected from {x_short}: fork-proof" in b.log()
    assert f"FORK: {x_short}/catalog#1" in c.log()
    wait_for(lambda: c.status()["fork_notices_received"] == 1, 10, "C to count the notice")
    assert "FORKS:" in c.cli("status").stdout


@pytest.mark.slow
def test_a_rolled_back_database_fetches_its_own_entries_before_it_signs(
    make_node: MakeNode, tmp_path: Path
) -> None:
    """Copy A's database, sign more, put the old copy back: A refuses to sign until a peer sent
    back what it signed after the copy, and no fork ever appears."""
    a, b = make_node("Library A"), make_node("Library B")
    books = json.loads(BOOKS.read_text("utf-8"))
    parts = []
    for n, chunk in enumerate((books[:300], books[300:600], books[600:900])):
        path = tmp_path / f"part{n}.json"
        path.write_text(json.dumps(chunk), "utf-8")
        parts.append(path)
    a.cli("catalog", "import", str(parts[0]), "--source", "one")
    a.start(env=FAST)
    b.start(env=FAST)
    peer(a, b)
    wait_for(lambda: b.records() == 300, 30, "B to hold A's first 300 records")
    a.stop()
    copy = tmp_path / "old.db"
    shutil.copy(a.home / "node.db", copy)
    a.start(env=FAST)
    wait_for(lambda: b.status()["peers"][0]["connected"], 20, "A to confirm its head with B")
    wait_until_signing(a, parts[1], "two")
    wait_for(lambda: b.records() == 600, 30, "B to hold the 300 records A signed after the copy")
    a.stop()
    b.stop()  # A must not sign before it hears from a peer, however long that takes
    for suffix in ("-wal", "-shm"):
        (a.home / f"node.db{suffix}").unlink(missing_ok=True)
    shutil.copy(copy, a.home / "node.db")  # the old copy is back: A forgot 300 of its records
    assert a.records() == 300
    a.start(env=FAST)
    refused = a.cli("catalog", "import", str(parts[2]), "--source", "three", check=False)
    assert refused.returncode == 1, refused.stdout
    assert "own head" in refused.stderr, refused.stderr
    b.start(env=FAST)
    wait_for(lambda: a.records() == 600, 30, "A to fetch back its own newer entries from B")
    wait_for(lambda: "rolled back" in a.log(), 5, "A to log the roll-back")
    wait_until_signing(a, parts[2], "three")
    wait_for(lambda: b.records() == 900, 30, "B to take A's new entries, after the old ones")
    for node in (a, b):
        status = node.status()
        assert status["forks"] == 0 and status["rejected"] == 0, status
        assert node.cli("check").returncode == 0


def wait_until_signing(node: NodeProc, path: Path, source: str) -> None:
    """Import ``path``, retrying while the node still waits to confirm its own head."""
    deadline = time.monotonic() + 30
    while True:
        result = node.cli("catalog", "import", str(path), "--source", source, check=False)
        if result.returncode == 0:
            return
        assert "own head" in result.stderr or "restored" in result.stderr, result.stderr
        assert time.monotonic() < deadline, f"{node.name} still refuses to sign: {result.stderr}"
        time.sleep(0.3)
