"""Cooperation reports over the local replica: each library's new acquisitions, the overlap of
collections between libraries, and the titles only one library holds.

New acquisitions read ``record_added`` (when each record was first put: the signed timestamp of
that catalogue entry; an edit does not make a record new again). Overlap and unique titles
group records by the union key (peernode/union.py) in one ordered pass over the covering
index ``records_union (match_key, author)``, so they stay a single index scan at a million
records.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import combinations
from typing import Any

from .records import decode_record
from .union import EXCLUDED_SQL, Library, library, library_names, union_rows_sql

DAY_MS = 86_400_000
MAX_LIST = 10_000  # rows one report call returns at most; ``offset`` pages through the rest


def iso_date(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _title_row(library_: Library, rid: str, data: bytes) -> dict[str, Any]:
    record = decode_record(data)
    return {
        **library_.as_dict(),
        "record_id": rid,
        "title": record.title,
        "authors": list(record.authors),
        "year": record.year,
        "isbn": list(record.isbn),
        "publisher": record.publisher,
    }


# --- new acquisitions ----------------------------------------------------------------------


def new_acquisitions(
    conn: sqlite3.Connection,
    now_ms: int,
    days: int,
    author: bytes | None = None,
    limit: int = 1000,
) -> dict[str, Any]:
    """Records first put in the last ``days`` days, newest first, and a count per library."""
    since = now_ms - days * DAY_MS
    where = f"a.added_at >= ? AND a.author NOT IN ({EXCLUDED_SQL})"
    args: list[Any] = [since]
    if author is not None:
        where += " AND a.author = ?"
        args.append(author)
    names = library_names(conn)
    counts = conn.execute(
        f"SELECT a.author, count(*) FROM record_added a WHERE {where} GROUP BY a.author", args
    ).fetchall()
    rows = conn.execute(
        "SELECT a.author, a.rid, a.added_at, r.data FROM record_added a "
        "JOIN records r ON r.author = a.author AND r.rid = a.rid "
        f"WHERE {where} ORDER BY a.added_at DESC, a.author, a.rid LIMIT ?",
        [*args, max(0, min(limit, MAX_LIST))],
    ).fetchall()
    unknown = conn.execute(
        "SELECT count(*) FROM record_added WHERE added_at IS NULL"
        + (" AND author = ?" if author is not None else ""),
        [author] if author is not None else [],
    ).fetchone()[0]
    libraries = sorted(
        ({**library(conn, bytes(a), names).as_dict(), "added": n} for a, n in counts),
        key=lambda row: (-row["added"], row["library"]),
    )
    records = [
        {**_title_row(library(conn, bytes(a), names), rid, data), "added_at": iso_date(at)}
        for a, rid, at, data in rows
    ]
    return {
        "days": days,
        "since": iso_date(since),
        "total": sum(n for _, n in counts),
        "libraries": libraries,
        "records": records,
        # Records that came in a snapshot carry no date of their own, so none is counted new.
        "undated": int(unknown),
    }


# --- overlap and unique titles -------------------------------------------------------------


@dataclass
class Overlap:
    titles: Counter[bytes]  # distinct union entries each library holds
    unique: Counter[bytes]  # ... that no other library holds
    pairs: Counter[tuple[bytes, bytes]]  # (a, b) with a < b -> entries both hold
    entries: int  # union entries in the network

    def as_dict(self, conn: sqlite3.Connection) -> dict[str, Any]:
        names = library_names(conn)
        libraries = sorted(self.titles, key=lambda a: (library(conn, a, names).name, a))
        rows = []
        for author in libraries:
            lib = library(conn, author, names)
            shared = {
                library(conn, other, names).node_id: self.pairs[_pair(author, other)]
                for other in libraries
                if other != author
            }
            titles = self.titles[author]
            rows.append(
                {
                    **lib.as_dict(),
                    "titles": titles,
                    "unique": self.unique[author],
                    "unique_share": round(self.unique[author] / titles, 4) if titles else 0.0,
                    "in_common": shared,
                }
            )
        return {"union_entries": self.entries, "libraries": rows}


def _pair(a: bytes, b: bytes) -> tuple[bytes, bytes]:
    return (a, b) if a < b else (b, a)


def overlap(conn: sqlite3.Connection) -> Overlap:
    """For each library its titles and unique titles; for each pair the titles in common."""
    titles: Counter[bytes] = Counter()
    unique: Counter[bytes] = Counter()
    pairs: Counter[tuple[bytes, bytes]] = Counter()
    entries = 0
    rows = conn.execute(
        f"SELECT key, author FROM ({union_rows_sql()}) GROUP BY key, author ORDER BY key, author"
    )
    current: str | None = None
    holders: list[bytes] = []

    def close() -> None:
        for author in holders:
            titles[author] += 1
        if len(holders) == 1:
            unique[holders[0]] += 1
        else:
            pairs.update(combinations(holders, 2))  # holders are sorted: each pair as (a, b)

    for key, author in rows:
        if key != current:
            if holders:
                close()
                entries += 1
            current, holders = key, []
        holders.append(bytes(author))
    if holders:
        close()
        entries += 1
    return Overlap(titles, unique, pairs, entries)


def unique_titles(
    conn: sqlite3.Connection, author: bytes | None = None, limit: int = 100, offset: int = 0
) -> dict[str, Any]:
    """Union entries held by one library only (preservation priority; a second copy elsewhere
    is worth buying), by title; ``author`` keeps one library's."""
    # One pass over the index: a key whose least and greatest holder are the same has one.
    having = "min(author) = max(author)" + (" AND min(author) = ?" if author is not None else "")
    args: list[Any] = [author] if author is not None else []
    singles = (
        f"SELECT key, min(author) AS author, min(id) AS id FROM ({union_rows_sql()}) "
        f"GROUP BY key HAVING {having}"
    )
    rows = conn.execute(
        f"SELECT s.author, r.rid, r.data, count(*) OVER () FROM ({singles}) s "
        "JOIN records r ON r.id = s.id ORDER BY r.title, s.key LIMIT ? OFFSET ?",
        [*args, max(0, min(limit, MAX_LIST)), max(0, offset)],
    ).fetchall()
    if rows:
        total = int(rows[0][3])
    else:  # a page past the end carries no count: ask for it alone
        total = int(conn.execute(f"SELECT count(*) FROM ({singles})", args).fetchone()[0])
    names = library_names(conn)
    return {
        "total": total,
        "offset": offset,
        "titles": [
            _title_row(library(conn, bytes(a), names), rid, data) for a, rid, data, _ in rows
        ],
    }
