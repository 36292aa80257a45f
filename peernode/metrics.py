"""Prometheus metrics for ``GET /metrics``: the node's counts, and request latency per route.

The counts come from ``node_status`` at scrape time, so ``/metrics``, ``/api/status`` and the
``status`` command always agree. Request latency is timed by a middleware into a histogram kept
in a registry of this app's own (never prometheus_client's global one: two apps in one process,
as in tests, must not share or clash).

Wiring, in ``make_app``::

    app[METRICS] = Metrics()
    app.middlewares.append(metrics_middleware(app[METRICS]))
    app.router.add_get("/metrics", metrics_handler)
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .node import NODE

# Latencies of API calls and the web page: milliseconds normally, seconds on a slow disk.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Methods the daemon serves; anything else is counted as "other" so label values stay bounded.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
UNMATCHED = "unmatched"  # requests for paths no route serves (scanners): one label, not one each


class Metrics:
    """One app's metrics: its own registry, and the request-latency histogram in it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.request_seconds = Histogram(
            "peernode_http_request_duration_seconds",
            "Time to answer an HTTP request, by route, method and status code "
            "(sync WebSocket sessions are not timed: they last as long as the connection).",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        method = method if method in KNOWN_METHODS else "other"
        self.request_seconds.labels(route, method, str(status)).observe(seconds)


METRICS = web.AppKey("metrics", Metrics)


def render_metrics(status: Mapping[str, Any], metrics: Metrics) -> str:
    """The Prometheus text exposition (format 0.0.4) of ``status`` and ``metrics``."""
    return generate_latest(_Scrape(status, metrics.registry)).decode("utf-8")


class _Scrape(Collector):
    """The families for one scrape: the status snapshot, then the app's own registry."""

    def __init__(self, status: Mapping[str, Any], registry: CollectorRegistry) -> None:
        self.status = status
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        yield from status_families(self.status)
        yield from self.registry.collect()


def status_families(status: Mapping[str, Any]) -> Iterator[Metric]:
    """Metric families from a ``node_status`` dict."""
    info = GaugeMetricFamily(
        "peernode_node_info", "This node's identity; the value is always 1.", labels=["node_id"]
    )
    info.add_metric([str(status["node_id"])], 1)
    yield info
    for key, name, doc in (
        ("records", "peernode_records", "Records in the local union catalogue, all libraries."),
        ("own_records", "peernode_own_records", "Records this library publishes."),
        ("entries", "peernode_entries", "Signed log entries stored."),
        ("logs", "peernode_logs", "Signed logs held (one per library and kind)."),
        ("libraries", "peernode_libraries", "Libraries whose profile this node holds."),
        ("forks", "peernode_forks", "Forks found: two validly signed entries at one sequence."),
    ):
        yield GaugeMetricFamily(name, doc, value=float(status[key]))
    peers: list[dict[str, Any]] = list(status["peers"])
    yield GaugeMetricFamily("peernode_peers", "Peers of this node.", value=len(peers))
    yield GaugeMetricFamily(
        "peernode_peers_connected",
        "Peers with a live sync connection now.",
        value=sum(1 for p in peers if p["connected"]),
    )
    yield GaugeMetricFamily(
        "peernode_discovered_nodes",
        "Nodes seen on the local network (mDNS) in the last 10 minutes that are not peers.",
        value=float(status["discovered"]),
    )
    rejected = CounterMetricFamily(
        "peernode_rejected_entries",
        "Entries rejected on receipt, by reason (signature, timestamp, chain, ...).",
        labels=["reason"],
    )
    for reason, count in sorted(status["rejected_by_reason"].items()):
        rejected.add_metric([str(reason)], float(count))
    yield rejected
    yield CounterMetricFamily(
        "peernode_duplicate_entries_received",
        "Entries received that this node already held.",
        value=float(status["duplicates_received"]),
    )
    for key, name, doc in (
        ("sync_bytes_sent", "peernode_sync_sent_bytes", "Sync message bytes sent to peers."),
        ("sync_bytes_received", "peernode_sync_received_bytes", "Sync message bytes received."),
    ):
        if key in status:  # only a running daemon counts traffic
            yield CounterMetricFamily(name, doc, value=float(status[key]))
    connected = GaugeMetricFamily(
        "peernode_peer_connected",
        "1 if the peer has a live sync connection now, else 0.",
        labels=["peer", "name"],
    )
    lag = GaugeMetricFamily(
        "peernode_peer_sync_lag_seconds",
        "Seconds since the last completed sync with the peer; +Inf if it never synced, so an "
        "alert on a threshold fires for it too.",
        labels=["peer", "name"],
    )
    now_ms = float(status["time_ms"])
    for peer in peers:
        labels = [str(peer["node_id"]), str(peer["name"])]
        connected.add_metric(labels, 1.0 if peer["connected"] else 0.0)
        last = peer["last_sync"]
        lag.add_metric(labels, math.inf if last is None else max(0.0, (now_ms - last) / 1000))
    yield connected
    yield lag


def metrics_middleware(metrics: Metrics) -> Middleware:
    """Time every request into ``metrics``, labelled by route pattern (not by raw path)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        # A WebSocket's handler returns when the session ends: that is no latency.
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await handler(request)
        started = time.perf_counter()

        def observe(status: int) -> None:
            seconds = time.perf_counter() - started
            metrics.observe(_route(request), request.method, status, seconds)

        try:
            response = await handler(request)
        except web.HTTPException as exc:  # aiohttp's way of answering 404, 400, ...
            observe(exc.status)
            raise
        except Exception:
            observe(500)  # what aiohttp will answer
            raise
        observe(response.status)
        return response

    return middleware


def _route(request: web.Request) -> str:
    route = request.match_info.route
    resource = route.resource if route is not None else None
    if resource is None or request.match_info.http_exception is not None:
        return UNMATCHED
    return resource.canonical


async def metrics_handler(request: web.Request) -> web.Response:
    node = request.app[NODE]
    status = await node.status()
    text = render_metrics(status, request.app[METRICS])
    return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})
