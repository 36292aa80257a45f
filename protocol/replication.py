"""What to ask for, what to serve, and what to apply: replication as a sans-IO machine.

A ``Replicator`` drives one ``Session``. The node feeds it received bytes and the time, and
carries out the actions it returns: ``Send`` bytes, ``Serve`` a range of stored entries,
``Apply`` verified entries to the store, note a ``Reject``, or handle ``Closed``. The store is the
authority on what it holds: after applying, the node reports the new head with ``applied``.

Policy: on the peer's frontier, request every trusted log where it is ahead of us, at most
``max_inflight`` logs at a time, one request per log. A request that makes no progress for
``request_timeout_ms`` is sent again from our current head (the link may have lost entries).
A log whose entries fail verification is not asked of this peer again in this session.
Frontiers go out in messages of at most ``FRONTIER_CHUNK`` heads.

Forks: when the peer's next entry does not chain onto our head (the store reports a ChainError),
or the peer announces our head's sequence with another hash, we *probe*: request the peer's entry
at our head. If it differs from ours the store finds the CONFLICT and proves the fork; if it is
ours, the peer's chain is what is broken, and the original error stands.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from .chains import ForkProof, Head, LogKey, verify_fork_proof
from .entries import Entry, decode_entry
from .errors import (
    AuthenticationError,
    ChainError,
    DecodeError,
    InvalidForkProof,
    ProtocolError,
    RemoteProtocolError,
    UntrustedAuthor,
)
from .identity import short_id
from .limits import DEFAULT_LIMITS, Limits
from .liveness import verify_heartbeat
from .messages import (
    Ack,
    Auth,
    Close,
    Entries,
    ForkNotice,
    Frontier,
    Heartbeat,
    Hello,
    Request,
)
from .session import Session, State

# Which logs to fetch first when several are behind: small, urgent ones (a library's profile;
# loans later) before bulk catalogue batches, so a slow link delivers what matters first.
LOG_PRIORITY = {"members": 0, "profile": 0, "catalog": 9}
DEFAULT_LOG_PRIORITY = 5


def log_priority(log: str) -> int:
    return LOG_PRIORITY.get(log, DEFAULT_LOG_PRIORITY)


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


@dataclass(frozen=True)
class Heard:
    """A verified heartbeat of a member we follow (it may come from the member or a relay)."""

    beat: Heartbeat


@dataclass(frozen=True)
class ForkReported:
    """The peer passed on a verified proof that ``key``'s author signed two entries at ``seq``."""

    proof: ForkProof
    key: LogKey
    seq: int


@dataclass(frozen=True)
class OwnLogBehind:
    """The peer holds more of OUR OWN log than we do: this replica was rolled back (a restored
    or copied database). Sign nothing until the entries are fetched back, or we fork ourselves."""

    key: LogKey
    ours: int
    theirs: Head


Action = Send | Serve | Apply | Reject | Ready | Closed | Heard | ForkReported | OwnLogBehind


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
    # True to accept the peer's key; False, or an error saying why (e.g. Blocked), to refuse it.
    accept_peer: Callable[[bytes], bool | RemoteProtocolError]
    trusted: Callable[[bytes], bool]
    now: int
    limits: Limits = DEFAULT_LIMITS
    handshake_timeout_ms: int = 15_000
    request_timeout_ms: int = 30_000
    # Requests without progress before the session is given up (None: ask again for ever, for
    # transports that lose messages; over a reliable one, silence means a stuck peer).
    max_tries: int | None = None
    max_inflight: int = 8
    max_batch_bytes: int = 2 * 1024 * 1024
    block_retry_ms: int = 60_000
    # The node grants each log to one session at a time (see the module docstring).
    claim: Callable[[LogKey], bool] = field(default=lambda key: True)
    release: Callable[[LogKey], None] = field(default=lambda key: None)
    # True when the node already holds a heartbeat of this member at least this new: relays
    # bring each one over several links, and only the first is worth a signature check.
    heartbeat_known: Callable[[bytes, int], bool] = field(default=lambda key, ts: False)
    # Logs held from a checkpoint on (a snapshot start): ours, announced in Frontiers, and theirs.
    local_bases: dict[LogKey, int] = field(default_factory=dict)
    their_bases: dict[LogKey, int] = field(default_factory=dict)
    theirs: dict[LogKey, Head] = field(default_factory=dict)
    inflight: dict[LogKey, _Inflight] = field(default_factory=dict)
    # Logs this peer sent something invalid for, and when to try them again: a faulty link
    # heals, and a hostile peer costs one bad batch per block_retry_ms.
    blocked: dict[LogKey, int] = field(default_factory=dict)
    probes: dict[LogKey, RemoteProtocolError] = field(default_factory=dict)
    stats: Stats = field(default_factory=Stats)

    def __post_init__(self) -> None:
        self._handshake_deadline = self.now + self.handshake_timeout_ms
        self._told: dict[LogKey, int] = {}
        self._own_behind_told: set[LogKey] = set()
        self.frontier_received = False

    @property
    def own_head_confirmed(self) -> bool:
        """The peer's frontier arrived and shows none of our own logs ahead of our store."""
        own = self.session.our_key
        return (
            self.ready
            and self.frontier_received
            and not any(
                head.seq > (self.local[key].seq if key in self.local else 0)
                for key, head in self.theirs.items()
                if key.author == own
            )
        )

    @property
    def ready(self) -> bool:
        return self.session.our_state is State.SYNCING and self.session.their_state is State.SYNCING

    @property
    def peer(self) -> str:
        return self.session.peer

    @property
    def caught_up(self) -> bool:
        """Ready, nothing in flight, and no log we follow where the peer is ahead of us."""
        return (
            self.ready
            and not self.inflight
            and not any(
                head.seq > (self.local[key].seq if key in self.local else 0)
                for key, head in self.theirs.items()
                if key not in self.blocked
                and self.trusted(key.author)
                and not self._beyond_base(key, self.local[key].seq if key in self.local else 0)
            )
        )

    def _beyond_base(self, key: LogKey, held: int) -> bool:
        """The peer holds ``key`` only from a base past our next entry: it cannot serve us."""
        return held + 1 < self.their_bases.get(key, 1)

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
            return [Reject(exc, None), *self._close(f"{exc.reason}: {exc}")]
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
            case Frontier(heads, bases):
                self.frontier_received = True
                self.their_bases.update(bases)
                out: list[Action] = []
                for key, head in heads:
                    self.theirs[key] = head
                    if key.author == self.session.our_key:
                        out.extend(self._check_own(key, head))
                return out + self._pump()
            case Heartbeat():
                return self._on_heartbeat(msg)
            case ForkNotice(proof):
                return self._on_fork_notice(proof)
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
        if flight is not None and key not in self.probes:  # a probe ends in _on_entries
            if held >= flight.last:
                self._done(key)
            elif held > before:
                # Only progress postpones a re-request: duplicates and out-of-order entries
                # (a lossy link) must not keep a stalled request alive forever.
                flight.deadline = self.now + self.request_timeout_ms
        if head is not None and self.ready:
            out.append(self._send(self.session.send(Ack(key, head.seq))))
        return out + self._pump()

    def rejected(self, key: LogKey, error: RemoteProtocolError) -> list[Action]:
        """The store refused entries of ``key`` from this peer (a broken chain, a fork)."""
        if (
            isinstance(error, ChainError)
            and error.reason == "chain"
            and key in self.local
            and key not in self.probes
            and not self._blocked(key)
            and self.ready
        ):
            # An entry that does not chain onto our head is how a fork at our head looks from
            # here: the peer's entry at our head tells which it is.
            return self._probe(key, error)
        return self._block(key, error)

    def local_changed(self, heads: Mapping[LogKey, Head]) -> list[Action]:
        """Our store advanced these logs (own writes, or entries from other peers)."""
        # Announce as soon as our first Frontier is out, not only once theirs is in: a change
        # in between was marked told yet never sent. Before our first Frontier, updating
        # ``local`` is enough: that Frontier carries it.
        announce = self.session.our_state is State.SYNCING and not self.session.closed
        update = []
        for key, head in heads.items():
            if key not in self.local or self.local[key].seq < head.seq:
                self.local[key] = head
            theirs = self.theirs[key].seq if key in self.theirs else 0
            if announce and head.seq > max(theirs, self._told.get(key, 0)):
                update.append((key, head))
                self._told[key] = head.seq
        out: list[Action] = []
        if update:
            out.extend(self._frontier_messages(sorted(update), at_least_one=False))
        for key in list(self.inflight):
            if key in self.probes:
                continue
            if key in self.local and self.local[key].seq >= self.inflight[key].last:
                self._done(key)
        return out + self._pump()

    def pump(self) -> list[Action]:
        """Ask for whatever is still missing: the node calls this when another session
        released a log, or when whom we trust changed."""
        return self._pump()

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
        if any(until <= now for until in self.blocked.values()):
            out.extend(self._pump())  # retry logs whose block has run out
        for key, flight in list(self.inflight.items()):
            if now >= flight.deadline:
                probe = self.probes.get(key)
                if probe is not None:  # the peer does not show its entry at our head
                    out.extend(self._block(key, probe))
                    continue
                if self.max_tries is not None and flight.tries >= self.max_tries:
                    # This peer does not answer: end the session, which frees the log for
                    # another peer (the node's claims) and lets the dialer start afresh.
                    where = f"{short_id(key.author)}/{key.log}"
                    return out + self._close(
                        f"{self.peer} did not answer requests for {where} ({flight.tries} tries)"
                    )
                held = self.local[key].seq if key in self.local else 0
                flight.first, flight.tries = held + 1, flight.tries + 1
                flight.deadline = now + self.request_timeout_ms
                self.stats.requests_resent += 1
                out.append(self._send(self.session.send(Request(key, flight.first, flight.last))))
        return out

    def close(self, reason: str) -> list[Action]:
        return self._close(reason)

    def heartbeat_messages(self, beats: Iterable[Heartbeat]) -> list[Action]:
        """Pass heartbeats (our own, or members' we relay) to the peer once the session is up."""
        if self.session.closed or self.session.our_state is not State.SYNCING:
            return []
        return [self._send(self.session.send(beat)) for beat in beats]

    def fork_message(self, proof: ForkProof) -> list[Action]:
        """Tell the peer of a fork, so it freezes that log too."""
        if self.session.closed or self.session.our_state is not State.SYNCING:
            return []
        return [self._send(self.session.send(ForkNotice(proof.to_bytes())))]

    # --- internals ---------------------------------------------------------------------------

    def _on_hello(self) -> list[Action]:
        peer_key = msg_peer_key(self.session)
        verdict = self.accept_peer(peer_key)
        if verdict is not True:
            error = (
                verdict
                if isinstance(verdict, RemoteProtocolError)
                else AuthenticationError(f"{short_id(peer_key)} is not a peer of this node")
            )
            return [Reject(error, None), *self._close(str(error))]
        return [self._send(self.session.auth())]

    def _on_entries(self, key: LogKey, raws: tuple[bytes, ...]) -> list[Action]:
        if self._blocked(key):
            return []
        if not self.trusted(key.author):
            self.blocked[key] = self.now + self.block_retry_ms
            error = UntrustedAuthor(
                f"{self.peer} sent entries of {short_id(key.author)}, not followed here"
            )
            return [Reject(error, key)]
        good: list[Entry] = []
        failure: RemoteProtocolError | None = None
        for index, raw in enumerate(raws):
            try:
                entry = decode_entry(raw, now_ms=self.now, limits=self.limits)
                if (entry.author, entry.log) != (key.author, key.log):
                    raise DecodeError(f"{entry.where} arrived in a message for log {key.log}")
            except RemoteProtocolError as exc:
                # Name the log and position: an undecodable entry cannot name itself.
                where = f"{short_id(key.author)}/{key.log} entry {index + 1} of {len(raws)}"
                failure = type(exc)(f"{self.peer} sent {where}: {exc}", reason=exc.reason)
                break
            good.append(entry)
        self.stats.entries_received += len(good)
        probe, local = self.probes.get(key), self.local.get(key)
        if (
            probe is not None
            and local is not None
            and any(e.seq == local.seq and e.hash == local.hash for e in good)
        ):
            return self._block(key, probe)  # the same entry at our head: no fork, a bad chain
        out: list[Action] = [Apply(key, tuple(good))] if good else []
        if failure is not None:
            self.probes.pop(key, None)
            self.blocked[key] = self.now + self.block_retry_ms
            self._done(key)
            out.append(Reject(failure, key))
        return out

    def _check_own(self, key: LogKey, head: Head) -> list[Action]:
        held = self.local[key].seq if key in self.local else 0
        if head.seq <= held or key in self._own_behind_told:
            return []
        self._own_behind_told.add(key)
        return [OwnLogBehind(key, held, head)]

    def _on_heartbeat(self, beat: Heartbeat) -> list[Action]:
        if not self.trusted(beat.node_key) or self.heartbeat_known(beat.node_key, beat.timestamp):
            return []  # not a member we follow, or old news: nothing to keep or pass on
        try:
            verify_heartbeat(beat, now_ms=self.now, limits=self.limits)
        except RemoteProtocolError as exc:
            error = type(exc)(f"{self.peer} sent a bad heartbeat: {exc}", reason=exc.reason)
            return [Reject(error, None)]
        return [Heard(beat)]

    def _on_fork_notice(self, data: bytes) -> list[Action]:
        try:
            proof, first, _ = verify_fork_proof(data, self.limits)
        except InvalidForkProof as exc:
            return [Reject(InvalidForkProof(f"{self.peer} sent a fork notice that is {exc}"), None)]
        key = LogKey(first.author, first.log)
        if not self.trusted(key.author):
            return []  # a log we do not follow: its forks are not ours to judge
        return [ForkReported(proof, key, first.seq)]

    def _pump(self) -> list[Action]:
        """Request logs where the peer is ahead, keeping at most ``max_inflight`` requests."""
        if not self.ready:
            return []
        out: list[Action] = []
        behind = sorted(self.theirs.items(), key=lambda item: log_priority(item[0].log))
        for key, head in behind:
            if len(self.inflight) >= self.max_inflight:
                break
            if key in self.inflight or self._blocked(key) or not self.trusted(key.author):
                continue
            local = self.local.get(key)
            held = local.seq if local is not None else 0
            if self._beyond_base(key, held):
                continue  # the peer started from a snapshot past what we hold: ask another
            if head.seq > held:
                if self._start(key, held + 1, head.seq):
                    out.append(self._send(self.session.send(Request(key, held + 1, head.seq))))
            elif local is not None and head.seq == held and head.hash != local.hash:
                where = f"{short_id(key.author)}/{key.log}#{held}"
                error = ChainError(f"{self.peer} announced {where} with another hash than ours")
                out.extend(self._probe(key, error))
        return out

    def _probe(self, key: LogKey, error: RemoteProtocolError) -> list[Action]:
        """Ask for the peer's entry at our head; ``error`` stands if it turns out to be ours."""
        held = self.local[key].seq
        if key not in self.inflight and not self._start(key, held, held):
            return []  # another session holds this log; its own checks will find the fork
        self.probes[key] = error
        self.inflight[key] = _Inflight(held, held, self.now + self.request_timeout_ms)
        return [self._send(self.session.send(Request(key, held, held)))]

    def _block(self, key: LogKey, error: RemoteProtocolError) -> list[Action]:
        """Report ``error`` and leave ``key`` alone with this peer for ``block_retry_ms``."""
        self.probes.pop(key, None)
        self.blocked[key] = self.now + self.block_retry_ms
        self._done(key)
        return [Reject(error, key), *self._pump()]

    def _blocked(self, key: LogKey) -> bool:
        until = self.blocked.get(key)
        if until is None:
            return False
        if until <= self.now:
            del self.blocked[key]
            return False
        return True

    def _start(self, key: LogKey, first: int, last: int) -> bool:
        """Put a request for ``key`` in flight, if the node grants us the log."""
        if not self.claim(key):
            return False
        self.inflight[key] = _Inflight(first, last, self.now + self.request_timeout_ms)
        self.stats.requests_sent += 1
        return True

    def _done(self, key: LogKey) -> None:
        if self.inflight.pop(key, None) is not None:
            self.release(key)

    def _frontier_messages(
        self, heads: list[tuple[LogKey, Head]], *, at_least_one: bool
    ) -> list[Action]:
        chunks = [heads[i : i + FRONTIER_CHUNK] for i in range(0, len(heads), FRONTIER_CHUNK)]
        if not chunks and at_least_one:
            chunks = [[]]
        bases = self.local_bases
        return [
            self._send(
                self.session.send(
                    Frontier(tuple(chunk), tuple((k, bases[k]) for k, _ in chunk if k in bases))
                )
            )
            for chunk in chunks
        ]

    def _send(self, data: bytes) -> Send:
        self.stats.bytes_sent += len(data)
        return Send(data)

    def _close(self, reason: str) -> list[Action]:
        for key in list(self.inflight):
            self._done(key)
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
