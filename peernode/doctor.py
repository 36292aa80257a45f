"""`peernode doctor`: check a node's set-up and say, in one plain sentence each, what to fix.

Every check is robust: it never raises, and a check that cannot run says why. The network checks
(daemon, peers, clocks) run concurrently with short timeouts, so unreachable peers cost seconds,
not minutes. Nothing here writes to the node: the database is opened read-only.
"""

from __future__ import annotations

import asyncio
import errno
import shutil
import socket
import sqlite3
import stat
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from protocol import DEFAULT_LIMITS

from .db import SCHEMA_VERSION
from .home import (
    CONFIG_FILE,
    DB_FILE,
    KEY_FILE,
    Home,
    HomeError,
    key_file_problem,
    parse_listen,
)

CONNECT_TIMEOUT = 3.0  # seconds per peer for the TCP connect, and again for /api/status
MAX_SKEW_MS = 2 * 60 * 1000  # clocks further apart than this are reported
MIB = 1024 * 1024
DISK_WARN_BYTES = 1024 * MIB
DISK_FAIL_BYTES = 200 * MIB


@dataclass(frozen=True)
class Finding:
    check: str
    ok: bool
    message: str  # one plain sentence; when not ok, it says what to do


def run_checks(home: Home) -> list[Finding]:
    """Run every check, in the order they are shown. For callers without an event loop."""
    return asyncio.run(run_checks_async(home))


async def run_checks_async(home: Home) -> list[Finding]:
    """Run every check; the network ones concurrently."""
    port, (peers, clock) = await asyncio.gather(
        _guarded_async("port", lambda: check_port(home)),
        _guarded_pair(("peers", "clock"), lambda: check_peers_and_clock(home)),
    )
    return [
        _guarded("key", lambda: check_key(home)),
        port,
        peers,
        clock,
        _guarded("disk", lambda: check_disk(home)),
        _guarded("database", lambda: check_database(home)),
        _guarded("discovery", lambda: check_discovery(home)),
    ]


def format_findings(findings: Sequence[Finding]) -> str:
    """One line per finding ("ok" or "PROBLEM", then the sentence), then a summary line."""
    lines = [f"{'ok' if f.ok else 'PROBLEM':<8} {f.message}" for f in findings]
    problems = sum(1 for f in findings if not f.ok)
    if problems == 0:
        lines.append(f"All {len(findings)} checks passed.")
    else:
        fix = "fix it" if problems == 1 else "fix them in the order shown"
        lines.append(
            f"{_plural(problems, 'problem')} found: {fix}, then run `peernode doctor` again."
        )
    return "\n".join(lines)


# --- 1. the key file ---------------------------------------------------------------------------


def check_key(home: Home) -> Finding:
    path = home.path / KEY_FILE
    if not path.exists():
        return Finding(
            "key",
            False,
            f"There is no key file at {path}, so this folder holds no peernode node: run "
            f"`peernode --home {home.path} init --name 'Your Library'`, or pass the right --home.",
        )
    mode = stat.S_IMODE(path.stat().st_mode)
    problem = key_file_problem(path)
    if problem is not None:
        return Finding("key", False, problem)
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except PermissionError:
        return Finding(
            "key",
            False,
            f"The key file {path} cannot be read by this user: run `peernode doctor` as the "
            "user that runs the peernode daemon.",
        )
    except ValueError:
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        return Finding(
            "key",
            False,
            f"The key file {path} is damaged or is not a peernode key: restore it from your "
            "backup, because without it this library cannot sign its changes.",
        )
    return Finding("key", True, f"The key file {path} is private to its owner (mode {mode:03o}).")


# --- 2. the listen port / the running daemon ---------------------------------------------------


async def check_port(home: Home) -> Finding:
    settings = home.path / CONFIG_FILE
    try:
        listen = home.config.listen
        host, port = parse_listen(listen)
    except HomeError as exc:
        return Finding(
            "port", False, f"The listen address cannot be checked because {_clause(str(exc))}."
        )
    if home.daemon_running():
        address = home.daemon_address() or listen
        try:
            async with _session() as http:
                status, _ = await _get_status(http, address)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return Finding(
                "port",
                False,
                f"The daemon is running but does not answer at {_url(address)} "
                f"({_reason(exc)}): stop it and start it again with "
                f"`peernode --home {home.path} run`.",
            )
        own = _own_node_id(home)
        if own is not None and status.get("node_id") != own:
            return Finding(
                "port",
                False,
                f"Another program answers at {_url(address)} instead of this library's daemon: "
                f"stop that program, or move this library with the `listen` setting in {settings}.",
            )
        return Finding("port", True, f"The daemon is running and answers at {_url(address)}.")
    problem = _bind_problem(host, port)
    if problem is None:
        return Finding(
            "port",
            True,
            f"The daemon is not running, and its address {listen} is free, so "
            f"`peernode --home {home.path} run` can start it there.",
        )
    if problem.errno == errno.EADDRINUSE:
        spare = _spare_port(host, port)
        other = f"{_join_host(host)}:{spare}" if spare else f"{_join_host(host)}:OTHER_PORT"
        return Finding(
            "port",
            False,
            f"Port {port} on {host} is already used by another program (perhaps another "
            "peernode), so the daemon cannot start there: stop that program, or choose a free "
            f"port with `peernode --home {home.path} run --listen {other}` (or the `listen` "
            f"setting in {settings}).",
        )
    if problem.errno == errno.EACCES:
        return Finding(
            "port",
            False,
            f"Only the administrator may listen on port {port}, so the daemon cannot start on "
            f"{listen}: choose a port above 1023 with `--listen` or the `listen` setting in "
            f"{settings}.",
        )
    if problem.errno == errno.EADDRNOTAVAIL or isinstance(problem, socket.gaierror):
        return Finding(
            "port",
            False,
            f"{host} is not an address of this computer, so the daemon cannot listen on "
            f"{listen}: set `listen` in {settings} to one of its addresses, for example "
            f"0.0.0.0:{port} (every network) or 127.0.0.1:{port} (this computer only).",
        )
    return Finding(
        "port",
        False,
        f"The daemon cannot listen on {listen} ({_reason(problem)}): choose another address "
        f"with `--listen` or the `listen` setting in {settings}.",
    )


def _bind_problem(host: str, port: int) -> OSError | None:
    """Try to bind every address ``host`` resolves to, as the daemon would; None if all bind."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        for family, kind, proto, _, sockaddr in infos:
            with socket.socket(family, kind, proto) as sock:
                # aiohttp sets SO_REUSEADDR too, so a port a stopped daemon left in TIME_WAIT
                # is free for it and must not be reported as taken.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(sockaddr)
    except OSError as exc:
        return exc
    return None


def _spare_port(host: str, port: int) -> int | None:
    """A nearby free port to suggest, so the librarian can copy the command as it is."""
    for candidate in range(port + 1, min(port + 20, 65535) + 1):
        if _bind_problem(host, candidate) is None:
            return candidate
    return None


def _own_node_id(home: Home) -> str | None:
    try:
        return home.node_id
    except (HomeError, OSError, ValueError):
        return None  # reported by the key check; here we only compare when we can


# --- 3 and 4. peers reachable, and their clocks -----------------------------------------------


@dataclass(frozen=True)
class _Peer:
    name: str
    address: str

    @property
    def label(self) -> str:
        return f"{self.name} at {self.address}"


async def check_peers_and_clock(home: Home) -> tuple[Finding, Finding]:
    try:
        peers = _peers_with_address(home)
    except sqlite3.Error as exc:
        reason = f"the database cannot be read ({exc}); see the database check"
        return (
            Finding("peers", False, f"The peers could not be checked because {reason}."),
            Finding("clock", False, f"The clock could not be compared because {reason}."),
        )
    if not peers:
        return (
            Finding(
                "peers",
                True,
                "No peer has an address to dial, so there is no connection to test "
                "(peers that dial this library are not tested).",
            ),
            Finding("clock", True, "There is no peer to compare this computer's clock with."),
        )
    errors = await asyncio.gather(*(_connect_problem(p.address) for p in peers))
    unreachable = [(p, e) for p, e in zip(peers, errors, strict=True) if e is not None]
    reachable = [p for p, e in zip(peers, errors, strict=True) if e is None]
    if unreachable:
        names = "; ".join(f"{p.label} ({e})" for p, e in unreachable)
        one = len(unreachable) == 1
        who = "the only peer" if len(peers) == 1 else f"{len(unreachable)} of {len(peers)} peers"
        peers_finding = Finding(
            "peers",
            False,
            f"Cannot reach {who} with an address — {names} — so no changes are exchanged with "
            f"{'it' if one else 'them'}: check this computer's network connection, and ask "
            f"{'that library whether its' if one else 'those libraries whether their'} peernode "
            "daemon is running and reachable.",
        )
    else:
        who = "The only peer" if len(peers) == 1 else f"All {len(peers)} peers"
        peers_finding = Finding("peers", True, f"{who} with an address can be reached.")
    return peers_finding, await _clock_finding(reachable)


def _peers_with_address(home: Home) -> list[_Peer]:
    with _read_only(home.path / DB_FILE) as conn:
        rows = conn.execute(
            "SELECT name, address FROM peers WHERE address IS NOT NULL AND address != '' "
            "ORDER BY name"
        ).fetchall()
    return [_Peer(str(name), str(address)) for name, address in rows]


async def _connect_problem(address: str) -> str | None:
    """Why a TCP connection to ``address`` fails, in a few words; None if it connects."""
    try:
        host, port = parse_listen(address)
    except HomeError:
        return "the address is not HOST:PORT"
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            _, writer = await asyncio.open_connection(_dial_host(host), port)
            writer.close()
            await writer.wait_closed()
    except (OSError, TimeoutError) as exc:
        return _reason(exc)
    return None


async def _clock_finding(reachable: list[_Peer]) -> Finding:
    if not reachable:
        return Finding(
            "clock",
            False,
            "The clock could not be compared with any peer, because none could be reached: fix "
            "the peer connections, then run `peernode doctor` again.",
        )
    async with _session() as http:
        skews = await asyncio.gather(*(_skew_ms(http, p.address) for p in reachable))
    compared = [(p, s) for p, s in zip(reachable, skews, strict=True) if s is not None]
    if not compared:
        return Finding(
            "clock",
            False,
            "The clock could not be compared with any peer, because none answered with its "
            "time: ask those libraries to update peernode, then run `peernode doctor` again.",
        )
    apart = [(p, s) for p, s in compared if abs(s) > MAX_SKEW_MS]
    if not apart:
        return Finding(
            "clock",
            True,
            f"This computer's clock agrees with {_plural(len(compared), 'peer')} "
            "to within 2 minutes.",
        )
    parts = [
        f"{_duration(abs(s) / 1000)} {'behind' if s > 0 else 'ahead of'} that of {p.label}"
        for p, s in apart
    ]
    # When several peers agree with each other and all differ from us, ours is the odd one out.
    same_way = len({s > 0 for _, s in apart}) == 1
    who = (
        "probably wrong: it is"
        if len(apart) == len(compared) >= 2 and same_way
        else "far from its peers: it is"
    )
    limit = _duration(DEFAULT_LIMITS.max_future_skew_ms / 1000)
    return Finding(
        "clock",
        False,
        f"This computer's clock is {who} {_join(parts)}, and peers refuse entries dated more "
        f"than {limit} ahead of their own clock, so changes can be refused: set the correct "
        "time on the computer that is wrong, ideally with automatic time (NTP).",
    )


async def _skew_ms(http: aiohttp.ClientSession, address: str) -> float | None:
    """How far the peer's clock is ahead of ours (negative: behind), beyond the round trip.

    The peer read its clock somewhere within the round trip; assuming the middle, the error is
    at most half the round trip, which is taken off so a slow link is not blamed on a clock.
    """
    try:
        status, (sent, received) = await _get_status(http, address)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
    their = status.get("time_ms")
    if not isinstance(their, int | float) or isinstance(their, bool):
        return None
    half_trip = (received - sent) / 2
    skew = float(their) - (sent + half_trip)
    if abs(skew) <= half_trip:
        return 0.0
    return skew - half_trip if skew > 0 else skew + half_trip


# --- 5. disk space -----------------------------------------------------------------------------


def check_disk(home: Home) -> Finding:
    where = home.path
    while not where.exists() and where != where.parent:
        where = where.parent  # a missing home is the key check's news; measure its disk anyway
    return disk_finding(home.path, shutil.disk_usage(where).free)


def disk_finding(home_path: Path, free: int) -> Finding:
    """The disk verdict for ``free`` bytes, apart from measuring, so the thresholds are testable.

    Under 1 GiB is a warning (still ok: nothing fails yet); under 200 MiB is a problem.
    """
    amount = _size(free)
    if free < DISK_FAIL_BYTES:
        return Finding(
            "disk",
            False,
            f"Only {amount} is free on the disk that holds {home_path}, too little to store "
            "changes safely: delete files you do not need, or move the node to a bigger disk.",
        )
    if free < DISK_WARN_BYTES:
        return Finding(
            "disk",
            True,
            f"Disk space is getting low: only {amount} is free on the disk that holds "
            f"{home_path}, so delete files you do not need soon.",
        )
    return Finding("disk", True, f"There is {amount} free on the disk that holds {home_path}.")


# --- 6. the database ---------------------------------------------------------------------------


def check_database(home: Home) -> Finding:
    path = home.path / DB_FILE
    if not path.exists():
        return Finding(
            "database",
            False,
            f"The database {path} is missing: restore it from your backup before starting the "
            "daemon, because an empty one would make this library sign its changes from the "
            "start again.",
        )
    try:
        with _read_only(path) as conn:
            problems = [str(row[0]) for row in conn.execute("PRAGMA quick_check")]
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            tables = {str(row[0]) for row in conn.execute("SELECT name FROM sqlite_master")}
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return Finding(
                "database",
                False,
                f"The database {path} is busy, so it could not be checked: run `peernode "
                "doctor` again in a minute.",
            )
        return _damaged(path, str(exc))
    except sqlite3.DatabaseError as exc:
        return _damaged(path, str(exc))
    if problems != ["ok"]:
        return _damaged(path, problems[0] if problems else "no answer from the integrity check")
    if "entries" not in tables:
        return _damaged(path, "it has no peernode tables")
    if version > SCHEMA_VERSION:
        return Finding(
            "database",
            False,
            f"The database {path} was written by a newer peernode (schema {version}; this one "
            f"knows up to {SCHEMA_VERSION}): upgrade peernode on this computer.",
        )
    if version < SCHEMA_VERSION:
        return Finding(
            "database",
            True,
            f"The database {path} is intact; its schema {version} will be brought up to "
            f"{SCHEMA_VERSION} automatically the next time peernode opens it.",
        )
    return Finding("database", True, f"The database {path} is intact (schema {version}).")


def _damaged(path: Path, detail: str) -> Finding:
    return Finding(
        "database",
        False,
        f"The database {path} is damaged ({detail}): stop the daemon, move the file aside and "
        "restore a backup; this library's peers can send their records again.",
    )


def _read_only(path: Path) -> closing[sqlite3.Connection]:
    """A read-only connection, closed on leaving ``with``: no writes and no migrations, so a
    damaged file is left exactly as it was found."""
    return closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10))


# --- 7. LAN discovery --------------------------------------------------------------------------


MDNS_GROUP, MDNS_PORT = "224.0.0.251", 5353


def check_discovery(home: Home) -> Finding:
    from .discovery import plan  # zeroconf is imported only when this check runs
    from .status import DISCOVERED_RECENT_MS

    try:
        config = home.config
    except HomeError as exc:
        return Finding(
            "discovery", False, f"Discovery cannot be checked because {_clause(str(exc))}."
        )
    decided = plan(config, home.daemon_address() or config.listen)
    if isinstance(decided, str):
        return Finding(
            "discovery",
            True,
            f"{decided[0].upper()}{decided[1:]}; peers are added with `peernode peer invite` "
            "and `peer join`.",
        )
    interface = decided.interfaces[0] if decided.interfaces else "0.0.0.0"
    problem = _mdns_problem(interface)
    if problem is not None:
        return Finding(
            "discovery",
            False,
            f"The mDNS port (UDP {MDNS_PORT}) cannot be opened on {interface} ({_reason(problem)})"
            ", so this node cannot find or be found by libraries on the local network: stop the "
            'program that holds it without sharing, or set `discovery = "no"` in '
            f"{home.path / CONFIG_FILE}. Sync with peers works either way.",
        )
    if decided.announce is None:
        how = f"it only looks for others, because {decided.note}"
    else:
        host, port = decided.announce
        how = f"it announces this node as {_join_host(host)}:{port}"
    if not home.daemon_running():
        return Finding(
            "discovery",
            True,
            f"Discovery is on and the mDNS port can be opened; once the daemon runs, {how}.",
        )
    since = int(time.time() * 1000) - DISCOVERED_RECENT_MS
    try:
        with _read_only(home.path / DB_FILE) as conn:
            seen, strangers = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE key NOT IN (SELECT key FROM peers)) "
                "FROM discovered WHERE last_seen >= ?",
                (since,),
            ).fetchone()
    except sqlite3.DatabaseError:
        seen = strangers = 0  # the database check says what is wrong with the file
    minutes = DISCOVERED_RECENT_MS // 60_000
    return Finding(
        "discovery",
        True,
        f"Discovery is on: {how}, and it saw {_plural(seen, 'other node')} on this network in "
        f"the last {minutes} minutes ({strangers} not peers, shown by `peernode peer list`).",
    )


def _mdns_problem(interface: str) -> OSError | None:
    """Open the mDNS socket as zeroconf does (shared port, group joined); None if it opens."""
    try:
        family = socket.AF_INET6 if ":" in interface else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if hasattr(socket, "SO_REUSEPORT"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(("::" if family == socket.AF_INET6 else "", MDNS_PORT))
            if family == socket.AF_INET:
                membership = socket.inet_aton(MDNS_GROUP) + socket.inet_aton(interface)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    except OSError as exc:
        return exc
    return None


# --- helpers -----------------------------------------------------------------------------------


def _guarded(check: str, fn: Callable[[], Finding]) -> Finding:
    try:
        return fn()
    except Exception as exc:  # a doctor that crashes helps nobody: say the check failed
        return _could_not_run(check, exc)


async def _guarded_async(check: str, fn: Callable[[], Awaitable[Finding]]) -> Finding:
    try:
        return await fn()
    except Exception as exc:
        return _could_not_run(check, exc)


async def _guarded_pair(
    checks: tuple[str, str], fn: Callable[[], Awaitable[tuple[Finding, Finding]]]
) -> tuple[Finding, Finding]:
    try:
        return await fn()
    except Exception as exc:
        return _could_not_run(checks[0], exc), _could_not_run(checks[1], exc)


def _could_not_run(check: str, exc: BaseException) -> Finding:
    return Finding(
        check,
        False,
        f"The {check} check could not run ({type(exc).__name__}: {exc}): please report this "
        "message to whoever looks after peernode for your network.",
    )


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CONNECT_TIMEOUT))


async def _get_status(
    http: aiohttp.ClientSession, address: str
) -> tuple[dict[str, Any], tuple[float, float]]:
    """GET /api/status; the JSON and the wall-clock ms just before sending and after reading."""
    sent = time.time() * 1000
    async with http.get(_url(address, "/api/status")) as response:
        response.raise_for_status()
        data = await response.json(content_type=None)
    received = time.time() * 1000
    if not isinstance(data, dict):
        raise ValueError("the answer is not a JSON object")
    return data, (sent, received)


def _dial_host(host: str) -> str:
    """Where to connect for a listen host: a wildcard listen address is reached via loopback."""
    return {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)


def _join_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _url(address: str, path: str = "/") -> str:
    try:
        host, port = parse_listen(address)
    except HomeError:
        return f"http://{address}{path}"
    return f"http://{_join_host(_dial_host(host))}:{port}{path}"


def _reason(exc: BaseException) -> str:
    """A few words on why a connection failed, for a librarian rather than a programmer."""
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return f"no answer within {CONNECT_TIMEOUT:.0f} s"
    if isinstance(exc, socket.gaierror):
        return "the computer name is not known"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _reason(exc.os_error)
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"it answered with HTTP status {exc.status}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def _clause(text: str) -> str:
    """A HomeError message as the tail of a sentence: no final full stop."""
    return text.rstrip().rstrip(".")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _join(parts: Sequence[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 90:
        return _plural(minutes, "minute")
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return _plural(hours, "hour") + (f" {_plural(minutes, 'minute')}" if minutes else "")
    return _plural(round(hours / 24), "day")


def _size(count: int) -> str:
    if count >= 10 * 1024 * MIB:
        return f"{count / (1024 * MIB):.0f} GB"
    if count >= 1024 * MIB:
        return f"{count / (1024 * MIB):.1f} GB"
    return f"{count / MIB:.0f} MB"
