"""Canonical encoding, node ids, signed entries, body schemas, chain placement and fork proofs."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    BadSignature,
    ChainError,
    DecodeError,
    Entry,
    ForkProof,
    Head,
    InvalidBody,
    LimitExceeded,
    Limits,
    Placement,
    TimestampError,
    UnknownKind,
    decode_entry,
    fork_proof,
    node_id,
    parse_node_id,
    place,
    public_bytes,
    short_id,
    sign_entry,
)
from protocol.encoding import is_canonical, pack, unpack
from protocol.entries import SIGN_CONTEXT
from protocol.identity import _check_char

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
AUTHOR = public_bytes(KEY)
TS = 1_700_000_000_000
PUT = {"ops": [["put", "r1", {"title": "T"}]]}


def entry(seq: int = 1, prev: bytes | None = None, *, log: str = "catalog", **kw: Any) -> Entry:
    key = kw.pop("key", KEY)
    args: dict[str, Any] = {"timestamp": TS, "kind": "catalog", "body": PUT, **kw}
    return sign_entry(key, log=log, seq=seq, prev=prev, **args)


def forge(
    fields: list[Any], key: Ed25519PrivateKey = KEY, *, payload: bytes | None = None
) -> bytes:
    """A correctly signed entry around any payload: tests the checks after the signature's."""
    body = pack(fields) if payload is None else payload
    return pack([body, key.sign(SIGN_CONTEXT + body)])


def fields(**over: Any) -> list[Any]:
    base: dict[str, Any] = {
        "fmt": 1,
        "author": AUTHOR,
        "log": "catalog",
        "seq": 1,
        "prev": None,
        "timestamp": TS,
        "kind": "catalog",
        "body": PUT,
    }
    base.update(over)
    return list(base.values())


def decode(raw: bytes, *, now_ms: int | None = TS, limits: Limits | None = None) -> Entry:
    return decode_entry(raw, now_ms=now_ms, limits=limits or Limits())


# --- canonical msgpack -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "hex_"),
    [
        (0, "00"),
        (127, "7f"),
        (128, "cc80"),
        (255, "ccff"),
        (256, "cd0100"),
        (65536, "ce00010000"),
        (2**32, "cf0000000100000000"),
        (-1, "ff"),
        (-32, "e0"),
        (-33, "d0df"),
        (-129, "d1ff7f"),
        (None, "c0"),
        (False, "c2"),
        (True, "c3"),
        ("", "a0"),
        ("a" * 32, "d920" + "61" * 32),
        (b"", "c400"),
        (b"\x01", "c40101"),
        ([], "90"),
        ({}, "80"),
        ({"b": 1, "a": 2, "ab": 3}, "83a16102a2616203a16201"),  # a < ab < b
        ({"é": 1, "z": 2}, "82a17a02a2c3a901"),  # sorted by code point = by UTF-8 bytes
    ],
)
def test_pack_is_canonical(value: Any, hex_: str) -> None:
    assert pack(value).hex() == hex_


def test_pack_sorts_nested_maps_and_refuses_floats() -> None:
    assert pack([{"z": {"b": 1, "a": 0}}]) == bytes.fromhex("9181a17a82a16100a16201")
    with pytest.raises(TypeError):
        pack({"x": 1.5})


JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(JSONISH)
def test_pack_unpack_round_trip(value: Any) -> None:
    data = pack(value)
    back = unpack(data, what="value", max_bytes=1 << 20)
    assert back == value
    assert pack(back) == data  # canonical: a second encoding gives the same bytes


@pytest.mark.parametrize(
    ("data", "error", "text"),
    [
        (b"\x01\x02", DecodeError, "trailing"),
        (b"", DecodeError, "not valid msgpack"),
        (b"\x92\x01", DecodeError, "not valid msgpack"),
        (b"\xc1", DecodeError, "not valid msgpack"),
        (b"\xa2\xff\xfe", DecodeError, "not valid msgpack"),  # invalid UTF-8
        (b"\xa3\xed\xa0\x80", DecodeError, "not valid msgpack"),  # a surrogate in UTF-8
        (b"\x81\x01\x01", DecodeError, "not valid msgpack"),  # integer map key
        (b"\x81\x90\x01", DecodeError, "not valid msgpack"),  # array map key
        (b"\xd4\x01\x01", LimitExceeded, "ext"),
        (b"\xc7\x00\x07", DecodeError, "extension"),  # an empty ext passes max_ext_len=0
        (b"\x91\xc7\x00\xff", DecodeError, "timestamp"),
        (b"\xdd\xff\xff\xff\xff", LimitExceeded, "array"),
        (b"\xdf\xff\xff\xff\xff", LimitExceeded, "map"),
        (b"\x91" * 9 + b"\xc0", LimitExceeded, "deeper"),
        (b"\x81\xa1a" * 9 + b"\xc0", LimitExceeded, "deeper"),
        (b"\x91" * 5000 + b"\xc0", LimitExceeded, "deeper"),  # past msgpack's own stack
    ],
)
def test_unpack_rejects(data: bytes, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        unpack(data, what="value", max_bytes=1 << 20)


def test_unpack_bounds() -> None:
    assert unpack(b"\x91" * 8 + b"\xc0", what="v", max_bytes=100) == [[[[[[[[None]]]]]]]]
    with pytest.raises(LimitExceeded, match="more than the limit"):
        unpack(pack("x" * 100), what="v", max_bytes=50)
    small = Limits(max_string_bytes=4, max_list_items=3, max_map_items=2)
    assert unpack(pack("abcd"), what="v", limits=small, max_bytes=100) == "abcd"
    with pytest.raises(LimitExceeded):
        unpack(pack("abcde"), what="v", limits=small, max_bytes=100)
    with pytest.raises(LimitExceeded):
        unpack(pack({"a": 1, "b": 2, "c": 3}), what="v", limits=small, max_bytes=100)
    with pytest.raises(LimitExceeded):
        unpack(pack(b"12345"), what="v", limits=small, max_bytes=4)


# --- node ids --------------------------------------------------------------------------------


def test_node_id_format() -> None:
    nid = node_id(AUTHOR)
    assert re.fullmatch(r"([A-Z2-7]{4}-){13}[A-Z2-7]", nid)
    compact = nid.replace("-", "")
    assert compact[52] == _check_char(compact[:52])
    assert parse_node_id(nid) == AUTHOR
    assert short_id(AUTHOR) == nid[:9]
    assert node_id(bytes(32)) == "AAAA-" * 13 + "6"


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_node_id_round_trip_forgives_case_spaces_dashes(key: bytes) -> None:
    nid = node_id(key)
    assert parse_node_id(nid) == key
    assert parse_node_id(nid.lower()) == key
    assert parse_node_id(nid.replace("-", "")) == key
    assert parse_node_id(" " + nid.replace("-", " ") + "\n") == key


@pytest.mark.parametrize("length", [0, 31, 33])
def test_node_id_needs_32_bytes(length: int) -> None:
    with pytest.raises(ValueError):
        node_id(bytes(length))


def test_parse_node_id_rejects() -> None:
    nid = node_id(AUTHOR)
    compact = nid.replace("-", "")
    wrong_check = next(c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567" if c != compact[52])
    cases = [
        "",
        compact[:52],  # no check character
        compact + "A",
        compact[:52] + wrong_check,
        compact[:10] + "0" + compact[11:],  # 0 and 1 and 8 are not base32
        compact[:10] + "1" + compact[11:],
        compact.replace("S", "ſ", 1),  # "ſ".upper() == "S": must not be forgiven
        nid.replace("-", "\u2003"),  # an em space is not ASCII whitespace
    ]
    for text in cases:
        with pytest.raises(ValueError):
            parse_node_id(text)


def test_parse_node_id_rejects_nonzero_padding_bits() -> None:
    # The 52nd character holds one key bit and four zero bits; "AB" ends differ only in those.
    body = "A" * 51 + "B"
    with pytest.raises(ValueError, match="padding"):
        parse_node_id(body + _check_char(body))


def test_a_typo_is_caught_by_the_check_character() -> None:
    compact = node_id(AUTHOR).replace("-", "")
    caught = 0
    for i in range(52):
        swapped = "B" if compact[i] != "B" else "C"
        try:
            parse_node_id(compact[:i] + swapped + compact[i + 1 :])
        except ValueError:
            caught += 1
    assert caught >= 48  # a 5-bit check misses about one typo in 32


# --- entries ---------------------------------------------------------------------------------


def test_sign_and_decode_round_trip() -> None:
    e1 = entry()
    e2 = entry(2, e1.hash, body={"ops": [["del", "r1"]]}, timestamp=TS + 1)
    for e in (e1, e2):
        d = decode(e.raw)
        assert d == e
        payload, signature = msgpack.unpackb(e.raw)
        assert e.hash == hashlib.sha256(payload).digest()
        KEY.public_key().verify(signature, SIGN_CONTEXT + payload)
        assert msgpack.unpackb(payload) == [
            1,
            AUTHOR,
            e.log,
            e.seq,
            e.prev,
            e.timestamp,
            "catalog",
            e.body,
        ]
    assert e2.prev == e1.hash
    assert e1.where == f"entry {short_id(AUTHOR)}/catalog#1"


def test_signatures_are_deterministic_and_bind_every_field() -> None:
    assert entry().raw == entry().raw
    variants = [
        entry(log="other"),
        entry(timestamp=TS + 1),
        entry(body={"ops": [["put", "r1", {"title": "U"}]]}),
        entry(key=OTHER),
        entry(2, bytes(32)),
    ]
    hashes = {e.hash for e in variants} | {entry().hash}
    assert len(hashes) == len(variants) + 1


def test_signature_by_another_key_is_rejected() -> None:
    with pytest.raises(BadSignature, match=r"catalog#1: signature"):
        decode(forge(fields(), key=OTHER))


def test_flipped_bits_never_decode() -> None:
    raw = entry().raw
    for i in range(len(raw)):
        for bit in (0x01, 0x80):
            mutated = raw[:i] + bytes([raw[i] ^ bit]) + raw[i + 1 :]
            with pytest.raises((BadSignature, DecodeError, LimitExceeded)):
                decode(mutated)


@pytest.mark.parametrize(
    ("over", "text"),
    [
        ({"fmt": 2}, "format"),
        ({"author": AUTHOR[:31]}, "author"),
        ({"log": ""}, "log id"),
        ({"log": "x" * 65}, "log id"),
        ({"log": 7}, "log id"),
        ({"seq": 0}, "seq"),
        ({"seq": True}, "seq"),
        ({"seq": 2**63}, "seq"),
        ({"prev": bytes(32)}, "first entry"),
        ({"seq": 2, "prev": None}, "prev"),
        ({"seq": 2, "prev": bytes(31)}, "prev"),
        ({"timestamp": -1}, "timestamp"),
        ({"timestamp": 2**63}, "timestamp"),
        ({"timestamp": "now"}, "timestamp"),
        ({"kind": b"catalog"}, "kind"),
    ],
)
def test_envelope_errors(over: dict[str, Any], text: str) -> None:
    with pytest.raises(DecodeError, match=text):
        decode(forge(fields(**over)))


def test_envelope_bounds_accepted() -> None:
    decode(forge(fields(log="x" * 64, seq=2**63 - 1, prev=bytes(32), timestamp=0)))
    decode(forge(fields(log="é" * 32)))  # 64 bytes of UTF-8
    with pytest.raises(DecodeError):
        decode(forge(fields(log="é" * 33)))


def test_outer_shape_errors() -> None:
    good = entry()
    payload, signature = msgpack.unpackb(good.raw)
    cases = [
        pack([payload]),
        pack([payload, signature, b""]),
        pack([payload.decode("latin-1"), signature]),
        pack([payload, signature[:63]]),
        pack({"payload": payload}),
        good.raw + b"\x00",
        forge([1, AUTHOR]),
        forge([], payload=pack("not an array")),
    ]
    for raw in cases:
        with pytest.raises(DecodeError):
            decode(raw)


def test_non_canonical_encodings_are_rejected() -> None:
    e = entry()
    payload, signature = msgpack.unpackb(e.raw)
    # The same value with a padded (bin32) signature header.
    padded = (
        b"\x92" + b"\xc4" + bytes([len(payload)]) + payload + b"\xc6\x00\x00\x00\x40" + signature
    )
    assert msgpack.unpackb(padded) == [payload, signature]
    # A body whose map keys are out of order, or repeated: still correctly signed by the author.
    unsorted = msgpack.packb({"title": "T", "authors": []}, use_bin_type=True)
    body = b"\x81\xa3ops\x91\x93\xa3put\xa2r1" + unsorted
    doubled = b"\x82\xa3ops\x91\x92\xa3del\xa2r1\xa3ops\x91\x92\xa3del\xa2r2"
    before_body = pack(fields())[: -len(pack(PUT))]  # the array header and seven fields
    assert before_body[:2] == b"\x98\x01"
    long_int = b"\x98\xcc\x01" + before_body[2:]  # format 1 written as uint8
    cases = [
        padded,
        forge([], payload=before_body + body),
        forge([], payload=before_body + doubled),
        forge([], payload=long_int + pack(PUT)),
        forge([], payload=msgpack.packb(fields(body={"ops": [["put", "r", {"year": 1.0}]]}))),
    ]
    assert msgpack.unpackb(cases[2])  # well-formed msgpack, just not canonical
    for raw in cases:
        with pytest.raises(DecodeError, match="canonical"):
            decode(raw)


def test_future_timestamps() -> None:
    skew = Limits().max_future_skew_ms
    raw = forge(fields(timestamp=TS + skew))
    decode(raw, now_ms=TS)
    late = forge(fields(timestamp=TS + skew + 1))
    with pytest.raises(TimestampError, match="future"):
        decode(late, now_ms=TS)
    decode(late, now_ms=None)  # re-verifying a stored entry ignores the clock


def test_entry_size_limit() -> None:
    small = Limits(max_entry_bytes=300)
    big = {"ops": [["put", "r1", {"title": "x" * 400}]]}
    with pytest.raises(LimitExceeded):
        entry(body=big, limits=small)
    raw = entry(body=big).raw
    decode(raw)
    with pytest.raises(LimitExceeded):
        decode(raw, limits=small)


def test_invalid_author_key_is_rejected() -> None:
    # The all-ones y coordinate is not on the curve: no signature can verify.
    raw = forge(fields(author=b"\xff" * 32))
    with pytest.raises(BadSignature):
        decode(raw)


# --- entry kinds -----------------------------------------------------------------------------

FULL_RECORD = {
    "title": "Der Zauberberg",
    "authors": ["Mann, Thomas"],
    "isbn": ["9783596294336"],
    "issn": [],
    "subjects": ["Roman"],
    "series": ["Fischer"],
    "responsibility": "Thomas Mann",
    "publisher": "Fischer",
    "place": "Frankfurt",
    "edition": "3",
    "language": "ger",
    "call_number": "M 12",
    "format": "book",
    "description": "",
    "year": 1924,
    "holdings": [{"call_number": "M 12", "barcode": "1", "location": "A", "note": ""}, {}],
}

VALID_BODIES: list[tuple[str, Any]] = [
    ("catalog", {"ops": [["put", "r", FULL_RECORD], ["del", "r"], ["del", "x" * 256]]}),
    ("catalog", {"ops": [["put", "r", {"title": "", "year": -9999}]]}),
    ("catalog", {"ops": [["put", "r", {"title": "t", "year": 9999}]]}),
    ("profile", {"name": "Stadtbibliothek"}),
    ("profile", {"name": "n" * 200, "isil": "DE-1", "contact": "a@b"}),
]

INVALID_BODIES: list[tuple[str, Any, type[Exception]]] = [
    ("bogus", {"ops": []}, UnknownKind),
    ("catalog", [], InvalidBody),
    ("catalog", {}, InvalidBody),
    ("catalog", {"ops": []}, InvalidBody),
    ("catalog", {"ops": {}}, InvalidBody),
    ("catalog", {"ops": [["del", "r"]], "x": 1}, InvalidBody),
    ("catalog", {"ops": [[]]}, InvalidBody),
    ("catalog", {"ops": ["del"]}, InvalidBody),
    ("catalog", {"ops": [["del"]]}, InvalidBody),
    ("catalog", {"ops": [["del", "r", {}]]}, InvalidBody),
    ("catalog", {"ops": [["put", "r"]]}, InvalidBody),
    ("catalog", {"ops": [["move", "r"]]}, InvalidBody),
    ("catalog", {"ops": [["del", ""]]}, InvalidBody),
    ("catalog", {"ops": [["del", "x" * 257]]}, InvalidBody),
    ("catalog", {"ops": [["del", 5]]}, InvalidBody),
    ("catalog", {"ops": [["put", "r", []]]}, InvalidBody),
    ("catalog", {"ops": [["put", "r", {}]]}, InvalidBody),
    ("catalog", {"ops": [["put", "r", {"title": 1}]]}, InvalidBody),
    ("catalog", {"ops": [["put", "r", {"title": "t", "isbn": "978"}]]}, InvalidBody),
    ("catalog", {"ops": [["put", "r", {"title": "t", "authors": [1]}]]}, InvalidBody),
    ("catalog", {"ops": [["put", "r", {"title": "t", "publisher": []}]]}, InvalidBody),
    ("catalog", {"ops": [["put", "r", {"title": "t", "year": "1924"}]]}, InvalidBody),
    ("catalog", {"ops": [["put", "r", {"title": "t", "year": True}]]}, InvalidBody),
    ("catalog", {"ops": [["put", "r", {"title": "t", "year": 10000}]]}, InvalidBody),
    ("catalog", {"ops": [["put", "r", {"title": "t", "colour": "red"}]]}, InvalidBody),
    ("catalog", {"ops": [["put", "r", {"title": "t", "holdings": {}}]]}, InvalidBody),
    ("catalog", {"ops": [["put", "r", {"title": "t", "holdings": ["x"]}]]}, InvalidBody),
    ("catalog", {"ops": [["put", "r", {"title": "t", "holdings": [{"shelf": "1"}]}]]}, InvalidBody),
    ("catalog", {"ops": [["put", "r", {"title": "t", "holdings": [{"note": 1}]}]]}, InvalidBody),
    ("catalog", {"ops": [["put", "r", {"title": "t", "holdings": [{}] * 1001}]]}, InvalidBody),
    ("profile", {}, InvalidBody),
    ("profile", {"name": ""}, InvalidBody),
    ("profile", {"name": " \t"}, InvalidBody),
    ("profile", {"name": "n" * 201}, InvalidBody),
    ("profile", {"name": 5}, InvalidBody),
    ("profile", {"name": "n", "isil": 5}, InvalidBody),
    ("profile", {"name": "n", "contact": None}, InvalidBody),
    ("profile", {"name": "n", "address": "x"}, InvalidBody),
]


@pytest.mark.parametrize(("kind", "body"), VALID_BODIES)
def test_valid_bodies(kind: str, body: Any) -> None:
    e = entry(log=kind, kind=kind, body=body)
    assert decode(e.raw).body == body


@pytest.mark.parametrize(("kind", "body", "error"), INVALID_BODIES)
def test_invalid_bodies_are_refused_by_signer_and_receiver(
    kind: str, body: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        entry(kind=kind, body=body)
    with pytest.raises(error, match="catalog#1"):
        decode(forge(fields(kind=kind, body=body)))


def test_op_count_limit() -> None:
    limits = Limits(max_ops_per_entry=2)
    two = {"ops": [["del", "a"], ["del", "b"]]}
    entry(body=two, limits=limits)
    with pytest.raises(InvalidBody, match="operations"):
        entry(body={"ops": [*two["ops"], ["del", "c"]]}, limits=limits)


def test_list_field_limit() -> None:
    limits = Limits(max_list_items=2)
    with pytest.raises(InvalidBody):
        entry(body={"ops": [["put", "r", {"title": "t", "isbn": ["1", "2", "3"]}]]}, limits=limits)


# --- chains ----------------------------------------------------------------------------------

E1 = entry()
E2 = entry(2, E1.hash)
E3 = entry(3, E2.hash)
E3_FORK = entry(3, E2.hash, body={"ops": [["del", "r1"]]})
E2_OTHER_LOG = entry(2, E1.hash, log="other")


def test_place() -> None:
    h1, h2 = Head(1, E1.hash), Head(2, E2.hash)
    assert place(None, E1) is Placement.NEXT
    assert place(h1, E2) is Placement.NEXT
    assert place(None, E2) is Placement.AHEAD
    assert place(h1, E3) is Placement.AHEAD
    assert place(h2, E1) is Placement.HELD  # no hash to compare: trust the duplicate
    assert place(h2, E1, E1.hash) is Placement.HELD
    assert place(h2, E2, E2.hash) is Placement.HELD
    assert place(Head(3, E3.hash), E3_FORK, E3.hash) is Placement.CONFLICT
    with pytest.raises(ChainError, match=r"#1"):
        place(Head(1, bytes(32)), E2)


def test_fork_proof() -> None:
    proof = fork_proof(E3, E3_FORK)
    assert proof is not None
    a, b = ForkProof.from_bytes(proof.to_bytes()).verify()
    assert (a, b) == (E3, E3_FORK)
    assert proof.to_bytes() == pack([E3.raw, E3_FORK.raw])
    assert fork_proof(E3, E3) is None
    assert fork_proof(E2, E3) is None
    assert fork_proof(E2, E2_OTHER_LOG) is None
    assert fork_proof(E1, entry(key=OTHER)) is None


def test_forged_fork_proofs_are_rejected() -> None:
    stranger = entry(3, E2.hash, key=OTHER)
    tampered = bytearray(E3_FORK.raw)
    tampered[-1] ^= 1
    cases: list[tuple[bytes, type[Exception]]] = [
        (pack([E3.raw, E3.raw]), DecodeError),
        (pack([E2.raw, E3.raw]), DecodeError),
        (pack([E3.raw, stranger.raw]), DecodeError),
        (pack([E2.raw, E2_OTHER_LOG.raw]), DecodeError),
        (pack([E3.raw, bytes(tampered)]), BadSignature),
        (pack([E3.raw]), DecodeError),
        (pack([E3.raw, E3_FORK.raw, E1.raw]), DecodeError),
        (pack([E3.raw, "x"]), DecodeError),
        (pack({"a": E3.raw}), DecodeError),
        (pack([E3.raw, E3_FORK.raw]) + b"\x00", DecodeError),
    ]
    for data, error in cases:
        with pytest.raises(error):
            ForkProof.from_bytes(data)


_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=4)
    | st.binary(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=3) | st.binary(max_size=2), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(_values)
@settings(max_examples=400, deadline=None)
def test_the_quick_canonical_check_agrees_with_re_encoding(value: Any) -> None:
    """``is_canonical`` (decode_entry's check, no sorted copy) says what ``pack`` would."""
    data = msgpack.packb(value, use_bin_type=True)  # keys in whatever order they came
    decoded = msgpack.unpackb(data, raw=False, strict_map_key=False)
    try:
        expected = pack(decoded) == data
    except TypeError:  # floats, mixed key types
        expected = False
    assert is_canonical(decoded, data) is expected
