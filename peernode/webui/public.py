"""The public pages: search, the union entry, the library directory and profiles (with each
library's published lending policy and loan offers), and the language switch. Read-only:
nothing here writes to the database."""

from __future__ import annotations

import sqlite3
import time

from aiohttp import web

from ..node import NODE
from . import finder, queries
from .i18n import LANG_COOKIE, LANGUAGES
from .render import WEB, render
from .security import local_path

RECORD_COUNTS_SECONDS = 120.0  # the directory's per-library counts are a full index pass


async def search_page(request: web.Request) -> web.Response:
    node = request.app[NODE]
    query = finder.query_from(dict(request.query))
    results = await node.call(finder.run, node.store.conn, query)
    totals = None
    if query.empty:
        totals = await node.call(_totals, node.store.conn)
    return await render(request, "search.html", query=query, results=results, totals=totals)


def _totals(conn: sqlite3.Connection) -> dict[str, int]:
    records = conn.execute("SELECT count(*) FROM records").fetchone()[0]
    libraries = conn.execute("SELECT count(*) FROM libraries").fetchone()[0]
    return {"records": int(records), "libraries": int(libraries)}


async def entry_page(request: web.Request) -> web.Response:
    node = request.app[NODE]
    library, rid = request.query.get("library", ""), request.query.get("id", "")
    entry = await node.call(queries.union_entry, node.store.conn, library, rid)
    if entry is None:
        return await render(request, "not_found.html", status=404)
    copied = request.query.get("copied") == "1"
    return await render(request, "entry.html", entry=entry, error="", copied=copied)


async def libraries_page(request: web.Request) -> web.Response:
    node = request.app[NODE]
    state = request.app[WEB]
    libs = await node.call(queries.libraries, node.store.conn, node.public_key)
    cached = state.record_counts
    if cached is None or time.monotonic() - cached[0] > RECORD_COUNTS_SECONDS:
        counts = await node.call(queries.record_counts, node.store.conn)
        state.record_counts = cached = (time.monotonic(), counts)
    for lib in libs:
        lib.records = cached[1].get(lib.node_id, 0)
    return await render(request, "libraries.html", libraries=libs)


async def library_page(request: web.Request) -> web.Response:
    node = request.app[NODE]
    lib = await node.call(
        queries.library, node.store.conn, node.public_key, request.query.get("id", "")
    )
    if lib is None:
        return await render(request, "not_found.html", status=404)
    recent = await node.call(queries.new_records, node.store.conn, lib.node_id, 1, 10)
    lending = await node.call(queries.lending, node.store.conn, lib.node_id)
    return await render(request, "library.html", library=lib, recent=recent, **lending)


async def switch_language(request: web.Request) -> web.Response:
    """A link, not a form: choosing a language changes nothing but this reader's cookie."""
    lang = request.query.get("to", "")
    target = local_path(request.query.get("next"))
    response = web.HTTPSeeOther(target)
    if lang in LANGUAGES:
        response.set_cookie(
            LANG_COOKIE, lang, max_age=365 * 24 * 3600, httponly=True, samesite="Lax", path="/"
        )
    raise response
