"""Peer exchange: members' addresses travel in their signed profiles; whom the node dials.

A library's profile entry may carry ``addresses`` (protocol/kinds.py). Every node stores every
member's profile, so an admitted library learns where the others listen without anyone typing
an address. The node dials two kinds of peer:

- pinned: rows of the ``peers`` table with an address, set by the admin (`peer join`,
  `peer add --address`). Always dialled, never evicted: gossip cannot push them out (the
  eclipse defence).
- learned: trusted members whose profile names an address, chosen at random to fill the slots
  up to the ``max_peers`` setting. One that cannot be reached gives its slot to another.

The addresses are read back from the stored profile entries (the last entry of each author's
``profile`` log), decoded once per new profile: no column of their own in the schema.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from protocol import PROFILE, decode_entry
from protocol.kinds import is_dial_address

PROFILE_LOG = "profile"
_WILDCARD_HOSTS = ("0.0.0.0", "::", "[::]", "")


def advertisable(address: str) -> bool:
    """Whether another library could dial ``address``: not a wildcard listen address."""
    host = address.rpartition(":")[0]
    return host not in _WILDCARD_HOSTS and is_dial_address(address)


def profile_body(conn: sqlite3.Connection, author: bytes) -> dict[str, Any] | None:
    """The body of ``author``'s current profile (the last entry of its profile log)."""
    row = conn.execute(
        "SELECT e.raw FROM heads h JOIN entries e "
        "ON e.author = h.author AND e.log = h.log AND e.seq = h.seq "
        "WHERE h.author = ? AND h.log = ?",
        (author, PROFILE_LOG),
    ).fetchone()
    return _body(row[0]) if row else None


def _body(raw: bytes) -> dict[str, Any] | None:
    # Verified when it arrived; decoding again is cheap and keeps one reader of the format.
    entry = decode_entry(raw, now_ms=None)
    return entry.body if entry.kind == PROFILE and isinstance(entry.body, dict) else None


class AddressBook:
    """Members' advertised addresses, kept in step with their stored profiles."""

    def __init__(self) -> None:
        self._seen: dict[bytes, tuple[int, tuple[str, ...]]] = {}

    def refresh(self, conn: sqlite3.Connection) -> dict[bytes, tuple[str, ...]]:
        """author -> addresses; decodes only profiles that changed since the last call."""
        heads = conn.execute("SELECT author, seq FROM heads WHERE log = ?", (PROFILE_LOG,))
        for author, seq in heads.fetchall():
            known = self._seen.get(author)
            if known is not None and known[0] == seq:
                continue
            body = profile_body(conn, author)
            found = body.get("addresses", []) if body else []
            self._seen[author] = (seq, tuple(a for a in found if is_dial_address(a)))
        return {author: addrs for author, (_, addrs) in self._seen.items() if addrs}


def pick_learned(
    addresses: Mapping[bytes, Sequence[str]],
    *,
    eligible: Collection[bytes],
    slots: int,
    rng: random.Random,
) -> list[tuple[bytes, str]]:
    """Up to ``slots`` members from ``eligible`` to dial, at random, each with one address."""
    keys = sorted(k for k in eligible if addresses.get(k))
    rng.shuffle(keys)
    return [(key, rng.choice(list(addresses[key]))) for key in keys[: max(0, slots)]]
