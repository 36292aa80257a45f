"""Two Replicators with in-memory stores over a fake link that drops, duplicates, reorders and
truncates messages, driven by a seeded random.Random and a fake clock the test advances.

The link works below the sealed channel (protocol/channel.py): it opens each message with the
sender's key, makes its faults on the message, and seals what it delivers again in the order
delivered. On a real link the channel turns any such fault into a ``decrypt`` error (see
tests/test_protocol_session.py); here the replicator's own answers to lost, repeated and
reordered messages are what is tested, as they would be over a transport that re-keys.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from protocol import (
    Apply,
    BadSignature,
    ChainError,
    Closed,
    DecodeError,
    DecryptError,
    Entry,
    ForkProof,
    Head,
    LimitExceeded,
    Limits,
    LogKey,
    Placement,
    Ready,
    Reject,
    RemoteProtocolError,
    Replicator,
    Send,
    Serve,
    Session,
    UntrustedAuthor,
    decode_entry,
    fork_proof,
    place,
    public_bytes,
    sign_entry,
)
from protocol.channel import Channel
from protocol.encoding import pack
from protocol.messages import (
    Entries,
    Frontier,
    Message,
    Request,
    decode_message,
    encode_message,
)
from protocol.replication import FRONTIER_CHUNK, Action

AUTHOR_KEYS = [Ed25519PrivateKey.from_private_bytes(bytes([0x20 + i]) * 32) for i in range(3)]
AUTHORS = [public_bytes(k) for k in AUTHOR_KEYS]
NODE_KEYS = [Ed25519PrivateKey.from_private_bytes(bytes([0x30 + i]) * 32) for i in range(2)]
T0 = 1_700_000_000_000  # the fake clock starts here; every entry is dated before it
TICK = 31_000  # one idle step of the clock: past both the handshake and the request timeout
REASONS = {
    "decode",
    "limit",
    "signature",
    "unknown-kind",
    "body",
    "timestamp",
    "chain",
    "untrusted",
    "state",
    "auth",
    "fork",
    "decrypt",  # a message that arrives in plaintext once the receiver holds keys
}


def make_chain(key: Ed25519PrivateKey, log: str, n: int, *, kind: str = "catalog") -> list[Entry]:
    out: list[Entry] = []
    for seq in range(1, n + 1):
        body: object = (
            {"name": f"Library {seq}"}
            if kind == "profile"
            else {"ops": [["put", f"r{seq}", {"title": f"T{seq}"}], ["del", f"r{seq - 1}"]]}
        )
        prev = out[-1].hash if out else None
        out.append(
            sign_entry(key, log=log, seq=seq, prev=prev, timestamp=T0 - 1000, kind=kind, body=body)
        )
    return out


K0, K0P, K1, K2 = (
    LogKey(AUTHORS[0], "catalog"),
    LogKey(AUTHORS[0], "profile"),
    LogKey(AUTHORS[1], "catalog"),
    LogKey(AUTHORS[2], "catalog"),
)
CHAINS: dict[LogKey, list[Entry]] = {
    K0: make_chain(AUTHOR_KEYS[0], "catalog", 12),
    K0P: make_chain(AUTHOR_KEYS[0], "profile", 2, kind="profile"),
    K1: make_chain(AUTHOR_KEYS[1], "catalog", 6),
    K2: make_chain(AUTHOR_KEYS[2], "catalog", 3),
}
ALL = {key: len(chain) for key, chain in CHAINS.items()}


class MemoryStore:
    """A store after the node's: apply NEXT, ignore HELD, hold nothing AHEAD, prove forks."""

    def __init__(self, logs: Mapping[LogKey, list[Entry]] | None = None) -> None:
        self.logs: dict[LogKey, list[Entry]] = {k: list(v) for k, v in (logs or {}).items() if v}
        self.forks: list[ForkProof] = []

    @classmethod
    def holding(cls, prefixes: Mapping[LogKey, int]) -> MemoryStore:
        return cls({key: CHAINS[key][:n] for key, n in prefixes.items()})

    def head(self, key: LogKey) -> Head | None:
        log = self.logs.get(key)
        return Head(len(log), log[-1].hash) if log else None

    def heads(self) -> dict[LogKey, Head]:
        return {key: Head(len(log), log[-1].hash) for key, log in self.logs.items()}

    def apply(
        self, key: LogKey, entries: Iterable[Entry]
    ) -> tuple[Head | None, RemoteProtocolError | None]:
        log = self.logs.get(key, [])
        for entry in entries:
            assert (entry.author, entry.log) == (key.author, key.log)
            held = log[entry.seq - 1].hash if entry.seq <= len(log) else None
            try:
                placement = place(self.head(key), entry, held)
            except ChainError as exc:
                return self.head(key), exc
            if placement is Placement.NEXT:
                log.append(entry)
                self.logs[key] = log
            elif placement is Placement.AHEAD:
                break  # hold nothing: the replicator asks again from our head
            elif placement is Placement.CONFLICT:
                proof = fork_proof(log[entry.seq - 1], entry)
                assert proof is not None
                self.forks.append(proof)
                return self.head(key), ChainError(f"{entry.where}: fork", reason="fork")
        return self.head(key), None

    def raws(self, key: LogKey, first: int, last: int) -> list[bytes]:
        return [e.raw for e in self.logs.get(key, [])[first - 1 : last]]

    def check_valid(self) -> None:
        """Property (a): everything held verifies from its bytes and chains from seq 1."""
        for key, log in self.logs.items():
            prev = None
            for index, entry in enumerate(log):
                assert decode_entry(entry.raw, now_ms=None) == entry
                assert (entry.author, entry.log, entry.seq, entry.prev) == (
                    key.author,
                    key.log,
                    index + 1,
                    prev,
                )
                prev = entry.hash

    def check_honest(self) -> None:
        """Only the authors' own entries, each once, in order."""
        self.check_valid()
        for key, log in self.logs.items():
            assert log == CHAINS[key][: len(log)]

    def lengths(self) -> dict[LogKey, int]:
        return {key: len(log) for key, log in self.logs.items()}


class TapSession(Session):
    """A Session that keeps every message it sends: on the wire they are sealed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[Message] = []

    def send(self, msg: Message) -> bytes:
        data = super().send(msg)
        self.sent.append(msg)
        return data


class Node:
    """Carries out a replicator's actions against a MemoryStore, as the real node does."""

    def __init__(
        self,
        index: int,
        store: MemoryStore,
        rng: random.Random,
        *,
        trusted: Iterable[bytes] = AUTHORS,
        accept: Callable[[bytes], bool] = lambda _: True,
        expected_peer: bytes | None = None,
        now: int = T0,
    ) -> None:
        trust = set(trusted)
        self.session = TapSession(
            NODE_KEYS[index],
            rng.randbytes(32),
            f"node{index}",
            expected_peer=expected_peer,
            ephemeral=X25519PrivateKey.from_private_bytes(rng.randbytes(32)),
        )
        self.store = store
        self.rep = Replicator(self.session, store.heads(), accept, lambda a: a in trust, now=now)
        self.outbox: list[bytes] = []  # as sent: sealed once the session has keys
        self.rejects: list[Reject] = []
        self.closed: list[Closed] = []
        self.ready: list[Ready] = []

    def perform(self, actions: list[Action]) -> None:
        for action in actions:
            match action:
                case Send(data):
                    self.outbox.append(data)
                case Serve(key, first, last):
                    raws = self.store.raws(key, first, last)
                    self.perform(self.rep.entries_messages(key, raws))
                case Apply(key, entries):
                    head, error = self.store.apply(key, entries)
                    if error is not None:
                        self.perform(self.rep.rejected(key, error))
                    else:
                        self.perform(self.rep.applied(key, head))
                case Reject():
                    self.rejects.append(action)
                case Ready():
                    self.ready.append(action)
                case Closed():
                    self.closed.append(action)

    @property
    def is_closed(self) -> bool:
        return self.rep.session.closed

    def requests(self) -> list[Request]:
        return [m for m in self.session.sent if isinstance(m, Request)]


@dataclass
class Faults:
    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    truncate: float = 0.0
    cut: float = 0.0
    budget: int = 0  # the link is clean once this many faults were made


class Relay:
    """One direction of the link, below the channel: opens each message with the sender's key
    and seals it again when delivered (each needs the receiver's next nonce)."""

    def __init__(self) -> None:
        self.channel: Channel | None = None

    def open(self, sender: Session, data: bytes) -> tuple[bytes, bool]:
        if self.channel is None and sender.channel is not None:
            key = sender.channel.send_key
            self.channel = Channel(key, key, compress=False)
        if self.channel is not None:
            with contextlib.suppress(DecryptError):
                return self.channel.open(data), True
        return data, False  # a Hello, or a Close sent before the keys

    def seal(self, data: bytes, sealed: bool = True) -> bytes:
        if not sealed:
            return data
        assert self.channel is not None
        return self.channel.seal(data)


@dataclass
class FakeLink:
    rng: random.Random
    faults: Faults = field(default_factory=Faults)
    queue: list[tuple[int, bytes, bool]] = field(default_factory=list)  # (dest, message, sealed)
    cut: bool = False
    tamper: Callable[[int, bytes], bytes | None] | None = None  # a test's own man in the middle
    relays: tuple[Relay, Relay] = field(default_factory=lambda: (Relay(), Relay()))  # by dest

    def to(self, dest: int, message: bytes) -> bytes:
        """``message`` sealed as the next one that ``dest`` receives: for a test's own sends."""
        return self.relays[dest].seal(message)

    def _fault(self, p: float) -> bool:
        if self.faults.budget > 0 and self.rng.random() < p:
            self.faults.budget -= 1
            return True
        return False

    def carry(self, dest: int, data: bytes, sealed: bool) -> None:
        if self.tamper is not None:
            changed = self.tamper(dest, data)
            if changed is None:
                return
            data = changed
        if self.cut or self._fault(self.faults.drop):
            return
        if self._fault(self.faults.truncate):
            data = data[: self.rng.randrange(len(data))]
        copies = 2 if self._fault(self.faults.duplicate) else 1
        for _ in range(copies):
            if self._fault(self.faults.reorder):
                self.queue.insert(self.rng.randrange(len(self.queue) + 1), (dest, data, sealed))
            else:
                self.queue.append((dest, data, sealed))
        if self._fault(self.faults.cut):
            self.cut = True


@dataclass
class Clock:
    now: int = T0


def run(
    a: Node, b: Node, link: FakeLink, clock: Clock, *, max_steps: int = 3000, ticks: bool = True
) -> None:
    """Deliver until quiet, advancing the clock whenever nothing is in flight."""
    nodes = (a, b)

    def flush() -> None:
        for index, node in enumerate(nodes):
            for data in node.outbox:
                link.carry(1 - index, *link.relays[1 - index].open(node.session, data))
            node.outbox.clear()

    def hang_up(reason: str) -> None:
        # The transport closing: what a WebSocket does once either side is done.
        link.queue.clear()
        for node in nodes:
            if not node.is_closed:
                node.perform(node.rep.close(reason))
            node.outbox.clear()

    a.perform(a.rep.start())
    b.perform(b.rep.start())
    flush()
    for _ in range(max_steps):
        if link.cut:
            hang_up("connection lost")
            return
        if link.queue:
            dest, data, sealed = link.queue.pop(0)
            wire = link.relays[dest].seal(data, sealed)
            nodes[dest].perform(nodes[dest].rep.receive(wire, clock.now))
            flush()
            continue
        if a.is_closed or b.is_closed:
            hang_up("connection closed")
            return
        if not ticks:
            return
        clock.now += TICK
        for node in nodes:
            node.perform(node.rep.tick(clock.now))
        if not a.outbox and not b.outbox:
            return  # quiet: nothing in flight, nothing to ask again, nobody timed out
        flush()
    raise AssertionError("the link did not settle")  # pragma: no cover


def connect(
    sa: MemoryStore, sb: MemoryStore, rng: random.Random, faults: Faults | None = None, **kw: object
) -> tuple[Node, Node, FakeLink]:
    a, b = Node(0, sa, rng), Node(1, sb, rng)
    link = FakeLink(rng, faults or Faults())
    run(a, b, link, Clock(), **kw)  # type: ignore[arg-type]
    return a, b, link


def expected(*stores: MemoryStore) -> dict[LogKey, int]:
    out: dict[LogKey, int] = {}
    for store in stores:
        for key, n in store.lengths().items():
            out[key] = max(out.get(key, 0), n)
    return out


def assert_converged(sa: MemoryStore, sb: MemoryStore, want: Mapping[LogKey, int]) -> None:
    assert sa.lengths() == sb.lengths() == dict(want)
    assert sa.heads() == sb.heads()
    for store in (sa, sb):
        store.check_honest()
        raws = [e.raw for log in store.logs.values() for e in log]
        assert len(raws) == len(set(raws)) == sum(want.values())  # each entry exactly once


# --- the property ----------------------------------------------------------------------------

PREFIXES = st.fixed_dictionaries({key: st.integers(0, n) for key, n in ALL.items()})
RATES = st.sampled_from([0.0, 0.05, 0.2, 0.5])
FAULTS = st.builds(
    Faults,
    drop=RATES,
    duplicate=RATES,
    reorder=RATES,
    truncate=st.sampled_from([0.0, 0.02, 0.1]),
    cut=st.sampled_from([0.0, 0.01, 0.05]),
    budget=st.integers(0, 15),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PREFIXES, PREFIXES, st.integers(0, 2**32), FAULTS)
def test_sync_over_a_faulty_link(
    pa: dict[LogKey, int], pb: dict[LogKey, int], seed: int, faults: Faults
) -> None:
    rng = random.Random(seed)
    sa, sb = MemoryStore.holding(pa), MemoryStore.holding(pb)
    want = expected(sa, sb)
    a, b, _ = connect(sa, sb, rng, faults)

    # (a) nothing invalid was applied: every entry verifies from its bytes and chains.
    sa.check_honest()
    sb.check_honest()

    # (b) the session converged, or it ended, and every complaint is a typed protocol error.
    assert a.is_closed == b.is_closed  # the transport takes the other side down too
    for node in (a, b):
        for reject in node.rejects:
            assert isinstance(reject.error, RemoteProtocolError)
            assert reject.error.reason in REASONS
        if node.is_closed:
            assert node.closed, "a closed session reports Closed"
        else:
            assert node.ready and not node.rejects
    if not a.is_closed:
        assert_converged(sa, sb, want)
    event("session closed" if a.is_closed else "converged in the faulty session")
    event(f"faults left unspent: {faults.budget > 0}")

    # (c) new sessions over a clean link converge both stores, each entry exactly once.
    for _ in range(3):
        if sa.lengths() == sb.lengths() == want:
            break
        a, b, _ = connect(sa, sb, rng)
        assert not a.rejects and not b.rejects
        assert not a.is_closed and not b.is_closed
    assert_converged(sa, sb, want)


def test_clean_link_converges_in_one_session() -> None:
    rng = random.Random(1)
    sa = MemoryStore.holding({K0: 12, K1: 3})
    sb = MemoryStore.holding({K1: 6, K2: 3, K0P: 1})
    a, b, _ = connect(sa, sb, rng)
    assert_converged(sa, sb, {K0: 12, K1: 6, K2: 3, K0P: 1})
    assert len(a.ready) == len(b.ready) == 1
    assert a.ready[0].peer_key == public_bytes(NODE_KEYS[1]) and a.ready[0].peer_name == "node1"
    assert not a.rejects and not b.rejects and not a.is_closed
    # Requests run from the entry after our head to the peer's head: nothing is sent twice.
    assert {(r.key, r.first, r.last) for r in a.requests()} == {(K1, 4, 6), (K2, 1, 3), (K0P, 1, 1)}
    assert [(r.key, r.first, r.last) for r in b.requests()] == [(K0, 1, 12)]
    assert a.rep.stats.requests_resent == b.rep.stats.requests_resent == 0
    assert not a.rep.inflight and not b.rep.inflight


def test_nothing_to_do_is_quiet() -> None:
    rng = random.Random(2)
    sa, sb = MemoryStore.holding(ALL), MemoryStore.holding(ALL)
    a, b, _ = connect(sa, sb, rng)
    assert not a.requests() and not b.requests()
    assert not a.is_closed and a.rep.ready and b.rep.ready


# --- tampering in transit --------------------------------------------------------------------


def flip_in_entries(target: LogKey, which: int, position: int) -> Callable[[int, bytes], bytes]:
    """Flip one byte of entry ``which`` in the first Entries message for ``target``."""
    done: list[bool] = []

    def tamper(dest: int, data: bytes) -> bytes:
        msg = decode_message(data)
        if done or not (isinstance(msg, Entries) and msg.key == target):
            return data
        done.append(True)
        raws = list(msg.raws)
        raw = bytearray(raws[which])
        raw[position] ^= 0x01
        raws[which] = bytes(raw)
        return encode_message(Entries(msg.key, tuple(raws)))

    return tamper


def title_offset(raw: bytes) -> int:
    return raw.index(b"T1")


@pytest.mark.parametrize(
    ("position", "error"),
    [
        (-1, BadSignature),  # inside the signature
        (title_offset(CHAINS[K0][0].raw), BadSignature),  # inside the signed payload
        (0, DecodeError),  # the envelope's array header
    ],
)
def test_flipped_byte_in_an_entry_is_rejected(position: int, error: type[Exception]) -> None:
    rng = random.Random(3)
    sa, sb = MemoryStore.holding({K0: 12, K2: 3}), MemoryStore()
    a, b = Node(0, sa, rng), Node(1, sb, rng)
    link = FakeLink(rng, tamper=flip_in_entries(K0, 0, position))
    run(a, b, link, Clock())
    [reject] = b.rejects
    assert reject.key == K0 and type(reject.error) is error
    assert "catalog entry 1 of 12" in str(reject.error)  # names the log and the entry
    assert K0 not in sb.logs  # nothing of that log was applied
    assert sb.lengths() == {K2: 3}  # other logs still sync
    assert not b.is_closed and K0 in b.rep.blocked
    assert [r.key for r in b.requests()].count(K0) == 1  # not asked again in this session
    sb.check_honest()
    connect(sa, sb, rng)  # a later session over a clean link heals it
    assert_converged(sa, sb, {K0: 12, K2: 3})


def test_entries_before_a_bad_one_are_kept() -> None:
    rng = random.Random(4)
    sa, sb = MemoryStore.holding({K0: 12}), MemoryStore()
    a, b = Node(0, sa, rng), Node(1, sb, rng)
    run(a, b, FakeLink(rng, tamper=flip_in_entries(K0, 4, -1)), Clock())
    [reject] = b.rejects
    assert isinstance(reject.error, BadSignature) and "catalog#5" in str(reject.error)
    assert sb.lengths() == {K0: 4}
    sb.check_honest()


def test_entries_of_an_untrusted_author_are_rejected() -> None:
    rng = random.Random(5)
    sa, sb = MemoryStore.holding({K0: 12, K1: 6}), MemoryStore()
    a, b = Node(0, sa, rng), Node(1, sb, rng, trusted=[AUTHORS[0]])
    link = FakeLink(rng)
    run(a, b, link, Clock())
    assert sb.lengths() == {K0: 12}
    assert all(r.key != K1 for r in b.requests())  # never asked for
    assert not b.rejects
    # A pushes the log anyway.
    for _ in range(2):
        a.perform(a.rep.entries_messages(K1, sa.raws(K1, 1, 6)))
    for data in a.outbox:
        b.perform(b.rep.receive(data, T0))
    [reject] = b.rejects  # once: the log is blocked for the rest of the session
    assert reject.key == K1 and isinstance(reject.error, UntrustedAuthor)
    assert reject.error.reason == "untrusted"
    assert K1 not in sb.logs and not b.is_closed


def test_entries_of_another_log_in_a_message_are_rejected() -> None:
    rng = random.Random(6)
    sa, sb = MemoryStore.holding({K0: 12, K2: 3}), MemoryStore()
    a, b = Node(0, sa, rng), Node(1, sb, rng)
    run(a, b, FakeLink(rng), Clock())
    a.perform(a.rep.entries_messages(K0, sa.raws(K2, 1, 1)))  # K2's entry labelled as K0
    b.perform(b.rep.receive(a.outbox[-1], T0))
    [reject] = b.rejects
    assert reject.key == K0 and isinstance(reject.error, DecodeError)


def test_a_truncated_message_ends_the_session_with_a_typed_error() -> None:
    rng = random.Random(7)
    sa, sb = MemoryStore.holding({K0: 12}), MemoryStore()
    a, b = Node(0, sa, rng), Node(1, sb, rng)

    def cut_entries(dest: int, data: bytes) -> bytes:
        return data[:-3] if isinstance(decode_message(data), Entries) else data

    run(a, b, FakeLink(rng, tamper=cut_entries), Clock())
    assert b.is_closed and a.is_closed
    assert [type(r.error) for r in b.rejects] == [DecodeError] and b.rejects[0].key is None
    assert b.closed[0].reason.startswith("decode: ")  # the stable reason code, not a class name
    assert sb.lengths() == {}


# --- forks -----------------------------------------------------------------------------------

FORK_KEY = LogKey(AUTHORS[0], "forked")
TRUNK = make_chain(AUTHOR_KEYS[0], "forked", 4)
BRANCH = sign_entry(
    AUTHOR_KEYS[0],
    log="forked",
    seq=3,
    prev=TRUNK[1].hash,
    timestamp=T0 - 500,
    kind="catalog",
    body={"ops": [["del", "r1"]]},
)


def fork_proofs(store: MemoryStore) -> set[frozenset[bytes]]:
    out = set()
    for proof in store.forks:
        first, second = ForkProof.from_bytes(proof.to_bytes()).verify()
        assert (first.author, first.log, first.seq) == (AUTHORS[0], "forked", 3)
        out.add(frozenset((first.hash, second.hash)))
    return out


@pytest.mark.parametrize("trunk_length", [4, 3])
def test_a_fork_is_proved(trunk_length: int) -> None:
    rng = random.Random(8)
    sa = MemoryStore({FORK_KEY: TRUNK[:trunk_length]})
    sb = MemoryStore({FORK_KEY: [*TRUNK[:2], BRANCH]})
    a, b = Node(0, sa, rng), Node(1, sb, rng)
    run(a, b, FakeLink(rng), Clock())
    both = frozenset((TRUNK[2].hash, BRANCH.hash))
    assert fork_proofs(sb) == {both}
    assert sb.logs[FORK_KEY] == [*TRUNK[:2], BRANCH]  # the fork is recorded, not applied
    assert [(r.key, r.error.reason) for r in b.rejects] == [(FORK_KEY, "fork")]
    # With equal heads both sides ask for the other's entry at that seq, and both find it.
    assert fork_proofs(sa) == ({both} if trunk_length == 3 else set())
    assert sa.logs[FORK_KEY] == TRUNK[:trunk_length]
    # B probed the peer's entry at its own head, once, after the one that did not chain.
    probes = [(r.first, r.last) for r in b.requests()]
    assert probes == ([(4, 4), (3, 3)] if trunk_length == 4 else [(3, 3)])
    assert not a.is_closed and FORK_KEY in b.rep.blocked and not b.rep.probes


BAD_NEXT = sign_entry(
    AUTHOR_KEYS[0],
    log="forked",
    seq=4,
    prev=bytes(32),  # signed by the author, but pointing at no entry anybody holds
    timestamp=T0 - 500,
    kind="catalog",
    body={"ops": [["del", "r9"]]},
)


@pytest.mark.parametrize("answer_probe", [True, False])
def test_a_broken_chain_is_not_taken_for_a_fork(answer_probe: bool) -> None:
    rng = random.Random(17)
    sa = MemoryStore({FORK_KEY: [*TRUNK[:3], BAD_NEXT]})  # stored as is, bypassing place()
    sb = MemoryStore({FORK_KEY: TRUNK[:3]})
    a, b = Node(0, sa, rng), Node(1, sb, rng)

    def drop_probe(dest: int, data: bytes) -> bytes | None:
        msg = decode_message(data)
        probe = isinstance(msg, Request) and msg.first == msg.last == 3
        return None if probe and not answer_probe else data

    run(a, b, FakeLink(rng, tamper=drop_probe), Clock())
    assert [(r.first, r.last) for r in b.requests()] == [(4, 4), (3, 3)]
    [reject] = b.rejects  # the chain error, reported once the probe settled it
    assert (reject.key, reject.error.reason) == (FORK_KEY, "chain")
    assert "previous hash" in str(reject.error)
    assert not sb.forks and sb.logs[FORK_KEY] == TRUNK[:3]
    assert FORK_KEY in b.rep.blocked and not b.rep.probes and not b.rep.inflight
    assert b.rep.stats.requests_resent == 0


def test_forged_fork_proofs_are_rejected() -> None:
    proof = fork_proof(TRUNK[2], BRANCH)
    assert proof is not None and ForkProof.from_bytes(proof.to_bytes()) == proof
    stranger = make_chain(AUTHOR_KEYS[1], "forked", 3)[2]
    resigned = sign_entry(
        AUTHOR_KEYS[1],
        log="forked",
        seq=3,
        prev=TRUNK[1].hash,
        timestamp=T0 - 500,
        kind="catalog",
        body={"ops": [["del", "r1"]]},
    )
    broken = bytearray(BRANCH.raw)
    broken[-5] ^= 0x10
    forged: list[tuple[list[bytes], type[Exception]]] = [
        ([TRUNK[2].raw, TRUNK[2].raw], DecodeError),  # one entry twice
        ([TRUNK[2].raw, TRUNK[3].raw], DecodeError),  # different seqs
        ([TRUNK[2].raw, stranger.raw], DecodeError),  # another author's log of that name
        ([TRUNK[2].raw, resigned.raw], DecodeError),  # same content, another signer
        ([TRUNK[2].raw, bytes(broken)], BadSignature),  # a branch the author never signed
        ([TRUNK[2].raw], DecodeError),
    ]
    for raws, error in forged:
        with pytest.raises(error):
            ForkProof.from_bytes(pack(raws))


# --- timing: re-requests, timeouts, closing --------------------------------------------------


def entries_to(dest: int) -> Callable[[int, bytes], bool]:
    return lambda d, data: d == dest and isinstance(decode_message(data), Entries)


def test_lost_entries_are_requested_again_after_our_head() -> None:
    rng = random.Random(9)
    sa, sb = MemoryStore.holding({K0: 12}), MemoryStore.holding({K0: 5})
    a, b = Node(0, sa, rng), Node(1, sb, rng)
    lost: list[bytes] = []

    def lose_first(dest: int, data: bytes) -> bytes | None:
        if not lost and entries_to(1)(dest, data):
            lost.append(data)
            return None
        return data

    run(a, b, FakeLink(rng, tamper=lose_first), Clock())
    assert lost
    assert [(r.first, r.last) for r in b.requests()] == [(6, 12), (6, 12)]
    assert b.rep.stats.requests_resent == 1
    assert_converged(sa, sb, {K0: 12})


def test_duplicates_do_not_postpone_a_re_request() -> None:
    rng = random.Random(10)
    sa, sb = MemoryStore.holding({K0: 12}), MemoryStore.holding({K0: 5})
    a, b = Node(0, sa, rng), Node(1, sb, rng)
    held_back: list[bytes] = []

    def hold_entries(dest: int, data: bytes) -> bytes | None:
        if entries_to(1)(dest, data):
            held_back.append(data)
            return None
        return data

    link = FakeLink(rng, tamper=hold_entries)
    run(a, b, link, Clock(), ticks=False)
    [flight] = b.rep.inflight.values()
    deadline = flight.deadline
    # A stale duplicate (only entry 5, which B holds) arrives just before the deadline.
    stale = link.to(1, encode_message(Entries(K0, (CHAINS[K0][4].raw,))))
    b.perform(b.rep.receive(stale, deadline - 1))
    assert sb.lengths() == {K0: 5}
    assert flight.deadline == deadline  # no progress, no extension
    sent = len(b.session.sent)
    b.perform(b.rep.tick(deadline))
    assert b.session.sent[sent:] == [Request(K0, 6, 12)]
    # Real progress does postpone it.
    b.perform(b.rep.receive(link.to(1, held_back[0]), deadline + 10))
    assert sb.lengths() == {K0: 12} and not b.rep.inflight


def test_handshake_timeout() -> None:
    rng = random.Random(11)
    a, b = Node(0, MemoryStore(), rng), Node(1, MemoryStore(), rng)
    link = FakeLink(rng, tamper=lambda dest, data: None if dest == 0 else data)  # A hears nothing
    run(a, b, link, Clock())
    assert a.is_closed and b.is_closed
    assert a.closed[0].reason == "handshake timed out"
    assert not a.ready


def test_peer_not_accepted() -> None:
    rng = random.Random(12)
    a = Node(0, MemoryStore.holding({K0: 12}), rng, accept=lambda key: False)
    b = Node(1, MemoryStore(), rng)
    run(a, b, FakeLink(rng), Clock())
    assert a.is_closed and "is not a peer" in a.closed[0].reason
    assert not a.ready and not b.ready
    assert b.store.lengths() == {}


def test_expected_peer_mismatch_is_a_typed_rejection() -> None:
    rng = random.Random(13)
    a = Node(0, MemoryStore(), rng, expected_peer=AUTHORS[2])
    b = Node(1, MemoryStore.holding({K0: 12}), rng)
    run(a, b, FakeLink(rng), Clock())
    assert [r.error.reason for r in a.rejects] == ["auth"]
    assert a.is_closed and b.is_closed and a.store.lengths() == {}


def test_serving_after_close_sends_nothing() -> None:
    rng = random.Random(14)
    sa, sb = MemoryStore.holding({K0: 12}), MemoryStore()
    a, b = Node(0, sa, rng), Node(1, sb, rng)
    run(a, b, FakeLink(rng), Clock())
    a.perform(a.rep.close("bye"))
    assert a.rep.entries_messages(K0, sa.raws(K0, 1, 12)) == []
    assert a.rep.tick(T0 + 10**9) == []
    assert a.rep.receive(encode_message(Frontier(())), T0) == []


def test_local_changes_are_announced_and_fetched() -> None:
    rng = random.Random(15)
    sa, sb = MemoryStore.holding({K0: 6}), MemoryStore.holding({K0: 6})
    a, b = Node(0, sa, rng), Node(1, sb, rng)
    link = FakeLink(rng)
    run(a, b, link, Clock())
    sa.apply(K0, CHAINS[K0][6:])
    sent = len(a.session.sent)
    a.perform(a.rep.local_changed(sa.heads()))
    assert a.session.sent[sent:] == [Frontier(((K0, sa.heads()[K0]),))]
    a.perform(a.rep.local_changed(sa.heads()))  # told once only
    assert len(a.outbox) == 1
    for _ in range(20):  # deliver by hand, both ways, until quiet
        moved = False
        for src, dst in ((a, b), (b, a)):
            out, src.outbox = src.outbox, []
            for data in out:
                dst.perform(dst.rep.receive(data, T0))
                moved = True
        if not moved:
            break
    assert_converged(sa, sb, {K0: 12})


# --- frontiers -------------------------------------------------------------------------------


def many_heads(n: int) -> dict[LogKey, Head]:
    author = bytes(range(32))
    return {LogKey(author, f"log{i}"): Head(i + 1, bytes([i % 256]) * 32) for i in range(n)}


def test_a_large_frontier_goes_out_in_chunks() -> None:
    rng = random.Random(16)
    a, b = Node(0, MemoryStore(), rng), Node(1, MemoryStore(), rng)
    a.rep.local = many_heads(FRONTIER_CHUNK + 1)
    run(a, b, FakeLink(rng), Clock())
    frontiers = [m for m in a.session.sent if isinstance(m, Frontier)]
    assert [len(f.heads) for f in frontiers] == [FRONTIER_CHUNK, 1]
    assert b.rep.theirs == a.rep.local
    assert not b.rejects and not b.is_closed and b.rep.ready


def test_frontier_limits() -> None:
    heads = tuple(sorted(many_heads(20_000).items()))
    assert decode_message(encode_message(Frontier(heads))) == Frontier(heads)
    with pytest.raises(LimitExceeded, match="frontier"):
        decode_message(encode_message(Frontier(heads[:6])), Limits(max_frontier_logs=5))
