"""What ``status`` and ``/api/status`` report: one function, so the two always agree."""

from __future__ import annotations

from typing import Any

from protocol import node_id

from .home import Home
from .store import Store, now_ms


def peer_rows(store: Store, connected: set[bytes]) -> list[dict[str, Any]]:
    rows = store.conn.execute(
        "SELECT key, name, address, added_at, last_seen, last_sync, last_error FROM peers "
        "ORDER BY name"
    )
    return [
        {
            "node_id": node_id(key),
            "name": name,
            "address": address,
            "connected": key in connected,
            "added_at": added_at,
            "last_seen": last_seen,
            "last_sync": last_sync,
            "last_error": last_error,
        }
        for key, name, address, added_at, last_seen, last_sync, last_error in rows
    ]


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
        "rejected": sum(by_reason.values()),
        "rejected_by_reason": by_reason,
        "duplicates_received": store.counter("entries_duplicate"),
        "forks": conn.execute("SELECT count(*) FROM forks").fetchone()[0],
        # This node's clock, so a peer (or `doctor`) can tell how far apart two clocks are.
        "time_ms": now_ms(),
    }
