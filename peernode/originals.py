"""The source record of each of our own imported records, kept so that export loses nothing.

peernode's record map holds the fields a union catalogue needs; a MARC record holds many more
(local 9XX fields, linking fields, fixed-field codes). The importer keeps the whole record as
MARC-in-JSON (already decoded to Unicode), and ``catalog export`` writes it back instead of a
record rebuilt from the map. It stays on the importing node: it is not part of the signed record,
so it costs no bytes on any link (docs/clustering.md says why and what that costs).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from .db import transaction

FORMAT = "marc-in-json"


def save(conn: sqlite3.Connection, author: bytes, items: Iterable[tuple[str, str]]) -> None:
    """Keep ``(rid, MARC-in-JSON)`` for ``author``'s records, replacing older copies."""
    rows = [(author, rid, FORMAT, text) for rid, text in items]
    if not rows:
        return
    with transaction(conn) as tx:
        tx.executemany(
            "INSERT OR REPLACE INTO original_records (author, rid, format, data) "
            "VALUES (?, ?, ?, ?)",
            rows,
        )


def load(conn: sqlite3.Connection, author: bytes, rid: str) -> str | None:
    row = conn.execute(
        "SELECT data FROM original_records WHERE author = ? AND rid = ?", (author, rid)
    ).fetchone()
    return str(row[0]) if row else None
