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
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from protocol import (
    Entry,
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
    sign_heartbeat,
)
from protocol.channel import CHANNEL_INFO, DEFLATED, RAW, inflate, nonce
from protocol.encoding import pack, unpack
from protocol.entries import SIGN_CONTEXT
from protocol.liveness import HEARTBEAT_CONTEXT
from protocol.messages import (
    PROTOCOL_VERSION,
    Ack,
    Auth,
    Close,
    Entries,
    ForkNotice,
    Frontier,
    Heartbeat,
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
EPHEMERAL_A = bytes(range(64, 96))  # X25519 private keys: any 32 bytes (RFC 7748 clamps them)
EPHEMERAL_B = bytes(range(96, 128))
# The Entries message below deflated (raw RFC 1951, zlib level 6), fixed here because another
# deflate implementation may choose other (equally valid) bytes; receivers only inflate.
ENTRIES_DEFLATED = bytes.fromhex(
    "9bc27a44817921fbfecfe704f6c916dc9578ee7d6066fa936b06b397f2c6cbde694b110a35dcb13c"
    "39b12431273f7dd251469d49479ecf60245e0be381f30c0c8cdde79f66bf8009352ece2f289e3479"
    "714169c9a224c3b6e589a52519f945c513d7f826e6e5e9288464e4e72616afc8c8cf49c9cc4b2f9e"
    "d8bc3c29b128393f2575a9b1818181e1eae4c49c9cf8bcd2dca4d4a2a5be890a86462b72f2812667"
    "e6e7adf0492d4e2d4e4ccc5992599c943771ada5b985b1a9a59991a589b1b1d98a9cc4bcf4d2c4f4"
    "d4c5e9408d25992539a9eb5c528b14a2124b81260151fa92cad4c4a2b3ec2d9316a7a4e62c4a3238"
    "e290fceecbb30d7cbba4ca17c66a073df248915eb6f39ded8f03077b577d740a7c70ac5c6bbbef16"
    "f5f2b0d90c933b552ef82bedf2665274fb9caa733468fa7993531fe7711e393be9480729a1c57444"
    "612d934491caa2fcdfef98ca5fa4bbbce3f857bedf979d699bd9a10532f735dc9fef860667fe0594"
    "e09c080d4ea32688d756bb171dde9397aa109e9a9e0af6d7852b471cb6269dc99b6857a07589d5e6"
    "c51d4ff7eed56516de5bace2ccbf663945a867b524ad5d9e14ec7075fed4f8a57f2ff03efca43d4f"
    "c73e668a5ae9e28c5df38b4b3e7e600600"
)
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
    eph_a, eph_b = (X25519PrivateKey.from_private_bytes(k) for k in (EPHEMERAL_A, EPHEMERAL_B))
    epub_a, epub_b = (k.public_key().public_bytes_raw() for k in (eph_a, eph_b))
    # Uncompressed, so that every sealed vector but the one deflated below is exact anywhere.
    a = Session(key_a, NONCE_A, "Stadtbibliothek Musterstadt", ephemeral=eph_a, compress=False)
    b = Session(key_b, NONCE_B, "Gemeindebücherei Beispiel", ephemeral=eph_b, compress=False)
    hello_a, hello_b = a.hello(), b.hello()
    a.receive(hello_b)
    b.receive(hello_a)
    sealed_auth_a, sealed_auth_b = a.auth(), b.auth()
    assert a.channel is not None and b.channel is not None and a.transcript_hash is not None
    th = a.transcript_hash
    sig_a = key_a.sign(AUTH_CONTEXT + th + NONCE_B + NONCE_A + pub_a + pub_b)
    sig_b = key_b.sign(AUTH_CONTEXT + th + NONCE_A + NONCE_B + pub_b + pub_a)
    auth_a, auth_b = encode_message(Auth(sig_a, a.name)), encode_message(Auth(sig_b, b.name))
    cat = LogKey(pub_a, "catalog")
    c1, c2 = entries["catalog-1"], entries["catalog-2"]
    frontier = Frontier(
        ((cat, Head(2, c2.hash)), (LogKey(pub_a, "profile"), Head(1, entries["profile"].hash)))
    )
    entries_msg = Entries(cat, (c1.raw, c2.raw))
    messages: list[tuple[str, Message]] = [
        ("hello", Hello(PROTOCOL_VERSION, pub_a, NONCE_A, epub_a)),
        ("auth", Auth(sig_a, a.name)),
        ("frontier", frontier),
        ("request", Request(cat, 1, 2)),
        ("entries", entries_msg),
        ("ack", Ack(cat, 2)),
        ("close", Close("done")),
        ("heartbeat", sign_heartbeat(key_a, TS)),
        ("fork_notice", ForkNotice(_proof(c2, entries["catalog-2-fork"]).to_bytes())),
    ]
    assert encode_message(messages[0][1]) == hello_a
    assert a.channel.open(sealed_auth_b) == auth_b and b.channel.open(sealed_auth_a) == auth_a
    sealed_frontier_a = a.send(frontier)
    deflated_frame = bytes([DEFLATED]) + ENTRIES_DEFLATED
    sealed_entries_a = ChaCha20Poly1305(a.channel.send_key).encrypt(nonce(2), deflated_frame, None)
    shared = eph_a.exchange(X25519PublicKey.from_public_bytes(epub_b))
    proof = fork_proof(c2, entries["catalog-2-fork"])
    assert proof is not None
    tampered = bytearray(c1.raw)
    tampered[-1] ^= 0x01
    return {
        "entry_sign_context": SIGN_CONTEXT.hex(),
        "auth_context": AUTH_CONTEXT.hex(),
        "heartbeat_context": HEARTBEAT_CONTEXT.hex(),
        "channel_info": CHANNEL_INFO.hex(),
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
        "handshake": {
            "a": {
                "seed": SEED_A.hex(),
                "nonce": NONCE_A.hex(),
                "ephemeral_private": EPHEMERAL_A.hex(),
                "ephemeral_public": epub_a.hex(),
                "hello": hello_a.hex(),
            },
            "b": {
                "seed": SEED_B.hex(),
                "nonce": NONCE_B.hex(),
                "ephemeral_private": EPHEMERAL_B.hex(),
                "ephemeral_public": epub_b.hex(),
                "hello": hello_b.hex(),
            },
            "shared_secret": shared.hex(),
            "transcript_hash": th.hex(),
            "key_a": a.channel.send_key.hex(),
            "key_b": b.channel.send_key.hex(),
            "transcript_signed_by_a": (AUTH_CONTEXT + th + NONCE_B + NONCE_A + pub_a + pub_b).hex(),
            "signature_a": sig_a.hex(),
            "auth_a": auth_a.hex(),
            "transcript_signed_by_b": (AUTH_CONTEXT + th + NONCE_A + NONCE_B + pub_b + pub_a).hex(),
            "signature_b": sig_b.hex(),
            "auth_b": auth_b.hex(),
            "sealed": [
                {
                    "from": "a",
                    "counter": 0,
                    "message": auth_a.hex(),
                    "frame": (bytes([RAW]) + auth_a).hex(),
                    "sealed": sealed_auth_a.hex(),
                },
                {
                    "from": "b",
                    "counter": 0,
                    "message": auth_b.hex(),
                    "frame": (bytes([RAW]) + auth_b).hex(),
                    "sealed": sealed_auth_b.hex(),
                },
                {
                    "from": "a",
                    "counter": 1,
                    "message": encode_message(frontier).hex(),
                    "frame": (bytes([RAW]) + encode_message(frontier)).hex(),
                    "sealed": sealed_frontier_a.hex(),
                },
                {
                    "from": "a",
                    "counter": 2,
                    "message": encode_message(entries_msg).hex(),
                    "frame": deflated_frame.hex(),
                    "sealed": sealed_entries_a.hex(),
                },
            ],
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
        case Hello(version, node_key, nonce_, ephemeral):
            return {
                "version": version,
                "node_key": node_key.hex(),
                "nonce": nonce_.hex(),
                "ephemeral": ephemeral.hex(),
            }
        case Auth(signature, name):
            return {"signature": signature.hex(), "name": name}
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
        case Heartbeat(node_key, timestamp, signature):
            return {
                "node_key": node_key.hex(),
                "timestamp": timestamp,
                "signature": signature.hex(),
            }
        case ForkNotice(proof):
            return {"proof": proof.hex()}
    raise AssertionError(msg)  # pragma: no cover


def _proof(a: Entry, b: Entry) -> ForkProof:
    proof = fork_proof(a, b)
    assert proof is not None
    return proof


def _message(kind: str, f: dict[str, Any]) -> Message:
    """The reverse of ``_fields``: a message object from the doc's JSON."""

    def key() -> LogKey:
        return LogKey(bytes.fromhex(f["author"]), f["log"])

    match kind:
        case "hello":
            return Hello(
                f["version"],
                bytes.fromhex(f["node_key"]),
                bytes.fromhex(f["nonce"]),
                bytes.fromhex(f["ephemeral"]),
            )
        case "auth":
            return Auth(bytes.fromhex(f["signature"]), f["name"])
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
        case "heartbeat":
            return Heartbeat(
                bytes.fromhex(f["node_key"]), f["timestamp"], bytes.fromhex(f["signature"])
            )
        case "fork_notice":
            return ForkNotice(bytes.fromhex(f["proof"]))
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
    assert bytes.fromhex(vectors["auth_context"]) == b"peernode/auth/v2\x00"
    assert bytes.fromhex(vectors["channel_info"]) == b"peernode/channel/v2 "


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
        "heartbeat": 8,
        "fork_notice": 9,
    }
    for m in vectors["messages"]:
        data = bytes.fromhex(m["encoded"])
        msg = _message(m["type"], m["fields"])
        assert encode_message(msg) == data
        assert decode_message(data) == msg
        assert msgpack.unpackb(data)[0] == m["code"]


def test_handshake(vectors: dict[str, Any]) -> None:
    """The key schedule from the doc's numbers, with the primitives used directly."""
    hs = vectors["handshake"]
    key_a, key_b = (signing_key(bytes.fromhex(hs[s]["seed"])) for s in "ab")
    pub_a, pub_b = public_bytes(key_a), public_bytes(key_b)
    nonce_a, nonce_b = (bytes.fromhex(hs[s]["nonce"]) for s in "ab")
    eph_a, eph_b = (
        X25519PrivateKey.from_private_bytes(bytes.fromhex(hs[s]["ephemeral_private"])) for s in "ab"
    )
    for side, eph in (("a", eph_a), ("b", eph_b)):
        assert eph.public_key().public_bytes_raw().hex() == hs[side]["ephemeral_public"]
    hello_a, hello_b = (bytes.fromhex(hs[s]["hello"]) for s in "ab")
    assert msgpack.unpackb(hello_a)[4].hex() == hs["a"]["ephemeral_public"]
    shared = eph_a.exchange(
        X25519PublicKey.from_public_bytes(bytes.fromhex(hs["b"]["ephemeral_public"]))
    )
    assert shared == eph_b.exchange(eph_a.public_key()) and shared.hex() == hs["shared_secret"]
    first, second = (hello_a, hello_b) if pub_a < pub_b else (hello_b, hello_a)
    th = hashlib.sha256(first + second).digest()
    assert th.hex() == hs["transcript_hash"]
    for side, pub in (("a", pub_a), ("b", pub_b)):
        hkdf = HKDF(hashes.SHA256(), 32, salt=th, info=b"peernode/channel/v2 " + pub)
        assert hkdf.derive(shared).hex() == hs[f"key_{side}"]
    transcript_a = b"peernode/auth/v2\x00" + th + nonce_b + nonce_a + pub_a + pub_b
    assert transcript_a.hex() == hs["transcript_signed_by_a"]
    assert key_a.sign(transcript_a).hex() == hs["signature_a"]
    transcript_b = b"peernode/auth/v2\x00" + th + nonce_a + nonce_b + pub_b + pub_a
    assert transcript_b.hex() == hs["transcript_signed_by_b"]
    assert key_b.sign(transcript_b).hex() == hs["signature_b"]
    auth_a = Auth(bytes.fromhex(hs["signature_a"]), "Stadtbibliothek Musterstadt")
    assert hs["auth_a"] == encode_message(auth_a).hex()
    for v in hs["sealed"]:
        key = bytes.fromhex(hs[f"key_{v['from']}"])
        frame, sealed = bytes.fromhex(v["frame"]), bytes.fromhex(v["sealed"])
        aead = ChaCha20Poly1305(key)
        assert aead.encrypt(v["counter"].to_bytes(12, "big"), frame, None) == sealed
        body = frame[1:] if frame[0] == RAW else inflate(frame[1:], 1 << 20)
        assert frame[0] in (RAW, DEFLATED) and body.hex() == v["message"]


def test_handshake_through_the_state_machine(vectors: dict[str, Any]) -> None:
    """B accepts A's recorded hello and sealed auth for B's nonce and ephemeral, and the
    sealed messages open in order."""
    hs = vectors["handshake"]
    key_a, key_b = (signing_key(bytes.fromhex(hs[s]["seed"])) for s in "ab")
    nonce_a, nonce_b = (bytes.fromhex(hs[s]["nonce"]) for s in "ab")
    eph_a, eph_b = (
        X25519PrivateKey.from_private_bytes(bytes.fromhex(hs[s]["ephemeral_private"])) for s in "ab"
    )
    sealed = {(v["from"], v["counter"]): bytes.fromhex(v["sealed"]) for v in hs["sealed"]}
    b = Session(key_b, nonce_b, "Gemeindebücherei Beispiel", ephemeral=eph_b, compress=False)
    assert b.hello().hex() == hs["b"]["hello"]
    b.receive(bytes.fromhex(hs["a"]["hello"]))
    assert b.transcript_hash is not None and b.transcript_hash.hex() == hs["transcript_hash"]
    assert b.auth() == sealed[("b", 0)]
    assert isinstance(b.receive(sealed[("a", 0)]), Auth)
    assert (b.peer_key, b.peer_name) == (public_bytes(key_a), "Stadtbibliothek Musterstadt")
    assert isinstance(b.receive(sealed[("a", 1)]), Frontier)
    entries = b.receive(sealed[("a", 2)])  # deflated
    assert isinstance(entries, Entries) and len(entries.raws) == 2
    a = Session(key_a, nonce_a, "Stadtbibliothek Musterstadt", ephemeral=eph_a, compress=False)
    assert a.hello().hex() == hs["a"]["hello"]
    a.receive(bytes.fromhex(hs["b"]["hello"]))
    assert a.auth() == sealed[("a", 0)]
    assert isinstance(a.receive(sealed[("b", 0)]), Auth)


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
