"""What to ask for, what to serve, and what to apply: replication as a sans-IO machine.

A ``Replicator`` drives one ``Session``. The node feeds it received bytes and the time, and
carries out the actions it returns: ``Send`` bytes, ``Serve`` a range of stored entries,
``Apply`` verified entries to the store, note a ``Reject``, or handle ``Closed``. The store is the
authority on what it holds: after applying, the node reports the new head with ``applied``.

Policy: on the peer's frontier, request every trusted log where it is ahead of us, at most
``max_inflight`` logs at a time, one request per log. A request starts at our own head, not after
it: the peer's entry there either matches ours or, with ours, proves a fork. A log whose head has
our sequence but another hash is requested at that one sequence, for the same reason. A request
that makes no progress for ``request_timeout_ms`` is sent again from our current head (the link
may have lost entries). A log whose entries fail verification is not asked of this peer again in
this session. Frontiers go out in messages of at most ``FRONTIER_CHUNK`` heads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from .chains import Head, LogKey
from .entries import Entry, decode_entry
from .errors import DecodeError, ProtocolError, RemoteProtocolError, UntrustedAuthor
from .identity import short_id
from .limits import DEFAULT_LIMITS, Limits
from .messages import Ack, Auth, Close, Entries, Frontier, Hello, Request, encode_message
from .session import Session, State

FRONTIER_CHUNK = 10_000  # heads per Frontier message: at most ~1.5 MB, well under the limit


@dataclass(frozen=True)
class Send:
    data: bytes


@dataclass(frozen=True)
class Serve:
    """Send the stored entries ``first..last`` of ``key`` back through ``entries_message``."""

    key: LogKey
    first: int
    last: int


@dataclass(frozen=True)
class Apply:
    """Signature-checked entries of one log, in the order received; the store places them."""

    key: LogKey
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class Reject:
    """The peer sent something invalid for ``key`` (or for the session when key is None)."""

    error: RemoteProtocolError
    key: LogKey | None


@dataclass(frozen=True)
class Ready:
    """Both sides proved their keys; ``peer_key`` is authenticated."""

    peer_key: bytes
    peer_name: str


@dataclass(frozen=True)
class Closed:
    reason: str


Action = Send | Serve | Apply | Reject | Ready | Closed


@dataclass
class _Inflight:
    first: int
    last: int
    deadline: int
    tries: int = 1


@dataclass
class Stats:
    entries_received: int = 0
    requests_sent: int = 0
    requests_resent: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0


@dataclass
class Replicator:
    session: Session
    local: dict[LogKey, Head]
    accept_peer: Callable[[bytes], bool]
    trusted: Callable[[bytes], bool]
    now: int
    limits: Limits = DEFAULT_LIMITS
    handshake_timeout_ms: int = 15_000
    request_timeout_ms: int = 30_000
    max_inflight: int = 8
    max_batch_bytes: int = 2 * 1024 * 1024
    theirs: dict[LogKey, Head] = field(default_factory=dict)
    inflight: dict[LogKey, _Inflight] = field(default_factory=dict)
    blocked: set[LogKey] = field(default_factory=set)
    stats: Stats = field(default_factory=Stats)

    def __post_init__(self) -> None:
        self._handshake_deadline = self.now + self.handshake_timeout_ms
        self._told: dict[LogKey, int] = {}

    @property
    def ready(self) -> bool:
        return self.session.our_state is State.SYNCING and self.session.their_state is State.SYNCING

    @property
    def peer(self) -> str:
        return self.session.peer

    # --- inputs ------------------------------------------------------------------------------

    def start(self) -> list[Action]:
        return [self._send(self.session.hello())]

    def receive(self, data: bytes, now: int) -> list[Action]:
        self.now = now
        self.stats.bytes_received += len(data)
        if self.session.closed:
            return []
        try:
            msg = self.session.receive(data)
        except RemoteProtocolError as exc:
            return [Reject(exc, None), *self._close(f"{type(exc).__name__}: {exc}")]
        match msg:
            case Hello():
                return self._on_hello()
            case Auth():
                frontier = sorted(self.local.items())
                self._told.update((k, h.seq) for k, h in frontier)
                # Always at least one Frontier, even an empty one: it moves us to SYNCING.
                return [
                    Ready(msg_peer_key(self.session), self.session.peer_name),
                    *self._frontier_messages(frontier, at_least_one=True),
                ]
            case Frontier(heads):
                for key, head in heads:
                    self.theirs[key] = head
                return self._pump()
            case Request(key, first, last):
                return [Serve(key, first, last)]
            case Entries(key, raws):
                return self._on_entries(key, raws)
            case Ack(key, seq):
                known = self.theirs.get(key)
                if seq and (known is None or known.seq < seq):
                    local = self.local.get(key)
                    if local is not None and local.seq == seq:
                        self.theirs[key] = local
                return []
            case Close(reason):
                return [Closed(f"{self.peer} closed: {reason}")]
        return []  # pragma: no cover

    def applied(self, key: LogKey, head: Head | None) -> list[Action]:
        """The store now holds ``key`` up to ``head``: acknowledge and ask for more."""
        before = self.local[key].seq if key in self.local else 0
        if head is not None and (key not in self.local or self.local[key].seq < head.seq):
            self.local[key] = head
        out: list[Action] = []
        flight = self.inflight.get(key)
        held = self.local[key].seq if key in self.local else 0
        if flight is not None:
            if held >= flight.last:
                del self.inflight[key]
                theirs = self.theirs.get(key)
                if theirs is not None and theirs.seq == held:
                    # Answered in full: the peer holds our head (a mismatched hash in its
                    # frontier would have come back as a fork), so do not ask again.
                    self.theirs[key] = self.local[key]
            elif held > before:
                # Only progress postpones a re-request: duplicates and out-of-order entries
                # (a lossy link) must not keep a stalled request alive forever.
                flight.deadline = self.now + self.request_timeout_ms
        if head is not None and self.ready:
            out.append(self._send(self.session.send(Ack(key, head.seq))))
        return out + self._pump()

    def rejected(self, key: LogKey, error: RemoteProtocolError) -> list[Action]:
        """The store refused entries of ``key`` from this peer (a broken chain, a fork)."""
        self.blocked.add(key)
        self.inflight.pop(key, None)
        return [Reject(error, key), *self._pump()]

    def local_changed(self, heads: Mapping[LogKey, Head]) -> list[Action]:
        """Our store advanced these logs (own writes, or entries from other peers)."""
        update = []
        for key, head in heads.items():
            if key not in self.local or self.local[key].seq < head.seq:
                self.local[key] = head
            theirs = self.theirs[key].seq if key in self.theirs else 0
            if head.seq > max(theirs, self._told.get(key, 0)):
                update.append((key, head))
                self._told[key] = head.seq
        out: list[Action] = []
        if update and self.ready:
            out.extend(self._frontier_messages(sorted(update), at_least_one=False))
        for key in list(self.inflight):
            if key in self.local and self.local[key].seq >= self.inflight[key].last:
                del self.inflight[key]
        return out + self._pump()

    def entries_messages(self, key: LogKey, raws: Iterable[bytes]) -> list[Action]:
        """Wrap stored entries into Entries messages within the message size bound."""
        if self.session.closed:
            return []  # serving is asynchronous: the session may have ended meanwhile
        out: list[Action] = []
        batch: list[bytes] = []
        size = 0
        for raw in raws:
            if batch and (
                size + len(raw) > self.max_batch_bytes
                or len(batch) >= self.limits.max_entries_per_message
            ):
                out.append(self._send(self.session.send(Entries(key, tuple(batch)))))
                batch, size = [], 0
            batch.append(raw)
            size += len(raw)
        if batch:
            out.append(self._send(self.session.send(Entries(key, tuple(batch)))))
        return out

    def tick(self, now: int) -> list[Action]:
        self.now = now
        if self.session.closed:
            return []
        if not self.ready and now >= self._handshake_deadline:
            return self._close("handshake timed out")
        out: list[Action] = []
        for key, flight in list(self.inflight.items()):
            if now >= flight.deadline:
                flight.first, flight.tries = self._first(key), flight.tries + 1
                flight.deadline = now + self.request_timeout_ms
                self.stats.requests_resent += 1
                out.append(self._send(self.session.send(Request(key, flight.first, flight.last))))
        return out

    def close(self, reason: str) -> list[Action]:
        return self._close(reason)

    # --- internals ---------------------------------------------------------------------------

    def _on_hello(self) -> list[Action]:
        peer_key = msg_peer_key(self.session)
        if not self.accept_peer(peer_key):
            return self._close(f"{short_id(peer_key)} is not a peer of this node")
        return [self._send(self.session.auth())]

    def _on_entries(self, key: LogKey, raws: tuple[bytes, ...]) -> list[Action]:
        if key in self.blocked:
            return []
        if not self.trusted(key.author):
            self.blocked.add(key)
            error = UntrustedAuthor(
                f"{self.peer} sent entries of {short_id(key.author)}, not followed here"
            )
            return [Reject(error, key)]
        good: list[Entry] = []
        out: list[Action] = []
        for index, raw in enumerate(raws):
            try:
                entry = decode_entry(raw, now_ms=self.now, limits=self.limits)
                if (entry.author, entry.log) != (key.author, key.log):
                    raise DecodeError(f"{entry.where} arrived in a message for log {key.log}")
            except RemoteProtocolError as exc:
                self.blocked.add(key)
                self.inflight.pop(key, None)
                # Name the log and position: an undecodable entry cannot name itself.
                where = f"{short_id(key.author)}/{key.log} entry {index + 1} of {len(raws)}"
                named = type(exc)(f"{self.peer} sent {where}: {exc}", reason=exc.reason)
                out.append(Reject(named, key))
                break
            good.append(entry)
        self.stats.entries_received += len(good)
        if good:
            out.insert(0, Apply(key, tuple(good)))
        return out

    def _pump(self) -> list[Action]:
        """Request logs where the peer is ahead, keeping at most ``max_inflight`` requests."""
        if not self.ready:
            return []
        out: list[Action] = []
        for key, head in self.theirs.items():
            if len(self.inflight) >= self.max_inflight:
                break
            if key in self.inflight or key in self.blocked or not self.trusted(key.author):
                continue
            local = self.local.get(key)
            held = local.seq if local is not None else 0
            if head.seq > held or (local is not None and head.seq == held and head != local):
                first, last = self._first(key), head.seq
                self.inflight[key] = _Inflight(first, last, self.now + self.request_timeout_ms)
                self.stats.requests_sent += 1
                out.append(self._send(self.session.send(Request(key, first, last))))
        return out

    def _first(self, key: LogKey) -> int:
        """Where a request starts: at our head (overlap by one entry), or at 1."""
        local = self.local.get(key)
        return local.seq if local is not None else 1

    def _frontier_messages(
        self, heads: list[tuple[LogKey, Head]], *, at_least_one: bool
    ) -> list[Action]:
        chunks = [heads[i : i + FRONTIER_CHUNK] for i in range(0, len(heads), FRONTIER_CHUNK)]
        if not chunks and at_least_one:
            chunks = [[]]
        return [self._send(self.session.send(Frontier(tuple(chunk)))) for chunk in chunks]

    def _send(self, data: bytes) -> Send:
        self.stats.bytes_sent += len(data)
        return Send(data)

    def _close(self, reason: str) -> list[Action]:
        out: list[Action] = []
        try:
            data = self.session.close(reason)
        except ProtocolError:  # pragma: no cover - close is legal from every open state
            data = None
        if data is not None:
            out.append(self._send(data))
        out.append(Closed(reason))
        return out


def msg_peer_key(session: Session) -> bytes:
    assert session.peer_key is not None, "peer key is known once its hello was accepted"
    return session.peer_key


def encode_close(reason: str) -> bytes:
    """A Close message for a connection refused before any session existed."""
    return encode_message(Close(reason))
