"""The search page's query: the form's fields (any word, title, author, subject, ISBN) and the
facets the reader picked (library, year, language, format), run by ``peernode.search``.

The fields become the search module's own syntax (``title:"..." author:"..."``), so the page
searches exactly as the CLI and the API do; the facet choices go in as structured filters.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from .. import search as engine
from ..search import Hit, QueryError

PAGE_SIZE = 20
FIELDS = ("q", "title", "author", "subject", "isbn")
FILTERS = ("library", "year", "language", "format")
MAX_FIELD_CHARS = 200
FACET_VALUES = 12
FACETS = ("library", "year", "language", "format")  # shown, in this order


@dataclass(frozen=True)
class Query:
    q: str = ""
    title: str = ""
    author: str = ""
    subject: str = ""
    isbn: str = ""
    library: str = ""  # a node id: only entries this library holds
    year: str = ""
    language: str = ""
    format: str = ""
    page: int = 1

    @property
    def empty(self) -> bool:
        return not any(getattr(self, name).strip() for name in FIELDS)

    @property
    def text(self) -> str:
        """The fields in the search syntax; a field's own quotes cannot end its value early."""
        parts = [self.q.strip()] if self.q.strip() else []
        for name in FIELDS[1:]:
            value = getattr(self, name).replace('"', " ").strip()
            if value:
                parts.append(f'{name}:"{value}"')
        return " ".join(parts)

    def params(self, **changes: object) -> dict[str, str]:
        """The query string for this query with ``changes`` (for facet and page links)."""
        values = {name: str(getattr(self, name)) for name in (*FIELDS, *FILTERS)}
        values["page"] = str(self.page)
        values.update({k: str(v) for k, v in changes.items()})
        return {k: v for k, v in values.items() if v and not (k == "page" and v == "1")}


def query_from(params: dict[str, str]) -> Query:
    def get(name: str, limit: int = MAX_FIELD_CHARS) -> str:
        return params.get(name, "")[:limit]

    try:
        page = max(1, min(engine.MAX_PAGE, int(params.get("page", "1"))))
    except ValueError:
        page = 1
    year = get("year", 5)
    return Query(
        q=get("q"),
        title=get("title"),
        author=get("author"),
        subject=get("subject"),
        isbn=get("isbn", 40),
        library=get("library", 80),
        year=year if year.lstrip("-").isdigit() else "",
        language=get("language", 40),
        format=get("format", 40),
        page=page,
    )


@dataclass
class Results:
    hits: list[Hit]
    total: int
    exact: bool  # False: ``total`` is an estimate (a very common word)
    facets: dict[str, list[tuple[str, str, int]]] = field(default_factory=dict)  # value, label, n
    pages: int = 1
    error: str = ""  # the search module's own words on what is wrong with the query


def run(conn: sqlite3.Connection, query: Query) -> Results:
    if query.empty:
        return Results([], 0, True)
    year = int(query.year) if query.year else None
    try:
        parsed = engine.parse_query(
            query.text,
            page=query.page,
            per_page=PAGE_SIZE,
            library=query.library or None,
            language=query.language or None,
            format=query.format or None,
            year_from=year,
            year_to=year,
        )
        found = engine.run_query(conn, parsed)
    except QueryError as exc:
        return Results([], 0, True, error=str(exc))
    facets: dict[str, list[tuple[str, str, int]]] = {}
    for name in FACETS:
        counts = found.facets.get(name, {})
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:FACET_VALUES]
        if name == "year":
            ordered.sort(key=lambda kv: str(kv[0]), reverse=True)
        labels = found.library_names if name == "library" else {}
        facets[name] = [(str(v), str(labels.get(v, v)), int(n)) for v, n in ordered]
    pages = max(1, found.pages)  # paging reaches the best candidates, not an estimated total
    return Results(found.hits, found.total, found.total_exact, facets, pages)
