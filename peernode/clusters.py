"""Union entries: records of the same edition from different libraries, grouped as they arrive.

Each record's match keys (peernode/matchkeys.py) go into ``record_keys``; records that share a key
belong to one cluster, kept in ``record_clusters`` (records.id -> cluster id, the smallest record
id of the cluster when it was formed). Grouping is incremental: a batch of new records costs one
indexed lookup of its keys and two inserts, with union-find in memory for links inside the batch;
a record that links two clusters merges them with one indexed update. Nothing is destroyed:
every library's record stays as it is, and clustering is only this node's view of them.

A wrong merge is undone locally and explicitly: ``split`` takes a record out of automatic
linking (its keys are no longer stored), ``join`` links two records whatever their keys. Both are
kept by (library, record id) in ``cluster_splits`` / ``cluster_joins``, so they survive the record
being changed, deleted and put again, and any re-clustering. They are not replicated: see
docs/clustering.md for why.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .db import insert_many
from .matchkeys import record_keys

__all__ = [
    "CLUSTER_OF",
    "ClusterError",
    "Member",
    "add_records",
    "cluster_of",
    "join",
    "rebuild",
    "remove_records",
    "split",
    "union_members",
]

# SQL giving the cluster of the records row aliased ``r`` (a record not yet clustered is its own).
CLUSTER_OF = "COALESCE((SELECT cluster FROM record_clusters WHERE id = r.id), r.id)"
_CHUNK = 500  # bound parameters per IN (...) query


class ClusterError(Exception):
    """An unknown record or an impossible split/join; the message says which."""


@dataclass(frozen=True)
class Member:
    """One library's record in a union entry."""

    id: int  # records.id on this node
    author: bytes
    rid: str
    title: str
    library: str  # the library's name, "" until its profile arrives
    split: bool  # taken out of automatic linking here


def cluster_of(conn: sqlite3.Connection, record_id: int) -> int:
    """The union entry (cluster id) of ``record_id``."""
    row = conn.execute("SELECT cluster FROM record_clusters WHERE id = ?", (record_id,)).fetchone()
    return int(row[0]) if row else record_id


def union_members(conn: sqlite3.Connection, record_id: int) -> list[Member]:
    """Every record in the union entry of ``record_id`` (itself included), by library name."""
    cluster = cluster_of(conn, record_id)
    rows = conn.execute(
        "SELECT r.id, r.author, r.rid, r.title, COALESCE(l.name, ''), "
        "EXISTS (SELECT 1 FROM cluster_splits s WHERE s.author = r.author AND s.rid = r.rid) "
        "FROM record_clusters c JOIN records r ON r.id = c.id "
        "LEFT JOIN libraries l ON l.author = r.author WHERE c.cluster = ? "
        "ORDER BY l.name, r.rid",
        (cluster,),
    ).fetchall()
    members = [Member(i, a, rid, t, name, bool(s)) for i, a, rid, t, name, s in rows]
    if not members:  # never clustered (cannot happen after migration v11, but cost nothing)
        row = conn.execute(
            "SELECT r.id, r.author, r.rid, r.title, COALESCE(l.name, '') FROM records r "
            "LEFT JOIN libraries l ON l.author = r.author WHERE r.id = ?",
            (record_id,),
        ).fetchone()
        if row is not None:
            members = [Member(row[0], row[1], row[2], row[3], row[4], False)]
    return members


# --- materialising: called inside the store's transaction ------------------------------------


def add_records(
    conn: sqlite3.Connection,
    author: bytes,
    records: Sequence[tuple[str, dict[str, Any]]],
    keys_of: Sequence[list[str]] | None = None,
    ids_of: Sequence[int] | None = None,
) -> None:
    """Cluster the records ``(rid, wire map)`` just upserted for ``author``.

    New records are linked by their keys; a changed record whose keys are the same stays where
    it is; one whose keys changed leaves its cluster (which may fall apart) and is linked anew.
    ``keys_of``: each record's ``record_keys``, ``ids_of`` its records id, when the caller
    knows them already.
    """
    if not records:
        return
    ids = (
        dict(zip((rid for rid, _ in records), ids_of, strict=True))
        if ids_of is not None
        else _ids(conn, author, [rid for rid, _ in records])
    )
    splits = _split_rids(conn, author)
    clustered = _clustered(conn, list(ids.values()))
    fresh: list[tuple[int, list[str]]] = []
    for position, (rid, data) in enumerate(records):
        record_id = ids[rid]
        if rid in splits:
            keys = []
        else:
            keys = keys_of[position] if keys_of is not None else record_keys(data)
        if record_id in clustered:  # a changed record: usually its keys are the same
            old = conn.execute("SELECT key FROM record_keys WHERE id = ?", (record_id,))
            if sorted(k for (k,) in old) == sorted(keys):
                continue
            _detach(conn, record_id)
        fresh.append((record_id, keys))
    if fresh:
        _link(conn, author, fresh)


def remove_records(conn: sqlite3.Connection, author: bytes, rids: Sequence[str]) -> None:
    """Before ``rids`` of ``author`` are deleted: take them out of their clusters."""
    for record_id in _ids(conn, author, rids).values():
        _detach(conn, record_id)


def _ids(conn: sqlite3.Connection, author: bytes, rids: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for start in range(0, len(rids), _CHUNK):
        chunk = rids[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        found.update(
            conn.execute(
                f"SELECT rid, id FROM records WHERE author = ? AND rid IN ({marks})",
                (author, *chunk),
            )
        )
    return found


def _clustered(conn: sqlite3.Connection, ids: list[int]) -> set[int]:
    found: set[int] = set()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        found.update(
            i
            for (i,) in conn.execute(f"SELECT id FROM record_clusters WHERE id IN ({marks})", chunk)
        )
    return found


def _split_rids(conn: sqlite3.Connection, author: bytes) -> set[str]:
    return {
        rid for (rid,) in conn.execute("SELECT rid FROM cluster_splits WHERE author = ?", (author,))
    }


def _link(conn: sqlite3.Connection, author: bytes, fresh: list[tuple[int, list[str]]]) -> None:
    """Give each (record id, keys) a cluster: the one its keys lead to, merging where needed."""
    wanted = list({key for _, keys in fresh for key in keys})
    owner: dict[str, int] = {}  # key -> a cluster that holds it
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            "SELECT k.key, c.cluster FROM record_keys k JOIN record_clusters c ON c.id = k.id "
            f"WHERE k.key IN ({marks})",
            chunk,
        )
        for key, cluster in rows:
            owner[key] = cluster
    parent: dict[int, int] = {}

    def find(cluster: int) -> int:
        root = cluster
        while parent.get(root, root) != root:
            root = parent[root]
        while cluster != root:  # path compression
            parent[cluster], cluster = root, parent.get(cluster, cluster)
        return root

    existing = set(owner.values())
    for key, cluster in list(
        owner.items()
    ):  # a key held by two clusters (cannot happen) merges them
        owner[key] = find(cluster)
    explicit = _joined(conn, author, [record_id for record_id, _ in fresh])
    assigned: dict[int, int] = {}
    for record_id, keys in fresh:
        roots = {find(owner[key]) for key in keys if key in owner}
        for other in explicit.get(record_id, ()):
            if other in assigned:
                roots.add(find(assigned[other]))
            else:  # joined to a record stored before: its cluster, to be merged with
                held = cluster_of(conn, other)
                existing.add(held)
                roots.add(find(held))
        target = min(roots) if roots else record_id
        for root in roots:
            if root != target:
                parent[root] = target
        parent.setdefault(target, target)
        assigned[record_id] = target
        for key in keys:
            owner[key] = target
    insert_many(
        conn,
        "INSERT OR REPLACE INTO record_keys (key, id)",
        [(key, record_id) for record_id, keys in fresh for key in keys],
    )
    insert_many(
        conn,
        "INSERT OR REPLACE INTO record_clusters (id, cluster)",
        [(record_id, find(cluster)) for record_id, cluster in assigned.items()],
    )
    # Clusters stored before this batch that a new record tied to another one.
    merged = [(find(cluster), cluster) for cluster in existing if find(cluster) != cluster]
    if merged:
        conn.executemany("UPDATE record_clusters SET cluster = ? WHERE cluster = ?", merged)


def _joined(
    conn: sqlite3.Connection, author: bytes, record_ids: Iterable[int]
) -> dict[int, set[int]]:
    """Explicit joins of these records: record id -> ids of the records it is joined to."""
    if conn.execute("SELECT 1 FROM cluster_joins LIMIT 1").fetchone() is None:
        return {}  # the usual case: nobody joined anything by hand
    wanted = set(record_ids)
    out: dict[int, set[int]] = {}
    rows = conn.execute(
        "SELECT a.id, b.id FROM cluster_joins j "
        "JOIN records a ON a.author = j.author_a AND a.rid = j.rid_a "
        "JOIN records b ON b.author = j.author_b AND b.rid = j.rid_b "
        "WHERE j.author_a = ? OR j.author_b = ?",
        (author, author),
    )
    for one, other in rows:
        if one in wanted:
            out.setdefault(one, set()).add(other)
        if other in wanted:
            out.setdefault(other, set()).add(one)
    return out


def _detach(conn: sqlite3.Connection, record_id: int) -> None:
    """Take a record out of its cluster; the members left are regrouped (they may fall apart)."""
    cluster = cluster_of(conn, record_id)
    conn.execute("DELETE FROM record_keys WHERE id = ?", (record_id,))
    conn.execute("DELETE FROM record_clusters WHERE id = ?", (record_id,))
    rest = [
        i for (i,) in conn.execute("SELECT id FROM record_clusters WHERE cluster = ?", (cluster,))
    ]
    if rest:
        _regroup(conn, rest)


def _regroup(conn: sqlite3.Connection, ids: list[int]) -> None:
    """Recompute the clusters of ``ids`` (a former cluster) from their keys and joins."""
    members = set(ids)
    by_key: dict[str, list[int]] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        for key, record_id in conn.execute(
            f"SELECT key, id FROM record_keys WHERE id IN ({marks})", chunk
        ):
            by_key.setdefault(key, []).append(record_id)
    parent = {i: i for i in members}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    for linked in by_key.values():
        for other in linked[1:]:
            union(linked[0], other)
    for one, other in _all_joins(conn):
        if one in members and other in members:
            union(one, other)
    conn.executemany(
        "UPDATE record_clusters SET cluster = ? WHERE id = ?", [(find(i), i) for i in members]
    )


def _all_joins(conn: sqlite3.Connection) -> list[tuple[int, int]]:
    return conn.execute(
        "SELECT a.id, b.id FROM cluster_joins j "
        "JOIN records a ON a.author = j.author_a AND a.rid = j.rid_a "
        "JOIN records b ON b.author = j.author_b AND b.rid = j.rid_b"
    ).fetchall()


# --- a librarian's corrections ----------------------------------------------------------------


def _record(conn: sqlite3.Connection, record_id: int) -> tuple[bytes, str, bytes]:
    row = conn.execute(
        "SELECT author, rid, data FROM records WHERE id = ?", (record_id,)
    ).fetchone()
    if row is None:
        raise ClusterError(f"no record with id {record_id} on this node")
    return row[0], row[1], row[2]


def split(conn: sqlite3.Connection, record_id: int) -> None:
    """Take the record out of automatic linking: it stands alone (or with its explicit joins)
    from now on, here, whatever arrives later. Within the caller's transaction."""
    author, rid, _ = _record(conn, record_id)
    conn.execute("INSERT OR IGNORE INTO cluster_splits (author, rid) VALUES (?, ?)", (author, rid))
    _detach(conn, record_id)
    _link(conn, author, [(record_id, [])])


def unsplit(conn: sqlite3.Connection, record_id: int) -> None:
    """Undo ``split``: the record is linked by its keys again."""
    import msgpack

    author, rid, data = _record(conn, record_id)
    conn.execute("DELETE FROM cluster_splits WHERE author = ? AND rid = ?", (author, rid))
    _detach(conn, record_id)
    _, wire = msgpack.unpackb(data, raw=False)
    _link(conn, author, [(record_id, record_keys(wire))])


def join(conn: sqlite3.Connection, one: int, other: int) -> None:
    """Put two records into one union entry whatever their keys (kept across re-clustering)."""
    if one == other:
        raise ClusterError("a record cannot be joined to itself")
    author_a, rid_a, _ = _record(conn, one)
    author_b, rid_b, _ = _record(conn, other)
    conn.execute(
        "INSERT OR IGNORE INTO cluster_joins (author_a, rid_a, author_b, rid_b) "
        "VALUES (?, ?, ?, ?)",
        (author_a, rid_a, author_b, rid_b),
    )
    a, b = cluster_of(conn, one), cluster_of(conn, other)
    if a != b:
        target, gone = min(a, b), max(a, b)
        conn.execute("UPDATE record_clusters SET cluster = ? WHERE cluster = ?", (target, gone))


def unjoin(conn: sqlite3.Connection, one: int, other: int) -> bool:
    """Drop an explicit join of two records; their union entry is regrouped. True if one existed."""
    author_a, rid_a, _ = _record(conn, one)
    author_b, rid_b, _ = _record(conn, other)
    gone = conn.execute(
        "DELETE FROM cluster_joins WHERE "
        "(author_a = ? AND rid_a = ? AND author_b = ? AND rid_b = ?) OR "
        "(author_a = ? AND rid_a = ? AND author_b = ? AND rid_b = ?)",
        (author_a, rid_a, author_b, rid_b, author_b, rid_b, author_a, rid_a),
    ).rowcount
    cluster = cluster_of(conn, one)
    _regroup(
        conn,
        [
            i
            for (i,) in conn.execute("SELECT id FROM record_clusters WHERE cluster = ?", (cluster,))
        ],
    )
    return bool(gone)


def rebuild(conn: sqlite3.Connection) -> int:
    """Cluster every record from scratch (migration v11, and after a restore). Returns the count."""
    import msgpack

    conn.execute("DELETE FROM record_keys")
    conn.execute("DELETE FROM record_clusters")
    count = 0
    authors = [a for (a,) in conn.execute("SELECT DISTINCT author FROM records")]
    for author in authors:
        splits = _split_rids(conn, author)
        batch: list[tuple[int, list[str]]] = []
        rows = conn.execute(
            "SELECT id, rid, data FROM records WHERE author = ?", (author,)
        ).fetchall()
        for record_id, rid, data in rows:
            _, wire = msgpack.unpackb(data, raw=False)
            batch.append((record_id, [] if rid in splits else record_keys(wire)))
            if len(batch) >= 1000:
                _link(conn, author, batch)
                count += len(batch)
                batch = []
        if batch:
            _link(conn, author, batch)
            count += len(batch)
    return count


def add_row_values(conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Cluster ``recordrows.record_row_values`` rows just upserted (a snapshot's records)."""
    import msgpack

    by_author: dict[bytes, list[tuple[str, dict[str, Any]]]] = {}
    for row in rows:
        rid, wire = msgpack.unpackb(row[8], raw=False)  # row[8]: the canonical [rid, record]
        by_author.setdefault(row[0], []).append((rid, wire))
    for author, records in by_author.items():
        for start in range(0, len(records), 1000):
            add_records(conn, author, records[start : start + 1000])
