"""Snapshots on disk: start a new node from each catalogue's last checkpoint, not its history.

``export_snapshot`` writes, per catalogue log, the records as they stood at the author's latest
checkpoint, the signed checkpoint itself and the entries after it; other logs (profiles,
membership) go whole, as entries. ``import_snapshot`` on a node that does not hold a log yet checks
the checkpoint's signature, rebuilds the state digest from the records it reads and stores them in
the same transaction only when both agree — whoever carried the file cannot alter it. A gzip layer
wraps the byte stream of ``protocol.snapshots``, as bundles do.
"""

from __future__ import annotations

import gzip
import heapq
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol import (
    CATALOG,
    CHECKPOINT,
    Entry,
    Head,
    LogKey,
    RemoteProtocolError,
    decode_entry,
    short_id,
)
from protocol.snapshots import (
    EntryValue,
    LogSection,
    RecordValue,
    SnapshotHeader,
    SnapshotReader,
    StateHasher,
    check_record,
    encode_snapshot,
)

from .db import transaction
from .files import replacing
from .recordrows import record_row_values
from .records import encode_record, record_digest
from .store import Store, now_ms

READ_CHUNK = 1024 * 1024
ROW_BATCH = 1000  # records per executemany while loading a snapshot
APPLY_BATCH = 64  # entries per store transaction after the state


class SnapshotError(Exception):
    """The file cannot be used at all; the message names it and says why."""


@dataclass
class SnapshotSummary:
    logs: int = 0
    records: int = 0  # records carried as state
    entries: int = 0  # signed entries carried (or applied, on import)
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)  # logs left out, and why
    complete: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "logs": self.logs,
            "records": self.records,
            "entries": self.entries,
            "bytes": self.bytes,
            "skipped": self.skipped,
            "complete": self.complete,
        }


# --- export --------------------------------------------------------------------------------------


@dataclass
class _Plan:
    section: LogSection
    records: Callable[[], Iterator[tuple[str, bytes]]]  # (rid, blob) in id order
    first: int  # entries first..last follow the records
    last: int


def export_snapshot(store: Store, path: Path) -> SnapshotSummary:
    """Write every log we hold to ``path``: catalogues as state at their latest checkpoint."""
    summary = SnapshotSummary()
    plans: list[_Plan] = []
    bases = store.bases()
    for key, head in sorted(store.heads().items()):
        plan = _plan(store, key, head, bases.get(key, 1), summary.skipped)
        if plan is not None:
            plans.append(plan)
            summary.records += plan.section.records
            summary.entries += plan.section.entries

    def sections() -> Iterator[tuple[LogSection, Iterator[bytes], Iterator[bytes]]]:
        for plan in plans:
            blobs = (blob for _, blob in plan.records())
            yield plan.section, blobs, _raws(store, plan.section.key, plan.first, plan.last)

    header = SnapshotHeader(store.own_key, now_ms(), len(plans))
    try:  # whole or nothing, like a bundle
        with replacing(path) as tmp, gzip.open(tmp, "wb") as out:
            for chunk in encode_snapshot(header, sections()):
                out.write(chunk)
    except OSError as exc:
        raise SnapshotError(f"cannot write {path}: {exc.strerror or exc}") from None
    summary.logs = len(plans)
    summary.bytes = path.stat().st_size
    return summary


def _plan(store: Store, key: LogKey, head: Head, base: int, skipped: list[str]) -> _Plan | None:
    where = f"{short_id(key.author)}/{key.log}"
    row = store.conn.execute(
        "SELECT seq, raw FROM entries WHERE author = ? AND log = ? AND kind = ? "
        "ORDER BY seq DESC LIMIT 1",
        (key.author, key.log, CHECKPOINT),
    ).fetchone()
    if row is None:
        if base > 1:  # pragma: no cover - a log held from a base always has its checkpoint
            skipped.append(f"{where}: no checkpoint and no history before #{base}")
            return None
        return _Plan(LogSection(key, None, 0, head.seq), _no_records, 1, head.seq)
    seq, raw = int(row[0]), bytes(row[1])
    checkpoint = decode_entry(raw, now_ms=None)
    try:
        records = _state_at(store, key, seq, head.seq, base)
    except _CannotRebuild as exc:
        skipped.append(f"{where}: {exc}")
        return None
    hasher = StateHasher()
    for rid, blob in records():
        hasher.add(rid, record_digest(blob))
    if (hasher.count, hasher.digest()) != (checkpoint.body["records"], checkpoint.body["state"]):
        skipped.append(
            f"{where}: this replica's state at #{seq} differs from the author's checkpoint "
            "(see `peernode check`)"
        )
        return None
    return _Plan(LogSection(key, raw, hasher.count, head.seq - seq), records, seq + 1, head.seq)


class _CannotRebuild(Exception):
    pass


def _state_at(
    store: Store, key: LogKey, seq: int, head: int, base: int
) -> Callable[[], Iterator[tuple[str, bytes]]]:
    """The author's records as they stood at ``seq``: today's rows, with the records changed
    since then taken back to their version at ``seq`` from the log itself."""
    touched: set[str] = set()
    for entry in _entries(store, key, seq + 1, head):
        touched.update(op[1] for op in _ops(entry))
    then: dict[str, bytes | None] = {}
    if touched:
        for entry in _entries(store, key, base, seq, descending=True):
            for op in reversed(_ops(entry)):
                if op[1] in touched and op[1] not in then:
                    then[op[1]] = encode_record(op[1], op[2]) if op[0] == "put" else None
            if len(then) == len(touched):
                break
        missing = touched - set(then)
        if missing and base > 1:
            raise _CannotRebuild(
                f"{len(missing)} records changed after the checkpoint at #{seq} and their "
                f"earlier versions predate this node's history (#{base}); export from a node "
                "that holds the whole log"
            )
        then.update(dict.fromkeys(missing))  # never put before seq: absent then
    restored = sorted((rid.encode(), rid, blob) for rid, blob in then.items() if blob is not None)

    def records() -> Iterator[tuple[str, bytes]]:
        today = (
            (rid.encode(), rid, bytes(blob))
            for rid, blob in store.conn.execute(
                "SELECT rid, data FROM records WHERE author = ? ORDER BY rid", (key.author,)
            )
            if rid not in touched
        )
        for _, rid, blob in heapq.merge(today, restored):
            yield rid, blob

    return records


def _entries(
    store: Store, key: LogKey, first: int, last: int, *, descending: bool = False
) -> Iterator[Entry]:
    order = "DESC" if descending else "ASC"
    rows = store.conn.execute(
        "SELECT raw FROM entries WHERE author = ? AND log = ? AND seq BETWEEN ? AND ? "
        f"ORDER BY seq {order}",
        (key.author, key.log, first, last),
    ).fetchall()
    for (raw,) in rows:
        yield decode_entry(raw, now_ms=None)


def _ops(entry: Entry) -> list[list[Any]]:
    return list(entry.body["ops"]) if entry.kind == CATALOG else []


def _no_records() -> Iterator[tuple[str, bytes]]:
    return iter(())


def _raws(store: Store, key: LogKey, first: int, last: int) -> Iterator[bytes]:
    while first <= last:
        chunk = store.entry_raws(key, first, last, READ_CHUNK)
        if not chunk:
            raise SnapshotError(
                f"entries {first}..{last} of {short_id(key.author)}/{key.log} are missing here"
            )
        yield from chunk
        first += len(chunk)


# --- import --------------------------------------------------------------------------------------


class _Loader:
    """Applies one log section at a time as its values stream in."""

    def __init__(self, store: Store, trusts: Callable[[bytes], bool], now: int, name: str) -> None:
        self.store = store
        self.trusts = trusts
        self.now = now
        self.name = name
        self.summary = SnapshotSummary()
        self.section: LogSection | None = None
        self.checkpoint: Entry | None = None
        self.refused = False
        self.hasher = StateHasher()
        self.rows: list[tuple[Any, ...]] = []
        self.conn: sqlite3.Connection | None = None
        self.txn: transaction | None = None
        self.pending: list[Entry] = []

    def event(self, value: SnapshotHeader | LogSection | RecordValue | EntryValue) -> None:
        match value:
            case LogSection():
                self.end_section()
                self.begin_section(value)
            case RecordValue(blob):
                if self.txn is not None and not self.refused:
                    self.record(blob)
            case EntryValue(raw):
                if not self.refused and self.section is not None:
                    self.entry(raw)

    def begin_section(self, section: LogSection) -> None:
        self.section, self.checkpoint, self.refused = section, None, False
        self.summary.logs += 1
        key = section.key
        if not self.trusts(key.author):
            self.refuse("its library is not a peer here (add it with `peernode peer add`)")
            return
        if section.checkpoint is None:
            return  # entries only: they are applied like a bundle's
        try:
            entry = decode_entry(section.checkpoint, now_ms=self.now)
        except RemoteProtocolError as exc:
            self.refuse(f"checkpoint: {exc.reason}: {exc}")
            return
        if (entry.author, entry.log, entry.kind) != (key.author, key.log, CHECKPOINT) or entry.body[
            "records"
        ] != section.records:
            self.refuse("the section does not match its checkpoint entry")
            return
        if self.store.head(key) is not None:
            # We hold this log already: replaying its entries is what keeps it whole.
            self.summary.skipped.append(f"{self.where}: already held here; state not needed")
            self.refused = True
            return
        self.checkpoint = entry
        self.hasher = StateHasher()
        self.txn = transaction(self.store.conn)
        self.conn = self.txn.__enter__()

    def record(self, blob: bytes) -> None:
        assert self.checkpoint is not None
        try:
            rid, data = check_record(blob)
            self.hasher.add(rid, record_digest(blob))
        except RemoteProtocolError as exc:
            self.fail(f"record {self.hasher.count + 1}: {exc}")
            return
        self.rows.append(
            record_row_values(self.checkpoint.author, rid, data, self.checkpoint.seq, None)
        )
        if len(self.rows) >= ROW_BATCH:
            self.flush_rows()

    def flush_rows(self) -> None:
        if self.rows:
            assert self.conn is not None
            self.store.put_rows(self.conn, self.rows)
            self.summary.records += len(self.rows)
            self.rows.clear()

    def entry(self, raw: bytes) -> None:
        self.close_state()
        if self.refused:
            return
        try:
            entry = decode_entry(raw, now_ms=self.now)
        except RemoteProtocolError as exc:
            self.refuse(f"entry: {exc.reason}: {exc}")
            return
        assert self.section is not None
        if (entry.author, entry.log) != (self.section.key.author, self.section.key.log):
            self.refuse(f"{entry.where} sits in another log's section")
            return
        self.pending.append(entry)
        if len(self.pending) >= APPLY_BATCH:
            self.apply_pending()

    def close_state(self) -> None:
        """The records of a section are all in: commit them if they match the checkpoint."""
        if self.txn is None or self.checkpoint is None:
            return
        if self.refused:
            return
        self.flush_rows()
        body = self.checkpoint.body
        if (self.hasher.count, self.hasher.digest()) != (body["records"], body["state"]):
            self.fail(
                f"its {self.hasher.count} records do not match the author's checkpoint "
                f"#{self.checkpoint.seq} ({body['records']} records): altered or damaged"
            )
            return
        assert self.conn is not None
        self.store.start_from_checkpoint(self.conn, self.checkpoint)
        txn, self.txn, self.conn = self.txn, None, None
        txn.__exit__(None, None, None)

    def apply_pending(self) -> None:
        if not self.pending or self.section is None:
            return
        result = self.store.apply(self.section.key, self.pending)
        self.summary.entries += result.applied
        self.pending.clear()
        if result.error is not None:
            self.refuse(f"{result.error.reason}: {result.error}")

    def end_section(self) -> None:
        self.close_state()
        if not self.refused:
            self.apply_pending()
        self.pending.clear()
        section = self.section
        if (
            section is not None
            and section.key.author == self.store.own_key
            and self.store.head(section.key) is not None
            and self.store.restored_note() is None
        ):
            # Our own log from someone's copy may end before what we really signed: signing
            # now could fork it. Sign again once a sync has shown our true head.
            self.store.mark_restored(f"own {section.key.log} log loaded from snapshot {self.name}")

    @property
    def where(self) -> str:
        assert self.section is not None
        return f"{short_id(self.section.key.author)}/{self.section.key.log}"

    def fail(self, why: str) -> None:
        """Drop everything of this section stored so far, then refuse the rest of it."""
        self.rows.clear()
        if self.txn is not None:
            txn, self.txn, self.conn = self.txn, None, None
            txn.__exit__(RuntimeError, RuntimeError(why), None)  # rolls back
        self.refuse(why)

    def refuse(self, why: str) -> None:
        self.refused = True
        message = f"{self.where}: {why}"
        self.summary.skipped.append(message)
        self.store.record_rejection(None, "snapshot", f"snapshot {self.name}: {message}")

    def abort(self) -> None:
        if self.txn is not None:
            self.fail("the file ended inside this log")


def import_snapshot(
    store: Store, path: Path, trusts: Callable[[bytes], bool], now: int | None = None
) -> SnapshotSummary:
    """Load every log of the snapshot that this node trusts and does not hold yet."""
    reader = SnapshotReader()
    loader = _Loader(store, trusts, now if now is not None else now_ms(), path.name)
    try:
        with gzip.open(path, "rb") as handle:
            while block := handle.read(READ_CHUNK):
                for value in reader.feed(block):
                    loader.event(value)
        reader.finish()
        loader.end_section()
    except FileNotFoundError:
        raise SnapshotError(f"{path}: no such file") from None
    except (OSError, EOFError, RemoteProtocolError) as exc:
        loader.abort()
        if reader.header is None:
            raise SnapshotError(f"{path} is not a peernode snapshot ({exc})") from None
        loader.summary.complete = False
        loader.summary.skipped.append(
            f"{path.name} is damaged after value {reader.position}: {exc}"
        )
    return loader.summary
