"""Node identity: an Ed25519 key pair, and the node id people read aloud and compare.

The node id is the public key in RFC 4648 base32 (no padding, 52 characters) with one check
character, grouped in blocks of four: a typo or a swapped block is caught before any connection.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

KEY_BYTES = 32
SIGNATURE_BYTES = 64
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def public_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _check_char(body: str) -> str:
    return _ALPHABET[hashlib.sha256(body.encode("ascii")).digest()[0] % 32]


def node_id(public_key: bytes) -> str:
    """``public_key`` (32 bytes) as ``ABCD-EFGH-...`` (53 characters in 14 groups)."""
    if len(public_key) != KEY_BYTES:
        raise ValueError(f"a public key is {KEY_BYTES} bytes, not {len(public_key)}")
    body = base64.b32encode(public_key).decode("ascii").rstrip("=")
    text = body + _check_char(body)
    return "-".join(text[i : i + 4] for i in range(0, len(text), 4))


def parse_node_id(text: str) -> bytes:
    """The public key in a node id; dashes, spaces and case are forgiven, a bad check is not."""
    if not text.isascii():  # str.upper() maps some non-ASCII letters onto the alphabet
        raise ValueError(f"{text!r} is not a node id (53 base32 characters, dashes optional)")
    compact = "".join(text.split()).replace("-", "").upper()
    if len(compact) != 53 or any(c not in _ALPHABET for c in compact):
        raise ValueError(f"{text!r} is not a node id (53 base32 characters, dashes optional)")
    body, check = compact[:52], compact[52]
    if _check_char(body) != check:
        raise ValueError(f"node id {text!r} has a wrong check character: mistyped?")
    key = base64.b32decode(body + "====")
    if node_id(key).replace("-", "") != compact:
        # The last character carries 4 unused bits; only the form with them zero is a node id.
        raise ValueError(f"{text!r} is not a node id (non-zero padding bits)")
    return key


def short_id(public_key: bytes) -> str:
    """The first two groups of the node id, for log lines."""
    return node_id(public_key)[:9]
