"""The signed entry: one step of one library's hash-chained log.

Wire form (docs/protocol.md): ``signed = pack([payload, signature])`` where
``payload = pack([1, author, log, seq, prev, timestamp, kind, body])`` and the signature is
Ed25519 by ``author`` over ``SIGN_CONTEXT + payload``. The entry hash is ``sha256(payload)``.
Verification always works on the received ``payload`` bytes, and a receiver rejects any entry
whose bytes are not the canonical encoding of what they decode to.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from .encoding import canonical, is_canonical, pack, pack_ordered, unpack
from .errors import BadSignature, DecodeError, LimitExceeded, TimestampError
from .identity import KEY_BYTES, SIGNATURE_BYTES, public_bytes, short_id
from .kinds import validate_body
from .limits import DEFAULT_LIMITS, Limits

ENTRY_FORMAT = 1
SIGN_CONTEXT = b"peernode/entry/v1\x00"
HASH_BYTES = 32


@dataclass(frozen=True)
class Entry:
    """A verified entry. ``raw`` is the signed byte string, stored and served as received.

    ``body`` is in canonical order (its maps' keys sorted), whether decoded from checked bytes
    or signed here, so ``pack_ordered`` of any part of it gives that part's canonical bytes.
    """

    author: bytes
    log: str
    seq: int
    prev: bytes | None
    timestamp: int
    kind: str
    body: Any
    hash: bytes
    raw: bytes

    @property
    def where(self) -> str:
        return f"entry {short_id(self.author)}/{self.log}#{self.seq}"


def sign_entry(
    key: Ed25519PrivateKey,
    *,
    log: str,
    seq: int,
    prev: bytes | None,
    timestamp: int,
    kind: str,
    body: Any,
    limits: Limits = DEFAULT_LIMITS,
) -> Entry:
    """Create and sign an entry. The body is validated first, so we never sign what peers reject."""
    author = public_bytes(key)
    _check_envelope(author, log, seq, prev, timestamp, kind, "new entry", limits)
    validate_body(kind, body, limits, where=f"new {kind} entry {log}#{seq}")
    body = canonical(body)  # the Entry holds it as a receiver decodes it (see Entry)
    payload = pack_ordered([ENTRY_FORMAT, author, log, seq, prev, timestamp, kind, body])
    if len(payload) > limits.max_entry_bytes:
        raise LimitExceeded(f"new entry {log}#{seq} would be {len(payload)} bytes, over the limit")
    signature = key.sign(SIGN_CONTEXT + payload)
    raw = pack([payload, signature])
    return Entry(author, log, seq, prev, timestamp, kind, body, _hash(payload), raw)


def decode_entry(raw: bytes, *, now_ms: int | None, limits: Limits = DEFAULT_LIMITS) -> Entry:
    """Decode and verify a signed entry from a peer; raises a RemoteProtocolError subclass.

    ``now_ms`` is the receiver's clock (the protocol reads none); ``None`` skips the future-skew
    check, for re-verifying entries already stored.
    """
    outer = unpack(raw, what="signed entry", limits=limits, max_bytes=limits.max_entry_bytes + 128)
    if not (isinstance(outer, list) and len(outer) == 2):
        raise DecodeError("signed entry must be an array [payload, signature]")
    payload, signature = outer
    if not isinstance(payload, bytes) or not isinstance(signature, bytes):
        raise DecodeError("signed entry fields must be bin (payload) and bin (signature)")
    if len(signature) != SIGNATURE_BYTES:
        raise DecodeError(f"signature is {len(signature)} bytes, not {SIGNATURE_BYTES}")
    fields = unpack(payload, what="entry payload", limits=limits, max_bytes=limits.max_entry_bytes)
    if not (isinstance(fields, list) and len(fields) == 8):
        raise DecodeError("entry payload must be an array of 8 fields")
    if _encode_or_none([payload, signature]) != raw or not is_canonical(fields, payload):
        # One entry, one byte string: without this, duplicate map keys or unsorted keys would let
        # two implementations read different bodies under the same valid signature.
        raise DecodeError("signed entry is not in canonical encoding")
    fmt, author, log, seq, prev, timestamp, kind, body = fields
    if fmt != ENTRY_FORMAT:
        raise DecodeError(
            f"entry format {fmt!r} is not supported (this node speaks {ENTRY_FORMAT})"
        )
    _check_envelope(author, log, seq, prev, timestamp, kind, "entry", limits)
    where = f"entry {short_id(author)}/{log}#{seq}"
    try:
        _public_key(author).verify(signature, SIGN_CONTEXT + payload)
    except InvalidSignature:
        raise BadSignature(f"{where}: signature does not verify for its author") from None
    if now_ms is not None and timestamp > now_ms + limits.max_future_skew_ms:
        ahead = (timestamp - now_ms) // 1000
        raise TimestampError(f"{where}: dated {ahead} s in the future (clock wrong at the author?)")
    validate_body(kind, body, limits, where=where)
    return Entry(author, log, seq, prev, timestamp, kind, body, _hash(payload), raw)


def _check_envelope(
    author: Any, log: Any, seq: Any, prev: Any, timestamp: Any, kind: Any, what: str, limits: Limits
) -> None:
    if not isinstance(author, bytes) or len(author) != KEY_BYTES:
        raise DecodeError(f"{what}: author must be a {KEY_BYTES}-byte public key")
    if not isinstance(log, str) or not log or len(log.encode()) > limits.max_log_id_bytes:
        raise DecodeError(f"{what}: log id must be text of 1..{limits.max_log_id_bytes} bytes")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq < 2**63:
        raise DecodeError(f"{what} {log}: seq must be an integer >= 1")
    if seq == 1 and prev is not None:
        raise DecodeError(f"{what} {log}#1: the first entry of a log has no previous hash")
    if seq > 1 and not (isinstance(prev, bytes) and len(prev) == HASH_BYTES):
        raise DecodeError(f"{what} {log}#{seq}: prev must be a {HASH_BYTES}-byte hash")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool) or not 0 <= timestamp < 2**63:
        raise DecodeError(f"{what} {log}#{seq}: timestamp must be milliseconds since 1970")
    if not isinstance(kind, str):
        raise DecodeError(f"{what} {log}#{seq}: kind must be text")


@lru_cache(maxsize=4096)
def _public_key(author: bytes) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(author)
    except ValueError:
        raise BadSignature("author is not a valid Ed25519 public key") from None


def _encode_or_none(value: Any) -> bytes | None:
    try:
        return pack(value)
    except (TypeError, ValueError, OverflowError):  # floats, mixed-type map keys
        return None


def _hash(payload: bytes) -> bytes:
    return hashlib.sha256(payload).digest()
