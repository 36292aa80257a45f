"""Records out as MARC 21 (ISO 2709, UTF-8) and MARCXML, for copy cataloguing and OAI-PMH.

:func:`to_marc` maps a :class:`BibRecord` onto the MARC 21 bibliographic fields that our
importer (``importers/marc.py``) reads back, so export → import gives the same record: a
round trip over real files is tested. The mapping, field by field:

=============  ==============================================================================
leader         06/07 from ``format`` (book → am, serial → as, map → em, ...), 09 = a (UTF-8)
(original)     our own imported records: the source record as imported, every field (UTF-8)
001 / 003      record id / the holding library's ISIL (when it has one)
005            when this node last received a change to the record (if known)
008            year (07-10) and language (35-37); everything else "no attempt to code"
020 / 022      ISBN-13s / ISSNs
035 / 884      a copied record's source: "(node id)record id"; how, when, from which entry
040            $a $c the library's ISIL
041 / 546      a language code / a language given in words (not a code)
082 / 090      DDC (``ddc``, or a bare Dewey call number) / any other call number
100 / 700      first author / the others, $e their role
245            $a title (split into $a/$b at the first " : " or " = "), $c responsibility
250, 260, 300  edition; place $a, publisher $b, year $c; extent (``description``)
490            series (untraced)
500            notes; a ``format`` word that has no leader code
650            subjects: "A -- B -- C" as $a A $x B $x C (second indicator 4: source not given)
852            holdings: $a ISIL, $b location, $h call number, $p barcode, $z note
866            a serial holding's statement (Holding.summary)
=============  ==============================================================================

Text that cannot travel is cleaned first: C0 control characters (which include MARC's own
delimiters 0x1D-0x1F) become spaces, and U+FFFE/U+FFFF go, so a hostile record can neither break
the ISO 2709 structure nor make the XML ill-formed (see :func:`xml_text`).
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from lxml import etree
from pymarc import Field, Indicators, Leader, Record, Subfield

from .files import replacing
from .records import BibRecord, decode_record

MARC_NS = "http://www.loc.gov/MARC21/slim"
MARC_SCHEMA = "http://www.loc.gov/standards/marcxml/schema/MARC21slim.xsd"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
EXPORT_FORMATS = ("marc", "marcxml")

# XML 1.0 allows tab, LF, CR and everything from U+0020 except surrogates, U+FFFE and U+FFFF.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_CONTROLS = re.compile("[\x00-\x1f\x7f\ufffe\uffff\ud800-\udfff]")


def xml_text(text: str) -> str:
    """``text`` without the characters XML 1.0 forbids (C0 controls other than tab, LF and CR;
    U+FFFE, U+FFFF; lone surrogates). They are dropped: no valid document can hold them."""
    return _NOT_XML.sub("", text)


def marc_text(text: str) -> str:
    """``text`` fit for a MARC subfield: every control character (MARC's delimiters among them)
    becomes a space, and the non-characters go."""
    return _CONTROLS.sub(" ", text).replace("\ufffe", "").replace("\uffff", "")


# format word -> leader 06 (type of record), 07 (bibliographic level); the importer's reverse.
_LEADER_TYPES = {
    "book": ("a", "m"),
    "serial": ("a", "s"),
    "manuscript": ("t", "m"),
    "music": ("c", "m"),
    "map": ("e", "m"),
    "video": ("g", "m"),
    "audio": ("i", "m"),
    "image": ("k", "m"),
    "electronic": ("m", "m"),
    "kit": ("o", "m"),
    "mixed": ("p", "c"),
    "object": ("r", "m"),
}
_DEWEY = re.compile(r"\d{3}(\.\d+)?")
_LANGUAGE_CODE = re.compile(r"[A-Za-z]{2,3}")
# ISBD marks that the importer's clean_text strips from the end of a subfield.
_TRAILING_MARKS = frozenset("/:;,.=")


@dataclass(frozen=True)
class Holder:
    """The library whose record it is, as far as the export tells."""

    isil: str = ""
    changed_ms: int | None = None  # when this node received the record's latest version
    # The record as the library imported it (MARC-in-JSON, peernode/originals.py), when kept.
    original: str | None = None


def _mark(text: str, mark: str) -> str:
    """``text`` followed by an ISBD ``mark``, unless it already ends in punctuation that the
    importer would strip together with the mark (it would lose the "." of "Jr." with " /")."""
    if not text or text[-1] in _TRAILING_MARKS or text[-1].isspace():
        return text
    return f"{text}{mark}" if mark == "," else f"{text} {mark}"


def _title_subfields(record: BibRecord) -> list[Subfield]:
    title = marc_text(record.title)
    subfields: list[Subfield] = []
    for separator in (" : ", " = "):
        head, found, rest = title.partition(separator)
        if found and head and rest and head[-1] not in _TRAILING_MARKS:
            subfields = [Subfield("a", f"{head} {separator.strip()}"), Subfield("b", rest)]
            break
    if not subfields:
        subfields = [Subfield("a", title)]
    responsibility = marc_text(record.responsibility)
    if responsibility:
        last = subfields[-1]
        subfields[-1] = Subfield(last.code, _mark(last.value, "/"))
        subfields.append(Subfield("c", responsibility))
    return subfields


def _fixed_field(record: BibRecord, holder: Holder) -> str:
    entered = (
        time.strftime("%y%m%d", time.gmtime(holder.changed_ms / 1000))
        if holder.changed_ms is not None
        else "||||||"
    )
    if record.year is not None and 0 <= record.year <= 9999:
        dates = f"s{record.year:04d}    "
    else:
        dates = "nuuuuuuuu"
    language = record.language.lower() if len(record.language) == 3 else ""
    code = language if language.isascii() and language.isalpha() else "|||"
    # 15-17 place unknown, 18-34 not coded (valid for every material type), 38 not modified,
    # 39 cataloguing source "other".
    return f"{entered}{dates}xx {'|' * 17}{code} d"


def _field(tag: str, ind: str, *pairs: tuple[str, str]) -> Field | None:
    subfields = [Subfield(code, marc_text(value)) for code, value in pairs if value]
    if not subfields:
        return None
    return Field(tag, Indicators(ind[0], ind[1]), subfields)


def original_marc(original: str) -> Record:
    """The kept source record, every field as imported, re-encoded as UTF-8 (leader/09 = a)."""
    from .importers.marc import marcjson_record  # the importer's reader checks the shape

    marc = marcjson_record(json.loads(original))
    leader = str(marc.leader)
    marc.leader = Leader(leader[:9] + "a" + leader[10:])
    marc.force_utf8 = True
    return marc


def to_marc(record: BibRecord, holder: Holder = Holder()) -> Record:
    """One record as a pymarc Record in MARC 21 (see the module docstring for the fields); the
    kept source record when there is one, so nothing the library catalogued is lost."""
    if holder.original is not None:
        marc = original_marc(holder.original)
        if marc.get("001") is None:  # the id was made up at import: keep it, so re-import matches
            marc.fields.insert(0, Field("001", data=marc_text(record.rid)))
        return marc
    kind, level = _LEADER_TYPES.get(record.format, ("a", "m"))
    # 05 new, 08 no type of control, 09 UTF-8, 17 encoding level and 18 form unknown.
    leader = f"00000n{kind}{level} a2200000uu 4500"
    marc = Record(leader=leader, force_utf8=True)
    isil = marc_text(holder.isil)
    fields: list[Field | None] = [Field("001", data=marc_text(record.rid))]
    if isil:
        fields.append(Field("003", data=isil))
    if holder.changed_ms is not None:
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(holder.changed_ms / 1000))
        fields.append(Field("005", data=f"{stamp}.0"))
    fields.append(Field("008", data=_fixed_field(record, holder)))
    fields += [_field("020", "  ", ("a", isbn)) for isbn in record.isbn]
    fields += [_field("022", "  ", ("a", issn)) for issn in record.issn]
    fields += _provenance_fields(record)
    fields.append(_field("040", "  ", ("a", isil), ("c", isil)))
    language = record.language
    if language and _LANGUAGE_CODE.fullmatch(language):
        fields.append(_field("041", "  ", ("a", language.lower())))
    if record.ddc:
        fields.append(_field("082", "04", ("a", record.ddc)))
    if _DEWEY.fullmatch(record.call_number):
        if record.call_number != record.ddc:
            fields.append(_field("082", "04", ("a", record.call_number)))
    else:
        fields.append(_field("090", "  ", ("a", record.call_number)))
    for index, name in enumerate(record.authors):
        role = record.roles[index] if index < len(record.roles) else ""
        name = _mark(name, ",") if role else name
        fields.append(_field("100" if index == 0 else "700", "1 ", ("a", name), ("e", role)))
    if record.title:
        title = _title_subfields(record)
        fields.append(Field("245", Indicators("1" if record.authors else "0", "0"), title))
    fields.append(_field("250", "  ", ("a", record.edition)))
    place, publisher = marc_text(record.place), marc_text(record.publisher)
    year = str(record.year) if record.year is not None else ""
    if place and (publisher or year):
        place = _mark(place, ":" if publisher else ",")
    if publisher and year:
        publisher = _mark(publisher, ",")
    fields.append(_field("260", "  ", ("a", place), ("b", publisher), ("c", year)))
    fields.append(_field("300", "  ", ("a", record.description)))
    fields += [_field("490", "0 ", ("a", series)) for series in record.series]
    fields += [_field("500", "  ", ("a", note)) for note in record.notes]
    if record.format and record.format not in _LEADER_TYPES:
        fields.append(_field("500", "  ", ("a", f"Format: {record.format}")))
    if language and not _LANGUAGE_CODE.fullmatch(language):
        fields.append(_field("546", "  ", ("a", f"Language: {language}")))
    for subject in record.subjects:
        head, *subdivisions = subject.split(" -- ")
        pairs = [("a", head), *(("x", part) for part in subdivisions)]
        fields.append(_field("650", " 4", *pairs))
    for holding in record.holdings:
        pairs = [
            ("b", holding.location),
            ("h", holding.call_number),
            ("p", holding.barcode),
            ("z", holding.note),
        ]
        if any(value for _, value in pairs):
            fields.append(_field("852", "  ", ("a", isil), *pairs))
        if holding.summary:  # a serial's holdings statement, textual (read back by the importer)
            fields.append(_field("866", " 0", ("a", holding.summary)))
    marc.fields.extend(field for field in fields if field is not None)
    return marc


def _provenance_fields(record: BibRecord) -> list[Field | None]:
    """A copy-catalogued record names its source: 035 (the source library's record number, as
    "(node id)record id") and 884 (how and when it was taken: $a process, $g date, $k the signed
    entry it came from, $q the library)."""
    source = dict(record.copied_from)
    if not source.get("record"):
        return []
    library = source.get("library", "")
    entry = f"{library}/{source['record']}@{source.get('seq', '')}#{source.get('hash', '')}"
    return [
        _field("035", "  ", ("a", f"({library}){source['record']}")),
        _field(
            "884",
            "  ",
            ("a", "peernode copy cataloguing"),
            ("g", source.get("date", "").replace("-", "")[:8]),
            ("k", entry),
            ("q", library),
        ),
    ]


def marc_bytes(marc: Record) -> bytes:
    """ISO 2709 bytes, UTF-8 (leader 09 = a)."""
    data: bytes = marc.as_marc()
    return data


def marcxml_element(marc: Record) -> etree._Element:
    """A namespaced MARCXML ``<record>``, for a collection file or an OAI-PMH response.

    Built here rather than by pymarc's ``record_to_xml_node``, which fakes the namespace with a
    literal ``xmlns`` attribute and so cannot sit inside another namespaced document.
    """
    root = etree.Element(f"{{{MARC_NS}}}record", nsmap={None: MARC_NS})  # type: ignore[dict-item]
    etree.SubElement(root, f"{{{MARC_NS}}}leader").text = str(marc.leader)
    for field in marc.fields:
        if field.control_field:
            node = etree.SubElement(root, f"{{{MARC_NS}}}controlfield", tag=field.tag)
            node.text = xml_text(str(field.data))
            continue
        indicators = field.indicators or Indicators(" ", " ")
        node = etree.SubElement(
            root,
            f"{{{MARC_NS}}}datafield",
            tag=field.tag,
            ind1=indicators.first,
            ind2=indicators.second,
        )
        for sub in field.subfields:
            child = etree.SubElement(node, f"{{{MARC_NS}}}subfield", code=sub.code)
            child.text = xml_text(sub.value)
    return root


# --- whole catalogues to a file ---------------------------------------------------------------


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    format: str
    records: int
    bytes: int


class ExportError(Exception):
    """Nothing to export, or an unknown library or record; the message says which."""


def iter_records(
    conn: sqlite3.Connection, author: bytes | None = None, rid: str | None = None
) -> Iterator[tuple[BibRecord, Holder]]:
    """Records of the replica with their library's ISIL and datestamp, by library then id."""
    where: list[str] = []
    args: list[bytes | str] = []
    if author is not None:
        where.append("r.author = ?")
        args.append(author)
    if rid is not None:
        where.append("r.rid = ?")
        args.append(rid)
    sql = (
        "SELECT r.data, l.isil, e.received_at, o.data FROM records r "
        "LEFT JOIN libraries l ON l.author = r.author "
        "LEFT JOIN original_records o ON o.author = r.author AND o.rid = r.rid "
        "LEFT JOIN entries e ON e.author = r.author AND e.log = 'catalog' AND e.seq = r.seq"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY r.author, r.rid"
    )
    for data, isil, received, original in conn.execute(sql, args):
        yield decode_record(data), Holder(isil or "", received, original)


def write_marc(stream: BinaryIO, records: Iterable[tuple[BibRecord, Holder]]) -> int:
    count = 0
    for record, holder in records:
        stream.write(marc_bytes(to_marc(record, holder)))
        count += 1
    return count


def write_marcxml(stream: BinaryIO, records: Iterable[tuple[BibRecord, Holder]]) -> int:
    """A MARCXML ``<collection>``, one record at a time (a million records never sit in memory)."""
    count = 0
    with etree.xmlfile(stream, encoding="utf-8") as out:
        out.write_declaration()
        with out.element(
            f"{{{MARC_NS}}}collection",
            {f"{{{XSI_NS}}}schemaLocation": f"{MARC_NS} {MARC_SCHEMA}"},
            nsmap={None: MARC_NS, "xsi": XSI_NS},
        ):
            for record, holder in records:
                out.write("\n", marcxml_element(to_marc(record, holder)))
                count += 1
            out.write("\n")
    return count


def export_catalog(
    conn: sqlite3.Connection,
    path: Path,
    fmt: str = "marc",
    *,
    author: bytes | None = None,
    rid: str | None = None,
) -> ExportSummary:
    """Write records (all, one library's, or one) to ``path``, whole or not at all."""
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {fmt!r}: use {' or '.join(EXPORT_FORMATS)}")
    writer = write_marc if fmt == "marc" else write_marcxml
    with replacing(path) as tmp:
        with tmp.open("wb") as stream:
            count = writer(stream, iter_records(conn, author, rid))
        if count == 0:
            what = f"record {rid!r}" if rid is not None else "records"
            raise ExportError(
                f"{path}: no {what} to export" + (" from that library" if author else "")
            )
        size = tmp.stat().st_size
    return ExportSummary(path, fmt, count, size)
