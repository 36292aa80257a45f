"""Copy cataloguing between two real daemons: a partner's record into our catalogue, with its
provenance kept, signed, replicated back, shown and exported; and the HTTP API's refusals."""

from __future__ import annotations

import json
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pymarc import MARCReader

from peernode.home import Home
from protocol import node_id

from .nodes import SHARED_DATA, NodeProc, peer, wait_for

MARC = SHARED_DATA / "marc-pymarc"
pytestmark = pytest.mark.skipif(not MARC.is_dir(), reason="../shared/data is not present")


def post(node: NodeProc, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(
        f"http://{node.address}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.load(response)


def has(node: NodeProc, author: bytes, rid: str) -> bool:
    conn = sqlite3.connect(f"file:{node.home / 'node.db'}?mode=ro", uri=True, timeout=10)
    try:
        row = conn.execute(
            "SELECT 1 FROM records WHERE author = ? AND rid = ?", (author, rid)
        ).fetchone()
        return row is not None
    finally:
        conn.close()


def test_copy_a_partners_record(make_node: Callable[[str], NodeProc], tmp_path: Path) -> None:
    a = make_node("Perpustakaan A")
    b = make_node("Perpustakaan B")
    a_key, b_key = Home(a.home).public_key, Home(b.home).public_key
    a.cli("catalog", "import", str(MARC / "marc.dat"))
    a.start()
    b.start()
    peer(a, b)
    wait_for(lambda: has(b, a_key, "11778504"), 60, "B to receive A's catalogue")

    ref = f"{node_id(a_key)}/11778504"
    out = b.cli("catalog", "copy", ref, "--as", "pp-1").stdout
    assert "pp-1" in out
    shown = json.loads(b.cli("catalog", "show", f"{node_id(b_key)}/pp-1", "--json").stdout)
    record = shown["record"]
    assert record["title"] == "The pragmatic programmer : from journeyman to master"
    assert "holdings" not in record  # A's items are A's
    source = record["copied_from"]
    assert source["library"] == node_id(a_key) and source["record"] == "11778504"
    conn = sqlite3.connect(f"file:{b.home / 'node.db'}?mode=ro", uri=True)
    (entry_hash,) = conn.execute(
        "SELECT e.hash FROM records r JOIN entries e ON e.author = r.author "
        "AND e.log = 'catalog' AND e.seq = r.seq WHERE r.author = ? AND r.rid = '11778504'",
        (a_key,),
    ).fetchone()
    conn.close()
    assert source["hash"] == entry_hash.hex() and source["date"].endswith("Z")
    # The same ISBN: A's record and B's copy are one union entry, listing both libraries.
    refs = {m["ref"] for m in shown["members"]}
    assert refs == {ref, f"{node_id(b_key)}/pp-1"}

    # Exported, the copy names its source in 035 and 884.
    out_file = tmp_path / "copy.mrc"
    b.cli("catalog", "export", str(out_file), "--record", "pp-1")
    with out_file.open("rb") as stream:
        (marc,) = list(MARCReader(stream, to_unicode=True, force_utf8=True))
    assert marc is not None
    assert marc["035"]["a"] == f"({node_id(a_key)})11778504"
    assert marc["884"]["k"].startswith(f"{node_id(a_key)}/11778504@")
    # A partner's record exports too, from the replica.
    theirs = tmp_path / "theirs.xml"
    b.cli("catalog", "export", str(theirs), "--library", node_id(a_key), "--record", "11778504")
    assert b"journeyman" in theirs.read_bytes()

    # The copy is signed into B's log: A receives it as B's record.
    wait_for(lambda: has(a, b_key, "pp-1"), 60, "A to receive B's copy")
    members = json.loads(a.cli("cluster", "show", ref, "--json").stdout)["members"]
    assert len(members) == 2

    # Copying again under the same id is refused, and so is copying our own record.
    again = b.cli("catalog", "copy", ref, "--as", "pp-1", check=False)
    assert again.returncode == 1 and "already has a record 'pp-1'" in again.stderr
    own = b.cli("catalog", "copy", f"{node_id(b_key)}/pp-1", check=False)
    assert own.returncode == 1 and "own record" in own.stderr
    bad = b.cli("catalog", "copy", "not-a-reference", check=False)
    assert bad.returncode == 1 and "NODE_ID/RECORD_ID" in bad.stderr

    # The HTTP API: JSON only, same origin only, a clear error otherwise.
    body = {"ref": f"{node_id(a_key)}/12515882", "as": "py-1"}
    with pytest.raises(urllib.error.HTTPError) as refused:
        post(b, "/api/catalog/copy", body, {"Origin": "http://evil.example"})
    assert refused.value.code == 403
    status, made = post(b, "/api/catalog/copy", body)
    assert status == 201 and made["record_id"] == "py-1"
    assert made["record"]["copied_from"]["record"] == "12515882"
    with pytest.raises(urllib.error.HTTPError) as conflict:
        post(b, "/api/catalog/copy", body)
    assert conflict.value.code == 409
    shown_api = b.api(f"/api/catalog/record?ref={node_id(b_key)}/py-1")
    assert shown_api["record"]["copied_from"]["library"] == node_id(a_key)
