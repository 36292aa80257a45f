"""The union list of serials: holdings statements read into volumes and years, merged across
libraries with the gaps shown; real MARC, CSV and JSON files through the real importers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from pymarc import Field, Indicators, Leader, Record, Subfield

from peernode.bundles import export_bundle, import_bundle
from peernode.catalog import import_catalog
from peernode.cli import cli
from peernode.holdings_statements import Span, merge, parse_statement
from peernode.home import Home
from peernode.serials import union_list

from .nodes import offline_home, trusting

# --- reading statements ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "volumes", "years"),
    [
        ("v.1(1990)-v.12(2001)", [(1, 12)], [(1990, 2001)]),
        ("v.1-5 (1990-1994)", [(1, 5)], [(1990, 1994)]),
        ("1990-2001", [], [(1990, 2001)]),
        ("v.1 (1990)-", [(1, None)], [(1990, None)]),
        ("Vol. 1, no. 1 (Jan. 1990)-v. 12, no. 4 (Dec. 2001)", [(1, 12)], [(1990, 2001)]),
        ("v.1-5 (1990-1994), v.8-10 (1997-1999)", [(1, 5), (8, 10)], [(1990, 1994), (1997, 1999)]),
        ("1990, 1992-1995", [], [(1990, 1990), (1992, 1995)]),
        ("Vol. 1 (1990) s/d Vol. 5 (1994)", [(1, 5)], [(1990, 1994)]),
        ("Th. XII (2001)-Th. XV (2004)", [(12, 15)], [(2001, 2004)]),
        ("1990/91-1994/95", [], [(1990, 1995)]),
        ("v.1-12 (1990-2001) lacking v.7", [(1, 6), (8, 12)], [(1990, 2001)]),
        (
            "v.1 (1990)-v.3 (1992) v.5 (1994)-v.8 (1997)",
            [(1, 3), (5, 8)],
            [(1990, 1992), (1994, 1997)],
        ),
        ("Jil. 3 no. 2 (Mei 2005) - sekarang", [(3, None)], [(2005, None)]),
        ("v.1, no.1-4", [(1, 1)], []),
        ("2001-2005; 2008-", [], [(2001, 2005), (2008, None)]),
    ],
)
def test_statements_read_into_volume_and_year_ranges(
    text: str, volumes: list[tuple[int, int | None]], years: list[tuple[int, int | None]]
) -> None:
    statement = parse_statement(text)
    assert [(s.start, s.end) for s in statement.volumes] == volumes
    assert [(s.start, s.end) for s in statement.years] == years
    assert not statement.flagged, statement.unread
    assert statement.text == text


@pytest.mark.parametrize(
    ("text", "unread"),
    [
        ("Some issues missing", ["Some issues missing"]),
        ("beberapa nomor hilang", ["beberapa nomor hilang"]),
        ("v.1–5 plus supplements", ["v.1–5 plus supplements"]),
        ("v.3-9 (1993-1999); Ünïcödé", ["Ünïcödé"]),
        ("99999999999999999999", ["99999999999999999999"]),
        ("x" * 5000, []),  # too long to read: kept whole
    ],
)
def test_what_cannot_be_read_is_kept_verbatim_and_flagged(text: str, unread: list[str]) -> None:
    statement = parse_statement(text)
    assert statement.flagged
    if len(text) > 1000:  # too long to read at all: the whole text, as written
        assert statement.unread == (text,)
    else:
        assert list(statement.unread) == unread
    assert statement.text == text


def test_merge_shows_the_network_span_and_its_gaps() -> None:
    a, b = parse_statement("v.1-5 (1990-1994)"), parse_statement("v.4-12 (1993-2001)")
    coverage = merge([a, b])
    assert coverage.years == (Span(1990, 2001),) and coverage.year_gaps == ()
    assert coverage.sentence() == "network holds 1990-2001 with no gap; v.1-12 complete"
    gap = merge([parse_statement("1990-1994"), parse_statement("1997-2001")])
    assert gap.year_gaps == (Span(1995, 1996),)
    assert gap.sentence() == "network holds 1990-2001, gap 1995-1996"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_reading_never_raises_and_keeps_the_text(text: str) -> None:
    statement = parse_statement(text)
    assert statement.text == " ".join(text.split())
    for span in (*statement.volumes, *statement.years):
        assert span.end is None or span.start <= span.end
    assert statement.summary() or not text.strip()  # something to show, whatever the input
    merge([statement]).sentence()


_STATEMENT_TEXT = st.one_of(
    st.text(alphabet="v.0123456789()-,; lackingno", max_size=40),
    st.builds(
        lambda v1, v2, y1, y2: f"v.{v1}-{v1 + v2} ({y1}-{y1 + y2})",
        st.integers(1, 60),
        st.integers(0, 20),
        st.integers(1900, 2030),
        st.integers(0, 20),
    ),
    st.text(max_size=40),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_STATEMENT_TEXT, max_size=8), st.randoms(use_true_random=False))
def test_merge_is_the_same_in_any_order(texts: list[str], rng: object) -> None:
    statements = [parse_statement(t) for t in texts]
    shuffled = list(statements)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    assert merge(statements) == merge(shuffled)
    assert merge(statements) == merge(list(reversed(statements)))


# --- the union list over real imports --------------------------------------------------------


def _marc_file(path: Path) -> Path:
    """A real ISO 2709 file: a serial with 852 + 866, one with 863 only, one with 362 only."""
    records = []
    for rid, title, issn, extra in [
        (
            "s-1",
            "Jurnal Ekonomi Indonesia",
            "0126-155X",
            [
                Field("852", Indicators(" ", " "), [Subfield("b", "Rak Majalah")]),
                Field("866", Indicators(" ", "0"), [Subfield("a", "v.1(1990)-v.5(1994)")]),
            ],
        ),
        (
            "s-2",
            "Majalah Arkeologi",
            "",
            [
                Field(
                    "863", Indicators("4", "0"), [Subfield("a", "1-8"), Subfield("i", "1980-1987")]
                )
            ],
        ),
        (
            "s-3",
            "Buletin Perpustakaan",
            "0215-0131",
            [Field("362", Indicators("0", " "), [Subfield("a", "Vol. 1, no. 1 (Jan. 1995)-")])],
        ),
    ]:
        record = Record(force_utf8=True)
        record.leader = Leader(str(record.leader)[:6] + "as" + str(record.leader)[8:])
        record.fields.append(Field(tag="001", data=rid))
        record.fields.append(Field("245", Indicators("0", "0"), [Subfield("a", title)]))
        if issn:
            record.fields.append(Field("022", Indicators(" ", " "), [Subfield("a", issn)]))
        for field in extra:
            record.fields.append(field)
        records.append(record.as_marc())
    path.write_bytes(b"".join(records))
    return path


def _two_libraries(tmp_path: Path) -> tuple[Home, Home]:
    """A imports MARC; B imports CSV and JSON; A receives B's entries in a bundle."""
    a, b = offline_home(tmp_path, "Perpustakaan A"), offline_home(tmp_path, "Perpustakaan B")
    import_catalog(a.open_store(), a.key, _marc_file(tmp_path / "a.mrc"))
    csv = tmp_path / "b.csv"
    csv.write_text(
        "id,title,issn,format,holdings_statement,location\n"
        'b-1,Jurnal ekonomi Indonesia,0126155X,jurnal,"v.4-12 (1993-2001), v.14 (2003)",Lt. 2\n'
        "b-2,Majalah Arkeologi,,majalah,v.10-12 (1989-1991),\n"
        "b-3,Sejarah Maluku,,buku,,\n",
        "utf-8",
    )
    import_catalog(b.open_store(), b.key, csv)
    more = tmp_path / "b.json"
    more.write_text(
        json.dumps(
            [
                {
                    "id": "b-4",
                    "title": "Warta Desa",
                    "format": "serial",
                    "holdings": [{"location": "Gudang", "summary": "beberapa nomor hilang"}],
                }
            ]
        ),
        "utf-8",
    )
    import_catalog(b.open_store(), b.key, more)
    export_bundle(b.open_store(), tmp_path / "b.pnb", {})
    import_bundle(a.open_store(), tmp_path / "b.pnb", trusting(a, b))
    return a, b


def test_union_list_merges_holders_by_issn_and_shows_gaps(tmp_path: Path) -> None:
    a, _ = _two_libraries(tmp_path)
    entries = {e.title: e for e in union_list(a.open_store().conn)}
    assert set(entries) == {
        "Buletin Perpustakaan",
        "Jurnal Ekonomi Indonesia",
        "Majalah Arkeologi",
        "Warta Desa",
    }  # "Sejarah Maluku", a book, is not a serial
    journal = entries["Jurnal Ekonomi Indonesia"].as_dict()
    assert journal["id"] == "0126-155X"
    assert [(h["library"], h["summary"]) for h in journal["holders"]] == [
        ("Perpustakaan A", "v.1-5 (1990-1994)"),
        ("Perpustakaan B", "v.4-12, 14 (1993-2001, 2003)"),
    ]
    assert journal["holders"][0]["statements"][0]["location"] == "Rak Majalah"
    assert (
        journal["coverage"]["summary"] == "network holds 1990-2003, gap 2002; v.1-14, missing v.13"
    )
    # No ISSN: grouped by the union key (same title), from a MARC 863 and a CSV column.
    arkeologi = entries["Majalah Arkeologi"].as_dict()
    assert arkeologi["coverage"]["year_gaps"] == [{"from": 1988, "to": 1988}]
    # 362 alone: the publication's dates, said to be so.
    buletin = entries["Buletin Perpustakaan"].as_dict()["holders"][0]["statements"][0]
    assert buletin["years"] == [{"from": 1995, "to": None}]
    # Unreadable: kept as written, flagged.
    warta = entries["Warta Desa"].as_dict()
    assert warta["flagged"] and warta["holders"][0]["statements"][0]["unread"] == [
        "beberapa nomor hilang"
    ]


def test_serials_command_filters_and_prints_json(tmp_path: Path) -> None:
    a, _ = _two_libraries(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli, ["--home", str(a.path), "serials", "ekonomi", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [e["title"] for e in data] == ["Jurnal Ekonomi Indonesia"]
    by_issn = runner.invoke(cli, ["--home", str(a.path), "serials", "0126155X"])
    assert "network holds 1990-2003, gap 2002" in by_issn.output
    text = runner.invoke(cli, ["--home", str(a.path), "serials"]).output
    assert '! not fully read: "beberapa nomor hilang"' in text


def test_summary_survives_marc_export_and_import(tmp_path: Path) -> None:
    from peernode.exporters import export_catalog

    a, _ = _two_libraries(tmp_path)
    out = tmp_path / "out.mrc"
    store = a.open_store()
    export_catalog(store.conn, out, "marc", author=a.public_key)
    c = offline_home(tmp_path, "Perpustakaan C")
    import_catalog(c.open_store(), c.key, out)
    entries = {e.title: e for e in union_list(c.open_store().conn)}
    holder = entries["Jurnal Ekonomi Indonesia"].holders[0]
    assert holder.summary() == "v.1-5 (1990-1994)"
