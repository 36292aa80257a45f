"""``python -m tools.screenshots``: the web page's main pages in both languages, as PNG files in
docs/screenshots/, taken in headless Chromium (/usr/bin/chromium) from two real nodes on
loopback, seeded with real records (../shared/data) and peered as librarians would."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "docs" / "screenshots"
PASSWORD = "contoh-kata-sandi"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Node:
    def __init__(self, base: Path, name: str) -> None:
        self.home = base / name.split()[-1].lower()
        self.address = f"127.0.0.1:{_port()}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.cli("init", "--name", name, "--listen", self.address)

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "peernode", "--home", str(self.home), *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )
        if result.returncode != 0:
            sys.exit(f"peernode {' '.join(args)}: {result.stderr}")
        return result.stdout

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "peernode", "--home", str(self.home), "run"], cwd=ROOT
        )
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://{self.address}/api/status", timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        sys.exit(f"the daemon at {self.address} did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


def first_records(node: Node, query: str, count: int) -> list[str]:
    """Record ids of ``node``'s own catalogue that ``query`` finds."""
    hits = json.loads(node.cli("search", query, "--json", "--limit", "50"))
    own = json.loads(node.cli("status", "--json"))["node_id"]
    found = [h["record_id"] for hit in hits for h in hit["holdings"] if h["node_id"] == own]
    return list(dict.fromkeys(found))[:count]


def lend_and_borrow(alfa: Node, beta: Node) -> None:
    """A few loans through the real CLI, so the dashboard and the charts have something to
    show: Beta borrows from Alfa (one shipped, one declined, one waiting), Alfa from Beta."""

    def request(node: Node, rid: str, *extra: str) -> str:
        return str(json.loads(node.cli("loan", "request", rid, "--json", *extra))["id"])

    def reached(node: Node, request_id: str, state: str = "RequestReceived") -> None:
        for _ in range(150):  # sync takes a moment; each try is one CLI run
            rows = json.loads(node.cli("loan", "list", "--json"))
            if any(r["id"] == request_id and r["state"] == state for r in rows):
                return
            time.sleep(0.2)
        sys.exit(f"request {request_id[:12]} did not reach {state} at {node.home.name}")

    shipped, declined, waiting = first_records(alfa, "history", 3)
    first = request(beta, shipped, "--note", "Untuk penelitian skripsi; kirim lewat pos")
    second = request(beta, declined)
    request(beta, waiting, "--copy", "--copyright", "satu bab, untuk belajar pribadi")
    (back,) = first_records(beta, "php", 1)
    third = request(alfa, back)
    for request_id in (first, second):
        reached(alfa, request_id)
    alfa.cli("loan", "answer", first, "supply")
    alfa.cli("loan", "ship", first, "--note", "paket pos nomor 1234")
    alfa.cli("loan", "answer", second, "unfilled", "--reason", "sedang dipinjam")
    reached(beta, third)
    beta.cli("loan", "answer", third, "supply")
    beta.cli("loan", "ship", third)
    reached(beta, first, "Loaned")


def shoot(page: Page, url: str, name: str) -> None:
    page.goto(url)
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
    print(f"docs/screenshots/{name}.png")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="peernode-shots-"))
    alfa = Node(base, "Perpustakaan Universitas Nusantara")
    beta = Node(base, "Perpustakaan SMA Negeri 1 Ambon")
    nodes = [alfa, beta]
    try:
        alfa.cli("catalog", "import", str(DATA / "loc-books" / "books.json"))
        beta.cli("catalog", "import", str(DATA / "slims" / "sampledata.sql"))
        password = base / "password.txt"
        password.write_text(PASSWORD + "\n", "utf-8")
        beta.cli("staff", "password", "--password-file", str(password))
        alfa.cli("policy", "set", "--loan-days", "21", "--shipping", "requester")
        alfa.start()
        code = alfa.cli("peer", "invite").strip().splitlines()[-1]
        beta.cli("peer", "join", code)
        beta.start()
        time.sleep(8)  # sync and a heartbeat, so the map shows a live link
        lend_and_borrow(alfa, beta)
        url = f"http://{beta.address}"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=["--no-sandbox"]
            )
            for lang in ("id", "en"):
                page = browser.new_context(
                    locale="id-ID" if lang == "id" else "en-GB",
                    viewport={"width": 1100, "height": 800},
                ).new_page()
                shoot(page, f"{url}/search?q=history", f"search-{lang}")
                page.locator("ol.hits a").first.click()
                page.screenshot(path=str(OUT / f"entry-{lang}.png"), full_page=True)
                print(f"docs/screenshots/entry-{lang}.png")
                shoot(page, f"{url}/libraries", f"libraries-{lang}")
                page.goto(f"{url}/staff/login")
                page.locator("#password").fill(PASSWORD)
                page.locator("form.stack button").click()
                page.wait_for_url(f"{url}/staff")
                shoot(page, f"{url}/staff/network", f"network-{lang}")
                shoot(page, f"{url}/staff/import", f"import-{lang}")
                shoot(page, f"{url}/staff/loans", f"loans-{lang}")
                shoot(page, f"{url}/staff/statistics", f"statistics-{lang}")
                page.set_viewport_size({"width": 390, "height": 800})
                shoot(page, f"{url}/search?q=sejarah", f"phone-search-{lang}")
            browser.close()
    finally:
        for node in nodes:
            node.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
