"""The OAI-PMH 2.0 provider: every response checked against the published XML Schemas, then a
real harvester (sickle, from PyPI) harvesting a running daemon, deletions included."""

from __future__ import annotations

import base64
import functools
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from lxml import etree
from sickle import Sickle

from peernode import db as dbmod
from peernode.catalog import import_catalog
from peernode.importers.marc import split_records
from peernode.oai import (
    ListQuery,
    OaiError,
    Position,
    Repository,
    _admin_email,
    datestamp,
    oai_identifier,
    respond,
)
from peernode.store import Store
from protocol import CATALOG, PROFILE, LogKey, node_id, public_bytes
from protocol.entries import decode_entry

from .nodes import SHARED_DATA, NodeProc

MARC_DAT = SHARED_DATA / "marc-pymarc" / "marc.dat"  # 20 real records
SCHEMAS = Path(__file__).parent / "data" / "oai-pmh"
NS = {
    "o": "http://www.openarchives.org/OAI/2.0/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "m": "http://www.loc.gov/MARC21/slim",
}
needs_data = pytest.mark.skipif(not MARC_DAT.exists(), reason="../shared/data is not present")
REPO = Repository("Perpustakaan Uji", "http://127.0.0.1:8470/oai", "staf@perpus.example", 7)
NOW = 1_800_000_000_000


class _LocalSchemas(etree.Resolver):
    """Every schemaLocation (http://www.openarchives.org/..., dublincore.org, w3.org, loc.gov)
    answered from tests/data/oai-pmh: the tests run offline, the schemas stay as published."""

    def resolve(  # type: ignore[override]  # lxml-stubs lack the context argument
        self, system_url: str | None, public_id: str | None, context: Any
    ) -> Any:
        name = (system_url or "").rsplit("/", 1)[-1]
        if (SCHEMAS / name).is_file():
            return self.resolve_filename(str(SCHEMAS / name), context)  # type: ignore[attr-defined]
        return None


@functools.cache
def oai_schema() -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(_LocalSchemas())
    # One schema that imports the OAI-PMH envelope and both metadata formats: the envelope's
    # <metadata> takes any element under processContents="strict", so each must be known.
    driver = b"""<schema xmlns="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:test">
      <import namespace="http://www.openarchives.org/OAI/2.0/" schemaLocation="OAI-PMH.xsd"/>
      <import namespace="http://www.openarchives.org/OAI/2.0/oai_dc/"
              schemaLocation="oai_dc.xsd"/>
      <import namespace="http://www.loc.gov/MARC21/slim" schemaLocation="MARC21slim.xsd"/>
    </schema>"""
    root = etree.fromstring(driver, parser, base_url=str(SCHEMAS) + "/")
    return etree.XMLSchema(root)


def valid(body: bytes) -> etree._Element:
    """The parsed response, after asserting it is schema-valid OAI-PMH."""
    document = etree.fromstring(body)
    schema = oai_schema()
    assert schema.validate(document), f"{schema.error_log}\n{body[:3000]!r}"
    return document


def ask(store: Store, *pairs: tuple[str, str], repo: Repository = REPO) -> etree._Element:
    return valid(respond(store.conn, repo, pairs, NOW))


def error_code(document: etree._Element) -> str | None:
    error = document.find("o:error", NS)
    return None if error is None else error.get("code")


def make_store(tmp_path: Path, name: str = "node") -> tuple[Store, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    store = Store(dbmod.connect(tmp_path / f"{name}.db"), public_bytes(key))
    store.append(key, "profile", PROFILE, {"name": "Perpustakaan Uji", "isil": "ID-JaUJI"})
    return store, key


def marc_subset(tmp_path: Path, count: int) -> Path:
    """The first ``count`` records of marc.dat, in a file of their own."""
    with MARC_DAT.open("rb") as stream:
        chunks = list(split_records(stream))
    path = tmp_path / f"first-{count}.dat"
    path.write_bytes(b"".join(chunks[:count]))
    return path


def harvest(
    store: Store, verb: str, prefix: str = "oai_dc", **args: str
) -> Iterator[etree._Element]:
    """Every response of a list, following resumption tokens (at most 100 pages)."""
    pairs: list[tuple[str, str]] = [("verb", verb), ("metadataPrefix", prefix), *args.items()]
    for _ in range(100):
        document = ask(store, *pairs)
        yield document
        token = document.find(f"o:{verb}/o:resumptionToken", NS)
        if token is None or not token.text:
            return
        pairs = [("verb", verb), ("resumptionToken", token.text)]
    raise AssertionError("a list of a few records took more than 100 pages")


def headers(documents: Iterator[etree._Element]) -> list[tuple[str, bool]]:
    out = []
    for document in documents:
        for header in document.iterfind(".//o:header", NS):
            out.append((header.findtext("o:identifier", "", NS), header.get("status") == "deleted"))
    return out


@pytest.fixture
def catalogue(tmp_path: Path) -> tuple[Store, Ed25519PrivateKey]:
    store, key = make_store(tmp_path)
    import_catalog(store, key, MARC_DAT, "auto", source="marc.dat")
    return store, key


# --- the verbs, validated -------------------------------------------------------------------


@needs_data
def test_identify_sets_and_formats(catalogue: tuple[Store, Ed25519PrivateKey]) -> None:
    store, _ = catalogue
    identify = ask(store, ("verb", "Identify")).find("o:Identify", NS)
    assert identify is not None
    assert identify.findtext("o:repositoryName", None, NS) == "Perpustakaan Uji"
    assert identify.findtext("o:baseURL", None, NS) == REPO.base_url
    assert identify.findtext("o:protocolVersion", None, NS) == "2.0"
    assert identify.findtext("o:deletedRecord", None, NS) == "persistent"
    assert identify.findtext("o:granularity", None, NS) == "YYYY-MM-DDThh:mm:ssZ"
    earliest = identify.findtext("o:earliestDatestamp", "", NS)
    assert earliest[:4] >= "2024" and earliest.endswith("Z")

    sets = ask(store, ("verb", "ListSets")).findall("o:ListSets/o:set", NS)
    assert [s.findtext("o:setSpec", None, NS) for s in sets] == [node_id(store.own_key)]
    assert sets[0].findtext("o:setName", None, NS) == "Perpustakaan Uji"
    assert sets[0].find(".//dc:identifier", NS) is not None
    assert "ISIL:ID-JaUJI" in [e.text for e in sets[0].iterfind(".//dc:identifier", NS)]

    formats = ask(store, ("verb", "ListMetadataFormats")).findall(".//o:metadataPrefix", NS)
    assert [f.text for f in formats] == ["oai_dc", "marcxml"]


@needs_data
def test_records_in_both_formats_and_get_record(
    catalogue: tuple[Store, Ed25519PrivateKey],
) -> None:
    store, _ = catalogue
    dc_records = [r for d in harvest(store, "ListRecords") for r in d.iterfind(".//o:record", NS)]
    assert len(dc_records) == 20
    titles = [r.findtext(".//dc:title", None, NS) for r in dc_records]
    assert all(titles) and len(set(titles)) > 15
    marc = [
        r for d in harvest(store, "ListRecords", "marcxml") for r in d.iterfind(".//m:record", NS)
    ]
    assert len(marc) == 20
    first = marc[0].find("m:controlfield[@tag='001']", NS)
    assert first is not None and first.text
    assert marc[0].findtext("m:controlfield[@tag='003']", None, NS) == "ID-JaUJI"

    identifier = oai_identifier(store.own_key, first.text)
    for prefix in ("oai_dc", "marcxml"):
        got = ask(
            store, ("verb", "GetRecord"), ("identifier", identifier), ("metadataPrefix", prefix)
        )
        assert got.findtext(".//o:header/o:identifier", None, NS) == identifier
        assert got.find(".//o:metadata", NS) is not None
    listed = ask(store, ("verb", "ListMetadataFormats"), ("identifier", identifier))
    assert len(listed.findall(".//o:metadataFormat", NS)) == 2


def test_errors_follow_the_spec(tmp_path: Path) -> None:
    store, _ = make_store(tmp_path)
    assert error_code(ask(store, ("verb", "ListSets"))) == "noSetHierarchy"
    assert error_code(ask(store, ("verb", "ListRecords"), ("metadataPrefix", "oai_dc"))) == (
        "noRecordsMatch"
    )
    cases: list[tuple[Sequence[tuple[str, str]], str]] = [
        ([], "badVerb"),
        ([("verb", "Harvest")], "badVerb"),
        ([("verb", "Identify"), ("verb", "Identify")], "badVerb"),
        ([("verb", "Identify"), ("extra", "1")], "badArgument"),
        ([("verb", "ListRecords")], "badArgument"),
        (
            [("verb", "ListRecords"), ("metadataPrefix", "a"), ("metadataPrefix", "b")],
            "badArgument",
        ),
        (
            [("verb", "ListRecords"), ("metadataPrefix", "oai_dc"), ("from", "yesterday")],
            "badArgument",
        ),
        (
            [("verb", "ListRecords"), ("metadataPrefix", "oai_dc"), ("from", "2024-02-30")],
            "badArgument",
        ),
        (
            [
                ("verb", "ListRecords"),
                ("metadataPrefix", "oai_dc"),
                ("from", "2024-01-01"),
                ("until", "2024-01-02T00:00:00Z"),
            ],
            "badArgument",
        ),
        (
            [
                ("verb", "ListIdentifiers"),
                ("metadataPrefix", "oai_dc"),
                ("from", "2024-02-01"),
                ("until", "2024-01-01"),
            ],
            "badArgument",
        ),
        (
            [("verb", "ListRecords"), ("metadataPrefix", "oai_dc"), ("resumptionToken", "x")],
            "badArgument",
        ),
        ([("verb", "ListRecords"), ("metadataPrefix", "dc")], "cannotDisseminateFormat"),
        ([("verb", "ListRecords"), ("resumptionToken", "not-a-token")], "badResumptionToken"),
        ([("verb", "ListRecords"), ("resumptionToken", "WzEsMl0")], "badResumptionToken"),
        ([("verb", "ListSets"), ("resumptionToken", "abc")], "badResumptionToken"),
        (
            [
                ("verb", "GetRecord"),
                ("identifier", "oai:elsewhere:1"),
                ("metadataPrefix", "oai_dc"),
            ],
            "idDoesNotExist",
        ),
        (
            [
                ("verb", "GetRecord"),
                ("identifier", oai_identifier(store.own_key, "nope")),
                ("metadataPrefix", "oai_dc"),
            ],
            "idDoesNotExist",
        ),
        ([("verb", "ListMetadataFormats"), ("identifier", "oai:peernode:X:1")], "idDoesNotExist"),
        (
            [("verb", "ListIdentifiers"), ("metadataPrefix", "oai_dc"), ("set", "NOT-A-LIBRARY")],
            "noRecordsMatch",
        ),
    ]
    for pairs, code in cases:
        document = ask(store, *pairs)
        assert error_code(document) == code, pairs
        request = document.find("o:request", NS)
        assert request is not None and request.text == REPO.base_url
        if code in ("badVerb", "badArgument"):  # the spec: echo no arguments then
            assert len(request.attrib) == 0, pairs


# --- lists: pages, dates, sets, deletions ----------------------------------------------------


@needs_data
def test_resumption_tokens_page_through_everything_once(
    catalogue: tuple[Store, Ed25519PrivateKey],
) -> None:
    store, _ = catalogue
    pages = list(harvest(store, "ListIdentifiers"))
    assert len(pages) == 3  # 20 items, 7 a page
    tokens = [p.find(".//o:resumptionToken", NS) for p in pages]
    assert all(t is not None for t in tokens)
    assert [t.get("cursor") for t in tokens if t is not None] == ["0", "7", "14"]
    assert {t.get("completeListSize") for t in tokens if t is not None} == {"20"}
    assert tokens[-1] is not None and not tokens[-1].text  # the last page: an empty token
    found = headers(iter(pages))
    assert len(found) == 20 and len({i for i, _ in found}) == 20
    # A page size that divides the list exactly still ends cleanly, and one page needs no token.
    exact = Repository(REPO.name, REPO.base_url, REPO.admin_email, 10)
    first = ask(store, ("verb", "ListIdentifiers"), ("metadataPrefix", "oai_dc"), repo=exact)
    token = first.findtext(".//o:resumptionToken", None, NS)
    assert token
    second = ask(store, ("verb", "ListIdentifiers"), ("resumptionToken", token), repo=exact)
    last = second.find(".//o:resumptionToken", NS)
    assert last is not None and not last.text and len(second.findall(".//o:header", NS)) == 10
    whole = Repository(REPO.name, REPO.base_url, REPO.admin_email, 50)
    one = ask(store, ("verb", "ListIdentifiers"), ("metadataPrefix", "oai_dc"), repo=whole)
    assert one.find(".//o:resumptionToken", NS) is None


def test_tokens_round_trip_and_reject_tampering() -> None:
    query = ListQuery(
        "marcxml",
        b"\x01" * 32,
        5,
        9,
        Position(7, b"\x02" * 32, 3, 1, "id: ü/1"),
        total=40,
        cursor=14,
    )
    assert ListQuery.from_token(query.token()) == query
    for bad in (
        [2, "marcxml", "", 0, 1, [0, "", 1, 0, "x"], 1, 0],
        [1, "dc", "", 0, 1, [0, "", 1, 0, "x"], 1, 0],
        [1, "oai_dc", "", -5, 1, [0, "", 1, 0, "x"], 1, 0],
        [1, ["oai_dc"], "", 0, 1, [0, "", 1, 0, "x"], 1, 0],
        [1, "oai_dc", "", 0, 1, [0, "", 1, 7, "x"], 1, 0],
        [1, "oai_dc", "", 0, 1, [0, "zz", 1, 0, "x"], 1, 0],
        [1, "oai_dc", "", 0, True, [0, "", 1, 0, "x"], 1, 0],
        {"v": 1},
    ):
        token = base64.urlsafe_b64encode(json.dumps(bad).encode()).decode()
        with pytest.raises(OaiError, match="resumptionToken") as caught:
            ListQuery.from_token(token)
        assert caught.value.code == "badResumptionToken"


@needs_data
def test_reimport_leaves_persistent_deletes_and_from_until_select_by_date(
    catalogue: tuple[Store, Ed25519PrivateKey], tmp_path: Path
) -> None:
    store, key = catalogue
    first_entries = [
        s for (s,) in store.conn.execute("SELECT seq FROM entries WHERE log = 'catalog'")
    ]
    summary = import_catalog(store, key, marc_subset(tmp_path, 15), "marc", source="marc.dat")
    assert summary.deleted == 5
    tombstones = store.conn.execute("SELECT count(*) FROM deleted_records").fetchone()[0]
    assert tombstones == 5
    # Place the two imports on known dates: the first in 2020, the re-import in mid-2021.
    day_2020, day_2021 = 1_577_880_000_000, 1_622_548_800_000  # 2020-01-01, 2021-06-01 12:00Z
    store.conn.execute(
        f"UPDATE entries SET received_at = CASE WHEN seq IN ({','.join('?' * len(first_entries))}) "
        "THEN ? ELSE ? END WHERE log = 'catalog'",
        (*first_entries, day_2020, day_2021),
    )

    everything = headers(harvest(store, "ListIdentifiers"))
    assert len(everything) == 20 and sum(deleted for _, deleted in everything) == 5
    since = headers(harvest(store, "ListIdentifiers", **{"from": "2021-01-01"}))
    assert len(since) == 5 and all(deleted for _, deleted in since)
    before = headers(harvest(store, "ListIdentifiers", until="2020-12-31"))
    assert len(before) == 15 and not any(deleted for _, deleted in before)
    exact = headers(
        harvest(
            store,
            "ListIdentifiers",
            **{"from": "2021-06-01T12:00:00Z"},
            until="2021-06-01T12:00:00Z",
        )
    )
    assert len(exact) == 5
    assert (
        error_code(
            ask(
                store, ("verb", "ListRecords"), ("metadataPrefix", "oai_dc"), ("from", "2022-01-01")
            )
        )
        == "noRecordsMatch"
    )

    deleted_id = since[0][0]
    got = ask(
        store, ("verb", "GetRecord"), ("identifier", deleted_id), ("metadataPrefix", "marcxml")
    )
    header = got.find(".//o:header", NS)
    assert header is not None and header.get("status") == "deleted"
    assert header.findtext("o:datestamp", None, NS) == "2021-06-01T12:00:00Z"
    assert got.find(".//o:metadata", NS) is None
    records = [
        r
        for d in harvest(store, "ListRecords", **{"from": "2021-01-01"})
        for r in d.iterfind(".//o:record", NS)
    ]
    assert len(records) == 5 and all(r.find("o:metadata", NS) is None for r in records)

    # A database from before schema v8: migrating it rebuilds the same tombstones from the
    # stored entries.
    rows = "SELECT author, rid, seq, deleted_at FROM deleted_records ORDER BY rid"
    expected = store.conn.execute(rows).fetchall()
    # (Only v8 is run again: later migrations are not meant to run twice on one file.)
    store.conn.executescript(
        "DROP TABLE deleted_records; DROP INDEX records_seq; DROP INDEX entries_received;"
    )
    migrated = dbmod.connect(tmp_path / "node.db")
    with dbmod.transaction(migrated.conn):
        dbmod.MIGRATIONS[7](migrated)
    assert migrated.execute(rows).fetchall() == expected
    migrated.conn.close()

    # Putting the records back removes their tombstones.
    import_catalog(store, key, MARC_DAT, "auto", source="marc.dat")
    assert store.conn.execute("SELECT count(*) FROM deleted_records").fetchone()[0] == 0
    assert len(headers(harvest(store, "ListIdentifiers"))) == 20


@needs_data
def test_one_set_per_library_in_the_union_catalogue(
    catalogue: tuple[Store, Ed25519PrivateKey], tmp_path: Path
) -> None:
    store, _ = catalogue
    other, other_key = make_store(tmp_path, "other")
    other.append(
        other_key, "catalog", CATALOG, {"ops": [["put", "b/1 x:y%", {"title": "Babad Tanah Jawi"}]]}
    )
    for log in ("profile", "catalog"):
        raws = other.conn.execute(
            "SELECT raw FROM entries WHERE log = ? ORDER BY seq", (log,)
        ).fetchall()
        result = store.apply(
            LogKey(other.own_key, log), [decode_entry(r, now_ms=None) for (r,) in raws]
        )
        assert result.error is None
    specs = [s.text or "" for s in ask(store, ("verb", "ListSets")).iterfind(".//o:setSpec", NS)]
    assert sorted(specs) == sorted([node_id(store.own_key), node_id(other.own_key)])

    theirs = headers(harvest(store, "ListIdentifiers", set=node_id(other.own_key)))
    identifier = oai_identifier(other.own_key, "b/1 x:y%")
    assert theirs == [(identifier, False)]
    assert identifier.endswith(":b%2F1%20x%3Ay%25")
    ours = headers(harvest(store, "ListIdentifiers", set=node_id(store.own_key)))
    assert len(ours) == 20
    got = ask(
        store, ("verb", "GetRecord"), ("identifier", identifier), ("metadataPrefix", "oai_dc")
    )
    assert got.findtext(".//dc:title", None, NS) == "Babad Tanah Jawi"
    # The same record id escaped another way is not an identifier this repository gave out.
    odd = identifier.replace("%2F", "/")
    assert (
        error_code(
            ask(store, ("verb", "GetRecord"), ("identifier", odd), ("metadataPrefix", "oai_dc"))
        )
        == "idDoesNotExist"
    )


HOSTILE = 'Judul <script>alert("x")</script> ]]> &lt; \x00\x07\x1b\x1f tab\tend \ufffe\uffff'


def test_hostile_titles_still_give_valid_xml(tmp_path: Path) -> None:
    store, key = make_store(tmp_path)
    record = {
        "title": HOSTILE,
        "authors": [HOSTILE],
        "subjects": ["]]>", "\x0c"],
        "publisher": "<![CDATA[x]]>",
        "holdings": [{"note": HOSTILE}],
    }
    store.append(key, "catalog", CATALOG, {"ops": [["put", "evil\x01<id>", record]]})
    for prefix in ("oai_dc", "marcxml"):
        (document,) = list(harvest(store, "ListRecords", prefix))  # valid() checked the schema
        text = etree.tostring(document, encoding="unicode")
        assert "<script>" not in text and "&lt;script&gt;" in text
    (document,) = list(harvest(store, "ListRecords"))
    title = document.findtext(".//dc:title", None, NS)
    # Characters XML 1.0 cannot carry are dropped; everything else arrives as it was.
    assert title == 'Judul <script>alert("x")</script> ]]> &lt;  tab\tend '
    assert document.findtext(".//dc:publisher", None, NS) == "<![CDATA[x]]>"


def test_admin_email_comes_from_the_contact_setting() -> None:
    assert _admin_email("Pak Budi <budi@perpus.example>, 0812") == "budi@perpus.example"
    assert _admin_email("0812 3456 789").endswith(".invalid")
    assert datestamp(1_622_548_800_999) == "2021-06-01T12:00:00Z"


# --- a real harvester against a running daemon ----------------------------------------------


def _get(address: str, query: dict[str, str], post: bool = False) -> bytes:
    data = urllib.parse.urlencode(query)
    url = f"http://{address}/oai"
    if post:
        request = urllib.request.Request(url, data=data.encode(), method="POST")
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    else:
        request = urllib.request.Request(f"{url}?{data}")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/xml")
        body: bytes = response.read()
        return body


@pytest.mark.slow
@needs_data
def test_sickle_harvests_a_daemon_deletes_included(tmp_path: Path) -> None:
    node = NodeProc(tmp_path / "lib", "Perpustakaan Daerah").init()
    node.cli("catalog", "import", str(MARC_DAT), "--source", "marc.dat")
    node.start(env={"PEERNODE_OAI_PAGE_SIZE": "7"})
    try:
        address = node.address
        for post in (False, True):  # OAI-PMH requires both GET and POST
            first = valid(_get(address, {"verb": "ListRecords", "metadataPrefix": "marcxml"}, post))
            assert len(first.findall(".//o:record", NS)) == 7
        sickle = Sickle(f"http://{address}/oai", max_retries=0, timeout=10)
        assert sickle.Identify().repositoryName == "Perpustakaan Daerah"

        records = list(sickle.ListRecords(metadataPrefix="oai_dc", ignore_deleted=False))
        assert len(records) == 20 and not any(r.header.deleted for r in records)
        assert all(r.metadata.get("title") for r in records)
        marc = list(sickle.ListRecords(metadataPrefix="marcxml"))
        assert len(marc) == 20
        for record in marc:
            element = record.xml.find(".//m:record", NS)
            assert element is not None
            assert element.findtext("m:datafield[@tag='245']/m:subfield[@code='a']", None, NS)

        time.sleep(1.05 - time.time() % 1)  # the re-import lands in a later second
        since = datestamp(int(time.time() * 1000))
        node.cli("catalog", "import", str(marc_subset(tmp_path, 15)), "--source", "marc.dat")

        changed = list(
            sickle.ListIdentifiers(metadataPrefix="oai_dc", ignore_deleted=False, **{"from": since})
        )
        assert len(changed) == 5 and all(h.deleted for h in changed)
        again = list(sickle.ListRecords(metadataPrefix="marcxml", ignore_deleted=False))
        assert len(again) == 20 and sum(r.header.deleted for r in again) == 5
        gone = {h.identifier for h in changed}
        assert {r.header.identifier for r in again if r.header.deleted} == gone
    finally:
        node.stop()


@needs_data
def test_the_schema_check_is_not_vacuous(catalogue: tuple[Store, Ed25519PrivateKey]) -> None:
    store, _ = catalogue
    body = respond(store.conn, REPO, [("verb", "ListRecords"), ("metadataPrefix", "marcxml")], NOW)
    document = etree.fromstring(body)
    assert oai_schema().validate(document)
    field = document.find(".//m:datafield", NS)
    assert field is not None
    field.set("ind1", "#")  # not a MARC indicator: the strict MARCXML schema must object
    assert not oai_schema().validate(document)
    stamp = etree.fromstring(body).find(".//o:datestamp", NS)
    assert stamp is not None
    broken = stamp.getroottree()
    stamp.text = "2021-06-01 12:00:00"  # no T, no Z: not an OAI-PMH datestamp
    assert not oai_schema().validate(broken)
