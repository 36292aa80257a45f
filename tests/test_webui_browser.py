"""End to end in a real headless Chromium (Debian's package, driven by Playwright): two real
daemons on loopback, peered; the librarian at B logs in, searches, opens a record A holds and
switches language; A's hostile catalogue renders inert at B; forged and cross-site POSTs and a
rebound Host are refused."""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Error, Page, sync_playwright

from .nodes import NodeProc, peer, wait_for
from .webui_data import JS_LINK, PASSWORD, write_books, write_hostile

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")
MakeNode = Callable[[str], NodeProc]

if not CHROMIUM.exists():  # `make browser` installs it; only a machine without apt lacks it
    pytest.skip(
        f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium)",
        allow_module_level=True,
    )


@pytest.fixture
def network(make_node: MakeNode, tmp_path: Path) -> Iterator[tuple[NodeProc, NodeProc]]:
    """A (with real and hostile records) and B (a librarian's node, staff password set)."""
    a, b = make_node("Perpustakaan Alfa"), make_node("Perpustakaan Beta")
    a.cli("catalog", "import", str(write_hostile(tmp_path / "hostile.json")))
    a.cli("catalog", "import", str(write_books(tmp_path / "books.json", 200)))
    password = tmp_path / "password.txt"
    password.write_text(PASSWORD + "\n", "utf-8")
    b.cli("staff", "password", "--password-file", str(password))
    a.start()
    peer(a, b)
    b.start()
    want = a.records()
    wait_for(lambda: b.records() >= want, 60, "B to hold A's catalogue")
    yield a, b


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            # Root in a container has no user namespaces for Chromium's sandbox. The rule maps
            # an attacker's name to loopback, as a DNS rebinding attack would.
            args=["--no-sandbox", "--host-resolver-rules=MAP rebind.test 127.0.0.1"],
        )
        yield chromium
        chromium.close()


def watched_page(browser: Browser, locale: str = "id-ID") -> tuple[Page, list[str]]:
    """A fresh page; every dialog, console error and page error it meets is listed."""
    context = browser.new_context(locale=locale)
    page = context.new_page()
    events: list[str] = []

    def dialog(d: Dialog) -> None:
        events.append(f"dialog: {d.message}")
        d.dismiss()

    def console(m: ConsoleMessage) -> None:
        if m.type == "error":  # a refused resource or a CSP violation is reported here
            events.append(f"console: {m.text}")

    def error(e: Error) -> None:
        events.append(f"pageerror: {e}")

    page.on("dialog", dialog)
    page.on("console", console)
    page.on("pageerror", error)
    return page, events


def log_in(page: Page, base: str) -> None:
    page.goto(f"{base}/staff/login")
    page.get_by_label("Kata sandi staf").fill(PASSWORD)
    page.get_by_role("button", name="Masuk").click()
    page.wait_for_url(f"{base}/staff")


def test_librarian_searches_opens_a_union_entry_and_switches_language(
    network: tuple[NodeProc, NodeProc], browser: Browser
) -> None:
    _a, b = network
    base = f"http://{b.address}"
    page, events = watched_page(browser)
    log_in(page, base)
    assert page.locator("h1").inner_text() == "Ringkasan untuk staf"
    page.goto(base + "/")
    assert page.locator("html").get_attribute("lang") == "id"
    # Keyboard: the skip link comes first and lands on the content.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.get_by_label("Kata apa saja").fill("Maluku")
    page.get_by_role("button", name="Telusur").click()
    page.wait_for_url(re.compile(r".*/search\?q=Maluku"))
    assert "1 hasil" in page.locator("#results-heading").inner_text()
    page.get_by_role("link", name="Sejarah Maluku").click()
    page.wait_for_url(re.compile(r".*/entry\?.*"))
    holders = page.locator("table.holders tbody tr")
    assert holders.count() == 1 and "Perpustakaan Alfa" in holders.first.inner_text()
    assert "Dimiliki oleh 1 perpustakaan" in page.locator("h2").first.inner_text()
    page.get_by_role("link", name="English").click()
    page.wait_for_url(re.compile(r".*/entry\?.*"))
    assert page.locator("html").get_attribute("lang") == "en"
    assert "Held by 1 library" in page.locator("h2").first.inner_text()
    page.goto(base + "/staff/network")
    assert page.locator("svg circle").count() == 2  # B and A
    assert "Perpustakaan Alfa" in (page.locator("svg").text_content() or "")
    page.get_by_role("link", name="Bahasa Indonesia").click()
    assert page.locator("h1").inner_text() == "Peta jaringan"
    assert events == []


def test_hostile_catalogue_from_a_peer_renders_inert(
    network: tuple[NodeProc, NodeProc], browser: Browser
) -> None:
    a, b = network
    base = f"http://{b.address}"
    page, events = watched_page(browser, locale="en-US")
    for query in ("script", "onerror", "txt", "raksasa"):
        page.goto(f"{base}/search?q={query}")
        assert page.locator("ol.hits li").count() >= 1, query
        assert page.locator("script").count() == 0
        assert page.locator("img").count() == 0
        assert page.locator('a[href^="javascript"]').count() == 0
    page.goto(f"{base}/search?q=script")
    assert "<script>alert('judul')</script>" in page.locator("ol.hits").inner_text()
    page.goto(f"{base}/search?q=txt")
    assert page.locator("bdi", has_text="txt.exe").count() == 1
    page.get_by_role("link", name=re.compile("Buku")).click()
    page.wait_for_url(re.compile(r".*/entry\?.*"))
    assert JS_LINK in page.locator("dl.record").inner_text()
    assert page.locator('a[href^="javascript"]').count() == 0
    page.goto(f"{base}/search?q=raksasa")
    page.get_by_role("link", name=re.compile("Judul raksasa")).click()
    page.wait_for_url(re.compile(r".*/entry\?.*"))
    assert len(page.locator("h1").inner_text()) <= 5001
    page.goto(f"{base}/library?id={a.status()['node_id']}")
    assert page.locator("h1").inner_text() == "Perpustakaan Alfa"
    assert events == []


class _AttackerPage(http.server.BaseHTTPRequestHandler):
    """Another origin on loopback: a form that posts to the node, which the victim clicks."""

    target = ""

    def do_GET(self) -> None:
        body = (
            f'<form method="post" action="{self.target}/staff/peers/invite">'
            '<input type="hidden" name="csrf" value="' + "0" * 64 + '">'
            '<button type="submit">Hadiah gratis</button></form>'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_forged_cross_site_and_rebound_requests_are_refused(
    network: tuple[NodeProc, NodeProc], browser: Browser
) -> None:
    _, b = network
    base = f"http://{b.address}"
    page, _events = watched_page(browser, locale="en-US")
    log_in_en(page, base)
    # A form on the node itself whose CSRF token was tampered with.
    page.goto(base + "/staff/peers")
    page.evaluate(
        "document.querySelectorAll('input[name=csrf]').forEach(i => i.value = '0'.repeat(64))"
    )
    page.get_by_role("button", name="Make an invite code").click()
    assert page.locator("h1").inner_text() == "The form was refused"
    page.goto(base + "/staff/peers")
    assert page.locator("#invite-code").count() == 0
    # Another site's form, clicked by the logged-in librarian: its Origin is refused.
    _AttackerPage.target = base
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AttackerPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        with page.expect_response(lambda r: r.url.endswith("/staff/peers/invite")) as answer:
            page.get_by_role("button", name="Hadiah gratis").click()
        assert answer.value.status == 403
        assert "another site" in page.content()
    finally:
        server.shutdown()
        server.server_close()
    # DNS rebinding: the attacker's name resolves to the node; the node refuses the name.
    response = page.goto(f"http://rebind.test:{b.port}/staff")
    assert response is not None and response.status == 421


def log_in_en(page: Page, base: str) -> None:
    page.goto(f"{base}/staff/login")
    page.get_by_label("Staff password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/staff")
