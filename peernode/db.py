"""The SQLite file: connection settings and numbered schema migrations.

WAL lets the CLI read and write while the daemon runs. ``synchronous=FULL`` because an own entry
must be on disk before any peer can see it: after a power cut the node must not re-sign a
different entry at the same sequence (a fork of its own log). Migrations run at open, in order,
recorded in ``PRAGMA user_version``; a database newer than this code is refused, never touched.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import sqlite_utils


class DatabaseError(Exception):
    """The database cannot be used (newer schema, corrupt file). The message says what to do."""


class StorageFull(DatabaseError):
    """The disk, or the `max_db_mb` limit, is full. The write was rolled back: nothing stored was
    damaged, and the same operation can simply be run again once there is space."""


def _is_full(exc: BaseException) -> bool:
    text = str(exc)
    return isinstance(exc, sqlite3.OperationalError) and (
        "database or disk is full" in text or "disk I/O error" in text
    )


def _v1(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE TABLE entries (
            author BLOB NOT NULL, log TEXT NOT NULL, seq INTEGER NOT NULL,
            hash BLOB NOT NULL, kind TEXT NOT NULL, ts INTEGER NOT NULL,
            raw BLOB NOT NULL, received_at INTEGER NOT NULL,
            PRIMARY KEY (author, log, seq)
        ) WITHOUT ROWID;
        CREATE TABLE heads (
            author BLOB NOT NULL, log TEXT NOT NULL, seq INTEGER NOT NULL, hash BLOB NOT NULL,
            PRIMARY KEY (author, log)
        ) WITHOUT ROWID;
        CREATE TABLE records (
            id INTEGER PRIMARY KEY,
            author BLOB NOT NULL, rid TEXT NOT NULL,
            title TEXT NOT NULL, authors TEXT NOT NULL, subjects TEXT NOT NULL,
            publisher TEXT NOT NULL, isbn TEXT NOT NULL, year INTEGER,
            -- data: canonical msgpack [rid, record map]; digest: its sha256
            data BLOB NOT NULL, digest BLOB NOT NULL, match_key TEXT NOT NULL,
            source TEXT, seq INTEGER NOT NULL,
            UNIQUE (author, rid)
        );
        CREATE INDEX records_match_key ON records (match_key);
        CREATE VIRTUAL TABLE records_fts USING fts5 (
            title, authors, subjects, publisher, isbn,
            content='records', content_rowid='id',
            tokenize='unicode61 remove_diacritics 2'
        );
        CREATE TRIGGER records_ai AFTER INSERT ON records BEGIN
            INSERT INTO records_fts (rowid, title, authors, subjects, publisher, isbn)
            VALUES (new.id, new.title, new.authors, new.subjects, new.publisher, new.isbn);
        END;
        CREATE TRIGGER records_ad AFTER DELETE ON records BEGIN
            INSERT INTO records_fts
                (records_fts, rowid, title, authors, subjects, publisher, isbn)
            VALUES
                ('delete', old.id, old.title, old.authors, old.subjects, old.publisher, old.isbn);
        END;
        CREATE TRIGGER records_au AFTER UPDATE ON records BEGIN
            INSERT INTO records_fts
                (records_fts, rowid, title, authors, subjects, publisher, isbn)
            VALUES
                ('delete', old.id, old.title, old.authors, old.subjects, old.publisher, old.isbn);
            INSERT INTO records_fts (rowid, title, authors, subjects, publisher, isbn)
            VALUES (new.id, new.title, new.authors, new.subjects, new.publisher, new.isbn);
        END;
        CREATE TABLE libraries (
            author BLOB PRIMARY KEY, name TEXT NOT NULL, isil TEXT, contact TEXT,
            seq INTEGER NOT NULL
        );
        CREATE TABLE peers (
            key BLOB PRIMARY KEY, name TEXT NOT NULL, address TEXT,
            added_at INTEGER NOT NULL, last_seen INTEGER, last_sync INTEGER, last_error TEXT
        );
        -- The secret checks the joiner's HMAC; it is erased once the invite is used.
        CREATE TABLE invites (
            id BLOB PRIMARY KEY, secret BLOB, created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL, used_at INTEGER, used_by BLOB
        );
        CREATE TABLE rejections (
            id INTEGER PRIMARY KEY, at INTEGER NOT NULL, peer BLOB, reason TEXT NOT NULL,
            message TEXT NOT NULL
        );
        CREATE TABLE forks (
            author BLOB NOT NULL, log TEXT NOT NULL, seq INTEGER NOT NULL,
            proof BLOB NOT NULL, found_at INTEGER NOT NULL,
            PRIMARY KEY (author, log, seq)
        );
        CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
        """
    )


def _v2(db: sqlite_utils.Database) -> None:
    # What each peer last said it holds, kept across restarts: `bundle export --for PEER`
    # writes only what that peer lacks.
    db.executescript(
        """
        CREATE TABLE peer_heads (
            peer BLOB NOT NULL, author BLOB NOT NULL, log TEXT NOT NULL, seq INTEGER NOT NULL,
            PRIMARY KEY (peer, author, log)
        ) WITHOUT ROWID;
        """
    )


def _v3(db: sqlite_utils.Database) -> None:
    # Node-level facts that are not derived from entries, e.g. "restored from a backup: learn
    # our own head from a peer before signing anything".
    db.executescript("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);")


def _v4(db: sqlite_utils.Database) -> None:
    # Snapshots (issue 7): logs whose history before ``base`` was never fetched, because the
    # node started from an author-signed checkpoint. Filled in by the snapshot work.
    pass


def _v5(db: sqlite_utils.Database) -> None:
    # Discovery (issue 3): nodes seen on the LAN through mDNS. Filled in by the discovery work.
    pass


def _v6(db: sqlite_utils.Database) -> None:
    # Membership (issue 3): admitted members and the local block list. Filled in by that work.
    pass


def _v7(db: sqlite_utils.Database) -> None:
    # Liveness (issue 3): heartbeats, last-seen and lag per peer. Filled in by that work.
    pass


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_v1, _v2, _v3, _v4, _v5, _v6, _v7]
SCHEMA_VERSION = len(MIGRATIONS)


def connect(path: Path, max_mb: int = 0) -> sqlite_utils.Database:
    """Open (creating if needed) the node database and bring its schema up to date.

    ``max_mb`` > 0 caps the database file: writes past it fail as StorageFull, like a full disk.
    """
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        if max_mb > 0:
            page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
            conn.execute(f"PRAGMA max_page_count = {max_mb * 1024 * 1024 // page_size}")
        db = sqlite_utils.Database(conn)
        migrate(db, path)
    except sqlite3.DatabaseError as exc:
        conn.close()
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            raise DatabaseError(f"{path} is busy (locked by another process): try again") from None
        raise DatabaseError(
            f"{path} is damaged or is not a peernode database ({exc}). Nothing was changed. "
            "Move it aside and restore a backup; a node's peers can send its replica again."
        ) from None
    return db


def migrate(db: sqlite_utils.Database, path: Path) -> None:
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise DatabaseError(
            f"{path} has schema version {version}, but this peernode knows only up to "
            f"{SCHEMA_VERSION}: it was written by a newer peernode. Upgrade peernode; "
            "the database was not changed."
        )
    for number in range(version, SCHEMA_VERSION):
        with transaction(db.conn):
            MIGRATIONS[number](db)
            db.execute(f"PRAGMA user_version = {number + 1}")


class transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolls back on any exception.

    IMMEDIATE takes the write lock up front, so reading the head and appending after it cannot
    interleave with another writer (the CLI and the daemon share the file).
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            try:
                self.conn.execute("COMMIT")
                return
            except sqlite3.OperationalError as failed:
                exc = failed
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        if _is_full(exc):
            raise StorageFull(
                "the disk is full (or the database reached its max_db_mb limit): nothing was "
                "written and nothing stored was damaged"
            ) from exc
        if exc is not None and exc_type is None:
            raise exc
