"""The rule for every JSON API POST that makes this node sign something (a loan step, a copied
record, a purchase intent): the body is a JSON object sent as ``application/json``, and a
request with an Origin header must come from this very page.

A cross-site form cannot send ``application/json`` without a CORS preflight, which this server
never grants, and a cross-site script is refused by its Origin. Which Host names the node
answers to at all is the daemon's Host check (peernode/webui/security.py), which stops DNS
rebinding, so an Origin equal to the Host is the node's own page.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .webui.security import origin_matches


def error(status: int, message: str) -> web.Response:
    """A refusal as the API sends it: ``{"error": message}``."""
    return web.json_response({"error": message}, status=status)


async def json_post(
    request: web.Request, max_bytes: int, acting_on: str
) -> dict[str, Any] | web.Response:
    """The POSTed JSON object, or the refusal to send back (``acting_on`` names what a foreign
    page may not change, for the message)."""
    if request.content_type != "application/json":
        return error(415, "send application/json")
    origin = request.headers.get("Origin")
    if origin is not None and not origin_matches(origin, request.headers.get("Host", "")):
        return error(403, f"requests from {origin[:100]} may not change {acting_on}")
    raw = await request.content.read(max_bytes + 1)
    if len(raw) > max_bytes:
        return error(413, f"the body is larger than {max_bytes} bytes")
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        return error(400, "the body is not JSON")
    if not isinstance(data, dict):
        return error(400, "the body must be a JSON object")
    return data
