"""Intent to purchase: the strict entry validator, and two real daemons on loopback — A
announces, B sees it beside B's own holding, B also intends, A withdraws."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from protocol import InvalidBody
from protocol.intents import validate

from .nodes import NodeProc, peer, wait_for

MakeNode = Callable[[str], NodeProc]
ISBN = "9780596009304"  # also written 0-596-00930-5


@pytest.mark.parametrize(
    "body",
    [
        {"op": "add", "id": "a1", "isbn": [ISBN]},
        {"op": "add", "id": "a1", "title": "Sejarah Maluku", "planned": "2026-09"},
        {
            "op": "add",
            "id": "x.y_z-1",
            "isbn": [ISBN],
            "title": "Head First",
            "authors": ["Freeman, Eric"],
            "note": "two copies",
            "planned": "2026-09-30",
        },
        {"op": "withdraw", "id": "a1"},
        {"op": "withdraw", "id": "a1", "reason": "bought"},
    ],
)
def test_valid_intents_pass(body: dict[str, Any]) -> None:
    validate(body, "e")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"op": "buy", "id": "a1"}, "'op' must be one of add, withdraw"),
        ({"op": "add", "id": "a1"}, "at least one ISBN or a title"),
        ({"op": "add", "id": "a1", "title": "   "}, "at least one ISBN or a title"),
        ({"op": "add", "id": "", "title": "T"}, "'id' must be"),
        ({"op": "add", "id": "a b", "title": "T"}, "'id' must be"),
        ({"op": "add", "id": "a" * 65, "title": "T"}, "'id' must be"),
        ({"op": "add", "id": "a1", "isbn": "9780596009304"}, "'isbn' must be an array"),
        ({"op": "add", "id": "a1", "isbn": ["9780596009305"]}, "isbn[0] is not a valid"),
        ({"op": "add", "id": "a1", "isbn": ["0596009305"]}, "isbn[0] is not a valid"),
        ({"op": "add", "id": "a1", "title": "T", "planned": "2026-13"}, "'planned' must be"),
        ({"op": "add", "id": "a1", "title": "T", "planned": "soon"}, "'planned' must be"),
        ({"op": "add", "id": "a1", "title": "T", "price": 5}, "unknown field(s) 'price'"),
        ({"op": "add", "id": "a1", "title": "T", "authors": [""]}, "authors[0] must be"),
        ({"op": "add", "id": "a1", "title": "T" * 501}, "'title' must be text of at most"),
        ({"op": "add", "id": "a1", "title": b"T"}, "'title' must be text"),
        ({"op": "withdraw", "id": "a1", "title": "T"}, "unknown field(s) 'title' in withdraw"),
        ({"op": "withdraw", "id": "a1", "reason": 3}, "'reason' must be text"),
    ],
)
def test_invalid_intents_are_refused_saying_what(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidBody) as raised:
        validate(body, "entry 7")
    assert str(raised.value).startswith("entry 7: ") and message in str(raised.value)


def _post(node: NodeProc, path: str, body: object, origin: str | None = None) -> Any:
    request = urllib.request.Request(
        f"http://{node.address}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **({"Origin": origin} if origin else {})},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _intents(node: NodeProc, *extra: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(node.cli("intent", "list", "--json", *extra).stdout)
    return rows


@pytest.mark.slow
def test_an_intent_reaches_a_peer_with_its_holders(make_node: MakeNode, tmp_path: Path) -> None:
    a, b = make_node("Library A"), make_node("Library B")
    books = tmp_path / "b.json"
    books.write_text(
        json.dumps(
            [
                {
                    "id": "hf1",
                    "title": "Head first Java",
                    "isbn": "0-596-00930-5",
                    "barcode": ["B001", "B002"],
                }
            ]
        ),
        "utf-8",
    )
    b.cli("catalog", "import", str(books))
    a.start()
    b.start()
    peer(a, b)

    out = a.cli(
        "intent", "add", "--isbn", "0-596-00930-5", "--note", "two copies", "--planned", "2026-12"
    ).stdout
    intent_id = out.split()[2].rstrip(";")
    wait_for(lambda: any(i["id"] == intent_id for i in _intents(b)), 30, "B to receive A's intent")
    seen = next(i for i in _intents(b) if i["id"] == intent_id)
    assert seen["library"] == "Library A" and not seen["mine"]
    assert seen["isbn"] == [ISBN] and seen["note"] == "two copies" and seen["planned"] == "2026-12"
    assert [(h["library"], h["copies"]) for h in seen["held_by"]] == [("Library B", 2)]
    assert "held by: Library B (2 copies)" in b.cli("intent", "list").stdout

    # B plans to buy it too, through the API; a request from another site is refused.
    with pytest.raises(urllib.error.HTTPError) as refused:
        _post(b, "/api/intents", {"isbn": ISBN}, origin="http://evil.example")
    assert refused.value.code == 403
    with pytest.raises(urllib.error.HTTPError) as bad:
        _post(b, "/api/intents", {"isbn": "123"})
    assert bad.value.code == 400 and "not a valid ISBN" in bad.value.read().decode()
    made = _post(
        b,
        "/api/intents",
        {"isbn": [ISBN], "title": "Head first Java"},
        origin=f"http://{b.address}",
    )
    wait_for(
        lambda: any(o["id"] == made["id"] for i in _intents(a) for o in i["also_intended_by"]),
        30,
        "A to see that B also intends to buy it",
    )
    api = a.api("/api/intents")
    mine = next(i for i in api if i["mine"])
    assert mine["also_intended_by"][0]["library"] == "Library B"

    # A withdraws: B sees it withdrawn, and no longer active.
    a.cli("intent", "withdraw", intent_id, "--reason", "bought")
    wait_for(
        lambda: all(i["id"] != intent_id for i in _intents(b)), 30, "the withdrawal to reach B"
    )
    gone = next(i for i in _intents(b, "--all") if i["id"] == intent_id)
    assert gone["status"] == "withdrawn" and gone["reason"] == "bought"
    again = a.cli("intent", "withdraw", intent_id, check=False)
    assert again.returncode == 1 and "already withdrawn" in again.stderr
    assert b.cli("check").returncode == 0
