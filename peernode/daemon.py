"""The daemon: an aiohttp server (sync WebSocket, join, JSON API, web page).

The node's background tasks (watcher, dialers) run from ``cleanup_ctx``, so they start and stop
with the app.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import AsyncIterator

from aiohttp import web

from protocol import RemoteProtocolError, short_id

from .catalog_api import add_catalog_routes
from .coop_api import add_report_routes
from .discovery import discovery_context
from .home import Home, HomeError, parse_listen
from .loan_api import add_loan_routes
from .metrics import METRICS, Metrics, metrics_handler, metrics_middleware
from .node import NODE, Node
from .oai import PATH as OAI_PATH
from .oai import oai_handler
from .peers import JOIN_PATH, accept_join
from .search import QueryError, query_from_params, results_json, run_query
from .sync import SyncConnection
from .webui.app import setup_webui

log = logging.getLogger("peernode.daemon")

WATCH_SECONDS = 0.5
SWITCH_INTERVAL_S = 0.0002
GC_THRESHOLDS = (50_000, 20, 20)
BACKOFF_MIN, BACKOFF_MAX = 1.0, 60.0
JOINER_GRACE_SECONDS = 5.0
JOIN_READ_SECONDS = 10.0  # a join request is one small POST: a client trickling it is cut off


async def sync_handler(request: web.Request) -> web.StreamResponse:
    node = request.app[NODE]
    if len(node.all_connections) >= node.config.max_connections:
        counts = node.liveness.counts
        counts["connections_refused"] += 1
        if counts["connections_refused"] % 100 == 1:  # a storm of them logs once per hundred
            log.warning(
                "refused a sync connection from %s: %d open, max_connections is %d",
                request.remote,
                len(node.all_connections),
                node.config.max_connections,
            )
        raise web.HTTPServiceUnavailable(text="too many connections")
    idle = node.liveness.idle_seconds
    ws = web.WebSocketResponse(
        max_msg_size=node.limits.max_message_bytes + 1024,
        heartbeat=node.liveness.interval,  # WebSocket pings: a dead TCP link ends soon
        receive_timeout=idle + 10,  # a backstop: SyncConnection closes an idle session first
        compress=False,  # sessions deflate before sealing; ciphertext does not shrink
    )
    conn = SyncConnection(node, ws, dialed=False, expected_peer=None)
    node.all_connections.add(conn)  # counted before the first await, so the cap holds
    try:
        await ws.prepare(request)
    except BaseException:
        node.all_connections.discard(conn)
        raise
    reason = await conn.run()
    log.debug("inbound connection from %s ended: %s", request.remote, reason)
    return ws


async def join_handler(request: web.Request) -> web.Response:
    node = request.app[NODE]
    try:
        async with asyncio.timeout(JOIN_READ_SECONDS):
            data = await request.content.read(8192)
    except TimeoutError:
        raise web.HTTPRequestTimeout(text="the join request did not arrive in time") from None
    try:
        joiner, accept = await node.call(accept_join, node.home, node.store, data)
    except RemoteProtocolError as exc:
        log.warning("refused a join from %s: %s", request.remote, exc)
        return web.Response(status=403, text=str(exc))
    await node.signed_here()  # the joiner is pinned, and our admit of it goes out
    # The joiner records us only when our answer reaches it, and dials us right after; dialling
    # it at once would be refused as "not a peer". Give it a moment first.
    await node.start_dialers(first_delay=JOINER_GRACE_SECONDS)
    log.info("%s (%s) joined as a peer", joiner.name, short_id(joiner.key))
    return web.Response(body=accept.to_bytes(), content_type="application/x-peernode-join")


async def status_handler(request: web.Request) -> web.Response:
    node = request.app[NODE]
    status = await node.status()
    return web.json_response(status)


async def search_handler(request: web.Request) -> web.Response:
    """JSON {hits, total, total_exact, facets, facets_exact, page, ...}: peernode/search.py."""
    node = request.app[NODE]
    try:
        query = query_from_params(request.query)
        results = await node.call(run_query, node.store.conn, query)
    except QueryError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    return web.Response(text=results_json(results), content_type="application/json")


def make_app(home: Home, listen: str | None = None) -> web.Application:
    """The daemon's app; ``listen`` (default: the setting) is where it serves, for discovery."""
    app = web.Application(client_max_size=16 * 1024)
    app[METRICS] = Metrics()
    app.middlewares.append(metrics_middleware(app[METRICS]))

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        node = Node(home)
        app[NODE] = node
        watcher = asyncio.get_running_loop().create_task(node.watch())
        yield
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await node.stop()
        node.close()

    async def close_connections(app: web.Application) -> None:
        # Runs before aiohttp waits for handlers to finish: an open /sync WebSocket handler
        # lasts as long as its session, so without this a SIGTERM waits out the timeout.
        await app[NODE].stop()

    app.cleanup_ctx.append(lifecycle)
    app.cleanup_ctx.append(liveness_context)
    # After the node, so it stops first: goodbye packets go out while the node still runs.
    app.cleanup_ctx.append(discovery_context(listen or home.config.listen))
    app.on_shutdown.append(close_connections)
    setup_webui(app, home)  # the web pages, and the Host/Origin/CSP middleware
    app.router.add_get("/sync", sync_handler)
    app.router.add_post(JOIN_PATH, join_handler)
    app.router.add_get("/api/status", status_handler)
    app.router.add_get("/api/search", search_handler)
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_route("GET", OAI_PATH, oai_handler)  # OAI-PMH 2.0: GET and POST
    app.router.add_route("POST", OAI_PATH, oai_handler)
    add_loan_routes(app)  # interlibrary loan JSON API and overdue marks (peernode/loan_api.py)
    add_report_routes(app)  # serials, cooperation reports, purchase intents (peernode/coop_api.py)
    add_catalog_routes(app)  # a record with its union entry; copy cataloguing (catalog_api.py)
    return app


async def liveness_context(app: web.Application) -> AsyncIterator[None]:
    """Heartbeats (and the liveness table), and the deadline of the start-up own-head check."""
    node = app[NODE]
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(node.liveness.run()), loop.create_task(node.own_head_deadline())]
    yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def run_daemon(home: Home, listen: str | None = None) -> None:
    # A sync writes on the database thread while two others decode and build rows. SQLite lets
    # go of the GIL for each statement and takes it back after; with the others busy, taking it
    # back waits out their switch interval (5 ms by default) every time: a shorter one lets the
    # writes through (docs/benchmarks.md, "What bounds replication").
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    # Decoding a sync message makes tens of thousands of dicts and lists (records), none in a
    # cycle; at the default threshold (700) the collector walks them, and everything queued,
    # again and again for nothing (docs/benchmarks.md, "What bounds replication").
    gc.set_threshold(*GC_THRESHOLDS)
    config = home.config
    host, port = parse_listen(listen or config.listen)
    lock = home.lock_daemon(f"{host}:{port}")
    try:
        log.info("starting peernode %s (%s) on %s:%d", config.name, home.node_id, host, port)
        try:
            web.run_app(
                make_app(home, listen),
                host=host,
                port=port,
                print=None,
                access_log=None,
                # aiohttp's own default keeps an idle connection an hour, and a client that
                # never finishes its request's headers is idle too: cut both off much sooner.
                keepalive_timeout=3 * config.heartbeat_seconds,
            )
        except OSError as exc:
            raise HomeError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}. Is another program (or "
                "another peernode) using it? Choose another address with --listen HOST:PORT."
            ) from None
    finally:
        lock.close()
