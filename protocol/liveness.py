"""Signed heartbeats: "this member was alive at time t", relayable by anyone, forgeable by no one.

A heartbeat is signed by the member's own key over ``HEARTBEAT_CONTEXT || key || timestamp``
(timestamp as 8 bytes big-endian), so any node can pass it on and every node can check it. The
context keeps a heartbeat signature from ever being valid as an entry or an authentication.

``LivenessBook`` is the relay policy, sans-IO: keep the newest heartbeat per member, accept only
strictly newer ones, and pass each member's on at most once per ``relay_interval_ms``, so a mesh
carries O(members) heartbeats per interval however densely it is linked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from .errors import BadSignature, TimestampError
from .identity import public_bytes, short_id
from .limits import DEFAULT_LIMITS, Limits
from .messages import Heartbeat

HEARTBEAT_CONTEXT = b"peernode/heartbeat/v1\x00"


def heartbeat_transcript(node_key: bytes, timestamp: int) -> bytes:
    return HEARTBEAT_CONTEXT + node_key + timestamp.to_bytes(8, "big")


def sign_heartbeat(key: Ed25519PrivateKey, timestamp: int) -> Heartbeat:
    node_key = public_bytes(key)
    return Heartbeat(node_key, timestamp, key.sign(heartbeat_transcript(node_key, timestamp)))


def verify_heartbeat(
    beat: Heartbeat, *, now_ms: int | None, limits: Limits = DEFAULT_LIMITS
) -> None:
    """Raise ``BadSignature`` unless the member signed it, ``TimestampError`` if it is dated
    further ahead of ``now_ms`` than the allowed clock skew."""
    try:
        Ed25519PublicKey.from_public_bytes(beat.node_key).verify(
            beat.signature, heartbeat_transcript(beat.node_key, beat.timestamp)
        )
    except (InvalidSignature, ValueError):
        raise BadSignature(
            f"heartbeat of {short_id(beat.node_key)} is not signed by that key"
        ) from None
    if now_ms is not None and beat.timestamp > now_ms + limits.max_future_skew_ms:
        ahead = (beat.timestamp - now_ms) // 1000
        raise TimestampError(f"heartbeat of {short_id(beat.node_key)} is dated {ahead} s ahead")


@dataclass
class LivenessBook:
    """The newest heartbeat known per member, and when each was last passed on."""

    relay_interval_ms: int
    beats: dict[bytes, Heartbeat] = field(default_factory=dict)
    heard_at: dict[bytes, int] = field(default_factory=dict)  # our clock when it arrived
    _relayed_at: dict[bytes, int] = field(default_factory=dict)

    def note(self, beat: Heartbeat, now: int) -> bool:
        """Keep ``beat`` if it is newer than what we know of its member; True if it was."""
        known = self.beats.get(beat.node_key)
        if known is not None and known.timestamp >= beat.timestamp:
            return False
        self.beats[beat.node_key] = beat
        self.heard_at[beat.node_key] = now
        return True

    def known(self, node_key: bytes, timestamp: int) -> bool:
        """We hold a heartbeat of ``node_key`` at least as new as ``timestamp``."""
        held = self.beats.get(node_key)
        return held is not None and held.timestamp >= timestamp

    def should_relay(self, node_key: bytes, now: int) -> bool:
        """At most one relay per member per interval; True claims this interval's slot."""
        last = self._relayed_at.get(node_key)
        if last is not None and now - last < self.relay_interval_ms:
            return False
        self._relayed_at[node_key] = now
        return True
