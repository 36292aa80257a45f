"""What ``status`` and ``/api/status`` report: one function, so the two always agree."""

from __future__ import annotations

import sqlite3
from typing import Any

from protocol import node_id

from .home import Home
from .liveness import FORK_NOTICES, LIMIT_COUNTERS
from .store import Store, now_ms


def peer_rows(store: Store, connected: set[bytes]) -> list[dict[str, Any]]:
    """Peers, with liveness: ``last_seen`` is the latest of a direct contact and a heartbeat
    (maybe relayed); ``behind`` counts the entries the peer holds that we lack, ``behind_since``
    says since when (both as of the last contact, refreshed every heartbeat interval)."""
    rows = store.conn.execute(
        "SELECT p.key, p.name, p.address, p.added_at, p.last_seen, p.last_sync, p.last_error, "
        "l.beat_at, l.heard_at, COALESCE(l.behind, 0), l.behind_since "
        "FROM peers p LEFT JOIN liveness l ON l.key = p.key ORDER BY p.name"
    )
    return [
        {
            "node_id": node_id(key),
            "name": name,
            "address": address,
            "connected": key in connected,
            "added_at": added_at,
            "last_seen": _latest(last_seen, heard_at),
            "last_heartbeat": beat_at,
            "last_sync": last_sync,
            "last_error": last_error,
            "behind": behind,
            "behind_since": behind_since,
        }
        for (
            key,
            name,
            address,
            added_at,
            last_seen,
            last_sync,
            last_error,
            beat_at,
            heard_at,
            behind,
            behind_since,
        ) in rows
    ]


def _latest(*times: int | None) -> int | None:
    known = [t for t in times if t is not None]
    return max(known) if known else None


def members_seen(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every member whose signed heartbeat reached us, directly or passed on by others."""
    rows = conn.execute(
        "SELECT l.key, COALESCE(lib.name, p.name), l.beat_at, l.heard_at FROM liveness l "
        "LEFT JOIN libraries lib ON lib.author = l.key LEFT JOIN peers p ON p.key = l.key "
        "WHERE l.beat_at IS NOT NULL ORDER BY l.heard_at DESC"
    )
    return [
        {"node_id": node_id(key), "name": name, "last_heartbeat": beat_at, "heard_at": heard_at}
        for key, name, beat_at, heard_at in rows
    ]


# A node seen on the LAN is "on this network" this long after it was last heard: the daemon
# renews live sightings every minute, and an mDNS announcement nobody renews expires in two.
DISCOVERED_RECENT_MS = 10 * 60 * 1000


def discovered_rows(conn: sqlite3.Connection, now: int) -> list[dict[str, Any]]:
    """Nodes recently seen on the LAN (mDNS) that are not peers: shown, never trusted.

    Each row has the keys of a peer row, with ``peer`` false, so one JSON list can hold both.
    """
    rows = conn.execute(
        "SELECT key, name, address, version, last_seen FROM discovered "
        "WHERE last_seen >= ? AND key NOT IN (SELECT key FROM peers) ORDER BY name, key",
        (now - DISCOVERED_RECENT_MS,),
    )
    return [
        {
            "node_id": node_id(key),
            "name": name,
            "address": address,
            "peer": False,
            "connected": False,
            "added_at": None,
            "last_seen": last_seen,
            "last_sync": None,
            "last_error": None,
            "version": version,
        }
        for key, name, address, version, last_seen in rows
    ]


def discovered_address(conn: sqlite3.Connection, key: bytes) -> str | None:
    """Where ``key`` last announced itself on the LAN, if it did: a hint the dialler checks."""
    row = conn.execute("SELECT address FROM discovered WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def node_status(
    home: Home, store: Store, *, running: bool, connected: set[bytes]
) -> dict[str, Any]:
    config = home.config
    conn = store.conn
    records = conn.execute("SELECT count(*) FROM records").fetchone()[0]
    own = conn.execute("SELECT count(*) FROM records WHERE author = ?", (home.public_key,))
    by_reason = dict(
        conn.execute("SELECT reason, count(*) FROM rejections GROUP BY reason ORDER BY reason")
    )
    libraries = conn.execute("SELECT count(*) FROM libraries").fetchone()[0]
    return {
        "node_id": home.node_id,
        "name": config.name,
        "isil": config.isil,
        "listen": config.listen,
        "home": str(home.path),
        "daemon_running": running,
        "records": records,
        "own_records": own.fetchone()[0],
        "libraries": libraries,
        "entries": conn.execute("SELECT count(*) FROM entries").fetchone()[0],
        "logs": conn.execute("SELECT count(*) FROM heads").fetchone()[0],
        "peers": peer_rows(store, connected),
        "discovered": len(discovered_rows(conn, now_ms())),
        "rejected": sum(by_reason.values()),
        "rejected_by_reason": by_reason,
        "duplicates_received": store.counter("entries_duplicate"),
        "forks": conn.execute("SELECT count(*) FROM forks").fetchone()[0],
        "members_seen": members_seen(conn),
        "fork_notices_received": store.counter(FORK_NOTICES),
        "limits": {name: store.counter(name) for name in LIMIT_COUNTERS},
        # This node's clock, so a peer (or `doctor`) can tell how far apart two clocks are.
        "time_ms": now_ms(),
    }
