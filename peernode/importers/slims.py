"""A SLiMS database dump to :class:`BibRecord`: biblio joined with its authors, topics and items.

SLiMS (Senayan Library Management System) keeps a title in ``biblio`` and its authors, topics,
publisher, place and language in ``mst_*`` tables linked by id; copies are rows of ``item``.
The joins need every table, so the whole dump is read before the first record is yielded; only
the tables used here are kept in memory. Text is run through :func:`repair_mojibake`, because
SLiMS databases created as latin1 and later read as UTF-8 are common.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..records import (
    BibRecord,
    Holding,
    dedupe,
    normalize_isbn,
    normalize_issn,
    parse_year,
)
from .base import ImportFileError, Outcome, RecordChecker, rejected
from .sqldump import Row, SqlProblem, SqlValue, TableColumns, iter_dump
from .text import (
    clean,
    normalize_format,
    normalize_language,
    open_text,
    repair_mojibake,
    strip_controls,
)

_TABLES = frozenset(
    (
        "biblio",
        "item",
        "biblio_author",
        "mst_author",
        "biblio_topic",
        "mst_topic",
        "mst_publisher",
        "mst_place",
        "mst_language",
        "mst_location",
        "mst_gmd",
    )
)


def _column_list(names: str) -> tuple[str, ...]:
    return tuple(names.split())


# Column orders for INSERTs that list no columns and come without their CREATE TABLE, by the
# number of values: the layouts of SLiMS's shipped sample data and of the SLiMS 9 schema.
_BIBLIO_SAMPLE = _column_list(
    "biblio_id gmd_id title edition isbn_issn publisher_id publish_year collation series_title "
    "call_number language_id source publish_place_id classification notes image file_att "
    "opac_hide promoted input_date last_update"
)
_BIBLIO_9 = _column_list(
    "biblio_id gmd_id title sor edition isbn_issn publisher_id publish_year collation "
    "series_title call_number language_id source publish_place_id classification notes image "
    "file_att opac_hide promoted labels frequency_id spec_detail_info content_type_id "
    "media_type_id carrier_type_id input_date last_update uid"
)
_ITEM_SAMPLE = _column_list(
    "item_id biblio_id coll_type_id item_code inventory_code received_date supplier_id order_no "
    "location_id order_date item_status_id site source invoice price price_currency "
    "invoice_date input_date last_update"
)
_ITEM_9 = _column_list(
    "item_id biblio_id call_number coll_type_id item_code inventory_code received_date "
    "supplier_id order_no location_id order_date item_status_id site source invoice price "
    "price_currency invoice_date input_date last_update uid"
)
_LAYOUTS: dict[str, list[tuple[str, ...]]] = {
    "biblio": [_BIBLIO_SAMPLE, _BIBLIO_9],
    "item": [_ITEM_SAMPLE, _ITEM_9],
    "biblio_author": [("biblio_id", "author_id", "level")],
    "biblio_topic": [("biblio_id", "topic_id", "level")],
    "mst_author": [
        ("author_id", "author_name", "authority_type", "input_date", "last_update"),
        (
            "author_id",
            "author_name",
            "author_year",
            "authority_type",
            "auth_list",
            "input_date",
            "last_update",
        ),
    ],
    "mst_topic": [
        ("topic_id", "topic", "input_date", "last_update"),
        (
            "topic_id",
            "topic",
            "topic_type",
            "auth_list",
            "classification",
            "input_date",
            "last_update",
        ),
    ],
    "mst_publisher": [("publisher_id", "publisher_name", "input_date", "last_update")],
    "mst_place": [("place_id", "place_name", "input_date", "last_update")],
    "mst_language": [("language_id", "language_name", "input_date", "last_update")],
    "mst_location": [("location_id", "location_name", "input_date", "last_update")],
    "mst_gmd": [("gmd_id", "gmd_code", "gmd_name", "icon_image", "input_date", "last_update")],
}
# Only these columns are kept until the joins are done: notes and the like can be most of a dump.
_BIBLIO_USED = frozenset(
    _column_list(
        "biblio_id gmd_id title sor edition isbn_issn publisher_id publish_year collation "
        "series_title call_number language_id publish_place_id classification opac_hide"
    )
)
_ITEM_USED = frozenset(("item_id", "call_number", "item_code", "location_id"))
# id and name columns of the lookup tables.
_LOOKUPS = {
    "mst_author": ("author_id", "author_name"),
    "mst_topic": ("topic_id", "topic"),
    "mst_publisher": ("publisher_id", "publisher_name"),
    "mst_place": ("place_id", "place_name"),
    "mst_language": ("language_id", "language_name"),
    "mst_location": ("location_id", "location_name"),
    "mst_gmd": ("gmd_id", "gmd_name"),
}
# The general material designations every SLiMS installation starts with; dumps of only the
# catalogue (like SLiMS's own sample data) refer to them without including mst_gmd.
_STOCK_GMD = dict(
    enumerate(
        (
            "Text",
            "Art Original",
            "Chart",
            "Computer Software",
            "Diorama",
            "Filmstrip",
            "Flash Card",
            "Game",
            "Globe",
            "Kit",
            "Map",
            "Microform",
            "Manuscript",
            "Model",
            "Motion Picture",
            "Microscope Slide",
            "Music",
            "Picture",
            "Realia",
            "Slide",
            "Sound Recording",
            "Technical Drawing",
            "Transparency",
            "Video Recording",
            "Equipment",
            "Computer File",
            "Cartographic Material",
            "CD-ROM",
            "Multimedia",
            "Electronic Resource",
            "Digital Versatile Disc",
        ),
        start=1,
    )
)

Values = Mapping[str, SqlValue]


@dataclass
class _Dump:
    biblio: list[tuple[int, Values]] = field(default_factory=list)  # (line, row)
    items: dict[str, list[Values]] = field(default_factory=lambda: defaultdict(list))
    links: dict[str, dict[str, list[tuple[float, int, str]]]] = field(
        default_factory=lambda: {
            "biblio_author": defaultdict(list),
            "biblio_topic": defaultdict(list),
        }
    )
    names: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))


def read_slims(path: Path) -> Iterator[Outcome]:
    dump = _Dump()
    layouts: dict[str, tuple[str, ...]] = {}
    unplaced: set[tuple[str, int]] = set()
    with open_text(path) as stream:
        for event in iter_dump(stream, _TABLES):
            if isinstance(event, SqlProblem):
                yield rejected(
                    f"line {event.line}",
                    f"SQL not understood: {event.reason}",
                    stopped=event.stopped,
                )
            elif isinstance(event, TableColumns):
                layouts[event.table] = event.columns
            else:
                row = _columns(event, layouts)
                if row is None:
                    key = (event.table, len(event.values))
                    if key not in unplaced:  # one message per table and width, not per row
                        unplaced.add(key)
                        yield rejected(
                            f"line {event.line}",
                            f"INSERT INTO {event.table} has no column list and its "
                            f"{len(event.values)} values match no known SLiMS layout; "
                            "dump with complete inserts (mysqldump --complete-insert)",
                        )
                    continue
                _keep(dump, event, row)
    if not dump.biblio:
        raise ImportFileError(
            f"{path}: no rows for the biblio table; is this a SLiMS database dump?"
        )
    yield from _records(dump)


def _columns(row: Row, layouts: Mapping[str, tuple[str, ...]]) -> Values | None:
    columns = row.columns
    if columns is None:
        known = layouts.get(row.table)
        candidates = [known] if known else []
        candidates += _LAYOUTS.get(row.table, [])
        columns = next((c for c in candidates if len(c) == len(row.values)), None)
        if columns is None:
            return None
    if len(columns) != len(row.values):
        return None
    return dict(zip(columns, row.values, strict=True))


def _keep(dump: _Dump, row: Row, values: Values) -> None:
    table = row.table
    if table == "biblio":
        dump.biblio.append((row.line, {k: v for k, v in values.items() if k in _BIBLIO_USED}))
    elif table == "item":
        kept = {k: v for k, v in values.items() if k in _ITEM_USED}
        dump.items[_key(values.get("biblio_id"))].append(kept)
    elif table in dump.links:
        other = "author_id" if table == "biblio_author" else "topic_id"
        level = values.get("level")
        order = float(level) if isinstance(level, int | float) else 1.0
        links = dump.links[table][_key(values.get("biblio_id"))]
        links.append((order, len(links), _key(values.get(other))))
    elif table in _LOOKUPS:
        id_column, name_column = _LOOKUPS[table]
        name = _text(values.get(name_column))
        if name:
            dump.names[table][_key(values.get(id_column))] = name


def _key(value: SqlValue) -> str:
    """Ids compare as text: SLiMS mixes int ids with char ones (language_id, location_id)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value).strip()


def _text(value: SqlValue) -> str:
    if value is None:
        return ""
    return clean(repair_mojibake(strip_controls(str(value))))


_ISBN_SPLIT = re.compile(r"[;,/|]")
_ISSN_ONLY = re.compile(r"^\s*\d{4}-?\d{3}[\dXx]\s*$")


def _records(dump: _Dump) -> Iterator[Outcome]:
    checker = RecordChecker()
    names = dump.names
    for line, row in dump.biblio:
        biblio_id = _key(row.get("biblio_id"))
        if not biblio_id:
            yield rejected(f"line {line}", "biblio row without a biblio_id")
            continue
        position = f"biblio_id {biblio_id}"
        if _key(row.get("opac_hide")) not in ("", "0"):
            yield rejected(
                position, "hidden from the OPAC in SLiMS (opac_hide = 1), so it is not shared"
            )
            continue
        isbns: list[str] = []
        issns: list[str] = []
        for part in _ISBN_SPLIT.split(_key(row.get("isbn_issn"))):
            isbn = normalize_isbn(part)
            if isbn:
                isbns.append(isbn)
            elif _ISSN_ONLY.match(part) and (issn := normalize_issn(part)):
                issns.append(issn)
        call_number = _text(row.get("call_number")) or _text(row.get("classification"))
        language_id = _key(row.get("language_id"))
        language = normalize_language(language_id)
        if language == language_id:  # not a code we know: try the name SLiMS shows for it
            language = normalize_language(names["mst_language"].get(language_id, language_id))
        gmd_id = _key(row.get("gmd_id"))
        gmd = names["mst_gmd"].get(gmd_id) or (
            _STOCK_GMD.get(int(gmd_id), "") if gmd_id.isdigit() else ""
        )
        record = BibRecord(
            rid=biblio_id,
            title=_text(row.get("title")),
            authors=_linked(dump, "biblio_author", "mst_author", biblio_id),
            year=parse_year(_key(row.get("publish_year"))),
            isbn=dedupe(isbns),
            issn=dedupe(issns),
            subjects=_linked(dump, "biblio_topic", "mst_topic", biblio_id),
            series=dedupe([_text(row.get("series_title"))]),
            responsibility=_text(row.get("sor")),
            publisher=names["mst_publisher"].get(_key(row.get("publisher_id")), ""),
            place=names["mst_place"].get(_key(row.get("publish_place_id")), ""),
            edition=_text(row.get("edition")),
            language=language,
            call_number=call_number,
            format=normalize_format(gmd),
            description=_text(row.get("collation")),
            holdings=_holdings(dump, biblio_id, call_number),
        )
        yield checker.check(position, record, title_source="biblio.title")


def _linked(dump: _Dump, link_table: str, name_table: str, biblio_id: str) -> tuple[str, ...]:
    # SLiMS orders a title's authors and topics by level (1 = main entry), then as entered.
    links = sorted(dump.links[link_table].get(biblio_id, []))
    names = dump.names[name_table]
    return dedupe(names.get(other, "") for _, _, other in links)


def _holdings(dump: _Dump, biblio_id: str, call_number: str) -> tuple[Holding, ...]:
    items = sorted(dump.items.get(biblio_id, []), key=lambda v: _sort_key(v.get("item_id")))
    holdings = []
    for item in items:
        location_id = _key(item.get("location_id"))
        holdings.append(
            Holding(
                # An item without its own call number shelves under the title's (SLiMS's rule).
                call_number=_text(item.get("call_number")) or call_number,
                barcode=_text(item.get("item_code")),
                location=dump.names["mst_location"].get(location_id, location_id),
            )
        )
    return tuple(h for h in holdings if h.barcode or h.location)


def _sort_key(value: SqlValue) -> tuple[int, str]:
    text = _key(value)
    return (int(text), "") if text.isdigit() else (1 << 62, text)
