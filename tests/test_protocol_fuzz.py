"""Fuzzing every decoder: whatever the bytes, only ProtocolError subclasses come out.

The inputs are random bytes, mutated valid messages and entries (bit flips, truncation,
insertion, deletion), random msgpack values, deep nesting and huge declared lengths.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import (
    ForkProof,
    ProtocolError,
    decode_entry,
    node_id,
    parse_node_id,
)
from protocol.channel import Channel
from protocol.encoding import pack, unpack
from protocol.entries import Entry
from protocol.limits import Limits
from protocol.messages import (
    Entries,
    decode_message,
    encode_message,
)

from .protocol_samples import (
    AUTHOR,
    CATALOG_LOG,
    E1,
    ENTRIES,
    FRAME_KEY,
    FRAMES,
    KEY,
    MESSAGES,
    PROOFS,
    SAMPLE_MESSAGES,
)

SMALL = Limits(max_string_bytes=64, max_list_items=8, max_map_items=8, max_entries_per_message=4)

FUZZ = settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)


def decode_any(data: bytes) -> None:
    """Feed ``data`` to every byte decoder; a ProtocolError is a correct answer, nothing else."""
    for limits in (Limits(), SMALL):
        for decoder in DECODERS:
            with contextlib.suppress(ProtocolError):  # the one correct way to refuse input
                decoder(data, limits)


def _message(data: bytes, limits: Limits) -> None:
    msg = decode_message(data, limits)
    # Whatever decodes must survive a round trip unchanged.
    assert decode_message(encode_message(msg), limits) == msg


def _entry(data: bytes, limits: Limits) -> None:
    entry = decode_entry(data, now_ms=10**13, limits=limits)
    payload = msgpack.unpackb(data)[0]
    assert entry.hash == hashlib.sha256(payload).digest()
    assert entry.raw == data
    assert decode_entry(entry.raw, now_ms=None, limits=limits) == entry


def _unpack(data: bytes, limits: Limits) -> None:
    value = unpack(data, what="fuzz", limits=limits, max_bytes=1 << 20)
    try:
        canonical = pack(value)
    except TypeError:
        return  # floats decode (and every field check refuses them) but never encode
    assert unpack(canonical, what="fuzz", limits=limits, max_bytes=1 << 20) == value


def _proof(data: bytes, limits: Limits) -> None:
    proof = ForkProof.from_bytes(data, limits)
    a, b = proof.verify(limits)
    assert (a.author, a.log, a.seq) == (b.author, b.log, b.seq) and a.hash != b.hash


def _frame(data: bytes, limits: Limits) -> None:
    # Sealed with the right key, so the flag byte and the bounded inflate behind the tag are
    # what gets explored, not just the tag failing.
    sealed = ChaCha20Poly1305(FRAME_KEY).encrypt(bytes(12), data, None)
    message = Channel(FRAME_KEY, FRAME_KEY, limits=limits).open(sealed)
    assert len(message) <= limits.max_message_bytes


DECODERS: list[Callable[[bytes, Limits], None]] = [_message, _entry, _unpack, _proof, _frame]


def mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """Apply bounded edits: (kind, position, value) for flip, set, insert, delete, truncate."""
    buf = bytearray(data)
    for kind, position, value in edits:
        if not buf:
            break
        at = position % len(buf)
        if kind == 0:
            buf[at] ^= 1 << (value % 8)
        elif kind == 1:
            buf[at] = value
        elif kind == 2:
            buf[at:at] = bytes([value]) * (1 + value % 4)
        elif kind == 3:
            del buf[at : at + 1 + value % 8]
        else:
            del buf[at:]
    return bytes(buf)


EDITS = st.lists(
    st.tuples(st.integers(0, 4), st.integers(0, 1 << 16), st.integers(0, 255)),
    min_size=1,
    max_size=4,
)
VALID = st.sampled_from([*MESSAGES, *ENTRIES, *PROOFS, *FRAMES])


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    decode_any(data)


@FUZZ
@given(VALID, EDITS)
def test_mutated_valid_inputs(data: bytes, edits: list[tuple[int, int, int]]) -> None:
    decode_any(mutate(data, edits))


@FUZZ
@given(st.sampled_from(MESSAGES), st.integers(0, 5), st.sampled_from(ENTRIES), EDITS)
def test_mutated_entries_inside_messages(
    carrier: bytes, index: int, raw: bytes, edits: list[tuple[int, int, int]]
) -> None:
    # An Entries message whose entry is damaged must still decode as a message; the damage
    # shows only when the entry itself is decoded.
    bad = mutate(raw, edits)
    msg = decode_message(encode_message(Entries(CATALOG_LOG, (E1.raw, bad)[: 1 + index % 2])))
    assert isinstance(msg, Entries)
    for each in msg.raws:
        decode_any(each)
    decode_any(carrier)


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.binary(max_size=40)
    | st.sampled_from([AUTHOR, E1.hash, b"\x00" * 64, "catalog", "put", "del", "title", "ops"])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.dictionaries(
            st.sampled_from(["ops", "title", "name", "year", "holdings"]) | st.text(max_size=4),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)
SHAPED = settings(FUZZ, max_examples=200)


@SHAPED
@given(st.integers(0, 9), st.lists(VALUES, max_size=8))
def test_random_msgpack_shaped_like_messages(code: int, fields: list[Any]) -> None:
    decode_any(msgpack.packb([code, *fields], use_bin_type=True))


ENVELOPE = [1, AUTHOR, "catalog", 1, None, 1]


@SHAPED
@given(
    st.lists(VALUES, min_size=8, max_size=8),
    st.lists(st.booleans(), min_size=6, max_size=6),
    st.sampled_from(["catalog", "profile"]),
)
def test_random_payloads_signed_correctly(fields: list[Any], keep: list[bool], kind: str) -> None:
    # Correct signatures over random payloads, mostly with a sound envelope, so that the checks
    # after the signature's (envelope, kind, body schema) are fuzzed too.
    for index, sound in enumerate(keep):
        if sound:
            fields[index] = ENVELOPE[index]
    if all(keep):
        fields[6] = kind
    payload = msgpack.packb(fields, use_bin_type=True)
    decode_any(msgpack.packb([payload, KEY.sign(b"peernode/entry/v1\x00" + payload)]))


@settings(max_examples=60, deadline=None, database=None)
@given(st.integers(1, 3000), st.sampled_from([b"\x91", b"\x81\xa1k", b"\xdc\x00\x01", b"\x92\xc0"]))
def test_deep_nesting(depth: int, opener: bytes) -> None:
    data = opener * depth + b"\xc0"
    decode_any(data)
    decode_any(b"\x93\x05" + data + b"\xc0")  # as an Entries message's author


HUGE_HEADERS = [
    b"\xdb\xff\xff\xff\xff",  # str32
    b"\xda\xff\xff",  # str16
    b"\xc6\xff\xff\xff\xff",  # bin32
    b"\xc5\xff\xff",  # bin16
    b"\xdd\xff\xff\xff\xff",  # array32
    b"\xdc\xff\xff",  # array16
    b"\xdf\xff\xff\xff\xff",  # map32
    b"\xc9\xff\xff\xff\xff\x01",  # ext32
    b"\xc7\x00\x07",  # an empty ext8: no length to exceed
    b"\xc7\x00\xff",  # an empty timestamp
    b"\xcf\xff\xff\xff\xff\xff\xff\xff\xff",  # uint64 max
    b"\xd3\x80\x00\x00\x00\x00\x00\x00\x00",  # int64 min
]


@FUZZ
@given(VALID, st.integers(0, 1 << 16), st.sampled_from(HUGE_HEADERS), st.binary(max_size=16))
def test_huge_declared_lengths(data: bytes, at: int, header: bytes, tail: bytes) -> None:
    position = at % (len(data) + 1)
    decode_any(data[:position] + header + tail)
    decode_any(data[:position] + header + tail + data[position:])


def test_a_message_at_the_size_limit() -> None:
    limits = Limits(max_message_bytes=1000)
    entries = Entries(CATALOG_LOG, (b"x" * 900,))
    decode_message(encode_message(entries), limits)
    with pytest.raises(ProtocolError):
        decode_message(encode_message(Entries(CATALOG_LOG, (b"x" * 1000,))), limits)


@FUZZ
@given(st.text(max_size=80))
def test_parse_node_id_random_text(text: str) -> None:
    try:
        key = parse_node_id(text)
    except ValueError:
        return
    assert len(key) == 32 and parse_node_id(node_id(key)) == key


@FUZZ
@given(st.binary(min_size=32, max_size=32), EDITS)
def test_parse_node_id_mutated(key: bytes, edits: list[tuple[int, int, int]]) -> None:
    text = mutate(node_id(key).encode("ascii"), edits).decode("latin-1")
    try:
        parsed = parse_node_id(text)
    except ValueError:
        return
    # Whatever is accepted names one key, and that key's id reads back the same.
    assert parse_node_id(node_id(parsed)) == parsed
    assert node_id(parsed).replace("-", "") == "".join(text.split()).replace("-", "").upper()


def test_the_samples_are_valid() -> None:
    # The mutations start from real inputs: check they decode, or the fuzzing is shallow.
    for data in MESSAGES:
        assert decode_message(data) in SAMPLE_MESSAGES
    for raw in ENTRIES:
        assert isinstance(decode_entry(raw, now_ms=None), Entry)
    assert ForkProof.from_bytes(PROOFS[0]).to_bytes() == PROOFS[0]
    for frame in FRAMES:
        sealed = ChaCha20Poly1305(FRAME_KEY).encrypt(bytes(12), frame, None)
        assert Channel(FRAME_KEY, FRAME_KEY).open(sealed) in MESSAGES
