"""Lending policies, loan offers and cooperation agreements on this node.

The store materialises ``policy``, ``offer`` and ``agreement`` entries (every member's, as
replicated) into ``policies``, ``offers`` and ``agreement_statements``; agreements are folded on
read (protocol/cooperation.py) with the day passed in, since their standing changes with the
date. ``serves`` answers the question the rota and the CLI ask: would this library lend to that
one today, and if not, why not.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgpack
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import Entry, node_id
from protocol.cooperation import (
    AGREEMENT,
    AGREEMENTS_LOG,
    IN_FORCE,
    OFFER,
    OFFERS_LOG,
    POLICY,
    POLICY_LOG,
    Agreement,
    AgreementStatement,
    fold_agreements,
)
from protocol.encoding import pack

if TYPE_CHECKING:
    from .store import Store


class CooperationError(Exception):
    """A policy, offer or agreement action that cannot be done; the message says why."""


def unpack(blob: bytes) -> Any:
    """A body stored by a materialiser: verified on arrival, so decoded without the bounds."""
    return msgpack.unpackb(blob, raw=False)


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


# --- materialisers (called by Store inside its transaction) -------------------------------------


def materialize_policy(conn: sqlite3.Connection, entry: Entry, source: str | None) -> None:
    if entry.log != POLICY_LOG:
        return
    conn.execute(
        "INSERT INTO policies (author, body, seq) VALUES (?, ?, ?) ON CONFLICT (author) "
        "DO UPDATE SET body = excluded.body, seq = excluded.seq WHERE excluded.seq > seq",
        (entry.author, pack(entry.body), entry.seq),
    )


def materialize_offer(conn: sqlite3.Connection, entry: Entry, source: str | None) -> None:
    if entry.log != OFFERS_LOG:
        return
    if entry.body["op"] == "remove":
        conn.execute(
            "DELETE FROM offers WHERE author = ? AND id = ?", (entry.author, entry.body["id"])
        )
        return
    conn.execute(
        "INSERT INTO offers (author, id, body, seq) VALUES (?, ?, ?, ?) ON CONFLICT (author, id) "
        "DO UPDATE SET body = excluded.body, seq = excluded.seq",
        (entry.author, entry.body["id"], pack(entry.body), entry.seq),
    )


def materialize_agreement(conn: sqlite3.Connection, entry: Entry, source: str | None) -> None:
    if entry.log != AGREEMENTS_LOG:
        return
    conn.execute(
        "INSERT OR IGNORE INTO agreement_statements (hash, author, body, ts) VALUES (?, ?, ?, ?)",
        (entry.hash, entry.author, pack(entry.body), entry.timestamp),
    )


# --- policies -----------------------------------------------------------------------------------

DEFAULT_POLICY: dict[str, Any] = {"lends": True, "copies": True, "serves": "all"}
# States in which an item is out with the requester (counted against ``max_items``).
ON_LOAN = ("WillSupply", "Loaned", "Received", "RenewPending", "Overdue", "Recalled")


def policy(conn: sqlite3.Connection, author: bytes) -> dict[str, Any]:
    """``author``'s lending policy; a library that published none lends to every member."""
    row = conn.execute("SELECT body FROM policies WHERE author = ?", (author,)).fetchone()
    return dict(unpack(row[0])) if row else dict(DEFAULT_POLICY)


def set_policy(store: Store, key: Ed25519PrivateKey, body: dict[str, Any]) -> Entry:
    return store.append(key, POLICY_LOG, POLICY, body)


def policy_json(conn: sqlite3.Connection, author: bytes) -> dict[str, Any]:
    body = policy(conn, author)
    out = {k: v for k, v in body.items() if k != "partners"}
    out["partners"] = [node_id(k) for k in body.get("partners", [])]
    out["node_id"] = node_id(author)
    out["name"] = library_name(conn, author)
    return out


def all_policies(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return [policy_json(conn, a) for (a,) in conn.execute("SELECT author FROM policies")]


@dataclass(frozen=True)
class Verdict:
    ok: bool
    why: str = ""


def serves(
    conn: sqlite3.Connection, lender: bytes, requester: bytes, service: str, day: str
) -> Verdict:
    """Whether ``lender``'s policy (and its agreements, on ``day``) lets it serve ``requester``."""
    body = policy(conn, lender)
    name = library_name(conn, lender)
    if service == "copy" and not body["copies"]:
        return Verdict(False, f"{name}'s policy sends no copies")
    if service == "loan" and not body["lends"]:
        return Verdict(False, f"{name}'s policy lends nothing to other libraries")
    for first, last in body.get("closed", []):
        if first <= day <= last:
            return Verdict(False, f"{name} is closed for loans from {first} to {last}")
    if service == "loan" and "max_items" in body:
        out = conn.execute(
            "SELECT count(*) FROM loans WHERE lender = ? AND requester = ? AND service = 'loan' "
            f"AND state IN ({','.join('?' * len(ON_LOAN))})",
            (lender, requester, *ON_LOAN),
        ).fetchone()[0]
        if out >= body["max_items"]:
            return Verdict(
                False,
                f"{name} lends at most {body['max_items']} items at a time to a partner, "
                f"and this library has {out}",
            )
    if body["serves"] == "listed" and requester not in body.get("partners", []):
        return Verdict(False, f"{name}'s policy serves only the libraries it lists, not this one")
    if body["serves"] == "agreement":
        scope = "copies" if service == "copy" else "loans"
        found = [
            a
            for a in agreements(conn).values()
            if {lender, requester} <= set(a.parties)
            and (scope in a.scope or "reciprocal" in a.scope)
        ]
        if not any(a.status(day) == IN_FORCE for a in found):
            if found:
                latest = max(found, key=lambda a: a.end)
                return Verdict(
                    False,
                    f"{name} serves only under an agreement in force, and agreement "
                    f"{latest.id.hex()[:12]} ({latest.title}) is {latest.status(day)}"
                    + (f" since {latest.end}" if latest.status(day) == "expired" else ""),
                )
            return Verdict(False, f"{name} serves only libraries it has an agreement with")
    return Verdict(True)


# --- offers -------------------------------------------------------------------------------------


def offers(conn: sqlite3.Connection, author: bytes | None = None) -> list[dict[str, Any]]:
    sql = "SELECT author, body FROM offers" + (" WHERE author = ?" if author else "")
    rows = conn.execute(sql + " ORDER BY author, id", (author,) if author else ())
    out = []
    for who, body in rows:
        item = dict(unpack(body))
        item.pop("op", None)
        item["node_id"] = node_id(who)
        item["name"] = library_name(conn, who)
        out.append(item)
    return out


def offered(conn: sqlite3.Connection, lender: bytes, rid: str) -> bool:
    """``lender`` advertises this record (or everything, rule ``all``)."""
    for (body,) in conn.execute("SELECT body FROM offers WHERE author = ?", (lender,)):
        item = unpack(body)
        if item.get("record") == rid or item.get("rule") == "all":
            return True
    return False


def add_offer(store: Store, key: Ed25519PrivateKey, body: dict[str, Any]) -> Entry:
    return store.append(key, OFFERS_LOG, OFFER, {"op": "add", **body})


def remove_offer(store: Store, key: Ed25519PrivateKey, offer_id: str) -> Entry:
    row = store.conn.execute(
        "SELECT 1 FROM offers WHERE author = ? AND id = ?", (store.own_key, offer_id)
    ).fetchone()
    if row is None:
        raise CooperationError(f"this library has no offer {offer_id!r} (`peernode offer list`)")
    return store.append(key, OFFERS_LOG, OFFER, {"op": "remove", "id": offer_id})


# --- agreements ---------------------------------------------------------------------------------


def agreements(conn: sqlite3.Connection) -> dict[bytes, Agreement]:
    rows = conn.execute("SELECT hash, author, body FROM agreement_statements")
    return fold_agreements(AgreementStatement(h, a, unpack(b)) for h, a, b in rows)


def find_agreement(conn: sqlite3.Connection, prefix: str) -> Agreement:
    """The agreement whose id starts with the hex ``prefix`` (as `agreement list` shows it)."""
    text = prefix.strip().lower()
    found = [a for a in agreements(conn).values() if a.id.hex().startswith(text)] if text else []
    if len(found) != 1:
        raise CooperationError(
            f"no agreement {prefix!r} here (`peernode agreement list`)"
            if not found
            else f"{prefix!r} names {len(found)} agreements: give more of the id"
        )
    return found[0]


def propose(
    store: Store,
    key: Ed25519PrivateKey,
    *,
    title: str,
    partners: list[bytes],
    scope: list[str],
    start: str,
    end: str,
    terms: str,
) -> Entry:
    parties = sorted({store.own_key, *partners})
    if len(parties) < 2:
        raise CooperationError("an agreement needs at least one partner besides this library")
    if end < start:
        raise CooperationError(f"the agreement would end ({end}) before it starts ({start})")
    body: dict[str, Any] = {
        "op": "propose",
        "title": title,
        "parties": parties,
        "scope": scope,
        "start": start,
        "end": end,
    }
    if terms:
        body["terms"] = terms
    return store.append(key, AGREEMENTS_LOG, AGREEMENT, body)


def sign_agreement(store: Store, key: Ed25519PrivateKey, agreement: Agreement, day: str) -> Entry:
    """Sign ``agreement``; refused for a non-party, or one that expired or was withdrawn."""
    where = f"agreement {agreement.id.hex()[:12]} ({agreement.title})"
    if store.own_key not in agreement.parties:
        raise CooperationError(f"{where}: this library is not one of its parties")
    status = agreement.status(day)
    if status in ("expired", "withdrawn"):
        ended = f"is expired (ended {agreement.end})" if status == "expired" else "was withdrawn"
        raise CooperationError(f"{where} {ended}: it can no longer be signed")
    if store.own_key in agreement.signed:
        raise CooperationError(f"{where}: this library has signed it already ({status})")
    return store.append(key, AGREEMENTS_LOG, AGREEMENT, {"op": "sign", "agreement": agreement.id})


def withdraw_agreement(
    store: Store, key: Ed25519PrivateKey, agreement: Agreement, reason: str
) -> Entry:
    where = f"agreement {agreement.id.hex()[:12]} ({agreement.title})"
    if store.own_key not in agreement.parties:
        raise CooperationError(f"{where}: this library is not one of its parties")
    if agreement.withdrawn_by:
        raise CooperationError(f"{where} was withdrawn already")
    body: dict[str, Any] = {"op": "withdraw", "agreement": agreement.id}
    if reason:
        body["reason"] = reason[:1000]
    return store.append(key, AGREEMENTS_LOG, AGREEMENT, body)


def agreement_json(conn: sqlite3.Connection, agreement: Agreement, day: str) -> dict[str, Any]:
    return {
        "id": agreement.id.hex(),
        "title": agreement.title,
        "status": agreement.status(day),
        "parties": [
            {"node_id": node_id(p), "name": library_name(conn, p), "signed": p in agreement.signed}
            for p in agreement.parties
        ],
        "proposer": node_id(agreement.proposer),
        "scope": list(agreement.scope),
        "start": agreement.start,
        "end": agreement.end,
        "terms": agreement.terms,
        "withdrawn_by": [node_id(k) for k in sorted(agreement.withdrawn_by)],
    }


def library_name(conn: sqlite3.Connection, key: bytes) -> str:
    row = conn.execute("SELECT name FROM libraries WHERE author = ?", (key,)).fetchone()
    return str(row[0]) if row else node_id(key)[:9]
