"""Search latency on a large replica: peernode's ranked, fielded, faceted search beside a bare
FTS5 ``ORDER BY rank`` query over the same rows, for a fixed mix of queries.

The replica is built once per (size, seed, index version) under bench-data/ and reused: records
from bench/generate.py spread over six libraries, a fifth of them held by a second library too,
written through the node's own row function and upsert (Store.put_rows), so the triggers of
migration _v10 build the index exactly as a node's write path does. The baseline is a plain
FTS5 table over the same columns (rowid = records.id, arrival order) with FTS5's default bm25
ranking, as peernode searched before _v10.

    python -m bench.search --records 1000000      # print the section; --quick: 5,000 records
"""

from __future__ import annotations

import argparse
import random
import re
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import sqlite_utils

from peernode import db as dbmod
from peernode.recordrows import record_row_values
from peernode.rowindex import index_search, last_id, upsert_records
from peernode.search import (
    CANDIDATES,
    COUNT_BUDGET_S,
    TITLE_CANDIDATES,
    Query,
    match_expression,
    parse_query,
    run_query,
)
from peernode.store import _UPSERT, Store

from .generate import generate

ROOT = Path(__file__).resolve().parent.parent


def machine() -> str:
    from .run import machine as run_machine  # bench.run imports this module

    return run_machine()


INDEX_VERSION = 4  # bump when the search index or the replica's shape changes
LIBRARIES = [
    "Perpustakaan Universitas Pattimura",
    "Perpustakaan Daerah Maluku",
    "Perpustakaan SMA Negeri 1 Ambon",
    "Perpustakaan IAIN Ambon",
    "Library of the Moluccas Institute",
    "Perpustakaan Kota Tual",
]
SHARED = 0.2  # share of records also held by a second library: the same edition, two holders
FORMATS = [("book", 0.85), ("ebook", 0.1), ("thesis", 0.05)]
_WORD = re.compile(r"\w+")


def library_keys() -> list[bytes]:
    return [bytes([index + 1]) * 32 for index in range(len(LIBRARIES))]


def database(size: int, work: Path, seed: int = 1) -> Path:
    """The replica for ``size`` records, built unless already cached in ``work``."""
    path = work / f"search-{size}-s{seed}-v{INDEX_VERSION}.db"
    if path.exists():
        return path
    partial = path.with_suffix(".building")
    for stale in work.glob(partial.name + "*"):
        stale.unlink()
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    db = dbmod.connect(partial)
    conn = db.conn
    conn.execute("PRAGMA synchronous=OFF")  # a benchmark file, rebuilt if a crash cuts it short
    store = Store(db, library_keys()[0])
    keys = library_keys()
    with dbmod.transaction(conn):
        conn.executemany(
            "INSERT INTO libraries (author, name, isil, contact, seq) VALUES (?, ?, '', '', 1)",
            list(zip(keys, LIBRARIES, strict=True)),
        )
    rng = random.Random(seed)
    unique = round(size / (1 + SHARED))
    rows: list[tuple[Any, ...]] = []
    written = 0
    for record in generate(unique, seed):
        rid = record.pop("id")
        pick = rng.random()
        record["format"] = next(f for f, share in _cumulative(FORMATS) if pick < share)
        holder = rng.randrange(len(keys))
        rows.append(record_row_values(keys[holder], rid, record, 1, None))
        if rng.random() < SHARED and written + len(rows) < size:
            other = (holder + 1 + rng.randrange(len(keys) - 1)) % len(keys)
            rows.append(record_row_values(keys[other], rid, record, 1, None))
        if len(rows) >= 20_000:
            with dbmod.transaction(conn):
                store.put_rows(conn, rows)
            written += len(rows)
            rows = []
    with dbmod.transaction(conn):
        store.put_rows(conn, rows)
    written += len(rows)
    indexed = time.perf_counter() - started
    # The baseline: the same columns in a plain FTS5 table, rowid = records.id.
    conn.executescript(
        """
        CREATE VIRTUAL TABLE baseline_fts USING fts5 (
            title, authors, subjects, series, publisher, ids,
            tokenize='unicode61 remove_diacritics 2'
        );
        INSERT INTO baseline_fts (rowid, title, authors, subjects, series, publisher, ids)
            SELECT id, title, authors, subjects, series, publisher, isbn || ' ' || issn
            FROM records;
        """
    )
    sizes = dict(
        conn.execute(
            "SELECT substr(name, 1, instr(name, '_fts') - 1), sum(pgsize) / 1048576.0 FROM dbstat "
            "WHERE name LIKE 'search_fts%' OR name LIKE 'baseline_fts%' GROUP BY 1"
        ).fetchall()
    )
    conn.execute("CREATE TABLE bench_meta (name TEXT PRIMARY KEY, value REAL NOT NULL)")
    conn.executemany(
        "INSERT INTO bench_meta VALUES (?, ?)",
        [
            ("records", written),
            ("build_seconds", indexed),
            ("index_mb", sizes.get("search", 0.0)),
            ("baseline_mb", sizes.get("baseline", 0.0)),
        ],
    )
    conn.close()
    partial.rename(path)
    return path


def _cumulative(shares: list[tuple[str, float]]) -> list[tuple[str, float]]:
    total = 0.0
    out = []
    for name, share in shares:
        total += share
        out.append((name, total))
    out[-1] = (out[-1][0], 1.0)
    return out


@dataclass
class WriteCost:
    records: int
    before: float  # records/s, schema up to _v9: records_fts, rowid = records.id
    after: float  # records/s, schema up to _v10: search_fts instead, nothing else changed
    current: float  # records/s, the whole current schema (later migrations' triggers too)


_BEFORE_UPSERT = (  # store.py's upsert as it was before _v10 added four columns
    "INSERT INTO records (author, rid, title, authors, subjects, publisher, isbn, year, data, "
    "digest, match_key, source, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def write_cost(size: int, work: Path, seed: int = 1) -> WriteCost:
    """The index's price on the write path: the same rows, in durable transactions of 1,000 (a
    sync batch), into the schema just before _v10, just after it, and as it is now."""
    keys = library_keys()
    rows = [
        record_row_values(keys[n % len(keys)], r.pop("id"), r, 1, None)
        for n, r in enumerate(generate(size, seed))
    ]
    rates = []
    work.mkdir(parents=True, exist_ok=True)
    for upto in (9, 10, len(dbmod.MIGRATIONS)):
        path = work / f"write-v{upto}.db"
        for stale in work.glob(path.name + "*"):
            stale.unlink()
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # as db.connect
        for migration in dbmod.MIGRATIONS[:upto]:
            migration(sqlite_utils.Database(conn))
        sql, width = (_BEFORE_UPSERT, 13) if upto == 9 else (_UPSERT, len(rows[0]))
        started = time.perf_counter()
        for start in range(0, len(rows), 1000):
            with dbmod.transaction(conn):
                if upto == len(dbmod.MIGRATIONS):  # the store's own upsert and indexing
                    upsert_records(conn, rows[start : start + 1000])
                    continue
                after = last_id(conn)
                conn.executemany(sql, [r[:width] for r in rows[start : start + 1000]])
                if upto == 10:  # new rows are indexed by the store, not a trigger
                    index_search(conn, after)
        rates.append(len(rows) / (time.perf_counter() - started))
        conn.close()
        for done in work.glob(path.name + "*"):
            done.unlink()
    return WriteCost(len(rows), *rates)


@dataclass
class Case:
    category: str
    text: str
    library: str | None = None


def query_mix(conn: sqlite3.Connection, per_category: int = 3) -> list[Case]:
    """Queries chosen from the replica itself, so every size gets real hits: words by how many
    records hold them (a sample of 20,000), an author, an ISBN written as ISBN-10."""
    sample = conn.execute(
        "SELECT title, authors, subjects, isbn FROM records ORDER BY id LIMIT 20000"
    ).fetchall()
    df: Counter[str] = Counter()
    bigrams: Counter[str] = Counter()
    authors: Counter[str] = Counter()
    for title, names, subjects, _isbn in sample:
        words = {w.casefold() for w in _WORD.findall(f"{title} {names} {subjects}")}
        df.update(w for w in words if len(w) > 3 and not w.isdigit())
        title_words = [w.casefold() for w in _WORD.findall(title)]
        bigrams.update({f"{a} {b}" for a, b in pairwise(title_words)})
        authors.update(_WORD.findall(names.split(",")[0])[:1])
    n = len(sample)
    common = [w for w, c in df.most_common() if c <= 0.35 * n][:per_category]
    rare = [w for w, c in sorted(df.items()) if c == 2 and w.isalpha()]
    rare = rare[:: max(1, len(rare) // per_category)][:per_category]
    phrases = [
        p for p, c in bigrams.most_common(200) if c < 0.1 * n and all(len(w) > 3 for w in p.split())
    ]
    top_authors = [a for a, _ in authors.most_common(per_category)]
    isbns = sorted({row[3] for row in sample if row[3] != "[]"})[:per_category]
    cases = [Case("rare word", w) for w in rare]
    cases += [Case("common word", w) for w in common]
    cases += [Case("author", f"author:{a}") for a in top_authors]
    cases += [
        Case("author + subject", f"author:{a} subject:{_subject_of(sample, a)}")
        for a in top_authors
    ]
    cases += [Case("ISBN-10, hyphens", _isbn10(i.strip('[]"'))) for i in isbns]
    cases += [
        Case("year range + library", f"{w} year:2010-2015", library=LIBRARIES[1]) for w in common
    ]
    cases += [Case("2-word phrase", f'"{p}"') for p in phrases[:per_category]]
    return cases


def _subject_of(sample: list[tuple[str, str, str, str]], author: str) -> str:
    """The commonest subject word among ``author``'s records, so the pair has hits."""
    words: Counter[str] = Counter()
    for _title, names, subjects, _isbn in sample:
        if author in names:
            words.update(w.casefold() for w in _WORD.findall(subjects) if len(w) > 3)
    return words.most_common(1)[0][0] if words else "history"


def _isbn10(isbn13: str) -> str:
    core = isbn13[3:12]
    total = sum((10 - i) * int(d) for i, d in enumerate(core))
    check = (11 - total % 11) % 11
    digit = "X" if check == 10 else str(check)
    return f"{core[0]}-{core[1:4]}-{core[4:9]}-{digit}"


@dataclass
class Timing:
    category: str
    peernode_ms: list[float]
    baseline_ms: list[float]
    hits: int  # peernode's total for the last query of the category
    exact: bool
    at_least: bool


@dataclass
class SizeResult:
    records: int
    build_seconds: float
    file_mb: float
    index_mb: float
    baseline_mb: float
    timings: list[Timing]

    def all_ms(self, side: str) -> list[float]:
        return [ms for t in self.timings for ms in getattr(t, f"{side}_ms")]


def measure(path: Path, repeats: int = 10, baseline_repeats: int = 2) -> SizeResult:
    """Each query of the mix, warmed once, then timed: peernode's run_query on the node's own
    connection settings (db.connect), and the bare FTS5 query on the same connection."""
    db = dbmod.connect(path)
    conn = db.conn
    cases = query_mix(conn)
    by_category: dict[str, Timing] = {}
    for case in cases:
        query = parse_query(case.text, library=case.library)
        blank = Timing(case.category, [], [], 0, True, False)
        timing = by_category.setdefault(case.category, blank)
        results = run_query(conn, query)  # warm
        for _ in range(repeats):
            started = time.perf_counter()
            results = run_query(conn, query)
            timing.peernode_ms.append((time.perf_counter() - started) * 1000)
        timing.hits, timing.exact = results.total, results.total_exact
        timing.at_least = results.total_at_least
        _baseline(conn, query, case.library)  # warm
        for _ in range(baseline_repeats):
            timing.baseline_ms.append(_baseline(conn, query, case.library))
    meta = dict(conn.execute("SELECT name, value FROM bench_meta").fetchall())
    conn.close()
    return SizeResult(
        records=int(meta["records"]),
        build_seconds=meta["build_seconds"],
        file_mb=path.stat().st_size / 2**20,
        index_mb=meta["index_mb"],
        baseline_mb=meta["baseline_mb"],
        timings=list(by_category.values()),
    )


def _baseline(conn: sqlite3.Connection, query: Query, library: str | None) -> float:
    """A bare FTS5 query: the same words, FTS5's bm25 ``ORDER BY rank``, the first 20, the
    filters as SQL on the joined record, no facets and no grouping."""
    where, params = "", list[object]()
    if query.year_from is not None or query.year_to is not None:
        where += " AND r.year BETWEEN ? AND ?"
        params += [query.year_from or -9999, query.year_to or 9999]
    if library:
        where += " AND r.author = (SELECT author FROM libraries WHERE name = ?)"
        params.append(library)
    started = time.perf_counter()
    conn.execute(
        "SELECT baseline_fts.rowid FROM baseline_fts JOIN records r ON r.id = baseline_fts.rowid "
        f"WHERE baseline_fts MATCH ?{where} ORDER BY rank LIMIT 20",
        [match_expression(query), *params],
    ).fetchall()
    return (time.perf_counter() - started) * 1000


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _total_text(timing: Timing) -> str:
    if timing.exact:
        return f"{timing.hits:,}"
    return f"≥ {timing.hits:,}" if timing.at_least else f"~{timing.hits:,} est."


GOAL_MS = 20.0


def section(results: list[SizeResult], write: WriteCost, command: str) -> list[str]:
    """The "Search" section of docs/benchmarks.md."""
    lines = [
        "## Search: ranked, fielded, faceted, vs a bare FTS5 `ORDER BY rank`",
        "",
        f"Command: `{command}` (alone: `python -m bench.search --records N`)  ",
        f"Machine: {machine()}  ",
        "Replica: records from `bench/generate.py` (seed 1) spread over six libraries, a fifth",
        "held by two of them, written through the node's `Store.put_rows` so migration _v10's",
        "triggers build the index. peernode: `run_query` = the page of 20 union entries with",
        "their holders, exact-title and title-word tiers, holder counts, facets (library,",
        "language, format, decade, year) and a total. Baseline: a plain FTS5 table over the",
        "same columns (rowid = arrival order), `MATCH ... ORDER BY rank LIMIT 20`, filters as",
        "SQL, no facets, no grouping. Each query warmed once, then timed "
        "(peernode 10×, baseline 2×). Times in ms.",
        "",
        "| records | query | peernode p50 | p95 | p99 | bare FTS5 p50 | p95 | p99 | entries |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        rows: list[tuple[str, list[float], list[float], Timing | None]] = [
            (t.category, t.peernode_ms, t.baseline_ms, t) for t in result.timings
        ]
        rows.append(("**all queries**", result.all_ms("peernode"), result.all_ms("baseline"), None))
        for name, ours, theirs, timing in rows:
            hits = "" if timing is None else _total_text(timing)
            lines.append(
                f"| {result.records:,} | {name} | "
                + " | ".join(f"{percentile(ours, p):.1f}" for p in (50, 95, 99))
                + " | "
                + " | ".join(f"{percentile(theirs, p):.1f}" for p in (50, 95, 99))
                + f" | {hits} |"
            )
    lines += ["", "| records | build (s) | records/s | file MB | search_fts MB | baseline MB |"]
    lines.append("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for result in results:
        lines.append(
            f"| {result.records:,} | {result.build_seconds:.0f} | "
            f"{result.records / result.build_seconds:,.0f} | {result.file_mb:,.0f} | "
            f"{result.index_mb:,.0f} | {result.baseline_mb:,.0f} |"
        )
    lines += [
        "",
        f"Write path: {write.records:,} records in durable transactions of 1,000 (a sync",
        f"batch), through the node's upsert: {write.before:,.0f} records/s into the schema",
        f"before _v10 (records_fts, rowid = records.id), {write.after:,.0f} records/s with",
        f"search_fts instead ({write.after / write.before:.0%}). With every later migration's",
        f"triggers too (the current schema): {write.current:,.0f} records/s. The replication",
        "figures include all of it, and so does their ceiling (the raw insert goes through",
        "the same schema).",
    ]
    largest = results[-1]
    p95 = percentile(largest.all_ms("peernode"), 95)
    verdict = "met" if p95 < GOAL_MS else "**missed**"
    if largest.records < 1_000_000:
        verdict = "not judged at this size (run `--records 1000000`)"
    lines += [
        "",
        f"Goal: p95 < {GOAL_MS:.0f} ms at 1M records. At {largest.records:,}: p95 {p95:.1f} ms "
        f"over the whole mix, {verdict}.",
        "",
        "How: FTS5 ranks by computing bm25 for every hit, and bm25's statistics alone read a",
        "common term's whole posting list (the baseline's cost grows with the hits). search_fts",
        "(migration _v10) numbers each record `(title length << 40) | records.id`, so FTS5",
        f"yields hits shortest title first and a query reads only the first {CANDIDATES} (and,",
        f"unfiltered, the first {TITLE_CANDIDATES} with every free word in the title). Those are",
        "ordered by tier (exact title, every word in the title, in an author's name, elsewhere),",
        "then by the number of holding libraries, then static rank. Filters (library, language,",
        "format, year range) are tokens in the index's `facets` column, so FTS5 intersects them",
        "with the words instead of SQL joining every hit (the baseline's filtered rows).",
        "",
        f"What is exact: when fewer than {CANDIDATES} records match, everything (total, facets,",
        f"order). Beyond that, facets count the first {CANDIDATES} matching records in",
        "static-rank order (`facets_exact: false` in the API), and the total is an estimate",
        "(`total_exact: false`, shown as ~N est.): FTS5 goes on counting the matching records",
        f"for {COUNT_BUDGET_S * 1000:.0f} ms, over records per union entry among the candidates;",
        "if the count was cut short it is a lower bound (`total_at_least`, shown as ≥ N). Pages",
        f"reach the best {CANDIDATES} records; a broader question is narrowed with a field or",
        "a facet filter, and those are exact.",
        "",
    ]
    return lines


def search_section(work: Path, sizes: list[int], command: str) -> list[str]:
    results = [measure(database(size, work)) for size in sizes]
    return section(results, write_cost(min(sizes), work / "write-cost"), command)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__)
    parser.add_argument("--records", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--quick", action="store_true", help="5,000 records, for `make test`")
    parser.add_argument("--work", type=Path, default=ROOT / "bench-data")
    args = parser.parse_args()
    sizes = [5_000] if args.quick else args.records
    command = "python -m bench.search " + (
        "--quick" if args.quick else "--records " + " ".join(map(str, sizes))
    )
    print("\n".join(search_section(args.work, sizes, command)))


if __name__ == "__main__":
    main()
