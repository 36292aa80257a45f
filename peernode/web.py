"""The node's web page. Every value from the catalogue is hostile: Jinja2 autoescapes it all,
and the Content-Security-Policy forbids scripts and foreign resources outright."""

from __future__ import annotations

from pathlib import Path

import jinja2
from aiohttp import web

from .node import NODE
from .search import search

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"


async def index(request: web.Request) -> web.Response:
    node = request.app[NODE]
    query = request.query.get("q", "")[:500]
    status = await node.status()
    hits = await node.call(search, node.store.conn, query, 20) if query else []
    html = _TEMPLATES.get_template("index.html").render(status=status, query=query, hits=hits)
    return web.Response(
        text=html,
        content_type="text/html",
        headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"},
    )
