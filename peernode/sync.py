"""One sync connection: a ``Replicator`` driven over an aiohttp WebSocket.

The reader loop feeds received messages to the replicator and carries out its actions in order.
Serving entries runs in its own task: two nodes that both stream a large log at each other must
not each wait for the other to read (a deadlock once the socket buffers fill).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from protocol import (
    Apply,
    Closed,
    Head,
    LogKey,
    Ready,
    Reject,
    Replicator,
    Send,
    Serve,
    Session,
    short_id,
)
from protocol.replication import Action

from .db import StorageFull
from .store import now_ms

if TYPE_CHECKING:
    from .node import Node

log = logging.getLogger("peernode.sync")

SERVE_QUEUE = 64  # pending requests from one peer; more is a flood and closes the session
SERVE_CHUNK_BYTES = 2 * 1024 * 1024
# A WebSocket loses no message within a session, and its heartbeat ends a dead one, so asking
# again in the same session only duplicates data still in flight: on a lossy 256 kbit/s line a
# 2 MiB batch takes minutes. Re-requests stay for the protocol's unreliable transports.
REQUEST_TIMEOUT_MS = 10 * 60 * 1000
# Smaller messages show progress sooner on a slow line and cost little on a fast one.
MESSAGE_BYTES = 512 * 1024
TICK_SECONDS = 1.0

WebSocket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse


class SyncConnection:
    def __init__(
        self, node: Node, ws: WebSocket, *, dialed: bool, expected_peer: bytes | None
    ) -> None:
        self.node = node
        self.ws = ws
        self.dialed = dialed
        self.expected_peer = expected_peer
        self.rep: Replicator | None = None
        self.peer_key: bytes | None = None
        self._serve_queue: asyncio.Queue[Serve] = asyncio.Queue(SERVE_QUEUE)
        self._send_lock = asyncio.Lock()
        self._line_free_at = 0.0  # when the upload limit lets the next message go
        self._closing = False
        self._caught_up = False
        self.close_reason = ""

    @property
    def label(self) -> str:
        return short_id(self.peer_key) if self.peer_key else "unknown peer"

    async def run(self) -> str:
        """Run until the connection ends; returns why it ended."""
        node = self.node
        heads = await node.call(node.store.heads)
        session = Session(
            node.key,
            os.urandom(32),
            node.config.name,
            expected_peer=self.expected_peer,
            limits=node.limits,
        )
        self.rep = Replicator(
            session,
            heads,
            accept_peer=node.is_peer,
            trusted=node.trusts,
            now=now_ms(),
            limits=node.limits,
            claim=lambda key: node.claim(self, key),
            release=lambda key: node.release(self, key),
            request_timeout_ms=REQUEST_TIMEOUT_MS,
            max_batch_bytes=MESSAGE_BYTES,
        )
        tasks = [asyncio.create_task(self._ticker()), asyncio.create_task(self._server())]
        try:
            await self.perform(self.rep.start())
            async for msg in self.ws:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    await self.perform(self.rep.receive(msg.data, now_ms()))
                    await self._note_progress()
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    await self.perform(self.rep.close("text frames are not part of the protocol"))
                else:
                    break
                if self._closing:
                    break
        except (ConnectionResetError, aiohttp.ClientError) as exc:
            self.close_reason = self.close_reason or f"connection lost: {exc}"
        except StorageFull as exc:
            # Nothing was stored half-way; the dialer tries again later, when space may be back.
            log.error(
                "sync with %s paused: %s. It resumes by itself once there is space.",
                self.label,
                exc,
            )
            self.close_reason = "disk full on this node"
            await self.perform(self.rep.close(self.close_reason))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.peer_key is not None and self.rep is not None and self.rep.theirs:
                await node.save_peer_heads(self.peer_key, dict(self.rep.theirs))
            node.unregister(self)
            if not self.ws.closed:
                await self.ws.close()
        return self.close_reason or session.close_reason or "connection closed"

    async def perform(self, actions: list[Action]) -> None:
        for action in actions:
            match action:
                case Send(data):
                    await self._send(data)
                case Serve():
                    try:
                        self._serve_queue.put_nowait(action)
                    except asyncio.QueueFull:
                        assert self.rep is not None
                        await self.perform(self.rep.close("too many outstanding requests"))
                case Apply(key, entries):
                    result = await self.node.apply(key, entries)
                    assert self.rep is not None
                    if result.applied or result.error is None:
                        # Acknowledge what was stored even when a later entry failed, so the
                        # replicator's head (and any probe) starts from the truth.
                        await self.perform(self.rep.applied(key, result.head))
                    if result.error is not None:
                        await self.perform(self.rep.rejected(key, result.error))
                case Reject(error, key):
                    # The session knows the peer's key from its Hello, even for a stranger.
                    assert self.rep is not None
                    await self.node.note_rejection(self.rep.session.peer_key, error)
                case Ready(peer_key, peer_name):
                    self.peer_key = peer_key
                    if not self.node.register(self):
                        assert self.rep is not None
                        await self.perform(self.rep.close("duplicate connection"))
                    else:
                        log.info("connected to %s (%s)", peer_name, short_id(peer_key))
                case Closed(reason):
                    self.close_reason = self.close_reason or reason
                    self._closing = True

    async def local_changed(self, heads: dict[LogKey, Head]) -> None:
        if self.rep is not None and not self._closing:
            await self.perform(self.rep.local_changed(heads))

    async def pump(self) -> None:
        if self.rep is not None and not self._closing:
            await self.perform(self.rep.pump())

    async def close(self, reason: str) -> None:
        if self.rep is not None:
            await self.perform(self.rep.close(reason))

    async def _send(self, data: bytes) -> None:
        if self.ws.closed:
            self._closing = True
            return
        async with self._send_lock:
            await self._pace(len(data))
            await self.ws.send_bytes(data)

    async def _pace(self, size: int) -> None:
        """Keep to ``upload_kbps``: wait until this message's share of the line is free.

        Counted before compression, so the line carries at most this much (usually less).
        """
        kbps = self.node.config.upload_kbps
        if kbps <= 0:
            return
        loop = asyncio.get_running_loop()
        start = max(loop.time(), self._line_free_at)
        self._line_free_at = start + size * 8 / (kbps * 1000)
        await asyncio.sleep(start - loop.time())

    async def _server(self) -> None:
        """Stream requested entries, a chunk at a time, without holding up the reader."""
        while True:
            request = await self._serve_queue.get()
            assert self.rep is not None
            first = request.first
            while first <= request.last and not self._closing:
                raws = await self.node.call(
                    self.node.store.entry_raws, request.key, first, request.last, SERVE_CHUNK_BYTES
                )
                if not raws:
                    break
                await self.perform(self.rep.entries_messages(request.key, raws))
                first += len(raws)

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            assert self.rep is not None
            await self.perform(self.rep.tick(now_ms()))
            if self._closing:
                await self.ws.close()
                return

    async def _note_progress(self) -> None:
        rep = self.rep
        if rep is None or self.peer_key is None:
            return
        caught_up = rep.caught_up
        if caught_up and not self._caught_up:
            await self.node.note_synced(self.peer_key)
            await self.node.save_peer_heads(self.peer_key, dict(rep.theirs))
        self._caught_up = caught_up
