"""The loans pages: the dashboard (requests this library made, and those made to it), one
request with its signed history, the forms that take a step, and "request this" on a union
entry. Every write is peernode/loans.py's own function, as `peernode loan ...` calls it.

A step is offered only when the protocol's table allows it to this library now
(loanactions.py); a step the state no longer allows (another tab, the other party moved first)
is refused with the state and what can be done instead, in the reader's language.
"""

from __future__ import annotations

import gettext
import sqlite3
from typing import Any

from aiohttp import web

from protocol import parse_node_id
from protocol.errors import ProtocolError
from protocol.loans import FINAL, MAX_TEXT_CHARS, Action, Service, is_date, refusal

from .. import loans
from ..node import NODE, Node
from ..store import OwnHeadUnconfirmed
from . import loanactions, queries
from .render import gettext_for, render, staff_account
from .security import local_path
from .staff import checked_form, refuse_csrf, staff_only

MAX_ROWS = 200  # requests listed on the dashboard, most recently changed first
MAX_NOTE_CHARS = 2000  # a sealed note: a few lines for the other library
REQUEST_ID = "{id:[0-9a-f]{64}}"


class FormError(Exception):
    """What is wrong with a submitted form, already in the reader's language."""


def own_head_words(tr: gettext.NullTranslations) -> str:
    return tr.gettext(
        "The daemon has just started and first asks its peers for this library's latest "
        "entries. Try again in a minute."
    )


# --- reading ---------------------------------------------------------------------------------


def dashboard_rows(conn: sqlite3.Connection, own: bytes) -> dict[str, list[dict[str, Any]]]:
    rows = loans.list_loans(conn, own)[:MAX_ROWS]
    for row in rows:
        row["actions"] = loanactions.forms(
            loanactions.allowed(row["state"], row["service"], row["role"])
        )
        row["open"] = row["state"] not in FINAL
    return {
        "outgoing": [r for r in rows if r["role"] == "requester"],
        "incoming": [r for r in rows if r["role"] != "requester"],
    }


async def public_loans(request: web.Request) -> web.StreamResponse:
    """Readers ask at the desk; the staff's dashboard is behind the login."""
    if await staff_account(request) is not None:
        raise web.HTTPSeeOther("/staff/loans")
    return await render(request, "loans_public.html")


@staff_only
async def dashboard(request: web.Request) -> web.Response:
    node = request.app[NODE]
    rows = await node.call(dashboard_rows, node.store.conn, node.public_key)
    return await render(request, "loans.html", incoming=rows["incoming"], outgoing=rows["outgoing"])


def _detail(node: Node, request_id: str) -> dict[str, Any] | None:
    conn = node.store.conn
    try:
        loan = loans.find(conn, request_id)
    except loans.LoanError:
        return None
    data = loans.loan_json(conn, loan, node.public_key, loans.own_box(node.key))
    data["actions"] = loanactions.forms(loanactions.allowed_on(loan, node.public_key))
    data["open"] = loan.state not in FINAL
    return data


async def _detail_page(
    request: web.Request, request_id: str, *, status: int = 200, error: str = ""
) -> web.Response:
    node = request.app[NODE]
    data = await node.call(_detail, node, request_id)
    if data is None:
        return await render(request, "not_found.html", status=404)
    return await render(request, "loan.html", status=status, loan=data, error=error)


@staff_only
async def detail(request: web.Request) -> web.Response:
    return await _detail_page(request, request.match_info["id"])


# --- taking a step ---------------------------------------------------------------------------


def _step_form(form: dict[str, str], tr: gettext.NullTranslations) -> dict[str, str]:
    values = {name: form.get(name, "").strip() for name in ("action", "reason", "terms", "due")}
    values["note"] = form.get("note", "").strip()
    for name in ("reason", "terms"):
        if len(values[name]) > MAX_TEXT_CHARS:
            raise FormError(tr.gettext("Write at most %(n)d characters.") % {"n": MAX_TEXT_CHARS})
    if len(values["note"]) > MAX_NOTE_CHARS:
        raise FormError(tr.gettext("Write at most %(n)d characters.") % {"n": MAX_NOTE_CHARS})
    if values["due"] and not is_date(values["due"]):
        raise FormError(tr.gettext("Write the date as YYYY-MM-DD."))
    if values["action"] == Action.CONDITIONAL and not values["terms"]:
        raise FormError(tr.gettext("Write the conditions the requesting library must accept."))
    return values


def refusal_words(tr: gettext.NullTranslations, state: str, action: str, left: list[Action]) -> str:
    """Why a step was refused, and what this library can do instead, in the reader's words."""
    said = tr.gettext("“%(action)s” is not possible now: the request is at “%(state)s”.") % {
        "action": tr.gettext(loanactions.action_label(action)),
        "state": tr.gettext(loanactions.state_label(state)),
    }
    if not left:
        return said + " " + tr.gettext("This library has nothing to do on it now.")
    names = ", ".join(f"“{tr.gettext(loanactions.action_label(a))}”" for a in left)
    return said + " " + tr.gettext("This library can now: %(actions)s.") % {"actions": names}


def _take_step(node: Node, request_id: str, values: dict[str, str]) -> tuple[bool, str | None]:
    """Sign the step; (signed, None), or (False, the state) when the table refuses it."""
    conn = node.store.conn
    loan = loans.find(conn, request_id)
    action = values["action"]
    last = loan.history[-1] if loan.history else None
    repeated = last is not None and last.author == node.public_key and last.action == action
    if not repeated and refusal(loan, node.public_key, action) is not None:
        return False, str(loan.state)
    entry = loans.step(
        node.store,
        node.key,
        loan,
        action,
        reason=values["reason"],
        terms=values["terms"],
        due=values["due"] or None,
        note=values["note"],
    )
    return entry is not None, None


@staff_only
async def take_step(request: web.Request) -> web.StreamResponse:
    form = await checked_form(request)
    if form is None:
        return await refuse_csrf(request)
    node = request.app[NODE]
    tr = gettext_for(request)
    request_id = request.match_info["id"]
    try:
        values = _step_form(form, tr)
        signed, refused_in = await node.call(_take_step, node, request_id, values)
    except FormError as exc:
        return await _detail_page(request, request_id, status=400, error=str(exc))
    except OwnHeadUnconfirmed:
        return await _detail_page(request, request_id, status=409, error=own_head_words(tr))
    except (loans.LoanError, ProtocolError) as exc:
        error = tr.gettext("The step was not signed: %(why)s") % {"why": str(exc)}
        return await _detail_page(request, request_id, status=409, error=error)
    if refused_in is not None:
        left = await node.call(_actions_now, node, request_id)
        error = refusal_words(tr, refused_in, values["action"], left)
        return await _detail_page(request, request_id, status=409, error=error)
    if signed:
        await node.signed_here()  # the step leaves for the peers now
    raise web.HTTPSeeOther(local_path(form.get("next"), f"/staff/loans/{request_id}"))


def _actions_now(node: Node, request_id: str) -> list[Action]:
    return loanactions.allowed_on(loans.find(node.store.conn, request_id), node.public_key)


# --- requesting from a union entry ----------------------------------------------------------


def _request_form(form: dict[str, str], tr: gettext.NullTranslations) -> dict[str, Any]:
    try:
        author = parse_node_id(form.get("library", ""))
    except ValueError:
        raise FormError(tr.gettext("This record is not on this node.")) from None
    rid = form.get("id", "")
    if not rid or len(rid) > 1000:
        raise FormError(tr.gettext("This record is not on this node."))
    service = form.get("service", "loan")
    if service not in tuple(Service):
        raise FormError(tr.gettext("Choose a loan or a copy."))
    copyright = form.get("copyright", "").strip()
    if service == Service.COPY and not copyright:
        raise FormError(
            tr.gettext("A copy request must declare its copyright conditions: fill in the box.")
        )
    if len(copyright) > MAX_TEXT_CHARS:
        raise FormError(tr.gettext("Write at most %(n)d characters.") % {"n": MAX_TEXT_CHARS})
    note = form.get("note", "").strip()
    if len(note) > MAX_NOTE_CHARS:
        raise FormError(tr.gettext("Write at most %(n)d characters.") % {"n": MAX_NOTE_CHARS})
    needed_by = form.get("needed_by", "").strip()
    if needed_by and not is_date(needed_by):
        raise FormError(tr.gettext("Write the date as YYYY-MM-DD."))
    return {
        "record": (author, rid),
        "service": Service(service),
        "copyright": copyright if service == Service.COPY else None,
        "note": note,
        "needed_by": needed_by or None,
    }


def _make_request(node: Node, values: dict[str, Any]) -> str:
    entry = loans.request(node.store, node.key, **values)
    return entry.hash.hex()


async def entry_with_error(
    request: web.Request, library: str, rid: str, error: str, status: int
) -> web.Response:
    """The union entry page again, with what went wrong above its forms."""
    node = request.app[NODE]
    entry = await node.call(queries.union_entry, node.store.conn, library, rid)
    if entry is None:
        return await render(request, "not_found.html", status=404)
    return await render(request, "entry.html", status=status, entry=entry, error=error)


@staff_only
async def make_request(request: web.Request) -> web.StreamResponse:
    form = await checked_form(request)
    if form is None:
        return await refuse_csrf(request)
    node = request.app[NODE]
    tr = gettext_for(request)
    library, rid = form.get("library", "")[:80], form.get("id", "")[:1000]
    try:
        values = _request_form(form, tr)
        request_id = await node.call(_make_request, node, values)
    except FormError as exc:
        return await entry_with_error(request, library, rid, str(exc), 400)
    except OwnHeadUnconfirmed:
        return await entry_with_error(request, library, rid, own_head_words(tr), 409)
    except (loans.LoanError, ProtocolError) as exc:
        error = tr.gettext("The request was not made: %(why)s") % {"why": str(exc)}
        return await entry_with_error(request, library, rid, error, 409)
    await node.signed_here()
    raise web.HTTPSeeOther(f"/staff/loans/{request_id}")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/loans", public_loans)
    router.add_get("/staff/loans", dashboard)
    router.add_post("/staff/loans/request", make_request)
    router.add_get(f"/staff/loans/{REQUEST_ID}", detail)
    router.add_post(f"/staff/loans/{REQUEST_ID}/step", take_step)
