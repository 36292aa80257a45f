"""Intent to purchase: a library announces what it plans to buy as a signed entry in its
``intents`` log (protocol/intents.py), and every member sees, beside each intent, which
libraries already hold the title and which others also plan to buy it.

The ``intents`` table holds each intent's latest state, folded from the entries as they are
applied (``materialize``); a withdrawn intent stays, marked withdrawn.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import Entry, InvalidBody
from protocol.intents import INTENT, INTENTS_LOG, validate

from .records import decode_record, dedupe, fold, normalize_isbn
from .reports import iso_date
from .search import RECORD_ID_MASK
from .union import EXCLUDED_SQL, library, library_names

if TYPE_CHECKING:
    from .store import Store


class IntentError(ValueError):
    """An intent that cannot be announced or withdrawn; the message says why."""


def materialize(conn: sqlite3.Connection, entry: Entry, source: str | None) -> None:
    if entry.log != INTENTS_LOG:
        return  # an intent outside the intents log says nothing (like member statements)
    body = entry.body
    if body["op"] == "add":
        conn.execute(
            "INSERT INTO intents (author, id, seq, status, announced_at, changed_at, isbn, title, "
            "authors, note, planned, reason) VALUES (?, ?, ?, 'active', ?, ?, ?, ?, ?, ?, ?, '') "
            "ON CONFLICT (author, id) DO UPDATE SET seq = excluded.seq, status = 'active', "
            "changed_at = excluded.changed_at, isbn = excluded.isbn, title = excluded.title, "
            "authors = excluded.authors, note = excluded.note, planned = excluded.planned, "
            "reason = ''",
            (
                entry.author,
                body["id"],
                entry.seq,
                entry.timestamp,
                entry.timestamp,
                json.dumps(body.get("isbn", [])),
                body.get("title", ""),
                json.dumps(body.get("authors", []), ensure_ascii=False),
                body.get("note", ""),
                body.get("planned", ""),
            ),
        )
    else:
        conn.execute(
            "UPDATE intents SET status = 'withdrawn', seq = ?, changed_at = ?, reason = ? "
            "WHERE author = ? AND id = ?",
            (entry.seq, entry.timestamp, body.get("reason", ""), entry.author, body["id"]),
        )


def announce(
    store: Store,
    key: Ed25519PrivateKey,
    *,
    isbn: Sequence[str] = (),
    title: str = "",
    authors: Sequence[str] = (),
    note: str = "",
    planned: str = "",
) -> str:
    """Sign a new intent in our ``intents`` log; returns its id."""
    isbns: list[str] = []
    for raw in isbn:
        normal = normalize_isbn(raw)
        if normal is None:
            raise IntentError(f"{raw!r} is not a valid ISBN (10 or 13 digits, check digit)")
        isbns.append(normal)
    intent_id = _new_id(store.conn, store.own_key)
    body: dict[str, Any] = {"op": "add", "id": intent_id}
    if isbns:
        body["isbn"] = list(dedupe(isbns))
    for name, value in (("title", title), ("note", note), ("planned", planned)):
        if value.strip():
            body[name] = " ".join(value.split())
    names = [" ".join(a.split()) for a in authors if a.strip()]
    if names:
        body["authors"] = names
    _check(body)
    store.append(key, INTENTS_LOG, INTENT, body)
    return intent_id


def withdraw(store: Store, key: Ed25519PrivateKey, intent_id: str, reason: str = "") -> None:
    row = store.conn.execute(
        "SELECT status FROM intents WHERE author = ? AND id = ?", (store.own_key, intent_id)
    ).fetchone()
    if row is None:
        raise IntentError(f"this library has no intent {intent_id!r} (`peernode intent list`)")
    if row[0] != "active":
        raise IntentError(f"intent {intent_id!r} is already withdrawn")
    body: dict[str, Any] = {"op": "withdraw", "id": intent_id}
    if reason.strip():
        body["reason"] = " ".join(reason.split())
    _check(body)
    store.append(key, INTENTS_LOG, INTENT, body)


def _check(body: dict[str, Any]) -> None:
    try:
        validate(body, "intent")
    except InvalidBody as exc:
        raise IntentError(str(exc).removeprefix("intent: ")) from None


def _new_id(conn: sqlite3.Connection, author: bytes) -> str:
    for _ in range(100):  # 32 random bits: a clash is rare, and checked
        candidate = secrets.token_hex(4)
        if not conn.execute(
            "SELECT 1 FROM intents WHERE author = ? AND id = ?", (author, candidate)
        ).fetchone():
            return candidate
    raise IntentError("could not choose a free intent id")  # pragma: no cover - 100 clashes


def list_intents(
    conn: sqlite3.Connection, own_key: bytes, *, withdrawn: bool = False
) -> list[dict[str, Any]]:
    """Every library's intents (active ones, or all), each with who already holds the title
    and which other libraries also plan to buy it. Ours first, then by date, newest first."""
    rows = conn.execute(
        "SELECT author, id, status, announced_at, changed_at, isbn, title, authors, note, "
        f"planned, reason FROM intents WHERE author NOT IN ({EXCLUDED_SQL})"
        + ("" if withdrawn else " AND status = 'active'")
    ).fetchall()
    names = library_names(conn)
    active = [r for r in rows if r[2] == "active"]
    out: list[dict[str, Any]] = []
    for row in rows:
        intent_id, status, announced, changed, isbn, title, authors, note, planned, why = row[1:]
        author = bytes(row[0])
        isbns: list[str] = json.loads(isbn)
        lib = library(conn, author, names)
        out.append(
            {
                "id": intent_id,
                **lib.as_dict(),
                "mine": author == own_key,
                "status": status,
                "isbn": isbns,
                "title": title,
                "authors": json.loads(authors),
                "note": note,
                "planned": planned,
                "announced_at": iso_date(announced),
                "changed_at": iso_date(changed),
                "reason": why,
                "_ms": int(announced),  # the sort's, removed by it
                "held_by": held_by(conn, isbns, title, names),
                "also_intended_by": [
                    {**library(conn, bytes(o[0]), names).as_dict(), "id": o[1], "planned": o[9]}
                    for o in active
                    if bytes(o[0]) != author and _same_title(o, isbns, title)
                ],
            }
        )
    out.sort(key=lambda i: (not i["mine"], -i.pop("_ms"), i["library"], i["id"]))
    return out


def _same_title(row: Sequence[Any], isbns: list[str], title: str) -> bool:
    theirs: list[str] = json.loads(row[5])
    if isbns and theirs:
        return bool(set(isbns) & set(theirs))
    return bool(title) and _title_key(row[6]) == _title_key(title)


def _title_key(title: str) -> str:
    return fold(title.split(" : ")[0])


def held_by(
    conn: sqlite3.Connection, isbns: list[str], title: str, names: dict[bytes, str]
) -> list[dict[str, Any]]:
    """The libraries whose catalogue holds the title: by ISBN; by title when the intent has no
    ISBN (or no record carries it) — the main title, folded, must be the same."""
    found: dict[tuple[bytes, str], bytes] = {}
    if isbns:
        marks = ",".join("?" * len(isbns))
        for author, rid, data in conn.execute(
            "SELECT r.author, r.rid, r.data FROM record_isbns i "
            "JOIN records r ON r.author = i.author AND r.rid = i.rid "
            f"WHERE i.isbn IN ({marks}) AND r.author NOT IN ({EXCLUDED_SQL})",
            isbns,
        ):
            found[(bytes(author), rid)] = data
    if not found and title.strip():
        for author, rid, data in _by_title(conn, title):
            found[(bytes(author), rid)] = data
    holders = []
    for (author, rid), data in sorted(found.items()):
        record = decode_record(data)
        holders.append(
            {
                **library(conn, author, names).as_dict(),
                "record_id": rid,
                "title": record.title,
                "copies": len(record.holdings),
            }
        )
    holders.sort(key=lambda h: (str(h["library"]).casefold(), h["record_id"]))
    return holders


def _by_title(conn: sqlite3.Connection, title: str) -> list[tuple[bytes, str, bytes]]:
    wanted = _title_key(title)
    words = wanted.split()
    if not words:
        return []
    phrase = '"' + " ".join(words[:32]) + '"'
    try:
        rows = conn.execute(
            # search_fts (migration _v10): docid = (title length << 40) | records.id
            "SELECT r.author, r.rid, r.data, r.title FROM search_fts "
            f"JOIN records r ON r.id = (search_fts.rowid & {RECORD_ID_MASK}) "
            f"WHERE search_fts MATCH ? AND r.author NOT IN ({EXCLUDED_SQL}) LIMIT 500",
            (f"title : {phrase}",),
        ).fetchall()
    except sqlite3.OperationalError:  # the full-text index is being rebuilt, or was renamed
        rows = conn.execute(
            "SELECT author, rid, data, title FROM records WHERE match_key >= ? AND match_key < ? "
            f"AND author NOT IN ({EXCLUDED_SQL}) LIMIT 500",
            (f"t:{wanted}|", f"t:{wanted}}}"),
        ).fetchall()
    return [(a, rid, data) for a, rid, data, text in rows if _title_key(text) == wanted]
