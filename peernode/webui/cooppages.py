"""The cooperation pages for staff: loan statistics drawn as charts, agreements (propose, sign,
withdraw) and intents to purchase. Reads and writes go through peernode/loans.py,
peernode/cooperation.py and peernode/intents.py, the functions the CLI calls."""

from __future__ import annotations

import gettext
import sqlite3
from typing import Any

from aiohttp import web

from protocol import node_id, parse_node_id
from protocol.cooperation import EXPIRED, IN_FORCE, NOT_STARTED, PROPOSED, SCOPES, WITHDRAWN
from protocol.errors import ProtocolError
from protocol.loans import is_date

from .. import cooperation, intents, loans
from ..cooperation import CooperationError, today
from ..node import NODE, Node
from ..store import OwnHeadUnconfirmed
from . import charts
from .loanpages import FormError, own_head_words
from .render import gettext_for, render
from .staff import checked_form, refuse_csrf, staff_only

MAX_PARTNER_CHOICES = 500  # libraries offered in the propose form
MAX_AGREEMENTS = 200
MAX_INTENTS = 200
AGREEMENT_ID = "{id:[0-9a-f]{64}}"


def _(message: str) -> str:
    """Marks a message for tools.i18n; the templates translate it when they show it."""
    return message


STANDINGS = {
    PROPOSED: _("proposed: waiting for signatures"),
    IN_FORCE: _("in force"),
    NOT_STARTED: _("signed, not started yet"),
    EXPIRED: _("expired"),
    WITHDRAWN: _("withdrawn"),
}
SCOPE_LABELS = {
    "catalogue": _("sharing catalogues"),
    "loans": _("loans"),
    "copies": _("copies"),
    "reciprocal": _("reciprocal borrowing"),
}


# --- statistics ------------------------------------------------------------------------------


def statistics_charts(data: dict[str, Any], tr: gettext.NullTranslations) -> dict[str, Any]:
    partners, libraries = data["partners"], data["libraries"]
    balance = charts.bar_chart(
        [(p["name"], (p["lent_to"], p["borrowed_from"])) for p in partners],
        [tr.gettext("Lent to them"), tr.gettext("Borrowed from them")],
        fmt=lambda v: f"{v:g}",  # whole items on the bars; the axis may show a half
    )
    filled = [lib for lib in libraries if lib["fill_rate"] is not None]
    fill = charts.bar_chart(
        [(lib["name"], (lib["fill_rate"] * 100,)) for lib in filled],
        [tr.gettext("Requests supplied, of those answered")],
        fmt=lambda v: f"{v:.0f}%",
        maximum=100.0,
    )
    timed = [lib for lib in libraries if lib["turnaround_hours"] is not None]
    turnaround = charts.bar_chart(
        [(lib["name"], (lib["turnaround_hours"],)) for lib in timed],
        [tr.gettext("Hours from request to supply (median)")],
        fmt=lambda v: f"{v:.1f}",
    )
    return {"balance": balance, "fill": fill, "turnaround": turnaround}


@staff_only
async def statistics_page(request: web.Request) -> web.Response:
    node = request.app[NODE]
    data = await node.call(loans.statistics, node.store.conn, node.public_key)
    drawn = statistics_charts(data, gettext_for(request))
    return await render(request, "statistics.html", stats=data, **drawn)


# --- agreements ------------------------------------------------------------------------------


def agreement_rows(conn: sqlite3.Connection, own: bytes) -> dict[str, Any]:
    day, me = today(), node_id(own)
    rows = [cooperation.agreement_json(conn, a, day) for a in cooperation.agreements(conn).values()]
    for row in rows:
        parties = {p["node_id"]: p for p in row["parties"]}
        row["mine"] = me in parties
        row["can_sign"] = (
            row["mine"] and not parties[me]["signed"] and row["status"] not in (EXPIRED, WITHDRAWN)
        )
        row["can_withdraw"] = row["mine"] and not row["withdrawn_by"]
        row["standing"] = STANDINGS.get(row["status"], row["status"])
        row["scope_words"] = [SCOPE_LABELS.get(s, s) for s in row["scope"]]
    rows.sort(key=lambda r: (not r["mine"], r["end"] < day, r["start"], r["id"]), reverse=False)
    partners = [
        (node_id(author), name)
        for author, name in conn.execute(
            "SELECT author, name FROM libraries WHERE author != ? ORDER BY name COLLATE NOCASE "
            "LIMIT ?",
            (own, MAX_PARTNER_CHOICES),
        )
    ]
    return {"agreements": rows[:MAX_AGREEMENTS], "partners": partners, "today": day}


async def _agreements_page(
    request: web.Request, *, status: int = 200, error: str = "", notice: str = ""
) -> web.Response:
    node = request.app[NODE]
    data = await node.call(agreement_rows, node.store.conn, node.public_key)
    return await render(
        request,
        "agreements.html",
        status=status,
        error=error,
        notice=notice,
        scopes=[(s, SCOPE_LABELS[s]) for s in SCOPES],
        **data,
    )


@staff_only
async def agreements_page(request: web.Request) -> web.Response:
    return await _agreements_page(request)


def _proposal(form: dict[str, str], partners: list[str], tr: gettext.NullTranslations) -> Any:
    title = " ".join(form.get("title", "").split())
    if not title:
        raise FormError(tr.gettext("Give the agreement a title."))
    if len(title) > 300:
        raise FormError(tr.gettext("Write at most %(n)d characters.") % {"n": 300})
    try:
        keys = [parse_node_id(p) for p in partners[:16]]
    except ValueError:
        raise FormError(tr.gettext("Choose the partner libraries from the list.")) from None
    if not keys:
        raise FormError(tr.gettext("Choose at least one partner library."))
    scope = [s for s in SCOPES if form.get(f"scope_{s}")]
    if not scope:
        raise FormError(tr.gettext("Choose what the agreement covers."))
    start, end = form.get("start", "").strip(), form.get("end", "").strip()
    if not (is_date(start) and is_date(end)):
        raise FormError(tr.gettext("Write the date as YYYY-MM-DD."))
    terms = form.get("terms", "").strip()
    if len(terms) > 1000:
        raise FormError(tr.gettext("Write at most %(n)d characters.") % {"n": 1000})
    return {
        "title": title,
        "partners": keys,
        "scope": scope,
        "start": start,
        "end": end,
        "terms": terms,
    }


def _propose(node: Node, values: dict[str, Any]) -> str:
    entry = cooperation.propose(node.store, node.key, **values)
    return entry.hash.hex()


@staff_only
async def propose_agreement(request: web.Request) -> web.Response:
    form = await checked_form(request)
    if form is None:
        return await refuse_csrf(request)
    node = request.app[NODE]
    tr = gettext_for(request)
    post = await request.post()  # read once by checked_form; the partners are a list
    partners = [v for v in post.getall("partner", []) if isinstance(v, str)]
    try:
        values = _proposal(form, partners, tr)
        agreement_id = await node.call(_propose, node, values)
    except FormError as exc:
        return await _agreements_page(request, status=400, error=str(exc))
    except OwnHeadUnconfirmed:
        return await _agreements_page(request, status=409, error=own_head_words(tr))
    except (CooperationError, ProtocolError) as exc:
        error = tr.gettext("The agreement was not proposed: %(why)s") % {"why": str(exc)}
        return await _agreements_page(request, status=409, error=error)
    await node.signed_here()
    notice = tr.gettext("Proposed agreement %(id)s; this library has signed it.") % {
        "id": agreement_id[:12]
    }
    return await _agreements_page(request, notice=notice)


def _decide(node: Node, agreement_id: str, withdraw: bool, reason: str) -> None:
    found = cooperation.find_agreement(node.store.conn, agreement_id)
    if withdraw:
        cooperation.withdraw_agreement(node.store, node.key, found, reason)
    else:
        cooperation.sign_agreement(node.store, node.key, found, today())


def _agreement_action(withdraw: bool) -> Any:
    @staff_only
    async def handler(request: web.Request) -> web.Response:
        form = await checked_form(request)
        if form is None:
            return await refuse_csrf(request)
        node = request.app[NODE]
        tr = gettext_for(request)
        agreement_id = request.match_info["id"]
        reason = form.get("reason", "").strip()[:1000]
        try:
            await node.call(_decide, node, agreement_id, withdraw, reason)
        except OwnHeadUnconfirmed:
            return await _agreements_page(request, status=409, error=own_head_words(tr))
        except (CooperationError, ProtocolError) as exc:
            error = tr.gettext("Nothing was signed: %(why)s") % {"why": str(exc)}
            return await _agreements_page(request, status=409, error=error)
        await node.signed_here()
        notice = (
            tr.gettext("This library withdrew from the agreement; it has ended for every party.")
            if withdraw
            else tr.gettext("This library signed the agreement.")
        )
        return await _agreements_page(request, notice=notice)

    return handler


# --- intents to purchase ---------------------------------------------------------------------


async def _intents_page(
    request: web.Request, *, status: int = 200, error: str = "", notice: str = ""
) -> web.Response:
    node = request.app[NODE]
    rows = await node.call(intents.list_intents, node.store.conn, node.public_key)
    return await render(
        request,
        "intents.html",
        status=status,
        intents=rows[:MAX_INTENTS],
        error=error,
        notice=notice,
    )


@staff_only
async def intents_page(request: web.Request) -> web.Response:
    return await _intents_page(request)


@staff_only
async def announce_intent(request: web.Request) -> web.Response:
    form = await checked_form(request)
    if form is None:
        return await refuse_csrf(request)
    node = request.app[NODE]
    tr = gettext_for(request)
    isbn = [part for part in form.get("isbn", "").replace(",", " ").split() if part][:10]
    title = form.get("title", "").strip()[:500]
    authors = [a.strip() for a in form.get("authors", "").split(";") if a.strip()][:10]
    if not isbn and not title:
        return await _intents_page(
            request, status=400, error=tr.gettext("Give an ISBN or a title.")
        )

    def sign() -> str:
        return intents.announce(
            node.store,
            node.key,
            isbn=isbn,
            title=title,
            authors=authors,
            note=form.get("note", "").strip()[:1000],
            planned=form.get("planned", "").strip()[:100],
        )

    try:
        await node.call(sign)
    except OwnHeadUnconfirmed:
        return await _intents_page(request, status=409, error=own_head_words(tr))
    except (intents.IntentError, ProtocolError) as exc:
        error = tr.gettext("The intent was not announced: %(why)s") % {"why": str(exc)}
        return await _intents_page(request, status=400, error=error)
    await node.signed_here()
    return await _intents_page(request, notice=tr.gettext("Announced to every member."))


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/staff/statistics", statistics_page)
    router.add_get("/staff/agreements", agreements_page)
    router.add_post("/staff/agreements/propose", propose_agreement)
    router.add_post(f"/staff/agreements/{AGREEMENT_ID}/sign", _agreement_action(withdraw=False))
    router.add_post(f"/staff/agreements/{AGREEMENT_ID}/withdraw", _agreement_action(withdraw=True))
    router.add_get("/staff/intents", intents_page)
    router.add_post("/staff/intents", announce_intent)
