"""Publishing our own catalogue: a file in, the differences out as signed batches.

Re-importing a file publishes only what changed since it was last imported: records added or
changed become ``put`` operations, records of the same source no longer in the file become
``del``. Records that came from other files are left alone. Operations are cut into batches of
``BATCH_OPS`` under one signature each, so signing and verifying cost per batch, not per record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import CATALOG

from .importers import Imported, Rejected, read_catalog
from .originals import save as save_originals
from .records import encode_record, record_digest
from .store import Store

CATALOG_LOG = "catalog"
BATCH_OPS = 1000
BATCH_BYTES = 1024 * 1024  # keep an entry well under the protocol's 4 MiB limit


@dataclass
class ImportSummary:
    source: str
    read: int = 0
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    deleted: int = 0
    entries: int = 0  # batches of changes signed
    checkpoint: int | None = None  # seq of the checkpoint signed after them
    rejected: list[Rejected] = field(default_factory=list)
    # Set when the file could not be read to its end: records missing from it are then not
    # deleted, since a truncated file would otherwise wipe part of the published catalogue.
    deletions_skipped: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "read": self.read,
            "added": self.added,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "rejected": len(self.rejected),
            "entries": self.entries,
            "checkpoint": self.checkpoint,
            "deletions_skipped": self.deletions_skipped,
            "rejections": [{"position": r.position, "reason": r.reason} for r in self.rejected],
        }


def import_catalog(
    store: Store,
    key: Ed25519PrivateKey,
    path: Path,
    fmt: str = "auto",
    *,
    source: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Import ``path`` into our catalogue log; returns what was added, changed, deleted, rejected.

    Raises ``ImportFileError`` when the file cannot be read at all; then nothing is published.
    """
    source = source or path.name
    summary = ImportSummary(source)
    known = store.own_digests()
    seen: set[str] = set()
    originals: list[tuple[str, str]] = []

    def operations() -> Iterator[tuple[list[Any], int]]:
        for item in read_catalog(path, fmt):
            if progress is not None:
                progress(1)
            if isinstance(item, Rejected):
                summary.rejected.append(item)
                continue
            summary.read += 1
            record = item.record
            seen.add(record.rid)
            if record.original is not None:  # the whole source record, kept locally
                originals.append((record.rid, record.original))
                if len(originals) >= BATCH_OPS:
                    save_originals(store.conn, store.own_key, originals)
                    originals.clear()
            wire = record.to_wire()
            blob = encode_record(record.rid, wire)
            previous = known.get(record.rid)
            if previous is not None and previous[0] == record_digest(blob):
                summary.unchanged += 1
                continue
            if previous is None:
                summary.added += 1
            else:
                summary.changed += 1
            yield ["put", record.rid, wire], len(blob)
        if any(r.stopped for r in summary.rejected):
            summary.deletions_skipped = True
            return
        for rid, (_, rid_source) in known.items():
            if rid_source == source and rid not in seen:
                summary.deleted += 1
                yield ["del", rid], len(rid) + 8

    for batch in batches(operations()):
        store.append(key, CATALOG_LOG, CATALOG, {"ops": batch}, source=source)
        summary.entries += 1
    save_originals(store.conn, store.own_key, originals)
    if store.needs_checkpoint(CATALOG_LOG):
        # A signed statement of the whole catalogue after each import that changed it: new
        # nodes start from it (a snapshot) instead of replaying every edit ever made.
        summary.checkpoint = store.checkpoint(key, CATALOG_LOG).seq
    return summary


def batches(ops: Iterable[tuple[list[Any], int]]) -> Iterator[list[list[Any]]]:
    """Cut (operation, encoded size) pairs into batches of at most BATCH_OPS operations and
    about BATCH_BYTES."""
    batch: list[list[Any]] = []
    size = 0
    for op, op_size in ops:
        if batch and (len(batch) >= BATCH_OPS or size + op_size > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(op)
        size += op_size
    if batch:
        yield batch


# Re-exported so the CLI has one place to import from.
__all__ = ["CATALOG_LOG", "ImportSummary", "Imported", "Rejected", "import_catalog"]
