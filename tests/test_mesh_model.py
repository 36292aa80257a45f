"""A stateful property test of replication over 3-6 simulated nodes (tests/meshsim.py).

Hypothesis builds a random connected topology, then interleaves appends, message deliveries,
dead connections, re-sent entries, crash-restarts, partitions, heals and the passing of time. At
the end the network heals and runs until quiet; then every node must hold the same entries of
every log, each appended entry exactly once, with no fork and no rejection between honest nodes.
"""

from __future__ import annotations

from collections import Counter

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from tests import meshsim
from tests.meshsim import Mesh

KEYS = [Ed25519PrivateKey.from_private_bytes(bytes([0x60 + i]) * 32) for i in range(6)]
TICKS = [1_000, 16_000, meshsim.HEARTBEAT_MS, meshsim.REQUEST_TIMEOUT_MS + 1]


@st.composite
def topologies(draw: st.DrawFn) -> tuple[int, frozenset[tuple[int, int]]]:
    """A random connected graph: a random spanning tree plus a few extra edges."""
    n = draw(st.integers(3, 6), label="nodes")
    edges = {(draw(st.integers(0, i - 1)), i) for i in range(1, n)}
    extra = draw(st.sets(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=n))
    edges |= {(min(a, b), max(a, b)) for a, b in extra if a != b}
    return n, frozenset(edges)


class MeshModel(RuleBasedStateMachine):
    mesh: Mesh

    def __init__(self) -> None:
        super().__init__()
        self.acknowledged: list[tuple[bytes, str, int, bytes]] = []
        self.records = 0

    @initialize(topology=topologies(), authors=st.lists(st.integers(0, 5), max_size=8))
    def build(self, topology: tuple[int, frozenset[tuple[int, int]]], authors: list[int]) -> None:
        """The network, some catalogue already signed, and every link dialling."""
        n, edges = topology
        self.mesh = Mesh(KEYS[:n], edges)
        for node in authors:
            self.append(node, "catalog", 1)
        self.mesh.connect_all()

    def _link(self, pick: int) -> meshsim.Link:
        return self.mesh.links[pick % len(self.mesh.links)]

    # --- rules ----------------------------------------------------------------------------------

    @rule(
        node=st.integers(0, 5),
        log=st.sampled_from(["catalog", "catalog", "profile"]),
        count=st.integers(1, 3),
    )
    def append(self, node: int, log: str, count: int) -> None:
        """A library signs ``count`` changes; each is acknowledged once stored."""
        index = node % len(self.mesh.nodes)
        for _ in range(count):
            self.records += 1
            body: object = (
                {"ops": [["put", f"r{self.records}", {"title": f"Judul {self.records}"}]]}
                if log == "catalog"
                else {"name": f"Perpustakaan {self.records}"}
            )
            entry = self.mesh.append(index, log, log, body)
            self.acknowledged.append((entry.author, entry.log, entry.seq, entry.hash))

    @precondition(lambda self: bool(self.mesh.busy()))
    @rule(pick=st.integers(0, 31), count=st.integers(1, 12))
    def deliver(self, pick: int, count: int) -> None:
        """Deliver a few messages in order on one direction of one link."""
        busy = self.mesh.busy()
        link, side = busy[pick % len(busy)]
        for _ in range(count):
            if not self.mesh.deliver(link, side):
                break

    @precondition(lambda self: bool(self.mesh.busy()))
    @rule(steps=st.integers(1, 60))
    def deliver_everywhere(self, steps: int) -> None:
        """One message on every busy direction, round after round."""
        for _ in range(steps):
            busy = self.mesh.busy()
            if not busy:
                break
            for link, side in busy:
                self.mesh.deliver(link, side)
            self.mesh.run_tasks()

    @rule()
    def run_tasks(self) -> None:
        """The event loop gets round to the tasks: pushers, servers, pumps."""
        self.mesh.run_tasks()

    @precondition(lambda self: bool(self.mesh.connected()))
    @rule(pick=st.integers(0, 31))
    def drop(self, pick: int) -> None:
        """A message is lost: on a WebSocket that means the connection died."""
        live = self.mesh.connected()
        self.mesh.drop(live[pick % len(live)])

    @precondition(lambda self: bool(self.mesh.senders()))
    @rule(
        pick=st.integers(0, 31),
        log=st.integers(0, 15),
        first=st.integers(1, 8),
        count=st.integers(1, 8),
    )
    def resend(self, pick: int, log: int, first: int, count: int) -> None:
        """A peer re-sends entries (duplicates) or sends a later range first (reordered)."""
        senders = self.mesh.senders()
        link, side = senders[pick % len(senders)]
        self.mesh.resend(link, side, log, first, count)

    @rule(node=st.integers(0, 5))
    def crash_restart(self, node: int) -> None:
        self.mesh.crash(node % len(self.mesh.nodes))

    @rule(picks=st.sets(st.integers(0, 31), min_size=1, max_size=4))
    def partition(self, picks: set[int]) -> None:
        self.mesh.cut({self._link(p) for p in picks})

    @rule()
    def heal(self) -> None:
        self.mesh.heal()

    @rule(pick=st.integers(0, 31))
    def connect(self, pick: int) -> None:
        self.mesh.connect(self._link(pick))

    @rule()
    def connect_all(self) -> None:
        self.mesh.connect_all()

    @rule(ms=st.sampled_from(TICKS))
    def tick(self, ms: int) -> None:
        self.mesh.tick(ms)

    @rule()
    def quiet_within_partition(self) -> None:
        """Without healing, run until quiet: every group of nodes still joined by working
        links agrees (a library that loses one link keeps syncing through the others)."""
        problem = self.mesh.settle(heal=False)
        assert problem is None, f"liveness within a partition: {problem}"
        for group in self.mesh.components():
            digests = {node.store.digest() for node in group}
            assert len(digests) == 1, f"a connected group differs after quiet: {self._diff()}"

    # --- what must hold at every step ------------------------------------------------------------

    @invariant()
    def honest_nodes_agree_on_every_entry(self) -> None:
        for node in self.mesh.nodes:
            assert not node.rejections, f"rejection between honest nodes: {node.rejections}"
            assert not node.store.forks, f"{node.name} found a fork among honest nodes"
            assert not node.odd_actions, f"{node.name}: {node.odd_actions}"
            node.store.check_chains()

    def teardown(self) -> None:
        if not hasattr(self, "mesh"):
            return
        before = self.mesh.events
        problem = self.mesh.settle(heal=True)
        event(f"entries appended: {_bucket(len(self.acknowledged))}")
        event(f"messages before the heal: {_bucket(before)}")
        event(f"messages to converge: {_bucket(self.mesh.events - before)}")
        mesh = self.mesh
        event(f"duplicates received: {_bucket(sum(n.store.duplicates for n in mesh.nodes))}")
        event(f"claims denied: {_bucket(sum(n.claims_denied for n in mesh.nodes))}")
        event(f"requests resent: {_bucket(sum(r.stats.requests_resent for r in mesh.replicators))}")
        event(f"half-open ends after a crash: {_bucket(mesh.half_open)}")
        assert problem is None, f"liveness: {problem}"
        self.honest_nodes_agree_on_every_entry()
        digests = {node.name: node.store.digest() for node in self.mesh.nodes}
        assert len(set(digests.values())) == 1, f"stores differ after quiet: {self._diff()}"
        for node in self.mesh.nodes:
            rows = Counter(node.store.rows())
            for row in self.acknowledged:
                assert rows[row] == 1, f"{node.name} holds {row[1]}#{row[2]} {rows[row]} times"
            assert sum(rows.values()) == len(self.acknowledged), f"{node.name} holds extra entries"

    def _diff(self) -> str:
        return "; ".join(
            f"{node.name}: "
            + ", ".join(
                f"{k.author.hex()[:6]}/{k.log}@{h.seq}"
                for k, h in sorted(node.store.heads().items())
            )
            for node in self.mesh.nodes
        )


def _bucket(n: int) -> str:
    """Coarse buckets for hypothesis' statistics (``--hypothesis-show-statistics``)."""
    return next(f"<={b}" for b in (0, 2, 5, 10, 20, 50, 100, 200, 500, 10**9) if n <= b)


MeshModel.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestMeshModel = MeshModel.TestCase


def test_model_uses_sync_timeouts() -> None:
    """The model drives replicators with sync.py's settings, so what it proves holds there."""
    from peernode import sync

    assert meshsim.REQUEST_TIMEOUT_MS == sync.REQUEST_TIMEOUT_MS
    assert meshsim.REQUEST_TRIES == sync.REQUEST_TRIES


def catalog_body(n: int) -> dict[str, object]:
    return {"ops": [["put", f"r{n}", {"title": f"Judul {n}"}]]}


def test_change_during_handshake_reaches_the_peer() -> None:
    """Regression (the model's first find, shrunk): a node signs an entry while its sessions
    are still shaking hands. The Replicator marked the new head as told but sent nothing while
    the peer's Frontier was outstanding, and the session never announced it: the peer stayed
    behind until the next change."""
    mesh = Mesh(KEYS[:3], [(0, 1), (0, 2)])
    mesh.connect_all()
    entry = mesh.append(0, "catalog", "catalog", catalog_body(1))
    assert mesh.settle() is None
    for node in mesh.nodes:
        assert node.store.rows() == [(entry.author, "catalog", 1, entry.hash)], node.name


def test_change_between_ready_and_the_peers_frontier_is_sent() -> None:
    """The narrow window itself: our Frontier is out, the peer's is not in yet."""
    mesh = Mesh(KEYS[:2], [(0, 1)])
    mesh.connect_all()
    link = mesh.links[0]
    # Hellos both ways, then n1's Auth to n0: n0 is Ready and sent its Frontier; n1's is not in.
    for side in (0, 1):
        assert mesh.deliver(link, side)
    assert mesh.deliver(link, 0)
    conn = link.ends[0]
    assert conn is not None and conn.peer_key is not None and not conn.rep.ready
    entry = mesh.append(0, "catalog", "catalog", catalog_body(1))
    assert mesh.settle() is None
    assert mesh.nodes[1].store.rows() == [(entry.author, "catalog", 1, entry.hash)]


def test_released_claim_lets_another_session_fetch() -> None:
    """n0 fetches n1's log through n1 (the claim); that link is cut mid-request. n2 holds the
    same entries: its session must ask for them once the claim is released (node.py spawns a
    pump for every other connection), even though nothing new arrives from n2."""
    mesh = Mesh(KEYS[:3], [(0, 1), (0, 2), (1, 2)])
    for n in range(3):
        mesh.append(1, "catalog", "catalog", catalog_body(n))
    l01, l02, _ = mesh.links
    mesh.cut([l01, l02])
    assert mesh.settle(heal=False) is None  # n2 has n1's entries, n0 has none
    mesh.heal()
    mesh.connect(l01)
    mesh.connect(l02)
    for _ in range(100):
        fetcher = l01.ends[0]
        if fetcher is not None and fetcher.rep.inflight:
            break
        for link, side in mesh.busy():
            mesh.deliver(link, side)
        mesh.run_tasks()
    assert fetcher is not None and fetcher.rep.inflight, "n0 never asked n1"
    mesh.cut([l01])
    assert mesh.settle(heal=False) is None
    assert len(mesh.nodes[0].store.rows()) == 3


def test_crashed_node_catches_up_after_heartbeat() -> None:
    """A crash leaves the peer's end half-open (claims held); once its heartbeat notices, the
    link is dialled again and the restarted node gets what it missed."""
    mesh = Mesh(KEYS[:3], [(0, 1), (1, 2)])
    mesh.connect_all()
    assert mesh.settle() is None
    mesh.crash(1)
    assert mesh.half_open == 2
    for n in range(3):
        mesh.append(0, "catalog", "catalog", catalog_body(n))
    mesh.append(2, "profile", "profile", {"name": "Perpustakaan Kota"})
    assert mesh.settle() is None
    assert len({node.store.digest() for node in mesh.nodes}) == 1
    assert len(mesh.nodes[1].store.rows()) == 4
