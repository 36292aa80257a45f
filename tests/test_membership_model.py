"""The membership fold (protocol/membership.py): its rules, and that arrival order never matters."""

from __future__ import annotations

import random

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import InvalidBody, decode_entry, public_bytes, sign_entry
from protocol.errors import Blocked, NotAdmitted
from protocol.invites import Invite, JoinAccept, JoinRequest
from protocol.kinds import MEMBER, MEMBERS_LOG
from protocol.membership import (
    ADMIN,
    ADMIT,
    CURRENT,
    PENDING,
    REMOVE,
    REMOVED,
    REVOKE,
    REVOKED,
    Statement,
    fold,
)
from protocol.replication import LOG_PRIORITY, Reject, Replicator
from protocol.session import Session

KEYS = [bytes([n]) * 32 for n in range(1, 9)]
F, A, B, C, D, E, G, H = KEYS  # F founds the network


class Log:
    """One author's members log: statements numbered as its hash chain would number them."""

    def __init__(self, author: bytes) -> None:
        self.author = author
        self.seq = 0

    def say(self, op: str, key: bytes, role: str = "member", reason: str = "") -> Statement:
        self.seq += 1
        return Statement(self.author, self.seq, op, key, f"lib {key[0]}", role, reason)


def logs() -> dict[bytes, Log]:
    return {k: Log(k) for k in KEYS}


def test_admission_is_the_closure_from_the_founders() -> None:
    lg = logs()
    s = [lg[F].say(ADMIT, A), lg[A].say(ADMIT, F), lg[A].say(ADMIT, B), lg[G].say(ADMIT, H)]
    m = fold({F}, s)
    assert m.current == {F, A, B}
    assert m.members[B].admitted_by == (A,)
    # G and H vouch for each other, but nobody the founders reach vouches for them: a Sybil
    # cluster stays pending, shown and never trusted.
    assert m.status(H) == PENDING and m.status(G) == PENDING
    assert m.admins == {F}


def test_remove_by_admin_or_admitter_and_not_by_others() -> None:
    lg = logs()
    base = [lg[F].say(ADMIT, A), lg[A].say(ADMIT, B), lg[F].say(ADMIT, C), lg[B].say(ADMIT, D)]
    # C neither admitted B nor is an admin: its removal does not count.
    assert fold({F}, [*base, lg[C].say(REMOVE, B)]).status(B) == CURRENT
    # A admitted B: A may remove it, and D, vouched for only by B, drops out with it.
    m = fold({F}, [*base, lg[A].say(REMOVE, B, reason="left the network")])
    assert m.status(B) == REMOVED and m.members[B].reason == "left the network"
    assert m.status(D) == PENDING
    # An admin may remove anyone but a founder.
    m = fold({F}, [*base, lg[F].say(REMOVE, D), lg[F].say(REMOVE, F)])
    assert m.status(D) == REMOVED and m.status(F) == CURRENT
    # Remove wins over another member's admit; the remover's own later admit undoes it.
    m = fold({F}, [*base, lg[F].say(REMOVE, B), lg[C].say(ADMIT, B)])
    assert m.status(B) == REMOVED
    m = fold({F}, [*base, lg[F].say(REMOVE, B), lg[F].say(ADMIT, B)])
    assert m.status(B) == CURRENT


def test_conflicting_removals_go_nearest_the_founders_first() -> None:
    lg = logs()
    s = [
        lg[F].say(ADMIT, A, role=ADMIN),
        lg[F].say(ADMIT, B),
        lg[F].say(ADMIT, C),
        # A's key is stolen: the thief removes everybody it can.
        lg[A].say(REMOVE, B),
        lg[A].say(REMOVE, C),
    ]
    assert fold({F}, s).status(B) == REMOVED
    # The founder removes A: A's removals no longer count, B and C are back.
    m = fold({F}, [*s, lg[F].say(REMOVE, A, reason="key stolen")])
    assert (m.status(A), m.status(B), m.status(C)) == (REMOVED, CURRENT, CURRENT)


def test_revoke_ends_a_key_but_keeps_what_it_signed_before() -> None:
    lg = logs()
    s = [
        lg[F].say(ADMIT, A, role=ADMIN),
        lg[A].say(ADMIT, B),
        lg[A].say(ADMIT, E, role=ADMIN),  # A's successor, admitted before the revoke
        lg[A].say(REVOKE, A, reason="PC stolen"),
        lg[A].say(ADMIT, G),  # signed after the revoke: the thief
        lg[A].say(REMOVE, B),
    ]
    m = fold({F}, s)
    assert m.status(A) == REVOKED and m.members[A].reason == "PC stolen"
    assert m.status(B) == CURRENT and not m.is_member(G)  # after the revoke: ignored
    assert E in m.admins
    # Someone else's revoke of a key means nothing: only the key itself can revoke it.
    assert fold({F}, [lg[F].say(ADMIT, C), lg[F].say(REVOKE, C)]).status(C) == CURRENT


def test_a_forked_members_log_counts_as_a_revoke_at_the_fork() -> None:
    lg = logs()
    s = [lg[F].say(ADMIT, A), lg[A].say(ADMIT, B), lg[A].say(ADMIT, D)]
    other = Statement(A, 2, ADMIT, C, "thief's friend")  # A's #2 with another content
    m = fold({F}, [*s, other])
    assert m.status(A) == REVOKED and "forked at #2" in m.members[A].reason
    assert m.status(B) == CURRENT  # vouched for before the fork
    assert not m.is_member(C) and not m.is_member(D)
    assert fold({F}, s, forked={A: 2}) == m


# --- order independence ----------------------------------------------------------------------

_OPS = st.sampled_from([ADMIT, ADMIT, ADMIT, REMOVE, REVOKE])


@st.composite
def histories(draw: st.DrawFn) -> list[Statement]:
    """Random statements over 6 keys, each author's numbered 1, 2, 3... as its log would be."""
    out: list[Statement] = []
    seqs = dict.fromkeys(KEYS[:6], 0)
    for _ in range(draw(st.integers(0, 30))):
        author = draw(st.sampled_from(KEYS[:6]))
        op = draw(_OPS)
        key = author if op == REVOKE else draw(st.sampled_from(KEYS[:6]))
        role = draw(st.sampled_from(["member", ADMIN])) if op == ADMIT else "member"
        seqs[author] += 1
        out.append(Statement(author, seqs[author], op, key, "x", role))
    return out


@settings(max_examples=300, deadline=None)
@given(histories(), st.randoms(use_true_random=False), st.data())
def test_the_fold_ignores_arrival_order_and_duplicates(
    statements: list[Statement], rnd: random.Random, data: st.DataObject
) -> None:
    founders = data.draw(st.sets(st.sampled_from(KEYS[:3]), min_size=1))
    expected = fold(founders, statements)
    shuffled = statements + rnd.sample(statements, k=len(statements) // 2)  # replays
    rnd.shuffle(shuffled)
    assert fold(founders, shuffled) == expected
    # Whatever happens, founders that did not revoke stay members.
    for f in founders:
        assert expected.status(f) in (CURRENT, REVOKED)


# --- the wire: the entry kind, the join answer, the handshake --------------------------------


def test_member_entries_validate_and_fold() -> None:
    key = Ed25519PrivateKey.generate()
    body = {"op": ADMIT, "key": B, "name": "Perpustakaan B", "role": ADMIN}
    entry = sign_entry(key, log=MEMBERS_LOG, seq=1, prev=None, timestamp=1, kind=MEMBER, body=body)
    statement = Statement.from_entry(decode_entry(entry.raw, now_ms=None))
    assert statement == Statement(public_bytes(key), 1, ADMIT, B, "Perpustakaan B", ADMIN)
    for bad in (
        {**body, "op": "promote"},
        {**body, "key": b"short"},
        {**body, "name": ""},
        {**body, "extra": 1},
        {"op": REMOVE, "key": B, "name": "x", "role": ADMIN},  # a role only in an admit
    ):
        with pytest.raises(InvalidBody):
            sign_entry(key, log=MEMBERS_LOG, seq=1, prev=None, timestamp=1, kind=MEMBER, body=bad)
    assert LOG_PRIORITY[MEMBERS_LOG] == 0


def test_the_join_answer_carries_signed_founders() -> None:
    inviter, joiner = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    invite = Invite("192.0.2.1:8470", public_bytes(inviter), bytes(16))
    request = JoinRequest.make(invite, joiner, "B", "", bytes(32))
    accept = JoinAccept.make(inviter, "A", request, (F, A))
    again = JoinAccept.from_bytes(accept.to_bytes())
    again.verify(request, invite)
    assert again.founders == (F, A)  # sorted
    forged = JoinAccept(again.key, again.name, again.signature, (G,))
    with pytest.raises(Exception, match="not signed"):
        forged.verify(request, invite)


def test_a_refused_key_gets_the_typed_error_at_the_handshake() -> None:
    ours, theirs = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    refusal = Blocked("blocked here")
    rep = Replicator(
        Session(ours, bytes(32), "A"),
        {},
        accept_peer=lambda key: refusal,
        trusted=lambda key: True,
        now=0,
    )
    peer = Session(theirs, bytes([1]) * 32, "B")
    rep.start()
    actions = rep.receive(peer.hello(), 0)
    rejects = [a for a in actions if isinstance(a, Reject)]
    assert rejects and rejects[0].error is refusal
    assert isinstance(refusal, NotAdmitted) and refusal.reason == "blocked"
    assert rep.session.closed
