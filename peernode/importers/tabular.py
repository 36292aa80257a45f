"""Flat records to :class:`BibRecord`: CSV with a header row, and JSON objects (array or lines).

Column and key names are matched case-insensitively against BibRecord's field names and the
names librarians actually use, in English and Indonesian ("judul", "pengarang", "penerbit",
...), including the column names of SLiMS's own CSV export and the Library of Congress-derived
JSON in ``loc-books``.
"""

from __future__ import annotations

import csv
import functools
import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from ..records import (
    BibRecord,
    Holding,
    dedupe,
    normalize_isbn,
    normalize_issn,
    parse_year,
)
from .base import ImportFileError, Outcome, RecordChecker, hashed_rid, rejected
from .jsonstream import JsonProblem, iter_json
from .text import (
    clean,
    normalize_format,
    normalize_language,
    open_text,
    repair_mojibake,
    split_list,
    strip_controls,
)

_ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("id", "rid", "kode", "biblio_id", "record_id", "control_number", "nomor_kontrol"),
    "title": ("title", "judul", "judul_buku", "book_title", "title_proper"),
    "subtitle": ("subtitle", "anak_judul", "sub_judul", "subjudul"),
    "authors": (
        "author",
        "authors",
        "pengarang",
        "penulis",
        "nama_pengarang",
        "creator",
        "creators",
        "contributor",
        "contributors",
        "authorsother",
        "authors_other",
        "added_authors",
        "pengarang_tambahan",
    ),
    "year": ("year", "tahun", "tahun_terbit", "publish_year", "publication_year", "pubyear"),
    "isbn": ("isbn", "isbn_issn", "isbn13", "isbn10", "isbn_13", "isbn_10"),
    "issn": ("issn",),
    "subjects": (
        "subject",
        "subjects",
        "subjek",
        "topic",
        "topics",
        "topik",
        "keywords",
        "kata_kunci",
        "subjectsgeneral",
        "subjectsgeo",
        "subjectsform",
        "subjectschrono",
    ),
    "series": ("series", "seri", "series_title", "judul_seri"),
    "responsibility": (
        "responsibility",
        "sor",
        "statement_of_responsibility",
        "pernyataan_tanggung_jawab",
    ),
    "publisher": ("publisher", "penerbit", "publisher_name", "nama_penerbit"),
    "place": (
        "place",
        "publish_place",
        "place_name",
        "place_of_publication",
        "tempat_terbit",
        "kota_terbit",
        "kota",
    ),
    "edition": ("edition", "edisi"),
    "language": ("language", "lang", "bahasa", "language_name", "language_id"),
    "call_number": ("call_number", "callnumber", "call_no", "nomor_panggil", "no_panggil"),
    "classification": ("classification", "klasifikasi", "ddc", "no_klas"),
    "format": ("format", "gmd", "gmd_name", "jenis", "jenis_bahan", "material_type", "type"),
    "description": (
        "description",
        "collation",
        "kolasi",
        "deskripsi",
        "deskripsi_fisik",
        "physical_description",
    ),
    "barcode": ("barcode", "barcodes", "item_code", "item_codes", "kode_eksemplar", "eksemplar"),
    "location": ("location", "lokasi", "location_name"),
    "holdings": ("holdings", "items"),
    # A serial's holdings statement ("v.1(1990)-v.12(2001)"): Holding.summary.
    "holdings_statement": (
        "holdings_statement",
        "holdings_summary",
        "summary_holdings",
        "serial_holdings",
        "kepemilikan",
    ),
}
FIELD_OF = {alias: field for field, names in _ALIASES.items() for alias in names}
_HOLDING_OF = {
    **{name: "call_number" for name in _ALIASES["call_number"]},
    **{name: "barcode" for name in _ALIASES["barcode"]},
    **{name: "location" for name in _ALIASES["location"]},
    "note": "note",
    "catatan": "note",
    "summary": "summary",
    **{name: "summary" for name in _ALIASES["holdings_statement"]},
}
_LIST_FIELDS = frozenset(("authors", "isbn", "issn", "subjects", "series", "barcode"))
_NAME_NOISE = re.compile(r"[\s\-./]+")
_ISBN_SPLIT = re.compile(r"[,/]")
_ISSN_ONLY = re.compile(r"^\s*\d{4}-?\d{3}[\dXx]\s*$")


@functools.lru_cache(maxsize=4096)  # JSON repeats the same few keys in every record
def field_name(raw: str) -> str:
    """The canonical field a column or key name stands for, or "" if none."""
    key = _NAME_NOISE.sub("_", raw.strip().strip("\ufeff\"'").casefold()).strip("_")
    return FIELD_OF.get(key, "")


class _Values:
    """The values gathered for one record, by canonical field, before they become a BibRecord."""

    def __init__(self) -> None:
        self.text: dict[str, str] = {}
        self.lists: dict[str, list[str]] = {}
        self.holdings: list[Holding] = []

    def add(self, field: str, value: object) -> None:
        if field == "holdings":
            self.holdings.extend(_holdings(value))
            return
        for raw in _strings(value):
            text = repair_mojibake(strip_controls(raw)).strip()
            if not text:
                continue
            if field in _LIST_FIELDS:
                self.lists.setdefault(field, []).extend(split_list(text))
            else:
                self.text.setdefault(field, text)

    def record(self, rid: str) -> BibRecord:
        text = self.text
        lists = self.lists
        title = clean(text.get("title", ""))
        subtitle = clean(text.get("subtitle", ""))
        if title and subtitle:
            title = f"{title} : {subtitle}"
        isbns: list[str] = []
        issns: list[str] = []
        for cell in lists.get("isbn", []):
            for raw in _ISBN_SPLIT.split(cell):  # "0596009305, 9780596009304"
                isbn = normalize_isbn(raw)
                if isbn:
                    isbns.append(isbn)
                elif _ISSN_ONLY.match(raw) and (issn := normalize_issn(raw)):  # SLiMS's isbn_issn
                    issns.append(issn)
        issns.extend(i for i in (normalize_issn(raw) for raw in lists.get("issn", [])) if i)
        call_number = clean(text.get("call_number", "") or text.get("classification", ""))
        holdings = list(self.holdings)
        location = clean(text.get("location", ""))
        for barcode in dedupe(lists.get("barcode", [])):
            holdings.append(Holding(call_number=call_number, barcode=barcode, location=location))
        if not holdings and location:
            holdings.append(Holding(call_number=call_number, location=location))
        statement = clean(text.get("holdings_statement", ""))
        if statement and len(holdings) == 1 and not holdings[0].summary:
            holdings[0] = replace(holdings[0], summary=statement)
        elif statement:
            holdings.append(Holding(call_number=call_number, location=location, summary=statement))
        return BibRecord(
            rid=rid,
            title=title,
            authors=dedupe(clean(a) for a in lists.get("authors", [])),
            year=parse_year(text.get("year", "")),
            isbn=dedupe(isbns),
            issn=dedupe(issns),
            subjects=dedupe(clean(s) for s in lists.get("subjects", [])),
            series=dedupe(clean(s) for s in lists.get("series", [])),
            responsibility=clean(text.get("responsibility", "")),
            publisher=clean(text.get("publisher", "")),
            place=clean(text.get("place", "")),
            edition=clean(text.get("edition", "")),
            language=normalize_language(text.get("language", "")),
            call_number=call_number,
            format=normalize_format(text.get("format", "")),
            description=clean(text.get("description", "")),
            holdings=tuple(holdings),
        )


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, int):
        return [str(value)]
    if isinstance(value, float):
        return [str(int(value)) if value.is_integer() else str(value)]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return []


def _holdings(value: object) -> list[Holding]:
    items = value if isinstance(value, list) else [value]
    holdings = []
    for item in items:
        if not isinstance(item, dict):
            continue
        fields: dict[str, str] = {}
        for key, raw in item.items():
            name = _HOLDING_OF.get(_NAME_NOISE.sub("_", str(key).casefold()).strip("_"))
            texts = _strings(raw)
            if name and texts and name not in fields:
                fields[name] = clean(repair_mojibake(strip_controls(texts[0])))
        holding = Holding(**fields)
        if holding != Holding():
            holdings.append(holding)
    return holdings


# --- CSV ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CsvHeader:
    names: tuple[str, ...]  # as written, for messages
    fields: tuple[str, ...]  # canonical field per column, "" for ignored columns
    width: int  # columns a row must have (trailing unnamed header columns do not count)
    delimiter: str


def read_csv_header(path: Path) -> CsvHeader:
    """The header row, checked before any row is read: without a title column nothing imports."""
    with open_text(path) as stream:
        first = stream.readline()
        delimiter = _delimiter(first)
        rows = csv.reader(itertools.chain([first], stream), delimiter=delimiter)
        try:
            names = next(rows, None)
        except csv.Error as exc:
            raise ImportFileError(f"{path}: the header row is not valid CSV ({exc})") from exc
    if not names or not any(name.strip() for name in names):
        raise ImportFileError(f"{path}: no header row (the first line is empty)")
    fields = tuple(field_name(name) for name in names)
    if "title" not in fields:
        found = ", ".join(repr(name) for name in names[:12])
        raise ImportFileError(
            f"{path}: the header row has no title column (a column named 'title' or 'judul'); "
            f"found {found}"
        )
    width = len(names)
    while width and not names[width - 1].strip():
        width -= 1
    return CsvHeader(tuple(names), fields, width, delimiter)


def _delimiter(line: str) -> str:
    # Spreadsheets in locales with a decimal comma (Indonesia's among them) save with ";".
    counts = {d: _unquoted(line).count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _unquoted(line: str) -> str:
    return re.sub(r'"[^"]*"', "", line)


def read_csv(path: Path, header: CsvHeader) -> Iterator[Outcome]:
    checker = RecordChecker()
    title_column = header.names[header.fields.index("title")]
    with open_text(path) as stream:
        rows = csv.reader(stream, delimiter=header.delimiter)
        next(rows, None)  # the header, already read
        line = rows.line_num
        while True:
            start = line + 1
            try:
                row = next(rows)
            except StopIteration:
                return
            except csv.Error as exc:
                if rows.line_num == line:  # the reader made no progress: stop, don't spin
                    yield rejected(f"line {start}", f"not valid CSV ({exc}); reading stopped")
                    return
                line = rows.line_num
                yield rejected(f"line {start}", f"not valid CSV ({exc})")
                continue
            line = rows.line_num
            position = f"line {start}"
            while len(row) > header.width and not row[-1].strip():
                row.pop()
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != header.width:
                yield rejected(
                    position, f"{len(row)} fields, but the header has {header.width} columns"
                )
                continue
            values = _Values()
            for field, cell in zip(header.fields, row, strict=False):
                if field:
                    values.add(field, cell)
            rid = values.text.get("id", "") or hashed_rid("\x1f".join(row).encode())
            yield checker.check(
                position, values.record(rid), title_source=f"column {title_column!r}"
            )


# --- JSON records ---------------------------------------------------------------------------


def read_json(path: Path) -> Iterator[Outcome]:
    checker = RecordChecker()
    with open_text(path) as stream:
        for item in iter_json(stream):
            if isinstance(item, JsonProblem):
                yield rejected(item.position, item.reason, stopped=item.stopped)
                continue
            obj = item.value
            if not isinstance(obj, dict):
                yield rejected(item.position, f"expected an object, found {type(obj).__name__}")
                continue
            values = _Values()
            for key, value in obj.items():
                field = field_name(str(key))
                if field:
                    values.add(field, value)
            rid = values.text.get("id", "")
            if not rid:
                canonical = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)
                rid = hashed_rid(canonical.encode("utf-8", "surrogatepass"))
            yield checker.check(item.position, values.record(rid), title_source="field 'title'")
