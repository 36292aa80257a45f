"""Catalogue importers against the real files in ../shared/data and small hand-made files."""

from __future__ import annotations

import io
import json
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peernode.importers import (
    FORMATS,
    Imported,
    ImportFileError,
    Rejected,
    detect_format,
    read_catalog,
)
from peernode.importers.jsonstream import JsonProblem, JsonValue, iter_json
from peernode.importers.marc import decode_binary, split_records
from peernode.importers.sqldump import Row, SqlProblem, TableColumns, iter_dump
from peernode.importers.text import repair_mojibake, split_list
from peernode.records import BibRecord, Holding

DATA = Path(__file__).parent.parent.parent / "shared" / "data"
MARC = DATA / "marc-pymarc"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is not present")
# utf8_invalid.mrc has a non-ASCII subfield code: pymarc repairs it and warns; the importer
# silences that warning, but pytest resets warning filters for each test.
pytestmark = pytest.mark.filterwarnings("ignore::pymarc.exceptions.BadSubfieldCodeWarning")

Result = Imported | Rejected


def load(path: Path, fmt: str = "auto") -> tuple[list[Imported], list[Rejected]]:
    items = list(read_catalog(path, fmt))
    return [i for i in items if isinstance(i, Imported)], [
        i for i in items if isinstance(i, Rejected)
    ]


def records(path: Path, fmt: str = "auto") -> dict[str, BibRecord]:
    imported, _ = load(path, fmt)
    return {item.record.rid: item.record for item in imported}


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


# --- loc-books (JSON array) -----------------------------------------------------------------


@pytest.fixture(scope="module")
def loc_books() -> tuple[list[Imported], list[Rejected]]:
    return load(DATA / "loc-books" / "books.json")


@needs_data
def test_loc_books_all_ten_thousand_import(
    loc_books: tuple[list[Imported], list[Rejected]],
) -> None:
    imported, rejected = loc_books
    assert len(imported) == 10_000
    assert rejected == []
    assert len({item.record.rid for item in imported}) == 10_000
    assert imported[0].position == "record 1" and imported[-1].position == "record 10000"


@needs_data
def test_loc_books_field_values(loc_books: tuple[list[Imported], list[Rejected]]) -> None:
    by_id = {item.record.rid: item.record for item in loc_books[0]}
    first = by_id["00000002"]
    assert first.title.startswith("Botanical materia medica and pharmacology; drugs considered")
    assert first.authors == ("Aurand, Samuel Herbert",)  # trailing comma and $d date dropped
    assert first.publisher == "Chicago"  # "Chicago," cleaned
    assert first.responsibility == "By S. H. Aurand"
    assert first.subjects == ("Botany, Medical", "Homeopathy", "Materia medica and therapeutics")
    second = by_id["00000004"]
    assert second.title == "Personal rights and the domestic relations"
    assert second.publisher == "Conneaut, OH"
    assert second.subjects == ("Persons (Law)", "Domestic relations", "United States")
    other = by_id["00004231"]
    assert other.authors == ("Schoepffer, Carl", "De Peyster, J. Watts", "Allaben, Frank")
    assert other.title == "The earth stands fast"


# --- SLiMS ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slims() -> tuple[list[Imported], list[Rejected]]:
    return load(DATA / "slims" / "sampledata.sql")


@needs_data
def test_slims_sample_imports_fifteen_titles(slims: tuple[list[Imported], list[Rejected]]) -> None:
    imported, rejected = slims
    assert rejected == []
    assert [i.record.rid for i in imported] == [str(n) for n in range(1, 16)]
    assert [i.position for i in imported][:2] == ["biblio_id 1", "biblio_id 2"]
    assert sum(len(i.record.holdings) for i in imported) == 10  # the dump's 10 items
    assert detect_format(DATA / "slims" / "sampledata.sql") == "slims"


@needs_data
def test_slims_joins_authors_topics_publisher_place(
    slims: tuple[list[Imported], list[Rejected]],
) -> None:
    by_id = {i.record.rid: i.record for i in slims[0]}
    linux = by_id["2"]
    assert linux.title == "Linux In a Nutshell"
    # level 1 (main entry) first, then the level-2 authors in the order they were entered
    assert linux.authors == (
        "Siever, Ellen",
        "Love, Robert",
        "Robbins, Arnold",
        "Figgins, Stephen",
        "Weber, Aaron",
    )
    assert linux.subjects == ("Operating System", "Linux", "Computer")
    assert linux.publisher == "OReilly"
    assert linux.place == "Sebastopol, CA"  # mst_place is inserted without a column list
    assert linux.edition == "Fifth Edition"
    assert linux.year == 2005
    assert linux.isbn == ("9780596009304",)
    assert linux.language == "eng"
    assert linux.format == "book"
    assert linux.series == ("In a Nutshell",)
    assert linux.call_number == "005.4/32-22 Ell l"
    assert linux.holdings == (
        Holding(call_number="005.4/32-22 Ell l", barcode="B00009", location="SL"),
        Holding(call_number="005.4/32-22 Ell l", barcode="B00010", location="SL"),
    )
    php = by_id["1"]
    assert php.authors == ("Valade, Janet",)
    assert php.isbn == ("9780764541667",)  # ISBN-10 0764541668 as ISBN-13
    assert php.holdings == ()
    assert php.description == "xiv, 392 p. : ill. ; 24 cm"


@needs_data
def test_slims_isbns_and_near_duplicate_titles(
    slims: tuple[list[Imported], list[Rejected]],
) -> None:
    by_id = {i.record.rid: i.record for i in slims[0]}
    assert by_id["4"].isbn == ("9780596001087",)  # '0-596-00108-8'
    assert [h.barcode for h in by_id["4"].holdings] == ["B00007", "B00008"]
    assert by_id["4"].authors == ("Raymond, Eric",)
    # Two titles share the stem "Corruption and development": both kept, each with its own id.
    assert by_id["12"].title == "Corruption and development"
    assert by_id["13"].title == "Corruption and development : the anti-corruption campaigns"
    assert by_id["12"].authors == ("Robinson, Mark",)
    assert by_id["13"].authors == ("Bracking, Sarah",)
    assert by_id["12"].isbn != by_id["13"].isbn


@needs_data
def test_slims_mojibake_is_repaired(slims: tuple[list[Imported], list[Rejected]]) -> None:
    by_id = {i.record.rid: i.record for i in slims[0]}
    assert by_id["6"].series == ("Developer’s library",)
    assert by_id["8"].series == ("Bruce Perens’ Open Source series",)
    for item in slims[0]:
        wire = json.dumps(item.record.to_wire(), ensure_ascii=False)
        assert "Ã" not in wire and "â€" not in wire


# --- MARC: every file of the pymarc test set ------------------------------------------------

# (imported, rejected) per file. Broken records are rejected one by one; padding after the last
# record (bad_indicator.dat, testunimarc.dat) is not a record.
MARC_COUNTS = {
    "1251.dat": (0, 6),  # cp1251 text: neither UTF-8 nor MARC-8
    "alphatag.dat": (1, 0),
    "bad_eacc_encoding.dat": (1, 0),
    "bad_indicator.dat": (1, 0),
    "bad_marc8_escape.dat": (1, 0),
    "bad_records.mrc": (1, 7),
    "bad_subfield_code.dat": (0, 1),
    "bad_tag.xml": (0, 1),
    "batch.json": (2, 0),
    "batch.xml": (2, 0),
    "diacritic.dat": (1, 0),
    "marc.dat": (20, 0),
    "marc8.dat": (1, 0),
    "multi_isbn.dat": (1, 0),
    "one.dat": (1, 0),
    "one.json": (1, 0),
    "regression45.dat": (12, 0),
    "test.dat": (10, 0),
    "test.json": (1, 0),
    "testunimarc.dat": (0, 1),
    "utf8.xml": (1, 0),
    "utf8_errors.dat": (1, 0),
    "utf8_invalid.mrc": (1, 0),
    "utf8_with_leader_flag.dat": (1, 0),
    "utf8_without_leader_flag.dat": (1, 0),
}


@needs_data
def test_every_marc_file_is_covered() -> None:
    present = {p.name for p in MARC.iterdir() if p.name != "SOURCES.txt"}
    assert present == set(MARC_COUNTS)


@needs_data
@pytest.mark.parametrize("name", sorted(MARC_COUNTS))
def test_marc_file_counts(name: str) -> None:
    imported, rejected = load(MARC / name)
    assert (len(imported), len(rejected)) == MARC_COUNTS[name]
    for rejection in rejected:
        assert re.fullmatch(r"record \d+", rejection.position)
        assert rejection.reason.startswith(rejection.position + ": ")
    for item in imported:
        assert item.record.title and item.record.rid


@needs_data
def test_marc_formats_are_detected() -> None:
    expected = {".dat": "marc", ".mrc": "marc", ".xml": "marcxml", ".json": "marcjson"}
    for name in MARC_COUNTS:
        assert detect_format(MARC / name) == expected[Path(name).suffix], name
    assert detect_format(DATA / "loc-books" / "books.json") == "json"


@needs_data
def test_marc_mapping_of_a_known_record() -> None:
    first = records(MARC / "marc.dat")["11778504"]
    assert first == BibRecord(
        rid="11778504",
        title="The pragmatic programmer : from journeyman to master",
        authors=("Hunt, Andrew", "Thomas, David"),
        year=2000,
        isbn=("9780201616224",),
        subjects=("Computer programming",),
        responsibility="Andrew Hunt, David Thomas",
        publisher="Addison-Wesley",
        place="Reading, Mass",
        language="eng",
        call_number="QA76.6 .H857 2000",
        format="book",
        description="xxiv, 321 p",
        subtitle="from journeyman to master",
        ddc="005.1",
        notes=("Includes bibliographical references",),
    )


@needs_data
def test_marc_isbns_subjects_series_and_formats() -> None:
    scold = records(MARC / "multi_isbn.dat")["4612195"]
    assert scold.isbn == ("9780914378280", "9780914378297", "9780914378266")
    assert scold.series == ("Her Waste ; pt. 1",)
    alpha = records(MARC / "alphatag.dat")["000000001"]
    assert alpha.subjects == (
        "Chemistry -- Experiments",
        "Chemistry -- Experiments -- Juvenile literature",
    )
    serial = records(MARC / "bad_marc8_escape.dat")["2429943"]
    assert serial.format == "serial" and serial.issn == ("0750-6848",)
    photo = records(MARC / "utf8_errors.dat")["2001700030"]
    assert photo.format == "image"
    assert photo.holdings == (Holding(location="Prints and Photographs Division"),)
    assert records(MARC / "batch.xml")["5637241"].format == "music"


@needs_data
def test_marcxml_and_marcjson_of_the_same_records_agree() -> None:
    assert records(MARC / "batch.xml") == records(MARC / "batch.json")
    assert records(MARC / "one.dat") == records(MARC / "one.json")
    dylan = records(MARC / "test.json")["5674874"]  # has raw control characters in its JSON
    assert dylan.title == "The freewheelin' Bob Dylan"
    assert dylan.authors == ("Dylan, Bob",)


@needs_data
def test_marc8_and_utf8_flag_mismatches_give_the_same_text() -> None:
    # marc8.dat is MARC-8; the other two are UTF-8 with leader/09 'a' and, wrongly, ' '.
    files = ["marc8.dat", "utf8_with_leader_flag.dat", "utf8_without_leader_flag.dat"]
    mapped = [records(MARC / name)["2"] for name in files]
    assert mapped[0] == mapped[1] == mapped[2]
    assert mapped[0].title == "Escape from loneliness"
    for name in files:
        with (MARC / name).open("rb") as stream:
            record = decode_binary(next(split_records(stream)))
        assert nfc(record["240"]["a"]) == "De la solitude à la communauté."


@needs_data
def test_diacritics_come_out_right() -> None:
    with (MARC / "diacritic.dat").open("rb") as stream:
        record = decode_binary(next(split_records(stream)))
    assert "Eva Hemmungs Wirtén" in nfc(record["505"]["a"])
    assert records(MARC / "bad_marc8_escape.dat")["2429943"].title == (
        "Bulletin de la Société linnenne de Bordeaux"
    )
    assert records(MARC / "bad_eacc_encoding.dat")["ocn503001208"].title == (
        "Beikoku no tōchi no shikumi"
    )
    first = records(MARC / "regression45.dat")["prk2000001890"]
    assert first.authors == ("Prokudin-Gorskiĭ, Sergeĭ Mikhaĭlovich",)
    title = records(MARC / "utf8_errors.dat")["2001700030"].title
    assert title == "[Imperial military middle school, Ṣanʻāʾ]"
    for bib in (first, records(MARC / "utf8_errors.dat")["2001700030"]):
        assert unicodedata.is_normalized("NFC", bib.title)


@needs_data
def test_broken_records_are_rejected_and_the_rest_imports() -> None:
    items = list(read_catalog(MARC / "bad_records.mrc"))
    assert [type(i).__name__ for i in items] == ["Imported"] + ["Rejected"] * 7
    reasons = [i.reason for i in items if isinstance(i, Rejected)]
    assert reasons[0].startswith("record 2: leader is not valid MARC (base address 99937")
    assert reasons[1].startswith("record 3: leader is not valid MARC (base address is 0")
    assert reasons[2].startswith("record 4: directory is not valid MARC")
    assert reasons[4] == "record 6: leader is not valid MARC (bad base address 'f0037')"
    assert reasons[5].startswith("record 7: record has no fields")
    # the 8th is byte for byte the 1st: same hashed id (no 001), so a duplicate
    assert re.fullmatch(
        r"record 8: duplicate id 'h:[0-9a-f]{40}', first seen at record 1", reasons[6]
    )
    (end,) = load(MARC / "bad_subfield_code.dat")[1]
    assert "755 bytes" in end.reason and "756" in end.reason
    (cyrillic, *_) = load(MARC / "1251.dat")[1]
    assert "neither UTF-8 nor MARC-8" in cyrillic.reason
    (unimarc,) = load(MARC / "testunimarc.dat")[1]
    assert "no title" in unimarc.reason and "UNIMARC" in unimarc.reason
    (xml_leader,) = load(MARC / "bad_tag.xml")[1]
    assert xml_leader.reason.startswith("record 1: leader is not valid MARC")


def marc_record(control: str, title: str, *, utf8: bool = True) -> bytes:
    """A minimal valid ISO 2709 record with an 001 and a 245 $a."""
    fields = [("001", control.encode()), ("245", b"10\x1fa" + title.encode())]
    directory = b""
    data = b""
    for tag, body in fields:
        body += b"\x1e"
        directory += tag.encode() + b"%04d%05d" % (len(body), len(data))
        data += body
    base = 24 + len(directory) + 1
    length = base + len(data) + 1
    leader = b"%05dnam %s22%05d   4500" % (length, b"a" if utf8 else b" ", base)
    return leader + directory + b"\x1e" + data + b"\x1d"


def test_a_bad_length_rejects_one_record_only(tmp_path: Path) -> None:
    bad = b"00x9z" + marc_record("2", "Lost")[5:]
    path = write(tmp_path, "three.mrc", marc_record("1", "First") + bad + marc_record("3", "Third"))
    items = list(read_catalog(path))
    assert [type(i).__name__ for i in items] == ["Imported", "Rejected", "Imported"]
    assert items[1] == Rejected(
        "record 2", "record 2: leader is not valid MARC (bad length '00x9z')"
    )
    assert isinstance(items[2], Imported) and items[2].record.title == "Third"


def test_marc_duplicate_001_and_truncated_tail(tmp_path: Path) -> None:
    content = marc_record("7", "One") + marc_record("7", "Two") + marc_record("8", "Cut")[:40]
    items = list(read_catalog(write(tmp_path, "dups.mrc", content)))
    assert items[1] == Rejected("record 2", "record 2: duplicate id '7', first seen at record 1")
    assert isinstance(items[2], Rejected) and "truncated" in items[2].reason


def test_marc_without_title_is_rejected(tmp_path: Path) -> None:
    (item,) = read_catalog(write(tmp_path, "blank.mrc", marc_record("9", "")))
    assert item == Rejected("record 1", "record 1: no title (245 $a is empty or missing)")


# --- CSV ------------------------------------------------------------------------------------


def test_csv_indonesian_headers_with_bom_and_semicolons(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "katalog.csv",
        "\ufeffKode;Judul;Pengarang;Tahun;Penerbit;ISBN;Subjek;Bahasa\n"
        "B1;Laskar pelangi;Hirata, Andrea;2005;Bentang;979-3062-79-7;Novel | Pendidikan;id\n"
        'B2;"Bumi manusia";"Toer, Pramoedya Ananta";c1980.;Hasta Mitra;;Sejarah;Indonesia\n',
    )
    assert detect_format(path) == "csv"
    by_id = records(path)
    laskar = by_id["B1"]
    assert laskar.title == "Laskar pelangi"
    assert laskar.authors == ("Hirata, Andrea",)
    assert laskar.year == 2005
    assert laskar.publisher == "Bentang"
    assert laskar.isbn == ("9789793062792",)
    assert laskar.subjects == ("Novel", "Pendidikan")
    assert laskar.language == "ind"
    assert by_id["B2"].year == 1980 and by_id["B2"].language == "ind"


def test_csv_english_aliases_lists_and_holdings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "export.csv",
        "ID,Title,Subtitle,Authors,Year,Publisher,Place,Call Number,Barcode,Location,Series\n"
        '1,Python crash course,a hands-on introduction,"Matthes, Eric",2019,No Starch,'
        'San Francisco,005.133 MAT p,"P001; P002",Rak 3,\n',
    )
    (item,) = read_catalog(path)
    assert isinstance(item, Imported) and item.position == "line 2"
    record = item.record
    assert record.title == "Python crash course : a hands-on introduction"
    assert record.authors == ("Matthes, Eric",)
    assert record.place == "San Francisco" and record.call_number == "005.133 MAT p"
    assert record.holdings == (
        Holding(call_number="005.133 MAT p", barcode="P001", location="Rak 3"),
        Holding(call_number="005.133 MAT p", barcode="P002", location="Rak 3"),
    )


def test_csv_slims_export_shape(tmp_path: Path) -> None:
    # SLiMS's CSV export: a separator after every header, authors/topics/items as <a><b>.
    path = write(
        tmp_path,
        "senayan_biblio_export.csv",
        '"title","gmd_name","isbn_issn","publisher_name","publish_year","authors","topics",'
        '"item_code",\n'
        '"Linux In a Nutshell","Text","9780596009304","OReilly","2005",'
        '"<Siever, Ellen><Love, Robert>","<Linux><Computer>","<B00009><B00010>"\n',
    )
    (item,) = read_catalog(path, "csv")
    assert isinstance(item, Imported)
    record = item.record
    assert record.authors == ("Siever, Ellen", "Love, Robert")
    assert record.subjects == ("Linux", "Computer")
    assert [h.barcode for h in record.holdings] == ["B00009", "B00010"]
    assert record.format == "book"
    assert record.rid.startswith("h:")  # no id column: a hash of the row


def test_csv_bad_rows_are_rejected_with_line_numbers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rows.csv",
        "id,title,author\n"
        "1,First,A\n"
        '2,"Two\nlines",B\n'  # a quoted newline: this row spans lines 3-4
        "3,Too,many,fields\n"
        "\n"
        "4,,Nobody\n"
        "1,Again,C\n"
        "5,Short\n",
    )
    items = list(read_catalog(path))
    assert [i.position for i in items] == [
        "line 2",
        "line 3",
        "line 5",
        "line 7",
        "line 8",
        "line 9",
    ]
    assert isinstance(items[1], Imported) and items[1].record.title == "Two lines"
    assert items[2] == Rejected("line 5", "line 5: 4 fields, but the header has 3 columns")
    assert items[3] == Rejected("line 7", "line 7: no title (column 'title' is empty or missing)")
    assert items[4] == Rejected("line 8", "line 8: duplicate id '1', first seen at line 2")
    assert items[5] == Rejected("line 9", "line 9: 2 fields, but the header has 3 columns")


def test_csv_in_cp1252_and_utf16(tmp_path: Path) -> None:
    text = "judul,pengarang\nCafé society,Müller\n"
    for name, raw in (("ansi.csv", text.encode("cp1252")), ("u16.csv", text.encode("utf-16"))):
        (item,) = read_catalog(write(tmp_path, name, raw))
        assert isinstance(item, Imported)
        assert (item.record.title, item.record.authors) == ("Café society", ("Müller",))


def test_csv_without_title_column_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "nope.csv", "name,price\nPen,2\n")
    with pytest.raises(ImportFileError, match=re.escape(str(path))) as err:
        read_catalog(path)
    assert "no title column" in str(err.value)


# --- JSON records -----------------------------------------------------------------------------


def test_jsonl_with_bibrecord_field_names(tmp_path: Path) -> None:
    lines = [
        {
            "id": 7,
            "title": "Ronggeng Dukuh Paruk",
            "authors": ["Tohari, Ahmad"],
            "year": 1982,
            "isbn": ["979-22-0196-3", "not an isbn"],
            "subjects": "Novel; Jawa",
            "language": "id",
            "holdings": [{"barcode": "X1", "location": "Rak 1", "call_number": "899.221 TOH r"}],
        },
        "{not json",
        {"title": "Tanpa id", "author": "Anonim"},
        {"id": "7", "title": "Duplicate"},
        {"id": "9", "judul": ""},
    ]
    text = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n"
    path = write(tmp_path, "records.jsonl", text)
    assert detect_format(path) == "json"
    items = list(read_catalog(path))
    assert [i.position for i in items] == ["line 1", "line 2", "line 3", "line 4", "line 5"]
    first = items[0]
    assert isinstance(first, Imported)
    assert first.record == BibRecord(
        rid="7",
        title="Ronggeng Dukuh Paruk",
        authors=("Tohari, Ahmad",),
        year=1982,
        isbn=("9789792201963",),  # the invalid one is dropped
        subjects=("Novel", "Jawa"),
        language="ind",
        holdings=(Holding(call_number="899.221 TOH r", barcode="X1", location="Rak 1"),),
    )
    assert isinstance(items[1], Rejected) and items[1].reason.startswith("line 2: not valid JSON")
    assert isinstance(items[2], Imported) and items[2].record.rid.startswith("h:")
    assert items[3] == Rejected("line 4", "line 4: duplicate id '7', first seen at line 1")
    assert isinstance(items[4], Rejected) and "no title" in items[4].reason


def test_json_array_cut_short_reports_where(tmp_path: Path) -> None:
    path = write(tmp_path, "cut.json", '[{"id": "1", "title": "A"}, {"id": "2", "title": "B"')
    items = list(read_catalog(path))
    assert isinstance(items[0], Imported)
    assert isinstance(items[1], Rejected) and items[1].position == "record 2"
    assert "the rest of the file was not read" in items[1].reason


def test_json_stream_reads_one_block_at_a_time() -> None:
    class Counting(io.StringIO):
        consumed = 0

        def read(self, size: int | None = -1) -> str:
            text = super().read(size)
            self.consumed += len(text)
            return text

    body = ",\n".join(json.dumps({"id": str(n), "title": "x" * 50}) for n in range(20_000))
    stream = Counting(f"[{body}]")
    values = iter_json(stream)
    first = next(values)
    assert isinstance(first, JsonValue) and first.position == "record 1"
    assert stream.consumed < 200_000 < len(stream.getvalue())
    rest = list(values)
    assert len(rest) == 19_999 and all(isinstance(v, JsonValue) for v in rest)


def test_json_values_split_across_blocks() -> None:
    # every record straddles a 64 KiB block boundary somewhere: strings, escapes, numbers
    items = [{"n": n, "s": 'é\\"' * (n % 97), "f": 1.5e3} for n in range(3000)]
    stream = io.StringIO("\n".join(json.dumps(i) for i in items))
    out = list(iter_json(stream))
    assert [v.value for v in out if isinstance(v, JsonValue)] == items
    assert not [v for v in out if isinstance(v, JsonProblem)]


# --- SQL dump tokenizer ---------------------------------------------------------------------


def dump_events(sql: str) -> list[Row | TableColumns | SqlProblem]:
    return list(iter_dump(io.StringIO(sql)))


def test_sql_values_quotes_escapes_numbers_and_functions() -> None:
    sql = (
        "/*!40101 SET NAMES utf8 */;\n-- a comment; with a semicolon\n"
        "INSERT INTO `t` (`a`, `b`, `c`, `d`) VALUES\n"
        "(1, 'it''s', 'back\\\\slash \\'q\\' \\n', NULL),\n"
        '(-2.5, "dq ""x""", \'semi;colon\', NOW()),\n'
        "(0x4142, _utf8mb4'intro', DATE(NOW()), 'a\\%b');\n"
        "INSERT INTO t VALUES (3,'x','y',TRUE) ON DUPLICATE KEY UPDATE a=VALUES(a);\n"
    )
    rows = [e for e in dump_events(sql) if isinstance(e, Row)]
    assert [r.values for r in rows] == [
        (1, "it's", "back\\slash 'q' \n", None),
        (-2.5, 'dq "x"', "semi;colon", None),
        ("AB", "intro", None, "a\\%b"),
        (3, "x", "y", 1),
    ]
    assert rows[0].columns == ("a", "b", "c", "d") and rows[3].columns is None
    assert [r.line for r in rows] == [4, 5, 6, 7]


def test_sql_create_table_columns_and_problems() -> None:
    sql = (
        "CREATE TABLE IF NOT EXISTS `mst_x` (\n  `x_id` int(11) NOT NULL,\n"
        "  `name` varchar(30) DEFAULT 'a,b',\n  PRIMARY KEY (`x_id`),\n"
        "  KEY `name` (`name`)\n) ENGINE=MyISAM;\n"
        "INSERT INTO y VALUES (1, 2 3);\n"
        "INSERT INTO y VALUES (4);\n"
        "INSERT INTO y VALUES ('never closed);\n"
    )
    events = dump_events(sql)
    assert events[0] == TableColumns("mst_x", ("x_id", "name"))
    assert isinstance(events[1], SqlProblem) and events[1].line == 7
    assert events[2] == Row("y", None, (4,), 8)
    assert isinstance(events[3], SqlProblem) and "unterminated" in events[3].reason


def test_slims_dump_without_column_lists(tmp_path: Path) -> None:
    sql = (
        "CREATE TABLE `biblio` (`biblio_id` int, `title` text, `isbn_issn` varchar(32),"
        " `publisher_id` int, `opac_hide` smallint);\n"
        "INSERT INTO `biblio` VALUES (1,'Sejarah Indonesia modern','0-596-00108-8',1,0),"
        "(2,'Rahasia',NULL,NULL,1),(3,'',NULL,NULL,0),(1,'Again',NULL,NULL,0);\n"
        "INSERT INTO `mst_publisher` VALUES (1,'Gadjah Mada University Press','2007-11-29',NULL);\n"
        "INSERT INTO `biblio_author` VALUES (1,2,2),(1,1,1);\n"
        "INSERT INTO `mst_author` (`author_id`,`author_name`) VALUES (1,'Ricklefs, M. C.'),"
        "(2,'Penerjemah, Satu');\n"
        "INSERT INTO item (item_id, biblio_id, item_code, location_id) VALUES (5,1,'B5','PUS');\n"
        "INSERT INTO mst_location VALUES ('PUS','Perpustakaan Pusat','2020-01-01','2020-01-01');\n"
    )
    items = list(read_catalog(write(tmp_path, "dump.sql", sql)))
    first = items[0]
    assert isinstance(first, Imported)
    assert first.record.title == "Sejarah Indonesia modern"
    assert first.record.authors == ("Ricklefs, M. C.", "Penerjemah, Satu")
    assert first.record.publisher == "Gadjah Mada University Press"
    assert first.record.holdings == (Holding(barcode="B5", location="Perpustakaan Pusat"),)
    assert isinstance(items[1], Rejected) and "opac_hide" in items[1].reason
    assert items[2] == Rejected(
        "biblio_id 3", "biblio_id 3: no title (biblio.title is empty or missing)"
    )
    assert items[3] == Rejected(
        "biblio_id 1", "biblio_id 1: duplicate id '1', first seen at biblio_id 1"
    )


@needs_data
def test_slims_dump_without_any_column_lists_uses_the_known_layouts(
    tmp_path: Path, slims: tuple[list[Imported], list[Rejected]]
) -> None:
    sql = (DATA / "slims" / "sampledata.sql").read_text(encoding="utf-8")
    bare = re.sub(r"(INSERT IGNORE INTO `\w+`) \([^)]*\)", r"\1", sql)
    assert bare.count("` VALUES") == 8
    assert load(write(tmp_path, "bare.sql", bare)) == slims


def test_sql_rows_read_whole_or_token_by_token_agree() -> None:
    plain = (
        "INSERT INTO t VALUES (1,'a''b',NULL,-2.5e1,NOW(),\"x\\\"y\",TRUE),"
        "(2,'',0,3,NULL,'',FALSE);"
    )
    # comments inside the rows force the token-by-token path
    commented = plain.replace("(1,", "(/* c */ 1,").replace("(2,", "(2 -- c\n,")
    fast = [e for e in dump_events(plain) if isinstance(e, Row)]
    slow = [e for e in dump_events(commented) if isinstance(e, Row)]
    assert [r.values for r in fast] == [r.values for r in slow]
    assert fast[0].values == (1, "a'b", None, -25.0, None, 'x"y', 1)


def test_sql_without_biblio_rows_is_not_a_slims_dump(tmp_path: Path) -> None:
    path = write(tmp_path, "other.sql", "INSERT INTO users VALUES (1,'x');\n")
    with pytest.raises(ImportFileError, match="no rows for the biblio table"):
        list(read_catalog(path))


# --- mojibake -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("broken", "fixed"),
    [
        ("DeveloperÃ¢â‚¬â„¢s library", "Developer’s library"),  # twice over
        ("Developerâ€™s library", "Developer’s library"),  # once
        ("cafÃ© â€” tÃ¼rkÃ§e", "café — türkçe"),
        ("Tiáº¿ng Viá»‡t", "Tiếng Việt"),
        ("Ð‘Ð¸Ð±Ð»Ð¸Ð¾Ñ‚ÐµÐºÐ°", "Библиотека"),
    ],
)
def test_mojibake_is_repaired(broken: str, fixed: str) -> None:
    assert repair_mojibake(broken) == fixed


@pytest.mark.parametrize(
    "text",
    [
        "Société linnéenne",
        "naïve café",
        "Ã",
        "Ãx",
        "é’’",
        "ä¸­æ–‡",
        "plain ascii",
        "Müller—Ärger",
        "“Fuß”",
        "«CAFÉ»",
        "¡ESPAÑ”!",
        "PERCIÒ”",
    ],
)
def test_text_that_is_not_mojibake_is_left_alone(text: str) -> None:
    assert repair_mojibake(text) == text


REAL_WORLD = st.text(alphabet=st.sampled_from([*"abc XYZ,.'-éèüñçöà’“”—…€ß"]), max_size=40)


@given(REAL_WORLD)
def test_mojibake_round_trip(text: str) -> None:
    once = text.encode("utf-8").decode("cp1252", "replace")
    if "\ufffd" not in once:  # cp1252 leaves five bytes undefined; those cannot be mojibake
        assert repair_mojibake(once) == text
        twice = once.encode("utf-8").decode("cp1252", "replace")
        if "\ufffd" not in twice:
            assert repair_mojibake(twice) == text
    assert repair_mojibake(text) == text


def test_split_list_forms() -> None:
    assert split_list("a; b | c") == ["a", "b", "c"]
    assert split_list("<Siever, Ellen><Love, Robert>") == ["Siever, Ellen", "Love, Robert"]
    assert split_list("Hunt, Andrew") == ["Hunt, Andrew"]


# --- files that cannot be read --------------------------------------------------------------


def test_missing_unknown_empty_and_mismatched_files(tmp_path: Path) -> None:
    missing = tmp_path / "absent.mrc"
    with pytest.raises(ImportFileError, match=re.escape(str(missing))):
        read_catalog(missing)
    with pytest.raises(ImportFileError, match="is a directory"):
        read_catalog(tmp_path)
    empty = write(tmp_path, "empty.csv", "  \n")
    with pytest.raises(ImportFileError, match="empty"):
        read_catalog(empty)
    unknown = write(tmp_path, "notes.txt", "Just some notes\nabout nothing\n")
    with pytest.raises(ImportFileError, match=re.escape(str(unknown))):
        detect_format(unknown)
    with pytest.raises(ImportFileError, match="cannot tell the format"):
        read_catalog(unknown)
    html = write(tmp_path, "page.xml", "<html><body>hi</body></html>")
    with pytest.raises(ImportFileError, match="not MARCXML"):
        read_catalog(html)
    marc = write(tmp_path, "one.mrc", marc_record("1", "T"))
    with pytest.raises(ImportFileError, match=r"this is not CSV: it looks like MARC 21"):
        read_catalog(marc, "csv")
    with pytest.raises(ImportFileError, match="this is not MARC 21"):
        read_catalog(write(tmp_path, "x.mrc", "judul\nA\n"), "marc")
    with pytest.raises(ImportFileError, match="unknown format 'pdf'"):
        read_catalog(marc, "pdf")
    assert FORMATS == ("auto", "marc", "marcxml", "marcjson", "csv", "json", "slims")


@needs_data
def test_plain_json_named_as_marcjson_is_refused() -> None:
    with pytest.raises(ImportFileError, match="this is not JSON records: it looks like MARC-in"):
        read_catalog(MARC / "batch.json", "json")


def fuzz_items(path: Path, fmt: str) -> Iterator[Result]:
    try:
        yield from read_catalog(path, fmt)
    except ImportFileError:
        return


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    blob=st.binary(max_size=600),
    fmt=st.sampled_from(["marc", "marcxml", "marcjson", "json", "csv", "slims", "auto"]),
)
def test_garbage_never_raises_out_of_the_iterator(tmp_path: Path, blob: bytes, fmt: str) -> None:
    prefixes = {
        "marc": marc_record("1", "Ok"),
        "marcxml": b"<collection><record><leader>",
        "marcjson": b'[{"leader": "00000nam  2200000   4500", "fields": [',
        "json": b'[{"title": "x"},',
        "csv": b"title,author\n",
        "slims": b"INSERT INTO biblio VALUES (1,'",
        "auto": b"",
    }
    path = write(tmp_path, "fuzz.bin", prefixes[fmt] + blob)
    for item in fuzz_items(path, fmt):
        assert isinstance(item, Imported | Rejected)
