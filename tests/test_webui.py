"""The web pages in-process (aiohttp test client, a real node home and SQLite): what every
page renders, the Host and Origin checks, CSRF, the staff login, sessions and the upload."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from pathlib import Path

import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from peernode.catalog import import_catalog
from peernode.daemon import make_app
from peernode.home import Home, init_home
from peernode.webui import auth
from peernode.webui.i18n import accepted
from peernode.webui.security import host_allowed, safe_link, split_host

from .nodes import SHARED_DATA
from .webui_data import JS_LINK, PASSWORD, SAFE_LINK, write_books, write_hostile

CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


@pytest.fixture
def home(tmp_path: Path) -> Home:
    home = init_home(
        tmp_path / "a",
        name="Perpustakaan <i>A</i>",
        isil="ID-A",
        contact=JS_LINK,
        listen="127.0.0.1:8470",
    )
    store = home.open_store()
    try:
        import_catalog(store, home.key, write_hostile(tmp_path / "hostile.json"))
        import_catalog(store, home.key, write_books(tmp_path / "books.json"))
        auth.set_password(store.conn, PASSWORD)
    finally:
        store.conn.close()
    return home


async def csrf_of(client: TestClient[web.Request, web.Application], path: str) -> str:
    response = await client.get(path)
    match = CSRF.search(await response.text())
    assert match, f"no CSRF field on {path}"
    return match.group(1)


async def log_in(client: TestClient[web.Request, web.Application]) -> None:
    token = await csrf_of(client, "/staff/login")
    response = await client.post(
        "/staff/login",
        data={"csrf": token, "password": PASSWORD, "next": "/staff"},
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == "/staff"


async def test_public_pages_render_with_strict_headers(
    home: Home, aiohttp_client: AiohttpClient
) -> None:
    client = await aiohttp_client(make_app(home))
    search = await client.get("/search", params={"q": "sejarah"}, headers={"Accept-Language": "en"})
    body = await search.text()
    assert search.status == 200 and 'lang="en"' in body and "Sejarah Maluku" in body
    csp = search.headers["Content-Security-Policy"]
    assert (
        "default-src 'none'" in csp and "script-src" not in csp and "frame-ancestors 'none'" in csp
    )
    assert search.headers["X-Content-Type-Options"] == "nosniff"
    assert search.headers["Referrer-Policy"] == "same-origin"
    # Every asset is the node's own: one stylesheet under /static, nothing from elsewhere.
    assert re.findall(r'(?:href|src)="(?:https?:)?//', body) == []
    assert (await client.get("/static/style.css")).status == 200
    entry_link = re.search(r'href="(/entry\?[^"]+)"', body)
    assert entry_link
    entry = await client.get(
        entry_link.group(1).replace("&amp;", "&"), headers={"Accept-Language": "en"}
    )
    assert entry.status == 200 and "Held by 1 library" in await entry.text()
    for path in ("/", "/libraries", "/new", "/new?page=2", "/loans", "/staff/login"):
        response = await client.get(path, headers={"Accept-Language": "en"})
        assert response.status == 200, path
        assert response.headers["Content-Security-Policy"] == csp
    libraries = await (await client.get("/libraries")).text()
    assert "Perpustakaan &lt;i&gt;A&lt;/i&gt;" in libraries
    assert (await client.get("/entry", params={"library": "nonsense", "id": "x"})).status == 404
    # Fielded search: a word in the title is not an author.
    by_author = await client.get("/search", params={"author": "Maluku"})
    assert "Sejarah Maluku" not in await by_author.text()
    by_title = await client.get("/search", params={"title": "Maluku", "author": "Alwi"})
    assert "Sejarah Maluku" in await by_title.text()


async def test_hostile_catalogue_data_renders_inert(
    home: Home, aiohttp_client: AiohttpClient
) -> None:
    client = await aiohttp_client(make_app(home))
    for query in ("script", "onerror", "txt", "raksasa", "tautan"):
        body = await (await client.get("/search", params={"q": query})).text()
        assert "<script>alert" not in body and "<img src=x" not in body, query
        assert "<b>Penulis" not in body
        assert len(body) < 100_000, "the 1 MB title is cut in the result list"
    listing = await (await client.get("/search", params={"q": "script"})).text()
    assert "&lt;script&gt;alert(" in listing
    bidi = await (await client.get("/search", params={"q": "txt"})).text()
    assert "<bdi>Buku \u202etxt.exe sejarah</bdi>" in bidi  # isolated: cannot flip the page
    node = home.node_id
    entry = await (await client.get("/entry", params={"library": node, "id": "h0"})).text()
    assert JS_LINK in entry and 'href="javascript' not in entry.lower()
    safe = await (await client.get("/entry", params={"library": node, "id": "link"})).text()
    assert f'href="{SAFE_LINK}"' in safe
    profile = await (await client.get("/library", params={"id": node})).text()
    assert 'href="javascript' not in profile.lower() and "javascript:alert" in profile


def test_links_hosts_and_languages_are_parsed_strictly() -> None:
    assert safe_link("https://example.org/x") == "https://example.org/x"
    for bad in (
        JS_LINK,
        " JavaScript:alert(1)",
        "data:text/html,x",
        "//evil.example",
        "http://",
        "https://example.org/\u202eexe",
        "vbscript:x",
        "https://a.example/\nx",
    ):
        assert safe_link(bad) is None, bad
    names = frozenset({"localhost", "katalog.perpus.local"})
    assert split_host("[::1]:8470") == "::1" and split_host("Example.ORG.:80") == "example.org"
    assert host_allowed("127.0.0.1:8470", names, None)
    assert host_allowed("[::1]:8470", names, None)
    assert host_allowed("katalog.perpus.local:8470", names, None)
    assert host_allowed("192.0.2.7:8470", names, "192.0.2.7")
    assert not host_allowed("192.0.2.8:8470", names, "192.0.2.7")
    assert not host_allowed("evil.example:8470", names, "127.0.0.1")
    assert not host_allowed("", names, None)
    assert accepted("en-US,en;q=0.9,id;q=0.8") == "en"
    assert accepted("fr, id;q=0.5, en;q=0.4") == "id"
    assert accepted("in-ID") == "id" and accepted("fr") is None


async def test_foreign_host_and_origin_are_refused(
    home: Home, aiohttp_client: AiohttpClient
) -> None:
    client = await aiohttp_client(make_app(home))
    rebound = await client.get("/", headers={"Host": "attacker.example:8470"})
    assert rebound.status == 421 and "web_hosts" in await rebound.text()
    assert (await client.get("/api/status", headers={"Host": "attacker.example"})).status == 421
    assert (await client.get("/", headers={"Host": "localhost:9999"})).status == 200
    token = await csrf_of(client, "/staff/login")
    form = {"csrf": token, "password": PASSWORD}
    foreign = await client.post(
        "/staff/login", data=form, headers={"Origin": "http://attacker.example"}
    )
    assert foreign.status == 403
    cross = await client.post("/staff/login", data=form, headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status == 403
    foreign_host = await client.post("/staff/login", data=form, headers={"Host": "evil.example"})
    assert foreign_host.status == 421


async def test_web_hosts_setting_admits_a_name(
    home: Home, aiohttp_client: AiohttpClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PEERNODE_WEB_HOSTS", "katalog.perpus.local, opac.example")
    client = await aiohttp_client(make_app(home))
    assert (await client.get("/", headers={"Host": "opac.example"})).status == 200
    assert (await client.get("/", headers={"Host": "other.example"})).status == 421


async def test_posts_need_a_valid_csrf_token(home: Home, aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(make_app(home))
    missing = await client.post("/staff/login", data={"password": PASSWORD})
    assert missing.status == 403 and "Formulir ditolak" in await missing.text()
    await csrf_of(client, "/staff/login")  # the browser now has its CSRF cookie
    wrong = await client.post("/staff/login", data={"csrf": "0" * 64, "password": PASSWORD})
    assert wrong.status == 403
    await log_in(client)
    logout = await client.post("/staff/logout", data={"csrf": "0" * 64}, allow_redirects=False)
    assert logout.status == 403
    assert (await client.get("/staff", allow_redirects=False)).status == 200  # still logged in
    invite = await client.post("/staff/peers/invite", data={}, allow_redirects=False)
    assert invite.status == 403


async def test_login_session_and_logout(home: Home, aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(make_app(home))
    before = await client.get("/staff/network", allow_redirects=False)
    assert before.status == 303
    assert before.headers["Location"].replace("%2F", "/") == "/staff/login?next=/staff/network"
    token = await csrf_of(client, "/staff/login")
    response = await client.post(
        "/staff/login", data={"csrf": token, "password": PASSWORD}, allow_redirects=False
    )
    cookie = response.headers["Set-Cookie"]
    assert "pn_session=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    session = cookie.split("pn_session=")[1].split(";")[0]
    with sqlite3.connect(home.path / "node.db") as conn:
        [(stored,)] = conn.execute("SELECT token_hash FROM staff_sessions").fetchall()
    assert stored == auth.token_hash(session) and session.encode() not in stored
    for path in ("/staff", "/staff/import", "/staff/peers", "/staff/alerts", "/staff/statistics"):
        page = await client.get(path)
        assert page.status == 200, path
        assert page.headers["Cache-Control"] == "no-store"
    network = await (await client.get("/staff/network")).text()
    assert "<svg" in network and "<circle" in network and "<script" not in network
    assert "Perpustakaan &lt;i&gt;A&lt;/i&gt;" in network
    token = await csrf_of(client, "/staff")
    out = await client.post("/staff/logout", data={"csrf": token}, allow_redirects=False)
    assert out.status == 303
    with sqlite3.connect(home.path / "node.db") as conn:
        assert conn.execute("SELECT count(*) FROM staff_sessions").fetchone() == (0,)
    assert (await client.get("/staff", allow_redirects=False)).status == 303


async def test_failed_logins_are_rate_limited(home: Home, aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(make_app(home))
    token = await csrf_of(client, "/staff/login")
    statuses = []
    for _ in range(auth.LOGIN_FAILURES + 1):
        response = await client.post("/staff/login", data={"csrf": token, "password": "salah"})
        statuses.append(response.status)
    assert statuses == [403] * auth.LOGIN_FAILURES + [429]
    # Even the right password waits out the window now.
    right = await client.post("/staff/login", data={"csrf": token, "password": PASSWORD})
    assert right.status == 429


async def test_upload_imports_with_progress_and_a_size_limit(
    home: Home, aiohttp_client: AiohttpClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PEERNODE_WEB_UPLOAD_MB", "1")
    client = await aiohttp_client(make_app(home))
    await log_in(client)
    token = await csrf_of(client, "/staff/import")
    marc = SHARED_DATA / "marc-pymarc" / "marc.dat"
    form = FormData()
    form.add_field("csrf", token)
    form.add_field("file", marc.read_bytes(), filename="../../etc/katalog.mrc")
    response = await client.post("/staff/import", data=form, allow_redirects=False)
    assert response.status == 303, await response.text()
    job_page = response.headers["Location"]
    deadline = time.monotonic() + 30
    while True:
        job = await (await client.get(job_page + ".json")).json()
        if job["state"] in ("done", "failed") or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert job["state"] == "done", job
    assert job["filename"] == "etc_katalog.mrc" or job["filename"].endswith("katalog.mrc")
    assert job["summary"]["added"] > 0 and job["records"] >= job["summary"]["added"]
    assert "meta http-equiv" not in await (await client.get(job_page)).text()
    assert not any((home.path / "uploads").glob("*/*")), "the uploaded file is deleted after"

    big = FormData()
    big.add_field("csrf", token)
    big.add_field("file", b"x" * (1024 * 1024 + 10), filename="besar.csv")
    refused = await client.post("/staff/import", data=big)
    assert refused.status == 400 and "1 MiB" in await refused.text()
    no_token = FormData()
    no_token.add_field("file", marc.read_bytes(), filename="katalog.mrc")
    assert (await client.post("/staff/import", data=no_token)).status == 403


async def test_language_follows_the_browser_and_the_reader(
    home: Home, aiohttp_client: AiohttpClient
) -> None:
    client = await aiohttp_client(make_app(home))
    indonesian = await (await client.get("/", headers={"Accept-Language": "id-ID"})).text()
    assert 'lang="id"' in indonesian and "Telusuri katalog induk" in indonesian
    english = await (await client.get("/", headers={"Accept-Language": "en-GB"})).text()
    assert 'lang="en"' in english and "Search the union catalogue" in english
    default = await (await client.get("/", headers={"Accept-Language": "fr"})).text()
    assert 'lang="id"' in default  # the network's working language
    switch = await client.get(
        "/lang", params={"to": "en", "next": "/new?page=2"}, allow_redirects=False
    )
    assert switch.status == 303 and switch.headers["Location"] == "/new?page=2"
    chosen = await (await client.get("/new", headers={"Accept-Language": "id"})).text()
    assert 'lang="en"' in chosen and "New acquisitions" in chosen
    away = await client.get(
        "/lang", params={"to": "id", "next": "//evil.example/"}, allow_redirects=False
    )
    assert away.headers["Location"] == "/"


def test_staff_password_from_init_and_the_staff_command(tmp_path: Path) -> None:
    import subprocess
    import sys

    from .nodes import ROOT

    def peernode(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "peernode", "--home", str(tmp_path / "n"), *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )

    short = tmp_path / "short.txt"
    short.write_text("pendek\n", "utf-8")
    refused = peernode("init", "--name", "Perpustakaan C", "--staff-password-file", str(short))
    assert refused.returncode == 1 and "at least 10 characters" in refused.stderr
    assert not (tmp_path / "n" / "node.key").exists(), "a refused password leaves no half node"
    good = tmp_path / "good.txt"
    good.write_text(PASSWORD + "\n", "utf-8")
    created = peernode("init", "--name", "Perpustakaan C", "--staff-password-file", str(good))
    assert created.returncode == 0, created.stderr
    home = Home(tmp_path / "n")
    store = home.open_store()
    try:
        assert auth.check_login(store.conn, PASSWORD)
        session = auth.open_session(store.conn)
    finally:
        store.conn.close()
    changed = subprocess.run(
        [sys.executable, "-m", "peernode", "--home", str(tmp_path / "n"), "staff", "password"],
        input="kata-sandi-baru-2\nkata-sandi-baru-2\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert changed.returncode == 0, changed.stderr
    store = home.open_store()
    try:
        assert auth.check_login(store.conn, "kata-sandi-baru-2")
        assert not auth.check_login(store.conn, PASSWORD)
        assert auth.session_account(store.conn, session) is None, "a new password ends sessions"
        stored = store.conn.execute("SELECT password FROM staff_accounts").fetchone()[0]
        assert stored.startswith("scrypt$16384$8$1$") and PASSWORD not in stored
    finally:
        store.conn.close()
