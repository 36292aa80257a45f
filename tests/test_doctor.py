"""`peernode doctor`: each broken set-up built for real, and the sentence a librarian reads."""

from __future__ import annotations

import os
import select
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from peernode.db import SCHEMA_VERSION
from peernode.doctor import (
    CONNECT_TIMEOUT,
    Finding,
    disk_finding,
    format_findings,
    run_checks,
    run_checks_async,
)
from peernode.home import Home
from peernode.peers import add_peer
from peernode.store import now_ms

from .nodes import NodeProc, free_port, peer

MakeNode = Callable[[str], NodeProc]
CHECKS = ["key", "port", "peers", "clock", "disk", "database", "discovery"]
MINUTE_MS = 60_000


def by_check(findings: list[Finding]) -> dict[str, Finding]:
    assert [f.check for f in findings] == CHECKS
    return {f.check: f for f in findings}


def add_peers(home: Home, peers: list[tuple[str, str]]) -> None:
    db = home.open_db()
    try:
        for name, address in peers:
            add_peer(db.conn, os.urandom(32), name, address)
    finally:
        db.conn.close()


@pytest.fixture
def home(make_node: MakeNode) -> Home:
    """An initialised node whose daemon is not running."""
    return Home(make_node("Perpustakaan Kota Ambon").home)


def test_a_healthy_node_passes_every_check(make_node: MakeNode) -> None:
    a, b = make_node("Perpustakaan A"), make_node("Perpustakaan B")
    a.start()
    peer(a, b)
    b.start()
    try:
        findings = by_check(run_checks(Home(b.home)))
    finally:
        # Joiner first: an inviter stopped while its joiner is connected takes 15 s to exit.
        b.stop()
        a.stop()
    assert all(f.ok for f in findings.values()), format_findings(list(findings.values()))
    assert findings["port"].message == (
        f"The daemon is running and answers at http://{b.address}/."
    )
    assert findings["peers"].message == "The only peer with an address can be reached."
    assert "agrees with 1 peer" in findings["clock"].message
    assert f"(schema {SCHEMA_VERSION})" in findings["database"].message
    assert "only this computer can reach" in findings["discovery"].message  # on 127.0.0.1
    for finding in findings.values():  # plain sentences, as printed to a librarian
        assert finding.message[0].isupper() and finding.message.endswith(".")
        assert "\n" not in finding.message and "Traceback" not in finding.message
    assert format_findings(list(findings.values())).endswith("All 7 checks passed.")


def test_a_taken_port_is_explained_with_a_free_one_to_use(home: Home) -> None:
    port = int(home.config.listen.rpartition(":")[2])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        finding = by_check(run_checks(home))["port"]
    assert not finding.ok
    assert finding.message.startswith(f"Port {port} on 127.0.0.1 is already used by another")
    assert f"`peernode --home {home.path} run --listen 127.0.0.1:" in finding.message
    assert str(home.path / "peernode.toml") in finding.message
    # The suggested port is really free: the librarian can copy the command as it is.
    suggested = int(finding.message.split("--listen 127.0.0.1:")[1].split("`")[0])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", suggested))
    released = by_check(run_checks(home))["port"]
    assert released.ok and "is free" in released.message and "not running" in released.message


def test_a_world_readable_key_says_chmod_600(home: Home) -> None:
    key = home.path / "node.key"
    key.chmod(0o644)
    finding = by_check(run_checks(home))["key"]
    assert not finding.ok
    assert "(mode 644)" in finding.message
    assert finding.message.endswith(f"run `chmod 600 {key}`.")
    key.chmod(0o600)
    assert by_check(run_checks(home))["key"].ok


def test_a_daemon_that_hangs_is_told_to_restart(make_node: MakeNode) -> None:
    node = make_node("Perpustakaan A").start()
    assert node.proc is not None
    node.proc.send_signal(signal.SIGSTOP)  # running (holds its lock) but answers nothing
    try:
        finding = by_check(run_checks(Home(node.home)))["port"]
    finally:
        node.proc.send_signal(signal.SIGCONT)
    assert not finding.ok
    assert finding.message == (
        f"The daemon is running but does not answer at http://{node.address}/ (no answer "
        f"within 3 s): stop it and start it again with `peernode --home {node.home} run`."
    )


@pytest.mark.parametrize(
    ("offset_ms", "expected"),
    [
        (10 * MINUTE_MS, "This computer's clock is far from its peers: it is 10 minutes behind"),
        (-3 * MINUTE_MS, "This computer's clock is far from its peers: it is 3 minutes ahead of"),
        (30_000, None),  # 30 s apart: within the 2 minutes allowed
    ],
)
async def test_a_peer_clock_far_off_is_reported_with_the_amount(
    home: Home, aiohttp_server: AiohttpServer, offset_ms: int, expected: str | None
) -> None:
    async def status(request: web.Request) -> web.Response:
        return web.json_response({"node_id": "pn-fake", "time_ms": now_ms() + offset_ms})

    app = web.Application()
    app.router.add_get("/api/status", status)
    server = await aiohttp_server(app)
    address = f"127.0.0.1:{server.port}"
    add_peers(home, [("Perpustakaan Jam Salah", address)])
    findings = by_check(await run_checks_async(home))
    assert findings["peers"].ok
    clock = findings["clock"]
    if expected is None:
        assert clock.ok and "agrees with 1 peer" in clock.message
        return
    assert not clock.ok
    assert clock.message.startswith(f"{expected} that of Perpustakaan Jam Salah at {address}")
    assert "refuse entries dated more than 10 minutes ahead" in clock.message
    assert clock.message.endswith("ideally with automatic time (NTP).")


async def test_when_every_peer_agrees_our_clock_is_probably_wrong(
    home: Home, aiohttp_server: AiohttpServer
) -> None:
    async def status(request: web.Request) -> web.Response:
        return web.json_response({"time_ms": now_ms() + 3 * 60 * MINUTE_MS})

    addresses = []
    for _ in range(2):
        app = web.Application()
        app.router.add_get("/api/status", status)
        addresses.append(f"127.0.0.1:{(await aiohttp_server(app)).port}")
    add_peers(home, [("Perpustakaan B", addresses[0]), ("Perpustakaan C", addresses[1])])
    clock = by_check(await run_checks_async(home))["clock"]
    assert not clock.ok
    assert clock.message.startswith(
        "This computer's clock is probably wrong: it is 3 hours behind that of Perpustakaan B "
        f"at {addresses[0]} and 3 hours behind that of Perpustakaan C at {addresses[1]}"
    )


@pytest.fixture
def silent_address() -> Iterator[str]:
    """A loopback address that never answers a connect: a listening socket whose accept queue
    is full, so the kernel drops further SYNs, as a firewall or a switched-off router would."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    fillers: list[socket.socket] = []
    try:
        for _ in range(64):
            filler = socket.socket()
            filler.setblocking(False)
            fillers.append(filler)
            filler.connect_ex(server.getsockname())
            _, writable, _ = select.select([], [filler], [], 0.2)
            if not writable:  # this connect hangs: the queue is full
                yield f"127.0.0.1:{server.getsockname()[1]}"
                return
        pytest.skip("this system accepts every loopback connection; cannot fake a silent peer")
    finally:
        for filler in fillers:
            filler.close()
        server.close()


def test_unreachable_peers_are_named_and_tried_concurrently(
    home: Home, silent_address: str
) -> None:
    closed = f"127.0.0.1:{free_port()}"  # nothing listens: connection refused
    silent = [(f"Perpustakaan Sunyi {n}", silent_address) for n in range(9)]
    add_peers(home, [("Perpustakaan Tutup", closed), *silent])
    started = time.monotonic()
    findings = by_check(run_checks(home))
    elapsed = time.monotonic() - started
    # Nine silent peers at 3 s each would take 27 s one after another.
    assert elapsed < CONNECT_TIMEOUT + 3, f"took {elapsed:.1f} s"
    peers = findings["peers"]
    assert not peers.ok
    assert peers.message.startswith("Cannot reach 10 of 10 peers with an address — ")
    assert f"Perpustakaan Tutup at {closed} (connection refused)" in peers.message
    for name, address in silent:
        assert f"{name} at {address} (no answer within 3 s)" in peers.message
    assert "ask those libraries whether their peernode daemon is running" in peers.message
    clock = findings["clock"]
    assert not clock.ok and "none could be reached" in clock.message


def test_a_damaged_database_is_reported_and_left_as_found(home: Home) -> None:
    db = home.path / "node.db"
    damaged = b"X" * 100 + db.read_bytes()[100:]
    db.write_bytes(damaged)
    findings = by_check(run_checks(home))
    assert not findings["database"].ok
    assert findings["database"].message.startswith(f"The database {db} is damaged")
    assert "restore a backup" in findings["database"].message
    assert not findings["peers"].ok and "could not be checked" in findings["peers"].message
    assert db.read_bytes() == damaged


def test_a_folder_without_a_node_gets_findings_not_a_crash(tmp_path: Path) -> None:
    home = Home(tmp_path / "kosong")
    findings = by_check(run_checks(home))
    assert not findings["key"].ok and "init --name" in findings["key"].message
    assert not findings["database"].ok and "missing" in findings["database"].message
    assert findings["disk"].ok and findings["discovery"].ok


def test_disk_thresholds(tmp_path: Path) -> None:
    mib = 1024 * 1024
    low = disk_finding(tmp_path, 150 * mib)
    assert not low.ok and low.message.startswith("Only 150 MB is free on the disk that holds")
    warn = disk_finding(tmp_path, 600 * mib)
    assert warn.ok and warn.message.startswith("Disk space is getting low: only 600 MB")
    plenty = disk_finding(tmp_path, 20 * 1024 * mib)
    assert plenty.ok and plenty.message == f"There is 20 GB free on the disk that holds {tmp_path}."


def test_format_findings_marks_problems_and_counts_them() -> None:
    text = format_findings(
        [Finding("key", True, "Fine."), Finding("port", False, "Port taken: use another.")]
    )
    assert text.splitlines() == [
        "ok       Fine.",
        "PROBLEM  Port taken: use another.",
        "1 problem found: fix it, then run `peernode doctor` again.",
    ]
