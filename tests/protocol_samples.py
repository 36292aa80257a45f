"""Valid protocol samples (a fixed test key, signed entries, a fork, one message of each type):
the seeds that the hypothesis fuzz tests and the atheris target mutate."""

from __future__ import annotations

import zlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import LogKey, fork_proof, public_bytes, sign_entry
from protocol.chains import Head
from protocol.channel import DEFLATED, RAW
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
    encode_message,
)


def _deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush()


KEY = Ed25519PrivateKey.from_private_bytes(b"\x42" * 32)  # a test key: never use it for real
AUTHOR = public_bytes(KEY)
CATALOG_LOG = LogKey(AUTHOR, "catalog")

E1 = sign_entry(
    KEY,
    log="catalog",
    seq=1,
    prev=None,
    timestamp=1,
    kind="catalog",
    body={"ops": [["put", "r1", {"title": "T", "year": 1999, "holdings": [{"note": "n"}]}]]},
)
E2 = sign_entry(
    KEY,
    log="catalog",
    seq=2,
    prev=E1.hash,
    timestamp=2,
    kind="catalog",
    body={"ops": [["del", "r1"]]},
)
E2_FORK = sign_entry(
    KEY,
    log="catalog",
    seq=2,
    prev=E1.hash,
    timestamp=3,
    kind="catalog",
    body={"ops": [["del", "r2"]]},
)
P1 = sign_entry(
    KEY, log="profile", seq=1, prev=None, timestamp=1, kind="profile", body={"name": "N"}
)
ENTRIES = [E1.raw, E2.raw, E2_FORK.raw, P1.raw]

SAMPLE_MESSAGES: list[Message] = [
    Hello(PROTOCOL_VERSION, AUTHOR, b"\x01" * 32, b"\x03" * 32),
    Auth(b"\x02" * 64, "node"),
    Frontier(((CATALOG_LOG, Head(2, E2.hash)), (LogKey(AUTHOR, "profile"), Head(1, P1.hash)))),
    Request(CATALOG_LOG, 1, 2),
    Entries(CATALOG_LOG, (E1.raw, E2.raw)),
    Ack(CATALOG_LOG, 2),
    Close("bye"),
]
MESSAGES = [encode_message(m) for m in SAMPLE_MESSAGES]
# What the channel seals (protocol/channel.py): a flag byte, then the message or its deflate.
FRAME_KEY = b"\x44" * 32
FRAMES = [bytes([RAW]) + MESSAGES[0], bytes([DEFLATED]) + _deflate(MESSAGES[4])]

_PROOF = fork_proof(E2, E2_FORK)
assert _PROOF is not None
PROOFS = [_PROOF.to_bytes()]
