"""The replica: signed entries as received, and the tables materialised from them.

Every change goes through one of two doors, each one transaction: ``apply`` (entries from a peer,
already signature-checked by the protocol) and ``append`` (our own new entries, signed inside the
write lock so the sequence cannot be taken twice). Entries are stored as the exact bytes received,
so they can be served again and re-verified; the tables (records, libraries) are derived from them.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlite_utils
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import (
    CATALOG,
    CHECKPOINT,
    PROFILE,
    ChainError,
    Entry,
    ForkProof,
    Head,
    LogKey,
    Placement,
    RemoteProtocolError,
    fork_proof,
    place,
    public_bytes,
    sign_entry,
)
from protocol.cooperation import AGREEMENT, OFFER, POLICY
from protocol.entries import decode_entry
from protocol.intents import INTENT
from protocol.kinds import MEMBER
from protocol.loans import LOAN
from protocol.snapshots import state_digest

from . import clusters, cooperation, intents, loans, members
from .db import StorageFull, insert_many, release_memory, transaction
from .recordrows import CatalogRows, catalog_rows
from .rowindex import UPSERT, upsert_records


class ForkDetected(RemoteProtocolError):
    reason = "fork"

    def __init__(self, message: str, proof: ForkProof) -> None:
        super().__init__(message)
        self.proof = proof


class OwnHeadUnconfirmed(Exception):
    """This node was restored from a backup and has not yet learned its own head from a peer."""


_log = logging.getLogger("peernode.store")
RESTORED_KEY = "restored_at"  # in the meta table
# Set by a starting daemon that has peers: until a peer confirms our own head (or the time in it,
# ms, passes), sign nothing: the database may be an old copy, and signing would fork our log.
OWN_HEAD_CHECK_KEY = "own_head_check_until"
DEFAULT_SYNC_CACHE_MB = 64  # SQLite's page cache while a sync streams records in (a setting)
SYNC_CHECKPOINT_PAGES = 65536  # and its WAL grows to 256 MiB (of 4 KiB pages) between checkpoints
__all__ = ["ApplyResult", "ForkDetected", "OwnHeadUnconfirmed", "StorageFull", "Store"]


@dataclass(frozen=True)
class ApplyResult:
    head: Head | None
    applied: int
    duplicates: int
    error: RemoteProtocolError | None = None


def now_ms() -> int:
    return int(time.time() * 1000)


class Store:
    """The node's SQLite replica. Not thread-safe: the daemon uses it from one worker thread."""

    def __init__(
        self,
        db: sqlite_utils.Database,
        own_key: bytes,
        sync_cache_mb: int = DEFAULT_SYNC_CACHE_MB,
    ) -> None:
        self.db = db
        self.conn: sqlite3.Connection = db.conn
        self.own_key = own_key
        self.sync_cache_mb = sync_cache_mb
        self._cache_pages = int(self.conn.execute("PRAGMA cache_size").fetchone()[0])
        self._checkpoint_pages = int(self.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
        self._bulk = False

    # --- the page cache while records stream in ----------------------------------------------

    def start_bulk_load(self) -> None:
        """A sync is bringing records: write them the way a bulk load is written.

        - Room in SQLite's page cache (setting sync_cache_mb) for the indexes' pages: each
          batch inserts into the
          records indexes, search_fts and the clustering tables at scattered places, and with
          the default 2 MB cache those pages are read back for nearly every batch (a fifth of
          the write time at a million records, docs/benchmarks.md).
        - The WAL grows to 256 MiB between checkpoints, so a page that several transactions
          touch is copied into the database file once.
        - Commits do not wait for the disk (synchronous=NORMAL): a power cut can take back the
          last transactions, never damage the file, and what it takes back is a peer's signed
          entries, which the next sync asks for again. Our own entries are always committed
          with synchronous=FULL (``append``): losing one could make us sign its seq twice.
        """
        if not self._bulk:
            self.conn.execute(f"PRAGMA cache_size = -{self.sync_cache_mb * 1024}")
            self.conn.execute(f"PRAGMA wal_autocheckpoint = {SYNC_CHECKPOINT_PAGES}")
            self.conn.execute("PRAGMA synchronous = NORMAL")
            self._bulk = True

    @contextlib.contextmanager
    def _durable(self) -> Iterator[None]:
        """Commit what is written inside with synchronous=FULL, even while a sync runs."""
        if not self._bulk:
            yield
            return
        self.conn.execute("PRAGMA synchronous = FULL")
        try:
            yield
        finally:
            self.conn.execute("PRAGMA synchronous = NORMAL")

    def end_bulk_load(self) -> None:
        """The sync is over: the file made durable, the memory back to the system."""
        if self._bulk:
            self.conn.execute("PRAGMA synchronous = FULL")
            self.conn.execute(f"PRAGMA wal_autocheckpoint = {self._checkpoint_pages}")
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.conn.execute(f"PRAGMA cache_size = {self._cache_pages}")
            self.conn.execute("PRAGMA shrink_memory")
            release_memory()
            self._bulk = False

    # --- reading the logs ----------------------------------------------------------------------

    def heads(self) -> dict[LogKey, Head]:
        rows = self.conn.execute("SELECT author, log, seq, hash FROM heads")
        return {LogKey(a, log): Head(seq, h) for a, log, seq, h in rows}

    def head(self, key: LogKey) -> Head | None:
        row = self.conn.execute(
            "SELECT seq, hash FROM heads WHERE author = ? AND log = ?", (key.author, key.log)
        ).fetchone()
        return Head(row[0], row[1]) if row else None

    def entry_raws(self, key: LogKey, first: int, last: int, max_bytes: int) -> list[bytes]:
        """Stored entries ``first..last`` of one log, stopping after about ``max_bytes``.

        Nothing when ``first`` lies before the log's base (we started it from a snapshot): a
        range with a hole in it would only be refused as a broken chain.
        """
        if first < self.base(key):
            return []
        out: list[bytes] = []
        size = 0
        rows = self.conn.execute(
            "SELECT raw FROM entries WHERE author = ? AND log = ? AND seq BETWEEN ? AND ? "
            "ORDER BY seq",
            (key.author, key.log, first, last),
        )
        for (raw,) in rows:
            out.append(raw)
            size += len(raw)
            if size >= max_bytes:
                break
        return out

    def iter_entries(self) -> Iterator[tuple[bytes, str, int, bytes]]:
        """Every stored entry as (author, log, seq, raw), for re-verification."""
        yield from self.conn.execute(
            "SELECT author, log, seq, raw FROM entries ORDER BY author, log, seq"
        )

    # --- applying a peer's entries -------------------------------------------------------------

    def apply(self, key: LogKey, entries: Sequence[Entry]) -> ApplyResult:
        """Place and store ``entries`` of ``key`` in one transaction; stop at the first problem."""
        return self.apply_many([(key, entries)])[0]

    def apply_many(
        self,
        groups: Sequence[tuple[LogKey, Sequence[Entry]]],
        built: Mapping[bytes, CatalogRows] | None = None,
        bulk: bool = False,
    ) -> list[ApplyResult]:
        """``apply`` each (log, entries) group in turn, all in one transaction.

        A sync applies what arrived while the previous transaction ran in one go: each commit
        costs a WAL sync, and each flushes a new segment into the search index that FTS5 must
        merge later, so fewer, larger transactions write the same rows for less. A group that
        meets a problem keeps what it placed before it and does not stop the groups after it.
        ``built``: catalogue entries' rows built ahead (``recordrows.build_rows``), by hash.
        ``bulk``: a sync is streaming records in; write them as a bulk load (``start_bulk_load``).
        """
        ahead = built or {}
        if bulk:
            self.start_bulk_load()
        with transaction(self.conn) as conn:
            return [self._apply_group(conn, key, entries, ahead) for key, entries in groups]

    def _apply_group(
        self,
        conn: sqlite3.Connection,
        key: LogKey,
        entries: Sequence[Entry],
        built: Mapping[bytes, CatalogRows],
    ) -> ApplyResult:
        applied = duplicates = 0
        error: RemoteProtocolError | None = None
        head = self.head(key)
        if self._frozen(key):
            return ApplyResult(head, 0, 0, None)
        for entry in sorted(entries, key=lambda e: e.seq):
            held = self._hash_at(key, entry.seq) if head and entry.seq <= head.seq else None
            try:
                placement = place(head, entry, held)
            except ChainError as exc:
                error = exc
                break
            if placement is Placement.NEXT:
                self._store_entry(conn, entry)
                self._materialize(conn, entry, None, built.get(entry.hash))
                head = Head(entry.seq, entry.hash)
                applied += 1
            elif placement is Placement.HELD:
                duplicates += 1
            elif placement is Placement.AHEAD:
                break
            else:
                error = self._record_fork(conn, key, entry)
                break
        if applied:
            assert head is not None
            self._set_head(conn, key, head)
        if duplicates:
            bump(conn, "entries_duplicate", duplicates)
        return ApplyResult(head, applied, duplicates, error)

    def _hash_at(self, key: LogKey, seq: int) -> bytes | None:
        row = self.conn.execute(
            "SELECT hash FROM entries WHERE author = ? AND log = ? AND seq = ?",
            (key.author, key.log, seq),
        ).fetchone()
        return row[0] if row else None

    def _record_fork(self, conn: sqlite3.Connection, key: LogKey, entry: Entry) -> ForkDetected:
        (held_raw,) = conn.execute(
            "SELECT raw FROM entries WHERE author = ? AND log = ? AND seq = ?",
            (key.author, key.log, entry.seq),
        ).fetchone()
        held = decode_entry(held_raw, now_ms=None)
        proof = fork_proof(held, entry)
        assert proof is not None, "place() said CONFLICT: same seq, different hash"
        conn.execute(
            "INSERT OR IGNORE INTO forks (author, log, seq, proof, found_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (key.author, key.log, entry.seq, proof.to_bytes(), now_ms()),
        )
        return ForkDetected(f"{entry.where}: the author signed two different entries", proof)

    def _frozen(self, key: LogKey) -> bool:
        """A log with a fork proof stops at the fork: which branch is true cannot be known."""
        row = self.conn.execute(
            "SELECT 1 FROM forks WHERE author = ? AND log = ?", (key.author, key.log)
        ).fetchone()
        return row is not None

    def forks(self) -> list[ForkProof]:
        return [ForkProof.from_bytes(p) for (p,) in self.conn.execute("SELECT proof FROM forks")]

    def frozen_logs(self) -> set[LogKey]:
        return {LogKey(a, log) for a, log in self.conn.execute("SELECT author, log FROM forks")}

    # --- appending our own entries -------------------------------------------------------------

    def append(
        self,
        key: Ed25519PrivateKey,
        log: str,
        kind: str,
        body: Any,
        *,
        source: str | None = None,
        timestamp: int | None = None,
    ) -> Entry:
        """Sign ``body`` as the next entry of our ``log`` and make it durable before returning."""
        author = public_bytes(key)
        restored = self.restored_note()
        if restored is not None:
            raise OwnHeadUnconfirmed(
                f"this node was restored from a backup ({restored}) and may be missing entries it "
                "signed after that backup; signing now could fork its own log. Start the daemon "
                "(`peernode run`) and wait until `peernode status` shows a sync with a peer, then "
                "try again."
            )
        if self.own_head_check_until() is not None:
            raise OwnHeadUnconfirmed(
                "the daemon has just started and is asking its peers for this node's own head "
                "first (the database could be an older copy, and signing now could fork this "
                "library's log). Try again in a minute; `peernode status` shows the peers."
            )
        with self._durable(), transaction(self.conn) as conn:
            if kind == CHECKPOINT:  # computed under the write lock: nothing can slip in between
                count, state = self.state_of(author)
                body = {"records": count, "state": state}
            log_key = LogKey(author, log)
            head = self.head(log_key)
            entry = sign_entry(
                key,
                log=log,
                seq=head.seq + 1 if head else 1,
                prev=head.hash if head else None,
                timestamp=timestamp if timestamp is not None else now_ms(),
                kind=kind,
                body=body,
            )
            self._store_entry(conn, entry)
            if kind != CHECKPOINT:  # our own statement needs no re-check
                self._materialize(conn, entry, source=source)
            self._set_head(conn, log_key, Head(entry.seq, entry.hash))
        return entry

    def needs_checkpoint(self, log: str) -> bool:
        """Our ``log`` exists and its last entry is not a checkpoint."""
        row = self.conn.execute(
            "SELECT kind FROM entries WHERE author = ? AND log = ? ORDER BY seq DESC LIMIT 1",
            (self.own_key, log),
        ).fetchone()
        return row is not None and row[0] != CHECKPOINT

    def checkpoint(self, key: Ed25519PrivateKey, log: str) -> Entry:
        """Sign what our catalogue holds now, so new nodes can start from a snapshot."""
        return self.append(key, log, CHECKPOINT, None)

    # --- snapshots -------------------------------------------------------------------------------

    def state_of(self, author: bytes) -> tuple[int, bytes]:
        """(count, state digest) of ``author``'s catalogue as this replica holds it."""
        return catalogue_state(self.conn, author)

    def put_rows(self, conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        """Within the caller's transaction: upsert ``record_row_values`` rows and index them."""
        rows = [rows[p] for p in upsert_records(conn, rows).kept]
        insert_many(conn, _ADDED, [(row[0], row[1], None) for row in rows])  # date unknown
        clusters.add_row_values(conn, rows)

    def bases(self) -> dict[LogKey, int]:
        """Logs held from a checkpoint on (not from seq 1), and that first seq."""
        rows = self.conn.execute("SELECT author, log, base FROM log_bases")
        return {LogKey(a, log): base for a, log, base in rows}

    def base(self, key: LogKey) -> int:
        row = self.conn.execute(
            "SELECT base FROM log_bases WHERE author = ? AND log = ?", (key.author, key.log)
        ).fetchone()
        return int(row[0]) if row else 1

    def start_from_checkpoint(self, conn: sqlite3.Connection, checkpoint: Entry) -> None:
        """Within the caller's transaction: hold ``checkpoint``'s log from it on, its records
        already inserted by the caller and checked against it."""
        key = LogKey(checkpoint.author, checkpoint.log)
        self._store_entry(conn, checkpoint)
        self._set_head(conn, key, Head(checkpoint.seq, checkpoint.hash))
        conn.execute(
            "INSERT INTO log_bases (author, log, base) VALUES (?, ?, ?)",
            (key.author, key.log, checkpoint.seq),
        )

    # --- materialising ---------------------------------------------------------------------------

    def _store_entry(self, conn: sqlite3.Connection, entry: Entry) -> None:
        conn.execute(
            "INSERT INTO entries (author, log, seq, hash, kind, ts, raw, received_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry.author,
                entry.log,
                entry.seq,
                entry.hash,
                entry.kind,
                entry.timestamp,
                entry.raw,
                now_ms(),
            ),
        )

    def _set_head(self, conn: sqlite3.Connection, key: LogKey, head: Head) -> None:
        conn.execute(
            "INSERT INTO heads (author, log, seq, hash) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (author, log) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
            (key.author, key.log, head.seq, head.hash),
        )

    def _materialize(
        self,
        conn: sqlite3.Connection,
        entry: Entry,
        source: str | None,
        built: CatalogRows | None = None,
    ) -> None:
        if entry.kind == CATALOG:
            _catalog(conn, entry, source, built)
            return
        handler = _MATERIALIZERS.get(entry.kind)
        if handler is not None:
            handler(conn, entry, source)

    # --- node facts ----------------------------------------------------------------------------

    def mark_restored(self, note: str) -> None:
        """This node came back from a backup: sign nothing until ``clear_restored``."""
        self.set_meta(RESTORED_KEY, note)

    def restored_note(self) -> str | None:
        return self.meta(RESTORED_KEY)

    def clear_restored(self) -> bool:
        """A sync has caught up with a peer, which sent back any entries we signed after the
        backup: signing is safe again. True when a mark was cleared."""
        if self.restored_note() is None:
            return False
        self.set_meta(RESTORED_KEY, None)
        return True

    def begin_own_head_check(self, until_ms: int) -> None:
        self.set_meta(OWN_HEAD_CHECK_KEY, str(until_ms))

    def own_head_check_until(self) -> int | None:
        """When the start-up check of our own head gives up (ms), while it is still on."""
        value = self.meta(OWN_HEAD_CHECK_KEY)
        return int(value) if value is not None and int(value) > now_ms() else None

    def end_own_head_check(self) -> None:
        if self.meta(OWN_HEAD_CHECK_KEY) is not None:
            self.set_meta(OWN_HEAD_CHECK_KEY, None)

    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def set_meta(self, key: str, value: str | None) -> None:
        with transaction(self.conn) as conn:
            if value is None:
                conn.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )

    # --- small queries -------------------------------------------------------------------------

    def counter(self, name: str) -> int:
        row = self.conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def record_rejection(self, peer: bytes | None, reason: str, message: str) -> None:
        with transaction(self.conn) as conn:
            conn.execute(
                "INSERT INTO rejections (at, peer, reason, message) VALUES (?, ?, ?, ?)",
                (now_ms(), peer, reason, message[:2000]),
            )

    def own_digests(self) -> dict[str, tuple[bytes, str | None]]:
        """Our own records: rid -> (content digest, source file they came from)."""
        rows = self.conn.execute(
            "SELECT rid, digest, source FROM records WHERE author = ?", (self.own_key,)
        )
        return {rid: (digest, source) for rid, digest, source in rows}


COUNTER_ADD = (
    "INSERT INTO counters (name, value) VALUES (?, ?) "
    "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value"
)


def bump(conn: sqlite3.Connection, name: str, by: int = 1) -> None:
    """Add ``by`` to the counter ``name`` (in the caller's transaction)."""
    conn.execute(COUNTER_ADD, (name, by))


def catalogue_state(conn: sqlite3.Connection, author: bytes) -> tuple[int, bytes]:
    """(count, state digest) of ``author``'s records, in the order the digest is defined."""
    rows = conn.execute("SELECT rid, digest FROM records WHERE author = ? ORDER BY rid", (author,))
    return state_digest(rows)


_UPSERT = UPSERT  # the records upsert alone, without indexing (peernode/rowindex.py)

# New acquisitions (peernode/reports.py): when a record was first put; an edit keeps the date.
_ADDED = "INSERT OR IGNORE INTO record_added (author, rid, added_at)"


def _catalog(
    conn: sqlite3.Connection, entry: Entry, source: str | None, built: CatalogRows | None = None
) -> None:
    """Write a catalogue entry's rows: ``built`` ahead (a sync builds them off this thread)
    or here."""
    rows = built if built is not None else catalog_rows(entry, source)
    dels = [(entry.author, rid) for rid in rows.dels]
    if dels:
        clusters.remove_records(conn, entry.author, rows.dels)
        conn.executemany("DELETE FROM records WHERE author = ? AND rid = ?", dels)
        conn.executemany("DELETE FROM original_records WHERE author = ? AND rid = ?", dels)
        # OAI-PMH keeps deletes persistently: a tombstone per deleted record (peernode/oai.py).
        conn.executemany(
            "INSERT OR REPLACE INTO deleted_records (author, rid, seq, deleted_at) "
            "VALUES (?, ?, ?, ?)",
            [(author, rid, entry.seq, entry.timestamp) for author, rid in dels],
        )
    puts, records, keys = rows.puts, rows.records, rows.keys
    if puts:
        upserted = upsert_records(conn, puts)  # a record put twice in one entry: its last put
        kept = upserted.kept
        if len(kept) < len(puts):
            puts, records = [puts[p] for p in kept], [records[p] for p in kept]
            keys = [keys[p] for p in kept]
        insert_many(conn, _ADDED, [(row[0], row[1], entry.timestamp) for row in puts])
        # Union entries grow as records arrive (peernode/clusters.py): a few indexed lookups.
        clusters.add_records(conn, entry.author, records, keys, upserted.new_ids)
        if conn.execute("SELECT 1 FROM deleted_records LIMIT 1").fetchone():  # none: skip
            conn.executemany(
                "DELETE FROM deleted_records WHERE author = ? AND rid = ?",
                [(row[0], row[1]) for row in puts],
            )


def _profile(conn: sqlite3.Connection, entry: Entry, source: str | None) -> None:
    body = entry.body
    conn.execute(
        "INSERT INTO libraries (author, name, isil, contact, seq) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (author) DO UPDATE SET name = excluded.name, isil = excluded.isil, "
        "contact = excluded.contact, seq = excluded.seq",
        (entry.author, body["name"], body.get("isil"), body.get("contact"), entry.seq),
    )


def _checkpoint(conn: sqlite3.Connection, entry: Entry, source: str | None) -> None:
    """Replay reached an author's checkpoint: does its statement match what replay built? A
    mismatch means snapshot users and replayers would disagree — the author is faulty."""
    count, state = catalogue_state(conn, entry.author)
    if (count, state) != (entry.body["records"], entry.body["state"]):
        _log.error(
            "%s: the author's checkpoint says %d records, replay holds %d with another digest; "
            "snapshots of this log would differ from its history",
            entry.where,
            entry.body["records"],
            count,
        )
        bump(conn, "checkpoint_mismatch")


_MATERIALIZERS: dict[str, Callable[[sqlite3.Connection, Entry, str | None], None]] = {
    CHECKPOINT: _checkpoint,
    MEMBER: members.materialize,
    PROFILE: _profile,
    # Interlibrary loan and cooperation (issue 4).
    LOAN: loans.materialize,
    POLICY: cooperation.materialize_policy,
    OFFER: cooperation.materialize_offer,
    AGREEMENT: cooperation.materialize_agreement,
    INTENT: intents.materialize,  # intent to purchase (issue 8)
}
