"""Policies, agreements and offers decide whom a library lends to; the loan HTTP API.

Three libraries without daemons exchange their entries as sync would (every log, through the
store's one door for a peer's entries), and the real CLI acts on each.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result
from pytest_aiohttp import AiohttpClient

from peernode.cli import cli
from peernode.daemon import make_app
from peernode.home import Home
from protocol import decode_entry, node_id

from .nodes import offline_home

BOOK = {"title": "Hikayat Tanah Hitu", "authors": ["Rijali"], "year": 1650}


def sync_all(*homes: Home) -> None:
    """Every log of every home to every other, verified and placed as a peer's entries are."""
    stores = [h.open_store() for h in homes]
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
    for store in stores:
        store.conn.close()


def run(home: Home, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--home", str(home.path), *args])


def ok(home: Home, *args: str) -> str:
    result = run(home, *args)
    assert result.exit_code == 0, result.output
    return result.output


def refused(home: Home, *args: str) -> str:
    result = run(home, *args)
    assert result.exit_code != 0, result.output
    return result.output


def libraries(tmp_path: Path) -> tuple[Home, Home, Home]:
    a, b, c = (offline_home(tmp_path, f"Library {x}") for x in "ABC")
    for home, rid in ((a, "a-1"), (b, "b-1")):
        path = tmp_path / f"{rid}.json"
        path.write_text(json.dumps([{"id": rid, **BOOK}]), "utf-8")
        ok(home, "catalog", "import", str(path))
    sync_all(a, b, c)
    return a, b, c


def test_policies_and_agreements_decide_whom_a_library_serves(tmp_path: Path) -> None:
    a, b, c = libraries(tmp_path)
    a_id, b_id, c_id = (node_id(h.public_key) for h in (a, b, c))

    # A serves only B: C may not ask A, and A is left out of C's rota.
    ok(a, "policy", "set", "--serves", "listed", "--partner", b_id, "--loan-days", "14")
    sync_all(a, b, c)
    text = refused(c, "loan", "request", "a-1", "--lender", a_id)
    assert "cannot ask Library A" in text and "serves only the libraries it lists" in text
    shown = json.loads(ok(c, "policy", "show", a_id, "--json"))
    assert shown["serves"] == "listed" and shown["partners"] == [b_id]

    # B serves only under an agreement in force; the one with C expired.
    ok(b, "policy", "set", "--serves", "agreement", "--no-copies")
    out = ok(
        c,
        "agreement",
        "propose",
        "--title",
        "Silang layan 2020",
        "--partner",
        b_id,
        "--scope",
        "loans",
        "--start",
        "2020-01-01",
        "--end",
        "2020-12-31",
    )
    old = out.split("agreement ")[1][:12]
    sync_all(a, b, c)
    text = refused(b, "agreement", "sign", old)
    assert f"agreement {old}" in text and "is expired (ended 2020-12-31)" in text
    text = refused(c, "loan", "request", "b-1", "--lender", b_id)
    assert f"agreement {old}" in text and "expired since 2020-12-31" in text
    text = refused(c, "loan", "request", "a-1")
    assert "no library can lend 'Hikayat Tanah Hitu'" in text and "expired" in text
    text = refused(c, "loan", "request", "b-1", "--copy", "--copyright", "one chapter")
    assert "sends no copies" in text

    # A current agreement, signed by both, lets C borrow from B; a withdrawal ends it.
    out = ok(
        b,
        "agreement",
        "propose",
        "--title",
        "Silang layan Maluku",
        "--partner",
        c_id,
        "--scope",
        "loans",
        "--scope",
        "copies",
        "--start",
        "2020-01-01",
        "--end",
        "2099-12-31",
        "--terms",
        "requester pays shipping",
    )
    current = out.split("agreement ")[1][:12]
    sync_all(a, b, c)
    assert "is in force" in ok(c, "agreement", "sign", current)
    listed = {r["id"][:12]: r for r in json.loads(ok(c, "agreement", "list", "--json"))}
    assert listed[old]["status"] == "expired" and listed[current]["status"] == "in force"
    assert all(p["signed"] for p in listed[current]["parties"])
    sync_all(a, b, c)
    request = json.loads(ok(c, "loan", "request", "a-1", "--json"))
    assert [r["name"] for r in request["rota"]] == ["Library B"]  # A excluded by its policy
    ok(b, "agreement", "withdraw", current, "--reason", "budget")
    sync_all(a, b, c)
    assert "withdrawn" in refused(c, "loan", "request", "b-1", "--lender", b_id)
    assert "was withdrawn" in refused(c, "agreement", "sign", current)


def test_offers_put_a_lender_first_and_copy_requests_declare_copyright(tmp_path: Path) -> None:
    a, b, c = libraries(tmp_path)
    ok(b, "offer", "add", "--record", "b-1", "--note", "reading room copy")
    assert "no record 'zzz'" in refused(b, "offer", "add", "--record", "zzz")
    sync_all(a, b, c)
    offers = json.loads(ok(c, "offer", "list", "--json"))
    assert [(o["name"], o["record"]) for o in offers] == [("Library B", "b-1")]
    request = json.loads(ok(c, "loan", "request", "a-1", "--json"))
    assert [r["name"] for r in request["rota"]] == ["Library B", "Library A"]
    assert "must declare its copyright" in refused(c, "loan", "request", "a-1", "--copy")
    copy = json.loads(
        ok(c, "loan", "request", "a-1", "--copy", "--copyright", "satu bab, studi", "--json")
    )
    assert copy["service"] == "copy" and copy["copyright"] == "satu bab, studi"
    ok(b, "offer", "remove", "b-1")
    assert "no offer" in refused(b, "offer", "remove", "b-1")


async def test_the_loan_api_acts_for_this_node_only(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    c = libraries(tmp_path)[2]
    client = await aiohttp_client(make_app(c))
    body = {"record_id": "a-1", "note": "untuk mahasiswa S2"}
    assert (await client.post("/api/loans", data=json.dumps(body))).status == 415
    foreign = await client.post("/api/loans", json=body, headers={"Origin": "http://evil.example"})
    assert foreign.status == 403
    created = await client.post(
        "/api/loans", json=body, headers={"Origin": f"http://{client.host}:{client.port}"}
    )
    assert created.status == 201, await created.text()
    loan = await created.json()
    assert loan["state"] == "RequestReceived" and loan["details"] == "untuk mahasiswa S2"
    listed = await (await client.get("/api/loans")).json()
    assert [row["id"] for row in listed] == [loan["id"]]
    never_shipped = await client.post(
        f"/api/loans/{loan['id']}/steps", json={"action": "ShippedReturn"}
    )
    assert never_shipped.status == 409
    assert "RequestReceived" in (await never_shipped.json())["error"]
    cancel = await client.post(f"/api/loans/{loan['id']}/steps", json={"action": "Cancel"})
    assert (await cancel.json())["state"] == "Cancelled"
    assert (await client.get("/api/loans/abcdef99")).status == 404
    assert (await client.get("/api/loans/stats")).status == 200
    assert isinstance(await (await client.get("/api/policies")).json(), list)
    assert await (await client.get("/api/agreements")).json() == []
