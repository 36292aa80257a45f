"""Resync after 1% of the records change: bytes on the wire and round trips, counted at the socket.

Runs on the two homes the replication scenario left in sync. With both daemons stopped, A
re-imports its catalogue with every hundredth title edited (``catalog import`` publishes only
what changed: new signed entries holding those records). B is pointed at A through the counting
proxy (bench/wire.py): each daemon moves to a new port and a proxy takes its old one, so whichever
side dials, every byte of the resync (handshake and frontier included) is counted, until B holds
A's new head.

"Changed bytes", the baseline: the changed records in peernode's canonical form (msgpack
``[id, record]``, the ``data`` column) summed. The same records, the same edit, are resynced
between two pouchdb-server instances through the same proxy (bench/pouch.py).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

from peernode.catalog import CATALOG_LOG, import_catalog
from peernode.home import Home

from .daemons import daemons, free_port, heads
from .pouch import edited_title
from .wire import CountingProxy, Traffic

EVERY = 100  # one record in a hundred changes


@dataclass
class Resync:
    changed: int
    changed_bytes: int  # the changed records' canonical bytes
    traffic: Traffic
    seconds: float


def changed_ids(data: Path) -> list[str]:
    with data.open(encoding="utf-8") as lines:
        return [json.loads(line)["id"] for n, line in enumerate(lines) if n % EVERY == 0]


def edit(data: Path, target: Path) -> None:
    """``data`` with every hundredth record's title edited as bench/pouch.py edits it."""
    with data.open(encoding="utf-8") as inp, target.open("w", encoding="utf-8") as out:
        for n, line in enumerate(inp):
            if n % EVERY == 0:
                record = json.loads(line)
                record["title"] = edited_title(record["title"])
                line = json.dumps(record, ensure_ascii=False) + "\n"
            out.write(line)


def _port(address: str) -> int:
    return int(address.rpartition(":")[2])


def catalog_seq(home: Path, author: bytes) -> int:
    return heads(home).get((author, CATALOG_LOG), 0)


def resync(a: Path, b: Path, data: Path, timeout: float = 300) -> Resync:
    """``a`` and ``b``: homes in sync, daemons stopped. Leaves them in sync again, stopped."""
    home_a = Home(a)
    author = home_a.public_key
    before = catalog_seq(a, author)
    edited = data.with_name(data.stem + "-edited.jsonl")
    edit(data, edited)
    store = home_a.open_store()
    summary = import_catalog(store, home_a.key, edited, "json")
    changed, changed_bytes = store.conn.execute(
        "SELECT count(*), sum(length(data)) FROM records WHERE author = ? AND seq > ?",
        (author, before),
    ).fetchone()
    assert changed == summary.changed, (changed, summary.changed)
    store.conn.close()
    after = catalog_seq(a, author)
    # Each daemon moves to a new port, and a counting proxy takes its old one (the address its
    # peer holds): whichever side dials, every byte crosses a proxy.
    homes = [Home(a), Home(b)]
    configs = [home.config for home in homes]
    for home, config in zip(homes, configs, strict=True):
        home.save_config(replace(config, listen=f"127.0.0.1:{free_port()}"))
    try:
        with (
            CountingProxy(_port(homes[0].config.listen), _port(configs[0].listen)) as to_a,
            CountingProxy(_port(homes[1].config.listen), _port(configs[1].listen)) as to_b,
            daemons(a, b),
        ):
            started = time.perf_counter()
            while catalog_seq(b, author) < after:
                if time.perf_counter() - started > timeout:
                    raise RuntimeError(f"the resync did not finish in {timeout} s")
                time.sleep(0.02)
            seconds = time.perf_counter() - started
            one, other = to_a.reset(), to_b.reset()
    finally:
        for home, config in zip(homes, configs, strict=True):
            home.save_config(config)
    traffic = Traffic(
        one.up + other.up,
        one.down + other.down,
        one.round_trips + other.round_trips,
        one.connections + other.connections,
    )
    return Resync(int(changed), int(changed_bytes), traffic, seconds)
