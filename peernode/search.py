"""Search the local replica: FTS5 over every library's records, grouped into union entries.

Records of the same edition held by several libraries share a match key; a hit is one match key
with every library that holds it. The query is words (all must match, the last may be a prefix)
or an ISBN in any form. Query text never reaches FTS5 syntax unquoted: each word is a string.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import asdict, dataclass, field
from typing import Any

from protocol import node_id

from .records import decode_record, normalize_isbn

_WORD = re.compile(r"\w+", re.UNICODE)
CANDIDATES_PER_HIT = 5  # ranked rows read per hit wanted, so grouping still fills the page
# Libraries the network removed or revoked, or this node blocked: their entries stay stored (a
# signed history), but their records are no longer offered to readers (docs/security.md).
_EXCLUDED = (
    "SELECT key FROM members WHERE status IN ('removed', 'revoked') UNION SELECT key FROM blocks"
)


@dataclass
class Holding:
    library: str
    node_id: str
    record_id: str
    call_number: str = ""
    copies: int = 0


@dataclass
class Hit:
    title: str
    authors: list[str]
    year: int | None
    isbn: list[str]
    subjects: list[str]
    publisher: str
    holdings: list[Holding] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def fts_query(text: str) -> str | None:
    """The FTS5 MATCH expression for what a librarian typed, or None when nothing is searchable."""
    isbn = normalize_isbn(text.strip())
    if isbn is not None:
        return f'isbn : "{isbn}"'
    words = _WORD.findall(text)
    if not words:
        return None
    quoted = [f'"{w}"' for w in words[:32]]
    quoted[-1] += "*"
    return " AND ".join(quoted)


def search(conn: sqlite3.Connection, text: str, limit: int = 20) -> list[Hit]:
    query = fts_query(text)
    if query is None or limit <= 0:
        return []
    rows = conn.execute(
        "SELECT r.match_key, r.data FROM records_fts "
        "JOIN records r ON r.id = records_fts.rowid "
        f"WHERE records_fts MATCH ? AND r.author NOT IN ({_EXCLUDED}) ORDER BY rank LIMIT ?",
        (query, limit * CANDIDATES_PER_HIT),
    ).fetchall()
    hits: dict[str, Hit] = {}
    for key, data in rows:
        if key in hits:
            continue
        record = decode_record(data)
        hits[key] = Hit(
            title=record.title,
            authors=list(record.authors),
            year=record.year,
            isbn=list(record.isbn),
            subjects=list(record.subjects),
            publisher=record.publisher,
        )
        if len(hits) >= limit:
            break
    _add_holdings(conn, hits)
    return list(hits.values())


def _add_holdings(conn: sqlite3.Connection, hits: dict[str, Hit]) -> None:
    if not hits:
        return
    marks = ",".join("?" * len(hits))
    rows = conn.execute(
        "SELECT r.match_key, r.author, r.rid, r.data, COALESCE(l.name, '') FROM records r "
        f"LEFT JOIN libraries l ON l.author = r.author WHERE r.match_key IN ({marks}) "
        f"AND r.author NOT IN ({_EXCLUDED}) "
        "ORDER BY l.name, r.rid",
        list(hits),
    )
    for key, author, rid, data, name in rows:
        record = decode_record(data)
        call_number = record.call_number or next(
            (h.call_number for h in record.holdings if h.call_number), ""
        )
        hits[key].holdings.append(
            Holding(
                library=name or node_id(author)[:9],
                node_id=node_id(author),
                record_id=rid,
                call_number=call_number,
                copies=len(record.holdings),
            )
        )


def count_records(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM records").fetchone()[0])


def hits_json(hits: list[Hit]) -> str:
    return json.dumps([h.as_dict() for h in hits], ensure_ascii=False, indent=2)
