"""The encrypted channel under a session: key schedule and AEAD framing (protocol v2).

After both Hellos each side holds the other's ephemeral X25519 key. Both compute

    shared = X25519(own ephemeral, peer's ephemeral)
    th     = SHA-256(the two Hello messages as sent, the one with the smaller node key first)
    key(S) = HKDF-SHA256(ikm=shared, salt=th, info=CHANNEL_INFO || S's node key, 32 bytes)

and seal what side S sends with ChaCha20-Poly1305 under ``key(S)``. The nonce is the number of
messages S sealed before, 12 bytes big-endian, so a replayed, dropped, reordered or altered
message fails to open. The plaintext is one flag byte and the message: ``RAW`` as is, or
``DEFLATED`` (raw RFC 1951 deflate) when that is smaller; inflating is bounded by
``max_message_bytes``. Compression happens before encryption because ciphertext does not shrink.

The Auth signatures cover ``th`` (protocol/session.py), which binds both ephemeral keys to both
node keys: a man in the middle with ephemerals of its own cannot make the two sides' signatures
verify.
"""

from __future__ import annotations

import hashlib
import zlib

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import (
    AuthenticationError,
    DecodeError,
    DecryptError,
    LimitExceeded,
    LocalProtocolError,
)
from .limits import DEFAULT_LIMITS, Limits

CHANNEL_INFO = b"peernode/channel/v2 "
EPHEMERAL_BYTES = 32
TAG_BYTES = 16
RAW, DEFLATED = 0, 1
# Below this a message (an Ack, a Request) cannot win back deflate's own overhead.
MIN_COMPRESS_BYTES = 128
COMPRESS_LEVEL = 6
MAX_COUNTER = 2**64 - 1  # far beyond any session; past it a nonce would repeat


def transcript_hash(hellos: list[tuple[bytes, bytes]]) -> bytes:
    """SHA-256 of the two Hellos, given as (node key, encoded Hello), smaller node key first."""
    return hashlib.sha256(b"".join(hello for _, hello in sorted(hellos))).digest()


def shared_secret(ephemeral: X25519PrivateKey, peer_ephemeral: bytes) -> bytes:
    try:
        return ephemeral.exchange(X25519PublicKey.from_public_bytes(peer_ephemeral))
    except ValueError:
        # A small-order point gives an all-zero secret: anyone could compute it.
        raise AuthenticationError("peer's ephemeral key is not a usable X25519 key") from None


def direction_key(shared: bytes, th: bytes, sender: bytes) -> bytes:
    """The key that ``sender`` (a node key) seals its messages with."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=th, info=CHANNEL_INFO + sender)
    return hkdf.derive(shared)


def nonce(counter: int) -> bytes:
    return counter.to_bytes(12, "big")


class Channel:
    """Both directions of one session: ``seal`` what we send, ``open`` what the peer sent."""

    def __init__(
        self,
        send_key: bytes,
        receive_key: bytes,
        *,
        compress: bool = True,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.send_key = send_key
        self.receive_key = receive_key
        self.compress = compress
        self.limits = limits
        self.sent = 0  # messages sealed so far: the next nonce
        self.received = 0  # messages opened so far: the nonce expected next
        self._seal = ChaCha20Poly1305(send_key)
        self._open = ChaCha20Poly1305(receive_key)

    @classmethod
    def derive(
        cls,
        shared: bytes,
        th: bytes,
        our_key: bytes,
        peer_key: bytes,
        *,
        compress: bool = True,
        limits: Limits = DEFAULT_LIMITS,
    ) -> Channel:
        """Our channel, from the X25519 ``shared`` secret and the transcript hash ``th``."""
        return cls(
            direction_key(shared, th, our_key),
            direction_key(shared, th, peer_key),
            compress=compress,
            limits=limits,
        )

    def seal(self, message: bytes) -> bytes:
        if self.sent >= MAX_COUNTER:
            raise LocalProtocolError("this session sealed 2^64 messages: start a new one")
        frame = bytes([RAW]) + message
        if self.compress and len(message) >= MIN_COMPRESS_BYTES:
            packer = zlib.compressobj(COMPRESS_LEVEL, zlib.DEFLATED, -15)
            deflated = packer.compress(message) + packer.flush()
            if len(deflated) < len(message):
                frame = bytes([DEFLATED]) + deflated
        sealed = self._seal.encrypt(nonce(self.sent), frame, None)
        self.sent += 1
        return sealed

    def open(self, data: bytes) -> bytes:
        """The message inside ``data``; DecryptError if it is not the peer's next message."""
        if len(data) > self.limits.max_message_bytes + 1 + TAG_BYTES:
            raise LimitExceeded(
                f"sealed message of {len(data)} bytes, more than {self.limits.max_message_bytes}"
            )
        try:
            frame = self._open.decrypt(nonce(self.received), data, None)
        except InvalidTag:
            raise DecryptError(
                f"message {self.received + 1} from the peer does not decrypt "
                "(altered, replayed, reordered or lost on the way)"
            ) from None
        self.received += 1
        if not frame:
            raise DecodeError("sealed message has no flag byte")
        flag, body = frame[0], frame[1:]
        if flag == RAW:
            return body
        if flag == DEFLATED:
            return inflate(body, self.limits.max_message_bytes)
        raise DecodeError(f"sealed message has unknown flag {flag}")


def inflate(data: bytes, max_bytes: int) -> bytes:
    """Raw-deflate ``data`` back, refusing to produce more than ``max_bytes`` (a zip bomb)."""
    unpacker = zlib.decompressobj(-15)
    try:
        out = unpacker.decompress(data, max_bytes + 1)
    except zlib.error as exc:
        raise DecodeError(f"compressed message does not inflate: {exc}") from None
    if len(out) > max_bytes:
        raise LimitExceeded(f"compressed message inflates past {max_bytes} bytes")
    if not unpacker.eof or unpacker.unused_data:
        raise DecodeError("compressed message is truncated or has bytes after its end")
    return out
