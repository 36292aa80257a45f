"""The SQLite file: connection settings and numbered schema migrations.

WAL lets the CLI read and write while the daemon runs. ``synchronous=FULL`` because an own entry
must be on disk before any peer can see it: after a power cut the node must not re-sign a
different entry at the same sequence (a fork of its own log). Migrations run at open, in order,
recorded in ``PRAGMA user_version``; a database newer than this code is refused, never touched.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import sqlite3
from collections.abc import Callable, Sequence
from itertools import chain
from pathlib import Path
from typing import Any

import sqlite_utils


class DatabaseError(Exception):
    """The database cannot be used (newer schema, corrupt file). The message says what to do."""


class StorageFull(DatabaseError):
    """The disk, or the `max_db_mb` limit, is full. The write was rolled back: nothing stored was
    damaged, and the same operation can simply be run again once there is space."""


# SQLite's default bound on parameters in one statement since 3.32 is 32,766; far below it.
_PARAMETERS_PER_STATEMENT = 2000


def insert_many(
    conn: sqlite3.Connection, head: str, rows: Sequence[Sequence[Any]], tail: str = ""
) -> None:
    """``{head} VALUES (?, ...), (?, ...), ... {tail}`` for ``rows``, many rows a statement.

    The same as ``executemany`` with one row a statement, but Python's sqlite3 lets go of the
    GIL around every step and must take it back after: with another thread running Python (a
    sync decodes and builds the next rows meanwhile), each taking back waits out that thread's
    switch interval, so a row a step let the other thread slow the writes tenfold and more.
    """
    if not rows:
        return
    width = len(rows[0])
    per = max(1, _PARAMETERS_PER_STATEMENT // width)
    for start in range(0, len(rows), per):
        chunk = rows[start : start + per]
        conn.execute(_values_sql(head, tail, width, len(chunk)), list(chain.from_iterable(chunk)))


@functools.lru_cache(maxsize=64)
def _values_sql(head: str, tail: str, width: int, count: int) -> str:
    one = "(" + ", ".join("?" * width) + ")"
    return f"{head} VALUES {', '.join([one] * count)} {tail}".rstrip()


def release_memory() -> None:
    """Hand memory SQLite has freed back to the system.

    SQLite frees its cache pages one by one into the C allocator, which keeps them; without
    this a daemon that once synced a million records would hold that cache's size for good.
    glibc only (``malloc_trim``); elsewhere nothing happens.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)  # the process's own symbols: libc's among them


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
    # Snapshots: logs this node started from an author-signed checkpoint at ``base`` instead of
    # replaying from seq 1. It holds and serves entries from ``base`` on, and says so to peers.
    db.executescript(
        """
        CREATE TABLE log_bases (
            author BLOB NOT NULL, log TEXT NOT NULL, base INTEGER NOT NULL,
            PRIMARY KEY (author, log)
        ) WITHOUT ROWID;
        """
    )


def _v5(db: sqlite_utils.Database) -> None:
    # Discovery (issue 3): nodes seen on the LAN through mDNS. A sighting, not trust: nothing
    # here is ever read by sync; `peer list` and `status` show it, `peer add` may take the
    # address (the dialler still demands the key). last_seen is ms; the daemon prunes old rows.
    db.executescript(
        """
        CREATE TABLE discovered (
            key BLOB PRIMARY KEY, name TEXT NOT NULL, address TEXT NOT NULL,
            version INTEGER NOT NULL, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL
        );
        CREATE INDEX discovered_last_seen ON discovered (last_seen);
        """
    )


def _v6(db: sqlite_utils.Database) -> None:
    # Membership (issue 3). member_statements: every `member` entry we hold, materialised from
    # the members logs; members: their fold (protocol/membership.py), rewritten on every change,
    # for queries (search hides removed and revoked libraries). founders: this node's trust
    # anchors; empty means "we founded our own network". blocks: the local block list, never
    # replicated.
    db.executescript(
        """
        CREATE TABLE member_statements (
            author BLOB NOT NULL, seq INTEGER NOT NULL, op TEXT NOT NULL, key BLOB NOT NULL,
            name TEXT NOT NULL, role TEXT NOT NULL, reason TEXT NOT NULL, ts INTEGER NOT NULL,
            PRIMARY KEY (author, seq)
        ) WITHOUT ROWID;
        CREATE TABLE members (
            key BLOB PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL,
            role TEXT NOT NULL, founder INTEGER NOT NULL, admitted_by TEXT NOT NULL,
            removed_by BLOB, reason TEXT NOT NULL
        );
        CREATE TABLE founders (key BLOB PRIMARY KEY, added_at INTEGER NOT NULL);
        CREATE TABLE blocks (key BLOB PRIMARY KEY, reason TEXT NOT NULL, added_at INTEGER NOT NULL);
        """
    )


def _v7(db: sqlite_utils.Database) -> None:
    # Liveness (issue 3): per member, its newest signed heartbeat (heard directly or relayed),
    # and for direct peers the sync lag: entries the peer holds that we lack, and since when.
    db.executescript(
        """
        CREATE TABLE liveness (
            key BLOB PRIMARY KEY, beat_at INTEGER, heard_at INTEGER,
            behind INTEGER NOT NULL DEFAULT 0, behind_since INTEGER
        ) WITHOUT ROWID;
        """
    )


def _v8(db: sqlite_utils.Database) -> None:
    # OAI-PMH (issue 8): persistent deletes. A tombstone per record whose latest catalogue op is
    # a "del" (seq: that entry; deleted_at: its signed timestamp, ms); a later "put" removes it.
    # The indexes let peernode/oai.py page through one catalogue entry's records and tombstones
    # in id order, and walk catalogue entries in the order this node received them.
    db.executescript(
        """
        CREATE TABLE deleted_records (
            author BLOB NOT NULL, rid TEXT NOT NULL, seq INTEGER NOT NULL,
            deleted_at INTEGER NOT NULL,
            PRIMARY KEY (author, rid)
        ) WITHOUT ROWID;
        CREATE INDEX deleted_records_seq ON deleted_records (author, seq, rid);
        CREATE INDEX records_seq ON records (author, seq, rid);
        CREATE INDEX entries_received ON entries (log, received_at);
        """
    )
    _backfill_tombstones(db.conn)


def _backfill_tombstones(conn: sqlite3.Connection) -> None:
    """Tombstones for the deletions already in the stored catalogue entries.

    Only entries whose bytes hold the msgpack string "del" are decoded (a put-only import has
    none), and a tombstone whose record exists again today (put after the del) is dropped.
    Deletions before a snapshot's checkpoint are not known here: the snapshot holds only the
    records that were live.
    """
    from protocol.entries import decode_entry  # the migration alone needs the protocol

    latest: dict[tuple[bytes, str], tuple[int, int]] = {}
    rows = conn.execute(
        "SELECT raw FROM entries WHERE kind = 'catalog' AND instr(raw, X'a364656c') > 0"
    )
    for (raw,) in rows:
        entry = decode_entry(raw, now_ms=None)
        for op in entry.body["ops"]:
            if op[0] == "del":
                key = (entry.author, op[1])
                if latest.get(key, (0, 0))[0] < entry.seq:
                    latest[key] = (entry.seq, entry.timestamp)
    conn.executemany(
        "INSERT INTO deleted_records (author, rid, seq, deleted_at) VALUES (?, ?, ?, ?)",
        ((author, rid, seq, ts) for (author, rid), (seq, ts) in latest.items()),
    )
    conn.execute(
        "DELETE FROM deleted_records WHERE EXISTS (SELECT 1 FROM records r "
        "WHERE r.author = deleted_records.author AND r.rid = deleted_records.rid)"
    )


# Reserved for this session's parallel work, so that no two changes take the same number. A
# reserved migration that nothing needed stays a no-op: user_version must only ever grow.
def _v9(db: sqlite_utils.Database) -> None:
    """Interlibrary loan (issue 4).

    loan_requests / loan_steps: every ``loan`` entry held (body as canonical msgpack), so a
    request is re-folded from its steps whatever order they came in; loans / loan_history: that
    fold (protocol/loans.py), rewritten per request on every new step, for lists and statistics.
    policies, offers, agreement_statements: the cooperation entries (protocol/cooperation.py).
    """
    db.executescript(
        """
        CREATE TABLE loan_requests (
            id BLOB PRIMARY KEY, requester BLOB NOT NULL, body BLOB NOT NULL, ts INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE loan_steps (
            hash BLOB PRIMARY KEY, request BLOB NOT NULL, author BLOB NOT NULL,
            body BLOB NOT NULL, ts INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX loan_steps_request ON loan_steps (request);
        CREATE TABLE loans (
            id BLOB PRIMARY KEY, requester BLOB NOT NULL, lender BLOB NOT NULL,
            service TEXT NOT NULL, state TEXT NOT NULL, title TEXT NOT NULL, due TEXT,
            tip BLOB NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE loan_history (
            request BLOB NOT NULL, n INTEGER NOT NULL, hash BLOB NOT NULL, author BLOB NOT NULL,
            action TEXT NOT NULL, ts INTEGER NOT NULL,
            PRIMARY KEY (request, n)
        ) WITHOUT ROWID;
        CREATE TABLE policies (
            author BLOB PRIMARY KEY, body BLOB NOT NULL, seq INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE offers (
            author BLOB NOT NULL, id TEXT NOT NULL, body BLOB NOT NULL, seq INTEGER NOT NULL,
            PRIMARY KEY (author, id)
        ) WITHOUT ROWID;
        CREATE TABLE agreement_statements (
            hash BLOB PRIMARY KEY, author BLOB NOT NULL, body BLOB NOT NULL, ts INTEGER NOT NULL
        ) WITHOUT ROWID;
        """
    )


def _v10(db: sqlite_utils.Database) -> None:
    """Search index (issue 8): fielded columns and a static-rank-ordered FTS5 (peernode/search.py).

    records_fts indexed rowid = records.id, i.e. arrival order, so a ranked query had to score
    every hit. search_fts is contentless and its docid is ``(title length << 40) | records.id``:
    FTS5 walks a term's hits in docid order, so ``ORDER BY rowid LIMIT n`` reads the n best by
    static rank (shortest titles first) without touching the rest (ascending, because FTS5 reads
    a posting list backwards several times slower). Its ``facets`` column holds
    one token per library, language, format, year, decade and century, so filters intersect
    inside FTS5 instead of joining every hit. It replaces records_fts: the write path still
    maintains one full-text index. columnsize=0: no per-row size table, as search ranks
    without bm25 (a tenth of the index's write cost). New rows are indexed by the store, in
    docid order, not by an insert trigger (peernode/rowindex.py says why); updates and deletes
    by the triggers here.
    """
    db.executescript(
        """
        ALTER TABLE records ADD COLUMN series TEXT NOT NULL DEFAULT '[]';
        ALTER TABLE records ADD COLUMN issn TEXT NOT NULL DEFAULT '[]';
        ALTER TABLE records ADD COLUMN language TEXT NOT NULL DEFAULT '';
        ALTER TABLE records ADD COLUMN format TEXT NOT NULL DEFAULT '';
        DROP TRIGGER records_ai;
        DROP TRIGGER records_ad;
        DROP TRIGGER records_au;
        DROP TABLE records_fts;
        """
    )
    # Before the triggers: deleting a row a contentless index never held would damage it.
    _backfill_search_columns(db.conn)
    db.executescript(
        f"""
        CREATE VIRTUAL TABLE search_fts USING fts5 (
            title, authors, subjects, series, publisher, ids, facets,
            content='', columnsize=0, tokenize='unicode61 remove_diacritics 2'
        );
        CREATE TRIGGER search_ad AFTER DELETE ON records BEGIN
            INSERT INTO search_fts (search_fts, {_SEARCH_COLUMNS})
            VALUES ('delete', {_search_values("old")});
        END;
        CREATE TRIGGER search_au AFTER UPDATE ON records
        WHEN old.title IS NOT new.title OR old.authors IS NOT new.authors
            OR old.subjects IS NOT new.subjects OR old.series IS NOT new.series
            OR old.publisher IS NOT new.publisher OR old.isbn IS NOT new.isbn
            OR old.issn IS NOT new.issn OR old.language IS NOT new.language
            OR old.format IS NOT new.format OR old.year IS NOT new.year
        BEGIN
            INSERT INTO search_fts (search_fts, {_SEARCH_COLUMNS})
            VALUES ('delete', {_search_values("old")});
            INSERT INTO search_fts ({_SEARCH_COLUMNS}) VALUES ({_search_values("new")});
        END;
        """
    )
    db.execute(
        f"INSERT INTO search_fts ({_SEARCH_COLUMNS}) "
        f"SELECT {_search_values('records')} FROM records ORDER BY 1"  # one flush per batch
    )


_SEARCH_COLUMNS = "rowid, title, authors, subjects, series, publisher, ids, facets"


def _search_values(row: str) -> str:
    """search_fts values for ``row`` (new, old, or the table): peernode/search.py builds its
    queries on exactly these docids and facet tokens (l: library, g: language, f: format,
    y/d/c: year, decade, century, offset by 10000 so every year is a positive number)."""
    return (
        f"(min(length({row}.title), 1023) << 40) | {row}.id, {row}.title, {row}.authors, "
        f"{row}.subjects, {row}.series, {row}.publisher, {row}.isbn || ' ' || {row}.issn, "
        f"'l' || substr(hex({row}.author), 1, 16) "
        f"|| CASE {row}.language WHEN '' THEN '' ELSE ' g' || hex(lower({row}.language)) END "
        f"|| CASE {row}.format WHEN '' THEN '' ELSE ' f' || hex(lower({row}.format)) END "
        f"|| CASE WHEN {row}.year IS NULL THEN '' "
        f"ELSE ' y' || ({row}.year + 10000) || ' d' || (({row}.year + 10000) / 10) "
        f"|| ' c' || (({row}.year + 10000) / 100) END"
    )


def _backfill_search_columns(conn: sqlite3.Connection) -> None:
    """series, issn, language and format of the records stored before _v10, from their data."""
    import json

    import msgpack  # the migration alone decodes stored records here

    updates = []
    for rowid, data in conn.execute("SELECT id, data FROM records"):
        wire = msgpack.unpackb(data, raw=False)[1]
        updates.append(
            (
                json.dumps(wire.get("series", []), ensure_ascii=False),
                json.dumps(wire.get("issn", []), ensure_ascii=False),
                wire.get("language", ""),
                wire.get("format", ""),
                rowid,
            )
        )
    conn.executemany(
        "UPDATE records SET series = ?, issn = ?, language = ?, format = ? WHERE id = ?", updates
    )


def _v11(db: sqlite_utils.Database) -> None:
    """Clustering and copy cataloguing (issue 8)."""
    # record_keys: each record's match keys (peernode/matchkeys.py); record_clusters: its union
    # entry. cluster_splits / cluster_joins: this node's corrections, kept by (library, record
    # id) so they outlive the record's row; never replicated. original_records: the source
    # record (MARC-in-JSON) of our own imports, for a lossless export; local too.
    db.executescript(
        """
        CREATE TABLE record_keys (
            key TEXT NOT NULL, id INTEGER NOT NULL, PRIMARY KEY (key, id)
        ) WITHOUT ROWID;
        CREATE INDEX record_keys_id ON record_keys (id);
        CREATE TABLE record_clusters (id INTEGER PRIMARY KEY, cluster INTEGER NOT NULL);
        CREATE INDEX record_clusters_cluster ON record_clusters (cluster);
        CREATE TABLE cluster_splits (
            author BLOB NOT NULL, rid TEXT NOT NULL, PRIMARY KEY (author, rid)
        ) WITHOUT ROWID;
        CREATE TABLE cluster_joins (
            author_a BLOB NOT NULL, rid_a TEXT NOT NULL,
            author_b BLOB NOT NULL, rid_b TEXT NOT NULL,
            PRIMARY KEY (author_a, rid_a, author_b, rid_b)
        ) WITHOUT ROWID;
        CREATE TABLE original_records (
            author BLOB NOT NULL, rid TEXT NOT NULL, format TEXT NOT NULL, data TEXT NOT NULL,
            PRIMARY KEY (author, rid)
        ) WITHOUT ROWID;
        """
    )
    from .clusters import rebuild  # records already held are grouped once, here

    rebuild(db.conn)


def _v12(db: sqlite_utils.Database) -> None:
    """Serials and cooperation reports (issue 8)."""
    # Kept on updates and deletes by triggers on records; a new row's record_isbns and
    # serial_records are written by the store's upsert (peernode/rowindex.py: set-based per
    # batch, cheaper than a trigger per row). record_added: when a record was
    # first put (the signed timestamp of that catalogue entry; NULL when it came in a snapshot,
    # whose history is not known), written by the store, which has the entry at hand (a
    # trigger's lookup of the entry row cost half the apply time: entries rows are large); an
    # edit leaves it (INSERT OR IGNORE), a delete removes it (trigger). record_isbns: each ISBN of
    # each record, for "who holds this?". serial_records: records whose stored bytes hold the
    # msgpack strings "issn", "serial" or "summary" — candidates that peernode/serials.py
    # decodes and checks, so the union list never scans the whole catalogue. intents: the
    # latest state of every library's purchase intents (peernode/intents.py).
    db.executescript(
        """
        CREATE TABLE record_added (
            author BLOB NOT NULL, rid TEXT NOT NULL, added_at INTEGER,
            PRIMARY KEY (author, rid)
        ) WITHOUT ROWID;
        CREATE INDEX record_added_at ON record_added (added_at);
        CREATE INDEX record_added_author ON record_added (author, added_at);
        CREATE TABLE record_isbns (
            isbn TEXT NOT NULL, author BLOB NOT NULL, rid TEXT NOT NULL,
            PRIMARY KEY (isbn, author, rid)
        ) WITHOUT ROWID;
        CREATE TABLE serial_records (
            author BLOB NOT NULL, rid TEXT NOT NULL, PRIMARY KEY (author, rid)
        ) WITHOUT ROWID;
        CREATE TABLE intents (
            author BLOB NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL,
            status TEXT NOT NULL, announced_at INTEGER NOT NULL, changed_at INTEGER NOT NULL,
            isbn TEXT NOT NULL, title TEXT NOT NULL, authors TEXT NOT NULL,
            note TEXT NOT NULL, planned TEXT NOT NULL, reason TEXT NOT NULL,
            PRIMARY KEY (author, id)
        ) WITHOUT ROWID;
        -- Overlap and unique-title reports group by (union key, library): a covering index.
        CREATE INDEX records_union ON records (match_key, author);
        CREATE TRIGGER coop_records_au AFTER UPDATE ON records BEGIN
            DELETE FROM record_isbns WHERE author = old.author AND rid = old.rid
                AND isbn IN (SELECT value FROM json_each(
                    CASE WHEN json_valid(old.isbn) THEN old.isbn ELSE '[]' END));
            INSERT OR IGNORE INTO record_isbns (isbn, author, rid)
                SELECT value, new.author, new.rid FROM json_each(
                    CASE WHEN json_valid(new.isbn) THEN new.isbn ELSE '[]' END)
                WHERE type = 'text';
            DELETE FROM serial_records WHERE author = old.author AND rid = old.rid;
            INSERT OR IGNORE INTO serial_records (author, rid)
                SELECT new.author, new.rid WHERE instr(new.data, X'a46973736e') > 0
                OR instr(new.data, X'a673657269616c') > 0
                OR instr(new.data, X'a773756d6d617279') > 0;
        END;
        CREATE TRIGGER coop_records_ad AFTER DELETE ON records BEGIN
            DELETE FROM record_added WHERE author = old.author AND rid = old.rid;
            DELETE FROM record_isbns WHERE author = old.author AND rid = old.rid
                AND isbn IN (SELECT value FROM json_each(
                    CASE WHEN json_valid(old.isbn) THEN old.isbn ELSE '[]' END));
            DELETE FROM serial_records WHERE author = old.author AND rid = old.rid;
        END;
        INSERT INTO record_isbns (isbn, author, rid)
            SELECT DISTINCT j.value, r.author, r.rid FROM records r,
                json_each(CASE WHEN json_valid(r.isbn) THEN r.isbn ELSE '[]' END) j
            WHERE j.type = 'text';
        INSERT INTO serial_records (author, rid)
            SELECT author, rid FROM records WHERE instr(data, X'a46973736e') > 0
            OR instr(data, X'a673657269616c') > 0 OR instr(data, X'a773756d6d617279') > 0;
        """
    )
    _backfill_added(db.conn)


def _backfill_added(conn: sqlite3.Connection) -> None:
    """When each record already held was first put: replay the stored catalogue entries' ops
    (a delete forgets, so a record put again counts from then). Records from a snapshot have
    no entry and stay NULL: their date is not known."""
    from protocol.entries import decode_entry  # the migration alone needs the protocol

    added: dict[tuple[bytes, str], int] = {}
    rows = conn.execute(
        "SELECT raw FROM entries WHERE log = 'catalog' AND kind = 'catalog' ORDER BY author, seq"
    )
    for (raw,) in rows:
        entry = decode_entry(raw, now_ms=None)
        for op in entry.body["ops"]:
            if op[0] == "put":
                added.setdefault((entry.author, op[1]), entry.timestamp)
            else:
                added.pop((entry.author, op[1]), None)
    conn.execute(
        "INSERT INTO record_added (author, rid, added_at) SELECT author, rid, NULL FROM records"
    )
    conn.executemany(
        "UPDATE record_added SET added_at = ? WHERE author = ? AND rid = ?",
        ((ts, author, rid) for (author, rid), ts in added.items()),
    )


def _v13(db: sqlite_utils.Database) -> None:
    """Web page staff accounts and sessions (issue 5)."""
    # password: "scrypt$N$r$p$salt$hash" (peernode/webui/auth.py). A session row holds only the
    # SHA-256 of the browser's token, so the database (or a backup) opens no session.
    db.executescript(
        """
        CREATE TABLE staff_accounts (
            name TEXT PRIMARY KEY, password TEXT NOT NULL, changed_at INTEGER NOT NULL
        );
        CREATE TABLE staff_sessions (
            token_hash BLOB PRIMARY KEY, account TEXT NOT NULL,
            created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL
        );
        CREATE INDEX staff_sessions_expires ON staff_sessions (expires_at);
        """
    )


def _v14(db: sqlite_utils.Database) -> None:
    """Replication speed (issue 6): one index fewer to write per record received."""
    # records_union (match_key, author), from _v12, answers every lookup by match_key that
    # records_match_key did; keeping both cost a second random B-tree insert per record.
    db.executescript("DROP INDEX IF EXISTS records_match_key;")


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _v1,
    _v2,
    _v3,
    _v4,
    _v5,
    _v6,
    _v7,
    _v8,
    _v9,
    _v10,
    _v11,
    _v12,
    _v13,
    _v14,
]
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
