"""What the cooperation reports share: how records group into union entries, which libraries
are shown, and how a librarian names a library.

``union_rows_sql`` is the one place that says which records are "the same title" across
libraries: the union entry (cluster) peernode/clusters.py keeps for every record.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from protocol import node_id, parse_node_id

from .members import HIDDEN_SQL

EXCLUDED_SQL = HIDDEN_SQL  # the reports leave these libraries out, as search does


def union_rows_sql() -> str:
    """A SELECT of (key, author, id) for every record offered to readers: ``key`` groups the
    records of one title (one edition) held by several libraries — its cluster; ``id`` is
    ``records.id``."""
    return (
        "SELECT c.cluster AS key, r.author AS author, r.id AS id FROM records r "
        f"JOIN record_clusters c ON c.id = r.id WHERE r.author NOT IN ({EXCLUDED_SQL})"
    )


@dataclass(frozen=True)
class Library:
    author: bytes
    name: str

    @property
    def node_id(self) -> str:
        return node_id(self.author)

    def as_dict(self) -> dict[str, str]:
        return {"library": self.name, "node_id": self.node_id}


class UnknownLibrary(ValueError):
    """A library name or id that matches no library, or more than one."""


def library_names(conn: sqlite3.Connection) -> dict[bytes, str]:
    """Every library this replica knows a profile for, by key."""
    return {bytes(a): str(n) for a, n in conn.execute("SELECT author, name FROM libraries")}


def library(conn: sqlite3.Connection, author: bytes, names: dict[bytes, str] | None) -> Library:
    known = names if names is not None else library_names(conn)
    return Library(author, known.get(author) or node_id(author)[:9])


def find_library(conn: sqlite3.Connection, text: str) -> Library:
    """The library a librarian means by ``text``: its node id (whole, or the first two groups
    or more), its ISIL, or its name (case and spacing forgiven)."""
    wanted = " ".join(text.split())
    if not wanted:
        raise UnknownLibrary("give a library's name, ISIL or node id")
    try:
        key = parse_node_id(wanted)
    except ValueError:
        key = None
    rows = [
        (bytes(a), str(n), str(i or ""))
        for a, n, i in conn.execute("SELECT author, name, isil FROM libraries")
    ]
    if key is not None:
        name = next((n for a, n, _ in rows if a == key), node_id(key)[:9])
        return Library(key, name)
    folded = wanted.casefold()
    compact = wanted.replace("-", "").upper()
    for test in (
        lambda a, n, i: n.casefold() == folded,
        lambda a, n, i: bool(i) and i.casefold() == folded,
        lambda a, n, i: len(compact) >= 8 and node_id(a).replace("-", "").startswith(compact),
        lambda a, n, i: folded in n.casefold(),
    ):
        found = [Library(a, n) for a, n, i in rows if test(a, n, i)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            names = ", ".join(f"{f.name} ({f.node_id[:9]})" for f in found[:5])
            raise UnknownLibrary(f"{text!r} matches several libraries: {names}; be more exact")
    raise UnknownLibrary(
        f"no library called {text!r} here (by name, ISIL or node id); "
        "`peernode member list` shows the libraries this node knows"
    )
