"""One sync connection: a ``Replicator`` driven over an aiohttp WebSocket.

The reader loop feeds received messages to the replicator and carries out its actions in order.
Serving entries runs in its own task: two nodes that both stream a large log at each other must
not each wait for the other to read (a deadlock once the socket buffers fill).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import socket
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from protocol import (
    Apply,
    Closed,
    ForkProof,
    ForkReported,
    Head,
    Heard,
    LimitExceeded,
    LogKey,
    OwnLogBehind,
    RateLimited,
    Ready,
    Reject,
    Replicator,
    Send,
    Serve,
    Session,
    short_id,
)
from protocol.kinds import MEMBERS_LOG
from protocol.messages import Heartbeat
from protocol.replication import Action

from .db import StorageFull
from .ratelimit import ReceiveLimiter
from .recordrows import CatalogRows
from .store import now_ms

if TYPE_CHECKING:
    from .node import Node

log = logging.getLogger("peernode.sync")

SERVE_QUEUE = 64  # pending requests from one peer; more is a flood and closes the session
SERVE_CHUNK_BYTES = 2 * 1024 * 1024
# Received messages decoded and waiting for the database: bounds memory (each up to
# MESSAGE_BYTES, about 14 MB once decoded and built) and, when full, stops reading the socket;
# a longer queue made no sync faster (the database is the slower side).
APPLY_QUEUE = 2
BUILD_AHEAD_RECORDS = 100  # fewer in a message: the store builds their rows itself
# A WebSocket loses no message within a session, so a request that brings nothing for two
# minutes (a 512 KiB batch takes about 16 s at 256 kbit/s) means a stuck peer, not a lost
# message: ask once more, then end the session so another peer, or a new session, takes the log.
REQUEST_TIMEOUT_MS = 2 * 60 * 1000  # without progress; each batch received restarts it
REQUEST_TRIES = 2  # then the session ends, and another peer (or a new session) takes the log
# Smaller messages show progress sooner on a slow line and cost little on a fast one.
MESSAGE_BYTES = 512 * 1024
TICK_SECONDS = 1.0
CLOSE_SECONDS = 5.0  # for the WebSocket closing handshake; a dead line is dropped after it
LAG_TICKS = 5  # how often (in ticks) a connection re-measures how far behind the peer we are
HEARTBEAT_BATCH_SECONDS = 1.0  # heartbeats wait this long to share a message
# What one peer may send us. Far above an honest peer (a sync is a few messages of up to 512 KiB
# a second; heartbeats a few a second in a large mesh), so only a flood ever waits; one that
# keeps us waiting for FLOOD_SECONDS is closed (peernode/ratelimit.py).
RECEIVE_MESSAGES_PER_S = 200.0
RECEIVE_BYTES_PER_S = 64.0 * 1024 * 1024
FLOOD_SECONDS = 5.0

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
        self._apply_queue: asyncio.Queue[tuple[Apply, dict[bytes, CatalogRows]]] = asyncio.Queue(
            APPLY_QUEUE
        )
        self._send_lock = asyncio.Lock()
        self._sender: asyncio.Task[None] | None = None  # see _send_soon
        # Sealed messages, in the order they were sealed: each carries the next nonce, so they
        # must reach the socket in that order, whichever task sealed them.
        self._outbox: collections.deque[bytes] = collections.deque()
        self._line_free_at = 0.0  # when the upload limit lets the next message go
        self._limiter = ReceiveLimiter(RECEIVE_MESSAGES_PER_S, RECEIVE_BYTES_PER_S, FLOOD_SECONDS)
        self._last_heard = asyncio.get_running_loop().time()  # idle: no whole message since
        self._sending_since: float | None = None  # a message is being handed to the socket
        self.behind_since: int | None = None  # since when the peer holds entries we lack
        # What other tasks want this peer told, merged until the pusher sends it: a slow peer
        # delays only its own updates, and what waits for it stays bounded (one per log/member).
        self._push_heads: dict[LogKey, Head] = {}
        self._push_beats: dict[bytes, Heartbeat] = {}
        self._push_forks: list[ForkProof] = []
        self._push_wake = asyncio.Event()
        self._beats_due: asyncio.TimerHandle | None = None
        self._closing = False
        self._caught_up = False
        self._progress_checked = 0.0
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
            ephemeral=X25519PrivateKey.generate(),  # this session's only: forward secrecy
            compress=node.config.compress == "yes",
        )
        self.rep = Replicator(
            session,
            heads,
            local_bases=await node.call(node.store.bases),
            accept_peer=node.accept_peer,
            trusted=node.trusts,
            now=now_ms(),
            limits=node.limits,
            claim=lambda key: node.claim(self, key),
            release=lambda key: node.release(self, key),
            heartbeat_known=node.liveness.book.known,
            request_timeout_ms=REQUEST_TIMEOUT_MS,
            max_tries=REQUEST_TRIES,
            max_batch_bytes=MESSAGE_BYTES,
        )
        tasks = [
            asyncio.create_task(self._ticker()),
            asyncio.create_task(self._server()),
            asyncio.create_task(self._pusher()),
            asyncio.create_task(self._applier()),
        ]
        try:
            await self.perform(self.rep.start())
            async for msg in self.ws:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    self._last_heard = asyncio.get_running_loop().time()
                    await self.perform(self.rep.receive(msg.data, now_ms()))
                    await self._note_progress()
                    await self._throttle(len(msg.data))
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    await self.perform(self.rep.close("text frames are not part of the protocol"))
                else:
                    await self._ended(msg)
                    break
                if self._closing:
                    break
        except (ConnectionResetError, aiohttp.ClientError) as exc:
            self.close_reason = self.close_reason or f"connection lost: {exc}"
        except TimeoutError:  # the WebSocket's receive timeout: a backstop behind _ticker's
            self.close_reason = self.close_reason or "idle: nothing received"
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
            if self._sender is not None:
                tasks.append(self._sender)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.peer_key is not None and self.rep is not None and self.rep.theirs:
                await node.save_peer_heads(self.peer_key, dict(self.rep.theirs))
            node.unregister(self)
            if not self.ws.closed:
                await self._close_ws()
        return self.close_reason or session.close_reason or "connection closed"

    async def perform(self, actions: list[Action], *, wait: bool = True) -> None:
        """Carry out the replicator's actions in order. ``wait=False``: messages are sent by a
        task of their own (``_send_soon``) rather than waited for."""
        # Queue every message before the first await, while no other task can seal one.
        self._outbox.extend(action.data for action in actions if isinstance(action, Send))
        for action in actions:
            match action:
                case Send():
                    if wait:
                        await self._flush()
                    else:
                        self._send_soon()
                case Serve():
                    try:
                        self._serve_queue.put_nowait(action)
                    except asyncio.QueueFull:
                        await self._reject_and_close(
                            RateLimited(
                                f"{self.label} sent more than {SERVE_QUEUE} requests that are "
                                "not answered yet"
                            )
                        )
                case Apply(key, entries):
                    if key.log == MEMBERS_LOG:
                        # Whom we trust decides what the next message may bring: apply the
                        # membership log before reading on, and everything queued before it.
                        await self._apply_queue.join()
                        await self._apply_now([(action, {})])
                    else:
                        # A few records (one new entry passing through a mesh) are built by
                        # the store itself: a hop to the rows thread would only add latency.
                        records = sum(len(e.body.get("ops", ())) for e in entries)
                        ahead = records >= BUILD_AHEAD_RECORDS
                        built = await self.node.build_rows(entries) if ahead else {}
                        # Full: stop reading the socket until the database catches up.
                        await self._apply_queue.put((action, built))
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
                        await self.node.on_ready(self)
                case Closed(reason):
                    self.close_reason = self.close_reason or reason
                    self._closing = True
                case Heard(beat):
                    self.node.liveness.heard(beat, self)
                case ForkReported(proof, key, seq):
                    await self.node.fork_reported(proof, key, seq, self)
                case OwnLogBehind(key, ours, theirs):
                    await self.node.own_log_behind(self, key, ours, theirs)

    async def _applier(self) -> None:
        """Store received entries while the reader decodes the next message.

        Decoding and verifying run on the event loop, building the rows on a thread of their own
        (peernode/recordrows.py), writing them on the database thread, all three at once: done
        one after the other, each would wait for the others. Whatever queued up while a
        transaction ran goes into the next one together (``Store.apply_many``). Once the
        session is closing, what is still queued is dropped: the next session asks again.
        """
        while True:
            batch = [await self._apply_queue.get()]
            while not self._apply_queue.empty():
                batch.append(self._apply_queue.get_nowait())
            try:
                if not self._closing:
                    await self._apply_now(batch)
            except StorageFull as exc:
                # Nothing was stored half-way; the dialer tries again later, when space is back.
                log.error(
                    "sync with %s paused: %s. It resumes by itself once there is space.",
                    self.label,
                    exc,
                )
                await self._end("disk full on this node")
            except Exception:
                log.exception("storing entries from %s failed", self.label)
                await self._end("storing received entries failed")
            finally:
                for _ in batch:
                    self._apply_queue.task_done()

    async def _apply_now(self, batch: list[tuple[Apply, dict[bytes, CatalogRows]]]) -> None:
        built = {h: rows for _, ahead in batch for h, rows in ahead.items()}
        results = await self.node.apply_many([(a.key, a.entries) for a, _ in batch], built)
        assert self.rep is not None
        for (action, _), result in zip(batch, results, strict=True):
            # Acks and requests go out without waiting: while the server task waits for a peer
            # that reads nothing (a link cut by a partition), an applier waiting behind it
            # would stop the reader too (its queue full), and a stopped reader never notices
            # the silence that ends such a session.
            if result.applied or result.error is None:
                # Acknowledge what was stored even when a later entry failed, so the
                # replicator's head (and any probe) starts from the truth.
                await self.perform(self.rep.applied(action.key, result.head), wait=False)
            if result.error is not None:
                await self.perform(self.rep.rejected(action.key, result.error), wait=False)

    def _send_soon(self) -> None:
        """Send what is queued in the outbox from a task of its own (in order, as ever)."""
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._flush())

    async def _end(self, reason: str) -> None:
        """Close the session from a task other than the reader: the reader's loop then ends."""
        assert self.rep is not None
        self.close_reason = self.close_reason or reason
        await self.perform(self.rep.close(reason), wait=False)
        self._closing = True
        await self._close_ws()

    async def local_changed(self, heads: dict[LogKey, Head]) -> None:
        if self.rep is not None and not self._closing:
            await self.perform(self.rep.local_changed(heads))

    async def pump(self) -> None:
        if self.rep is not None and not self._closing:
            await self.perform(self.rep.pump())

    # --- telling the peer without waiting for it -------------------------------------------------

    def push_heads(self, heads: dict[LogKey, Head]) -> None:
        """Our store advanced: tell the peer when its line is free (see ``_pusher``)."""
        for key, head in heads.items():
            known = self._push_heads.get(key)
            if known is None or known.seq < head.seq:
                self._push_heads[key] = head
        self._push_wake.set()

    def push_heartbeats(self, beats: list[Heartbeat]) -> None:
        """Heartbeats are not urgent: gather them for ``HEARTBEAT_BATCH_SECONDS`` and send one
        message, rather than one message per member per link."""
        for beat in beats:
            known = self._push_beats.get(beat.node_key)
            if known is None or known.timestamp < beat.timestamp:
                self._push_beats[beat.node_key] = beat
        if self._beats_due is None:
            loop = asyncio.get_running_loop()
            self._beats_due = loop.call_later(HEARTBEAT_BATCH_SECONDS, self._wake_for_beats)

    def _wake_for_beats(self) -> None:
        self._beats_due = None
        self._push_wake.set()

    def push_fork(self, proof: ForkProof) -> None:
        self._push_forks.append(proof)
        self._push_wake.set()

    async def _pusher(self) -> None:
        while True:
            await self._push_wake.wait()
            self._push_wake.clear()
            rep = self.rep
            if rep is None or self._closing:
                continue
            heads, self._push_heads = self._push_heads, {}
            beats, self._push_beats = self._push_beats, {}
            forks, self._push_forks = self._push_forks, []
            actions: list[Action] = []
            if heads:
                actions += rep.local_changed(heads)
            if beats:
                actions += rep.heartbeat_messages(beats.values())
            for proof in forks:
                actions += rep.fork_message(proof)
            await self.perform(actions)

    # --- limits --------------------------------------------------------------------------------

    async def _throttle(self, size: int) -> None:
        """Keep this peer within the receive limits: wait (TCP pushes back), or end a flood."""
        loop = asyncio.get_running_loop()
        wait = self._limiter.on_message(size, loop.time())
        if self._limiter.flooding and not self._closing:
            self.node.liveness.counts["peers_flooding"] += 1
            await self._reject_and_close(
                RateLimited(
                    f"{self.label} sent over {RECEIVE_MESSAGES_PER_S / 2:.0f} messages a "
                    f"second for {FLOOD_SECONDS:.0f} s: a flood"
                )
            )
            return
        # Always yield: messages already buffered must not let one peer's reader run on while
        # the others' wait (the event loop is shared).
        await asyncio.sleep(wait)

    async def _reject_and_close(self, error: RateLimited | LimitExceeded) -> None:
        """Record a typed rejection naming the peer, then end the session with it."""
        assert self.rep is not None
        await self.node.note_rejection(self.rep.session.peer_key, error)
        await self.perform(self.rep.close(f"{error.reason}: {error}"))

    async def _ended(self, msg: aiohttp.WSMessage) -> None:
        """The WebSocket ended or failed; a message over the size limit is the peer's fault."""
        if msg.type == aiohttp.WSMsgType.ERROR and getattr(msg.data, "code", None) == (
            aiohttp.WSCloseCode.MESSAGE_TOO_BIG
        ):
            self.node.liveness.counts["messages_oversized"] += 1
            error = LimitExceeded(
                f"{self.label} sent a message over {self.node.limits.max_message_bytes} bytes"
            )
            self.close_reason = f"{error.reason}: {error}"
            assert self.rep is not None
            await self.node.note_rejection(self.rep.session.peer_key, error)

    def lag(self) -> tuple[int, int | None]:
        """(entries the peer holds that we lack, since when) for the logs we follow."""
        rep = self.rep
        if rep is None:
            return 0, None
        behind = sum(
            head.seq - (rep.local[key].seq if key in rep.local else 0)
            for key, head in rep.theirs.items()
            if rep.trusted(key.author)
            and key not in self.node.frozen
            and head.seq > (rep.local[key].seq if key in rep.local else 0)
        )
        return behind, self.behind_since if behind else None

    async def close(self, reason: str) -> None:
        if self.rep is not None:
            await self.perform(self.rep.close(reason))

    async def _flush(self) -> None:
        """Send the queued messages in order, whoever queued them; returns once all are out."""
        async with self._send_lock:
            while self._outbox:
                if self.ws.closed:
                    self._closing = True
                    self._outbox.clear()
                    return
                await self._pace(len(self._outbox[0]))
                self._sending_since = asyncio.get_running_loop().time()  # see _ticker
                try:
                    await self.ws.send_bytes(self._outbox.popleft())
                except (ConnectionResetError, aiohttp.ClientError) as exc:
                    # The socket went away under us; the reader loop ends the session. Every
                    # task that sends (server, pusher, pumps) must survive this, not die
                    # with an exception nobody retrieves.
                    self.close_reason = self.close_reason or f"connection lost: {exc}"
                    self._closing = True
                    self._outbox.clear()
                    return
                finally:
                    self._sending_since = None

    async def _pace(self, size: int) -> None:
        """Keep to ``upload_kbps``: wait until this message's share of the line is free.

        Counted on the sealed message, after compression: what the line carries, give or take
        the WebSocket and TCP headers.
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
        try:
            await self._serve_requests()
        except asyncio.CancelledError:
            raise
        except Exception:
            # A server that died in silence would leave the peer waiting on every log it asked
            # us for; end the session instead, loudly.
            log.exception("serving %s failed", self.label)
            self._closing = True
            await self._close_ws()

    async def _serve_requests(self) -> None:
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
        """Once a second: the replicator's timers, the lag, and whether the link is dead.

        Its own messages go out through the sender task: a ticker waiting for the send lock,
        held by a task whose message the peer never reads, could never see that."""
        idle = self.node.liveness.idle_seconds
        loop = asyncio.get_running_loop()
        ticks = 0
        while True:
            await asyncio.sleep(TICK_SECONDS)
            assert self.rep is not None
            now = loop.time()
            silent = now - self._last_heard
            sending = now - self._sending_since if self._sending_since is not None else 0.0
            if silent > idle and not self._closing:
                # A live peer sends a heartbeat every interval; a trickled message never ends.
                self._abandon("connections_idle", f"idle: nothing received for {silent:.0f} s")
            elif sending > idle and not self._closing:
                self._abandon(
                    "connections_stalled",
                    f"stalled: the peer read nothing of ours for {sending:.0f} s",
                )
            if self._closing:
                await self._close_ws()
                return
            await self.perform(self.rep.tick(now_ms()), wait=False)
            ticks += 1
            if ticks % LAG_TICKS == 0:  # lag() walks every log the peer holds
                behind, _ = self.lag()
                if not behind:
                    self.behind_since = None
                elif self.behind_since is None:
                    self.behind_since = now_ms()

    def _abandon(self, counter: str, reason: str) -> None:
        """Drop a connection whose line is dead, at once and without a goodbye (a Close would
        wait behind messages that never leave), counted under ``counter``. Shutting the socket
        down wakes every task waiting on it: the reader sees the end, senders a reset, and the
        session ends."""
        self.node.liveness.counts[counter] += 1
        log.info("closing the connection to %s: %s", self.label, reason)
        self.close_reason = self.close_reason or reason
        self._closing = True
        sock = self.ws.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    async def _close_ws(self) -> None:
        """Close the WebSocket, but never wait long: its Close frame queues behind what the
        socket still holds, which a dead line never takes."""
        with contextlib.suppress(TimeoutError, aiohttp.ClientError, ConnectionError):
            async with asyncio.timeout(CLOSE_SECONDS):
                await self.ws.close()

    async def _note_progress(self) -> None:
        rep = self.rep
        if rep is None or self.peer_key is None:
            return
        if self.node.own_head_pending and rep.own_head_confirmed:
            await self.node.own_head_confirmed(self.peer_key)
        now = asyncio.get_running_loop().time()
        if self._caught_up and now - self._progress_checked < TICK_SECONDS:
            return  # caught up a moment ago: a heartbeat need not walk every log again
        self._progress_checked = now
        caught_up = rep.caught_up
        if caught_up and not self._caught_up:
            await self.node.note_synced(self.peer_key)
            await self.node.save_peer_heads(self.peer_key, dict(rep.theirs))
        self._caught_up = caught_up
