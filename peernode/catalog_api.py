"""The JSON API of the shared bibliography: a record with its union entry, and copy cataloguing.

``GET /api/catalog/record?ref=NODE_ID/RECORD_ID`` (or a union entry number) gives the record,
where a copy came from, and every library's record in its union entry.
``POST /api/catalog/copy`` with ``{"ref": ..., "as"?: new id}`` copies a partner's record into
our catalogue (peernode/copying.py). A POST must be ``application/json`` and, when it carries an
Origin header, come from this very page: a cross-site form cannot send JSON, and a cross-site
script is refused by its Origin.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from . import jsonapi
from .bibliography_cli import record_json
from .copying import CopyError, copy_record, locate
from .node import NODE

MAX_BODY = 4096


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def record_handler(request: web.Request) -> web.Response:
    node = request.app[NODE]
    ref = request.query.get("ref", "")[:600]
    if not ref:
        return _error(400, "give ref=NODE_ID/RECORD_ID or a union entry number")

    def read() -> dict[str, Any]:
        return record_json(node.store.conn, locate(node.store.conn, ref))

    try:
        return web.json_response(await node.call(read))
    except CopyError as exc:
        return _error(404, str(exc))


async def copy_handler(request: web.Request) -> web.Response:
    node = request.app[NODE]
    data = await jsonapi.json_post(request, MAX_BODY, "this library's catalogue")
    if isinstance(data, web.Response):
        return data
    if not isinstance(data.get("ref"), str):
        return _error(400, 'the body must be {"ref": "NODE_ID/RECORD_ID", "as"?: "NEW_ID"}')
    new_id = data.get("as")
    if new_id is not None and not isinstance(new_id, str):
        return _error(400, "'as' must be text")
    try:
        copy = await node.call(copy_record, node.store, node.key, data["ref"], new_id)
    except CopyError as exc:
        return _error(409, str(exc))
    await node.signed_here()  # the new entry goes out to the peers now
    return web.json_response({"record_id": copy.rid, "record": copy.to_wire()}, status=201)


def add_catalog_routes(app: web.Application) -> None:
    app.router.add_get("/api/catalog/record", record_handler)
    app.router.add_post("/api/catalog/copy", copy_handler)
