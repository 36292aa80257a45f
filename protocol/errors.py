"""One error tree for the whole protocol, after h11.

``LocalProtocolError``: we tried to do something the protocol forbids (a bug on our side, or a
caller asking for an illegal step). ``RemoteProtocolError``: the peer sent something invalid; its
``reason`` is a short stable code (counted in ``status``) and its message says what and where.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base of every error the protocol raises."""

    reason: str = "protocol"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class LocalProtocolError(ProtocolError):
    """We asked for something the protocol does not allow in this state."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something invalid. Subclasses fix the ``reason`` code."""


class DecodeError(RemoteProtocolError):
    """Bytes that are not a well-formed message or entry (truncated, wrong types, bad msgpack)."""

    reason = "decode"


class LimitExceeded(RemoteProtocolError):
    """A size, count, depth or length bound was exceeded."""

    reason = "limit"


class BadSignature(RemoteProtocolError):
    """A signature does not verify against the claimed author's key."""

    reason = "signature"


class UnknownKind(RemoteProtocolError):
    """An entry kind or message type this implementation does not know."""

    reason = "unknown-kind"


class InvalidBody(RemoteProtocolError):
    """A known entry kind whose body has a missing field or a field of the wrong type."""

    reason = "body"


class TimestampError(RemoteProtocolError):
    """An entry dated further in the future than the allowed clock skew."""

    reason = "timestamp"


class ChainError(RemoteProtocolError):
    """An entry that does not continue its log: wrong previous hash, or a sequence gap."""

    reason = "chain"


class UntrustedAuthor(RemoteProtocolError):
    """An entry by an author this node does not replicate."""

    reason = "untrusted"


class StateError(RemoteProtocolError):
    """A message that the session's transition table does not allow in the current state."""

    reason = "state"


class AuthenticationError(RemoteProtocolError):
    """The peer failed to prove its key, or is not the key we expected."""

    reason = "auth"


class InvalidForkProof(RemoteProtocolError):
    """A fork proof that does not prove a fork: not two entries signed by one author at one seq
    of one log with different hashes, or an entry in it that does not verify."""

    reason = "fork-proof"


class RateLimited(RemoteProtocolError):
    """The peer sends faster than this node accepts from one peer (a flood): the session ends."""

    reason = "rate"


class DecryptError(RemoteProtocolError):
    """A sealed message that does not open: altered, replayed, reordered or lost on the way."""

    reason = "decrypt"


class NotAdmitted(AuthenticationError):
    """The peer proved its key, but that key is not a member here (never admitted, removed, or
    revoked): this node does not sync with it."""

    reason = "not-member"


class Blocked(NotAdmitted):
    """The peer's key is on this node's local block list."""

    reason = "blocked"
