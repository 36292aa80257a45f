"""Catalogue pages beyond search: new acquisitions (peernode/reports.py), the union list of
serials (peernode/serials.py), and, for staff, "copy into my catalogue" (peernode/copying.py)."""

from __future__ import annotations

import sqlite3
import time
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from protocol import node_id, parse_node_id
from protocol.errors import ProtocolError

from ..copying import CopyError, copy_record
from ..node import NODE, Node
from ..reports import new_acquisitions
from ..serials import union_list
from ..store import OwnHeadUnconfirmed, now_ms
from .loanpages import entry_with_error, own_head_words
from .render import WEB, gettext_for, render
from .staff import checked_form, refuse_csrf, staff_only

NEW_DAYS = (7, 30, 90, 365)
NEW_SHOWN = 100
SERIALS_SHOWN = 100
# The report counts every record added in the period: a pass over an index range that, on a
# network that just imported a million records, costs a few hundred ms, so a page reuses it.
NEW_CACHE_SECONDS = 60.0


# --- new acquisitions ------------------------------------------------------------------------


def _new(conn: sqlite3.Connection, days: int, library: str) -> dict[str, Any] | None:
    author = None
    if library:
        try:
            author = parse_node_id(library)
        except ValueError:
            return None
    return new_acquisitions(conn, now_ms(), days, author, NEW_SHOWN)


async def new_page(request: web.Request) -> web.Response:
    node = request.app[NODE]
    state = request.app[WEB]
    library = request.query.get("library", "")[:80]
    try:
        days = int(request.query.get("days", "30"))
    except ValueError:
        days = 30
    days = days if days in NEW_DAYS else 30
    key = (days, library)
    cached = state.page_cache.get(("new", key))
    if cached is not None and time.monotonic() - cached[0] < NEW_CACHE_SECONDS:
        report = cached[1]
    else:
        report = await node.call(_new, node.store.conn, days, library)
        state.remember(("new", key), report)
    if report is None:
        return await render(request, "not_found.html", status=404)
    return await render(
        request, "new.html", report=report, days=days, choices=NEW_DAYS, library=library
    )


# --- serials ---------------------------------------------------------------------------------


async def serials_page(request: web.Request) -> web.Response:
    node = request.app[NODE]
    query = request.query.get("q", "")[:200].strip()
    entries = await node.call(union_list, node.store.conn, query) if query else []
    shown = [e.as_dict() for e in entries[:SERIALS_SHOWN]]
    return await render(
        request, "serials.html", q=query, entries=shown, total=len(entries), searched=bool(query)
    )


# --- copy cataloguing ------------------------------------------------------------------------


def _copy(node: Node, ref: str, new_id: str | None) -> str:
    return copy_record(node.store, node.key, ref, new_id).rid


@staff_only
async def copy_into_catalogue(request: web.Request) -> web.StreamResponse:
    form = await checked_form(request)
    if form is None:
        return await refuse_csrf(request)
    node = request.app[NODE]
    tr = gettext_for(request)
    library, rid = form.get("library", "")[:80], form.get("id", "")[:1000]
    new_id = form.get("as", "").strip()[:300] or None
    try:
        copied = await node.call(_copy, node, f"{library}/{rid}", new_id)
    except OwnHeadUnconfirmed:
        return await entry_with_error(request, library, rid, own_head_words(tr), 409)
    except (CopyError, ProtocolError) as exc:
        error = tr.gettext("The record was not copied: %(why)s") % {"why": str(exc)}
        return await entry_with_error(request, library, rid, error, 409)
    await node.signed_here()  # the copy goes out to the peers as ours now
    own = node_id(node.public_key)
    raise web.HTTPSeeOther(f"/entry?{urlencode({'library': own, 'id': copied, 'copied': '1'})}")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/new", new_page)
    router.add_get("/serials", serials_page)
    router.add_post("/staff/copy", copy_into_catalogue)
