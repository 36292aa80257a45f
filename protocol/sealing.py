"""Sealed details: a small message only the named parties can open, relayed by anyone.

A loan's notes and addresses travel inside public, gossiped entries, so they are encrypted to
the parties (docs/protocol.md, "Sealed details"):

    content_key  = 32 fresh random bytes
    box          = ChaCha20-Poly1305(content_key, nonce = 12 zero bytes, aad = context, plaintext)
    for each recipient box key R (X25519, published in the recipient's profile):
        shared   = X25519(ephemeral private, R)
        wrap_key = HKDF-SHA256(ikm = shared, salt = ephemeral public || R, info = SEAL_INFO, 32)
        wrapped  = ChaCha20-Poly1305(wrap_key, nonce = 12 zero bytes, aad = context, content_key)

The zero nonces are safe because every key is used once: the content key is fresh, and each
wrap key is derived from a fresh ephemeral key. ``context`` binds the box to what it belongs to
(the loan request's id), so a box cannot be cut from one request and pasted into another.

A node's box key is derived from its Ed25519 private key (``box_private_key``), so no second key
file exists to lose; the public half is signed into the library's profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .errors import InvalidBody, LocalProtocolError

SEAL_INFO = b"peernode/seal/v1\x00"
BOX_KEY_INFO = b"peernode/box-key/v1\x00"
BOX_KEY_BYTES = 32
WRAPPED_BYTES = 48  # a 32-byte content key and its 16-byte tag
MAX_RECIPIENTS = 17  # a requester and a rota of 16 lenders
MAX_BOX_BYTES = 8192  # notes and an address, not documents
_ZERO_NONCE = bytes(12)


def box_private_key(identity: Ed25519PrivateKey) -> X25519PrivateKey:
    """The node's X25519 box key, derived from its identity key (HKDF, so it reveals nothing)."""
    seed = identity.private_bytes_raw()
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=BOX_KEY_INFO)
    return X25519PrivateKey.from_private_bytes(hkdf.derive(seed))


def box_public_key(identity: Ed25519PrivateKey) -> bytes:
    return box_private_key(identity).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class Sealed:
    """A sealed box as it travels: ``{"eph": bin 32, "keys": [bin 48, ...], "box": bin}``."""

    ephemeral: bytes
    wrapped: tuple[bytes, ...]
    box: bytes

    def to_body(self) -> dict[str, Any]:
        return {"eph": self.ephemeral, "keys": list(self.wrapped), "box": self.box}

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Sealed:
        return cls(body["eph"], tuple(body["keys"]), body["box"])


def seal(
    plaintext: bytes,
    recipients: list[bytes],
    context: bytes,
    *,
    ephemeral: X25519PrivateKey,
    content_key: bytes,
) -> Sealed:
    """Seal ``plaintext`` to every box key in ``recipients``. The caller supplies the randomness
    (``X25519PrivateKey.generate()``, ``os.urandom(32)``), so this stays deterministic."""
    if not 1 <= len(recipients) <= MAX_RECIPIENTS:
        raise LocalProtocolError(f"a sealed box has 1..{MAX_RECIPIENTS} recipients")
    if len(plaintext) + 16 > MAX_BOX_BYTES:
        raise LocalProtocolError(f"sealed details are at most {MAX_BOX_BYTES - 16} bytes")
    eph_public = ephemeral.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    box = ChaCha20Poly1305(content_key).encrypt(_ZERO_NONCE, plaintext, context)
    wrapped = []
    for recipient in recipients:
        key = _wrap_key(
            ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient)), eph_public, recipient
        )
        wrapped.append(ChaCha20Poly1305(key).encrypt(_ZERO_NONCE, content_key, context))
    return Sealed(eph_public, tuple(wrapped), box)


def open_sealed(sealed: Sealed, own: X25519PrivateKey, context: bytes) -> bytes | None:
    """The plaintext, if ``own`` is one of the recipients; None otherwise (or if altered)."""
    own_public = own.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    try:
        shared = own.exchange(X25519PublicKey.from_public_bytes(sealed.ephemeral))
    except ValueError:
        return None  # a small-order ephemeral key: nobody could have sealed to us with it
    key = _wrap_key(shared, sealed.ephemeral, own_public)
    for wrapped in sealed.wrapped:
        try:
            content_key = ChaCha20Poly1305(key).decrypt(_ZERO_NONCE, wrapped, context)
        except InvalidTag:
            continue
        try:
            return ChaCha20Poly1305(content_key).decrypt(_ZERO_NONCE, sealed.box, context)
        except InvalidTag:
            return None
    return None


def _wrap_key(shared: bytes, eph_public: bytes, recipient: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=eph_public + recipient, info=SEAL_INFO)
    return hkdf.derive(shared)


def validate_sealed(value: Any, where: str) -> None:
    """The shape of a sealed box in an entry body (its contents are nobody else's business)."""
    if not isinstance(value, dict) or set(value) != {"eph", "keys", "box"}:
        raise InvalidBody(f"{where}: sealed details must be a map of 'eph', 'keys' and 'box'")
    eph, keys, box = value["eph"], value["keys"], value["box"]
    if not isinstance(eph, bytes) or len(eph) != BOX_KEY_BYTES:
        raise InvalidBody(f"{where}: sealed 'eph' must be a {BOX_KEY_BYTES}-byte X25519 key")
    if not isinstance(keys, list) or not 1 <= len(keys) <= MAX_RECIPIENTS:
        raise InvalidBody(f"{where}: sealed 'keys' must hold 1..{MAX_RECIPIENTS} wrapped keys")
    if not all(isinstance(k, bytes) and len(k) == WRAPPED_BYTES for k in keys):
        raise InvalidBody(f"{where}: every sealed key must be {WRAPPED_BYTES} bytes")
    if not isinstance(box, bytes) or not 16 <= len(box) <= MAX_BOX_BYTES:
        raise InvalidBody(f"{where}: sealed 'box' must be 16..{MAX_BOX_BYTES} bytes")
