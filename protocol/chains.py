"""Where an entry stands against the log we hold: next, already held, ahead, or a fork."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .encoding import pack, unpack
from .entries import Entry, decode_entry
from .errors import ChainError, DecodeError, InvalidForkProof, RemoteProtocolError
from .limits import DEFAULT_LIMITS, Limits


@dataclass(frozen=True, order=True)
class LogKey:
    author: bytes
    log: str


@dataclass(frozen=True)
class Head:
    """The last entry we hold of a log."""

    seq: int
    hash: bytes


class Placement(enum.Enum):
    NEXT = "next"  # continues the log: apply it
    HELD = "held"  # we already hold this very entry: a duplicate, ignore it
    AHEAD = "ahead"  # leaves a gap: ask for the missing entries first
    CONFLICT = "conflict"  # same seq as one we hold, different hash: compare for a fork


def place(head: Head | None, entry: Entry, held_hash: bytes | None = None) -> Placement:
    """Classify ``entry`` against ``head``; ``held_hash`` is our hash at ``entry.seq`` if any.

    Raises ChainError when ``entry`` is the next seq but does not point at our head.
    """
    held = head.seq if head else 0
    if entry.seq == held + 1:
        if head is not None and entry.prev != head.hash:
            raise ChainError(
                f"{entry.where}: previous hash does not match the entry we hold at #{held}"
            )
        return Placement.NEXT
    if entry.seq > held + 1:
        return Placement.AHEAD
    if held_hash is None or held_hash == entry.hash:
        return Placement.HELD
    return Placement.CONFLICT


@dataclass(frozen=True)
class ForkProof:
    """Two validly signed entries of one log at one seq with different hashes.

    Anyone can check it: it needs only the two signed entries, no trust in whoever sent it.
    """

    first: bytes
    second: bytes

    def to_bytes(self) -> bytes:
        return pack([self.first, self.second])

    @classmethod
    def from_bytes(cls, data: bytes, limits: Limits = DEFAULT_LIMITS) -> ForkProof:
        value = unpack(
            data, what="fork proof", limits=limits, max_bytes=max_fork_proof_bytes(limits)
        )
        if not (
            isinstance(value, list) and len(value) == 2 and all(isinstance(v, bytes) for v in value)
        ):
            raise DecodeError("fork proof must be an array of two signed entries")
        proof = cls(value[0], value[1])
        proof.verify(limits)
        return proof

    def verify(self, limits: Limits = DEFAULT_LIMITS) -> tuple[Entry, Entry]:
        a = decode_entry(self.first, now_ms=None, limits=limits)
        b = decode_entry(self.second, now_ms=None, limits=limits)
        if (a.author, a.log, a.seq) != (b.author, b.log, b.seq) or a.hash == b.hash:
            raise DecodeError(
                "fork proof entries must share author, log and seq and differ in hash"
            )
        return a, b


def max_fork_proof_bytes(limits: Limits = DEFAULT_LIMITS) -> int:
    """Two signed entries (payload, signature and headers) and the array around them."""
    return 2 * limits.max_entry_bytes + 512


def verify_fork_proof(
    data: bytes, limits: Limits = DEFAULT_LIMITS
) -> tuple[ForkProof, Entry, Entry]:
    """Check a received proof completely: both entries decode and verify against their author's
    key, and they share author, log and seq but not their hash. Anything else is
    ``InvalidForkProof``, naming what failed."""
    try:
        proof = ForkProof.from_bytes(data, limits)
        first, second = proof.verify(limits)
    except RemoteProtocolError as exc:
        raise InvalidForkProof(f"not a valid fork proof: {exc.reason}: {exc}") from None
    return proof, first, second


def fork_proof(a: Entry, b: Entry) -> ForkProof | None:
    """The proof that ``a`` and ``b`` fork their log, or None if they do not."""
    if (a.author, a.log, a.seq) == (b.author, b.log, b.seq) and a.hash != b.hash:
        return ForkProof(a.raw, b.raw)
    return None
