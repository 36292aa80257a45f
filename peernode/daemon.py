"""The daemon: an aiohttp server (sync WebSocket, join, JSON API, web page).

The node's background tasks (watcher, dialers) run from ``cleanup_ctx``, so they start and stop
with the app.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from protocol import RemoteProtocolError, short_id

from .home import Home, HomeError, parse_listen
from .metrics import METRICS, Metrics, metrics_handler, metrics_middleware
from .node import NODE, Node
from .peers import JOIN_PATH, accept_join, peer_keys
from .search import hits_json, search
from .sync import SyncConnection
from .web import index

log = logging.getLogger("peernode.daemon")

WATCH_SECONDS = 0.5
BACKOFF_MIN, BACKOFF_MAX = 1.0, 60.0
MAX_CONNECTIONS = 64
JOINER_GRACE_SECONDS = 5.0


async def sync_handler(request: web.Request) -> web.StreamResponse:
    node = request.app[NODE]
    if len(node.all_connections) >= MAX_CONNECTIONS:
        raise web.HTTPServiceUnavailable(text="too many connections")
    ws = web.WebSocketResponse(
        max_msg_size=node.limits.max_message_bytes + 1024,
        heartbeat=30,
        compress=node.config.compress == "yes",  # used only when the dialling side offers it
    )
    await ws.prepare(request)
    conn = SyncConnection(node, ws, dialed=False, expected_peer=None)
    node.all_connections.add(conn)
    reason = await conn.run()
    log.debug("inbound connection from %s ended: %s", request.remote, reason)
    return ws


async def join_handler(request: web.Request) -> web.Response:
    node = request.app[NODE]
    data = await request.content.read(8192)
    try:
        joiner, accept = await node.call(accept_join, node.home, node.store.conn, data)
    except RemoteProtocolError as exc:
        log.warning("refused a join from %s: %s", request.remote, exc)
        return web.Response(status=403, text=str(exc))
    node.peers = await node.call(peer_keys, node.store.conn)
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
    node = request.app[NODE]
    query = request.query.get("q", "")
    try:
        limit = max(1, min(100, int(request.query.get("limit", "20"))))
    except ValueError:
        raise web.HTTPBadRequest(text="limit must be a whole number") from None
    hits = await node.call(search, node.store.conn, query, limit)
    return web.Response(text=hits_json(hits), content_type="application/json")


def make_app(home: Home) -> web.Application:
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
    app.on_shutdown.append(close_connections)
    app.router.add_get("/", index)
    app.router.add_get("/sync", sync_handler)
    app.router.add_post(JOIN_PATH, join_handler)
    app.router.add_get("/api/status", status_handler)
    app.router.add_get("/api/search", search_handler)
    app.router.add_get("/metrics", metrics_handler)
    return app


def run_daemon(home: Home, listen: str | None = None) -> None:
    config = home.config
    host, port = parse_listen(listen or config.listen)
    lock = home.lock_daemon(f"{host}:{port}")
    try:
        log.info("starting peernode %s (%s) on %s:%d", config.name, home.node_id, host, port)
        try:
            web.run_app(make_app(home), host=host, port=port, print=None, access_log=None)
        except OSError as exc:
            raise HomeError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}. Is another program (or "
                "another peernode) using it? Choose another address with --listen HOST:PORT."
            ) from None
    finally:
        lock.close()
