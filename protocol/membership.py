"""Who belongs to the network: a pure fold of signed member statements.

Each library signs statements into its own ``members`` log (entry kind ``member``, see
protocol/kinds.py): ``admit`` a key (optionally as ``admin``), ``remove`` a key, or ``revoke``
its own key. Every node folds the statements it holds, with its *founders* (the trust anchors it
was given when it joined, or itself when it founded the network), into the same member set:

- **Reach.** Founders are members. A key admitted by a member is a member: the closure from the
  founders through admits. Only an author's latest statement about a key counts (its log orders
  its own statements), so an author withdraws an admit by removing, and a removal by admitting.
- **Admins.** Founders are admins; so is a member admitted with role ``admin`` by an admin.
- **Remove.** Valid from an admin, from an author that admitted the key, or from the key itself
  (leaving). Founders cannot be removed. A removed key is no member, whoever else admits it
  (remove wins), and its own statements stop counting, so members only it vouched for drop out
  with it. Conflicting removals are decided nearest-the-founders first: removers are taken in
  order of their admission depth (then key), and a remover removed before its turn removes
  nothing. So an admin whose key was stolen and who "removes everybody" is undone by a founder
  removing it.
- **Revoke.** A key that signs ``revoke`` of itself declared itself compromised: it is never a
  member again. Its statements *before* the revoke still count (the members it vouched for stay);
  what its log holds after the revoke is ignored (a thief can go on signing). A key whose members
  log forked (``forked``: the seq of a proven fork) is treated as revoked at the fork.

The result depends only on the *set* of statements, never on the order they arrived in (a
property test checks it), so every node holding the same entries agrees.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise

from .entries import Entry
from .kinds import MEMBER, MEMBERS_LOG

ADMIT, REMOVE, REVOKE = "admit", "remove", "revoke"
ADMIN, MEMBER_ROLE = "admin", "member"

# A key's standing, as `member list` shows it.
CURRENT = "member"  # trusted: its logs are replicated and it may open sessions
REMOVED = "removed"
REVOKED = "revoked"
PENDING = "pending"  # named in a statement, but not reached from the founders: not trusted

_NEVER = 2**63


@dataclass(frozen=True, order=True)
class Statement:
    """One ``member`` entry, as the fold sees it."""

    author: bytes
    seq: int
    op: str
    key: bytes
    name: str
    role: str = MEMBER_ROLE
    reason: str = ""

    @classmethod
    def from_entry(cls, entry: Entry) -> Statement | None:
        """The statement in a verified entry; None for any other kind or log."""
        if entry.kind != MEMBER or entry.log != MEMBERS_LOG:
            return None
        body = entry.body
        return cls(
            entry.author,
            entry.seq,
            body["op"],
            body["key"],
            body["name"],
            body.get("role", MEMBER_ROLE),
            body.get("reason", ""),
        )


@dataclass(frozen=True)
class Member:
    """One key's standing in the fold."""

    key: bytes
    name: str
    status: str  # CURRENT, REMOVED, REVOKED or PENDING
    admin: bool
    founder: bool
    admitted_by: tuple[bytes, ...]  # authors whose standing admit of this key counts
    removed_by: bytes | None = None
    reason: str = ""  # why it was removed or revoked

    @property
    def role(self) -> str:
        return ADMIN if self.admin else MEMBER_ROLE


@dataclass(frozen=True)
class Membership:
    founders: frozenset[bytes]
    members: Mapping[bytes, Member]  # every key the statements or founders name, by key

    def is_member(self, key: bytes) -> bool:
        member = self.members.get(key)
        return member is not None and member.status == CURRENT

    def status(self, key: bytes) -> str | None:
        member = self.members.get(key)
        return member.status if member is not None else None

    @cached_property
    def current(self) -> frozenset[bytes]:
        return frozenset(k for k, m in self.members.items() if m.status == CURRENT)

    @cached_property
    def excluded(self) -> frozenset[bytes]:
        """Keys the network put out: removed or revoked. Never trusted, even when pinned."""
        return frozenset(k for k, m in self.members.items() if m.status in (REMOVED, REVOKED))

    @cached_property
    def admins(self) -> frozenset[bytes]:
        return frozenset(k for k, m in self.members.items() if m.admin and m.status == CURRENT)


def fold(
    founders: Iterable[bytes],
    statements: Iterable[Statement],
    forked: Mapping[bytes, int] | None = None,
) -> Membership:
    """The member set that ``statements`` (any order, duplicates allowed) give under ``founders``.

    ``forked`` maps an author to the seq of a proven fork in its members log.
    """
    roots = frozenset(founders)
    stmts = sorted(set(statements))  # sorted: nothing below may depend on arrival order
    # The author's word ends at its first revoke, or at a fork (two statements at one seq).
    end: dict[bytes, int] = dict(forked or {})
    why_end: dict[bytes, str] = {a: f"its members log forked at #{s}" for a, s in end.items()}
    for prev, cur in pairwise(stmts):
        if (prev.author, prev.seq) == (cur.author, cur.seq) and cur.seq < end.get(
            cur.author, _NEVER
        ):
            end[cur.author] = cur.seq
            why_end[cur.author] = f"its members log forked at #{cur.seq}"
    for s in stmts:
        if s.op == REVOKE and s.key == s.author and s.seq < end.get(s.author, _NEVER):
            end[s.author] = s.seq
            why_end[s.author] = s.reason or "revoked by its own key"
    valid = [s for s in stmts if s.seq < end.get(s.author, _NEVER)]

    latest: dict[tuple[bytes, bytes], Statement] = {}
    admitted_ever: set[tuple[bytes, bytes]] = set()
    for s in valid:  # ascending seq per author: the last one written wins
        if s.op == ADMIT and s.key != s.author:
            latest[(s.author, s.key)] = s
            admitted_ever.add((s.author, s.key))
        elif s.op == REMOVE:
            latest[(s.author, s.key)] = s
    admits: dict[bytes, list[Statement]] = {}
    removes: list[Statement] = []
    for s in latest.values():
        if s.op == ADMIT:
            admits.setdefault(s.author, []).append(s)
        else:
            removes.append(s)

    removed: dict[bytes, Statement] = {}
    while True:
        depth, admins = _closure(roots, admits, removed)
        candidates = [
            s
            for s in removes
            if s.key not in removed
            and s.key not in roots
            and s.author in depth
            and (s.author in admins or s.author == s.key or (s.author, s.key) in admitted_ever)
        ]
        if not candidates:
            break
        first = min(candidates, key=lambda s: (depth[s.author], s.author))
        for s in candidates:
            if s.author == first.author:
                removed[s.key] = s

    names: dict[bytes, tuple[tuple[int, bytes, int], str]] = {}
    for s in valid + [s for s in stmts if s.op == REVOKE and end.get(s.author) == s.seq]:
        rank = (depth.get(s.author, _NEVER), s.author, s.seq)
        if s.key not in names or rank < names[s.key][0]:
            names[s.key] = (rank, s.name)
    vouchers: dict[bytes, list[bytes]] = {}
    for s in latest.values():
        if s.op == ADMIT and s.author in depth:
            vouchers.setdefault(s.key, []).append(s.author)
    keys = set(roots) | set(end) | {s.key for s in valid} | {s.author for s in valid}
    members: dict[bytes, Member] = {}
    for key in sorted(keys):
        admitted_by = tuple(sorted(vouchers.get(key, ())))
        removal = removed.get(key)
        if key in end:
            status, reason = REVOKED, why_end[key]
        elif removal is not None:
            status, reason = REMOVED, removal.reason
        elif key in depth:
            status, reason = CURRENT, ""
        else:
            status, reason = PENDING, ""
        members[key] = Member(
            key=key,
            name=names[key][1] if key in names else "",
            status=status,
            admin=key in admins,
            founder=key in roots,
            admitted_by=admitted_by,
            removed_by=removal.author if removal is not None else None,
            reason=reason,
        )
    return Membership(roots, members)


def _closure(
    roots: frozenset[bytes],
    admits: Mapping[bytes, list[Statement]],
    removed: Mapping[bytes, Statement],
) -> tuple[dict[bytes, int], set[bytes]]:
    """Admission depth of every key reached from the founders, and the admins among them.

    Revoked keys stay in the reach: their admits from before the revoke still vouch.
    """
    depth = {root: 0 for root in roots}
    frontier = sorted(roots)
    while frontier:
        nxt: list[bytes] = []
        for author in frontier:
            for s in admits.get(author, ()):
                if s.key not in depth and s.key not in removed:
                    depth[s.key] = depth[author] + 1
                    nxt.append(s.key)
        frontier = sorted(nxt)
    admins = set(roots)
    grow = sorted(roots)
    while grow:
        nxt = []
        for author in grow:
            for s in admits.get(author, ()):
                if s.role == ADMIN and s.key in depth and s.key not in admins:
                    admins.add(s.key)
                    nxt.append(s.key)
        grow = sorted(nxt)
    return depth, admins
