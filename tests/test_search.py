"""Search: fielded and combined queries, diacritics, ISBN forms, ranking, facets, pages, filters,
removed libraries, hostile text; on real Library of Congress records held by three libraries."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import urllib.error
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import example, given, settings
from hypothesis import strategies as st

from peernode import db as dbmod
from peernode.recordrows import record_row_values
from peernode.search import (
    CANDIDATES,
    Query,
    QueryError,
    match_expression,
    parse_query,
    run_query,
    search,
)
from peernode.store import Store
from protocol import CATALOG, PROFILE, LogKey, node_id, public_bytes, sign_entry

from .nodes import ROOT, SHARED_DATA, NodeProc

BOOKS = SHARED_DATA / "loc-books" / "books.json"
MakeNode = Callable[[str], NodeProc]


def _wire(book: dict[str, Any], **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"title": book["title"].rstrip(" /:;,.")}
    if book.get("author"):
        record["authors"] = [book["author"].rstrip(",")]
    if book.get("subjects"):
        record["subjects"] = book["subjects"][:5]
    if book.get("publisher"):
        record["publisher"] = book["publisher"].rstrip(" ,:")
    return {**record, **extra}


class Replica:
    """A node's store holding its own records and those of other libraries (signed entries)."""

    def __init__(self, path: Path) -> None:
        self.store = Store(dbmod.connect(path), b"")
        self.keys: dict[str, Ed25519PrivateKey] = {}
        self.seqs: dict[tuple[str, str], int] = {}

    @property
    def conn(self) -> sqlite3.Connection:
        return self.store.conn

    def library(self, name: str) -> bytes:
        if name not in self.keys:
            self.keys[name] = Ed25519PrivateKey.generate()
            self._sign(name, "profile", PROFILE, {"name": name})
        return public_bytes(self.keys[name])

    def put(self, name: str, records: dict[str, dict[str, Any]]) -> None:
        self.library(name)
        ops = [["put", rid, record] for rid, record in records.items()]
        self._sign(name, "catalog", CATALOG, {"ops": ops})

    def delete(self, name: str, rid: str) -> None:
        self._sign(name, "catalog", CATALOG, {"ops": [["del", rid]]})

    def _sign(self, name: str, log: str, kind: str, body: dict[str, Any]) -> None:
        key = self.keys[name]
        seq = self.seqs.get((name, log), 0) + 1
        prev = self.store.head(LogKey(public_bytes(key), log))
        entry = sign_entry(
            key,
            log=log,
            seq=seq,
            prev=prev.hash if prev else None,
            timestamp=1_700_000_000_000 + seq,
            kind=kind,
            body=body,
        )
        self.store.apply(LogKey(public_bytes(key), log), [entry])
        self.seqs[(name, log)] = seq


@pytest.fixture(scope="module")
def books() -> list[dict[str, Any]]:
    return list(json.loads(BOOKS.read_text("utf-8")))


@pytest.fixture
def replica(tmp_path: Path, books: list[dict[str, Any]]) -> Replica:
    """Three libraries: 600 real records split between them, 100 of them held by two."""
    rep = Replica(tmp_path / "node.db")
    years = range(1950, 2026)
    for index, (name, lang) in enumerate([("Kota", "eng"), ("Pulau", "eng"), ("Desa", "ind")]):
        part = {
            f"loc{b['id']}": _wire(b, year=years[i % len(years)], language=lang, format="book")
            for i, b in enumerate(books[index * 200 : (index + 1) * 200])
        }
        if index == 1:  # Pulau also holds 100 of Kota's records: the same editions
            part.update(
                {
                    f"loc{b['id']}": _wire(
                        b, year=years[i % len(years)], language="eng", format="book"
                    )
                    for i, b in enumerate(books[:100])
                }
            )
        rep.put(name, part)
    return rep


def titles(hits: list[Any]) -> list[str]:
    return [h.title for h in hits]


def test_fielded_author_title_subject_series_publisher(
    replica: Replica, books: list[dict[str, Any]]
) -> None:
    replica.put(
        "Desa",
        {
            "laskar": {
                "title": "Laskar pelangi",
                "authors": ["Liye, Tere", "Hirata, Andrea"],
                "subjects": ["Novel Indonesia"],
                "series": ["Tetralogi Laskar Pelangi"],
                "publisher": "Bentang Pustaka",
                "year": 2005,
            },
            "bumi": {
                "title": "Bumi manusia",
                "authors": ["Toer, Pramoedya Ananta"],
                "subjects": ["Novel Indonesia", "Sejarah"],
                "publisher": "Hasta Mitra",
                "year": 1980,
            },
        },
    )
    assert titles(search(replica.conn, 'author:"tere liye"')) == ["Laskar pelangi"]
    assert titles(search(replica.conn, "author:liye,tere")) == ["Laskar pelangi"]
    assert titles(search(replica.conn, "title:manusia")) == ["Bumi manusia"]
    assert titles(search(replica.conn, 'series:"laskar pelangi"')) == ["Laskar pelangi"]
    assert titles(search(replica.conn, "penerbit:bentang")) == ["Laskar pelangi"]
    assert sorted(titles(search(replica.conn, 'subject:"novel indonesia"'))) == [
        "Bumi manusia",
        "Laskar pelangi",
    ]
    # Combined: author + subject, and a field with free words.
    assert titles(search(replica.conn, "author:pramoedya subject:sejarah")) == ["Bumi manusia"]
    assert search(replica.conn, "author:liye subject:sejarah") == []
    assert titles(search(replica.conn, "pengarang:hirata laskar")) == ["Laskar pelangi"]
    # A title word is not an author.
    assert search(replica.conn, "author:laskar") == []
    # Free text finds a word in any field, a real record's author included.
    author = books[0]["author"].split(",")[0]
    assert any(author in " ".join(h.authors) for h in search(replica.conn, author))


def test_year_range_and_filters(replica: Replica) -> None:
    results = run_query(replica.conn, parse_query("the year:2000-2009"))
    assert results.hits and all(2000 <= (h.year or 0) <= 2009 for h in results.hits)
    assert set(results.facets["decade"]) == {"2000s"}
    only_desa = run_query(replica.conn, parse_query("the", library="Desa"))
    assert only_desa.hits
    assert all(h.holdings[0].library == "Desa" for h in only_desa.hits)
    assert set(only_desa.facets["library"]) == {node_id(replica.library("Desa"))}
    assert only_desa.library_names == {node_id(replica.library("Desa")): "Desa"}
    ind = run_query(replica.conn, parse_query("the language:IND"))
    assert ind.total == only_desa.total
    assert run_query(replica.conn, parse_query("the format:ebook")).hits == []
    with pytest.raises(QueryError, match="year:20x"):
        parse_query("the year:20x")
    with pytest.raises(QueryError, match="after the second"):
        parse_query("the year:2015-2010")
    with pytest.raises(QueryError, match="no library"):
        run_query(replica.conn, parse_query("the", library="Nowhere"))
    assert parse_query("x year:-1990").year_to == 1990
    assert parse_query("x tahun:2000-").year_from == 2000


def test_diacritics_and_case_do_not_matter(replica: Replica) -> None:
    replica.put("Kota", {"an": {"title": "Ánanta Çatatan", "authors": ["Ṭoer, Prámoedya"]}})
    for query in ("ananta catatan", "ÁNANTA", "author:pramoedya", "Ánanta çatatan", "toer"):
        assert titles(search(replica.conn, query)) == ["Ánanta Çatatan"], query
    decomposed = "A\u0301nanta"  # A + combining acute, as some keyboards send it
    assert titles(search(replica.conn, decomposed)) == ["Ánanta Çatatan"]


def test_isbn_in_any_form_and_issn(replica: Replica) -> None:
    replica.put("Kota", {"py": {"title": "Learning Python", "isbn": ["9780596001087"]}})
    replica.put("Pulau", {"py2": {"title": "Learning Python.", "isbn": ["9780596001087"]}})
    replica.put("Desa", {"j": {"title": "Jurnal Perpustakaan", "issn": ["0126-0979"]}})
    for query in ("0-596-00108-8", "0596001088", "978-0-596-00108-7", "isbn:0596001088"):
        hits = search(replica.conn, query)
        assert titles(hits) == ["Learning Python"], query
        assert sorted(h.library for h in hits[0].holdings) == ["Kota", "Pulau"]
    for query in ("0126-0979", "issn:01260979"):
        assert titles(search(replica.conn, query)) == ["Jurnal Perpustakaan"], query
    with pytest.raises(QueryError, match="isbn:0-596-00108-9"):
        parse_query("isbn:0-596-00108-9")  # wrong check digit
    with pytest.raises(QueryError, match="ISSN"):
        parse_query("issn:12")


def test_ranking_puts_the_obvious_hit_first(replica: Replica) -> None:
    replica.put(
        "Kota",
        {
            "long": {"title": "A history of Indonesia in the twentieth century and after"},
            "subj": {"title": "Pulau-pulau", "subjects": ["Indonesia", "History"]},
            "exact": {"title": "History of Indonesia", "authors": ["Ricklefs, M. C."]},
        },
    )
    assert titles(search(replica.conn, "history of indonesia"))[0] == "History of Indonesia"
    # Title words count over subject words.
    order = titles(search(replica.conn, "indonesia history"))
    assert order.index("A history of Indonesia in the twentieth century and after") < order.index(
        "Pulau-pulau"
    )
    # More holders, more important: the same title twice, the edition held by two libraries wins.
    replica.put("Kota", {"one": {"title": "Tenun ikat", "year": 1990}})
    replica.put("Kota", {"two": {"title": "Tenun ikat", "year": 2001, "isbn": ["9789794613269"]}})
    replica.put("Desa", {"two": {"title": "Tenun ikat", "year": 2001, "isbn": ["9789794613269"]}})
    hits = search(replica.conn, "tenun ikat")
    assert [h.year for h in hits] == [2001, 1990]


def test_facets_count_union_entries_and_pages_are_stable(replica: Replica) -> None:
    results = run_query(replica.conn, parse_query("new", per_page=7))
    assert results.total_exact and results.facets_exact
    # Facet counts equal what SQL says: union entries (match keys) per library holding them.
    expected = dict(
        replica.conn.execute(
            "SELECT l.name, count(DISTINCT r.match_key) FROM records r JOIN libraries l "
            "ON l.author = r.author WHERE r.id IN (SELECT rowid & ((1 << 40) - 1) FROM "
            "search_fts WHERE search_fts MATCH 'new') GROUP BY l.name"
        ).fetchall()
    )
    by_name = {results.library_names[k]: v for k, v in results.facets["library"].items()}
    assert by_name == expected
    assert (
        results.total
        == replica.conn.execute(
            "SELECT count(DISTINCT match_key) FROM records WHERE id IN "
            "(SELECT rowid & ((1 << 40) - 1) FROM search_fts WHERE search_fts MATCH 'new')"
        ).fetchone()[0]
    )
    assert sum(results.facets["decade"].values()) == results.total
    # Pages: no entry twice, none lost, same order on every run.
    seen: list[str] = []
    for page in range(1, 100):
        got = run_query(replica.conn, parse_query("new", page=page, per_page=7))
        assert got == run_query(replica.conn, parse_query("new", page=page, per_page=7))
        seen += [f"{h.title}|{h.year}|{h.isbn}" for h in got.hits]
        if len(got.hits) < 7:
            break
    assert len(seen) == len(set(seen)) == results.total
    shared = [h for h in search(replica.conn, "new", 1000) if len(h.holdings) == 2]
    assert {tuple(sorted(x.library for x in h.holdings)) for h in shared} == {("Kota", "Pulau")}


def test_facets_over_a_bounded_window_say_so(tmp_path: Path) -> None:
    rep = Replica(tmp_path / "big.db")
    records = {
        f"r{i}": {"title": f"Buku sejarah nomor {i}", "year": 1950 + i % 70}
        for i in range(CANDIDATES + 300)
    }
    rep.put("Kota", records)
    results = run_query(rep.conn, parse_query("sejarah"))
    assert not results.facets_exact and not results.total_exact
    assert sum(results.facets["year"].values()) == CANDIDATES
    assert results.total == CANDIDATES + 300  # one record per entry: the estimate is exact
    # Shortest titles first (static rank): "nomor 0".."nomor 9" before any two-digit number.
    assert [h.title for h in results.hits[:10]] == [f"Buku sejarah nomor {i}" for i in range(10)]
    # Filters are exact even so: year 1950 is every 70th record.
    in_1950 = run_query(rep.conn, parse_query("sejarah year:1950"))
    assert in_1950.total_exact and in_1950.total == len(range(0, CANDIDATES + 300, 70))


def test_removed_and_deleted_records_are_not_offered(replica: Replica) -> None:
    replica.put("Pulau", {"gelap": {"title": "Habis gelap terbitlah terang"}})
    assert search(replica.conn, "gelap")
    key = replica.library("Pulau")
    replica.conn.execute("INSERT INTO blocks (key, added_at, reason) VALUES (?, 0, 'test')", (key,))
    assert search(replica.conn, "gelap") == []
    shared = search(replica.conn, "the", 1000)
    assert all(h.library != "Pulau" for hit in shared for h in hit.holdings)
    replica.conn.execute("DELETE FROM blocks")
    replica.delete("Pulau", "gelap")
    assert search(replica.conn, "gelap") == []
    # A changed title is found by its new words only.
    replica.put("Pulau", {"t": {"title": "Judul lama"}})
    replica.put("Pulau", {"t": {"title": "Judul baru"}})
    assert search(replica.conn, "lama") == [] and titles(search(replica.conn, "baru")) == [
        "Judul baru"
    ]


def test_prefix_fallback_finds_a_cut_word(replica: Replica) -> None:
    replica.put("Kota", {"m": {"title": "Sejarah Maluku"}})
    assert titles(search(replica.conn, "sejarah malu")) == ["Sejarah Maluku"]


def test_migration_builds_the_index_for_existing_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for migration in dbmod.MIGRATIONS[:9]:  # a node as it was before _v10
        migration(__import__("sqlite_utils").Database(conn))
    conn.execute("PRAGMA user_version = 9")
    from peernode.records import encode_record, record_digest

    wire = {
        "title": "Sejarah Maluku",
        "series": ["Seri Nusantara"],
        "language": "ind",
        "format": "book",
        "issn": ["0126-0979"],
    }
    blob = encode_record("m1", wire)
    conn.execute(
        "INSERT INTO records (author, rid, title, authors, subjects, publisher, isbn, year, data, "
        "digest, match_key, source, seq) VALUES (?, 'm1', 'Sejarah Maluku', '[]', '[]', '', "
        "'[]', NULL, ?, ?, 'k', NULL, 1)",
        (b"\x01" * 32, blob, record_digest(blob)),
    )
    conn.close()
    db = dbmod.connect(path)
    assert titles(search(db.conn, 'series:"seri nusantara"')) == ["Sejarah Maluku"]
    assert titles(search(db.conn, "maluku language:ind")) == ["Sejarah Maluku"]
    assert titles(search(db.conn, "0126-0979")) == ["Sejarah Maluku"]


@pytest.mark.parametrize(
    "text",
    [
        '"',
        "*",
        "NEAR(a b)",
        "a OR",
        "-x",
        "^",
        "((",
        "' OR 1=1 --",
        "\x00",
        'title:"',
        "author:",
        "title:(x OR y)",
        '"a" AND "b"',
        "{title}: x",
        "x:y:z",
        "AND OR NOT",
        "year:",
        ":::",
    ],
)
def test_hostile_queries_never_reach_fts_syntax(replica: Replica, text: str) -> None:
    try:
        query = parse_query(text)
    except QueryError:
        return
    run_query(replica.conn, query)  # never sqlite3.OperationalError


# Words and field names the parser knows, mixed into arbitrary text, so fuzzing reaches the
# field, phrase, ISBN and year paths and not only plain words.
_PIECES = st.sampled_from(
    ['"', ":", "-", "*", "(", ")", " ", "title:", "author:", "year:", "isbn:", "issn:",
     "library:", "language:", "format:", "subject:", "NEAR", "OR", "AND", "NOT", "^", "{", "}",
     "2010-2015", "0-596-00108-8", "0126-0979", "kota", "ind", "Ánanta", "\x00", "..", "_"]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=12), _PIECES), max_size=24).map("".join))
@example('library:kota language:ind "a b" year:2010-2015 isbn:0-596-00108-8 x*')
def test_any_text_is_a_query_or_a_clear_error(text: str) -> None:
    """Any string is a Query or a QueryError naming the problem; running a Query never raises
    sqlite3.OperationalError (FTS5 syntax) or anything else."""
    try:
        query = parse_query(text)
        results = run_query(_FUZZ_DB, query)
    except QueryError as exc:
        assert str(exc)
        return
    assert isinstance(query, Query) and isinstance(results.hits, list)
    if query.searchable:
        for prefix, title_only in ((True, False), (False, True)):
            expression = match_expression(query, prefix=prefix, title_only=title_only)
            _FUZZ_DB.execute(
                "SELECT count(*) FROM search_fts WHERE search_fts MATCH ?", (expression,)
            )


def _fuzz_db() -> sqlite3.Connection:
    """A replica with one library, "Kota", holding one record the fuzzed queries can hit."""
    store = Store(dbmod.connect(Path(":memory:")), b"")
    store.conn.execute(
        "INSERT INTO libraries (author, name, isil, contact, seq) VALUES (?, 'Kota', '', '', 1)",
        (b"\x07" * 32,),
    )
    record = {"title": "Ánanta a b", "language": "ind", "year": 2012, "isbn": ["9780596001087"]}
    store.put_rows(store.conn, [record_row_values(b"\x07" * 32, "r1", record, 1, None)])
    return store.conn


_FUZZ_DB = _fuzz_db()


def test_daemon_api_and_cli_page_filter_and_facet(make_node: MakeNode) -> None:
    node = make_node("Library A")
    node.cli("catalog", "import", str(SHARED_DATA / "slims" / "sampledata.sql"))
    node.start()
    first = node.api("/api/search?q=and&per_page=3")
    assert len(first["hits"]) == 3 and first["page"] == 1 and first["total_exact"]
    assert first["total"] >= 6 and set(first["facets"]) >= {"library", "language", "decade"}
    assert first["library_names"] == {node.status()["node_id"]: "Library A"}
    second = node.api("/api/search?q=and&per_page=3&page=2")
    assert not {h["title"] for h in first["hits"]} & {h["title"] for h in second["hits"]}
    old = node.api("/api/search?q=and&limit=2")  # the older parameter still works
    assert len(old["hits"]) == 2
    for bad, what in [("page=0", "page"), ("year_from=abc", "year_from")]:
        with pytest.raises(urllib.error.HTTPError) as refused:
            node.api(f"/api/search?q=and&{bad}")
        assert refused.value.code == 400 and what in refused.value.read().decode()
    with pytest.raises(urllib.error.HTTPError) as refused:
        node.api("/api/search?q=isbn:123")
    assert refused.value.code == 400 and "isbn:123" in refused.value.read().decode()
    none = node.api("/api/search?q=and&library=Library%20A&year_from=3000")
    assert none["hits"] == [] and none["total"] == 0
    # The CLI: the same query syntax, --page, --facets, filters; errors say what is wrong.
    text = node.cli("search", "and", "--limit", "3", "--page", "2", "--facets").stdout
    assert text.startswith("4. ") and "entries; page 2." in text and "library: Library A" in text
    data = json.loads(node.cli("search", "title:and", "--facets", "--json").stdout)
    assert data["hits"] and all(" and " in f" {h['title'].lower()} " for h in data["hits"])
    refused_cli = node.cli("search", "and year:nineteen", check=False)
    assert refused_cli.returncode == 1 and "year:nineteen" in refused_cli.stderr
    assert json.loads(node.cli("search", "and", "--json", "--library", "Library A").stdout)


@pytest.mark.slow
def test_quick_search_bench_measures_peernode_beside_bare_fts5(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.search", "--quick", "--work", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split(" | ") for line in result.stdout.splitlines() if line.startswith("| 4,")]
    categories = {row[1] for row in rows if len(row) > 8}
    assert {"rare word", "common word", "author", "author + subject", "ISBN-10, hyphens"} <= (
        categories
    )
    assert {"year range + library", "2-word phrase", "**all queries**"} <= categories
    for row in rows:
        if len(row) > 8:
            assert all(float(cell) >= 0 for cell in row[2:8]), row
            assert row[1] == "**all queries**" or int(row[8].split()[0].replace(",", "")) > 0, row
    assert "Goal: p95 < 20 ms" in result.stdout


def test_a_title_match_is_not_crowded_out_by_subject_matches(tmp_path: Path) -> None:
    rep = Replica(tmp_path / "crowd.db")
    records: dict[str, dict[str, Any]] = {
        f"s{i}": {"title": f"Buku {i}", "subjects": ["Sejarah"]} for i in range(CANDIDATES + 50)
    }
    long_title = "Perjalanan panjang sebuah bangsa: sejarah kepulauan dari masa ke masa"
    records["t"] = {"title": long_title}
    rep.put("Kota", records)
    results = run_query(rep.conn, parse_query("sejarah"))
    assert not results.total_exact  # more matches than candidates: the title scan found it
    assert results.hits[0].title == long_title
    assert titles(search(rep.conn, "sejarah", 3))[1:] == ["Buku 0", "Buku 1"]
