"""The running node: identity, the store on its own thread, live sync connections, dialers.

All SQLite work runs on one worker thread, so the event loop never waits on the disk. The
watcher notices what other processes wrote (the CLI importing a catalogue, joining a peer) and
tells every connected peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import random
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from protocol import (
    DEFAULT_LIMITS,
    Entry,
    ForkProof,
    Head,
    LogKey,
    RemoteProtocolError,
    short_id,
)
from protocol.errors import Blocked, NotAdmitted
from protocol.kinds import MEMBERS_LOG
from protocol.membership import REMOVED, REVOKED, Membership

from . import members
from .db import StorageFull, transaction
from .home import DB_FILE, Home, publish_profile
from .liveness import FORK_NOTICES, Liveness
from .mesh import AddressBook, pick_learned
from .peers import peer_keys
from .recordrows import CatalogRows, build_rows
from .status import node_status
from .store import ApplyResult, ForkDetected, OwnHeadUnconfirmed, Store, now_ms
from .sync import SyncConnection

log = logging.getLogger("peernode.node")
T = TypeVar("T")

WATCH_SECONDS = 0.5  # at least this often the watcher asks SQLite whether others wrote
# In between, it looks at the WAL file's size and time every GLANCE_SECONDS: a stat on the event
# loop costs microseconds, so a CLI write reaches the peers within ~0.1 s, not 0.5 s.
GLANCE_SECONDS = 0.1
# How long a starting daemon waits for a peer to confirm its own head before it signs anyway.
OWN_HEAD_WAIT_SECONDS = 60.0
BACKOFF_MIN, BACKOFF_MAX = 1.0, 60.0
# Peer exchange: how often the dial set is reviewed (profiles arrive by sync, which the watcher
# does not see), how many failed attempts cost a learned peer its slot, and for how long.
REVIEW_SECONDS = 5.0
CACHE_SECONDS = 5.0  # without records arriving: the sync is over, the wide page cache goes
# Records in one apply that make it a bulk load (Store.start_bulk_load): a full message or more.
# One new entry passing through a mesh is written as it always was.
BULK_RECORDS = 2000
LEARNED_TRIES = 2
UNREACHABLE_SECONDS = 120.0


class Node:
    """The running node: identity, store (on its own thread) and live connections."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self.config = home.config
        self.key = home.key
        self.public_key = home.public_key
        self.limits = DEFAULT_LIMITS
        self._executor = _named_pool("peernode-db")
        # Builds received records' rows while the database thread writes (peernode/recordrows.py).
        self._builder = _named_pool("peernode-rows")
        self._streaming_at = 0.0  # when a sync last brought records (monotonic); 0: not since
        self.store: Store = self._executor.submit(home.open_store).result()
        # Whom we trust: members (the fold of member statements), the peers the admin pinned,
        # minus the local block list. ``reload_trust`` re-reads all three.
        self.peers: set[bytes] = self._executor.submit(peer_keys, self.store.conn).result()
        self.membership: Membership = self._executor.submit(members.save, self.store).result()
        self.blocked: set[bytes] = self._executor.submit(members.blocked, self.store.conn).result()
        self.connections: dict[bytes, SyncConnection] = {}
        self.all_connections: set[SyncConnection] = set()
        self.heads: dict[LogKey, Head] = self._executor.submit(self.store.heads).result()
        self._dialers: dict[bytes, asyncio.Task[None]] = {}
        self._learned: set[bytes] = set()  # dialers filling max_peers from peer exchange
        self._unreachable: dict[bytes, float] = {}  # learned peer -> monotonic time to retry
        self._unlinked: dict[bytes, asyncio.Event] = {}  # set when that peer's link ends
        self._addresses = AddressBook()
        self._rng = random.Random()
        # Sync traffic of finished connections; live ones add their own (``traffic``).
        self._bytes_sent = self._bytes_received = 0
        self._data_version = -1
        # Which connection is fetching each log: one at a time, so no entry arrives twice.
        self.claims: dict[LogKey, SyncConnection] = {}
        self.frozen: set[LogKey] = self._executor.submit(self.store.frozen_logs).result()
        self._tasks: set[asyncio.Task[None]] = set()
        self.liveness = Liveness(self)
        # Sign nothing until a peer has shown us our own head (see own_head_confirmed).
        self.own_head_pending = self._executor.submit(self._begin_own_head_check).result()

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        self._executor.submit(self.store.end_own_head_check).result()
        self._executor.submit(self.store.conn.close).result()
        self._executor.shutdown()
        self._builder.shutdown()

    # --- trust ---------------------------------------------------------------------------------

    @property
    def pinned(self) -> set[bytes]:
        """The admin's own peers (the ``peers`` table, from invite, join and `peer add`): always
        dialled and kept; a peer learned by gossip never takes their place (eclipse defence)."""
        return self.peers

    def trusts(self, author: bytes) -> bool:
        """Whose logs we replicate: our own; current members and pinned peers, unless the
        network removed or revoked them or this node blocked them."""
        return members.trusted(
            author,
            own=self.public_key,
            membership=self.membership,
            pinned=self.peers,
            blocked=self.blocked,
        )

    def accept_peer(self, key: bytes) -> bool | RemoteProtocolError:
        """Who may open a sync session: whom we trust, never a merely discovered node. A refusal
        says why, as a typed error the session logs with the key's id."""
        who = short_id(key)
        if key in self.blocked:
            return Blocked(f"{who} is on this node's block list (`peernode block list`)")
        status = self.membership.status(key)
        if status in (REMOVED, REVOKED):
            member = self.membership.members[key]
            why = f": {member.reason}" if member.reason else ""
            return NotAdmitted(f"{who} was {status} from the network{why}")
        if key != self.public_key and self.trusts(key):
            return True
        return NotAdmitted(f"{who} is not a member of this network: it was never admitted")

    def is_peer(self, key: bytes) -> bool:
        return self.accept_peer(key) is True

    async def signed_here(self) -> None:
        """The daemon itself signed statements (a join's admit): the watcher sees only other
        processes' writes, so re-read whom we trust and announce our heads here."""
        await self.reload_trust()
        await self._broadcast(await self.call(self.store.heads))

    async def reload_trust(self) -> None:
        """Re-read members, pinned peers and blocks; end sessions with keys no longer accepted
        and let the others ask for logs that just became trusted."""

        def read() -> tuple[set[bytes], Membership, set[bytes]]:
            conn = self.store.conn
            return peer_keys(conn), members.load(self.store), members.blocked(conn)

        peers, membership, blocked = await self.call(read)
        if membership != self.membership:
            await self.call(members.save, self.store)  # the members table, for queries
        changed = (peers, membership, blocked) != (self.peers, self.membership, self.blocked)
        self.peers, self.membership, self.blocked = peers, membership, blocked
        if not changed:
            return
        for conn in list(self.connections.values()):
            assert conn.peer_key is not None
            verdict = self.accept_peer(conn.peer_key)
            if verdict is not True:
                reason = str(verdict) if verdict else "no longer trusted"
                log.warning("ending the session with %s: %s", conn.label, reason)
                conn.close_reason = reason
                await conn.close(reason)
            else:
                await conn.pump()  # logs of new members can be fetched now

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
        if conn in self.all_connections and conn.rep is not None:
            self._bytes_sent += conn.rep.stats.bytes_sent
            self._bytes_received += conn.rep.stats.bytes_received
        self.all_connections.discard(conn)
        if conn.peer_key is not None and self.connections.get(conn.peer_key) is conn:
            del self.connections[conn.peer_key]
            unlinked = self._unlinked.pop(conn.peer_key, None)
            if unlinked is not None:
                unlinked.set()
            log.info("disconnected from %s: %s", conn.label, conn.close_reason or "closed")
        # A connection cut mid-request never sent or received Close, so its replicator never
        # released the logs it was fetching: free them here, or no session could fetch them.
        for key in [k for k, owner in self.claims.items() if owner is conn]:
            self.release(conn, key)

    def traffic(self) -> tuple[int, int]:
        """Sync message bytes (sent, received) since the daemon started, all connections."""
        sent, received = self._bytes_sent, self._bytes_received
        for conn in self.all_connections:
            if conn.rep is not None:
                sent += conn.rep.stats.bytes_sent
                received += conn.rep.stats.bytes_received
        return sent, received

    async def status(self) -> dict[str, Any]:
        """What `status --json`, /api/status, /metrics and the web page report."""
        connected = set(self.connections)
        status = await self.call(
            lambda: node_status(self.home, self.store, running=True, connected=connected)
        )
        status["sync_bytes_sent"], status["sync_bytes_received"] = self.traffic()
        self.liveness.overlay(status)
        return status

    # --- store operations used by connections --------------------------------------------------

    async def build_rows(self, entries: Sequence[Entry]) -> dict[bytes, CatalogRows]:
        """The rows of the catalogue entries among ``entries``, built off the database thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._builder, build_rows, entries)

    async def apply_many(
        self,
        groups: Sequence[tuple[LogKey, Sequence[Entry]]],
        built: Mapping[bytes, CatalogRows] | None = None,
    ) -> list[ApplyResult]:
        """Store groups of entries from a peer in one transaction, then tell the other peers.

        ``built``: rows ``build_rows`` made for some of them."""
        records = sum(len(rows.puts) for rows in built.values()) if built else 0
        bulk = records >= BULK_RECORDS  # a sync is streaming records in
        if bulk:
            self._streaming_at = time.monotonic()
        results = await self.call(self.store.apply_many, groups, built, bulk)
        advanced: dict[LogKey, Head] = {}
        members_changed = False
        for (key, _), result in zip(groups, results, strict=True):
            if isinstance(result.error, ForkDetected):
                self.frozen.add(key)
                log.error("FORK: %s", result.error)
                self.spread_fork(result.error.proof, None)
            if key.log == MEMBERS_LOG and (result.applied or result.error is not None):
                members_changed = True
            if result.applied and result.head is not None:
                advanced[key] = result.head
        if members_changed:
            await self.reload_trust()  # a statement (or a fork) may change whom we trust
        if advanced:
            await self._broadcast(advanced)
        return results

    async def note_rejection(self, peer: bytes | None, error: RemoteProtocolError) -> None:
        who = short_id(peer) if peer else "unknown peer"
        # Stored before it is logged: whoever reads the log finds it in `status` too.
        await self.call(self.store.record_rejection, peer, error.reason, str(error))
        log.warning("rejected from %s: %s: %s", who, error.reason, error)

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

    # --- liveness, forks and our own head --------------------------------------------------------

    async def on_ready(self, conn: SyncConnection) -> None:
        """A session is up: tell the peer who is alive, and every fork we know of."""
        # Heads that advanced after this session read the store were broadcast while it was not
        # registered yet: announce them now (tests/test_mesh_model.py found that gap).
        conn.push_heads(dict(self.heads))
        beats = [b for k, b in self.liveness.book.beats.items() if k != conn.peer_key]
        conn.push_heartbeats([self.liveness.own_beat(), *beats])
        for proof in await self.call(self.store.forks):
            conn.push_fork(proof)

    async def fork_reported(
        self, proof: ForkProof, key: LogKey, seq: int, via: SyncConnection
    ) -> None:
        """A peer passed on a verified fork proof: store it, freeze the log, pass it on once."""

        def write() -> bool:
            with transaction(self.store.conn) as conn:
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO forks (author, log, seq, proof, found_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (key.author, key.log, seq, proof.to_bytes(), now_ms()),
                )
                return cursor.rowcount == 1

        if not await self.call(write):
            return  # known already: the gossip ends here
        self.frozen.add(key)
        self.liveness.counts[FORK_NOTICES] += 1
        where = f"{short_id(key.author)}/{key.log}#{seq}"
        log.error(
            "FORK: %s: the author %s signed two different entries (proof passed on by %s); "
            "the log stays frozen at the fork",
            where,
            short_id(key.author),
            via.label,
        )
        if key.author == self.public_key:
            log.error(
                "FORK of this node's OWN log %s: another copy of this node (its key or an old "
                "copy of its database) signed entries. Stop every other copy.",
                key.log,
            )
        self.spread_fork(proof, via)

    def spread_fork(self, proof: ForkProof, via: SyncConnection | None) -> None:
        for conn in list(self.connections.values()):
            if conn is not via:
                conn.push_fork(proof)

    def _begin_own_head_check(self) -> bool:
        """At start, with peers: sign nothing until one shows us our own head. A restored
        node waits the same way, without the time limit."""
        if self.store.restored_note() is not None:
            return True
        if not self.peers:
            return False
        self.store.begin_own_head_check(now_ms() + int(OWN_HEAD_WAIT_SECONDS * 1000))
        return True

    async def own_log_behind(
        self, conn: SyncConnection, key: LogKey, ours: int, theirs: Head
    ) -> None:
        """A peer holds more of our own log than we do: this database was rolled back."""
        held = await self.call(self.store.head, key)
        if held is not None and held.seq >= theirs.seq:
            # Our store holds it: only the session had not heard (a write on this very
            # connection, which the watcher does not see). Tell every session; nothing is wrong.
            await self._broadcast({key: held})
            return
        note = (
            f"rolled back: {conn.label} holds this node's {key.log} log up to #{theirs.seq}, "
            f"this database only up to #{ours}"
        )
        log.error("%s. Signing is paused until they are fetched back.", note)
        self.own_head_pending = True
        if await self.call(self.store.restored_note) is None:
            await self.call(self.store.mark_restored, note)

    async def own_head_deadline(self) -> None:
        """No peer answered in time: the start-up mark has expired by itself; say so."""
        await asyncio.sleep(OWN_HEAD_WAIT_SECONDS)
        if self.own_head_pending and await self.call(self.store.restored_note) is None:
            self.own_head_pending = False
            log.warning(
                "no peer showed this node its own head within %.0f s: it signs again, trusting "
                "that its database is its latest",
                OWN_HEAD_WAIT_SECONDS,
            )
            self._spawn(self.publish_address())

    async def own_head_confirmed(self, peer: bytes) -> None:
        """A peer's frontier shows none of our logs ahead of ours: signing is safe again."""
        if not self.own_head_pending:
            return
        self.own_head_pending = False

        def write() -> bool:
            self.store.end_own_head_check()
            return self.store.clear_restored()

        if await self.call(write):
            log.info("%s sent back this node's own entries: it signs again", short_id(peer))
        else:
            log.info("%s confirmed this node's own head: it may sign", short_id(peer))
        self._spawn(self.publish_address())  # held back while the check was on

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
            conn.push_heads(fresh)  # never waits for a slow peer: each has its own pusher

    # --- background tasks ----------------------------------------------------------------------

    async def watch(self) -> None:
        """Notice what other processes wrote (imports, joins) and act on it."""
        await self.publish_address()
        reviewed = time.monotonic()
        wal = self.home.path / f"{DB_FILE}-wal"
        glanced: tuple[int, int] | None = None
        asked = 0.0
        while True:
            stamp = _stamp(wal)
            if stamp == glanced and time.monotonic() - asked < WATCH_SECONDS:
                await asyncio.sleep(GLANCE_SECONDS)
                continue
            glanced, asked = stamp, time.monotonic()
            version = await self.call(
                lambda: int(self.store.conn.execute("PRAGMA data_version").fetchone()[0])
            )
            if version != self._data_version:
                self._data_version = version
                await self.reload_trust()
                await self._broadcast(await self.call(self.store.heads))
                for conn in list(self.connections.values()):
                    await conn.pump()  # whom we trust may have changed
                await self.start_dialers()
                reviewed = time.monotonic()
            elif time.monotonic() - reviewed >= REVIEW_SECONDS:
                await self.start_dialers()  # profiles with addresses arrive by sync
                reviewed = time.monotonic()
            if self._streaming_at and time.monotonic() - self._streaming_at > CACHE_SECONDS:
                self._streaming_at = 0.0
                await self.call(self.store.end_bulk_load)
            await asyncio.sleep(GLANCE_SECONDS)

    async def publish_address(self) -> None:
        """Sign a new profile if the advertised address (or a setting in it) changed."""
        try:
            if await self.call(publish_profile, self.home):
                log.info(
                    "published this library's profile, address %s", self.home.advertised_address
                )
        except (OwnHeadUnconfirmed, StorageFull) as exc:
            log.warning("profile not published: %s", exc)

    async def start_dialers(self, first_delay: float = 0.0) -> None:
        """Dial every pinned peer, and fill the rest of ``max_peers`` with learned members.

        Pinned peers (the admin's: rows of ``peers`` with an address) are never evicted; learned
        ones come from members' signed profiles (peer exchange, peernode/mesh.py).
        """

        def read() -> tuple[list[tuple[bytes, str]], dict[bytes, tuple[str, ...]]]:
            pinned = self.store.conn.execute(
                "SELECT key, address FROM peers WHERE address IS NOT NULL"
            ).fetchall()
            return pinned, self._addresses.refresh(self.store.conn)

        pinned, addresses = await self.call(read)
        for key, address in pinned:
            if not self.is_peer(key):
                continue  # removed, revoked or blocked: pinned or not, we do not dial it
            task = self._dialers.get(key)
            if key in self._learned and task is not None and not task.done():
                task.cancel()  # the admin pinned it since: dial the admin's address instead
            if task is None or task.done() or key in self._learned:
                self._learned.discard(key)
                self._start_dialer(key, address, first_delay, pinned=True)
        now = time.monotonic()
        self._unreachable = {k: t for k, t in self._unreachable.items() if t > now}
        live = {k for k in self._learned if not self._dialers[k].done()}
        self._learned = live
        pinned_keys = {key for key, _ in pinned}
        eligible = [
            key
            for key in addresses
            if key != self.public_key
            and self.trusts(key)  # never dial a key we do not trust
            and key not in pinned_keys
            and key not in live
            and key not in self.connections  # already linked (it dialled us)
            and key not in self._unreachable
        ]
        slots = self.config.max_peers - len(pinned_keys) - len(live)
        for key, address in pick_learned(addresses, eligible=eligible, slots=slots, rng=self._rng):
            self._learned.add(key)
            self._start_dialer(key, address, first_delay, pinned=False)

    def _start_dialer(self, key: bytes, address: str, first_delay: float, *, pinned: bool) -> None:
        self._dialers[key] = asyncio.get_running_loop().create_task(
            self.dial(key, address, first_delay, pinned=pinned)
        )

    async def dial(
        self, key: bytes, address: str, first_delay: float = 0.0, *, pinned: bool = True
    ) -> None:
        """Keep a connection to one peer, retrying with exponential backoff and jitter.

        A learned (not pinned) peer that cannot be reached ``LEARNED_TRIES`` times in a row
        gives up its slot for ``UNREACHABLE_SECONDS``; the next review picks another member.
        """
        await asyncio.sleep(first_delay)
        backoff = BACKOFF_MIN
        failures = 0
        url = f"http://{address}/sync"
        async with aiohttp.ClientSession() as http:
            while (key in self.peers if pinned else self.trusts(key)) and self.is_peer(key):
                if key in self.connections:
                    await self._until_unlinked(key)  # it dialled us, or we are linked
                    continue
                reason = ""
                try:
                    async with http.ws_connect(
                        url,
                        compress=0,  # sessions deflate before sealing (protocol/channel.py)
                        max_msg_size=self.limits.max_message_bytes + 1024,
                        heartbeat=self.liveness.interval,  # WebSocket pings
                        # A backstop: SyncConnection closes an idle session first.
                        timeout=aiohttp.ClientWSTimeout(
                            ws_receive=self.liveness.idle_seconds + 10, ws_close=10
                        ),
                    ) as ws:
                        conn = SyncConnection(self, ws, dialed=True, expected_peer=key)
                        reason = await conn.run()
                        if conn.peer_key is not None:
                            backoff = BACKOFF_MIN
                            failures = -1
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    reason = f"cannot reach {address}: {type(exc).__name__}: {exc}"
                except Exception as exc:  # a bug in one session must not end this dialer for good
                    log.exception("the connection to %s failed", short_id(key))
                    reason = f"internal error: {type(exc).__name__}: {exc}"
                log.debug("connection to %s ended: %s", short_id(key), reason)
                await self._note_error(key, reason)
                failures += 1
                if not pinned and failures >= LEARNED_TRIES:
                    log.info(
                        "%s at %s is unreachable: dialling another member", short_id(key), address
                    )
                    self._unreachable[key] = time.monotonic() + UNREACHABLE_SECONDS
                    self._learned.discard(key)
                    self._spawn(self.start_dialers())
                    return
                await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, BACKOFF_MAX)

    async def _until_unlinked(self, key: bytes) -> None:
        """Until the link to ``key`` ends, or a review is due (whom we trust may change)."""
        unlinked = self._unlinked.setdefault(key, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(unlinked.wait(), REVIEW_SECONDS)

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


def _stamp(path: Path) -> tuple[int, int] | None:
    """The WAL file's modification time and size: any commit, ours or another's, changes it."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


def _dialer(node: Node, conn: SyncConnection) -> bytes:
    assert conn.peer_key is not None
    return node.public_key if conn.dialed else conn.peer_key


NODE = web.AppKey("node", Node)


def _named_pool(name: str) -> ThreadPoolExecutor:
    """One worker thread, named for `top -H` and /proc too (Python names only its own view):
    a sysadmin asking which part of the daemon uses the CPU sees it by name."""
    return ThreadPoolExecutor(
        1, thread_name_prefix=name, initializer=_name_os_thread, initargs=(name,)
    )


def _name_os_thread(name: str) -> None:
    with contextlib.suppress(OSError, AttributeError):  # Linux only; elsewhere unnamed
        ctypes.CDLL(None, use_errno=True).prctl(15, name.encode()[:15])  # 15: PR_SET_NAME
