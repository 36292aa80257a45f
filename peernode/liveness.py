"""Liveness: our signed heartbeat every ``heartbeat_seconds``, members' heartbeats passed on, and
what ``status`` shows per peer (last seen, sync lag), written to the ``liveness`` table.

Heartbeats travel like gossip: every node sends its own to its connections and passes on a
member's newer heartbeat at most once per half interval (``protocol.LivenessBook``), so every
node learns who is alive across the mesh, not only among its direct peers. The table is written
once per interval, not once per heartbeat: a flood of heartbeats costs no disk writes.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from typing import TYPE_CHECKING, Any

from protocol import LivenessBook, node_id, sign_heartbeat
from protocol.messages import Heartbeat

from .db import StorageFull, transaction
from .store import COUNTER_ADD, now_ms

if TYPE_CHECKING:
    from .node import Node
    from .sync import SyncConnection

log = logging.getLogger("peernode.liveness")

# Counters kept in memory and added to the `counters` table at each flush (names as in status).
LIMIT_COUNTERS = (
    "connections_refused",  # /sync answered 503: max_connections reached
    "peers_flooding",  # sessions ended because the peer sent faster than the receive limits
    "connections_idle",  # sessions closed after three heartbeat intervals of silence
    "connections_stalled",  # sessions dropped: the peer read none of ours for as long
    "messages_oversized",  # messages over max_message_bytes (the WebSocket layer refused them)
)
FORK_NOTICES = "fork_notices"  # valid fork proofs received from peers that were new here


class Liveness:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.interval = float(node.config.heartbeat_seconds)
        self.book = LivenessBook(relay_interval_ms=int(self.interval * 1000) // 2)
        self.counts: Counter[str] = Counter()
        self._dirty: set[bytes] = set()

    @property
    def idle_seconds(self) -> float:
        """Silence after which a connection is closed: three heartbeats missed."""
        return 3 * self.interval

    def own_beat(self) -> Heartbeat:
        beat = sign_heartbeat(self.node.key, now_ms())
        self.book.note(beat, beat.timestamp)
        return beat

    def heard(self, beat: Heartbeat, via: SyncConnection) -> None:
        """A verified heartbeat of a member arrived through ``via``: keep it, pass it on."""
        node = self.node
        now = now_ms()
        if beat.node_key == node.public_key or not self.book.note(beat, now):
            return  # our own coming back, or one we already know: the gossip stops here
        self._dirty.add(beat.node_key)
        if not self.book.should_relay(beat.node_key, now):
            return
        for conn in list(node.connections.values()):
            if conn is not via and conn.peer_key != beat.node_key:
                conn.push_heartbeats([beat])

    async def run(self) -> None:
        """The background task: our heartbeat to every connection, then write the table.

        Each beat is jittered: nodes started together (a power cut, a benchmark) would otherwise
        beat in step, and every relay and table write of the mesh would land at one moment.
        """
        await asyncio.sleep(random.uniform(0, self.interval))
        while True:
            beat = self.own_beat()
            for conn in list(self.node.connections.values()):
                conn.push_heartbeats([beat])
            try:
                await self.flush()
            except StorageFull as exc:
                log.warning("liveness not saved: %s", exc)
            await asyncio.sleep(self.interval * random.uniform(0.9, 1.1))

    async def flush(self) -> None:
        """Write heartbeats heard since the last flush, each connected peer's lag, and counters."""
        node = self.node
        beats = [
            (key, self.book.beats[key].timestamp, self.book.heard_at[key])
            for key in self._dirty
            if key in self.book.beats
        ]
        self._dirty.clear()
        lags = [
            (conn.peer_key, *conn.lag())
            for conn in list(node.connections.values())
            if conn.peer_key is not None
        ]
        counts = [(name, n) for name, n in self.counts.items() if n]
        self.counts.clear()
        if not (beats or lags or counts):
            return

        def write() -> None:
            with transaction(node.store.conn) as conn:
                conn.executemany(
                    "INSERT INTO liveness (key, beat_at, heard_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET beat_at = excluded.beat_at, "
                    "heard_at = excluded.heard_at WHERE excluded.beat_at > "
                    "COALESCE(liveness.beat_at, -1)",
                    beats,
                )
                conn.executemany(
                    "INSERT INTO liveness (key, behind, behind_since) VALUES (?, ?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET behind = excluded.behind, "
                    "behind_since = excluded.behind_since",
                    lags,
                )
                conn.executemany(COUNTER_ADD, counts)

        await node.call(write)

    def overlay(self, status: dict[str, Any]) -> None:
        """Put what only the daemon knows over ``node_status``'s table values: heartbeats heard
        since the last flush, connected peers' lag now, and counts not yet written."""
        node = self.node
        conns = {node_id(c.peer_key): c for c in node.connections.values() if c.peer_key}
        beats = {node_id(k): b for k, b in self.book.beats.items() if k != node.public_key}
        for row in status["peers"]:
            beat = beats.get(row["node_id"])
            if beat is not None:
                heard = self.book.heard_at.get(beat.node_key)
                row["last_heartbeat"] = max(row["last_heartbeat"] or 0, beat.timestamp)
                row["last_seen"] = max(row["last_seen"] or 0, heard or 0) or None
            conn = conns.get(row["node_id"])
            if conn is not None:
                row["behind"], row["behind_since"] = conn.lag()
                row["last_seen"] = now_ms()  # connected: seen now
        for name in LIMIT_COUNTERS:
            status["limits"][name] += self.counts[name]
        status["fork_notices_received"] += self.counts[FORK_NOTICES]
