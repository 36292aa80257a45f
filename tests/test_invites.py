"""Invites: the code, the joiner's proof, the inviter's answer; each tampering is refused."""

from __future__ import annotations

import os
import random

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import AuthenticationError, DecodeError, LimitExceeded, public_bytes
from protocol.invites import Invite, JoinAccept, JoinRequest

INVITER = Ed25519PrivateKey.generate()
JOINER = Ed25519PrivateKey.generate()


def invite() -> Invite:
    return Invite("127.0.0.1:8470", public_bytes(INVITER), os.urandom(16))


def test_code_round_trips_and_forgives_whitespace() -> None:
    original = invite()
    code = original.code
    assert code.startswith("pn1.")
    spaced = code[:20] + "\n  " + code[20:]
    assert Invite.parse(spaced) == original


@pytest.mark.parametrize("bad", ["", "pn2.abc", "pn1.", "pn1.!!!!", "pn1.AAAA"])
def test_damaged_codes_are_explained(bad: str) -> None:
    with pytest.raises(ValueError, match="invite code"):
        Invite.parse(bad)


def test_a_proper_join_verifies_both_ways() -> None:
    inv = invite()
    request = JoinRequest.make(inv, JOINER, "Perpustakaan B", "127.0.0.1:9", os.urandom(32))
    received = JoinRequest.from_bytes(request.to_bytes())
    received.verify(inv.secret, inv.key)
    accept = JoinAccept.make(INVITER, "Perpustakaan A", received)
    JoinAccept.from_bytes(accept.to_bytes()).verify(request, inv)


def test_without_the_secret_a_join_is_refused() -> None:
    inv = invite()
    guessed = Invite(inv.address, inv.key, os.urandom(16))
    request = JoinRequest.make(guessed, JOINER, "B", "", os.urandom(32))
    with pytest.raises(AuthenticationError, match="secret"):
        request.verify(inv.secret, inv.key)


def test_a_request_replayed_with_another_key_is_refused() -> None:
    inv = invite()
    request = JoinRequest.make(inv, JOINER, "B", "", os.urandom(32))
    other = public_bytes(Ed25519PrivateKey.generate())
    swapped = JoinRequest(
        request.invite_id,
        other,
        request.name,
        request.address,
        request.nonce,
        request.mac,
        request.signature,
    )
    with pytest.raises(AuthenticationError):
        swapped.verify(inv.secret, inv.key)


def test_an_answer_from_another_node_is_refused() -> None:
    inv = invite()
    request = JoinRequest.make(inv, JOINER, "B", "", os.urandom(32))
    impostor = JoinAccept.make(Ed25519PrivateKey.generate(), "Impostor", request)
    with pytest.raises(AuthenticationError, match="not the node that made the invite"):
        impostor.verify(request, inv)
    replayed = JoinAccept.make(INVITER, "A", JoinRequest.make(inv, JOINER, "B", "", os.urandom(32)))
    with pytest.raises(AuthenticationError, match="not signed"):
        replayed.verify(request, inv)  # an answer to another request (another nonce)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x90",
        b"\xc1",
        random.Random(7).randbytes(64),
        b"\x97" + b"\xc0" * 7,
        b"\xdf\xf5\xae\x99@" + b"\x00" * 8,  # a map claiming four billion items
    ],
)
def test_garbage_join_bodies_are_decode_errors(data: bytes) -> None:
    # Fixed bytes, not os.urandom: a random body is sometimes a huge map header, refused as
    # over a limit rather than undecodable. Either is a typed refusal.
    with pytest.raises((DecodeError, LimitExceeded)):
        JoinRequest.from_bytes(data)
    with pytest.raises((DecodeError, LimitExceeded)):
        JoinAccept.from_bytes(data)
