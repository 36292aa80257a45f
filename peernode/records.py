"""The bibliographic record as peernode carries it: one library's description of one title.

Importers turn MARC, CSV, JSON and SLiMS rows into :class:`BibRecord`; the catalogue log carries
``BibRecord.to_wire()`` inside signed batches; the replica stores what ``from_wire`` reads back.
The wire form is a plain map with only non-empty fields, so adding a field later stays compatible.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import msgpack

from protocol.encoding import pack
from protocol.kinds import PROVENANCE_FIELDS, RECORD_LIST_FIELDS, RECORD_TEXT_FIELDS

# The wire's field table lives with the protocol, which validates it.
LIST_FIELDS = RECORD_LIST_FIELDS
TEXT_FIELDS = RECORD_TEXT_FIELDS


@dataclass(frozen=True)
class Holding:
    """One copy (or a run of a serial) that the publishing library holds."""

    call_number: str = ""
    barcode: str = ""
    location: str = ""
    note: str = ""
    summary: str = ""  # a serial's holdings statement, e.g. "v.1(1990)-v.12(2001)" (MARC 866)

    def to_wire(self) -> dict[str, str]:
        return {k: v for k, v in sorted(vars(self).items()) if v}

    @classmethod
    def from_wire(cls, data: Mapping[str, object]) -> Holding:
        return cls(
            **{
                k: str(data[k])
                for k in ("call_number", "barcode", "location", "note", "summary")
                if k in data
            }
        )


@dataclass(frozen=True)
class BibRecord:
    """A catalogue record; ``rid`` is the library's own stable id for it (MARC 001, an id)."""

    rid: str
    title: str
    authors: tuple[str, ...] = ()
    year: int | None = None
    isbn: tuple[str, ...] = ()
    issn: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()
    series: tuple[str, ...] = ()
    responsibility: str = ""
    publisher: str = ""
    place: str = ""
    edition: str = ""
    language: str = ""
    call_number: str = ""
    format: str = ""
    description: str = ""
    holdings: tuple[Holding, ...] = field(default=())
    subtitle: str = ""  # 245 $b; ``title`` keeps title and subtitle together, as it always did
    roles: tuple[str, ...] = ()  # parallel to ``authors``: "editor", "translator", "" for none
    ddc: str = ""  # Dewey Decimal Classification number (082 $a), segmentation marks dropped
    notes: tuple[str, ...] = ()  # general and content notes (5XX $a)
    copied_from: tuple[tuple[str, str], ...] = ()  # provenance of a copy-catalogued record
    # The source record exactly as read (MARC-in-JSON text), kept by the importing library only:
    # it never enters the wire map, the digest or equality.
    original: str | None = field(default=None, compare=False, repr=False)

    def to_wire(self) -> dict[str, object]:
        """The map carried in a ``put`` operation: sorted keys, empty fields left out."""
        out: dict[str, object] = {"title": self.title}
        for name in LIST_FIELDS:
            values = getattr(self, name)
            if values:
                out[name] = list(values)
        for name in TEXT_FIELDS:
            value = getattr(self, name)
            if value:
                out[name] = value
        if self.year is not None:
            out["year"] = self.year
        if self.holdings:
            out["holdings"] = [h.to_wire() for h in self.holdings]
        if self.copied_from:
            out["copied_from"] = dict(self.copied_from)
        return dict(sorted(out.items()))

    @classmethod
    def from_wire(cls, rid: str, data: Mapping[str, object]) -> BibRecord:
        """Read a wire map that :mod:`protocol.catalog` has already type-checked."""
        kwargs: dict[str, object] = {}
        for name in LIST_FIELDS:
            value = data.get(name)
            if isinstance(value, list):
                kwargs[name] = tuple(str(v) for v in value)
        for name in TEXT_FIELDS:
            value = data.get(name)
            if isinstance(value, str):
                kwargs[name] = value
        year = data.get("year")
        if isinstance(year, int):
            kwargs["year"] = year
        holdings = data.get("holdings")
        if isinstance(holdings, list):
            kwargs["holdings"] = tuple(
                Holding.from_wire(h) for h in holdings if isinstance(h, dict)
            )
        copied = data.get("copied_from")
        if isinstance(copied, dict):
            kwargs["copied_from"] = tuple(
                (k, str(copied[k])) for k in PROVENANCE_FIELDS if k in copied
            )
        kwargs.setdefault("title", "")
        return cls(rid=rid, **kwargs)  # type: ignore[arg-type]


def encode_record(rid: str, wire: Mapping[str, object]) -> bytes:
    """The canonical ``[rid, record]``: the replica's stored form, digest input and size.

    One encoding serves all three, because encoding is the dearest step of an import.
    """
    return pack([rid, wire])


def decode_record(blob: bytes) -> BibRecord:
    rid, wire = msgpack.unpackb(blob, raw=False)
    return BibRecord.from_wire(rid, wire)


def record_digest(blob: bytes) -> bytes:
    """The digest the replica keeps per record, so a re-import sees what really changed."""
    return hashlib.sha256(blob).digest()


# --- normalisation helpers shared by importers and search -------------------------------------

_ISBN_CHARS = re.compile(r"[^0-9Xx]")
_ISBN_HEAD = re.compile(r"^\s*([0-9][0-9\-\s]{8,16}[0-9Xx])\b")


def normalize_isbn(raw: str) -> str | None:
    """Return the ISBN-13 for ``raw`` (ISBN-10 or -13, hyphens, qualifiers like "(pbk.)")."""
    match = _ISBN_HEAD.match(raw)
    if not match:
        return None
    digits = _ISBN_CHARS.sub("", match.group(1)).upper()
    if len(digits) == 10:
        if not _isbn10_ok(digits):
            return None
        core = "978" + digits[:9]
        return core + _isbn13_check(core)
    if len(digits) == 13 and digits.isdigit() and _isbn13_check(digits[:12]) == digits[12]:
        return digits
    return None


def _isbn10_ok(digits: str) -> bool:
    if not digits[:9].isdigit() or not (digits[9].isdigit() or digits[9] == "X"):
        return False
    total = sum((10 - i) * int(d) for i, d in enumerate(digits[:9]))
    total += 10 if digits[9] == "X" else int(digits[9])
    return total % 11 == 0


def _isbn13_check(first12: str) -> str:
    total = sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(first12))
    return str((10 - total % 10) % 10)


_ISSN = re.compile(r"(\d{4})-?(\d{3}[\dXx])")


def normalize_issn(raw: str) -> str | None:
    match = _ISSN.search(raw)
    return f"{match.group(1)}-{match.group(2).upper()}" if match else None


_YEAR = re.compile(r"(1[5-9]\d\d|20\d\d)")


def parse_year(raw: str) -> int | None:
    """The first plausible publication year in a date string such as "c1998." or "[2003?]"."""
    match = _YEAR.search(raw)
    return int(match.group(1)) if match else None


_TRAILING = re.compile(r"[\s/:;,.=]+$")


def clean_text(raw: str) -> str:
    """Strip ISBD trailing punctuation (" /", " :", ",") and fold whitespace; NFC-normalise."""
    text = " ".join(unicodedata.normalize("NFC", raw).split())
    text = _TRAILING.sub("", text)
    # Keep a closing period that ends an abbreviation like "Jr." or an initial "H."
    if raw.rstrip().endswith(".") and re.search(r"(\b[A-Z]|Jr|Sr|etc)$", text):
        text += "."
    return text


def dedupe(values: Iterable[str]) -> tuple[str, ...]:
    """Non-empty values in first-seen order, without repeats."""
    seen: dict[str, None] = {}
    for value in values:
        if value and value not in seen:
            seen[value] = None
    return tuple(seen)


def fold(text: str) -> str:
    """Lower-case, strip diacritics and punctuation: the form used for match keys."""
    folded = text.casefold()
    if not folded.isascii():  # most titles are plain ASCII: no diacritics to strip
        decomposed = unicodedata.normalize("NFKD", folded)
        folded = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(_NON_WORD.sub(" ", folded).split())


_NON_WORD = re.compile(r"[^\w]+")


def match_key(title: str, authors: Sequence[str], year: int | None, isbn: Sequence[str]) -> str:
    """The key that groups the same edition held by several libraries into one search hit.

    ISBN when there is one (ISBN-10 and -13 agree once normalised); else folded title, first
    author's surname and year. The bibliography issue replaces this with a fuller key.
    """
    if isbn:
        return "isbn:" + isbn[0]
    surname = fold(authors[0]).split(" ")[0] if authors else ""
    return f"t:{fold(title)[:120]}|{surname}|{year or ''}"
