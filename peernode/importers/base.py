"""What every importer yields, and the checks every imported record goes through.

An importer turns one source record into either :class:`Imported` or :class:`Rejected`; the
position is in the librarian's words ("record 5", "line 12", "biblio_id 7") so a rejection can be
found in the file. :class:`RecordChecker` applies the rules that do not depend on the format: a
title is required, ids are unique within a file, and values fit the protocol's limits.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

from protocol.limits import DEFAULT_LIMITS

from ..records import BibRecord

# protocol.kinds refuses a record with more holdings than this; keep the first ones.
MAX_HOLDINGS = 1000


@dataclass(frozen=True)
class Imported:
    position: str
    record: BibRecord


@dataclass(frozen=True)
class Rejected:
    position: str
    reason: str
    # True when reading stopped here: records after this point were never read, so they must
    # not be taken as deleted from the file.
    stopped: bool = False


Outcome = Imported | Rejected


class ImportFileError(Exception):
    """The file cannot be read at all (missing, unreadable, unknown format, not the format named).

    ``str(e)`` names the file and why.
    """


def hashed_rid(raw: bytes) -> str:
    """The id of a record that carries none: stable for the same bytes, so re-imports match."""
    return "h:" + hashlib.sha1(raw).hexdigest()


def rejected(position: str, why: str, *, stopped: bool = False) -> Rejected:
    """A rejection whose reason starts with the position, so it reads well on its own."""
    return Rejected(position, f"{position}: {why}", stopped)


class RecordChecker:
    """The format-independent rules, with the memory of ids seen so far in one file."""

    def __init__(self) -> None:
        self._first_seen: dict[str, str] = {}

    def check(
        self, position: str, record: BibRecord, *, title_source: str = "title", hint: str = ""
    ) -> Outcome:
        if not record.title:
            why = f"no title ({title_source} is empty or missing)"
            return rejected(position, f"{why}; {hint}" if hint else why)
        if not record.rid:
            return rejected(position, "no id")
        if len(record.rid.encode()) > DEFAULT_LIMITS.max_record_id_bytes:
            return rejected(
                position,
                f"id is longer than {DEFAULT_LIMITS.max_record_id_bytes} bytes "
                f"({record.rid[:40]!r}...)",
            )
        first = self._first_seen.get(record.rid)
        if first is not None:
            return rejected(position, f"duplicate id {record.rid!r}, first seen at {first}")
        self._first_seen[record.rid] = position
        return Imported(position, _fit_limits(record))


def _fit_limits(record: BibRecord) -> BibRecord:
    """Cut what the protocol would refuse; real catalogues almost never get near these bounds."""
    changes: dict[str, object] = {}
    limit = DEFAULT_LIMITS.max_string_bytes
    for name in (
        "title",
        "responsibility",
        "publisher",
        "place",
        "edition",
        "description",
        "subtitle",
        "ddc",
    ):
        value: str = getattr(record, name)
        if len(value) * 4 > limit and len(value.encode()) > limit:
            changes[name] = _cut(value, limit)
    if any(len(note) * 4 > limit and len(note.encode()) > limit for note in record.notes):
        changes["notes"] = tuple(_cut(note, limit) for note in record.notes)
    if len(record.holdings) > MAX_HOLDINGS:
        changes["holdings"] = record.holdings[:MAX_HOLDINGS]
    return dataclasses.replace(record, **changes) if changes else record  # type: ignore[arg-type]


def _cut(text: str, limit: int) -> str:
    return text.encode()[:limit].decode("utf-8", "ignore")
