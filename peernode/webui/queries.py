"""The reads behind the pages, run on the node's database thread. Each is a bounded number of
indexed queries (never one per row shown), so a page costs the same on a 1M-record replica."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from protocol import node_id, parse_node_id

from .. import cooperation
from ..clusters import CLUSTER_OF
from ..members import HIDDEN_SQL as _EXCLUDED
from ..mesh import profile_body
from ..records import BibRecord, decode_record
from ..status import peer_rows
from ..store import Store

MAX_HOLDERS = 200  # libraries shown on one union entry; a flood of duplicates stops here
NEW_PAGE = 50
ALERT_ROWS = 100


@dataclass
class HeldCopy:
    library: str
    node_id: str
    record: BibRecord


@dataclass
class UnionEntry:
    record: BibRecord  # the record the reader opened
    node_id: str
    library: str
    holders: list[HeldCopy] = field(default_factory=list)


def _author(text: str) -> bytes | None:
    try:
        return parse_node_id(text)
    except ValueError:
        return None


def union_entry(conn: sqlite3.Connection, library: str, rid: str) -> UnionEntry | None:
    """The record ``rid`` of ``library`` and every library holding the same edition."""
    author = _author(library)
    if author is None or len(rid) > 1000:
        return None
    row = conn.execute(
        f"SELECT {CLUSTER_OF}, r.data, COALESCE(l.name, '') FROM records r "
        "LEFT JOIN libraries l ON l.author = r.author "
        f"WHERE r.author = ? AND r.rid = ? AND r.author NOT IN ({_EXCLUDED})",
        (author, rid),
    ).fetchone()
    if row is None:
        return None
    key, data, name = row
    entry = UnionEntry(decode_record(data), node_id(author), name or node_id(author)[:9])
    rows = conn.execute(
        "SELECT r.author, r.data, COALESCE(l.name, '') FROM records r "
        "LEFT JOIN libraries l ON l.author = r.author "
        "WHERE r.id IN (SELECT id FROM record_clusters WHERE cluster = ?) "
        f"AND r.author NOT IN ({_EXCLUDED}) "
        "ORDER BY l.name, r.rid LIMIT ?",
        (key, MAX_HOLDERS),
    )
    for holder, blob, holder_name in rows:
        nid = node_id(holder)
        entry.holders.append(HeldCopy(holder_name or nid[:9], nid, decode_record(blob)))
    return entry


@dataclass
class Library:
    node_id: str
    name: str
    isil: str
    contact: str
    status: str  # member, removed, revoked, blocked, or "" when not (yet) a known member
    own: bool
    addresses: list[str] = field(default_factory=list)
    records: int | None = None


def libraries(conn: sqlite3.Connection, own_key: bytes) -> list[Library]:
    rows = conn.execute(
        "SELECT l.author, l.name, COALESCE(l.isil, ''), COALESCE(l.contact, ''), "
        "CASE WHEN b.key IS NOT NULL THEN 'blocked' ELSE COALESCE(m.status, '') END "
        "FROM libraries l LEFT JOIN members m ON m.key = l.author "
        "LEFT JOIN blocks b ON b.key = l.author ORDER BY l.name COLLATE NOCASE LIMIT 2000"
    )
    return [
        Library(node_id(author), name, isil, contact, status, author == own_key)
        for author, name, isil, contact, status in rows
    ]


def record_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Records per library: one pass over an index, so callers cache it (a 1M replica: ~0.3 s)."""
    rows = conn.execute("SELECT author, count(*) FROM records GROUP BY author")
    return {node_id(author): int(count) for author, count in rows}


def library(conn: sqlite3.Connection, own_key: bytes, library_id: str) -> Library | None:
    author = _author(library_id)
    if author is None:
        return None
    found = [lib for lib in libraries(conn, own_key) if lib.node_id == node_id(author)]
    if not found:
        return None
    lib = found[0]
    body = profile_body(conn, author) or {}
    addresses = body.get("addresses")
    if isinstance(addresses, list):
        lib.addresses = [str(a) for a in addresses[:4]]
    count = conn.execute("SELECT count(*) FROM records WHERE author = ?", (author,)).fetchone()
    lib.records = int(count[0])
    return lib


MAX_OFFERS = 50


def lending(conn: sqlite3.Connection, library_id: str) -> dict[str, Any]:
    """A library's published lending policy (None: it published none, so it lends to every
    member) and its loan offers, as peernode/cooperation.py reads them."""
    author = _author(library_id)
    if author is None:
        return {"policy": None, "policy_published": False, "offers": []}
    published = conn.execute("SELECT 1 FROM policies WHERE author = ?", (author,)).fetchone()
    policy = cooperation.policy_json(conn, author)
    names = dict(conn.execute("SELECT author, name FROM libraries"))
    policy["partner_names"] = [
        names.get(parse_node_id(p)) or p[:9] for p in policy.get("partners", [])[:50]
    ]
    return {
        "policy": policy,
        "policy_published": published is not None,
        "offers": cooperation.offers(conn, author)[:MAX_OFFERS],
    }


@dataclass
class NewRecord:
    library: str
    node_id: str
    record: BibRecord


def new_records(
    conn: sqlite3.Connection, library_id: str | None, page: int, size: int = NEW_PAGE
) -> list[NewRecord]:
    """The records put last (newest first), of every library or of one: a library page's
    "newest records" (the /new page is peernode/reports.py's dated list). Both orders walk an
    index backwards (records_seq for one library, the rowid for all), never a sort."""
    offset = (page - 1) * size
    if library_id:
        author = _author(library_id)
        if author is None:
            return []
        rows = conn.execute(
            "SELECT r.author, r.data, COALESCE(l.name, '') FROM records r "
            "LEFT JOIN libraries l ON l.author = r.author WHERE r.author = ? "
            f"AND r.author NOT IN ({_EXCLUDED}) ORDER BY r.seq DESC, r.rid DESC LIMIT ? OFFSET ?",
            (author, size, offset),
        )
    else:
        rows = conn.execute(
            "SELECT r.author, r.data, COALESCE(l.name, '') FROM records r "
            f"LEFT JOIN libraries l ON l.author = r.author WHERE r.author NOT IN ({_EXCLUDED}) "
            "ORDER BY r.id DESC LIMIT ? OFFSET ?",
            (size, offset),
        )
    out = []
    for author, blob, name in rows:
        nid = node_id(author)
        out.append(NewRecord(name or nid[:9], nid, decode_record(blob)))
    return out


def alerts(conn: sqlite3.Connection) -> dict[str, Any]:
    """Forks (a library signed two histories) and rejected entries, newest first."""
    names = dict(conn.execute("SELECT author, name FROM libraries"))
    forks = [
        {
            "library": names.get(author) or node_id(author)[:9],
            "node_id": node_id(author),
            "log": log,
            "seq": seq,
            "found_at": found_at,
        }
        for author, log, seq, found_at in conn.execute(
            "SELECT author, log, seq, found_at FROM forks ORDER BY found_at DESC LIMIT ?",
            (ALERT_ROWS,),
        )
    ]
    by_reason = conn.execute(
        "SELECT reason, count(*) FROM rejections GROUP BY reason ORDER BY count(*) DESC LIMIT 50"
    ).fetchall()
    rejections = [
        {
            "at": at,
            "peer": (names.get(peer) or node_id(peer)[:9]) if peer else "",
            "reason": reason,
            "message": message[:500],
        }
        for at, peer, reason, message in conn.execute(
            "SELECT at, peer, reason, message FROM rejections ORDER BY id DESC LIMIT ?",
            (ALERT_ROWS,),
        )
    ]
    return {"forks": forks, "by_reason": by_reason, "rejections": rejections}


@dataclass
class MeshNode:
    key: bytes
    name: str
    status: str  # member status, or "peer" for a pinned peer the members table does not know
    own: bool = False
    peer: bool = False
    connected: bool = False
    last_seen: int | None = None  # ms: latest heartbeat heard or direct contact
    behind: int = 0  # entries a direct peer holds that we lack
    admitted_by: list[bytes] = field(default_factory=list)

    @property
    def node_id(self) -> str:
        return node_id(self.key)


MAX_MAP_NODES = 60  # a drawn map stays readable; the table beside it lists everyone


def mesh(store: Store, own_key: bytes, own_name: str, connected: set[bytes]) -> list[MeshNode]:
    """Every library this node knows of, with what it knows of their links and liveness."""
    conn = store.conn
    nodes: dict[bytes, MeshNode] = {own_key: MeshNode(own_key, own_name, "member", own=True)}
    profiles = dict(conn.execute("SELECT author, name FROM libraries"))
    for key, name, status, admitted in conn.execute(
        "SELECT key, name, status, admitted_by FROM members ORDER BY name LIMIT 1000"
    ):
        node = nodes.setdefault(key, MeshNode(key, profiles.get(key) or name, status))
        node.status = status if not node.own else "member"
        try:
            node.admitted_by = [bytes.fromhex(k) for k in json.loads(admitted)][:8]
        except (ValueError, TypeError):
            node.admitted_by = []
    for row in peer_rows(store, connected):
        key = parse_node_id(row["node_id"])
        node = nodes.setdefault(key, MeshNode(key, row["name"], "peer"))
        node.peer = True
        node.connected = bool(row["connected"])
        node.last_seen = row["last_seen"]
        node.behind = int(row["behind"] or 0)
    for key, heard_at in conn.execute(
        "SELECT key, heard_at FROM liveness WHERE beat_at IS NOT NULL"
    ):
        if key in nodes:
            seen = [t for t in (nodes[key].last_seen, heard_at) if t is not None]
            nodes[key].last_seen = max(seen) if seen else None
    own = nodes.pop(own_key)
    rest = sorted(nodes.values(), key=lambda n: (not n.peer, n.name.lower()))
    return [own, *rest]
