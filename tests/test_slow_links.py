"""Slow and broken links: urgent logs first, transfers that resume, compression on the wire."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import (
    CATALOG,
    PROFILE,
    Head,
    LogKey,
    Replicator,
    Send,
    Session,
    public_bytes,
    sign_entry,
)
from protocol.messages import Request

from .nodes import BOOKS, NodeProc, peer, wait_for
from .proxy import FlippingProxy
from .test_protocol_link import TapSession
from .test_two_nodes import set_setting

MakeNode = Callable[[str], NodeProc]


def test_a_library_profile_is_fetched_before_its_catalogue() -> None:
    author = Ed25519PrivateKey.generate()
    catalog = sign_entry(
        author,
        log="catalog",
        seq=1,
        prev=None,
        timestamp=1,
        kind=CATALOG,
        body={"ops": [["put", "1", {"title": "Judul"}]]},
    )
    profile = sign_entry(
        author, log="profile", seq=1, prev=None, timestamp=1, kind=PROFILE, body={"name": "A"}
    )
    holder_key, fetcher_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    # The holder lists the catalogue first; the fetcher, with room for one request, still
    # asks for the profile first.
    held = {
        LogKey(public_bytes(author), "catalog"): Head(1, catalog.hash),
        LogKey(public_bytes(author), "profile"): Head(1, profile.hash),
    }
    holder = Replicator(
        Session(holder_key, os.urandom(32), "H"), dict(held), lambda k: True, lambda a: True, now=0
    )
    fetcher_session = TapSession(fetcher_key, os.urandom(32), "F")  # the wire is sealed
    fetcher = Replicator(
        fetcher_session,
        {},
        lambda k: True,
        lambda a: True,
        now=0,
        max_inflight=1,
    )
    to_fetcher = [a.data for a in holder.start() if isinstance(a, Send)]
    to_holder = [a.data for a in fetcher.start() if isinstance(a, Send)]
    requests: list[Request] = []
    for _ in range(10):  # the handshake takes a few rounds; bounded
        requests = [m for m in fetcher_session.sent if isinstance(m, Request)]
        sends_h = [a.data for d in to_holder for a in holder.receive(d, 1) if isinstance(a, Send)]
        sends_f = [a.data for d in to_fetcher for a in fetcher.receive(d, 1) if isinstance(a, Send)]
        to_fetcher, to_holder = sends_h, sends_f
        if requests:
            break
    assert [r.key.log for r in requests] == ["profile"]


@pytest.mark.slow
def test_a_link_cut_every_second_and_a_half_still_delivers_everything_once(
    make_node: MakeNode,
) -> None:
    a, b = make_node("Library A"), make_node("Library B")
    a.cli("catalog", "import", str(BOOKS))
    proxy = FlippingProxy(a.port, cut_after=1.5).start()
    try:
        set_setting(a, "advertise", f"127.0.0.1:{proxy.port}")  # B reaches A only via the link
        # Paced on the deflated, sealed bytes (about a third of the entries' size), so that
        # the transfer spans many cuts.
        set_setting(a, "upload_kbps", "1500")
        set_setting(b, "advertise", "127.0.0.1:1")  # and A cannot dial B around it
        a.start()
        b.start()
        peer(a, b)
        wait_for(lambda: b.status()["records"] == 10_000, 120, "B to converge over the cut link")
    finally:
        proxy.stop()
    status = b.status()
    assert status["duplicates_received"] == 0  # nothing acknowledged was sent again
    assert b.cli("check").returncode == 0
    assert proxy.connections >= 3, "the transfer should have been cut several times"
    conn = sqlite3.connect(f"file:{a.home / 'node.db'}?mode=ro", uri=True)
    payload = conn.execute("SELECT sum(length(raw)) FROM entries").fetchone()[0]
    conn.close()
    # Compressed on the wire: well under the signed entries' own size.
    assert proxy.bytes_down < 0.6 * payload, (proxy.bytes_down, payload)
    print(
        f"\n{proxy.connections} connections, {proxy.bytes_down:,} bytes on the wire for "
        f"{payload:,} bytes of entries ({proxy.bytes_down / payload:.0%})"
    )
