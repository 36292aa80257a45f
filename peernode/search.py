"""Search the local replica: fielded, faceted and ranked, over every member's records.

The API (the daemon, the web page and the CLI call these):

- ``parse_query(text, page=, per_page=, library=, language=, format=, year_from=, year_to=)``
  -> ``Query``, or ``QueryError`` saying what is wrong and where. The text syntax::

      author:"tere liye" subject:novel year:2010-2015 laskar "kata kunci"

  Free words must all match (in any field); ``"quoted words"`` are a phrase; ``field:value``
  or ``field:"several words"`` restrict to one field: title, author, subject, series,
  publisher, isbn (10 or 13 digits, hyphens allowed), issn, year (``2010``, ``2010-2015``,
  ``-1990``, ``2000-``), library (name or node id), language, format. Indonesian names work
  too (judul, pengarang, subjek, seri, penerbit, tahun, perpustakaan, bahasa). A bare ISBN or
  ISSN searches that number. Matching ignores case and diacritics ("Ánanta" = "ananta").
- ``run_query(conn, query)`` -> ``Results``: the page of ``hits`` (union entries, each with
  every library holding it), ``total`` (``total_exact``: exact, else an estimate, and
  ``total_at_least``: a lower bound), ``facets`` (library node id, language, format, decade,
  year -> union entries; ``library_names`` names the node ids; ``facets_exact``: over every
  hit, else over the first ``facet_window`` in static-rank order), ``page``, ``per_page``,
  ``pages`` (how many pages hold hits: paging reaches the best CANDIDATES records).
  ``query_from_params`` reads the same from URL parameters (q, page, per_page, library,
  language, format, year_from, year_to); ``facets_text`` prints them for a terminal.
- ``search(conn, text, limit)`` -> the first ``limit`` hits, for callers that want a list.

Why it is fast at a million records (docs/benchmarks.md, "Search"): FTS5's ``ORDER BY rank``
computes bm25 for every hit, and bm25's statistics alone read a common word's whole posting
list. The index (search_fts, migration _v10) gives each record the docid ``(title length <<
40) | records.id``, so FTS5 yields a term's hits shortest title first and a query reads only
the first ``CANDIDATES``, plus the first ``TITLE_CANDIDATES`` with every free word in the
title. Those are ordered by tier (exact title, every word in the title, in an author's name,
elsewhere), then by the number of holding libraries, then static rank. Filters are tokens in
the index's ``facets`` column, so FTS5 intersects them with the words. Text from a query never
reaches FTS5 syntax unquoted: every word is a quoted string, column names come from a table.
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
import time
import unicodedata
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from protocol import node_id

from .clusters import CLUSTER_OF
from .members import HIDDEN_SQL
from .records import decode_record, fold, normalize_isbn, normalize_issn

# Which union entry a record belongs to: its cluster (peernode/clusters.py). Every query below
# groups by this expression, and finds an entry's records through record_clusters' index.
ENTRY_OF_RECORD = CLUSTER_OF
_RECORDS_OF_ENTRIES = "SELECT id FROM record_clusters WHERE cluster IN ({marks})"

_EXCLUDED = HIDDEN_SQL  # libraries whose records are no longer offered to readers

# A library's node id from its key: base32 and a check character, cached as a page needs it
# for every holding and facet value, and a network has few libraries.
_node_id = functools.lru_cache(maxsize=4096)(node_id)

RECORD_ID_MASK = (1 << 40) - 1  # search_fts docid = (static rank << 40) | records.id
CANDIDATES = 400  # best-first matches read per query; ranking and grouping work on these
TITLE_CANDIDATES = 200  # of which first: matches with every free word in the title
MAX_PAGE = 50
MAX_PER_PAGE = 100
MAX_TERMS = 32
MAX_QUERY_CHARS = 1000

# Query field name (English and Indonesian) -> search_fts column.
_TEXT_FIELDS = {
    "title": "title",
    "judul": "title",
    "author": "authors",
    "pengarang": "authors",
    "subject": "subjects",
    "subjek": "subjects",
    "series": "series",
    "seri": "series",
    "publisher": "publisher",
    "penerbit": "publisher",
}
_FILTER_FIELDS = {
    "year": "year",
    "tahun": "year",
    "library": "library",
    "perpustakaan": "library",
    "language": "language",
    "bahasa": "language",
    "format": "format",
    "isbn": "isbn",
    "issn": "issn",
}
# field:"quoted value" | field:value | "phrase" | word. An unclosed quote runs to the end.
_TOKEN = re.compile(r'(\w+):"([^"]*)"?|(\w+):(\S+)|"([^"]*)"?|(\S+)')
_WORD = re.compile(r"\w+")
_YEAR_RANGE = re.compile(r"^(-?\d{1,4})?(?:(-|\.\.)(\d{1,4})?)?$")


class QueryError(ValueError):
    """A query that cannot be run; the message says what and where, for the person who typed it."""


@dataclass(frozen=True)
class Term:
    column: str | None  # a search_fts column, or None for any column
    words: tuple[str, ...]
    phrase: bool = False  # the words in this order, next to each other


@dataclass(frozen=True)
class Query:
    terms: tuple[Term, ...] = ()
    year_from: int | None = None
    year_to: int | None = None
    library: str | None = None
    language: str | None = None
    format: str | None = None
    page: int = 1
    per_page: int = 20

    @property
    def searchable(self) -> bool:
        return bool(self.terms)

    def title_text(self) -> str:
        """What an exact title match compares with: the free words, else a title: field."""
        free = [w for t in self.terms if t.column is None for w in t.words]
        if free:
            return " ".join(free)
        return " ".join(w for t in self.terms if t.column == "title" for w in t.words)


@dataclass
class Holding:
    library: str
    node_id: str
    record_id: str
    call_number: str = ""
    copies: int = 0


@dataclass
class Hit:
    title: str
    authors: list[str]
    year: int | None
    isbn: list[str]
    subjects: list[str]
    publisher: str
    holdings: list[Holding] = field(default_factory=list)
    series: list[str] = field(default_factory=list)
    language: str = ""
    format: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Results:
    hits: list[Hit]
    total: int
    total_exact: bool
    total_at_least: bool  # not exact, and the count was cut short: at least this many
    facets: dict[str, dict[str, int]]
    facets_exact: bool
    facet_window: int
    page: int
    per_page: int
    library_names: dict[str, str] = field(default_factory=dict)  # facet node id -> name
    pages: int = 0  # pages that hold hits: the best CANDIDATES records, whatever the total

    def as_dict(self) -> dict[str, Any]:
        return {
            "hits": [h.as_dict() for h in self.hits],
            "total": self.total,
            "total_exact": self.total_exact,
            "total_at_least": self.total_at_least,
            "facets": self.facets,
            "facets_exact": self.facets_exact,
            "facet_window": self.facet_window,
            "library_names": self.library_names,
            "page": self.page,
            "per_page": self.per_page,
            "pages": self.pages,
        }


# --- parsing ------------------------------------------------------------------------------------


def parse_query(
    text: str,
    *,
    page: int = 1,
    per_page: int = 20,
    library: str | None = None,
    language: str | None = None,
    format: str | None = None,
    year_from: int | None = None,
    year_to: int | None = None,
) -> Query:
    """The Query for what a librarian typed plus structured filters (which win over the text)."""
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"the query is {len(text)} characters long; at most {MAX_QUERY_CHARS}")
    if not 1 <= page <= MAX_PAGE:
        raise QueryError(f"page must be 1..{MAX_PAGE}, not {page}: refine the search instead")
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise QueryError(f"per_page must be 1..{MAX_PER_PAGE}, not {per_page}")
    text = unicodedata.normalize("NFKC", text).replace("\x00", " ")
    terms: list[Term] = []
    filters: dict[str, str] = {}
    years: tuple[int | None, int | None] = (None, None)
    for match in _TOKEN.finditer(text):
        name_q, value_q, name, value, phrase, _word = match.groups()
        key = (name_q or name or "").casefold()
        raw = value_q if name_q else value
        if key in _TEXT_FIELDS and raw is not None:
            column = _TEXT_FIELDS[key]
            # Names are stored "Surname, Forename": author words match in any order.
            _add(terms, column, raw, phrase=name_q is not None and column != "authors")
        elif key in _FILTER_FIELDS and raw is not None:
            kind = _FILTER_FIELDS[key]
            where = f"{key}:{raw}"
            if kind == "isbn":
                terms.append(Term("ids", (_isbn(raw, where),)))
            elif kind == "issn":
                terms.append(Term("ids", _issn(raw, where), phrase=True))
            elif kind == "year":
                years = _years(raw, where)
            elif raw.strip():
                filters[kind] = raw.strip()
        elif phrase is not None:
            _add(terms, None, phrase, phrase=True)
        else:
            token = match.group(0)
            isbn = normalize_isbn(token)
            issn = _valid_issn(token)
            if isbn is not None and re.fullmatch(r"[\dXx-]+", token):
                terms.append(Term("ids", (isbn,)))
            elif issn is not None:
                terms.append(Term("ids", tuple(issn.casefold().split("-")), phrase=True))
            else:
                _add(terms, None, token, phrase=False)
    if sum(len(t.words) for t in terms) > MAX_TERMS:
        raise QueryError(f"the query has more than {MAX_TERMS} words: use fewer")
    year_lo = year_from if year_from is not None else years[0]
    year_hi = year_to if year_to is not None else years[1]
    if year_lo is not None and year_hi is not None and year_lo > year_hi:
        raise QueryError(f"year range {year_lo}-{year_hi}: the first year is after the second")
    return Query(
        terms=tuple(terms),
        year_from=year_lo,
        year_to=year_hi,
        library=library or filters.get("library"),
        language=language or filters.get("language"),
        format=format or filters.get("format"),
        page=page,
        per_page=per_page,
    )


def query_from_params(params: Mapping[str, str]) -> Query:
    """A Query from URL parameters: q, page, per_page (``limit`` is its older name), library,
    language, format, year_from, year_to. Every problem is a QueryError naming the parameter."""

    def number(name: str) -> int | None:
        text = params.get(name, "").strip()
        if not text:
            return None
        try:
            return int(text)
        except ValueError:
            raise QueryError(f"{name} must be a whole number, not {text[:40]!r}") from None

    per_page = number("per_page")
    page = number("page")
    return parse_query(
        params.get("q", ""),
        page=1 if page is None else page,
        # ``limit`` was clamped, never refused: old callers keep working.
        per_page=per_page
        if per_page is not None
        else max(1, min(MAX_PER_PAGE, number("limit") or 20)),
        library=params.get("library") or None,
        language=params.get("language") or None,
        format=params.get("format") or None,
        year_from=number("year_from"),
        year_to=number("year_to"),
    )


def _add(terms: list[Term], column: str | None, text: str, *, phrase: bool) -> None:
    words = tuple(_WORD.findall(text))
    if not words:
        return
    if phrase and len(words) > 1:
        terms.append(Term(column, words, phrase=True))
    elif column is None:
        terms.extend(Term(None, (w,)) for w in words)
    else:
        terms.append(Term(column, words))


def _isbn(raw: str, where: str) -> str:
    isbn = normalize_isbn(raw)
    if isbn is None:
        raise QueryError(f"{where}: not a valid ISBN-10 or ISBN-13 (check digit included)")
    return isbn


def _valid_issn(text: str) -> str | None:
    """``text`` as "1234-567X" when it is exactly an ISSN with a right check digit."""
    if not re.fullmatch(r"\d{4}-?\d{3}[\dXx]", text.strip()):
        return None
    issn = normalize_issn(text)
    if issn is None:
        return None
    digits = issn.replace("-", "")
    check = (11 - sum(int(d) * (8 - i) for i, d in enumerate(digits[:7])) % 11) % 11
    return issn if digits[7] == ("X" if check == 10 else str(check)) else None


def _issn(raw: str, where: str) -> tuple[str, ...]:
    issn = _valid_issn(raw)
    if issn is None:
        raise QueryError(f"{where}: not an ISSN (as 0126-0979, check digit included)")
    return tuple(issn.casefold().split("-"))


def _years(raw: str, where: str) -> tuple[int | None, int | None]:
    match = _YEAR_RANGE.match(raw.strip())
    if not match or raw.strip() in ("", "-", ".."):
        raise QueryError(f"{where}: a year is YYYY, or a range YYYY-YYYY, -YYYY or YYYY-")
    first, dash, last = match.groups()
    lo = int(first) if first else None
    hi = int(last) if last else (None if dash else lo)
    if lo is not None and first.startswith("-"):  # "-1990" reads as "up to 1990"
        if dash:
            raise QueryError(f"{where}: a year is YYYY, or a range YYYY-YYYY, -YYYY or YYYY-")
        return None, -lo
    return lo, hi


# --- FTS5 expressions -----------------------------------------------------------------------------

_TEXT_COLUMNS = "{title authors subjects series publisher ids}"  # free words: not facet tokens


def _quoted(word: str) -> str:
    return '"' + word.replace('"', '""') + '"'


def _term_expr(term: Term, prefix: bool = False) -> str:
    if term.phrase:
        body = _quoted(" ".join(term.words))
    else:
        body = " AND ".join(_quoted(w) for w in term.words)
        if prefix:
            body += "*"
        if len(term.words) > 1:
            body = f"({body})"
    return f"{term.column or _TEXT_COLUMNS} : {body}"


def match_expression(
    query: Query, *, title_only: bool = False, prefix: bool = False, filters: str = ""
) -> str:
    """The FTS5 MATCH text. ``title_only``: the free words must be in the title; ``prefix``:
    the last free word may be the start of a word (a fallback when nothing matched whole);
    ``filters``: from _filter_expression, ANDed on."""
    last_free = max((i for i, t in enumerate(query.terms) if t.column is None), default=-1)
    parts = []
    for index, term in enumerate(query.terms):
        if title_only and term.column is None:
            term = Term("title", term.words, term.phrase)
        parts.append(_term_expr(term, prefix=prefix and index == last_free and not term.phrase))
    expression = " AND ".join(parts)
    return f"({expression}) {filters}" if filters else expression


def fts_query(text: str) -> str | None:
    """The FTS5 MATCH expression for ``text`` (prefix on the last free word), or None when
    nothing in it is searchable."""
    try:
        query = parse_query(text)
    except QueryError:
        return None
    return match_expression(query, prefix=True) if query.searchable else None


def _filter_expression(conn: sqlite3.Connection, query: Query) -> str:
    """``AND facets : ...`` for each filter and ``NOT ...`` for excluded libraries: the facet
    tokens migration _v10 indexes, so FTS5 intersects them with the words."""
    parts = []
    if query.library:
        keys = _library_keys(conn, query.library)
        if not keys:
            raise QueryError(
                f"library:{query.library}: no library of that name or node id in this replica"
            )
        parts.append("AND " + _any_token([_library_token(k) for k in keys]))
    if query.language:
        parts.append("AND " + _any_token(["g" + _hex_lower(query.language)]))
    if query.format:
        parts.append("AND " + _any_token(["f" + _hex_lower(query.format)]))
    if query.year_from is not None or query.year_to is not None:
        parts.append("AND " + _any_token(_year_tokens(query.year_from, query.year_to)))
    excluded = [_library_token(k) for (k,) in conn.execute(_EXCLUDED)]
    if excluded:
        parts.append("NOT " + _any_token(excluded))
    return " ".join(parts)


def _any_token(tokens: list[str]) -> str:
    return "facets : (" + " OR ".join(_quoted(t) for t in tokens) + ")"


def _library_token(author: bytes) -> str:
    return "l" + author[:8].hex().upper()


def _hex_lower(text: str) -> str:
    """As SQLite's hex(lower(x)): lower() folds ASCII letters only."""
    folded = "".join(c.lower() if c.isascii() else c for c in text.strip())
    return folded.encode("utf-8").hex().upper()


YEAR_OFFSET = 10_000  # facet tokens hold year + 10000: every year a positive number
OPEN_YEARS = (1000, 2100)  # where "-1990" and "2000-" end


def _year_tokens(first: int | None, last: int | None) -> list[str]:
    """The fewest century, decade and year tokens that cover first..last."""
    lo = (OPEN_YEARS[0] if first is None else max(first, -9999)) + YEAR_OFFSET
    hi = (OPEN_YEARS[1] if last is None else min(last, 9999)) + YEAR_OFFSET
    tokens = []
    while lo <= hi:
        if lo % 100 == 0 and lo + 99 <= hi:
            tokens.append(f"c{lo // 100}")
            lo += 100
        elif lo % 10 == 0 and lo + 9 <= hi:
            tokens.append(f"d{lo // 10}")
            lo += 10
        else:
            tokens.append(f"y{lo}")
            lo += 1
    return tokens or ["y0"]  # an empty range: a token no record has


# --- running --------------------------------------------------------------------------------------


def run_query(conn: sqlite3.Connection, query: Query) -> Results:
    """Hits for one page, the total and the facets: see the module docstring."""
    empty = Results([], 0, True, False, {}, True, CANDIDATES, query.page, query.per_page)
    if not query.searchable:
        return empty
    filters = _filter_expression(conn, query)
    expression = match_expression(query, filters=filters)
    rows, matched, cut = _scan(conn, expression, CANDIDATES, count=True)
    prefix = False
    if not rows and _prefixable(query):
        prefix = True
        expression = match_expression(query, prefix=True, filters=filters)
        rows, matched, cut = _scan(conn, expression, CANDIDATES, count=True)
    if not rows:
        return empty
    complete = len(rows) < CANDIDATES
    in_title: set[int] = set()
    candidates = rows
    free = _word_set(" ".join(w for t in query.terms if t.column is None for w in t.words))
    if free and (complete or filters):
        # Every title match is among the rows, or a filter would make a second walk dear: the
        # title tier is judged on the rows themselves.
        in_title = {row[0] for row in rows if free <= _word_set(row[2])}
    elif free:
        # Title matches beyond the first CANDIDATES join the ranking, so a title that holds
        # every word is never crowded out by records that have the words only as subjects.
        title_expression = match_expression(query, title_only=True, prefix=prefix)
        title_rows = _scan(conn, title_expression, TITLE_CANDIDATES)[0]
        in_title = {row[0] for row in title_rows}
        known = {row[0] for row in rows}
        candidates = rows + [row for row in title_rows if row[0] not in known]
    entries = _rank(conn, query, in_title, candidates)
    total, at_least = len(entries), False
    if not complete:  # matched records over records per union entry among the candidates
        per_entry = len(rows) / max(1, len({row[1] for row in rows}))
        total, at_least = max(total, round(matched / per_entry)), cut
    start = (query.page - 1) * query.per_page
    hits = _hits(conn, entries[start : start + query.per_page])
    facets = _facets(rows)
    names = _library_names(conn)
    return Results(
        hits=hits,
        total=total,
        total_exact=complete,
        total_at_least=at_least,
        facets=facets,
        facets_exact=complete,
        facet_window=CANDIDATES,
        page=query.page,
        per_page=query.per_page,
        library_names={k: names[k] for k in facets["library"] if k in names},
        pages=min(MAX_PAGE, -(-len(entries) // query.per_page)),
    )


def search(conn: sqlite3.Connection, text: str, limit: int = 20) -> list[Hit]:
    """The best ``limit`` hits for ``text`` (raises QueryError for a malformed field value)."""
    if limit <= 0:
        return []
    return search_query(conn, parse_query(text, per_page=min(limit, MAX_PER_PAGE)), limit)


def search_query(conn: sqlite3.Connection, query: Query, limit: int) -> list[Hit]:
    """The best ``limit`` hits for ``query``, read a page at a time from its first page."""
    hits: list[Hit] = []
    for page in range(1, MAX_PAGE + 1):
        if len(hits) >= limit:
            break
        results = run_query(conn, replace(query, page=page))
        hits.extend(results.hits)
        if len(results.hits) < query.per_page:
            break
    return hits[:limit]


def facets_text(results: Results) -> str:
    """The total and the facets as lines for a terminal."""
    about = "" if results.total_exact else ("at least " if results.total_at_least else "about ")
    lines = [f"{about}{results.total:,} entries; page {results.page}."]
    window = "" if results.facets_exact else f" (among the first {results.facet_window:,})"
    for name, counts in results.facets.items():
        if name == "year" or not counts:
            continue
        shown = ", ".join(
            f"{results.library_names.get(value, value[:9]) if name == 'library' else value}: "
            f"{count:,}"
            for value, count in list(counts.items())[:12]
        )
        lines.append(f"{name}{window}: {shown}")
    return "\n".join(lines)


def _prefixable(query: Query) -> bool:
    free = [t for t in query.terms if t.column is None and not t.phrase]
    return bool(free) and len(free[-1].words[-1]) >= 3


def _library_keys(conn: sqlite3.Connection, wanted: str) -> list[bytes]:
    """Libraries whose name (any case) or node id is ``wanted``."""
    folded = wanted.strip().casefold()
    keys = []
    for author, name in conn.execute("SELECT author, name FROM libraries"):
        if name.strip().casefold() == folded or _node_id(author) == wanted.strip():
            keys.append(author)
    return keys


def _library_names(conn: sqlite3.Connection) -> dict[str, str]:
    return {_node_id(a): n for a, n in conn.execute("SELECT author, name FROM libraries")}


# A matching record as _scan reads it: plain tuples, as hundreds are read per query.
# (records.id, union entry, title, authors (JSON text), author key, language, format, year)
_Candidate = tuple[int, int, str, str, bytes, str, str, "int | None"]


def _scan(
    conn: sqlite3.Connection, expression: str, limit: int, *, count: bool = False
) -> tuple[list[_Candidate], int, bool]:
    """The first ``limit`` matches in static-rank order (best first), and with ``count`` how
    many records match in all: the walk goes on past the candidates, counting, for at most
    COUNT_BUDGET_S (True: cut short, so at least that many). Removed libraries' records are
    left out by the expression, and again here in case a key prefix ever collided."""
    docids = [
        row[0]
        for row in conn.execute(
            "SELECT rowid FROM search_fts WHERE search_fts MATCH ? ORDER BY rowid LIMIT ?",
            (expression, limit),
        )
    ]
    ids = [docid & RECORD_ID_MASK for docid in docids]
    matched, cut = len(ids), False
    if count and len(ids) == limit:
        matched, cut = _count_on(conn, expression, docids[-1], matched)
    if not ids:
        return [], 0, False
    order = {record_id: index for index, record_id in enumerate(ids)}
    rows = conn.execute(
        f"SELECT r.id, {ENTRY_OF_RECORD}, r.title, r.authors, r.author, r.language, r.format, "
        f"r.year FROM records r WHERE r.id IN ({','.join(map(str, ids))}) "
        f"AND r.author NOT IN ({_EXCLUDED})"
    ).fetchall()
    rows.sort(key=lambda row: order[row[0]])
    return rows, matched, cut


COUNT_BUDGET_S = 0.002  # time spent counting matching records past the candidates
_COUNT_CHUNK = 8192


def _count_on(
    conn: sqlite3.Connection, expression: str, after: int, matched: int
) -> tuple[int, bool]:
    """``matched`` plus the matches past docid ``after``, counted by SQLite a chunk at a time
    (FTS5 seeks straight to ``after``) until none are left or COUNT_BUDGET_S has passed."""
    deadline = time.perf_counter() + COUNT_BUDGET_S
    while time.perf_counter() < deadline:
        counted, last = conn.execute(
            "SELECT count(*), max(rowid) FROM (SELECT rowid FROM search_fts "
            "WHERE search_fts MATCH ? AND rowid > ? ORDER BY rowid LIMIT ?)",
            (expression, after, _COUNT_CHUNK),
        ).fetchone()
        matched += counted
        if counted < _COUNT_CHUNK:
            return matched, False
        after = last
    return matched, True


def _rank(
    conn: sqlite3.Connection, query: Query, in_title: set[int], rows: list[_Candidate]
) -> list[int]:
    """Union entries, best first, by tier: 0 the exact title, 1 every free word in the title,
    2 every free word in an author's name, 3 the rest. Within a tier, more holding libraries
    first (counted for the first HOLDER_WINDOW entries), then static rank (shorter titles)."""
    wanted = fold(query.title_text())
    free = _word_set(" ".join(w for t in query.terms if t.column is None for w in t.words))
    best: dict[int, int] = {}
    for record_id, entry, title, authors, *_facet_values in rows:
        if best.get(entry) == 0:
            continue
        if record_id in in_title:
            tier = 0 if _exact(title, wanted) else 1
        elif free and free <= _word_set(authors):
            tier = 2
        else:
            tier = 3
        if entry not in best or tier < best[entry]:
            best[entry] = tier
    position = {entry: index for index, entry in enumerate(best)}
    ordered = sorted(best, key=lambda e: (best[e], position[e]))
    head = ordered[:HOLDER_WINDOW]
    holders = _holders(conn, head)
    head.sort(key=lambda e: (best[e], -holders.get(e, 1), position[e]))
    return head + ordered[HOLDER_WINDOW:]


HOLDER_WINDOW = 100  # entries whose holders are counted to order them


def _word_set(text: str) -> set[str]:
    """The words of ``text`` as fold() gives them (case and diacritics gone), a little faster:
    this runs for hundreds of candidates per query."""
    folded = text.casefold()
    return set(_WORD.findall(folded if folded.isascii() else fold(folded)))


def _exact(title: str, wanted: str) -> bool:
    """Is ``title`` (or its part before " : ", the title proper) what was typed?"""
    if not wanted or len(title) > 3 * len(wanted) + 20:  # folding cannot shrink it that much
        return False
    return fold(title) == wanted or fold(title.split(":")[0]) == wanted


def _holders(conn: sqlite3.Connection, entries: list[int]) -> dict[int, int]:
    if not entries:
        return {}
    rows = conn.execute(
        f"SELECT {ENTRY_OF_RECORD} AS entry, count(*) FROM records r WHERE r.id IN "
        f"({_RECORDS_OF_ENTRIES.format(marks=','.join('?' * len(entries)))}) "
        f"AND r.author NOT IN ({_EXCLUDED}) GROUP BY entry",
        entries,
    )
    return dict(rows.fetchall())


def _facets(rows: list[_Candidate]) -> dict[str, dict[str, int]]:
    """Union entries per library, language, format, decade and year among the candidates: every
    match when there are fewer than CANDIDATES, else the first CANDIDATES by static rank."""
    seen: dict[str, set[tuple[object, int]]] = {
        name: set() for name in ("library", "language", "format", "decade", "year")
    }
    for _id, entry, _title, _authors, author, language, fmt, year in rows:
        seen["library"].add((author, entry))
        if language:
            seen["language"].add((language.lower(), entry))
        if fmt:
            seen["format"].add((fmt.lower(), entry))
        if year is not None:
            seen["year"].add((str(year), entry))
            seen["decade"].add((f"{year // 10 * 10}s", entry))
    facets: dict[str, dict[str, int]] = {}
    for name, pairs in seen.items():
        counts = Counter(value for value, _entry in pairs)
        keyed = {
            (_node_id(value) if isinstance(value, bytes) else str(value)): count
            for value, count in counts.items()
        }
        facets[name] = dict(sorted(keyed.items(), key=lambda kv: (-kv[1], kv[0])))
    return facets


def _hits(conn: sqlite3.Connection, entries: list[int]) -> list[Hit]:
    """The page's union entries with every library holding each (removed libraries left out)."""
    if not entries:
        return []
    marks = ",".join("?" * len(entries))
    rows = conn.execute(
        f"SELECT {ENTRY_OF_RECORD}, r.author, r.rid, r.data, COALESCE(l.name, '') FROM records r "
        "LEFT JOIN libraries l ON l.author = r.author "
        f"WHERE r.id IN ({_RECORDS_OF_ENTRIES.format(marks=marks)}) "
        f"AND r.author NOT IN ({_EXCLUDED}) ORDER BY l.name, r.rid",
        entries,
    )
    hits: dict[int, Hit] = {}
    for key, author, rid, data, name in rows:
        record = decode_record(data)
        hit = hits.get(key)
        if hit is None:
            hit = hits[key] = Hit(
                title=record.title,
                authors=list(record.authors),
                year=record.year,
                isbn=list(record.isbn),
                subjects=list(record.subjects),
                publisher=record.publisher,
                series=list(record.series),
                language=record.language,
                format=record.format,
            )
        call_number = record.call_number or next(
            (h.call_number for h in record.holdings if h.call_number), ""
        )
        hit.holdings.append(
            Holding(
                library=name or _node_id(author)[:9],
                node_id=_node_id(author),
                record_id=rid,
                call_number=call_number,
                copies=len(record.holdings),
            )
        )
    return [hits[e] for e in entries if e in hits]


def count_records(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM records").fetchone()[0])


def hits_json(hits: list[Hit]) -> str:
    return json.dumps([h.as_dict() for h in hits], ensure_ascii=False, indent=2)


def results_json(results: Results) -> str:
    return json.dumps(results.as_dict(), ensure_ascii=False, indent=2)
