"""Hostile clients against a real daemon: strangers, and a peer relaying what it should not."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from protocol import CATALOG, LogKey, Session, public_bytes, sign_entry
from protocol.messages import Auth, Close, Entries, Frontier, Hello, decode_message

from .nodes import NodeProc, peer, wait_for

MakeNode = Callable[[str], NodeProc]
pytestmark = pytest.mark.slow


def load_key(home: Path) -> Ed25519PrivateKey:
    key = load_pem_private_key((home / "node.key").read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


async def handshake(ws: aiohttp.ClientWebSocketResponse, session: Session) -> object:
    """Run our side of the handshake; returns the first message that is not part of it."""
    await ws.send_bytes(session.hello())
    while True:
        msg = await ws.receive(timeout=10)
        if msg.type != aiohttp.WSMsgType.BINARY:
            return msg.type
        event = session.receive(msg.data)
        if isinstance(event, Hello):
            await ws.send_bytes(session.auth())
        elif isinstance(event, Auth):
            await ws.send_bytes(session.send(Frontier(())))
        elif isinstance(event, Frontier | Close):
            return event


async def test_a_stranger_is_refused_and_logged(make_node: MakeNode) -> None:
    a = make_node("Library A").start()
    stranger = Ed25519PrivateKey.generate()
    session = Session(stranger, os.urandom(32), "Stranger")
    async with aiohttp.ClientSession() as http, http.ws_connect(f"http://{a.address}/sync") as ws:
        await ws.send_bytes(session.hello())
        first = decode_message((await ws.receive(timeout=10)).data)
        assert isinstance(first, Hello)  # A says who it is, but proves nothing to a stranger
        second = decode_message((await ws.receive(timeout=10)).data)
        assert isinstance(second, Close) and "not a peer" in second.reason
    wait_for(lambda: "not a peer" in a.log(), 10, "A to log the refused stranger")
    assert a.status()["rejected_by_reason"].get("auth", 0) >= 1


async def test_relayed_entries_of_a_non_member_and_forgeries_are_rejected(
    make_node: MakeNode,
) -> None:
    a, x = make_node("Library A").start(), make_node("Library X").start()
    peer(a, x)
    x.stop()  # the test speaks for X from here, with X's real key
    x_key = load_key(x.home)
    outsider = Ed25519PrivateKey.generate()
    foreign = sign_entry(
        outsider,
        log="catalog",
        seq=1,
        prev=None,
        timestamp=1,
        kind=CATALOG,
        body={"ops": [["put", "1", {"title": "Buku gelap"}]]},
    )
    a_key = public_bytes(load_key(a.home))
    # A forgery: an entry that claims to be A's, signed by X.
    forged = bytearray(
        sign_entry(
            x_key,
            log="catalog",
            seq=1,
            prev=None,
            timestamp=1,
            kind=CATALOG,
            body={"ops": [["put", "9", {"title": "Palsu"}]]},
        ).raw
    )
    forged = forged.replace(public_bytes(x_key), a_key)
    session = Session(x_key, os.urandom(32), "Library X")
    async with aiohttp.ClientSession() as http, http.ws_connect(f"http://{a.address}/sync") as ws:
        await handshake(ws, session)
        await ws.send_bytes(
            session.send(Entries(LogKey(public_bytes(outsider), "catalog"), (foreign.raw,)))
        )
        await ws.send_bytes(session.send(Entries(LogKey(a_key, "catalog"), (bytes(forged),))))
        wait_for(
            lambda: {"untrusted", "signature"} <= set(a.status()["rejected_by_reason"]),
            15,
            "A to reject both",
        )
    assert a.search("gelap") == [] and a.search("palsu") == []
    log = a.log()
    x_short = x.status()["node_id"][:9]
    assert f"rejected from {x_short}: untrusted" in log
    assert f"rejected from {x_short}: signature" in log
