"""GET /metrics: the node's counts as Prometheus reads them, and request latency per route."""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from pytest_aiohttp import AiohttpClient

from peernode.daemon import make_app
from peernode.discovery import Sighting, record_sightings
from peernode.home import Home
from peernode.peers import add_peer
from peernode.store import now_ms
from protocol import PROTOCOL_VERSION, node_id

from .nodes import SHARED_DATA, NodeProc

MakeNode = Callable[[str], NodeProc]
SYNCED_KEY, NEVER_KEY, NEW = os.urandom(32), os.urandom(32), os.urandom(32)


@pytest.fixture
def home(make_node: MakeNode) -> Home:
    """A node with the SLiMS sample catalogue, three rejected entries, and two peers: one that
    synced a minute ago and one that never did. No addresses, so the app dials nobody."""
    node = make_node("Perpustakaan A")
    node.cli("catalog", "import", str(SHARED_DATA / "slims" / "sampledata.sql"))
    store = Home(node.home).open_store()
    try:
        store.record_rejection(SYNCED_KEY, "signature", "signature does not verify")
        store.record_rejection(SYNCED_KEY, "signature", "signature does not verify")
        store.record_rejection(NEVER_KEY, "timestamp", "dated 900 s in the future")
        add_peer(store.conn, SYNCED_KEY, "Perpustakaan B", None)
        add_peer(store.conn, NEVER_KEY, "Perpustakaan C", None)
        store.conn.execute(
            "UPDATE peers SET last_sync = ? WHERE key = ?", (now_ms() - 60_000, SYNCED_KEY)
        )
        # Seen on the LAN: a stranger counts as discovered, a peer seen there does not.
        seen = [Sighting(k, "Seen", "192.0.2.4:8470", PROTOCOL_VERSION) for k in (NEW, SYNCED_KEY)]
        record_sightings(store.conn, seen, now_ms())
    finally:
        store.conn.close()
    return Home(node.home)


def samples(text: str) -> list[Sample]:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(found: list[Sample], metric: str, **labels: str) -> float:
    """The one sample named ``metric`` whose labels include ``labels``."""
    matches = [s.value for s in found if s.name == metric and labels.items() <= s.labels.items()]
    assert len(matches) == 1, f"{metric}{labels}: {len(matches)} samples"
    return matches[0]


async def test_metrics_match_the_status_and_time_each_route(
    home: Home, aiohttp_client: AiohttpClient
) -> None:
    app = make_app(home)  # /metrics and its timing middleware come with the app
    client = await aiohttp_client(app)

    for _ in range(3):
        assert (await client.get("/api/status")).status == 200
    status = await (await client.get("/api/status")).json()
    assert (await client.get("/no/such/page")).status == 404
    assert (await client.get("/api/search", params={"limit": "many"})).status == 400
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    found = samples(await response.text())

    assert status["records"] > 0
    for key in ("records", "own_records", "entries", "logs", "libraries", "forks"):
        assert value(found, f"peernode_{key}") == status[key], key
    assert value(found, "peernode_node_info", node_id=home.node_id) == 1
    assert value(found, "peernode_peers") == 2
    assert value(found, "peernode_peers_connected") == 0
    assert value(found, "peernode_discovered_nodes") == status["discovered"] == 1
    assert value(found, "peernode_rejected_entries_total", reason="signature") == 2
    assert value(found, "peernode_rejected_entries_total", reason="timestamp") == 1
    assert value(found, "peernode_duplicate_entries_received_total") == 0
    synced, never = node_id(SYNCED_KEY), node_id(NEVER_KEY)
    assert value(found, "peernode_peer_connected", peer=synced, name="Perpustakaan B") == 0
    assert 60 <= value(found, "peernode_peer_sync_lag_seconds", peer=synced) < 120
    assert math.isinf(value(found, "peernode_peer_sync_lag_seconds", peer=never))

    latency = "peernode_http_request_duration_seconds"
    count = f"{latency}_count"
    assert value(found, count, route="/api/status", method="GET", status="200") == 4
    assert value(found, count, route="/api/search", method="GET", status="400") == 1
    # Unknown paths share one label, so scanners cannot create a series per path.
    assert value(found, count, route="unmatched", method="GET", status="404") == 1
    assert not [s for s in found if s.labels.get("route") == "/no/such/page"]
    assert value(found, f"{latency}_bucket", route="/api/status", status="200", le="+Inf") == 4
    assert 0 < value(found, f"{latency}_sum", route="/api/status", status="200") < 4 * 5

    # The scrape itself is timed, and a second app keeps its own numbers (no global registry).
    again = samples(await (await client.get("/metrics")).text())
    assert value(again, count, route="/metrics", method="GET", status="200") == 1
    other = make_app(home)
    fresh = samples(await (await (await aiohttp_client(other)).get("/metrics")).text())
    assert not [s for s in fresh if s.name == count and s.labels["route"] == "/api/status"]
