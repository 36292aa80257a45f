"""MARC 21 and MARCXML export: real files round-trip through export and import unchanged."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from lxml import etree
from pymarc import MARCReader

from peernode import db as dbmod
from peernode.catalog import import_catalog
from peernode.cli import cli
from peernode.exporters import (
    ExportError,
    Holder,
    export_catalog,
    marc_bytes,
    marcxml_element,
    to_marc,
    write_marcxml,
)
from peernode.home import Home
from peernode.importers import Imported, read_catalog
from peernode.records import BibRecord, Holding
from peernode.store import Store
from protocol import PROFILE, node_id, public_bytes

from .nodes import SHARED_DATA

MARC = SHARED_DATA / "marc-pymarc"
SCHEMAS = Path(__file__).parent / "data" / "oai-pmh"
needs_data = pytest.mark.skipif(not MARC.is_dir(), reason="../shared/data is not present")
pytestmark = pytest.mark.filterwarnings("ignore::pymarc.exceptions.BadSubfieldCodeWarning")

# Every real file whose records the importer accepts. bad_records.mrc is left out on purpose:
# its one readable record has a blank leader/06, which no valid MARC 21 leader can say again
# (the export writes "a", language material, so it comes back as a book).
ROUND_TRIP_FILES = [
    "test.dat",
    "marc.dat",
    "regression45.dat",
    "multi_isbn.dat",
    "diacritic.dat",
    "marc8.dat",
    "utf8_with_leader_flag.dat",
    "utf8_without_leader_flag.dat",
    "batch.xml",
    "utf8.xml",
    "batch.json",
    "test.json",
]


def make_store(tmp_path: Path) -> tuple[Store, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    store = Store(dbmod.connect(tmp_path / "node.db"), public_bytes(key))
    store.append(key, "profile", PROFILE, {"name": "Perpustakaan Uji", "isil": "ID-JaUJI"})
    return store, key


def marc_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMAS / "MARC21slim.xsd")))


def imported(path: Path, fmt: str = "auto") -> list[BibRecord]:
    return [o.record for o in read_catalog(path, fmt) if isinstance(o, Imported)]


@needs_data
@pytest.mark.parametrize("name", ROUND_TRIP_FILES)
@pytest.mark.parametrize("fmt", ["marc", "marcxml"])
def test_real_files_round_trip_through_export(tmp_path: Path, name: str, fmt: str) -> None:
    store, key = make_store(tmp_path)
    summary = import_catalog(store, key, MARC / name, "auto")
    assert summary.added > 0
    original = {r.rid: r.to_wire() for r in imported(MARC / name)}
    assert len(original) == summary.added

    out = tmp_path / ("out.xml" if fmt == "marcxml" else "out.mrc")
    result = export_catalog(store.conn, out, fmt, author=store.own_key)
    assert result.records == summary.added and result.bytes == out.stat().st_size

    again = {r.rid: r.to_wire() for r in imported(out, fmt)}
    # Every field the record model holds, for every record, including holdings.
    assert again == original
    if fmt == "marcxml":
        assert marc_schema().validate(etree.parse(str(out)))
    else:
        with out.open("rb") as stream:  # pymarc's own reader, as another system would use
            records = list(MARCReader(stream, to_unicode=True, force_utf8=True))
        assert len(records) == summary.added
        assert all(r is not None and str(r.leader)[9] == "a" for r in records)


def test_field_mapping() -> None:
    record = BibRecord(
        rid="b-42",
        title="Laskar pelangi : sebuah novel",
        responsibility="Andrea Hirata",
        authors=("Hirata, Andrea", "Editor, Sang"),
        year=2005,
        isbn=("9789793062792",),
        issn=("1234-5679",),
        subjects=("Indonesian fiction -- 21st century", "Belitung"),
        series=("Tetralogi Laskar Pelangi",),
        publisher="Bentang",
        place="Yogyakarta",
        edition="Cet. 1",
        language="ind",
        call_number="899.2213",
        format="book",
        description="xii, 529 p.",
        holdings=(Holding(call_number="899.2213 HIR l", barcode="B0001", location="Rak 3"),),
    )
    marc = to_marc(record, Holder("ID-JaUJI", 1_700_000_000_000))
    leader = str(marc.leader)
    assert leader[6:8] == "am" and leader[9] == "a"
    assert marc["001"].data == "b-42" and marc["003"].data == "ID-JaUJI"
    fixed = str(marc["008"].data)
    assert fixed[7:11] == "2005" and fixed[35:38] == "ind" and len(fixed) == 40
    assert marc["020"]["a"] == "9789793062792" and marc["022"]["a"] == "1234-5679"
    assert marc["082"]["a"] == "899.2213"
    assert marc["100"]["a"] == "Hirata, Andrea" and marc["700"]["a"] == "Editor, Sang"
    title = marc["245"]
    assert [(s.code, s.value) for s in title.subfields] == [
        ("a", "Laskar pelangi :"),
        ("b", "sebuah novel /"),
        ("c", "Andrea Hirata"),
    ]
    assert title.indicators is not None and title.indicators.first == "1"
    assert [(s.code, s.value) for s in marc["260"].subfields] == [
        ("a", "Yogyakarta :"),
        ("b", "Bentang,"),
        ("c", "2005"),
    ]
    subject = marc.get_fields("650")[0]
    assert [(s.code, s.value) for s in subject.subfields] == [
        ("a", "Indonesian fiction"),
        ("x", "21st century"),
    ]
    holding = marc["852"]
    assert holding["a"] == "ID-JaUJI" and holding["h"] == "899.2213 HIR l"
    assert holding["p"] == "B0001" and holding["b"] == "Rak 3"
    assert marc["490"]["a"] == "Tetralogi Laskar Pelangi"
    # Binary MARC, read by pymarc, then by our importer: the same record.
    raw = marc_bytes(marc)
    path_record = next(iter(MARCReader(io.BytesIO(raw), to_unicode=True, force_utf8=True)))
    assert path_record is not None and path_record["245"]["b"] == "sebuah novel /"


def test_abbreviation_keeps_its_period_and_words_for_language_and_format(tmp_path: Path) -> None:
    # Values as the importer leaves them (clean_text keeps the "." of an initial or "Jr.").
    record = BibRecord(
        rid="x1",
        title="Memoirs of Smith Jr.",
        responsibility="by J. Smith",
        language="Bahasa Jawa",
        format="DVD",
        place="Washington, D.C.",
        publisher="Sons of Smith Jr.",
    )
    marc = to_marc(record)
    assert marc["245"]["a"] == "Memoirs of Smith Jr."  # no " /": the importer would eat "."
    assert marc["546"]["a"] == "Language: Bahasa Jawa" and marc["500"]["a"] == "Format: DVD"
    assert marc.get_fields("041") == []
    path = tmp_path / "one.mrc"
    path.write_bytes(marc_bytes(marc))
    (back,) = imported(path, "marc")
    assert (back.title, back.responsibility, back.place, back.publisher) == (
        "Memoirs of Smith Jr.",
        "by J. Smith",
        "Washington, D.C.",
        "Sons of Smith Jr.",
    )


HOSTILE = "<script>alert(1)</script> ]]> &amp; \x00\x01\x1d\x1e\x1f\x0b end \ufffe"


def test_hostile_text_cannot_break_marc_or_xml(tmp_path: Path) -> None:
    record = BibRecord(
        rid="evil\x1e1",
        title=HOSTILE,
        authors=(HOSTILE,),
        subjects=(HOSTILE,),
        holdings=(Holding(note=HOSTILE),),
    )
    marc = to_marc(record)
    raw = marc_bytes(marc)
    # The delimiters inside the text became spaces: the structure still parses field by field.
    (again,) = list(MARCReader(io.BytesIO(raw), to_unicode=True, force_utf8=True))
    assert again is not None and again["001"].data == "evil 1"
    assert again["245"]["a"].startswith("<script>alert(1)</script> ]]> &amp;")
    assert [f.tag for f in again.fields] == [f.tag for f in marc.fields]

    out = io.BytesIO()
    write_marcxml(out, [(record, Holder())])
    document = etree.fromstring(out.getvalue())  # well-formed, or this raises
    assert marc_schema().validate(document)
    title = document.find(".//{*}datafield[@tag='245']/{*}subfield[@code='a']")
    assert title is not None and title.text is not None
    # XML 1.0 cannot hold C0 controls or U+FFFE: they are gone, everything else is intact.
    assert title.text.startswith("<script>alert(1)</script> ]]> &amp;")
    assert "\x00" not in title.text and "\ufffe" not in title.text and "end" in title.text
    assert etree.tostring(marcxml_element(marc))  # the element serialises on its own too


def test_export_another_library_and_one_record_and_errors(tmp_path: Path) -> None:
    store, key = make_store(tmp_path)
    import_catalog(store, key, MARC / "test.dat", "auto")
    rid = imported(MARC / "test.dat")[3].rid
    out = tmp_path / "one.xml"
    assert export_catalog(store.conn, out, "marcxml", rid=rid).records == 1
    (back,) = imported(out, "marcxml")
    assert back.rid == rid
    with pytest.raises(ExportError, match="no record 'nope'"):
        export_catalog(store.conn, tmp_path / "none.mrc", "marc", rid="nope")
    assert not (tmp_path / "none.mrc").exists()  # nothing half-written is left behind
    other = public_bytes(Ed25519PrivateKey.generate())
    with pytest.raises(ExportError, match="from that library"):
        export_catalog(store.conn, tmp_path / "none.mrc", "marc", author=other)


@needs_data
def test_cli_export(tmp_path: Path) -> None:
    home = str(tmp_path / "lib")

    def peernode(*args: str) -> Result:
        return CliRunner().invoke(cli, ["--home", home, *args])

    assert peernode("init", "--name", "Perpustakaan A").exit_code == 0
    assert peernode("catalog", "import", str(MARC / "marc.dat")).exit_code == 0
    out = tmp_path / "export.xml"
    result = peernode("catalog", "export", str(out))
    assert "Wrote 20 records" in result.output and "marcxml" in result.output
    assert len(imported(out, "marcxml")) == 20
    mrc = tmp_path / "export.mrc"
    own = Home(Path(home)).node_id
    assert peernode("catalog", "export", str(mrc), "--library", own).exit_code == 0
    assert len(imported(mrc, "marc")) == 20
    bad = peernode("catalog", "export", str(mrc), "--library", "XYZ")
    assert bad.exit_code == 1 and "not a node id" in bad.output
    stranger = node_id(public_bytes(Ed25519PrivateKey.generate()))
    none = peernode("catalog", "export", str(tmp_path / "x.mrc"), "--library", stranger)
    assert none.exit_code == 1 and "no records" in none.output
    assert none.exception is None or isinstance(none.exception, SystemExit)
