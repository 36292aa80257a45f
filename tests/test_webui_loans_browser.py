"""An interlibrary loan end to end in a real headless Chromium (Debian's package, driven by
Playwright): two real daemons on loopback, peered. At B a librarian logs in (in Bahasa
Indonesia), searches, opens the record A holds and requests it; at A another librarian (its
own page, its own login, in English) sees the request on the loans dashboard and answers it,
will supply and then shipped; B's dashboard shows the answer."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, sync_playwright

from .nodes import NodeProc, peer, wait_for
from .webui_data import PASSWORD, write_hostile

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")
MakeNode = Callable[[str], NodeProc]
NOTE = "Untuk mahasiswa S2 <b>sejarah</b>; kirim lewat pos"

if not CHROMIUM.exists():  # `make browser` installs it; only a machine without apt lacks it
    pytest.skip(
        f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium)",
        allow_module_level=True,
    )


def signing_allowed(node: NodeProc) -> bool:
    """A started daemon signs nothing until a peer has shown it its own head."""
    conn = sqlite3.connect(f"file:{node.home / 'node.db'}?mode=ro", uri=True, timeout=10)
    try:
        row = conn.execute("SELECT 1 FROM meta WHERE key = 'own_head_check_until'").fetchone()
        return row is None
    finally:
        conn.close()


@pytest.fixture
def network(make_node: MakeNode, tmp_path: Path) -> Iterator[tuple[NodeProc, NodeProc]]:
    """A holds the records; B is the borrowing library. Both have a staff password."""
    a, b = make_node("Perpustakaan Alfa"), make_node("Perpustakaan Beta")
    a.cli("catalog", "import", str(write_hostile(tmp_path / "records.json")))
    password = tmp_path / "password.txt"
    password.write_text(PASSWORD + "\n", "utf-8")
    for node in (a, b):
        node.cli("staff", "password", "--password-file", str(password))
    a.start()
    peer(a, b)
    b.start()
    want = a.records()
    wait_for(lambda: b.records() >= want, 30, "B to hold A's catalogue")
    wait_for(lambda: signing_allowed(a) and signing_allowed(b), 30, "both to confirm their heads")
    yield a, b


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # Root in a container has no user namespaces for Chromium's sandbox.
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


def librarian(browser: Browser, base: str, locale: str, label: str, button: str) -> Page:
    """A fresh browser context (its own cookies) logged in to the node at ``base``."""
    page = browser.new_context(locale=locale).new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{base}/staff/login")
    page.get_by_label(label).fill(PASSWORD)
    page.get_by_role("button", name=button).click()
    page.wait_for_url(f"{base}/staff")
    return page


def reload_until(page: Page, url: str, text: str, what: str, timeout: float = 20) -> None:
    """Open ``url`` again until ``text`` is on it: the other node's step arrives by sync."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page.goto(url)
        if text in page.locator("main").inner_text():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_a_librarian_requests_and_the_lender_answers_in_the_browser(
    network: tuple[NodeProc, NodeProc], browser: Browser
) -> None:
    a, b = network
    base_a, base_b = f"http://{a.address}", f"http://{b.address}"
    beta = librarian(browser, base_b, "id-ID", "Kata sandi staf", "Masuk")
    events: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":  # a refused resource or a CSP violation is reported here
            events.append(message.text)

    def dialog(shown: Dialog) -> None:
        events.append(shown.message)
        shown.dismiss()

    beta.on("console", console)
    beta.on("dialog", dialog)

    # B searches, opens A's record and asks for it, with a note only A and B can read.
    beta.goto(base_b + "/")
    beta.get_by_label("Kata apa saja").fill("Maluku")
    beta.get_by_role("button", name="Telusur").click()
    beta.get_by_role("link", name="Sejarah Maluku").click()
    beta.wait_for_url(re.compile(r".*/entry\?.*"))
    assert "Perpustakaan Alfa" in beta.locator("table.holders").inner_text()
    beta.get_by_label("Catatan untuk pemberi pinjaman").fill(NOTE)
    beta.get_by_role("button", name="Kirim permintaan").click()
    beta.wait_for_url(re.compile(r".*/staff/loans/[0-9a-f]{64}$"))
    request_id = beta.url.rsplit("/", 1)[1]
    assert "Menunggu pemberi pinjaman" in beta.locator("main").inner_text()
    assert beta.locator("bdi.note").inner_text() == NOTE  # shown as text, not markup
    assert beta.locator("main b").count() == 0

    # A, on its own page with its own login, finds the request and answers it.
    alfa = librarian(browser, base_a, "en-GB", "Staff password", "Log in")
    reload_until(alfa, f"{base_a}/staff/loans", "Sejarah Maluku", "the request to reach A")
    row = alfa.locator("table.loans tr", has_text="Sejarah Maluku")
    buttons = sorted(row.get_by_role("button").all_inner_texts())
    assert buttons == ["Cannot supply", "Supply on conditions", "Will supply"]
    row.get_by_role("button", name="Will supply").click()
    alfa.wait_for_url(f"{base_a}/staff/loans")
    row = alfa.locator("table.loans tr", has_text="Sejarah Maluku")
    assert "Lender will supply" in row.inner_text()
    row.get_by_role("button", name="Shipped").click()
    alfa.wait_for_url(f"{base_a}/staff/loans")
    row = alfa.locator("table.loans tr", has_text="Sejarah Maluku")
    assert "Shipped, on its way" in row.inner_text()
    assert row.get_by_role("button").count() == 0  # the requester's turn now
    alfa.goto(f"{base_a}/staff/loans/{request_id}")
    assert alfa.locator("bdi.note").first.inner_text() == NOTE  # the lender reads the note

    # B sees the answer, and now may only confirm receipt.
    reload_until(beta, f"{base_b}/staff/loans", "Dikirim, dalam perjalanan", "B to see it shipped")
    row = beta.locator("table.loans tr", has_text="Sejarah Maluku")
    assert row.get_by_role("button").all_inner_texts() == ["Diterima"]
    beta.goto(f"{base_b}/staff/loans/{request_id}")
    steps = beta.locator("table tbody").last.inner_text()
    assert "Akan memenuhi" in steps and "Dikirim" in steps and "Perpustakaan Alfa" in steps
    assert events == []
