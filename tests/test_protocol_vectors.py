"""The test vectors in docs/protocol.md, checked against the code in both directions.

The JSON block after the ``<!-- test-vectors -->`` line is the contract for other
implementations. Regenerate it after a deliberate wire change with
``PYTHONPATH=. python -m tests.test_protocol_vectors`` and paste the output into the doc.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol import (
    ForkProof,
    Head,
    LogKey,
    ProtocolError,
    decode_entry,
    fork_proof,
    node_id,
    parse_node_id,
    public_bytes,
    sign_entry,
)
from protocol.encoding import pack, unpack
from protocol.entries import SIGN_CONTEXT
from protocol.messages import (
    PROTOCOL_VERSION,
    Ack,
    Auth,
    Close,
    Entries,
    Frontier,
    Hello,
    Message,
    Request,
    decode_message,
    encode_message,
)
from protocol.session import AUTH_CONTEXT, Session

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
MARKER = "<!-- test-vectors -->"

# --- the generator: the inputs are fixed here, everything else is computed ------------------

SEED_A = bytes(range(32))
SEED_B = bytes(range(32, 64))
NONCE_A = bytes.fromhex("a0" * 32)
NONCE_B = bytes.fromhex("b0" * 32)
TS = 1_700_000_000_000
ENTRY_INPUTS: list[dict[str, Any]] = [
    {
        "name": "profile",
        "log": "profile",
        "seq": 1,
        "prev": None,
        "timestamp": TS,
        "kind": "profile",
        "body": {
            "name": "Stadtbibliothek Musterstadt",
            "isil": "DE-MUS1",
            "contact": "katalog@example.org",
        },
    },
    {
        "name": "catalog-1",
        "log": "catalog",
        "seq": 1,
        "prev": None,
        "timestamp": TS + 1000,
        "kind": "catalog",
        "body": {
            "ops": [
                [
                    "put",
                    "b1",
                    {
                        "title": "Der Zauberberg",
                        "authors": ["Mann, Thomas"],
                        "year": 1924,
                        "language": "ger",
                        "isbn": ["9783596294336"],
                        "holdings": [
                            {"barcode": "30001", "call_number": "Ma 12", "location": "Lesesaal"}
                        ],
                    },
                ],
                ["del", "b0"],
            ]
        },
    },
    {
        "name": "catalog-2",
        "log": "catalog",
        "seq": 2,
        "prev": "catalog-1",  # replaced by that entry's hash
        "timestamp": TS + 2000,
        "kind": "catalog",
        "body": {"ops": [["put", "b2", {"title": "Grüne Wege", "year": -44}]]},
    },
    {
        "name": "catalog-2-fork",
        "log": "catalog",
        "seq": 2,
        "prev": "catalog-1",
        "timestamp": TS + 3000,
        "kind": "catalog",
        "body": {"ops": [["del", "b1"]]},
    },
]
CANONICAL_EXAMPLES: list[Any] = [
    0,
    127,
    128,
    -1,
    -33,
    65536,
    2**32,
    "",
    "Grüne",
    [1, [2, None, True, False]],
    {"title": "t", "authors": [], "year": 1924, "a": 0, "ab": 1, "b": 2},
]


def signing_key(seed: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(seed)


def build_vectors() -> dict[str, Any]:
    key_a, key_b = signing_key(SEED_A), signing_key(SEED_B)
    pub_a, pub_b = public_bytes(key_a), public_bytes(key_b)
    entries: dict[str, Any] = {}
    out_entries = []
    for spec in ENTRY_INPUTS:
        prev = entries[spec["prev"]].hash if spec["prev"] else None
        e = sign_entry(
            key_a,
            log=spec["log"],
            seq=spec["seq"],
            prev=prev,
            timestamp=spec["timestamp"],
            kind=spec["kind"],
            body=spec["body"],
        )
        entries[spec["name"]] = e
        payload, signature = msgpack.unpackb(e.raw)
        out_entries.append(
            {
                "name": spec["name"],
                "signer_seed": SEED_A.hex(),
                "author": pub_a.hex(),
                "log": e.log,
                "seq": e.seq,
                "prev": prev.hex() if prev else None,
                "timestamp": e.timestamp,
                "kind": e.kind,
                "body": _sorted(e.body),
                "payload": payload.hex(),
                "signature": signature.hex(),
                "hash": e.hash.hex(),
                "signed": e.raw.hex(),
            }
        )
    a = Session(key_a, NONCE_A, "Stadtbibliothek Musterstadt")
    b = Session(key_b, NONCE_B, "Gemeindebücherei Beispiel")
    hello_a, hello_b = a.hello(), b.hello()
    a.receive(hello_b)
    b.receive(hello_a)
    auth_a, auth_b = a.auth(), b.auth()
    sig_a, sig_b = msgpack.unpackb(auth_a)[1], msgpack.unpackb(auth_b)[1]
    cat = LogKey(pub_a, "catalog")
    c1, c2 = entries["catalog-1"], entries["catalog-2"]
    frontier = Frontier(
        ((cat, Head(2, c2.hash)), (LogKey(pub_a, "profile"), Head(1, entries["profile"].hash)))
    )
    messages: list[tuple[str, Message]] = [
        ("hello", Hello(PROTOCOL_VERSION, pub_a, NONCE_A, "Stadtbibliothek Musterstadt")),
        ("auth", Auth(sig_a)),
        ("frontier", frontier),
        ("request", Request(cat, 1, 2)),
        ("entries", Entries(cat, (c1.raw, c2.raw))),
        ("ack", Ack(cat, 2)),
        ("close", Close("done")),
    ]
    assert encode_message(messages[0][1]) == hello_a and encode_message(messages[1][1]) == auth_a
    proof = fork_proof(c2, entries["catalog-2-fork"])
    assert proof is not None
    tampered = bytearray(c1.raw)
    tampered[-1] ^= 0x01
    return {
        "entry_sign_context": SIGN_CONTEXT.hex(),
        "auth_context": AUTH_CONTEXT.hex(),
        "keys": [
            {"seed": seed.hex(), "public_key": pub.hex(), "node_id": node_id(pub)}
            for seed, pub in ((SEED_A, pub_a), (SEED_B, pub_b))
        ],
        "node_ids": {
            "accepted": [
                {"text": node_id(pub_a).lower(), "public_key": pub_a.hex()},
                {"text": node_id(pub_a).replace("-", " "), "public_key": pub_a.hex()},
                {"text": node_id(pub_a).replace("-", ""), "public_key": pub_a.hex()},
            ],
            "rejected": [
                _wrong_check(node_id(pub_a)),
                node_id(pub_a)[:-2],
                "A" * 51 + "B" + _check_char("A" * 51 + "B"),
            ],
        },
        "canonical_msgpack": [{"value": v, "encoded": pack(v).hex()} for v in CANONICAL_EXAMPLES],
        "entries": out_entries,
        "invalid_entries": [
            {
                "why": "signature byte flipped",
                "reason": "signature",
                "signed": bytes(tampered).hex(),
            },
            {
                "why": "signature in bin32 instead of bin8: not canonical",
                "reason": "decode",
                "signed": _bin32_signature(c1.raw).hex(),
            },
        ],
        "messages": [
            {
                "type": name,
                "code": code,
                "fields": _fields(msg),
                "encoded": encode_message(msg).hex(),
            }
            for code, (name, msg) in enumerate(messages, start=1)
        ],
        "auth": {
            "a": {"seed": SEED_A.hex(), "nonce": NONCE_A.hex(), "hello": hello_a.hex()},
            "b": {"seed": SEED_B.hex(), "nonce": NONCE_B.hex(), "hello": hello_b.hex()},
            "transcript_signed_by_a": (AUTH_CONTEXT + NONCE_B + NONCE_A + pub_a + pub_b).hex(),
            "signature_a": sig_a.hex(),
            "auth_a": auth_a.hex(),
            "transcript_signed_by_b": (AUTH_CONTEXT + NONCE_A + NONCE_B + pub_b + pub_a).hex(),
            "signature_b": sig_b.hex(),
            "auth_b": auth_b.hex(),
        },
        "fork_proof": {
            "first": "catalog-2",
            "second": "catalog-2-fork",
            "encoded": proof.to_bytes().hex(),
        },
    }


def _check_char(body: str) -> str:
    return "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[hashlib.sha256(body.encode()).digest()[0] % 32]


def _wrong_check(nid: str) -> str:
    return nid[:-1] + ("A" if nid[-1] != "A" else "B")


def _bin32_signature(raw: bytes) -> bytes:
    payload, signature = msgpack.unpackb(raw)
    return b"\x92" + bytes(msgpack.packb(payload)) + b"\xc6\x00\x00\x00\x40" + bytes(signature)


def _key_fields(key: LogKey) -> dict[str, Any]:
    return {"author": key.author.hex(), "log": key.log}


def _fields(msg: Message) -> dict[str, Any]:
    match msg:
        case Hello(version, node_key, nonce, name):
            return {
                "version": version,
                "node_key": node_key.hex(),
                "nonce": nonce.hex(),
                "name": name,
            }
        case Auth(signature):
            return {"signature": signature.hex()}
        case Frontier(heads):
            return {
                "heads": [{**_key_fields(k), "seq": h.seq, "hash": h.hash.hex()} for k, h in heads]
            }
        case Request(key, first, last):
            return {**_key_fields(key), "first": first, "last": last}
        case Entries(key, raws):
            return {**_key_fields(key), "entries": [r.hex() for r in raws]}
        case Ack(key, seq):
            return {**_key_fields(key), "seq": seq}
        case Close(reason):
            return {"reason": reason}
    raise AssertionError(msg)  # pragma: no cover


def _message(kind: str, f: dict[str, Any]) -> Message:
    """The reverse of ``_fields``: a message object from the doc's JSON."""

    def key() -> LogKey:
        return LogKey(bytes.fromhex(f["author"]), f["log"])

    match kind:
        case "hello":
            return Hello(
                f["version"], bytes.fromhex(f["node_key"]), bytes.fromhex(f["nonce"]), f["name"]
            )
        case "auth":
            return Auth(bytes.fromhex(f["signature"]))
        case "frontier":
            return Frontier(
                tuple(
                    (
                        LogKey(bytes.fromhex(h["author"]), h["log"]),
                        Head(h["seq"], bytes.fromhex(h["hash"])),
                    )
                    for h in f["heads"]
                )
            )
        case "request":
            return Request(key(), f["first"], f["last"])
        case "entries":
            return Entries(key(), tuple(bytes.fromhex(r) for r in f["entries"]))
        case "ack":
            return Ack(key(), f["seq"])
        case "close":
            return Close(f["reason"])
    raise AssertionError(kind)  # pragma: no cover


# --- the checks ------------------------------------------------------------------------------


def load_vectors() -> dict[str, Any]:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(re.escape(MARKER) + r"\s*\n```json\n(.*?)\n```", text, re.DOTALL)
    assert match, f"{DOC} has no ```json block right after {MARKER}"
    assert text.count(MARKER) == 1
    vectors: dict[str, Any] = json.loads(match.group(1))
    return vectors


@pytest.fixture(scope="module")
def vectors() -> dict[str, Any]:
    return load_vectors()


def test_the_doc_matches_the_generator(vectors: dict[str, Any]) -> None:
    # Any drift means the wire format changed: regenerate deliberately, never silently.
    assert vectors == json.loads(json.dumps(build_vectors()))


def test_contexts(vectors: dict[str, Any]) -> None:
    assert bytes.fromhex(vectors["entry_sign_context"]) == b"peernode/entry/v1\x00"
    assert bytes.fromhex(vectors["auth_context"]) == b"peernode/auth/v1\x00"


def test_keys_and_node_ids(vectors: dict[str, Any]) -> None:
    for k in vectors["keys"]:
        pub = public_bytes(signing_key(bytes.fromhex(k["seed"])))
        assert pub.hex() == k["public_key"]
        assert node_id(pub) == k["node_id"]
        assert parse_node_id(k["node_id"]).hex() == k["public_key"]
    for ok in vectors["node_ids"]["accepted"]:
        assert parse_node_id(ok["text"]).hex() == ok["public_key"]
    for bad in vectors["node_ids"]["rejected"]:
        with pytest.raises(ValueError):
            parse_node_id(bad)


def test_canonical_msgpack(vectors: dict[str, Any]) -> None:
    for example in vectors["canonical_msgpack"]:
        data = bytes.fromhex(example["encoded"])
        assert pack(example["value"]) == data
        assert unpack(data, what="vector", max_bytes=1000) == example["value"]


def test_entries_encode(vectors: dict[str, Any]) -> None:
    for v in vectors["entries"]:
        key = signing_key(bytes.fromhex(v["signer_seed"]))
        prev = bytes.fromhex(v["prev"]) if v["prev"] else None
        e = sign_entry(
            key,
            log=v["log"],
            seq=v["seq"],
            prev=prev,
            timestamp=v["timestamp"],
            kind=v["kind"],
            body=v["body"],
        )
        assert e.raw.hex() == v["signed"]
        assert e.hash.hex() == v["hash"]
        # Independently of protocol.encoding: the payload is the 8-field array, keys sorted.
        fields = [1, bytes.fromhex(v["author"]), v["log"], v["seq"], prev, v["timestamp"]]
        payload = msgpack.packb([*fields, v["kind"], _sorted(v["body"])], use_bin_type=True)
        assert payload.hex() == v["payload"]
        signed = msgpack.packb([payload, bytes.fromhex(v["signature"])], use_bin_type=True)
        assert signed.hex() == v["signed"]
        assert hashlib.sha256(payload).hexdigest() == v["hash"]


def test_entries_decode(vectors: dict[str, Any]) -> None:
    for v in vectors["entries"]:
        e = decode_entry(bytes.fromhex(v["signed"]), now_ms=None)
        assert e.author.hex() == v["author"]
        assert (e.log, e.seq, e.timestamp, e.kind, e.body) == (
            v["log"],
            v["seq"],
            v["timestamp"],
            v["kind"],
            v["body"],
        )
        assert (e.prev.hex() if e.prev else None) == v["prev"]
        assert e.hash.hex() == v["hash"]
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(v["author"]))
        public.verify(bytes.fromhex(v["signature"]), SIGN_CONTEXT + bytes.fromhex(v["payload"]))


def test_chained_entry_points_at_its_predecessor(vectors: dict[str, Any]) -> None:
    by_name = {v["name"]: v for v in vectors["entries"]}
    assert by_name["catalog-2"]["prev"] == by_name["catalog-1"]["hash"]
    assert by_name["catalog-1"]["prev"] is None


def test_invalid_entries(vectors: dict[str, Any]) -> None:
    for v in vectors["invalid_entries"]:
        with pytest.raises(ProtocolError) as caught:
            decode_entry(bytes.fromhex(v["signed"]), now_ms=None)
        assert caught.value.reason == v["reason"], v["why"]


def test_messages(vectors: dict[str, Any]) -> None:
    codes = {m["type"]: m["code"] for m in vectors["messages"]}
    assert codes == {
        "hello": 1,
        "auth": 2,
        "frontier": 3,
        "request": 4,
        "entries": 5,
        "ack": 6,
        "close": 7,
    }
    for m in vectors["messages"]:
        data = bytes.fromhex(m["encoded"])
        msg = _message(m["type"], m["fields"])
        assert encode_message(msg) == data
        assert decode_message(data) == msg
        assert msgpack.unpackb(data)[0] == m["code"]


def test_auth_transcript(vectors: dict[str, Any]) -> None:
    auth = vectors["auth"]
    key_a, key_b = (signing_key(bytes.fromhex(auth[s]["seed"])) for s in "ab")
    pub_a, pub_b = public_bytes(key_a), public_bytes(key_b)
    nonce_a, nonce_b = (bytes.fromhex(auth[s]["nonce"]) for s in "ab")
    transcript_a = AUTH_CONTEXT + nonce_b + nonce_a + pub_a + pub_b
    assert transcript_a.hex() == auth["transcript_signed_by_a"]
    assert key_a.sign(transcript_a).hex() == auth["signature_a"]
    transcript_b = AUTH_CONTEXT + nonce_a + nonce_b + pub_b + pub_a
    assert transcript_b.hex() == auth["transcript_signed_by_b"]
    assert key_b.sign(transcript_b).hex() == auth["signature_b"]
    # And through the state machine: B accepts A's recorded hello and auth for B's nonce.
    b = Session(key_b, nonce_b, "B")
    b.hello()
    b.receive(bytes.fromhex(auth["a"]["hello"]))
    b.receive(bytes.fromhex(auth["auth_a"]))
    assert b.peer_key == pub_a
    a = Session(key_a, nonce_a, "A")
    a.hello()
    a.receive(bytes.fromhex(auth["b"]["hello"]))
    assert a.auth().hex() == auth["auth_a"]
    a.receive(bytes.fromhex(auth["auth_b"]))


def test_fork_proof(vectors: dict[str, Any]) -> None:
    by_name = {v["name"]: v for v in vectors["entries"]}
    fp = vectors["fork_proof"]
    first, second = (bytes.fromhex(by_name[fp[k]]["signed"]) for k in ("first", "second"))
    data = bytes.fromhex(fp["encoded"])
    assert msgpack.packb([first, second], use_bin_type=True) == data
    proof = ForkProof.from_bytes(data)
    assert (proof.first, proof.second) == (first, second)


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value, key=lambda s: s.encode())}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


if __name__ == "__main__":
    print(json.dumps(build_vectors(), indent=2, ensure_ascii=False))
