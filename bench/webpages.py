"""Render time of the web pages on a large replica, in process: the daemon's own aiohttp app over
a copy of a bench database (bench/search.py builds one: 1,000,230 records of six libraries),
each page fetched 5 times through a logged-in client on loopback; median and max in ms.

    python -m bench.webpages --db bench-data/search-1000000-s1-v3.db

The database is copied first (the node writes its own rows into it; the original stays as the
search bench left it). Records get the dates they were added, spread over the last year, so
"new acquisitions" has a year of history to count, as a real replica has, and 3,000 loans
are added for the loans dashboard and the statistics.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import re
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from peernode.daemon import make_app
from peernode.home import init_home
from peernode.store import now_ms
from peernode.webui import auth
from protocol import node_id

RUNS = 5
LOANS = 3000
PASSWORD = "bench-kata-sandi"
DAY_MS = 86_400_000
CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


def prepare(source: Path, work: Path) -> Path:
    home = init_home(work / "node", name="Bench", isil="", contact="", listen="127.0.0.1:1")
    target = home.path / "node.db"
    for stale in home.path.glob("node.db*"):
        stale.unlink()
    shutil.copyfile(source, target)
    conn = sqlite3.connect(target)
    conn.execute("PRAGMA journal_mode=WAL")
    now = now_ms()
    with conn:  # one record a few minutes apart, newest last: about a year of acquisitions
        conn.execute(
            "UPDATE record_added SET added_at = ? - (SELECT max(id) FROM records) * 30000 + "
            "(SELECT id FROM records r WHERE r.author = record_added.author "
            "AND r.rid = record_added.rid) * 30000 WHERE added_at IS NULL",
            (now,),
        )
    seed_loans(conn, home.public_key)
    conn.close()
    store = home.open_store()
    try:
        auth.set_password(store.conn, PASSWORD)
    finally:
        store.conn.close()
    return home.path


def seed_loans(conn: sqlite3.Connection, own: bytes) -> None:
    """LOANS materialised requests with two steps each, a third of them asked of this library,
    a third asked by it: the rows the dashboard and the statistics read (their signed entries
    are not needed for that, and this replica's libraries have no keys to sign them)."""
    rng = random.Random(7)
    others = [bytes(a) for (a,) in conn.execute("SELECT author FROM libraries")]
    states = ["RequestReceived", "WillSupply", "Loaned", "Received", "LoanCompleted", "Unfilled"]
    now = now_ms()
    loans, history = [], []
    for number in range(LOANS):
        requester, lender = rng.sample(others, 2)
        if number % 3 == 0:
            requester = own
        elif number % 3 == 1:
            lender = own
        request = hashlib.sha256(b"loan %d" % number).digest()
        created = now - rng.randrange(365) * DAY_MS
        state = rng.choice(states)
        loans.append(
            (
                request,
                requester,
                lender,
                "loan",
                state,
                f"Judul {number}",
                None,
                request,
                created,
                created + DAY_MS,
            )
        )
        action = "Unfilled" if state == "Unfilled" else "WillSupply"
        history.append((request, 0, hashlib.sha256(request).digest(), lender, action, created + 1))
        if state not in ("RequestReceived", "Unfilled"):
            shipped = created + rng.randrange(1, 96) * 3_600_000
            history.append(
                (request, 1, hashlib.sha256(request * 2).digest(), lender, "Loaned", shipped)
            )
    with conn:
        conn.executemany("INSERT INTO loans VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", loans)
        conn.executemany("INSERT INTO loan_history VALUES (?, ?, ?, ?, ?, ?)", history)


def sample(db: Path) -> dict[str, str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        author, rid = conn.execute(
            "SELECT author, rid FROM records WHERE id = (SELECT max(id) / 2 FROM records)"
        ).fetchone()
        shared = conn.execute(
            "SELECT match_key FROM records GROUP BY match_key HAVING count(*) > 1 LIMIT 1"
        ).fetchone()[0]
        other_author, other_rid = conn.execute(
            "SELECT author, rid FROM records WHERE match_key = ? LIMIT 1", (shared,)
        ).fetchone()
    finally:
        conn.close()
    return {
        "library": node_id(author),
        "entry": f"library={node_id(author)}&id={rid}",
        "shared_entry": f"library={node_id(other_author)}&id={other_rid}",
    }


def pages(ids: dict[str, str]) -> list[tuple[str, str]]:
    lib = ids["library"]
    return [
        ("search page, empty", "/"),
        ("search, common word", "/search?q=sejarah"),
        ("search, two words + facet", "/search?q=sejarah+indonesia&language=ind"),
        ("search, author field", "/search?author=Sutrisno"),
        ("union entry", f"/entry?{ids['entry']}"),
        ("union entry, 2 holders (staff)", f"/entry?{ids['shared_entry']}"),
        ("library directory", "/libraries"),
        ("library profile + policy", f"/library?id={lib}"),
        ("new acquisitions, 30 days", "/new"),
        ("new acquisitions, 365 days", "/new?days=365"),
        ("new acquisitions, one library", f"/new?days=90&library={lib}"),
        ("serials, search", "/serials?q=jurnal"),
        ("staff overview", "/staff"),
        ("loans dashboard", "/staff/loans"),
        ("statistics", "/staff/statistics"),
        ("agreements", "/staff/agreements"),
        ("intents to purchase", "/staff/intents"),
        ("peers", "/staff/peers"),
        ("network map", "/staff/network"),
        ("alerts", "/staff/alerts"),
    ]


async def measure(home: Path, ids: dict[str, str]) -> list[tuple[str, str, float, float]]:
    from peernode.home import Home

    client = TestClient(TestServer(make_app(Home(home))))
    await client.start_server()
    try:
        login = await client.get("/staff/login")
        token = CSRF.search(await login.text())
        assert token is not None
        done = await client.post(
            "/staff/login",
            data={"csrf": token.group(1), "password": PASSWORD, "next": "/staff"},
            allow_redirects=False,
        )
        assert done.status == 303, await done.text()
        rows = []
        for name, path in pages(ids):
            times = []
            for _ in range(RUNS):
                started = time.perf_counter()
                response = await client.get(path, allow_redirects=False)
                await response.read()
                times.append((time.perf_counter() - started) * 1000)
                assert response.status == 200, (path, response.status)
            rows.append((name, path, statistics.median(times), max(times)))
        return rows
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True, help="a bench/search.py replica")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="peernode-webpages-") as work:
        home = prepare(args.db, Path(work))
        ids = sample(home / "node.db")
        rows = asyncio.run(measure(home, ids))
    print("| Page | Path | median ms | max ms |\n| --- | --- | ---: | ---: |")
    for name, path, median, worst in rows:
        shown = path if len(path) < 50 else path[:47] + "…"
        print(f"| {name} | `{shown}` | {median:.1f} | {worst:.1f} |")


if __name__ == "__main__":
    main()
