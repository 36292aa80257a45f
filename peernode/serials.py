"""The union list of serials (katalog induk majalah): which library holds which journal, with
each library's holdings statement read into volumes and years and merged across the network.

A serial is a record with an ISSN, or format "serial" (MARC leader/07 = s), or a holdings
statement (``Holding.summary``). Candidates come from ``serial_records`` (kept by triggers, see
peernode/db.py v12) and are checked here after decoding. Records of one serial group by ISSN,
else by the union key (peernode/union.py). A statement that cannot be read is shown as written
and flagged, never dropped.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from .holdings_statements import Statement, merge, parse_statement
from .records import BibRecord, decode_record, fold, normalize_issn
from .union import EXCLUDED_SQL, Library, library, library_names


def is_serial(record: BibRecord) -> bool:
    return bool(record.issn) or record.format == "serial" or any(h.summary for h in record.holdings)


@dataclass
class SerialHolder:
    library: Library
    record_id: str
    title: str
    statements: list[tuple[Statement, str, str]]  # (statement, location, call number)

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.library.as_dict(),
            "record_id": self.record_id,
            "statements": [
                {**st.as_dict(), "location": location, "call_number": call}
                for st, location, call in self.statements
            ],
            "summary": self.summary(),
            "flagged": any(st.flagged for st, _, _ in self.statements),
        }

    def summary(self) -> str:
        if not self.statements:
            return "holds it; no holdings statement"
        return "; ".join(st.summary() for st, _, _ in self.statements)


@dataclass
class SerialEntry:
    id: str
    title: str
    issn: list[str]
    holders: list[SerialHolder] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        coverage = merge(st for h in self.holders for st, _, _ in h.statements)
        return {
            "id": self.id,
            "title": self.title,
            "issn": self.issn,
            "holders": [h.as_dict() for h in self.holders],
            "coverage": coverage.as_dict(),
            "flagged": any(st.flagged for h in self.holders for st, _, _ in h.statements),
        }

    def lines(self) -> list[str]:
        """The entry as a librarian reads it (CLI)."""
        issn = f" (ISSN {', '.join(self.issn)})" if self.issn else ""
        out = [f"{self.title}{issn}  [{self.id}]"]
        for holder in self.holders:
            out.append(f"   held by {holder.library.name}: {holder.summary()}")
            for statement, _, _ in holder.statements:
                if statement.flagged:
                    parts = "; ".join(f'"{u}"' for u in statement.unread)
                    out.append(f'      ! not fully read: "{statement.text}" (unread: {parts})')
        coverage = merge(st for h in self.holders for st, _, _ in h.statements)
        out.append(f"   {coverage.sentence()}")
        return out


def serial_group(record: BibRecord, union_key: str) -> str:
    """Which union-list entry a serial record belongs to: its first ISSN, else the union key."""
    return f"issn:{record.issn[0]}" if record.issn else union_key


def entry_id(group: str) -> str:
    """A URL-safe id for an entry: the ISSN itself, else a digest of the union key."""
    if group.startswith("issn:"):
        return group[5:]
    return "k" + hashlib.sha256(group.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def union_list(conn: sqlite3.Connection, query: str = "") -> list[SerialEntry]:
    """Every serial in the replica (or those whose title or ISSN matches ``query``)."""
    wanted_issn = normalize_issn(query) if query.strip() else None
    words = fold(query).split() if query.strip() and wanted_issn is None else []
    rows = conn.execute(
        "SELECT r.match_key, r.author, r.rid, r.data FROM serial_records s "
        "JOIN records r ON r.author = s.author AND r.rid = s.rid "
        f"WHERE r.author NOT IN ({EXCLUDED_SQL}) ORDER BY r.author, r.rid"
    )
    names = library_names(conn)
    entries: dict[str, SerialEntry] = {}
    for key, author, rid, data in rows:
        record = decode_record(data)
        if not is_serial(record):
            continue  # the bytes held "issn" or "serial" elsewhere, e.g. in a title
        if wanted_issn is not None and wanted_issn not in record.issn:
            continue
        if words:
            title = fold(record.title)
            if not all(word in title for word in words):
                continue
        group = serial_group(record, key)
        entry = entries.get(group)
        if entry is None:
            entry = entries[group] = SerialEntry(entry_id(group), record.title, list(record.issn))
        statements = [
            (parse_statement(h.summary), h.location, h.call_number)
            for h in record.holdings
            if h.summary.strip()
        ]
        holder = SerialHolder(library(conn, bytes(author), names), rid, record.title, statements)
        entry.holders.append(holder)
    for entry in entries.values():
        entry.holders.sort(key=lambda h: (h.library.name.casefold(), h.record_id))
        entry.title = entry.holders[0].title  # the same whatever order the rows came in
    return sorted(entries.values(), key=lambda e: (fold(e.title), e.id))


def serial_entry(conn: sqlite3.Connection, wanted: str) -> SerialEntry | None:
    """One entry by its id (an ISSN, or the ``k…`` id the list shows)."""
    issn = normalize_issn(wanted) if not wanted.startswith("k") else None
    for entry in union_list(conn, issn or ""):
        if entry.id == (issn or wanted):
            return entry
    return None
