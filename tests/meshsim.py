"""A deterministic simulated mesh for the sans-IO protocol: no sockets, no SQLite, no clock.

Each ``SimNode`` is what peernode/node.py + store.py + sync.py do, with the I/O taken out: an
in-memory store that places entries exactly as ``Store.apply`` does, the node's heads and
broadcast, claims (one fetcher per log), and one ``Replicator`` per live connection, whose
actions are carried out the way ``SyncConnection.perform`` carries them out.

A ``Link`` joins two nodes and carries message byte strings in one queue per direction, in
order, like a WebSocket. What a real transport can do to a session, the mesh does as a whole:
a connection dies (both ends gone, no Close), a node crashes (its ends vanish, the peer's end
lives on half-open until the heartbeat notices), a link is cut and healed. Nothing is lost or
reordered inside a live session, because a WebSocket never does that.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import (
    Apply,
    ChainError,
    Closed,
    Entry,
    ForkProof,
    Head,
    LogKey,
    Placement,
    Ready,
    Reject,
    RemoteProtocolError,
    Replicator,
    Send,
    Serve,
    Session,
    State,
    fork_proof,
    place,
    public_bytes,
    sign_entry,
)
from protocol.replication import Action

T0 = 1_700_000_000_000  # the simulated clock starts here (ms)
# Like peernode/sync.py: a live WebSocket loses nothing, so a stalled request is asked again
# after two minutes without progress, and the session is given up after the second try.
# (Imported values would drag aiohttp in; tests/test_mesh_model.py checks that these stay
# equal to sync.py's.)
REQUEST_TIMEOUT_MS = 2 * 60 * 1000
REQUEST_TRIES = 2
# Small Entries messages (a few entries each), so that one request is answered in several
# messages and the model sees partial progress; sync.py uses 512 KiB, same code path.
BATCH_BYTES = 1024
# aiohttp heartbeat=30 s on both ends: a half-open connection is noticed within two of them.
HEARTBEAT_MS = 60_000
SERVE_QUEUE = 64  # sync.py: more outstanding requests than this is a flood


def make_session(
    key: Ed25519PrivateKey, nonce: bytes, name: str, expected_peer: bytes | None
) -> Session:
    """The one place the model builds a Session (its constructor is still growing)."""
    return Session(key, nonce, name, expected_peer=expected_peer)


class ForkFound(RemoteProtocolError):
    reason = "fork"

    def __init__(self, message: str, proof: ForkProof) -> None:
        super().__init__(message)
        self.proof = proof


@dataclass(frozen=True)
class ApplyResult:
    head: Head | None
    applied: int
    duplicates: int
    error: RemoteProtocolError | None = None


class MemoryStore:
    """``peernode.store.Store`` in memory: logs, heads and fork proofs; it survives a crash."""

    def __init__(self) -> None:
        self.logs: dict[LogKey, list[Entry]] = {}
        self.forks: list[ForkProof] = []
        self.duplicates = 0

    def head(self, key: LogKey) -> Head | None:
        log = self.logs.get(key)
        return Head(log[-1].seq, log[-1].hash) if log else None

    def heads(self) -> dict[LogKey, Head]:
        return {key: Head(log[-1].seq, log[-1].hash) for key, log in self.logs.items() if log}

    def raws(self, key: LogKey, first: int, last: int) -> list[bytes]:
        return [e.raw for e in self.logs.get(key, []) if first <= e.seq <= last]

    def frozen(self) -> set[LogKey]:
        return {LogKey(a.author, a.log) for a, _ in (p.verify() for p in self.forks)}

    def _hash_at(self, key: LogKey, seq: int) -> bytes | None:
        log = self.logs.get(key, [])
        return log[seq - 1].hash if 0 < seq <= len(log) else None

    def apply(self, key: LogKey, entries: Sequence[Entry]) -> ApplyResult:
        """``Store.apply``: NEXT stores, HELD is a duplicate, AHEAD stops, CONFLICT is a fork."""
        applied = duplicates = 0
        error: RemoteProtocolError | None = None
        head = self.head(key)
        if key in self.frozen():
            return ApplyResult(head, 0, 0, None)
        for entry in sorted(entries, key=lambda e: e.seq):
            held = self._hash_at(key, entry.seq) if head and entry.seq <= head.seq else None
            try:
                placement = place(head, entry, held)
            except ChainError as exc:
                error = exc
                break
            if placement is Placement.NEXT:
                self.logs.setdefault(key, []).append(entry)
                head = Head(entry.seq, entry.hash)
                applied += 1
            elif placement is Placement.HELD:
                duplicates += 1
            elif placement is Placement.AHEAD:
                break
            else:
                proof = fork_proof(self.logs[key][entry.seq - 1], entry)
                assert proof is not None, "place() said CONFLICT: same seq, different hash"
                self.forks.append(proof)
                error = ForkFound(f"{entry.where}: the author signed two different entries", proof)
                break
        self.duplicates += duplicates
        return ApplyResult(head, applied, duplicates, error)

    def append(self, key: Ed25519PrivateKey, log: str, kind: str, body: Any, now: int) -> Entry:
        """``Store.append``: sign the next entry of our own log; durable at once."""
        log_key = LogKey(public_bytes(key), log)
        head = self.head(log_key)
        entry = sign_entry(
            key,
            log=log,
            seq=head.seq + 1 if head else 1,
            prev=head.hash if head else None,
            timestamp=now,
            kind=kind,
            body=body,
        )
        self.logs.setdefault(log_key, []).append(entry)
        return entry

    def rows(self) -> list[tuple[bytes, str, int, bytes]]:
        return sorted((e.author, e.log, e.seq, e.hash) for log in self.logs.values() for e in log)

    def digest(self) -> str:
        h = hashlib.sha256()
        for author, log, seq, entry_hash in self.rows():
            h.update(author + log.encode() + b"\x00" + seq.to_bytes(8, "big") + entry_hash)
        return h.hexdigest()

    def check_chains(self) -> None:
        """Every log runs from seq 1, each entry pointing at the one before, each seq once."""
        for key, log in self.logs.items():
            prev = None
            for index, entry in enumerate(log):
                assert (entry.author, entry.log) == (key.author, key.log), entry.where
                assert (entry.seq, entry.prev) == (index + 1, prev), f"{entry.where} out of chain"
                prev = entry.hash


@dataclass(eq=False)
class Conn:
    """One end of one connection: a SyncConnection without the socket."""

    node: SimNode
    link: Link
    side: int
    rep: Replicator
    peer_key: bytes | None = None
    closing: bool = False
    gone: bool = False
    # sync.py's tasks: heads for the pusher to announce (merged), requests for the server
    pushed: dict[LogKey, Head] = field(default_factory=dict)
    serves: deque[Serve] = field(default_factory=deque)


@dataclass(frozen=True)
class Rejection:
    node: str
    peer: str
    reason: str
    message: str


class SimNode:
    """``peernode.node.Node`` without threads or sockets; ``restart`` is a crash's aftermath."""

    def __init__(self, index: int, key: Ed25519PrivateKey, members: set[bytes]) -> None:
        self.index = index
        self.key = key
        self.public_key = public_bytes(key)
        self.name = f"n{index}"
        self.members = members
        self.store = MemoryStore()
        self.rejections: list[Rejection] = []
        # Actions the model does not expect between honest nodes (a fork report, own log behind).
        self.odd_actions: list[Action] = []
        self.claims_denied = 0
        self.restart()

    def restart(self) -> None:
        """Everything but the store is lost; the node starts again from what it stored."""
        self.heads: dict[LogKey, Head] = self.store.heads()
        self.connections: dict[bytes, Conn] = {}
        self.claims: dict[LogKey, Conn] = {}
        self.frozen: set[LogKey] = self.store.frozen()
        self.pending: list[Conn] = []  # pumps that node.py spawns as tasks after a release

    def is_peer(self, key: bytes) -> bool:
        return key in self.members and key != self.public_key

    def trusts(self, author: bytes) -> bool:
        return author in self.members

    # --- one fetcher per log, as in node.py ----------------------------------------------------

    def claim(self, conn: Conn, key: LogKey) -> bool:
        if key in self.frozen:
            return False
        owner = self.claims.setdefault(key, conn)
        self.claims_denied += owner is not conn
        return owner is conn

    def release(self, conn: Conn, key: LogKey) -> None:
        if self.claims.get(key) is conn:
            del self.claims[key]
            self.pending.extend(c for c in self.connections.values() if c is not conn)

    def register(self, conn: Conn) -> bool:
        assert conn.peer_key is not None
        existing = self.connections.get(conn.peer_key)
        if existing is not None and existing is not conn:
            return False  # one link per pair of nodes: cannot happen in this model
        self.connections[conn.peer_key] = conn
        return True

    def unregister(self, conn: Conn) -> None:
        if conn.peer_key is not None and self.connections.get(conn.peer_key) is conn:
            del self.connections[conn.peer_key]
        for key in [k for k, owner in self.claims.items() if owner is conn]:
            self.release(conn, key)

    # --- the store, as node.py uses it ---------------------------------------------------------

    def apply(
        self, key: LogKey, entries: Sequence[Entry]
    ) -> tuple[ApplyResult, dict[LogKey, Head]]:
        """Apply, and return what to broadcast (the caller runs it: it re-enters replicators)."""
        result = self.store.apply(key, entries)
        if isinstance(result.error, ForkFound):
            self.frozen.add(key)
        changed = {key: result.head} if result.applied and result.head is not None else {}
        return result, self._fresh(changed)

    def _fresh(self, changed: dict[LogKey, Head]) -> dict[LogKey, Head]:
        fresh = {
            k: h for k, h in changed.items() if k not in self.heads or self.heads[k].seq < h.seq
        }
        self.heads.update(fresh)
        return fresh


@dataclass(eq=False)
class Link:
    a: int
    b: int
    up: bool = True
    ends: list[Conn | None] = field(default_factory=lambda: [None, None])
    # queues[s]: messages on their way to side s, in order
    queues: tuple[deque[bytes], deque[bytes]] = field(default_factory=lambda: (deque(), deque()))
    half_open_since: int | None = None  # one end crashed; the other has not noticed yet

    @property
    def label(self) -> str:
        return f"n{self.a}-n{self.b}"

    @property
    def free(self) -> bool:
        return self.ends == [None, None] and self.half_open_since is None

    def node_side(self, index: int) -> int:
        return 0 if index == self.a else 1


class Mesh:
    """Nodes, links and a clock; every method is one thing that can happen to the network."""

    def __init__(self, keys: Sequence[Ed25519PrivateKey], edges: Iterable[tuple[int, int]]) -> None:
        members = {public_bytes(k) for k in keys}
        self.nodes = [SimNode(i, k, members) for i, k in enumerate(keys)]
        self.links = [Link(a, b) for a, b in sorted(set(edges))]
        self.now = T0
        self._nonces = 0
        self.events = 0  # messages delivered
        self.replicators: list[Replicator] = []  # every session's, for their stats
        self.half_open = 0  # crashes that left a peer's end waiting for its heartbeat

    # --- sessions -------------------------------------------------------------------------------

    def _nonce(self) -> bytes:
        self._nonces += 1
        return hashlib.sha256(b"nonce %d" % self._nonces).digest()

    def _replicator(
        self, node: SimNode, conn_box: list[Conn], expected: bytes | None
    ) -> Replicator:
        def claim(key: LogKey) -> bool:
            return node.claim(conn_box[0], key)

        def release(key: LogKey) -> None:
            node.release(conn_box[0], key)

        rep = Replicator(
            make_session(node.key, self._nonce(), node.name, expected),
            node.store.heads(),  # sync.py reads the heads from the store as the session starts
            accept_peer=node.is_peer,
            trusted=node.trusts,
            now=self.now,
            claim=claim,
            release=release,
            request_timeout_ms=REQUEST_TIMEOUT_MS,
            max_tries=REQUEST_TRIES,
            max_batch_bytes=BATCH_BYTES,
        )
        self.replicators.append(rep)
        return rep

    def connect(self, link: Link) -> bool:
        """Open a new connection on a free link; the node with the smaller index dials."""
        if not link.up or not link.free:
            return False
        link.queues[0].clear()
        link.queues[1].clear()
        for side, (index, other) in enumerate(((link.a, link.b), (link.b, link.a))):
            node = self.nodes[index]
            expected = self.nodes[other].public_key if side == 0 else None
            box: list[Conn] = []
            box.append(Conn(node, link, side, self._replicator(node, box, expected)))
            link.ends[side] = box[0]
        for end in list(link.ends):
            if end is not None and not end.gone:
                self._run(end, end.rep.start())
        return True

    def connect_all(self) -> int:
        return sum(self.connect(link) for link in self.links)

    # --- carrying out actions, as sync.py does ------------------------------------------------

    def _run(self, conn: Conn, actions: list[Action]) -> None:
        """Perform one batch of actions, then end whatever connection closed."""
        self._perform(conn, actions)
        self._reap()

    def _perform(self, conn: Conn, actions: list[Action]) -> None:
        node, rep = conn.node, conn.rep
        # sync.py queues every message of a batch before acting on any: sealed messages carry
        # consecutive nonces, so they must reach the wire in the order they were sealed.
        if not conn.gone and conn.link.ends[1 - conn.side] is not None:
            out = conn.link.queues[1 - conn.side]
            out.extend(action.data for action in actions if isinstance(action, Send))
        for action in actions:
            match action:
                case Send():
                    pass
                case Serve():
                    conn.serves.append(action)  # the server task streams it later
                    if len(conn.serves) > SERVE_QUEUE:
                        node.odd_actions.append(action)  # sync.py would close: a flood
                case Apply(key, entries):
                    result, fresh = node.apply(key, entries)
                    if fresh:
                        self._broadcast(node, fresh)
                    if result.applied or result.error is None:
                        self._perform(conn, rep.applied(key, result.head))
                    if result.error is not None:
                        self._perform(conn, rep.rejected(key, result.error))
                case Reject(error, _key):
                    peer = rep.session.peer
                    node.rejections.append(Rejection(node.name, peer, error.reason, str(error)))
                case Ready(peer_key, _name):
                    conn.peer_key = peer_key
                    if not node.register(conn):
                        self._perform(conn, rep.close("duplicate connection"))
                    else:
                        # node.on_ready: what the store gained since this session read its heads
                        # was broadcast while it was not registered; announce it now.
                        self._push(conn, node.heads)
                case Closed():
                    conn.closing = True
                case _:
                    if type(action).__name__ != "Heard":
                        node.odd_actions.append(action)

    def _broadcast(self, node: SimNode, fresh: dict[LogKey, Head]) -> None:
        """``Node._broadcast``: every registered connection's pusher hears of the new heads."""
        for conn in list(node.connections.values()):
            self._push(conn, fresh)

    @staticmethod
    def _push(conn: Conn, heads: dict[LogKey, Head]) -> None:
        """``SyncConnection.push_heads``: merged until the pusher task runs."""
        if conn.closing or conn.gone:
            return
        for key, head in heads.items():
            known = conn.pushed.get(key)
            if known is None or known.seq < head.seq:
                conn.pushed[key] = head

    def _reap(self) -> None:
        """After each event: end the connections that closed; the other ends read what is left
        and then see the transport close."""
        for link in self.links:
            for conn in list(link.ends):
                if conn is not None and conn.closing:
                    self._end(conn)
            self._settle_ends(link)

    def _live_conns(self) -> list[Conn]:
        return [conn for link in self.links for conn in link.ends if conn is not None]

    def tasks(self) -> int:
        """Tasks with work to do: pushers, servers, and pumps spawned by releases."""
        return sum(bool(c.pushed) + bool(c.serves) for c in self._live_conns()) + sum(
            len(node.pending) for node in self.nodes
        )

    def run_tasks(self) -> None:
        """Let every task run until none has work left: what the event loop does between
        received messages."""
        for _ in range(1000):
            if not self.tasks():
                return
            for conn in self._live_conns():
                if conn.pushed:
                    heads, conn.pushed = conn.pushed, {}
                    if not conn.closing and not conn.gone:
                        self._perform(conn, conn.rep.local_changed(heads))
                while conn.serves and not conn.closing and not conn.gone:
                    serve = conn.serves.popleft()
                    raws = conn.node.store.raws(serve.key, serve.first, serve.last)
                    self._perform(conn, conn.rep.entries_messages(serve.key, raws))
            for node in self.nodes:
                pumps, node.pending = node.pending, []
                for conn in pumps:
                    if node.connections.get(conn.peer_key or b"") is conn and not conn.closing:
                        self._perform(conn, conn.rep.pump())
            self._reap()
        raise AssertionError("tasks kept making work for each other")

    def _end(self, conn: Conn) -> None:
        """This end's connection is over (its loop ended): unregister, free its claims."""
        conn.gone = True
        conn.pushed.clear()
        conn.serves.clear()
        link = conn.link
        if link.ends[conn.side] is conn:
            link.ends[conn.side] = None
            link.queues[conn.side].clear()  # nobody reads them any more
        if link.ends == [None, None]:
            link.half_open_since = None
        conn.node.unregister(conn)

    def _settle_ends(self, link: Link) -> None:
        """An end whose peer has gone reads what is left, then sees the transport close."""
        if link.half_open_since is not None:
            return
        for side in (0, 1):
            conn = link.ends[side]
            if conn is not None and link.ends[1 - side] is None and not link.queues[side]:
                self._end(conn)

    # --- what can happen ------------------------------------------------------------------------

    def append(self, index: int, log: str, kind: str, body: Any) -> Entry:
        """A librarian's change: signed, stored, and (the watcher) told to every connection."""
        node = self.nodes[index]
        entry = node.store.append(node.key, log, kind, body, self.now)
        fresh = node._fresh({LogKey(entry.author, entry.log): Head(entry.seq, entry.hash)})
        self._broadcast(node, fresh)
        self._reap()
        return entry

    def busy(self) -> list[tuple[Link, int]]:
        return [(link, s) for link in self.links for s in (0, 1) if link.queues[s]]

    def deliver(self, link: Link, side: int) -> bool:
        """Deliver the next message on its way to ``side`` of ``link``."""
        conn = link.ends[side]
        if not link.queues[side] or conn is None:
            return False
        data = link.queues[side].popleft()
        self.events += 1
        self._run(conn, conn.rep.receive(data, self.now))
        return True

    def drop(self, link: Link) -> None:
        """The connection dies (a lost message means a dead WebSocket): no Close either way."""
        link.half_open_since = None
        for conn in link.ends:
            if conn is not None:
                self._end(conn)
        link.queues[0].clear()
        link.queues[1].clear()
        self._reap()

    def connected(self) -> list[Link]:
        return [link for link in self.links if link.ends != [None, None]]

    def senders(self) -> list[tuple[Link, int]]:
        """Ends that could send entries now: in session, the peer's end there, a log held."""
        out = []
        for link in self.links:
            for side, conn in enumerate(link.ends):
                if (
                    conn is not None
                    and link.ends[1 - side] is not None
                    and not conn.closing
                    and conn.rep.session.our_state is State.SYNCING
                    and conn.node.store.logs
                ):
                    out.append((link, side))
        return out

    def resend(self, link: Link, side: int, pick: int, first: int, count: int) -> None:
        """The end on ``side`` sends entries nobody asked for (maybe held, maybe ahead): what
        a peer that re-sends, or a range served out of order, looks like to the receiver."""
        assert (link, side) in self.senders()
        conn = link.ends[side]
        assert conn is not None
        keys = sorted(conn.node.store.logs)
        key = keys[pick % len(keys)]
        held = len(conn.node.store.logs[key])
        first = 1 + (first - 1) % held  # some of what we hold, from anywhere in the log
        raws = conn.node.store.raws(key, first, first + count - 1)
        self._run(conn, conn.rep.entries_messages(key, raws))

    def crash(self, index: int) -> None:
        """The node's process dies and starts again: its sessions vanish without a Close, its
        store survives; each peer's end stays half-open until its heartbeat notices."""
        node = self.nodes[index]
        for link in self.links:
            if index not in (link.a, link.b):
                continue
            side = link.node_side(index)
            conn = link.ends[side]
            link.queues[side].clear()
            if conn is not None:
                conn.gone = True
                link.ends[side] = None
                if link.ends[1 - side] is not None:
                    link.half_open_since = self.now
                    self.half_open += 1
                else:
                    link.half_open_since = None
        node.restart()
        self._reap()

    def cut(self, links: Iterable[Link]) -> None:
        for link in links:
            link.up = False
            self.drop(link)

    def heal(self) -> None:
        for link in self.links:
            link.up = True

    def tick(self, ms: int) -> None:
        """Time passes: replicators' timeouts fire, heartbeats notice half-open connections."""
        self.now += ms
        for link in self.links:
            for conn in list(link.ends):
                if conn is not None and not conn.gone:
                    self._run(conn, conn.rep.tick(self.now))
            if link.half_open_since is not None and self.now - link.half_open_since >= HEARTBEAT_MS:
                link.half_open_since = None
                for conn in list(link.ends):
                    if conn is not None:
                        self._end(conn)
                link.queues[0].clear()
                link.queues[1].clear()
        self._reap()

    # --- convergence ----------------------------------------------------------------------------

    def quiet(self) -> bool:
        """Every up link connected and synced, nothing on the wire or pending, nothing asked
        and unanswered, nothing blocked."""
        if self.busy() or self.tasks():
            return False
        for link in self.links:
            for conn in link.ends:
                if link.up and (conn is None or conn.closing or not conn.rep.ready):
                    return False
                if conn is not None and (conn.rep.inflight or conn.rep.blocked):
                    return False
        return True

    def stalled(self) -> list[str]:
        """Sessions that are quiet, yet whose peer holds entries of a log we lack."""
        out = []
        for link in self.links:
            for conn in link.ends:
                if conn is not None and conn.rep.ready and not conn.rep.caught_up:
                    behind = [
                        f"{k.log}#{h.seq}"
                        for k, h in sorted(conn.rep.theirs.items())
                        if h.seq > (conn.rep.local[k].seq if k in conn.rep.local else 0)
                    ]
                    out.append(f"{conn.node.name} on {link.label} lacks {', '.join(behind)}")
        return out

    def settle(
        self, *, heal: bool = True, max_messages: int = 5_000, max_ticks: int = 8
    ) -> str | None:
        """(Heal,) reconnect and deliver until quiet; returns what is wrong, or None.

        Time passes only when nothing is on the wire, in steps past every timeout (request,
        block retry, heartbeat). Not quiet within the bounds is a liveness bug; quiet while a
        session still lacks what its peer announced is one too (nobody will ask again).
        """
        if heal:
            self.heal()
        ticks = 0
        start = self.events
        while self.events - start < max_messages:
            busy = self.busy()
            for link, side in busy:
                if not self.deliver(link, side):
                    link.queues[side].clear()  # nobody reads them: the end is gone
            if self.tasks():
                self.run_tasks()
                continue
            if busy:
                continue
            if self.connect_all():
                continue
            if self.quiet():
                stalled = self.stalled()
                return f"stalled: {'; '.join(stalled)}" if stalled else None
            if ticks >= max_ticks:
                return f"not quiet after {ticks} ticks: {self.describe()}"
            ticks += 1
            self.tick(REQUEST_TIMEOUT_MS + 1)
        return f"not quiet after {max_messages} messages: {self.describe()}"

    def components(self) -> list[list[SimNode]]:
        """Groups of nodes joined by links that are up."""
        group = list(range(len(self.nodes)))

        def root(i: int) -> int:
            while group[i] != i:
                i = group[i]
            return i

        for link in self.links:
            if link.up:
                group[root(link.a)] = root(link.b)
        out: dict[int, list[SimNode]] = {}
        for node in self.nodes:
            out.setdefault(root(node.index), []).append(node)
        return list(out.values())

    def describe(self) -> str:
        parts = []
        for link in self.links:
            ends = []
            for conn in link.ends:
                if conn is None:
                    ends.append("-")
                else:
                    rep = conn.rep
                    ends.append(
                        f"{conn.node.name}(ready={rep.ready} inflight={len(rep.inflight)} "
                        f"blocked={len(rep.blocked)})"
                    )
            parts.append(f"{link.label}[{' '.join(ends)}]")
        return "; ".join(parts)
