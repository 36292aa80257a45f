"""The loans, statistics, agreements, copy and report pages in-process: real homes and SQLite,
entries passed between libraries as sync passes them, every form a real POST with its CSRF
token. A step the state does not allow is refused in the reader's language; hostile notes and
policies render inert; a third library sees that a note exists, never what it says."""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from peernode import cooperation
from peernode.catalog import import_catalog
from peernode.daemon import make_app
from peernode.home import Home
from peernode.webui import auth, charts, loanactions
from protocol import decode_entry, node_id
from protocol.loans import (
    TRANSITIONS,
    Loan,
    LoanRequest,
    Role,
    Service,
    State,
)

from .nodes import offline_home
from .webui_data import JS_LINK, PASSWORD

Client = TestClient[web.Request, web.Application]
CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')
REQUEST_PAGE = re.compile(r"/staff/loans/([0-9a-f]{64})$")
EN = {"Accept-Language": "en"}
NOTE = "<script>alert('catatan')</script> kirim ke Jl. Pattimura 1"
BOOK = {"id": "a-1", "title": "Sejarah Maluku", "author": "Leirissa, R. Z.", "year": "1999"}


def sync_all(*homes: Home) -> None:
    """Every log of every home to every other, verified and placed as a peer's entries are."""
    stores = [h.open_store() for h in homes]
    try:
        for source in stores:
            for target in stores:
                if source is target:
                    continue
                for key, head in source.heads().items():
                    held = target.head(key)
                    first = held.seq + 1 if held else 1
                    if first <= head.seq:
                        raws = source.entry_raws(key, first, head.seq, 1 << 30)
                        target.apply(key, [decode_entry(r, now_ms=None) for r in raws])
    finally:
        for store in stores:
            store.conn.close()


@dataclass
class Libraries:
    a: Home  # holds the book; its policy and offer carry hostile text
    b: Home  # asks for it
    c: Home  # a third member: relays, and must not read the notes


@pytest.fixture
def libraries(tmp_path: Path) -> Libraries:
    a, b, c = (offline_home(tmp_path, name) for name in ("Alfa", "Beta", "Gamma"))
    book = tmp_path / "book.json"
    book.write_text(json.dumps([BOOK]), "utf-8")
    for home in (a, b, c):
        store = home.open_store()
        try:
            auth.set_password(store.conn, PASSWORD)
            if home is a:
                import_catalog(store, home.key, book)
                cooperation.set_policy(
                    store,
                    home.key,
                    {
                        "lends": True,
                        "copies": True,
                        "serves": "all",
                        "loan_days": 14,
                        "contact": JS_LINK,
                        "formats": ["<img src=x onerror=alert(1)>"],
                    },
                )
                cooperation.add_offer(
                    store,
                    home.key,
                    {"id": "a-1", "service": "both", "record": "a-1", "note": "<b>gratis</b>"},
                )
        finally:
            store.conn.close()
    sync_all(a, b, c)
    return Libraries(a, b, c)


async def csrf_of(client: Client, path: str) -> str:
    response = await client.get(path)
    match = CSRF.search(await response.text())
    assert match, f"no CSRF field on {path}"
    return match.group(1)


async def logged_in(aiohttp_client: AiohttpClient, home: Home) -> Client:
    client = await aiohttp_client(make_app(home))
    token = await csrf_of(client, "/staff/login")
    response = await client.post(
        "/staff/login",
        data={"csrf": token, "password": PASSWORD, "next": "/staff"},
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    return client


@pytest.fixture
async def clients(
    libraries: Libraries, aiohttp_client: AiohttpClient
) -> AsyncIterator[tuple[Client, Client, Client]]:
    yield (
        await logged_in(aiohttp_client, libraries.a),
        await logged_in(aiohttp_client, libraries.b),
        await logged_in(aiohttp_client, libraries.c),
    )


def entry_path(home: Home, rid: str) -> str:
    return f"/entry?library={node_id(home.public_key)}&id={rid}"


def step_forms(page: str, request_id: str) -> list[str]:
    """The actions offered as forms for one request on a page."""
    pattern = (
        rf'action="/staff/loans/{request_id}/step"[^>]*>\s*'
        r'<input type="hidden" name="csrf" value="[0-9a-f]+">\s*'
        r'<input type="hidden" name="action" value="([A-Za-z]+)">'
    )
    return re.findall(pattern, page)


async def post_step(client: Client, request_id: str, action: str, **fields: str) -> str:
    token = await csrf_of(client, f"/staff/loans/{request_id}")
    response = await client.post(
        f"/staff/loans/{request_id}/step",
        data={"csrf": token, "action": action, **fields},
        allow_redirects=False,
        headers=EN,
    )
    assert response.status == 303, await response.text()
    return response.headers["Location"]


async def test_a_request_is_made_answered_and_shipped_through_the_pages(
    libraries: Libraries, clients: tuple[Client, Client, Client]
) -> None:
    a, b, c = clients
    entry = await b.get(entry_path(libraries.a, "a-1"), headers=EN)
    page = await entry.text()
    assert "Request this" in page and "Copy into my catalogue" in page
    token = CSRF.search(page)
    assert token
    form = {
        "csrf": token.group(1),
        "library": node_id(libraries.a.public_key),
        "id": "a-1",
        "service": "loan",
        "note": NOTE,
    }
    # No token, a forged token: refused before anything is signed.
    for bad in ({k: v for k, v in form.items() if k != "csrf"}, {**form, "csrf": "0" * 64}):
        refused = await b.post("/staff/loans/request", data=bad, allow_redirects=False)
        assert refused.status == 403
    # A copy must carry its copyright declaration: said in the reader's language.
    copy = await b.post(
        "/staff/loans/request",
        data={**form, "service": "copy"},
        headers={"Accept-Language": "id"},
    )
    assert copy.status == 400
    assert "wajib menyatakan ketentuan hak ciptanya" in await copy.text()
    made = await b.post("/staff/loans/request", data=form, allow_redirects=False)
    assert made.status == 303, await made.text()
    found = REQUEST_PAGE.search(made.headers["Location"])
    assert found
    request_id = found.group(1)
    outgoing = await (await b.get("/staff/loans", headers=EN)).text()
    assert "Waiting for the lender" in outgoing
    assert step_forms(outgoing, request_id) == ["Cancel"]

    sync_all(libraries.a, libraries.b, libraries.c)
    incoming = await (await a.get("/staff/loans", headers=EN)).text()
    assert "Requests to this library" in incoming and "Sejarah Maluku" in incoming
    # Exactly the lender's rows of the table for a loan at RequestReceived.
    assert set(step_forms(incoming, request_id)) == {"WillSupply", "Conditional", "Unfilled"}
    detail = await (await a.get(f"/staff/loans/{request_id}", headers=EN)).text()
    assert html.escape(NOTE, quote=False) in detail.replace("&#39;", "'")
    assert "<script>alert('catatan')" not in detail
    # The relay holds the request and its sealed note, and cannot read it.
    relay = await (await c.get(f"/staff/loans/{request_id}", headers=EN)).text()
    assert "Sealed: only the libraries of this request can read it." in relay
    assert "Pattimura" not in relay and step_forms(relay, request_id) == []

    step = f"/staff/loans/{request_id}/step"
    for forged in ({"action": "WillSupply"}, {"action": "WillSupply", "csrf": "0" * 64}):
        assert (await a.post(step, data=forged, allow_redirects=False)).status == 403
    token_a = await csrf_of(a, f"/staff/loans/{request_id}")
    late = await a.post(step, data={"csrf": token_a, "action": "Conditional"}, headers=EN)
    assert late.status == 400 and "Write the conditions" in await late.text()
    await post_step(a, request_id, "WillSupply")
    bad_due = await a.post(step, data={"csrf": token_a, "action": "Loaned", "due": "besok"})
    assert bad_due.status == 400 and "TTTT-BB-HH" in await bad_due.text()
    location = await post_step(a, request_id, "Loaned", note="paket pos 1234", next="/staff/loans")
    assert location == "/staff/loans"
    # Answering again is not allowed now: refused, saying the state and what remains.
    again = await a.post(
        f"/staff/loans/{request_id}/step",
        data={"csrf": token_a, "action": "WillSupply"},
        headers={"Accept-Language": "id"},
    )
    text = await again.text()
    assert again.status == 409
    assert "“Akan memenuhi” tidak dapat dilakukan sekarang" in text
    assert "“Dikirim, dalam perjalanan”" in text
    english = await a.post(
        f"/staff/loans/{request_id}/step",
        data={"csrf": token_a, "action": "Received"},
        headers=EN,
    )
    assert english.status == 409
    assert "“Received” is not possible now" in await english.text()
    # The requester's step, tried by the lender, was not signed: the state is unchanged.
    assert "Shipped, on its way" in await (await a.get("/staff/loans", headers=EN)).text()

    sync_all(libraries.a, libraries.b, libraries.c)
    answered = await (await b.get("/staff/loans", headers=EN)).text()
    assert "Shipped, on its way" in answered
    assert step_forms(answered, request_id) == ["Received"]
    shown = await (await b.get(f"/staff/loans/{request_id}", headers=EN)).text()
    assert "paket pos 1234" in shown and "Will supply" in shown
    stats = await (await b.get("/staff/statistics", headers=EN)).text()
    assert "<svg" in stats and "<rect" in stats and "Alfa" in stats


async def test_staff_pages_need_a_login_and_public_loans_page_points_there(
    libraries: Libraries, aiohttp_client: AiohttpClient
) -> None:
    client = await aiohttp_client(make_app(libraries.b))
    for path in ("/staff/loans", "/staff/statistics", "/staff/agreements", "/staff/intents"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 303 and response.headers["Location"].startswith(
            "/staff/login?next="
        ), path
    public = await client.get("/loans", headers=EN)
    assert public.status == 200 and "ask the library staff" in await public.text()
    entry = await (await client.get(entry_path(libraries.a, "a-1"), headers=EN)).text()
    assert "Request this" not in entry and "Copy into my catalogue" not in entry


async def test_copy_into_my_catalogue(
    libraries: Libraries, clients: tuple[Client, Client, Client]
) -> None:
    _a, b, _c = clients
    token = await csrf_of(b, entry_path(libraries.a, "a-1"))
    form = {"library": node_id(libraries.a.public_key), "id": "a-1"}
    assert (await b.post("/staff/copy", data=form, allow_redirects=False)).status == 403
    copied = await b.post("/staff/copy", data={**form, "csrf": token}, allow_redirects=False)
    assert copied.status == 303
    own = await b.get(copied.headers["Location"], headers=EN)
    page = await own.text()
    assert "Copied into this library" in page and "Held by 2 libraries" in page
    again = await b.post("/staff/copy", data={**form, "csrf": token}, headers=EN)
    assert again.status == 409 and "already has a record" in await again.text()


async def test_agreements_are_proposed_signed_and_withdrawn(
    libraries: Libraries, clients: tuple[Client, Client, Client]
) -> None:
    a, b, _c = clients
    token = await csrf_of(a, "/staff/agreements")
    proposal = {
        "title": "Kerja sama <i>Maluku</i>",
        "partner": node_id(libraries.b.public_key),
        "scope_loans": "1",
        "start": "2026-01-01",
        "end": "2099-12-31",
        "terms": "ongkos kirim <b>ditanggung</b> peminta",
    }
    assert (await a.post("/staff/agreements/propose", data=proposal)).status == 403
    bad = await a.post(
        "/staff/agreements/propose", data={**proposal, "csrf": token, "end": "31/12"}, headers=EN
    )
    assert bad.status == 400 and "Write the date as YYYY-MM-DD." in await bad.text()
    made = await a.post("/staff/agreements/propose", data={**proposal, "csrf": token}, headers=EN)
    page = await made.text()
    assert made.status == 200 and "this library has signed it" in page
    assert "Kerja sama &lt;i&gt;Maluku&lt;/i&gt;" in page and "<b>ditanggung" not in page
    sync_all(libraries.a, libraries.b, libraries.c)
    listed = await (await b.get("/staff/agreements", headers=EN)).text()
    agreement_id = re.search(r'action="/staff/agreements/([0-9a-f]{64})/sign"', listed)
    assert agreement_id and "proposed: waiting for signatures" in listed
    path = f"/staff/agreements/{agreement_id.group(1)}"
    token_b = await csrf_of(b, "/staff/agreements")
    assert (await b.post(path + "/sign", data={})).status == 403
    signed = await (await b.post(path + "/sign", data={"csrf": token_b}, headers=EN)).text()
    assert "This library signed the agreement." in signed and "in force" in signed
    twice = await b.post(path + "/sign", data={"csrf": token_b}, headers=EN)
    assert twice.status == 409 and "has signed it already" in await twice.text()
    assert (await b.post(path + "/withdraw", data={"reason": "tutup"})).status == 403
    withdrawn = await b.post(path + "/withdraw", data={"csrf": token_b, "reason": "tutup"})
    assert withdrawn.status == 200 and "ditarik" in await withdrawn.text()


async def test_library_page_shows_its_policy_and_offers_inert(
    libraries: Libraries, aiohttp_client: AiohttpClient
) -> None:
    client = await aiohttp_client(make_app(libraries.b))
    page = await (
        await client.get(f"/library?id={node_id(libraries.a.public_key)}", headers=EN)
    ).text()
    assert "Lending policy" in page and "14 days" in page and "every member" in page
    assert JS_LINK in page and 'href="javascript' not in page.lower()
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&lt;b&gt;gratis&lt;/b&gt;" in page and "Loan offers" in page
    own = await (
        await client.get(f"/library?id={node_id(libraries.b.public_key)}", headers=EN)
    ).text()
    assert "Not published: a library without a policy lends" in own


async def test_new_acquisitions_serials_and_intents(
    libraries: Libraries, clients: tuple[Client, Client, Client]
) -> None:
    _a, b, _c = clients
    new = await (await b.get("/new?days=7", headers=EN)).text()
    assert "Sejarah Maluku" in new and "1 new record" in new
    assert (await b.get("/new?library=nonsense")).status == 404
    serials = await b.get("/serials?q=jurnal", headers=EN)
    assert serials.status == 200 and "No serial matches." in await serials.text()
    token = await csrf_of(b, "/staff/intents")
    intent = {"title": "<script>Buku</script> baru", "isbn": "9789794613566", "planned": "2027-03"}
    assert (await b.post("/staff/intents", data=intent)).status == 403
    made = await b.post("/staff/intents", data={**intent, "csrf": token}, headers=EN)
    page = await made.text()
    assert made.status == 200 and "Announced to every member." in page
    assert "&lt;script&gt;Buku&lt;/script&gt; baru" in page and "<script>Buku" not in page
    bad = await b.post("/staff/intents", data={"csrf": token, "isbn": "123"}, headers=EN)
    assert bad.status == 400 and "not a valid ISBN" in await bad.text()
    late = await b.post("/staff/intents", data={"csrf": token, "title": "X", "planned": "soon"})
    assert late.status == 400 and "YYYY-MM" in await late.text()


def test_buttons_come_from_the_transition_table() -> None:
    """For every state, service and party, the dashboard's buttons (from the table's rows) are
    exactly the steps the protocol's own check allows."""
    requester, lender = b"r" * 32, b"l" * 32
    for service in Service:
        request = LoanRequest(b"q" * 32, requester, service, "t", "", ((lender, "x"),), 0, {})
        for state in State:
            loan = Loan(request, state, 0, request.id, ())
            for role, key in ((Role.REQUESTER, requester), (Role.LENDER, lender)):
                table = loanactions.allowed(state, service, role)
                assert set(table) == set(loanactions.allowed_on(loan, key)), (state, role)
                assert all((state, a) in TRANSITIONS for a in table)
            assert loanactions.allowed(state, service, "") == []
    # Every action and state has words on the page (a new one would show its code otherwise).
    assert {str(a) for a in loanactions.ACTION_LABELS} == {str(a) for _, a in TRANSITIONS}
    assert set(loanactions.STATE_LABELS) == set(State)


def test_bar_chart_geometry() -> None:
    chart = charts.bar_chart([("A", (3.0, None)), ("B", (7.0, 1.0))], ["lent", "borrowed"])
    assert charts.nice_ceiling(7) == 10 and charts.nice_ceiling(0.3) == 0.5
    right = charts.WIDTH - charts.VALUE_ROOM
    assert [t.text for t in chart.ticks] == ["0", "5", "10"]
    widths = [round(b.width, 1) for b in chart.bars]
    assert widths == [round((right - charts.LABEL_WIDTH) * f, 1) for f in (0.3, 0.0, 0.7, 0.1)]
    assert chart.bars[1].text == "—" and not chart.empty
    many = charts.bar_chart([(str(n), (1.0,)) for n in range(50)], ["x"])
    assert len(many.rows) == charts.MAX_ROWS and many.left_out == 20
