"""Index the records rows a batch upsert has just inserted: search_fts and the cooperation tables.

The store calls ``upsert_records`` for every batch of puts (a catalogue entry, a snapshot's rows),
and the new rows are indexed with one set-based statement per table instead of per-row INSERT
triggers. The reason is FTS5: it flushes its pending terms to a new segment whenever a docid is
smaller than the last one written, and a search_fts docid leads with the title's length
(peernode/db.py ``_v10``, for ranked reads), so rows indexed in arrival order flushed almost
every row into a segment of its own, then merged them back. Indexed in docid order, a batch is
one flush. Updates and deletes keep their triggers (``search_au``/``search_ad``,
``coop_records_au``/``coop_records_ad``): they change rows already indexed, and an update must
remove what was indexed before.

New rows are the ones with an id above the largest before the upsert: an INTEGER PRIMARY KEY
gives each inserted row the current largest id plus one, so an upsert's inserts, and only they,
lie above it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .db import _SEARCH_COLUMNS, _search_values, insert_many

__all__ = ["UPSERT", "Upserted", "index_cooperation", "index_search", "last_id", "upsert_records"]

UPSERT_HEAD = (
    "INSERT INTO records (author, rid, title, authors, subjects, publisher, isbn, year, data, "
    "digest, match_key, source, seq, series, issn, language, format)"
)
UPSERT_TAIL = (
    "ON CONFLICT (author, rid) DO UPDATE SET title = excluded.title, authors = excluded.authors, "
    "subjects = excluded.subjects, publisher = excluded.publisher, isbn = excluded.isbn, "
    "year = excluded.year, data = excluded.data, digest = excluded.digest, "
    "match_key = excluded.match_key, source = COALESCE(excluded.source, records.source), "
    "seq = excluded.seq, series = excluded.series, issn = excluded.issn, "
    "language = excluded.language, format = excluded.format"
)
UPSERT = f"{UPSERT_HEAD} VALUES ({', '.join('?' * 17)}) {UPSERT_TAIL}"  # one row

# ORDER BY the docid: one FTS5 flush per batch (see above).
_SEARCH = (
    f"INSERT INTO search_fts ({_SEARCH_COLUMNS}) "
    f"SELECT {_search_values('records')} FROM records WHERE id > ? ORDER BY 1"
)
_ISBNS = (
    "INSERT OR IGNORE INTO record_isbns (isbn, author, rid) "
    "SELECT j.value, r.author, r.rid FROM records r, "
    "json_each(CASE WHEN json_valid(r.isbn) THEN r.isbn ELSE '[]' END) j "
    "WHERE r.id > ? AND j.type = 'text'"
)
# Candidates for the union list of serials (peernode/serials.py): the stored bytes hold the
# msgpack strings "issn", "serial" or "summary".
_SERIALS = (
    "INSERT OR IGNORE INTO serial_records (author, rid) "
    "SELECT author, rid FROM records WHERE id > ? AND (instr(data, X'a46973736e') > 0 "
    "OR instr(data, X'a673657269616c') > 0 OR instr(data, X'a773756d6d617279') > 0)"
)


@dataclass(frozen=True)
class Upserted:
    kept: list[int]  # positions in the rows given that were upserted (see upsert_records)
    new_ids: list[int] | None  # their records ids when every one was new, in that order


def upsert_records(conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> Upserted:
    """Within the caller's transaction: upsert ``recordrows.record_row_values`` rows and index the
    ones that are new. Returns the positions in ``rows`` that were upserted: of two rows for one
    (author, rid), only the last is (a second put of a new row would be an update, whose trigger
    would remove from search_fts terms it never held, damaging a contentless index).

    When every row was new (a first sync: all of them), their ids are known without asking:
    each insert took the largest id plus one, in row order."""
    last: dict[tuple[bytes, str], int] = {}
    for position, row in enumerate(rows):
        # A dict keeps a key where it was first put: the first put of a record fixes its id,
        # as in op order; its values are the last put's.
        last[(row[0], row[1])] = position
    kept = list(last.values())
    before = last_id(conn)
    insert_many(
        conn, UPSERT_HEAD, rows if len(kept) == len(rows) else [rows[p] for p in kept], UPSERT_TAIL
    )
    index_search(conn, before)
    index_cooperation(conn, before)
    every_one_new = last_id(conn) == before + len(kept)
    return Upserted(
        kept, list(range(before + 1, before + len(kept) + 1)) if every_one_new else None
    )


def last_id(conn: sqlite3.Connection) -> int:
    """The largest records id now: rows inserted after this call lie above it."""
    (found,) = conn.execute("SELECT COALESCE(max(id), 0) FROM records").fetchone()
    return int(found)


def index_search(conn: sqlite3.Connection, after: int) -> None:
    """Put the records rows with an id above ``after`` into search_fts, in docid order."""
    conn.execute(_SEARCH, (after,))


def index_cooperation(conn: sqlite3.Connection, after: int) -> None:
    """record_isbns and serial_records of the records rows with an id above ``after``."""
    conn.execute(_ISBNS, (after,))
    conn.execute(_SERIALS, (after,))
