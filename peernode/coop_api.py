"""HTTP JSON API for the union list of serials, the cooperation reports and purchase intents.

GET  /api/serials[?q=]                 the union list of serials (title words or an ISSN)
GET  /api/serials/{id}                 one serial: an ISSN or the id the list gives
GET  /api/reports/new?days=&library=   new acquisitions per library
GET  /api/reports/overlap              titles in common per pair of libraries, unique per library
GET  /api/reports/unique?library=&limit=&offset=   titles held by one library only
GET  /api/intents[?all=1]              every library's intents, with holders
POST /api/intents                      announce one (JSON body); this node signs it
POST /api/intents/{id}/withdraw        withdraw one of ours (JSON body, "reason" optional)

The POSTs sign entries as this library, so they accept only JSON (a cross-site form cannot send
it without a CORS preflight, which this server never grants) and refuse a request whose Origin
header names another site.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from . import jsonapi
from .intents import IntentError, announce, list_intents, withdraw
from .node import NODE
from .reports import new_acquisitions, overlap, unique_titles
from .serials import serial_entry, union_list
from .store import OwnHeadUnconfirmed
from .union import UnknownLibrary, find_library

MAX_BODY_BYTES = 16 * 1024


def add_report_routes(app: web.Application) -> None:
    app.router.add_get("/api/serials", serials_handler)
    app.router.add_get("/api/serials/{id}", serial_handler)
    app.router.add_get("/api/reports/new", new_handler)
    app.router.add_get("/api/reports/overlap", overlap_handler)
    app.router.add_get("/api/reports/unique", unique_handler)
    app.router.add_get("/api/intents", intents_handler)
    app.router.add_post("/api/intents", announce_handler)
    app.router.add_post("/api/intents/{id}/withdraw", withdraw_handler)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(
        data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False, indent=2)
    )


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


def _number(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be a whole number, not {raw[:40]!r}") from None
    if not low <= value <= high:
        raise web.HTTPBadRequest(text=f"{name} must be between {low} and {high}")
    return value


async def serials_handler(request: web.Request) -> web.Response:
    node = request.app[NODE]
    entries = await node.call(union_list, node.store.conn, request.query.get("q", "")[:500])
    return _json([e.as_dict() for e in entries])


async def serial_handler(request: web.Request) -> web.Response:
    node = request.app[NODE]
    wanted = request.match_info["id"][:100]
    entry = await node.call(serial_entry, node.store.conn, wanted)
    if entry is None:
        return _error(404, f"no serial {wanted!r} in the union list")
    return _json(entry.as_dict())


async def _author(request: web.Request) -> bytes | None:
    text = request.query.get("library", "").strip()
    if not text:
        return None
    node = request.app[NODE]
    try:
        found = await node.call(find_library, node.store.conn, text[:200])
    except UnknownLibrary as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    return found.author


async def new_handler(request: web.Request) -> web.Response:
    node = request.app[NODE]
    days = _number(request, "days", 30, 1, 36_500)
    limit = _number(request, "limit", 1000, 0, 10_000)
    author = await _author(request)
    now = int(time.time() * 1000)
    report = await node.call(new_acquisitions, node.store.conn, now, days, author, limit)
    return _json(report)


async def overlap_handler(request: web.Request) -> web.Response:
    node = request.app[NODE]
    conn = node.store.conn
    report = await node.call(lambda: overlap(conn).as_dict(conn))
    return _json(report)


async def unique_handler(request: web.Request) -> web.Response:
    node = request.app[NODE]
    limit = _number(request, "limit", 100, 0, 10_000)
    offset = _number(request, "offset", 0, 0, 10**9)
    author = await _author(request)
    report = await node.call(unique_titles, node.store.conn, author, limit, offset)
    return _json(report)


async def intents_handler(request: web.Request) -> web.Response:
    node = request.app[NODE]
    every = request.query.get("all", "") in ("1", "true", "yes")
    rows = await node.call(
        lambda: list_intents(node.store.conn, node.store.own_key, withdrawn=every)
    )
    return _json(rows)


async def _body(request: web.Request) -> dict[str, Any] | web.Response:
    return await jsonapi.json_post(request, MAX_BODY_BYTES, "this library's intents")


def _texts(data: dict[str, Any], name: str) -> list[str]:
    value = data.get(name, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise web.HTTPBadRequest(text=f"{name!r} must be text or an array of texts")
    return value


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name, "")
    if not isinstance(value, str):
        raise web.HTTPBadRequest(text=f"{name!r} must be text")
    return value


_ANNOUNCE_KEYS = frozenset(("isbn", "title", "authors", "note", "planned"))


async def announce_handler(request: web.Request) -> web.Response:
    node = request.app[NODE]
    data = await _body(request)
    if isinstance(data, web.Response):
        return data
    extra = sorted(set(data) - _ANNOUNCE_KEYS)
    if extra:
        return _error(400, f"unknown field(s): {', '.join(extra)[:200]}")
    isbn, authors = _texts(data, "isbn"), _texts(data, "authors")
    title, note, planned = _text(data, "title"), _text(data, "note"), _text(data, "planned")
    try:
        intent_id = await node.call(
            lambda: announce(
                node.store,
                node.key,
                isbn=isbn,
                title=title,
                authors=authors,
                note=note,
                planned=planned,
            )
        )
    except IntentError as exc:
        return _error(400, str(exc))
    except OwnHeadUnconfirmed as exc:
        return _error(503, str(exc))
    await node.signed_here()
    return _json({"id": intent_id}, 201)


async def withdraw_handler(request: web.Request) -> web.Response:
    node = request.app[NODE]
    data = await _body(request)
    if isinstance(data, web.Response):
        return data
    intent_id = request.match_info["id"][:100]
    reason = _text(data, "reason")
    try:
        await node.call(withdraw, node.store, node.key, intent_id, reason)
    except IntentError as exc:
        return _error(400, str(exc))
    except OwnHeadUnconfirmed as exc:
        return _error(503, str(exc))
    await node.signed_here()
    return _json({"id": intent_id, "status": "withdrawn"})
