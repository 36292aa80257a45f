"""Interlibrary loans on this node: materialising loan entries, the rota, steps, statistics.

Every ``loan`` entry of every member reaches every node (the replicator copies all logs), so the
requester, every lender and every relay hold the same entries and fold them into the same
``loans`` row (protocol/loans.py). Details (notes, addresses) are sealed to the parties
(protocol/sealing.py): a relay stores and forwards them and cannot read them; a party opens them
only when it shows the request (``loan_json``), so no plaintext is ever written to the database.
"""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from protocol import Entry, node_id, short_id
from protocol.encoding import pack
from protocol.loans import (
    LOAN,
    LOANS_LOG,
    MAX_ROTA,
    Action,
    IllegalTransition,
    Loan,
    LoanRequest,
    LoanStep,
    Role,
    Service,
    State,
    check_step,
    fold,
    parse,
    request_body,
    step_body,
)
from protocol.sealing import Sealed, box_private_key, open_sealed, seal

from .clusters import CLUSTER_OF
from .cooperation import library_name, offered, policy, serves, today, unpack
from .members import HIDDEN_SQL
from .mesh import profile_body

if TYPE_CHECKING:
    from .store import Store

SUPPLIED = (str(Action.SHIPPED), str(Action.COPY_COMPLETED))
REQUEST_CONTEXT = b"peernode/loan-request/v1\x00"  # sealed details of a request (no id yet)
STEP_CONTEXT = b"peernode/loan-step/v1\x00"  # sealed details of a step: + the request id
_EXCLUDED = HIDDEN_SQL  # libraries no request goes to


class LoanError(Exception):
    """A loan action that cannot be done; the message names the request and its state."""


# --- materialising (called by Store inside its transaction) -------------------------------------


def materialize(conn: sqlite3.Connection, entry: Entry, source: str | None) -> None:
    if entry.log != LOANS_LOG:
        return  # a loan entry in another log says nothing
    item = parse(entry.author, entry.hash, entry.timestamp, entry.body)
    if isinstance(item, LoanRequest):
        conn.execute(
            "INSERT OR IGNORE INTO loan_requests (id, requester, body, ts) VALUES (?, ?, ?, ?)",
            (item.id, item.requester, pack(entry.body), entry.timestamp),
        )
        refold(conn, item.id)
    else:
        conn.execute(
            "INSERT OR IGNORE INTO loan_steps (hash, request, author, body, ts) "
            "VALUES (?, ?, ?, ?, ?)",
            (item.hash, item.request, item.author, pack(entry.body), entry.timestamp),
        )
        refold(conn, item.request)  # nothing yet if its request has not arrived


def load(conn: sqlite3.Connection, request_id: bytes) -> Loan | None:
    row = conn.execute(
        "SELECT requester, body, ts FROM loan_requests WHERE id = ?", (request_id,)
    ).fetchone()
    if row is None:
        return None
    request = parse(row[0], request_id, row[2], unpack(row[1]))
    assert isinstance(request, LoanRequest)
    steps = [
        parse(author, h, ts, unpack(body))
        for h, author, body, ts in conn.execute(
            "SELECT hash, author, body, ts FROM loan_steps WHERE request = ?", (request_id,)
        )
    ]
    return fold(request, [s for s in steps if isinstance(s, LoanStep)])


def refold(conn: sqlite3.Connection, request_id: bytes) -> Loan | None:
    """Fold one request again from every step held and rewrite its rows."""
    loan = load(conn, request_id)
    if loan is None:
        return None
    updated = loan.history[-1].timestamp if loan.history else loan.request.timestamp
    conn.execute(
        "INSERT OR REPLACE INTO loans (id, requester, lender, service, state, title, due, tip, "
        "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            loan.id,
            loan.requester,
            loan.lender,
            str(loan.request.service),
            str(loan.state),
            loan.request.title,
            loan.due,
            loan.tip,
            loan.request.timestamp,
            updated,
        ),
    )
    conn.execute("DELETE FROM loan_history WHERE request = ?", (loan.id,))
    conn.executemany(
        "INSERT INTO loan_history (request, n, hash, author, action, ts) VALUES (?, ?, ?, ?, ?, ?)",
        [(loan.id, n, s.hash, s.author, s.action, s.timestamp) for n, s in enumerate(loan.history)],
    )
    return loan


def find(conn: sqlite3.Connection, prefix: str) -> Loan:
    """The request whose id starts with the hex ``prefix`` (at least 6 characters)."""
    text = prefix.strip().lower()
    if len(text) < 6 or any(c not in "0123456789abcdef" for c in text):
        raise LoanError(f"{prefix!r} is not a request id: give at least 6 hex digits of it")
    rows = conn.execute(
        "SELECT id FROM loan_requests WHERE hex(id) >= upper(?) AND hex(id) < upper(?) LIMIT 2",
        (text, text + "g"),
    ).fetchall()
    if not rows:
        raise LoanError(f"no request {text} on this node (`peernode loan list`)")
    if len(rows) > 1:
        raise LoanError(f"{text} names several requests: give more of the id")
    loan = load(conn, rows[0][0])
    assert loan is not None
    return loan


# --- who can lend -------------------------------------------------------------------------------


def holders(conn: sqlite3.Connection, author: bytes, rid: str) -> list[tuple[bytes, str]]:
    """Every library holding the union entry of ``author``'s record ``rid``, with its record id.

    The union entry is the record's cluster (peernode/clusters.py), so a split or join made
    here changes whom a request may go to.
    """
    rows = conn.execute(
        "SELECT r.author, min(r.rid) FROM record_clusters c JOIN records r ON r.id = c.id "
        "WHERE c.cluster = (SELECT " + CLUSTER_OF + " FROM records r WHERE author = ? AND rid = ?) "
        f"AND r.author NOT IN ({_EXCLUDED}) GROUP BY r.author",
        (author, rid),
    )
    return [(a, r) for a, r in rows]


def rota(
    conn: sqlite3.Connection,
    requester: bytes,
    candidates: list[tuple[bytes, str]],
    service: str,
    day: str,
    *,
    named: list[bytes] | None = None,
) -> list[tuple[bytes, str]]:
    """The lenders to ask, in order: holders whose policy (and agreements) serve us, those that
    offer the record first, then the most recently heard from. ``named`` lenders (the
    librarian's choice, in that order) must all qualify, or the request is refused."""
    held = dict(candidates)
    if named is not None:
        chosen = []
        for key in named:
            if key == requester:
                raise LoanError("a library cannot ask itself: name other libraries with --lender")
            if key not in held:
                raise LoanError(f"{library_name(conn, key)} holds no copy of this title")
            verdict = serves(conn, key, requester, service, day)
            if not verdict.ok:
                raise LoanError(f"cannot ask {library_name(conn, key)}: {verdict.why}")
            chosen.append((key, held[key]))
        return chosen[:MAX_ROTA]
    beats = dict(conn.execute("SELECT key, COALESCE(beat_at, 0) FROM liveness"))
    eligible = [
        (key, rid)
        for key, rid in candidates
        if key != requester and serves(conn, key, requester, service, day).ok
    ]
    eligible.sort(key=lambda kr: (not offered(conn, kr[0], kr[1]), -beats.get(kr[0], 0), kr[0]))
    return eligible[:MAX_ROTA]


def box_key_of(conn: sqlite3.Connection, author: bytes) -> bytes | None:
    body = profile_body(conn, author)
    key = body.get("box_key") if body else None
    return key if isinstance(key, bytes) else None


def _seal(
    conn: sqlite3.Connection, parties: list[bytes], text: str, context: bytes
) -> dict[str, Any]:
    recipients = [k for k in (box_key_of(conn, p) for p in parties) if k is not None]
    if not recipients:
        raise LoanError("no party has published a box key yet: details cannot be sealed")
    sealed = seal(
        json.dumps({"note": text}, ensure_ascii=False).encode(),
        recipients,
        context,
        ephemeral=X25519PrivateKey.generate(),
        content_key=os.urandom(32),
    )
    return sealed.to_body()


def open_details(body: dict[str, Any], own: X25519PrivateKey, context: bytes) -> str | None:
    if "details" not in body:
        return None
    plain = open_sealed(Sealed.from_body(body["details"]), own, context)
    if plain is None:
        return None
    try:
        note = json.loads(plain).get("note")
    except (ValueError, AttributeError):
        return None
    return note if isinstance(note, str) else None


# --- signing requests and steps -----------------------------------------------------------------


def find_record(conn: sqlite3.Connection, ref: str, holder: bytes | None) -> tuple[bytes, str]:
    """A record by id (``--holder`` when several libraries use that id for different titles)."""
    sql = "SELECT author, match_key FROM records WHERE rid = ?" + (
        " AND author = ?" if holder else ""
    )
    rows = conn.execute(sql, (ref, holder) if holder else (ref,)).fetchall()
    if not rows:
        raise LoanError(f"no record {ref!r} in the union catalogue here (`peernode search`)")
    if len({key for _, key in rows}) > 1:
        raise LoanError(f"several titles have the record id {ref!r}: say whose with --holder")
    return rows[0][0], ref


def request(
    store: Store,
    key: Ed25519PrivateKey,
    record: tuple[bytes, str],
    *,
    service: Service = Service.LOAN,
    note: str = "",
    needed_by: str | None = None,
    copyright: str | None = None,
    lenders: list[bytes] | None = None,
    day: str | None = None,
) -> Entry:
    """Sign a request for the union entry of ``record``, with its rota."""
    conn = store.conn
    day = day or today()
    if service is Service.COPY and not copyright:
        raise LoanError("a copy request must declare its copyright conditions (--copyright)")
    title_row = conn.execute(
        "SELECT title, match_key FROM records WHERE author = ? AND rid = ?", record
    ).fetchone()
    if title_row is None:
        raise LoanError(f"no record {record[1]!r} of {short_id(record[0])} here")
    found = holders(conn, *record)
    order = rota(conn, store.own_key, found, service, day, named=lenders)
    if not order:
        others = [k for k, _ in found if k != store.own_key]
        why = "; ".join(serves(conn, k, store.own_key, service, day).why for k in others)
        raise LoanError(
            f"no library can lend {title_row[0]!r} to this one"
            + (f": {why}" if why else ": no other library holds it")
        )
    details = None
    if note:
        parties = [store.own_key, *(k for k, _ in order)]
        details = _seal(conn, parties, note, REQUEST_CONTEXT + store.own_key)
    body = request_body(
        service=service,
        title=title_row[0],
        match=title_row[1],
        rota=order,
        needed_by=needed_by,
        copyright=copyright if service is Service.COPY else None,
        details=details,
    )
    return store.append(key, LOANS_LOG, LOAN, body)


def step(
    store: Store,
    key: Ed25519PrivateKey,
    loan: Loan,
    action: str,
    *,
    reason: str = "",
    terms: str = "",
    due: str | None = None,
    note: str = "",
    day: str | None = None,
) -> Entry | None:
    """Sign ``action`` on ``loan`` as this library. None when this library took that very step
    last already (a repeated command is a no-op: the request id makes steps idempotent)."""
    me = store.own_key
    last = loan.history[-1] if loan.history else None
    if last is not None and last.author == me and last.action == action:
        return None
    try:
        act = check_step(loan, me, action)
    except IllegalTransition as exc:  # the same words, as this module's error
        raise LoanError(str(exc)) from None
    day = day or today()
    if due is None and act in (Action.SHIPPED, Action.RENEW_ACCEPTED):
        days = int(policy(store.conn, me).get("loan_days", 28))
        start = loan.due if act is Action.RENEW_ACCEPTED and loan.due else day
        due = (date.fromisoformat(start) + timedelta(days=days)).isoformat()
    details = None
    if note:
        details = _seal(store.conn, [loan.requester, loan.lender], note, STEP_CONTEXT + loan.id)
    body = step_body(loan, act, reason=reason, terms=terms, due=due, details=details)
    return store.append(key, LOANS_LOG, LOAN, body)


def mark_overdue(store: Store, key: Ed25519PrivateKey, day: str) -> list[bytes]:
    """As lender, sign Overdue on every loan we lent that is past its due date."""
    rows = store.conn.execute(
        "SELECT id FROM loans WHERE lender = ? AND state = ? AND due IS NOT NULL AND due < ?",
        (store.own_key, str(State.RECEIVED), day),
    ).fetchall()
    marked = []
    for (request_id,) in rows:
        loan = load(store.conn, request_id)
        if loan is not None and step(store, key, loan, str(Action.OVERDUE), day=day):
            marked.append(request_id)
    return marked


# --- what the CLI and the API show --------------------------------------------------------------


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def loan_json(
    conn: sqlite3.Connection, loan: Loan, own: bytes, box: X25519PrivateKey | None
) -> dict[str, Any]:
    """A request as `loan show --json` and /api/loans/{id} give it. Details are opened only with
    this node's box key, and only if it is a party; otherwise they are left out."""
    req = loan.request

    def who(key: bytes) -> dict[str, str]:
        return {"node_id": node_id(key), "name": library_name(conn, key)}

    out: dict[str, Any] = {
        "id": loan.id.hex(),
        "service": str(req.service),
        "state": str(loan.state),
        "title": req.title,
        "requester": who(loan.requester),
        "lender": who(loan.lender),
        "rota": [
            {**who(k), "record_id": rid, "declined": k in loan.declined_by} for k, rid in req.rota
        ],
        "role": str(loan.role_of(own)) if loan.role_of(own) else None,
        "due": loan.due,
        "needed_by": req.body.get("needed_by"),
        "copyright": req.body.get("copyright"),
        "created_at": req.timestamp,
        "history": [
            {
                "action": s.action,
                "by": who(s.author),
                "at": s.timestamp,
                "at_text": _when(s.timestamp),
                **{k: s.body[k] for k in ("reason", "terms", "due") if k in s.body},
                "sealed": "details" in s.body,
            }
            for s in loan.history
        ],
        "superseded": [{"action": s.action, "by": who(s.author)} for s in loan.superseded],
        "sealed": "details" in req.body,
    }
    if box is not None and (own == loan.requester or own in {k for k, _ in req.rota}):
        out["details"] = open_details(req.body, box, REQUEST_CONTEXT + loan.requester)
        for entry, item in zip(loan.history, out["history"], strict=True):
            if "details" in entry.body:
                item["details"] = open_details(entry.body, box, STEP_CONTEXT + loan.id)
    return out


def list_loans(conn: sqlite3.Connection, own: bytes, *, mine: bool = True) -> list[dict[str, Any]]:
    """Requests this library takes part in (or, ``mine=False``, every request held here)."""
    sql = "SELECT id, requester, lender, service, state, title, due, updated_at FROM loans"
    args: tuple[Any, ...] = ()
    if mine:
        sql += " WHERE requester = ? OR lender = ? OR id IN (SELECT request FROM loan_history "
        sql += "WHERE author = ?)"
        args = (own, own, own)
    rows = conn.execute(sql + " ORDER BY updated_at DESC", args)
    return [
        {
            "id": rid.hex(),
            "requester": library_name(conn, req),
            "lender": library_name(conn, lender),
            "role": "requester" if req == own else "lender" if lender == own else "",
            "service": service,
            "state": state,
            "title": title,
            "due": due,
            "updated_at": updated,
        }
        for rid, req, lender, service, state, title, due, updated in rows
    ]


def statistics(conn: sqlite3.Connection, own: bytes) -> dict[str, Any]:
    """Per library (network-wide, from the signed steps every node holds) and per partner of
    this library: items lent and borrowed, requests declined, fill rate, turnaround (request to
    supply, by the signed timestamps, so every node computes the same numbers)."""
    supplied = conn.execute(
        "SELECT h.author, l.requester, h.ts - l.created_at FROM loan_history h "
        f"JOIN loans l ON l.id = h.request WHERE h.action IN ({','.join('?' * len(SUPPLIED))})",
        SUPPLIED,
    ).fetchall()
    declined = conn.execute(
        "SELECT h.author, l.requester FROM loan_history h JOIN loans l ON l.id = h.request "
        "WHERE h.action = ?",
        (str(Action.UNFILLED),),
    ).fetchall()
    libraries: dict[bytes, dict[str, Any]] = {}

    def row(key: bytes) -> dict[str, Any]:
        return libraries.setdefault(
            key, {"lent": 0, "borrowed": 0, "declined": 0, "turnaround_ms": []}
        )

    for lender, requester, took in supplied:
        row(lender)["lent"] += 1
        row(lender)["turnaround_ms"].append(took)
        row(requester)["borrowed"] += 1
    for lender, _requester in declined:
        row(lender)["declined"] += 1
    partners: dict[bytes, dict[str, int]] = {}
    pairs = [(lender, requester, "lent_to", "borrowed_from") for lender, requester, _ in supplied]
    pairs += [(lender, requester, "declined_to", "declined_by") for lender, requester in declined]
    for lender, requester, as_lender, as_requester in pairs:
        if own in (lender, requester) and lender != requester:
            p = partners.setdefault(
                requester if lender == own else lender,
                {"lent_to": 0, "borrowed_from": 0, "declined_to": 0, "declined_by": 0},
            )
            p[as_lender if lender == own else as_requester] += 1
    return {
        "libraries": [
            {
                "node_id": node_id(key),
                "name": library_name(conn, key),
                "lent": r["lent"],
                "borrowed": r["borrowed"],
                "declined": r["declined"],
                "fill_rate": round(r["lent"] / (r["lent"] + r["declined"]), 3)
                if r["lent"] + r["declined"]
                else None,
                "turnaround_hours": round(
                    sorted(r["turnaround_ms"])[len(r["turnaround_ms"]) // 2] / 3_600_000, 2
                )
                if r["turnaround_ms"]
                else None,
                "self": key == own,
            }
            for key, r in sorted(libraries.items(), key=lambda kv: library_name(conn, kv[0]))
        ],
        "partners": [
            {"node_id": node_id(key), "name": library_name(conn, key), **p}
            for key, p in sorted(partners.items(), key=lambda kv: library_name(conn, kv[0]))
        ],
    }


def own_box(key: Ed25519PrivateKey) -> X25519PrivateKey:
    return box_private_key(key)


__all__ = [
    "LoanError",
    "Role",
    "find",
    "holders",
    "list_loans",
    "load",
    "loan_json",
    "materialize",
    "request",
    "rota",
    "statistics",
    "step",
]
