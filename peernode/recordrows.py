"""The rows a catalogue entry writes, built from the entry alone.

Each record put is Python work before it is SQL: the records row's columns and JSON lists, the
canonical bytes and their digest, the union key, the match keys for clustering. None of it needs
the database, so a sync builds an entry's rows on a thread of its own while the database thread
writes the previous ones (peernode/sync.py); SQLite lets go of Python's lock while it writes, so
the two overlap. A local import builds them in line (``store._catalog``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any

from protocol import CATALOG, Entry
from protocol.encoding import pack_ordered

from .matchkeys import record_keys
from .records import encode_record, match_key, record_digest

__all__ = ["CatalogRows", "catalog_rows", "record_row_values"]


@dataclass(frozen=True)
class CatalogRows:
    """What one catalogue entry writes, op by op."""

    puts: list[tuple[Any, ...]]  # records rows (``record_row_values``), in op order
    records: list[tuple[str, dict[str, Any]]]  # (rid, wire map) of each put
    keys: list[list[str]]  # the match keys of each put (peernode/clusters.py)
    dels: list[str]  # the rids it deletes


def catalog_rows(entry: Entry, source: str | None) -> CatalogRows:
    puts: list[tuple[Any, ...]] = []
    records: list[tuple[str, dict[str, Any]]] = []
    keys: list[list[str]] = []
    dels: list[str] = []
    for op in entry.body["ops"]:
        if op[0] == "put":
            rid, data = op[1], op[2]
            # The body is in canonical order (protocol Entry): [rid, record] encodes as it is.
            blob = pack_ordered(op[1:])
            puts.append(record_row_values(entry.author, rid, data, entry.seq, source, blob))
            records.append((rid, data))
            keys.append(record_keys(data))
        else:
            dels.append(op[1])
    return CatalogRows(puts, records, keys, dels)


def build_rows(entries: Sequence[Entry]) -> dict[bytes, CatalogRows]:
    """The rows of each catalogue entry among ``entries``, by entry hash."""
    return {e.hash: catalog_rows(e, None) for e in entries if e.kind == CATALOG}


def record_row_values(
    author: bytes,
    rid: str,
    data: dict[str, Any],
    seq: int,
    source: str | None,
    blob: bytes | None = None,
) -> tuple[Any, ...]:
    """The ``records`` row for one put: searchable columns plus the canonical [rid, record].

    Read straight from the wire map (already type-checked by the protocol): this runs once per
    record received, so it builds no objects it does not need. ``blob``: the canonical
    [rid, record] when the caller has it, else it is encoded here.
    """
    title: str = data["title"]
    authors: list[str] = data.get("authors", [])
    isbn: list[str] = data.get("isbn", [])
    year: int | None = data.get("year")
    if blob is None:
        blob = encode_record(rid, data)
    return (
        author,
        rid,
        title,
        _json(authors),
        _json(data.get("subjects", [])),
        data.get("publisher", ""),
        _json(isbn),
        year,
        blob,
        record_digest(blob),
        match_key(title, authors, year, isbn),
        source,
        seq,
        # Searched and faceted on (peernode/search.py), so stored beside the blob.
        _json(data.get("series", [])),
        _json(data.get("issn", [])),
        data.get("language", ""),
        data.get("format", ""),
    )


def _json(values: list[str]) -> str:
    """``json.dumps(values, ensure_ascii=False)`` for a list of text (the protocol checked the
    items): built from the C string encoder directly, as the encoder object costs more per call
    than the strings themselves, three times per record received."""
    return "[" + ", ".join(map(encode_basestring, values)) + "]"
