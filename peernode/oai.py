"""An OAI-PMH 2.0 provider at ``/oai``, so national aggregators can harvest a node.

It serves the node's whole union catalogue: one OAI set per library (setSpec = the library's
node id), items ``oai:peernode:<node id>:<record id>`` (the record id percent-encoded, every
byte but RFC 3986's unreserved characters), in ``oai_dc`` and ``marcxml`` (exporters.py).
Deleted records stay as tombstones (``deleted_records``, schema v8): ``deletedRecord`` is
``persistent``.

Datestamps are when *this node* received the entry that last changed the record (``entries.
received_at``), not the author's signing time: a peer's change that reaches us days after it
was signed must still be newer than the ``from`` of a harvester's last visit, or incremental
harvesting would miss it for good. Granularity is seconds.

Lists walk the catalogue entries in the order received (index ``entries_received``) and, inside
an entry, its records then its tombstones by id (indexes ``records_seq``, ``deleted_records_
seq``), so one page costs a few index range scans however large the catalogue. Resumption
tokens are stateless: the query and the position of the last item sent, base64url JSON. A
changing catalogue never makes a harvester miss an item that was there unchanged throughout;
an item changed meanwhile moves to its new datestamp. ``completeListSize`` is counted on the
first page and carried in the token.

Text from catalogue records is hostile input: every document is built with lxml, and
characters that XML 1.0 forbids (C0 controls other than tab, LF, CR; U+FFFE/U+FFFF) are
dropped (:func:`exporters.xml_text`).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import web
from lxml import etree

from protocol import node_id, parse_node_id

from .catalog import CATALOG_LOG
from .exporters import MARC_NS, MARC_SCHEMA, XSI_NS, Holder, marcxml_element, to_marc, xml_text
from .members import HIDDEN_SQL as _EXCLUDED
from .node import NODE
from .records import BibRecord, decode_record

OAI_NS = "http://www.openarchives.org/OAI/2.0/"
OAI_SCHEMA = "http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd"
OAI_DC_NS = "http://www.openarchives.org/OAI/2.0/oai_dc/"
OAI_DC_SCHEMA = "http://www.openarchives.org/OAI/2.0/oai_dc.xsd"
DC_NS = "http://purl.org/dc/elements/1.1/"
FORMATS = {"oai_dc": (OAI_DC_SCHEMA, OAI_DC_NS), "marcxml": (MARC_SCHEMA, MARC_NS)}
ID_PREFIX = "oai:peernode:"
PATH = "/oai"
MAX_PAGE = 1000
_FOREVER_MS = 2**62
_ENTRY_BATCH = 256  # catalogue entries read per query while filling a page
_UNRESERVED = "-._~"  # quote() keeps letters and digits too

_VERBS: dict[str, tuple[frozenset[str], frozenset[str]]] = {  # verb: (required, optional)
    "Identify": (frozenset(), frozenset()),
    "ListMetadataFormats": (frozenset(), frozenset({"identifier"})),
    "ListSets": (frozenset(), frozenset({"resumptionToken"})),
    "GetRecord": (frozenset({"identifier", "metadataPrefix"}), frozenset()),
    "ListIdentifiers": (
        frozenset({"metadataPrefix"}),
        frozenset({"from", "until", "set", "resumptionToken"}),
    ),
    "ListRecords": (
        frozenset({"metadataPrefix"}),
        frozenset({"from", "until", "set", "resumptionToken"}),
    ),
}
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_SECOND = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
# leader 06 word (records.py format) -> DCMI Type Vocabulary, after the LoC MARC-to-DC crosswalk.
_DC_TYPES = {
    "map": "Image",
    "video": "MovingImage",
    "image": "StillImage",
    "audio": "Sound",
    "music": "Text",
    "electronic": "Software",
    "kit": "Collection",
    "mixed": "Collection",
    "object": "PhysicalObject",
}


class OaiError(Exception):
    """One OAI-PMH error condition: ``code`` is the spec's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Repository:
    """What a response needs to know about this node."""

    name: str
    base_url: str
    admin_email: str
    page_size: int


# --- identifiers, dates, tokens ---------------------------------------------------------------


def oai_identifier(author: bytes, rid: str) -> str:
    return f"{ID_PREFIX}{node_id(author)}:{quote(rid, safe=_UNRESERVED)}"


def parse_identifier(text: str) -> tuple[bytes, str]:
    """(author, record id) of an identifier this repository gave out; idDoesNotExist else."""
    rest = text.removeprefix(ID_PREFIX)
    nid, sep, escaped = rest.partition(":")
    rid = unquote(escaped, errors="strict") if sep else ""
    if rest == text or not rid or quote(rid, safe=_UNRESERVED) != escaped:
        raise OaiError("idDoesNotExist", f"{text!r} is not an identifier of this repository")
    try:
        return parse_node_id(nid), rid
    except ValueError:
        raise OaiError("idDoesNotExist", f"{text!r} names no library (bad node id)") from None


def datestamp(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))


def _parse_date(text: str, name: str, *, end: bool) -> tuple[int, bool]:
    """(ms, day granularity) of a ``from``/``until`` argument; ``end`` takes the last ms."""
    day = bool(_DAY.fullmatch(text))
    if not day and not _SECOND.fullmatch(text):
        raise OaiError(
            "badArgument", f"{name}={text!r}: use YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ (UTC)"
        )
    try:
        when = datetime.strptime(text, "%Y-%m-%d" if day else "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        raise OaiError("badArgument", f"{name}={text!r} is not a real date") from None
    ms = int(when.replace(tzinfo=UTC).timestamp()) * 1000
    if end:
        ms += 86_400_000 - 1 if day else 999
    return ms, day


@dataclass(frozen=True)
class Position:
    """Where a list stopped: an entry (received_at, author, seq), then kind (0 record,
    1 tombstone) and record id inside it."""

    received_at: int
    author: bytes
    seq: int
    kind: int
    rid: str


@dataclass(frozen=True)
class ListQuery:
    prefix: str
    author: bytes | None  # the set, or None for every library
    from_ms: int = 0
    until_ms: int = _FOREVER_MS
    after: Position | None = None
    total: int = 0  # completeListSize, counted on the first page
    cursor: int = 0  # items sent before this page

    def token(self) -> str:
        assert self.after is not None
        after = self.after
        data = [
            1,
            self.prefix,
            self.author.hex() if self.author else "",
            self.from_ms,
            self.until_ms,
            [after.received_at, after.author.hex(), after.seq, after.kind, after.rid],
            self.total,
            self.cursor,
        ]
        raw = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def from_token(cls, token: str) -> ListQuery:
        bad = OaiError("badResumptionToken", "the resumptionToken is not one this node issued")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            data = json.loads(raw)
            version, prefix, author, from_ms, until_ms, after, total, cursor = data
            received, after_author, seq, kind, rid = after
            ints = (from_ms, until_ms, received, seq, total, cursor)
            if (
                version != 1
                or not isinstance(prefix, str)
                or prefix not in FORMATS
                or not all(type(v) is int and v >= 0 for v in ints)
                or kind not in (0, 1)
                or not isinstance(rid, str)
            ):
                raise ValueError("not a token of ours")
            query = cls(
                prefix=prefix,
                author=bytes.fromhex(author) if author else None,
                from_ms=from_ms,
                until_ms=until_ms,
                after=Position(received, bytes.fromhex(after_author), seq, kind, rid),
                total=total,
                cursor=cursor,
            )
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
            raise bad from None
        return query


# --- reading the replica ----------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    author: bytes
    rid: str
    received_at: int
    data: bytes | None  # canonical [rid, record]; None for a deleted record (or not wanted)
    deleted: bool


def _position(item: Item, seq: int) -> Position:
    return Position(item.received_at, item.author, seq, 1 if item.deleted else 0, item.rid)


def list_page(
    conn: sqlite3.Connection, query: ListQuery, limit: int, *, with_data: bool
) -> tuple[list[Item], Position | None]:
    """Up to ``limit`` items after ``query.after``, and where the next page starts (None: the
    list is complete)."""
    items: list[tuple[Item, int]] = []
    after = query.after
    start: tuple[int, bytes, int] = (
        (after.received_at, after.author, after.seq) if after else (query.from_ms, b"", 0)
    )
    inclusive = after is not None  # the entry we stopped inside may hold more
    author_filter = "AND author = ?" if query.author else ""
    while len(items) <= limit:
        op = ">=" if inclusive else ">"
        args: list[Any] = [CATALOG_LOG, max(start[0], query.from_ms), query.until_ms, *start]
        if query.author:
            args.append(query.author)
        entries = conn.execute(
            "SELECT received_at, author, seq FROM entries WHERE log = ? "
            f"AND received_at BETWEEN ? AND ? AND (received_at, author, seq) {op} (?, ?, ?) "
            f"{author_filter} AND author NOT IN ({_EXCLUDED}) "
            f"ORDER BY received_at, author, seq LIMIT {_ENTRY_BATCH}",
            args,
        ).fetchall()
        for received_at, author, seq in entries:
            resume = after if after and (received_at, author, seq) == start else None
            need = limit + 1 - len(items)
            for item in _entry_items(conn, received_at, author, seq, resume, need, with_data):
                items.append((item, seq))
            if len(items) > limit:
                break
        if len(entries) < _ENTRY_BATCH or len(items) > limit:
            break
        start = (entries[-1][0], entries[-1][1], entries[-1][2])
        inclusive = False
    if len(items) > limit:
        last, seq = items[limit - 1]
        return [item for item, _ in items[:limit]], _position(last, seq)
    return [item for item, _ in items], None


def _entry_items(
    conn: sqlite3.Connection,
    received_at: int,
    author: bytes,
    seq: int,
    resume: Position | None,
    need: int,
    with_data: bool,
) -> list[Item]:
    """Records, then tombstones, of one catalogue entry, by id, after ``resume``."""
    out: list[Item] = []
    column = "data" if with_data else "NULL"
    if resume is None or resume.kind == 0:
        rows = conn.execute(
            f"SELECT rid, {column} FROM records WHERE author = ? AND seq = ? AND rid > ? "
            "ORDER BY rid LIMIT ?",
            (author, seq, resume.rid if resume else "", need),
        )
        out += [Item(author, rid, received_at, data, False) for rid, data in rows]
    if len(out) < need:
        rows = conn.execute(
            "SELECT rid FROM deleted_records WHERE author = ? AND seq = ? AND rid > ? "
            "ORDER BY rid LIMIT ?",
            (author, seq, resume.rid if resume and resume.kind == 1 else "", need - len(out)),
        )
        out += [Item(author, rid, received_at, None, True) for (rid,) in rows]
    return out


def count_items(conn: sqlite3.Connection, query: ListQuery) -> int:
    """completeListSize: how many items the whole list holds now."""
    total = 0
    for table in ("records", "deleted_records"):
        args: list[Any] = [CATALOG_LOG, query.from_ms, query.until_ms]
        where = ""
        if query.author:
            where = "AND e.author = ?"
            args.append(query.author)
        row = conn.execute(
            f"SELECT count(*) FROM entries e JOIN {table} t "
            "ON t.author = e.author AND t.seq = e.seq "
            f"WHERE e.log = ? AND e.received_at BETWEEN ? AND ? {where} "
            f"AND e.author NOT IN ({_EXCLUDED})",
            args,
        ).fetchone()
        total += int(row[0])
    return total


def get_item(conn: sqlite3.Connection, author: bytes, rid: str) -> Item | None:
    excluded = conn.execute(f"SELECT 1 WHERE ? IN ({_EXCLUDED})", (author,)).fetchone()
    if excluded:
        return None
    for table, column in (("records", "t.data"), ("deleted_records", "NULL")):
        row = conn.execute(
            f"SELECT {column}, e.received_at FROM {table} t LEFT JOIN entries e "
            "ON e.author = t.author AND e.log = ? AND e.seq = t.seq "
            "WHERE t.author = ? AND t.rid = ?",
            (CATALOG_LOG, author, rid),
        ).fetchone()
        if row is not None:
            data, received = row
            return Item(author, rid, received or 0, data, table == "deleted_records")
    return None


def earliest_datestamp(conn: sqlite3.Connection) -> int:
    row = conn.execute(
        "SELECT min(received_at) FROM entries WHERE log = ?", (CATALOG_LOG,)
    ).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def library_sets(conn: sqlite3.Connection) -> list[tuple[bytes, str, str]]:
    """(author, name, ISIL) of every library whose catalogue this node holds."""
    rows = conn.execute(
        "SELECT h.author, COALESCE(l.name, ''), COALESCE(l.isil, '') FROM heads h "
        "LEFT JOIN libraries l ON l.author = h.author "
        f"WHERE h.log = ? AND h.author NOT IN ({_EXCLUDED}) ORDER BY h.author",
        (CATALOG_LOG,),
    )
    return [(author, name, isil) for author, name, isil in rows]


def _isils(conn: sqlite3.Connection, authors: Iterable[bytes]) -> dict[bytes, str]:
    wanted = set(authors)
    if not wanted:
        return {}
    marks = ",".join("?" * len(wanted))
    rows = conn.execute(
        f"SELECT author, isil FROM libraries WHERE author IN ({marks})", list(wanted)
    )
    return {author: isil or "" for author, isil in rows}


# --- building responses -----------------------------------------------------------------------


def _el(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    node = etree.SubElement(parent, f"{{{OAI_NS}}}{tag}", attrs)
    if text is not None:
        node.text = xml_text(text)
    return node


def _envelope(repo: Repository, now_ms: int, args: dict[str, str] | None) -> etree._Element:
    root = etree.Element(f"{{{OAI_NS}}}OAI-PMH", nsmap={None: OAI_NS, "xsi": XSI_NS})  # type: ignore[dict-item]
    root.set(f"{{{XSI_NS}}}schemaLocation", f"{OAI_NS} {OAI_SCHEMA}")
    _el(root, "responseDate", datestamp(now_ms))
    request = _el(root, "request", repo.base_url)
    for name, value in sorted((args or {}).items()):
        request.set(name, xml_text(value))
    return root


def _header(parent: etree._Element, item: Item) -> None:
    header = _el(parent, "header")
    if item.deleted:
        header.set("status", "deleted")
    _el(header, "identifier", oai_identifier(item.author, item.rid))
    _el(header, "datestamp", datestamp(item.received_at))
    _el(header, "setSpec", node_id(item.author))


def dublin_core(record: BibRecord) -> etree._Element:
    """Simple Dublin Core, after the Library of Congress MARC-to-DC crosswalk."""
    root = etree.Element(
        f"{{{OAI_DC_NS}}}dc", nsmap={"oai_dc": OAI_DC_NS, "dc": DC_NS, "xsi": XSI_NS}
    )
    root.set(f"{{{XSI_NS}}}schemaLocation", f"{OAI_DC_NS} {OAI_DC_SCHEMA}")

    def dc(name: str, values: Iterable[str]) -> None:
        for value in values:
            if value:
                etree.SubElement(root, f"{{{DC_NS}}}{name}").text = xml_text(value)

    dc("title", [record.title])
    dc("creator", record.authors)
    dc("subject", record.subjects)
    publisher = " : ".join(part for part in (record.place, record.publisher) if part)
    dc("publisher", [publisher])
    dc("date", [str(record.year)] if record.year is not None else [])
    dc("type", [_DC_TYPES.get(record.format, "Text")])
    dc("format", [record.description])
    dc("identifier", [f"URN:ISBN:{isbn}" for isbn in record.isbn])
    dc("identifier", [f"URN:ISSN:{issn}" for issn in record.issn])
    dc("language", [record.language])
    dc("relation", record.series)
    return root


def _record(parent: etree._Element, item: Item, prefix: str, isil: str) -> None:
    node = _el(parent, "record")
    _header(node, item)
    if item.deleted or item.data is None:
        return
    record = decode_record(item.data)
    metadata = _el(node, "metadata")
    if prefix == "oai_dc":
        metadata.append(dublin_core(record))
    else:
        marc = to_marc(record, Holder(isil, item.received_at))
        element = marcxml_element(marc)
        element.set(f"{{{XSI_NS}}}schemaLocation", f"{MARC_NS} {MARC_SCHEMA}")
        metadata.append(element)


def _identify(conn: sqlite3.Connection, repo: Repository, root: etree._Element) -> None:
    node = _el(root, "Identify")
    _el(node, "repositoryName", repo.name)
    _el(node, "baseURL", repo.base_url)
    _el(node, "protocolVersion", "2.0")
    _el(node, "adminEmail", repo.admin_email)
    _el(node, "earliestDatestamp", datestamp(earliest_datestamp(conn)))
    _el(node, "deletedRecord", "persistent")
    _el(node, "granularity", "YYYY-MM-DDThh:mm:ssZ")


def _list_formats(conn: sqlite3.Connection, args: dict[str, str], root: etree._Element) -> None:
    if "identifier" in args:
        author, rid = parse_identifier(args["identifier"])
        if get_item(conn, author, rid) is None:
            raise OaiError("idDoesNotExist", f"no item {args['identifier']!r} in this repository")
    node = _el(root, "ListMetadataFormats")
    for prefix, (schema, namespace) in FORMATS.items():
        fmt = _el(node, "metadataFormat")
        _el(fmt, "metadataPrefix", prefix)
        _el(fmt, "schema", schema)
        _el(fmt, "metadataNamespace", namespace)


def _list_sets(conn: sqlite3.Connection, args: dict[str, str], root: etree._Element) -> None:
    if "resumptionToken" in args:
        raise OaiError("badResumptionToken", "ListSets is never split: there is no token to resume")
    sets = library_sets(conn)
    if not sets:
        raise OaiError("noSetHierarchy", "this node holds no library's catalogue yet")
    node = _el(root, "ListSets")
    for author, name, isil in sets:
        entry = _el(node, "set")
        _el(entry, "setSpec", node_id(author))
        _el(entry, "setName", name or node_id(author))
        description = _el(entry, "setDescription")
        dc = etree.SubElement(
            description,
            f"{{{OAI_DC_NS}}}dc",
            nsmap={"oai_dc": OAI_DC_NS, "dc": DC_NS},
        )
        etree.SubElement(dc, f"{{{DC_NS}}}title").text = xml_text(name or node_id(author))
        if isil:
            etree.SubElement(dc, f"{{{DC_NS}}}identifier").text = xml_text(f"ISIL:{isil}")
        etree.SubElement(dc, f"{{{DC_NS}}}identifier").text = node_id(author)


def _get_record(conn: sqlite3.Connection, args: dict[str, str], root: etree._Element) -> None:
    prefix = _prefix(args["metadataPrefix"])
    author, rid = parse_identifier(args["identifier"])
    item = get_item(conn, author, rid)
    if item is None:
        raise OaiError("idDoesNotExist", f"no item {args['identifier']!r} in this repository")
    node = _el(root, "GetRecord")
    _record(node, item, prefix, _isils(conn, [author]).get(author, ""))


def _prefix(value: str) -> str:
    if value not in FORMATS:
        raise OaiError(
            "cannotDisseminateFormat",
            f"metadataPrefix {value!r} is not offered: use {' or '.join(FORMATS)}",
        )
    return value


def _list_query(args: dict[str, str]) -> ListQuery:
    if "resumptionToken" in args:
        return ListQuery.from_token(args["resumptionToken"])
    prefix = _prefix(args["metadataPrefix"])
    author = None
    if "set" in args:
        try:
            author = parse_node_id(args["set"])
        except ValueError:
            raise OaiError("noRecordsMatch", f"no set {args['set']!r} here") from None
    query = ListQuery(prefix, author)
    granularities = []
    if "from" in args:
        from_ms, day = _parse_date(args["from"], "from", end=False)
        query = replace(query, from_ms=from_ms)
        granularities.append(day)
    if "until" in args:
        until_ms, day = _parse_date(args["until"], "until", end=True)
        query = replace(query, until_ms=until_ms)
        granularities.append(day)
    if len(set(granularities)) > 1:
        raise OaiError("badArgument", "from and until must have the same granularity")
    if query.from_ms > query.until_ms:
        raise OaiError("badArgument", "from is later than until")
    return query


def _list(
    conn: sqlite3.Connection,
    repo: Repository,
    verb: str,
    args: dict[str, str],
    root: etree._Element,
) -> None:
    query = _list_query(args)
    if query.after is None:
        query = replace(query, total=count_items(conn, query))
    with_data = verb == "ListRecords"
    items, next_at = list_page(conn, query, repo.page_size, with_data=with_data)
    if not items:
        # Also when everything after a token changed meanwhile: those items moved to new
        # datestamps, which the harvester's next incremental harvest picks up.
        raise OaiError("noRecordsMatch", "no records match these arguments")
    node = _el(root, verb)
    isils = _isils(conn, (item.author for item in items)) if with_data else {}
    for item in items:
        if with_data:
            _record(node, item, query.prefix, isils.get(item.author, ""))
        else:
            _header(node, item)
    if next_at is None and query.after is None:
        return  # the whole list fitted in one response: no token at all
    sent = query.cursor + len(items)
    attrs = {"cursor": str(query.cursor)}
    if query.total > 0:
        attrs["completeListSize"] = str(query.total)
    token = _el(node, "resumptionToken", **attrs)
    if next_at is not None:
        token.text = replace(query, after=next_at, cursor=sent).token()


def _check_arguments(pairs: Sequence[tuple[str, str]]) -> tuple[str, dict[str, str]]:
    """The verb and its arguments, checked against the spec's table (badVerb, badArgument)."""
    verbs = [value for name, value in pairs if name == "verb"]
    if len(verbs) != 1 or verbs[0] not in _VERBS:
        shown = "no verb" if not verbs else f"verb {', '.join(map(repr, verbs))}"
        raise OaiError("badVerb", f"{shown}: use one of {', '.join(_VERBS)}")
    verb = verbs[0]
    args: dict[str, str] = {}
    for name, value in pairs:
        if name == "verb":
            continue
        if name in args:
            raise OaiError("badArgument", f"argument {name!r} is repeated")
        args[name] = value
    required, optional = _VERBS[verb]
    unknown = sorted(set(args) - required - optional)
    if unknown:
        raise OaiError("badArgument", f"{verb} takes no argument {', '.join(unknown)}")
    if "resumptionToken" in args:
        if len(args) > 1:
            raise OaiError("badArgument", "resumptionToken must be the only argument")
    else:
        missing = sorted(required - set(args))
        if missing:
            raise OaiError("badArgument", f"{verb} needs {', '.join(missing)}")
    return verb, args


def respond(
    conn: sqlite3.Connection, repo: Repository, pairs: Sequence[tuple[str, str]], now_ms: int
) -> bytes:
    """The whole OAI-PMH response to one request (its query or form pairs), as UTF-8 XML."""
    verb, args = "", dict[str, str]()
    try:
        verb, args = _check_arguments(pairs)
        root = _envelope(repo, now_ms, {"verb": verb, **args})
        if verb == "Identify":
            _identify(conn, repo, root)
        elif verb == "ListMetadataFormats":
            _list_formats(conn, args, root)
        elif verb == "ListSets":
            _list_sets(conn, args, root)
        elif verb == "GetRecord":
            _get_record(conn, args, root)
        else:
            _list(conn, repo, verb, args, root)
    except OaiError as exc:
        # After badVerb or badArgument the request element carries no arguments (spec 3.6).
        echo = None if exc.code in ("badVerb", "badArgument") else {"verb": verb, **args}
        root = _envelope(repo, now_ms, echo)
        _el(root, "error", str(exc), code=exc.code)
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return data


# --- the route --------------------------------------------------------------------------------


def _admin_email(contact: str) -> str:
    """The first email address in the library's contact setting; adminEmail is mandatory, so
    without one the address is an explicitly undeliverable one (RFC 2606 .invalid)."""
    match = re.search(r"[^\s<>,;\"']+@[^\s<>,;\"']+\.[^\s<>,;\"']+", contact)
    return match.group(0) if match else "no-contact-email@peernode.invalid"


def _repository(conn: sqlite3.Connection, own_key: bytes, fallback: str) -> str:
    row = conn.execute("SELECT name FROM libraries WHERE author = ?", (own_key,)).fetchone()
    return str(row[0]) if row else fallback or "peernode"


async def oai_handler(request: web.Request) -> web.Response:
    node = request.app[NODE]
    if request.method == "POST":
        form = await request.post()
        pairs = [(name, value) for name, value in form.items() if isinstance(value, str)]
    else:
        pairs = list(request.query.items())
    config = node.config
    name = await node.call(_repository, node.store.conn, node.store.own_key, config.name)
    repo = Repository(
        name=name,
        base_url=str(request.url.with_query(None)),
        admin_email=_admin_email(config.contact),
        page_size=max(1, min(MAX_PAGE, config.oai_page_size)),
    )
    now = int(time.time() * 1000)
    body = await node.call(respond, node.store.conn, repo, pairs, now)
    return web.Response(body=body, content_type="text/xml", charset="utf-8")
