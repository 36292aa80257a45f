"""Membership on this node: member statements, their fold, founders, and the local block list.

Statements arrive as signed ``member`` entries in members' ``members`` logs; the store
materialises each into ``member_statements``, and whoever applied them re-folds the set once
(protocol/membership.py) and rewrites the ``members`` table (``save``), which queries such as
search read. ``founders`` holds this node's trust anchors (an
empty table means this node founded its own network, so ``load`` fills in our own key);
``blocks`` is local and never replicated. Whom the node trusts is decided in peernode/node.py
from these (``Node.trusts``, ``Node.accept_peer``).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import Entry, node_id
from protocol.kinds import MEMBER, MEMBERS_LOG
from protocol.membership import (
    ADMIN,
    ADMIT,
    CURRENT,
    REMOVED,
    REVOKE,
    REVOKED,
    Membership,
    Statement,
    fold,
)

from .db import transaction

if TYPE_CHECKING:
    from .store import Store


def _now_ms() -> int:
    return int(time.time() * 1000)


# --- the materialiser (called by Store inside its transaction) ----------------------------------


def materialize(conn: sqlite3.Connection, entry: Entry, source: str | None) -> None:
    statement = Statement.from_entry(entry)
    if statement is None:
        return  # a member entry outside a members log says nothing about membership
    conn.execute(
        "INSERT OR IGNORE INTO member_statements "
        "(author, seq, op, key, name, role, reason, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            statement.author,
            statement.seq,
            statement.op,
            statement.key,
            statement.name,
            statement.role,
            statement.reason,
            entry.timestamp,
        ),
    )
    # No re-fold here: a batch of statements would fold once per entry. Whoever applies them
    # re-folds once (Node.reload_trust, ``sign``, ``TrustView``) and ``save``s the table.


def statements(conn: sqlite3.Connection) -> list[Statement]:
    rows = conn.execute("SELECT author, seq, op, key, name, role, reason FROM member_statements")
    return [Statement(*row) for row in rows]


def forked_members_logs(conn: sqlite3.Connection) -> dict[bytes, int]:
    """Authors whose members log has a proven fork, and its seq: the fold treats them as revoked."""
    rows = conn.execute(
        "SELECT author, min(seq) FROM forks WHERE log = ? GROUP BY author", (MEMBERS_LOG,)
    )
    return {author: seq for author, seq in rows}


def refresh(conn: sqlite3.Connection) -> Membership:
    """Fold every statement we hold and rewrite the ``members`` table. Call inside a transaction."""
    membership = fold(founders(conn), statements(conn), forked_members_logs(conn))
    conn.execute("DELETE FROM members")
    conn.executemany(
        "INSERT INTO members (key, name, status, role, founder, admitted_by, removed_by, reason) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                m.key,
                m.name,
                m.status,
                m.role,
                int(m.founder),
                json.dumps([k.hex() for k in m.admitted_by]),
                m.removed_by,
                m.reason,
            )
            for m in membership.members.values()
        ],
    )
    return membership


def load(store: Store) -> Membership:
    """The membership as this node sees it now (a node with no founders founded its own)."""
    conn = store.conn
    if conn.execute("SELECT 1 FROM founders LIMIT 1").fetchone() is None:
        return save(store)
    return fold(founders(conn), statements(conn), forked_members_logs(conn))


def save(store: Store) -> Membership:
    """Fold and rewrite the ``members`` table, after statements were applied (or a fork found)."""
    with transaction(store.conn) as conn:
        conn.execute(
            "INSERT INTO founders (key, added_at) SELECT ?, ? "
            "WHERE NOT EXISTS (SELECT 1 FROM founders)",
            (store.own_key, _now_ms()),
        )
        return refresh(conn)


# Libraries the network removed or revoked, or this node blocked: their entries stay stored (a
# signed history), but search, loans, reports and OAI-PMH no longer offer their records
# (docs/security.md). An SQL subquery of keys, for `author NOT IN (...)`.
HIDDEN_SQL = (
    "SELECT key FROM members WHERE status IN ('removed', 'revoked') UNION SELECT key FROM blocks"
)


def trusted(
    key: bytes, *, own: bytes, membership: Membership, pinned: set[bytes], blocked: set[bytes]
) -> bool:
    """Whose logs a node replicates: its own; current members and the peers its admin pinned,
    unless the network removed or revoked them or the node blocked them."""
    if key == own:
        return True
    member = membership.members.get(key)  # one lookup: this runs per log, per message
    if key in blocked or (member is not None and member.status in (REMOVED, REVOKED)):
        return False
    return (member is not None and member.status == CURRENT) or key in pinned


class TrustView:
    """``trusted`` for code that applies entries as it goes (a bundle import): re-folded when new
    statements arrived, since a bundle can carry a library's admission before its catalogue."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._count = -1
        self._pinned: set[bytes] = set()
        self._blocked: set[bytes] = set()
        self._membership = Membership(frozenset(), {})

    def __call__(self, key: bytes) -> bool:
        conn = self.store.conn
        count = int(conn.execute("SELECT count(*) FROM member_statements").fetchone()[0])
        if count != self._count:
            self._count = count
            self._membership = load(self.store)
            self._pinned = {k for (k,) in conn.execute("SELECT key FROM peers")}
            self._blocked = blocked(conn)
        return trusted(
            key,
            own=self.store.own_key,
            membership=self._membership,
            pinned=self._pinned,
            blocked=self._blocked,
        )


# --- founders --------------------------------------------------------------------------------


def founders(conn: sqlite3.Connection) -> frozenset[bytes]:
    return frozenset(key for (key,) in conn.execute("SELECT key FROM founders"))


def is_fresh(store: Store) -> bool:
    """This node has admitted nobody and anchors only on itself: it has no network of its own
    yet, so joining another library puts it into that library's network."""
    own = store.own_key
    if founders(store.conn) - {own}:
        return False
    row = store.conn.execute(
        "SELECT 1 FROM member_statements WHERE author = ? AND op = ? AND key != ? LIMIT 1",
        (own, ADMIT, own),
    ).fetchone()
    return row is None


def adopt_founders(store: Store, keys: Iterable[bytes]) -> None:
    """Anchor on the inviter's founders (a fresh joiner only, see ``is_fresh``)."""
    keys = sorted(set(keys))
    if not keys:
        return
    with transaction(store.conn) as conn:
        conn.execute("DELETE FROM founders")
        conn.executemany(
            "INSERT INTO founders (key, added_at) VALUES (?, ?)", [(k, _now_ms()) for k in keys]
        )
        refresh(conn)


# --- signing statements ----------------------------------------------------------------------


def sign(
    store: Store,
    key: Ed25519PrivateKey,
    op: str,
    target: bytes,
    name: str,
    *,
    role: str | None = None,
    reason: str = "",
) -> Entry:
    """Sign one statement into our members log (durable before it returns, like every entry)."""
    body: dict[str, Any] = {
        "op": op,
        "key": target,
        "name": name.strip()[:200] or node_id(target)[:9],
    }
    if role is not None and op == ADMIT:
        body["role"] = role
    if reason:
        body["reason"] = reason[:1000]
    entry = store.append(key, MEMBERS_LOG, MEMBER, body)
    save(store)
    return entry


def admit_if_new(
    store: Store, key: Ed25519PrivateKey, target: bytes, name: str, role: str | None = None
) -> Entry | None:
    """Admit ``target`` unless our latest statement about it already admits it in that role."""
    row = store.conn.execute(
        "SELECT op, role FROM member_statements WHERE author = ? AND key = ? AND op != ? "
        "ORDER BY seq DESC LIMIT 1",
        (store.own_key, target, REVOKE),
    ).fetchone()
    if row is not None and row[0] == ADMIT and (role is None or row[1] == role):
        return None
    return sign(store, key, ADMIT, target, name, role=role)


# --- the local block list --------------------------------------------------------------------


def blocked(conn: sqlite3.Connection) -> set[bytes]:
    return {key for (key,) in conn.execute("SELECT key FROM blocks")}


def block(conn: sqlite3.Connection, key: bytes, reason: str = "") -> None:
    with transaction(conn):
        conn.execute(
            "INSERT INTO blocks (key, reason, added_at) VALUES (?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET reason = excluded.reason",
            (key, reason, _now_ms()),
        )


def unblock(conn: sqlite3.Connection, key: bytes) -> bool:
    with transaction(conn):
        return conn.execute("DELETE FROM blocks WHERE key = ?", (key,)).rowcount > 0


def block_rows(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT b.key, b.reason, b.added_at, COALESCE(l.name, m.name, '') FROM blocks b "
        "LEFT JOIN libraries l ON l.author = b.key LEFT JOIN members m ON m.key = b.key "
        "ORDER BY b.added_at"
    )
    return [
        {"node_id": node_id(key), "name": name, "reason": reason, "added_at": added_at}
        for key, reason, added_at, name in rows
    ]


# --- what `member list` shows ----------------------------------------------------------------


def member_rows(store: Store, membership: Membership) -> list[dict[str, Any]]:
    conn = store.conn
    profiles = dict(conn.execute("SELECT author, name FROM libraries"))
    block_list = blocked(conn)
    pinned = {key for (key,) in conn.execute("SELECT key FROM peers")}

    def name_of(key: bytes) -> str:
        member = membership.members.get(key)
        return str(profiles.get(key) or (member.name if member else "") or node_id(key)[:9])

    rows = []
    for m in membership.members.values():
        status = "blocked" if m.key in block_list else m.status
        rows.append(
            {
                "node_id": node_id(m.key),
                "name": name_of(m.key),
                "status": status,
                "role": ADMIN if m.admin else "member",
                "founder": m.founder,
                "admitted_by": [name_of(k) for k in m.admitted_by],
                "admitted_by_ids": [node_id(k) for k in m.admitted_by],
                "removed_by": node_id(m.removed_by) if m.removed_by else None,
                "reason": m.reason,
                "pinned": m.key in pinned,
                "self": m.key == store.own_key,
            }
        )
    order = {"member": 0, "pending": 1, "blocked": 2, "removed": 3, "revoked": 4}
    rows.sort(key=lambda r: (order.get(str(r["status"]), 5), str(r["name"]).lower()))
    return rows
