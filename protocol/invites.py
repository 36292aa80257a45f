"""Invites: how two libraries become peers, with no server and nothing typed but one code.

The inviter makes ``Invite(address, key, secret)`` and shows its code. The joiner sends a
``JoinRequest`` to ``address`` (HTTP POST /peer/join): its key, name, address and a fresh nonce,
with an HMAC keyed by the one-time secret (proves it was given the code; the secret never crosses
the wire) and its own signature (proves it holds its key). The inviter answers ``JoinAccept``,
signed over the joiner's nonce and both keys and naming its network's founders; the joiner
checks that key against the code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from .encoding import pack, unpack
from .errors import AuthenticationError, DecodeError
from .identity import KEY_BYTES, SIGNATURE_BYTES, public_bytes
from .limits import DEFAULT_LIMITS
from .messages import NONCE_BYTES

CODE_PREFIX = "pn1."
SECRET_BYTES = 16
JOIN_CONTEXT = b"peernode/join/v1\x00"
ACCEPT_CONTEXT = b"peernode/join-accept/v1\x00"
_MAX_JOIN_BYTES = 4096
MAX_FOUNDERS = 16


@dataclass(frozen=True)
class Invite:
    address: str
    key: bytes
    secret: bytes

    @property
    def invite_id(self) -> bytes:
        return invite_id(self.secret)

    @property
    def code(self) -> str:
        data = pack([self.address, self.key, self.secret])
        return CODE_PREFIX + base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")

    @classmethod
    def parse(cls, code: str) -> Invite:
        text = "".join(code.split())
        if not text.startswith(CODE_PREFIX):
            raise ValueError(f"an invite code starts with {CODE_PREFIX!r}; this one does not")
        body = text[len(CODE_PREFIX) :]
        try:
            data = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            value = unpack(data, what="invite code", max_bytes=1024)
        except (ValueError, DecodeError):
            raise ValueError("the invite code is damaged: copy it again, whole") from None
        if (
            not isinstance(value, list)
            or len(value) != 3
            or not isinstance(value[0], str)
            or not isinstance(value[1], bytes)
            or len(value[1]) != KEY_BYTES
            or not isinstance(value[2], bytes)
            or len(value[2]) != SECRET_BYTES
        ):
            raise ValueError("the invite code is damaged: copy it again, whole")
        return cls(value[0], value[1], value[2])


def invite_id(secret: bytes) -> bytes:
    """What the joiner names the invite by, so the inviter can find the secret."""
    return hashlib.sha256(b"peernode/invite-id\x00" + secret).digest()[:16]


@dataclass(frozen=True)
class JoinRequest:
    invite_id: bytes
    key: bytes
    name: str
    address: str
    nonce: bytes
    mac: bytes
    signature: bytes

    @staticmethod
    def _transcript(inviter: bytes, key: bytes, name: str, address: str, nonce: bytes) -> bytes:
        return JOIN_CONTEXT + pack([inviter, key, name, address, nonce])

    @classmethod
    def make(
        cls, invite: Invite, key: Ed25519PrivateKey, name: str, address: str, nonce: bytes
    ) -> JoinRequest:
        own = public_bytes(key)
        transcript = cls._transcript(invite.key, own, name, address, nonce)
        mac = hmac.new(invite.secret, transcript, hashlib.sha256).digest()
        return cls(invite.invite_id, own, name, address, nonce, mac, key.sign(transcript))

    def to_bytes(self) -> bytes:
        return pack(
            [
                self.invite_id,
                self.key,
                self.name,
                self.address,
                self.nonce,
                self.mac,
                self.signature,
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> JoinRequest:
        value = unpack(data, what="join request", limits=DEFAULT_LIMITS, max_bytes=_MAX_JOIN_BYTES)
        if not isinstance(value, list) or len(value) != 7:
            raise DecodeError("join request must be an array of 7 fields")
        iid, key, name, address, nonce, mac, sig = value
        if not (
            isinstance(iid, bytes)
            and len(iid) == 16
            and isinstance(key, bytes)
            and len(key) == KEY_BYTES
            and isinstance(name, str)
            and 0 < len(name) <= 200
            and isinstance(address, str)
            and len(address) <= 300
            and isinstance(nonce, bytes)
            and len(nonce) == NONCE_BYTES
            and isinstance(mac, bytes)
            and len(mac) == 32
            and isinstance(sig, bytes)
            and len(sig) == SIGNATURE_BYTES
        ):
            raise DecodeError("join request has a field of the wrong type or size")
        return cls(iid, key, name, address, nonce, mac, sig)

    def verify(self, secret: bytes, inviter: bytes) -> None:
        """Check the HMAC (the joiner had the code) and signature (it holds its key)."""
        transcript = self._transcript(inviter, self.key, self.name, self.address, self.nonce)
        expected = hmac.new(secret, transcript, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, self.mac):
            raise AuthenticationError("join request does not match the invite's secret")
        try:
            Ed25519PublicKey.from_public_bytes(self.key).verify(self.signature, transcript)
        except (InvalidSignature, ValueError):
            raise AuthenticationError("join request is not signed by the key it names") from None


@dataclass(frozen=True)
class JoinAccept:
    """The inviter's signed answer. ``founders`` are the trust anchors of the inviter's network
    (protocol/membership.py): a fresh joiner adopts them, so both fold members alike."""

    key: bytes
    name: str
    signature: bytes
    founders: tuple[bytes, ...] = ()

    @staticmethod
    def _transcript(
        request: JoinRequest, inviter: bytes, name: str, founders: tuple[bytes, ...]
    ) -> bytes:
        return ACCEPT_CONTEXT + pack([request.nonce, request.key, inviter, name, list(founders)])

    @classmethod
    def make(
        cls,
        key: Ed25519PrivateKey,
        name: str,
        request: JoinRequest,
        founders: tuple[bytes, ...] = (),
    ) -> JoinAccept:
        own = public_bytes(key)
        founders = tuple(sorted(set(founders)))
        if len(founders) > MAX_FOUNDERS:
            raise ValueError(f"at most {MAX_FOUNDERS} founders fit in a join answer")
        return cls(own, name, key.sign(cls._transcript(request, own, name, founders)), founders)

    def to_bytes(self) -> bytes:
        return pack([self.key, self.name, self.signature, list(self.founders)])

    @classmethod
    def from_bytes(cls, data: bytes) -> JoinAccept:
        value = unpack(data, what="join answer", limits=DEFAULT_LIMITS, max_bytes=_MAX_JOIN_BYTES)
        if (
            not isinstance(value, list)
            or len(value) != 4
            or not isinstance(value[0], bytes)
            or len(value[0]) != KEY_BYTES
            or not isinstance(value[1], str)
            or not isinstance(value[2], bytes)
            or len(value[2]) != SIGNATURE_BYTES
            or not isinstance(value[3], list)
            or len(value[3]) > MAX_FOUNDERS
            or not all(isinstance(f, bytes) and len(f) == KEY_BYTES for f in value[3])
        ):
            raise DecodeError("join answer has a field of the wrong type or size")
        return cls(value[0], value[1][:200], value[2], tuple(value[3]))

    def verify(self, request: JoinRequest, invite: Invite) -> None:
        if self.key != invite.key:
            raise AuthenticationError(
                "the node at the invite's address is not the node that made the invite"
            )
        try:
            Ed25519PublicKey.from_public_bytes(self.key).verify(
                self.signature, self._transcript(request, self.key, self.name, self.founders)
            )
        except (InvalidSignature, ValueError):
            raise AuthenticationError("the inviter's answer is not signed by its key") from None
