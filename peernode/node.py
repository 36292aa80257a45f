"""The running node: identity, the store on its own thread, live sync connections, dialers.

All SQLite work runs on one worker thread, so the event loop never waits on the disk. The
watcher notices what other processes wrote (the CLI importing a catalogue, joining a peer) and
tells every connected peer.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from protocol import DEFAULT_LIMITS, Entry, Head, LogKey, RemoteProtocolError, short_id

from .db import transaction
from .home import Home
from .peers import peer_keys
from .status import node_status
from .store import ApplyResult, ForkDetected, Store, now_ms
from .sync import SyncConnection

log = logging.getLogger("peernode.node")
T = TypeVar("T")

WATCH_SECONDS = 0.5
BACKOFF_MIN, BACKOFF_MAX = 1.0, 60.0


class Node:
    """The running node: identity, store (on its own thread) and live connections."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self.config = home.config
        self.key = home.key
        self.public_key = home.public_key
        self.limits = DEFAULT_LIMITS
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="peernode-db")
        self.store: Store = self._executor.submit(home.open_store).result()
        self.peers: set[bytes] = self._executor.submit(peer_keys, self.store.conn).result()
        self.connections: dict[bytes, SyncConnection] = {}
        self.all_connections: set[SyncConnection] = set()
        self.heads: dict[LogKey, Head] = self._executor.submit(self.store.heads).result()
        self._dialers: dict[bytes, asyncio.Task[None]] = {}
        self._data_version = -1
        # Which connection is fetching each log: one at a time, so no entry arrives twice.
        self.claims: dict[LogKey, SyncConnection] = {}
        self.frozen: set[LogKey] = self._executor.submit(self.store.frozen_logs).result()
        self._tasks: set[asyncio.Task[None]] = set()

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        self._executor.submit(self.store.conn.close).result()
        self._executor.shutdown()

    # --- trust ---------------------------------------------------------------------------------

    def is_peer(self, key: bytes) -> bool:
        return key in self.peers

    def trusts(self, author: bytes) -> bool:
        """Whose logs we replicate: our own and our peers'. (Membership widens this later.)"""
        return author == self.public_key or author in self.peers

    # --- one fetcher per log -------------------------------------------------------------------

    def claim(self, conn: SyncConnection, key: LogKey) -> bool:
        if key in self.frozen:
            return False  # a forked log stays at the fork; nothing more is fetched
        owner = self.claims.setdefault(key, conn)
        return owner is conn

    def release(self, conn: SyncConnection, key: LogKey) -> None:
        if self.claims.get(key) is conn:
            del self.claims[key]
            for other in self.connections.values():
                if other is not conn:
                    self._spawn(other.pump())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- connections ---------------------------------------------------------------------------

    def register(self, conn: SyncConnection) -> bool:
        """Keep one connection per peer; both ends keep the one dialled by the smaller key."""
        assert conn.peer_key is not None
        self.all_connections.add(conn)
        existing = self.connections.get(conn.peer_key)
        if existing is not None and existing is not conn:
            if _dialer(self, conn) >= _dialer(self, existing):
                return False
            existing.close_reason = "duplicate connection"
            self._spawn(existing.close("duplicate connection"))
        self.connections[conn.peer_key] = conn
        self._spawn(self._mark_seen(conn.peer_key))
        return True

    def unregister(self, conn: SyncConnection) -> None:
        self.all_connections.discard(conn)
        if conn.peer_key is not None and self.connections.get(conn.peer_key) is conn:
            del self.connections[conn.peer_key]
            log.info("disconnected from %s: %s", conn.label, conn.close_reason or "closed")
        # A connection cut mid-request never sent or received Close, so its replicator never
        # released the logs it was fetching: free them here, or no session could fetch them.
        for key in [k for k, owner in self.claims.items() if owner is conn]:
            self.release(conn, key)

    async def status(self) -> dict[str, Any]:
        """What `status --json`, /api/status, /metrics and the web page report."""
        connected = set(self.connections)
        return await self.call(
            lambda: node_status(self.home, self.store, running=True, connected=connected)
        )

    # --- store operations used by connections --------------------------------------------------

    async def apply(self, key: LogKey, entries: Sequence[Entry]) -> ApplyResult:
        result = await self.call(self.store.apply, key, entries)
        if isinstance(result.error, ForkDetected):
            self.frozen.add(key)
            log.error("FORK: %s", result.error)
        if result.applied and result.head is not None:
            await self._broadcast({key: result.head})
        return result

    async def note_rejection(self, peer: bytes | None, error: RemoteProtocolError) -> None:
        who = short_id(peer) if peer else "unknown peer"
        log.warning("rejected from %s: %s: %s", who, error.reason, error)
        await self.call(self.store.record_rejection, peer, error.reason, str(error))

    async def save_peer_heads(self, peer: bytes, heads: dict[LogKey, Head]) -> None:
        """Remember what ``peer`` holds, for `bundle export --for` while it is unreachable."""
        rows = [(peer, k.author, k.log, h.seq) for k, h in heads.items()]

        def write() -> None:
            with transaction(self.store.conn) as conn:
                conn.executemany(
                    "INSERT INTO peer_heads (peer, author, log, seq) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (peer, author, log) DO UPDATE SET seq = excluded.seq "
                    "WHERE excluded.seq > peer_heads.seq",
                    rows,
                )

        await self.call(write)

    async def note_synced(self, peer: bytes) -> None:
        def write() -> bool:
            now = now_ms()
            self.store.conn.execute(
                "UPDATE peers SET last_sync = ?, last_seen = ?, last_error = NULL WHERE key = ?",
                (now, now, peer),
            )
            return self.store.clear_restored()

        if await self.call(write):
            log.info("caught up with %s after a restore: this node signs again", short_id(peer))

    async def _mark_seen(self, peer: bytes) -> None:
        def write() -> None:
            self.store.conn.execute(
                "UPDATE peers SET last_seen = ?, last_error = NULL WHERE key = ?", (now_ms(), peer)
            )

        await self.call(write)

    async def _broadcast(self, changed: dict[LogKey, Head]) -> None:
        fresh = {
            k: h for k, h in changed.items() if k not in self.heads or self.heads[k].seq < h.seq
        }
        if not fresh:
            return
        self.heads.update(fresh)
        for conn in list(self.connections.values()):
            await conn.local_changed(dict(fresh))

    # --- background tasks ----------------------------------------------------------------------

    async def watch(self) -> None:
        """Notice what other processes wrote (imports, joins) and act on it."""
        while True:
            version = await self.call(
                lambda: int(self.store.conn.execute("PRAGMA data_version").fetchone()[0])
            )
            if version != self._data_version:
                self._data_version = version
                self.peers = await self.call(peer_keys, self.store.conn)
                await self._broadcast(await self.call(self.store.heads))
                for conn in list(self.connections.values()):
                    await conn.pump()  # whom we trust may have changed
                await self.start_dialers()
            await asyncio.sleep(WATCH_SECONDS)

    async def start_dialers(self, first_delay: float = 0.0) -> None:
        rows = await self.call(
            lambda: self.store.conn.execute(
                "SELECT key, address FROM peers WHERE address IS NOT NULL"
            ).fetchall()
        )
        for key, address in rows:
            task = self._dialers.get(key)
            if task is None or task.done():
                self._dialers[key] = asyncio.get_running_loop().create_task(
                    self.dial(key, address, first_delay)
                )

    async def dial(self, key: bytes, address: str, first_delay: float = 0.0) -> None:
        """Keep a connection to one peer, retrying with exponential backoff and jitter."""
        await asyncio.sleep(first_delay)
        backoff = BACKOFF_MIN
        url = f"http://{address}/sync"
        async with aiohttp.ClientSession() as http:
            while key in self.peers:
                if key in self.connections:
                    await asyncio.sleep(WATCH_SECONDS)
                    continue
                reason = ""
                try:
                    async with http.ws_connect(
                        url,
                        compress=15 if self.config.compress == "yes" else 0,
                        max_msg_size=self.limits.max_message_bytes + 1024,
                        heartbeat=30,
                        timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10),
                    ) as ws:
                        conn = SyncConnection(self, ws, dialed=True, expected_peer=key)
                        reason = await conn.run()
                        if conn.peer_key is not None:
                            backoff = BACKOFF_MIN
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    reason = f"cannot reach {address}: {type(exc).__name__}: {exc}"
                log.debug("connection to %s ended: %s", short_id(key), reason)
                await self._note_error(key, reason)
                await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, BACKOFF_MAX)

    async def _note_error(self, key: bytes, reason: str) -> None:
        def write() -> None:
            self.store.conn.execute(
                "UPDATE peers SET last_error = ? WHERE key = ?", (reason[:500], key)
            )

        await self.call(write)

    async def stop(self) -> None:
        tasks = [*self._dialers.values(), *self._tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for conn in list(self.all_connections):
            if not conn.ws.closed:
                await conn.ws.close()


def _dialer(node: Node, conn: SyncConnection) -> bytes:
    assert conn.peer_key is not None
    return node.public_key if conn.dialed else conn.peer_key


NODE = web.AppKey("node", Node)
