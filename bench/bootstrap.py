"""Starting a new node: from a snapshot (state at the author's checkpoint) vs replaying history.

A library publishes its catalogue, then re-imports it twice with a third of the titles edited
each time: its log holds every version. A new node loads that library's catalogue once from a
bundle (every signed entry, replayed) and once from a snapshot (the checkpointed state, checked
against the signature). Baseline in the same run: the raw SQLite + FTS5 insert of the same rows.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from peernode.bundles import export_bundle, import_bundle
from peernode.catalog import import_catalog
from peernode.home import init_home
from peernode.snapshots import export_snapshot, import_snapshot
from peernode.store import Store

ROUNDS = 3  # the first import and two rounds of edits


@dataclass
class Bootstrap:
    records: int
    entries_signed: int
    bundle_bytes: int
    snapshot_bytes: int
    replay_seconds: float
    snapshot_seconds: float


def edited(source: Path, target: Path, round_: int) -> None:
    """``source`` with every third record's title changed (a different third each round)."""
    with source.open(encoding="utf-8") as inp, target.open("w", encoding="utf-8") as out:
        for index, line in enumerate(inp):
            record = json.loads(line)
            if index % 3 == round_ % 3:
                record["title"] = f"{record['title']} (ed. {round_ + 1})"
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


def bootstrap(data: Path, work: Path) -> Bootstrap:
    root = work / "bootstrap"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    author = init_home(root / "a", name="Author", isil="", contact="", listen="127.0.0.1:1")
    store = author.open_store()
    current = root / "catalogue.jsonl"
    shutil.copy(data, current)
    signed = records = 0
    for round_ in range(ROUNDS):
        if round_:
            edited(data, current, round_)
        summary = import_catalog(store, author.key, current, "json", source="catalogue")
        signed += summary.entries + (summary.checkpoint is not None)
        records = summary.read
    bundle = export_bundle(store, root / "all.pnb", {})
    snap = export_snapshot(store, root / "all.pns")
    store.conn.close()

    def fresh(name: str) -> Store:
        return init_home(
            root / name, name=name, isil="", contact="", listen="127.0.0.1:1"
        ).open_store()

    def trusted(key: bytes) -> bool:
        return key == author.public_key

    replay_store = fresh("replay")
    started = time.perf_counter()
    import_bundle(replay_store, root / "all.pnb", trusted)
    replay = time.perf_counter() - started
    snap_store = fresh("snapshot")
    started = time.perf_counter()
    loaded = import_snapshot(snap_store, root / "all.pns", trusted)
    from_snapshot = time.perf_counter() - started
    assert loaded.records == records and not loaded.skipped, loaded
    return Bootstrap(records, signed, bundle.bytes, snap.bytes, replay, from_snapshot)


def report(result: Bootstrap, ceiling_rate: float) -> list[str]:
    ceiling = result.records / ceiling_rate
    return [
        "",
        "## Starting a new node: snapshot vs replaying history",
        "",
        f"A library imports {result.records:,} records, then re-imports them twice with a third",
        f"of the titles edited each time ({result.entries_signed} signed entries in its log).",
        "A new node loads that catalogue from a bundle (every entry, replayed) and from a",
        "snapshot (the state at the author's last checkpoint, checked against its signature;",
        "bench/bootstrap.py). Baseline: the raw SQLite + FTS5 insert of the same rows, above.",
        "",
        "| how | seconds | file bytes | vs replay | vs raw SQLite + FTS5 |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| replay every entry (bundle) | {result.replay_seconds:.2f} | "
        f"{result.bundle_bytes:,} | 100% | {result.replay_seconds / ceiling:.1f}x |",
        f"| snapshot | {result.snapshot_seconds:.2f} | {result.snapshot_bytes:,} | "
        f"{result.snapshot_seconds / result.replay_seconds:.0%} | "
        f"{result.snapshot_seconds / ceiling:.1f}x |",
        f"| raw SQLite + FTS5 insert | {ceiling:.2f} | | | 1.0x |",
        "",
        "The snapshot's cost does not grow with the history: it is the state once, plus one",
        "signature check and one digest over the records.",
        "",
    ]
