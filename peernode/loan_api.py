"""The loan JSON API of the daemon (for the web page) and its one automatic duty, overdue marks.

GET  /api/loans[?all=1]            requests this library takes part in (or all held here)
GET  /api/loans/stats              lent, borrowed, declined, fill rate, turnaround
GET  /api/loans/{id}               one request; sealed details opened only for a party
POST /api/loans                    {"record_id", "holder"?, "service"?, "note"?, "needed_by"?,
                                    "copyright"?, "lenders"?: [node id, ...]}
POST /api/loans/{id}/steps         {"action": ISO 18626 action, "reason"?, "terms"?, "due"?,
                                    "note"?}
GET  /api/agreements, /api/policies, /api/offers
POST /api/agreements/{id}/sign, /api/agreements/{id}/withdraw {"reason"?}

A POST must be ``application/json`` and, when it has an Origin header, come from this node's
own page (Origin equal to the Host the daemon answered to): a page on another site cannot
drive loans through a librarian's browser (a cross-site form cannot send JSON, and a cross-site
script is refused by its Origin). Errors are
``{"error": message}`` with 400 (bad input), 404 (unknown id) or 409 (not allowed now).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from protocol import parse_node_id
from protocol.loans import Service, is_date

from . import cooperation, jsonapi, loans
from .cooperation import CooperationError, today
from .node import NODE, Node

log = logging.getLogger("peernode.loans")
OVERDUE_SECONDS = 600.0  # how often the daemon looks for loans past their due date
MAX_BODY = 16 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


_error = jsonapi.error


async def _json_body(request: web.Request) -> dict[str, Any] | web.Response:
    return await jsonapi.json_post(request, MAX_BODY, "this node's loans")


def _text(data: dict[str, Any], name: str, default: str = "") -> str:
    value = data.get(name, default)
    if not isinstance(value, str):
        raise ValueError(f"{name!r} must be text")
    return value


async def _signed(node: Node) -> None:
    await node.signed_here()  # the watcher sees only other processes' writes: announce now


async def list_loans(request: web.Request) -> web.Response:
    node = request.app[NODE]
    mine = request.query.get("all") != "1"
    rows = await node.call(lambda: loans.list_loans(node.store.conn, node.public_key, mine=mine))
    return web.json_response(rows)


async def loan_stats(request: web.Request) -> web.Response:
    node = request.app[NODE]
    return web.json_response(await node.call(loans.statistics, node.store.conn, node.public_key))


async def show_loan(request: web.Request) -> web.Response:
    node = request.app[NODE]

    def read() -> dict[str, Any]:
        found = loans.find(node.store.conn, request.match_info["id"])
        return loans.loan_json(node.store.conn, found, node.public_key, loans.own_box(node.key))

    try:
        return web.json_response(await node.call(read))
    except loans.LoanError as exc:
        return _error(404, str(exc))


async def create_loan(request: web.Request) -> web.Response:
    node = request.app[NODE]
    data = await _json_body(request)
    if isinstance(data, web.Response):
        return data
    try:
        record_id = _text(data, "record_id")
        holder = parse_node_id(_text(data, "holder")) if data.get("holder") else None
        service = Service(_text(data, "service", "loan"))
        needed_by = _text(data, "needed_by") or None
        if needed_by is not None and not is_date(needed_by):
            raise ValueError("'needed_by' must be a date YYYY-MM-DD")
        lenders = data.get("lenders")
        if lenders is not None and not (
            isinstance(lenders, list) and all(isinstance(x, str) for x in lenders)
        ):
            raise ValueError("'lenders' must be a list of node ids")
        named = [parse_node_id(x) for x in lenders] if lenders else None
        note, copyright = _text(data, "note"), data.get("copyright")
        if copyright is not None and not isinstance(copyright, str):
            raise ValueError("'copyright' must be text")
    except ValueError as exc:
        return _error(400, str(exc))

    def sign() -> dict[str, Any]:
        conn = node.store.conn
        record = loans.find_record(conn, record_id, holder)
        entry = loans.request(
            node.store,
            node.key,
            record,
            service=service,
            note=note,
            needed_by=needed_by,
            copyright=copyright,
            lenders=named,
        )
        found = loans.load(conn, entry.hash)
        assert found is not None
        return loans.loan_json(conn, found, node.public_key, loans.own_box(node.key))

    try:
        result = await node.call(sign)
    except loans.LoanError as exc:
        return _error(409, str(exc))
    await _signed(node)
    return web.json_response(result, status=201)


async def loan_step(request: web.Request) -> web.Response:
    node = request.app[NODE]
    data = await _json_body(request)
    if isinstance(data, web.Response):
        return data
    try:
        action = _text(data, "action")
        reason, terms, note = _text(data, "reason"), _text(data, "terms"), _text(data, "note")
        due = _text(data, "due") or None
        if due is not None and not is_date(due):
            raise ValueError("'due' must be a date YYYY-MM-DD")
    except ValueError as exc:
        return _error(400, str(exc))

    def sign() -> tuple[bool, dict[str, Any]]:
        conn = node.store.conn
        found = loans.find(conn, request.match_info["id"])
        entry = loans.step(
            node.store, node.key, found, action, reason=reason, terms=terms, due=due, note=note
        )
        after = loans.load(conn, found.id)
        assert after is not None
        return entry is not None, loans.loan_json(
            conn, after, node.public_key, loans.own_box(node.key)
        )

    try:
        signed, result = await node.call(sign)
    except loans.LoanError as exc:
        status = 404 if str(exc).startswith("no request") else 409
        return _error(status, str(exc))
    if signed:
        await _signed(node)
    return web.json_response(result)


async def list_agreements(request: web.Request) -> web.Response:
    node = request.app[NODE]

    def read() -> list[dict[str, Any]]:
        conn, day = node.store.conn, today()
        return [
            cooperation.agreement_json(conn, a, day) for a in cooperation.agreements(conn).values()
        ]

    return web.json_response(await node.call(read))


def _agreement_action(withdraw: bool) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        node = request.app[NODE]
        data = await _json_body(request)
        if isinstance(data, web.Response):
            return data
        reason = data.get("reason", "")
        if not isinstance(reason, str):
            return _error(400, "'reason' must be text")

        def sign() -> dict[str, Any]:
            conn = node.store.conn
            found = cooperation.find_agreement(conn, request.match_info["id"])
            if withdraw:
                cooperation.withdraw_agreement(node.store, node.key, found, reason)
            else:
                cooperation.sign_agreement(node.store, node.key, found, today())
            now = cooperation.find_agreement(conn, found.id.hex())
            return cooperation.agreement_json(conn, now, today())

        try:
            result = await node.call(sign)
        except CooperationError as exc:
            return _error(409, str(exc))
        await _signed(node)
        return web.json_response(result)

    return handler


async def list_policies(request: web.Request) -> web.Response:
    node = request.app[NODE]

    def read() -> list[dict[str, Any]]:
        conn = node.store.conn
        own = cooperation.policy_json(conn, node.public_key)
        others = [p for p in cooperation.all_policies(conn) if p["node_id"] != own["node_id"]]
        return [own, *others]

    return web.json_response(await node.call(read))


async def list_offers(request: web.Request) -> web.Response:
    node = request.app[NODE]
    return web.json_response(await node.call(cooperation.offers, node.store.conn, None))


async def overdue_context(app: web.Application) -> AsyncIterator[None]:
    """As lender, mark loans past their due date Overdue (a signed step, like any other)."""
    node = app[NODE]

    async def loop() -> None:
        while True:
            await asyncio.sleep(OVERDUE_SECONDS)
            try:
                marked = await node.call(loans.mark_overdue, node.store, node.key, today())
            except Exception as exc:  # a full disk or a restore must not end the loop
                log.warning("overdue loans not marked: %s", exc)
                continue
            if marked:
                log.info("marked %d loan(s) overdue", len(marked))
                await _signed(node)

    task = asyncio.get_running_loop().create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def add_loan_routes(app: web.Application) -> None:
    """Register the loan API (and the overdue task; after the node's own context)."""
    app.router.add_get("/api/loans", list_loans)
    app.router.add_get("/api/loans/stats", loan_stats)
    app.router.add_get("/api/loans/{id}", show_loan)
    app.router.add_post("/api/loans", create_loan)
    app.router.add_post("/api/loans/{id}/steps", loan_step)
    app.router.add_get("/api/agreements", list_agreements)
    app.router.add_post("/api/agreements/{id}/sign", _agreement_action(withdraw=False))
    app.router.add_post("/api/agreements/{id}/withdraw", _agreement_action(withdraw=True))
    app.router.add_get("/api/policies", list_policies)
    app.router.add_get("/api/offers", list_offers)
    app.cleanup_ctx.append(overdue_context)
