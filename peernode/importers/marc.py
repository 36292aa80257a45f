"""MARC 21 records (binary ISO 2709, MARCXML, MARC-in-JSON) to :class:`BibRecord`, via pymarc.

Binary files are split on the end-of-record byte (0x1D) rather than on the length in each
leader, as pymarc's own reader does: one record with a wrong length then costs that record, not
every record after it. Each piece is decoded by pymarc's :class:`Record`, trying strict UTF-8
first and MARC-8 second whatever leader/09 claims, because that flag is wrong in many real files.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
import xml.sax
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO
from xml.sax.handler import feature_external_ges, feature_namespaces
from xml.sax.xmlreader import AttributesNSImpl, IncrementalParser

from pymarc import Field, JSONHandler, Record, XmlHandler, marc8_mapping
from pymarc.exceptions import (
    BadSubfieldCodeWarning,
    BaseAddressInvalid,
    BaseAddressNotFound,
    NoFieldsFound,
    RecordDirectoryInvalid,
    RecordLeaderInvalid,
)

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
from .text import clean, open_text, strip_controls

# pymarc logs a warning for every odd indicator; without a handler Python prints them all on
# stderr. A NullHandler keeps the CLI quiet and still lets an application route them.
logging.getLogger("pymarc").addHandler(logging.NullHandler())
# pymarc repairs a non-ASCII subfield code itself and says so with a Python warning per file;
# the record is imported either way, so the warning only alarms the librarian.
warnings.filterwarnings("ignore", category=BadSubfieldCodeWarning)

END_OF_RECORD = 0x1D
_BLOCK = 1 << 16
_MAX_RECORD = 99_999  # the leader's five-digit length
_PADDING = b" \t\r\n\x00\x1a"


# --- binary MARC ----------------------------------------------------------------------------


def read_marc(path: Path) -> Iterator[Outcome]:
    checker = RecordChecker()
    with path.open("rb") as stream:
        for number, chunk in enumerate(split_records(stream), start=1):
            position = f"record {number}"
            try:
                record = decode_binary(chunk)
            except MarcError as exc:
                yield rejected(position, str(exc))
                continue
            rid = _control_number(record) or hashed_rid(chunk)
            yield from _checked(checker, position, record, rid)


def split_records(stream: BinaryIO) -> Iterator[bytes]:
    """Each record's bytes up to and including its 0x1D; padding between records is dropped."""
    buf = b""
    start = 0  # where the next record begins in buf; buf is only cut when a block is added
    while True:
        end = buf.find(END_OF_RECORD, start)
        if end < 0:
            block = stream.read(_BLOCK)
            if block:
                buf = buf[start:] + block
                start = 0
                if len(buf) > 2 * _MAX_RECORD and buf.find(END_OF_RECORD) < 0:
                    # No record is this long: hand the junk over to be rejected, then go on.
                    yield buf
                    buf = b""
                continue
            tail = buf[start:]
            if tail.strip(_PADDING):
                yield tail  # trailing bytes without an end-of-record mark: a truncated record
            return
        chunk = buf[start : end + 1].lstrip(_PADDING)
        start = end + 1
        if len(chunk) > 1:  # a lone 0x1D is an empty record slot, not a record
            yield chunk


class MarcError(Exception):
    """Why one record cannot be read, in words a librarian can act on."""


_DIGITS5 = re.compile(rb"\d{5}")


def decode_binary(chunk: bytes) -> Record:
    """A pymarc Record from one record's bytes, with its text decoded as UTF-8 or MARC-8."""
    if not chunk.endswith(bytes([END_OF_RECORD])):
        raise MarcError(
            f"record is truncated: no end-of-record mark in the {len(chunk)} bytes that follow"
        )
    leader = chunk[:24]
    if len(chunk) < 26:
        raise MarcError(f"leader is not valid MARC (only {len(chunk)} bytes)")
    if not _DIGITS5.fullmatch(leader[:5]):
        raise MarcError(f"leader is not valid MARC (bad length {_show(leader[:5])})")
    declared = int(leader[:5])
    if declared != len(chunk):
        raise MarcError(
            f"leader gives the record length as {declared} bytes but its end-of-record mark "
            f"is at byte {len(chunk)} (pymarc: Unable to locate end of record marker)"
        )
    if not _DIGITS5.fullmatch(leader[12:17]):
        raise MarcError(f"leader is not valid MARC (bad base address {_show(leader[12:17])})")
    try:
        return _decode_text(chunk)
    except MarcError:
        raise
    except BaseAddressNotFound as exc:
        raise MarcError(f"leader is not valid MARC (base address is 0; pymarc: {exc})") from exc
    except BaseAddressInvalid as exc:
        raise MarcError(
            f"leader is not valid MARC (base address {int(leader[12:17])} is past the end "
            f"of the {len(chunk)}-byte record; pymarc: {exc})"
        ) from exc
    except RecordDirectoryInvalid as exc:
        raise MarcError(f"directory is not valid MARC (pymarc: {exc})") from exc
    except NoFieldsFound as exc:
        raise MarcError(f"record has no fields (pymarc: {exc})") from exc
    except UnicodeDecodeError as exc:
        where = "directory" if exc.encoding == "ascii" else "text"
        raise MarcError(f"{where} is not valid MARC (pymarc: {exc})") from exc
    except Exception as exc:  # pymarc raises bare ValueError/IndexError on some damage
        raise MarcError(f"record is not valid MARC ({type(exc).__name__}: {exc})") from exc


def _decode_text(chunk: bytes) -> Record:
    # ESC only appears in MARC-8 (character set switches); without it, try UTF-8 strictly first:
    # MARC-8 text is essentially never valid UTF-8, so success means the bytes are UTF-8.
    if b"\x1b" not in chunk:
        try:
            return Record(chunk, to_unicode=True, force_utf8=True, utf8_handling="strict")
        except UnicodeDecodeError as exc:
            if exc.encoding == "ascii":
                raise  # the directory, not the text: no other encoding will help
        problem = _not_marc8(chunk)
        if problem:
            raise MarcError(
                f"text is neither UTF-8 nor MARC-8 ({problem}); it may be in a code page such "
                "as cp1251 or cp1252: re-export the records as UTF-8 MARC"
            )
    # pymarc decodes MARC-8 only when leader/09 is blank, so blank it for this attempt.
    as_marc8 = chunk[:9] + b" " + chunk[10:]
    return Record(as_marc8, to_unicode=True, hide_utf8_warnings=True)


_ANSEL = marc8_mapping.CODESETS[0x45]
_COMBINING = frozenset(code for code, (_, combining) in _ANSEL.items() if combining)


def _not_marc8(chunk: bytes) -> str | None:
    """Why bytes without escapes cannot be MARC-8 (basic Latin + ANSEL), or None if they can.

    pymarc turns unknown bytes into spaces and carries on, so cp1251 or Latin-1 text would
    come out as plausible-looking garbage; rejecting it tells the librarian to re-export.
    """
    dangling = 0
    for index, byte in enumerate(chunk):
        if byte < 0x80:
            continue
        if byte < 0xA0:
            continue  # pymarc drops these (C1 controls, non-sort marks)
        if byte not in _ANSEL:
            return f"byte 0x{byte:02x} at offset {index} is not a MARC-8 character"
        if byte in _COMBINING and index + 1 < len(chunk):
            after = chunk[index + 1]
            # A MARC-8 diacritic precedes the letter it marks; before a space it marks nothing.
            if after in b" \x1e\x1f.,;:" and (dangling := dangling + 1) >= 3:
                return f"diacritic byte 0x{byte:02x} at offset {index} marks no letter"
    return None


def _show(raw: bytes) -> str:
    return repr(raw.decode("latin-1"))


# --- MARCXML ----------------------------------------------------------------------------------


class _Collector(XmlHandler):
    """pymarc's SAX handler, made to survive a bad record and to hand records over as parsed."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # pymarc's handler is unannotated
        self.done: list[Record | MarcError] = []
        self._error: MarcError | None = None

    def startElementNS(
        self, name: tuple[str | None, str], qname: str | None, attrs: AttributesNSImpl
    ) -> None:
        if name[1] == "record":
            self._error = None
        try:
            super().startElementNS(name, qname, attrs)  # type: ignore[no-untyped-call]
        except Exception as exc:
            self._keep(exc, name[1])

    def endElementNS(self, name: tuple[str | None, str], qname: str | None) -> None:
        try:
            super().endElementNS(name, qname)  # type: ignore[no-untyped-call]
        except Exception as exc:
            self._keep(exc, name[1])
            self._text = []
            if name[1] in ("controlfield", "datafield"):
                self._field = None

    def _keep(self, exc: Exception, element: str) -> None:
        if self._error is None:
            if isinstance(exc, RecordLeaderInvalid):
                text = "".join(self._text)
                why = f"leader is not valid MARC ({len(text)} characters, 24 expected: {text!r})"
            else:
                why = f"<{element}> is not valid MARCXML ({type(exc).__name__}: {exc})"
            self._error = MarcError(why)

    def process_record(self, record: Record) -> None:
        self.done.append(self._error or record)
        self._error = None
        self._record = None


def read_marcxml(path: Path) -> Iterator[Outcome]:
    checker = RecordChecker()
    handler = _Collector()
    parser = xml.sax.make_parser()
    if not isinstance(parser, IncrementalParser):  # the standard expat reader always is
        raise TypeError("the XML parser cannot read a file block by block")
    parser.setContentHandler(handler)
    parser.setFeature(feature_namespaces, True)
    parser.setFeature(feature_external_ges, False)  # never fetch external entities
    number = 0
    with path.open("rb") as stream:
        while True:
            block = stream.read(_BLOCK)
            try:
                if block:
                    parser.feed(block)
                else:
                    parser.close()
            except xml.sax.SAXParseException as exc:
                yield from _drain(handler, checker, number)
                number += len(handler.done)
                yield rejected(
                    f"record {number + 1}",
                    f"the XML is not well-formed (line {exc.getLineNumber()}, column "
                    f"{exc.getColumnNumber()}: {exc.getMessage()}); the rest of the file "
                    "was not read",
                    stopped=True,
                )
                return
            yield from _drain(handler, checker, number)
            number += len(handler.done)
            handler.done.clear()
            if not block:
                break
    if number == 0:
        raise ImportFileError(f"{path}: no MARCXML <record> elements in this XML file")


def _drain(handler: _Collector, checker: RecordChecker, number: int) -> Iterator[Outcome]:
    for offset, item in enumerate(handler.done, start=1):
        position = f"record {number + offset}"
        if isinstance(item, MarcError):
            yield rejected(position, str(item))
        else:
            rid = _control_number(item) or hashed_rid(_canonical(item))
            yield from _checked(checker, position, item, rid)


# --- MARC-in-JSON -----------------------------------------------------------------------------


class _OneRecord(JSONHandler):
    def process_record(self, record: Record) -> None:
        self.records.append(record)


def read_marcjson(path: Path) -> Iterator[Outcome]:
    checker = RecordChecker()
    with open_text(path) as stream:
        for item in iter_json(stream):
            if isinstance(item, JsonProblem):
                yield rejected(item.position, item.reason, stopped=item.stopped)
                continue
            try:
                record = marcjson_record(item.value)
            except MarcError as exc:
                yield rejected(item.position, str(exc))
                continue
            rid = _control_number(record) or hashed_rid(_canonical(record))
            yield from _checked(checker, item.position, record, rid)


def marcjson_record(value: object) -> Record:
    """One MARC-in-JSON object ({"leader": ..., "fields": [...]}) as a pymarc Record."""
    if not isinstance(value, dict):
        raise MarcError(f"expected a MARC-in-JSON object, found {type(value).__name__}")
    leader = value.get("leader")
    if not isinstance(leader, str) or len(leader) != 24:
        raise MarcError(f"leader is not valid MARC ({leader!r}: 24 characters expected)")
    if not isinstance(value.get("fields"), list):
        raise MarcError("'fields' is missing or not a list")
    handler = _OneRecord()  # type: ignore[no-untyped-call]  # pymarc's handler is unannotated
    try:
        handler.element(value)  # type: ignore[no-untyped-call]
    except Exception as exc:  # pymarc indexes the JSON directly: KeyError, TypeError, ...
        raise MarcError(f"fields are not valid MARC-in-JSON ({type(exc).__name__}: {exc})") from exc
    if not handler.records:
        raise MarcError("no record in this JSON object")
    record: Record = handler.records[-1]
    return record


# --- the MARC -> BibRecord mapping ------------------------------------------------------------


def _checked(checker: RecordChecker, position: str, record: Record, rid: str) -> Iterator[Outcome]:
    try:
        bib = to_bibrecord(record, rid)
    except Exception as exc:  # a field shape pymarc accepted but we cannot read
        yield rejected(position, f"cannot map record ({type(exc).__name__}: {exc})")
        return
    hint = ""
    if not bib.title and record.get("200") is not None and record.get("245") is None:
        hint = "it has a 200 field instead, so it is probably UNIMARC, which is not supported"
    yield checker.check(position, bib, title_source="245 $a", hint=hint)


def _control_number(record: Record) -> str:
    field = record.get("001")
    data = field.data if field is not None else None
    return strip_controls(data).strip() if isinstance(data, str) else ""


def _canonical(record: Record) -> bytes:
    """Stable bytes for a record that came without its ISO 2709 form (XML, JSON), for hashing."""
    lines = [str(record.leader)]
    lines.extend(str(field) for field in record.fields)
    return "\n".join(lines).encode("utf-8", "surrogatepass")


class _Tags:
    """A record's fields by tag: the mapping asks for some thirty tags, and pymarc's
    ``get_fields`` scans the whole record for each."""

    def __init__(self, record: Record) -> None:
        self.leader = str(record.leader)
        self._by_tag: dict[str, list[Field]] = {}
        self._order: dict[int, int] = {}
        for index, field in enumerate(record.fields):
            self._by_tag.setdefault(field.tag, []).append(field)
            self._order[id(field)] = index

    def get(self, *tags: str) -> list[Field]:
        """The fields with these tags, in record order."""
        if len(tags) == 1:
            return self._by_tag.get(tags[0], [])
        found = [field for tag in tags for field in self._by_tag.get(tag, [])]
        return sorted(found, key=lambda field: self._order[id(field)])

    def control(self, tag: str) -> str:
        fields = self._by_tag.get(tag)
        data = fields[0].data if fields else None
        return data if isinstance(data, str) else ""


def _text(value: str) -> str:
    return clean(strip_controls(value))


def _subfields(field: Field, codes: str) -> list[tuple[str, str]]:
    """(code, value) pairs of the wanted codes, in field order, without empty values."""
    out = []
    for sub in field.subfields:
        if sub.code in codes:
            value = strip_controls(sub.value).strip() if isinstance(sub.value, str) else ""
            if value:
                out.append((sub.code, value))
    return out


def _first(tags: _Tags, wanted: Iterable[str], code: str) -> str:
    for tag in wanted:
        for field in tags.get(tag):
            for _, value in _subfields(field, code):
                text = _text(value)
                if text:
                    return text
    return ""


def _title(tags: _Tags) -> str:
    fields = tags.get("245")
    if not fields:
        return ""
    field = fields[0]
    parts: list[str] = []
    previous = ""
    for code, value in _subfields(field, "abnp"):
        text = _text(value)
        if not text:
            continue
        if parts:
            # ISBD ends each element with the punctuation that introduces the next one.
            mark = previous.rstrip()[-1:]
            if mark in ":=;":
                parts.append(f" {mark} ")
            elif code in "np":
                parts.append(". ")
            else:
                parts.append(" : ")
        parts.append(text)
        previous = value
    return "".join(parts)


def _names(tags: _Tags) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(names, roles): each name once, in record order, with its relator term ("" if none)."""
    found: dict[str, str] = {}
    for tag in ("100", "110", "111", "700", "710", "711"):
        for field in tags.get(tag):
            # $a with, for corporate bodies, their subordinate units ($b); $d dates are dropped.
            codes = "ab" if tag in ("110", "710") else "a"
            name = ". ".join(_text(v) for _, v in _subfields(field, codes))
            if name and name not in found:
                found[name] = _role(field)
    roles = tuple(found.values())
    return tuple(found), roles if any(roles) else ()


# MARC relator codes ($4) most seen in library catalogues, as the terms $e would carry.
_RELATORS = {
    "aut": "author",
    "edt": "editor",
    "trl": "translator",
    "ill": "illustrator",
    "com": "compiler",
    "ctb": "contributor",
    "aui": "author of introduction",
    "prf": "performer",
    "cmp": "composer",
    "pht": "photographer",
}


def _role(field: Field) -> str:
    terms = [_text(v).strip(" ,.") for _, v in _subfields(field, "e")]
    if not terms:
        codes = [v.strip(" .") for _, v in _subfields(field, "4")]
        terms = [_RELATORS.get(code.lower(), code) for code in codes]
    return ", ".join(t for t in terms if t)


def _ddc(tags: _Tags) -> str:
    for field in tags.get("082"):
        for _, value in _subfields(field, "a"):
            # DDC segmentation marks ("005.13/3") are cataloguing aids, not part of the number.
            return _text(value).replace("/", "").replace("'", "")
    return ""


# 5XX notes a reader wants to see; 59X are local and left to the original record.
_NOTE_TAGS = ("500", "501", "502", "504", "505", "508", "511", "518", "520", "521", "530", "546")


def _notes(tags: _Tags) -> tuple[str, ...]:
    notes = []
    for field in tags.get(*_NOTE_TAGS):
        text = " ".join(_text(v) for _, v in _subfields(field, "a"))
        if text:
            notes.append(text)
    return dedupe(notes)


def _subjects(tags: _Tags) -> list[str]:
    subjects = []
    for field in tags.get("600", "610", "650", "651"):
        heading = [_text(v) for _, v in _subfields(field, "a")]
        if not heading:
            continue
        for _, value in _subfields(field, "vxyz"):
            heading.append(_text(value))
        subjects.append(" -- ".join(part for part in heading if part))
    return subjects


def _year(tags: _Tags) -> int | None:
    # Publication (264 2nd indicator 1) first, then 260, then any other 264 (e.g. copyright).
    ordered = [f for f in tags.get("264") if f.indicator2 == "1"]
    ordered += tags.get("260")
    ordered += [f for f in tags.get("264") if f.indicator2 != "1"]
    for field in ordered:
        for _, value in _subfields(field, "c"):
            year = parse_year(value)
            if year is not None:
                return year
    fixed = tags.control("008")
    return parse_year(fixed[7:11]) if fixed[7:11].isdigit() else None


def _publication(tags: _Tags, code: str) -> str:
    fields = [f for f in tags.get("264") if f.indicator2 == "1"]
    fields += tags.get("260")
    for field in fields:
        for _, value in _subfields(field, code):
            text = _text(value)
            if text:
                return text
    return ""


def _language(tags: _Tags) -> str:
    code = tags.control("008")[35:38].strip().lower()
    if len(code) == 3 and code.isalpha():
        return code
    first = _first(tags, ["041"], "a").lower()
    return first[:3] if first[:3].isalpha() else ""


def _call_number(tags: _Tags) -> str:
    for tag in ("050", "090"):
        for field in tags.get(tag):
            parts = [_text(v) for _, v in _subfields(field, "ab")]
            if parts:
                return " ".join(parts)
    for field in tags.get("082"):
        for _, value in _subfields(field, "a"):
            # DDC segmentation marks ("005.13/3") are cataloguing aids, not part of the number.
            return _text(value).replace("/", "")
    return ""


# leader/06 (type of record) -> format word; leader/07 refines language material.
_TYPES = {
    "a": "book",
    "t": "manuscript",
    "c": "music",
    "d": "music",
    "e": "map",
    "f": "map",
    "g": "video",
    "i": "audio",
    "j": "music",
    "k": "image",
    "m": "electronic",
    "o": "kit",
    "p": "mixed",
    "r": "object",
}


def _format(tags: _Tags) -> str:
    leader = tags.leader
    kind = _TYPES.get(leader[6:7], "")
    if kind == "book" and leader[7:8] in ("b", "i", "s"):
        return "serial"
    return kind


def _holdings(tags: _Tags) -> tuple[Holding, ...]:
    holdings = []
    for field in tags.get("852"):
        holdings.append(
            Holding(
                call_number=" ".join(_text(v) for _, v in _subfields(field, "hi")),
                barcode=_first_value(field, "p"),
                location=_first_value(field, "b"),
                note=_first_value(field, "z"),
            )
        )
    for field in tags.get("952"):  # Koha's item field
        holdings.append(
            Holding(
                call_number=_first_value(field, "o"),
                barcode=_first_value(field, "p"),
                location=_first_value(field, "a") or _first_value(field, "b"),
                note=_first_value(field, "z"),
            )
        )
    return _with_statements(tags, [h for h in holdings if h != Holding()])


def _with_statements(tags: _Tags, holdings: list[Holding]) -> tuple[Holding, ...]:
    """Serial holdings statements as ``Holding.summary``: each 866 (textual, $a) or 863
    (coded: $a volumes, $i years); 362 (the publication's own dates) only when there is neither.
    A lone statement with a lone 852 belongs to it; otherwise each is a holding of its own."""
    found = [
        (" ".join(_text(v) for _, v in _subfields(f, "a")), _first_value(f, "z"))
        for f in tags.get("866")
    ]
    for field in tags.get("863"):
        volumes, years = _first_value(field, "a"), _first_value(field, "i")
        text = " ".join(
            p for p in (f"v.{volumes}" if volumes else "", f"({years})" if years else "") if p
        )
        found.append((text, _first_value(field, "z")))
    found = [(text, note) for text, note in found if text]
    if not found:
        found = [
            (text, "publication dates (362), not a statement of the library's holdings")
            for text in (" ".join(_text(v) for _, v in _subfields(f, "a")) for f in tags.get("362"))
            if text
        ]
    if len(found) == 1 and len(holdings) == 1 and not holdings[0].summary:
        text, note = found[0]
        holdings[0] = replace(holdings[0], summary=text, note=holdings[0].note or note)
        return tuple(holdings)
    return (*holdings, *(Holding(summary=text, note=note) for text, note in found))


def _first_value(field: Field, code: str) -> str:
    for _, value in _subfields(field, code):
        return _text(value)
    return ""


def original_json(record: Record) -> str:
    """The whole source record as MARC-in-JSON (text already decoded to Unicode), kept so that
    export gives back every field, those peernode does not model included."""
    data = json.loads(record.as_json())
    for field in data["fields"]:
        for tag, value in field.items():
            if isinstance(value, str):
                field[tag] = _transportable(value)
            else:
                for sub in value["subfields"]:
                    for code, text in sub.items():
                        sub[code] = _transportable(text)
    return json.dumps(data, ensure_ascii=False)


# Control characters (a stray MARC-8 escape, a tab) and non-characters cannot be written back
# into a valid MARC or XML record: kept as the export will write them, the copy stays exact.
_UNTRANSPORTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f\ufffe\uffff\ud800-\udfff]")


def _transportable(text: str) -> str:
    return _UNTRANSPORTABLE.sub("", text).replace("\t", " ").replace("\n", " ")


def to_bibrecord(record: Record, rid: str) -> BibRecord:
    tags = _Tags(record)
    isbns = (normalize_isbn(v) for f in tags.get("020") for _, v in _subfields(f, "a"))
    issns = (normalize_issn(v) for f in tags.get("022") for _, v in _subfields(f, "a"))
    series = [_text(v) for f in tags.get("490", "830") for _, v in _subfields(f, "a")]
    holdings = _holdings(tags)
    call_number = _call_number(tags) or next((h.call_number for h in holdings if h.call_number), "")
    names, roles = _names(tags)
    return BibRecord(
        rid=rid,
        title=_title(tags),
        authors=names,
        roles=roles,
        subtitle=_first(tags, ["245"], "b"),
        ddc=_ddc(tags),
        notes=_notes(tags),
        original=original_json(record),
        year=_year(tags),
        isbn=dedupe(i for i in isbns if i),
        issn=dedupe(i for i in issns if i),
        subjects=dedupe(_subjects(tags)),
        series=dedupe(series),
        responsibility=_first(tags, ["245"], "c"),
        publisher=_publication(tags, "b"),
        place=_publication(tags, "a"),
        edition=_first(tags, ["250"], "a"),
        language=_language(tags),
        call_number=call_number,
        format=_format(tags),
        description=_first(tags, ["300"], "a"),
        holdings=holdings,
    )
