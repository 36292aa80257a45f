"""Interlibrary loan requests: the state machine, the signed steps, and their fold (sans-IO).

A request is a ``loan`` entry ``{"op": "request", ...}`` in the requester's ``loans`` log; its
entry hash is the request id. Every later step is a ``loan`` entry ``{"op": "step", "request":
id, "after": hash, "action": ...}`` signed by the party that takes it, in that party's own
``loans`` log. ``after`` names the step it follows (the request itself for the first), so steps
form a tree, and the fold walks it from the request:

- at the current tip, the candidates are the steps whose ``after`` is the tip, whose action the
  ``TRANSITIONS`` table allows in the current state, and whose author is the party the table
  names (the requester, or the *current* lender of the rota);
- when several qualify (the requester cancels while the lender ships), the lender's step wins,
  then the lowest hash; the others are *superseded*, and nothing built on them counts;
- ``Unfilled`` by a lender hands the request to the next lender of the rota (signed into the
  request by the requester), at ``RequestReceived``, without the requester acting.

The result depends only on the set of entries, never on the order they arrived in or on
duplicates, so every node that holds the same entries shows the same state
(tests/test_loans_protocol.py checks it with random interleavings).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .bodies import only_keys as _only
from .errors import InvalidBody, LocalProtocolError
from .identity import short_id
from .sealing import validate_sealed

LOAN = "loan"
LOANS_LOG = "loans"
MAX_ROTA = 16
MAX_TITLE_CHARS = 500
MAX_TEXT_CHARS = 1000  # reasons, terms, copyright declarations
_HASH_BYTES = _KEY_BYTES = 32
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class Service(StrEnum):
    LOAN = "loan"  # the item travels and comes back
    COPY = "copy"  # document delivery: a copy of an article or chapter, kept by the requester


class Role(StrEnum):
    REQUESTER = "requester"
    LENDER = "lender"


class State(StrEnum):
    """Where a request stands. ISO 18626 status names where the standard has one."""

    REQUEST_RECEIVED = "RequestReceived"
    CONDITIONAL = "Conditional"  # the lender will supply on terms the requester must accept
    WILL_SUPPLY = "WillSupply"
    LOANED = "Loaned"  # shipped by the lender, on its way
    RECEIVED = "Received"  # at the requesting library (ISO: still Loaned, after "Received")
    RENEW_PENDING = "RenewPending"
    OVERDUE = "Overdue"
    RECALLED = "Recalled"
    SHIPPED_RETURN = "ShippedReturn"
    RETURNED = "Returned"  # checked in by the lender
    LOAN_COMPLETED = "LoanCompleted"
    COPY_COMPLETED = "CopyCompleted"
    UNFILLED = "Unfilled"  # no lender of the rota could supply
    CANCELLED = "Cancelled"


FINAL = frozenset({State.LOAN_COMPLETED, State.COPY_COMPLETED, State.UNFILLED, State.CANCELLED})


class Action(StrEnum):
    """A step. ISO 18626 action and status-change names where the standard has one."""

    WILL_SUPPLY = "WillSupply"
    CONDITIONAL = "Conditional"
    UNFILLED = "Unfilled"
    SHIPPED = "Loaned"
    COPY_COMPLETED = "CopyCompleted"
    RENEW_ACCEPTED = "RenewAccepted"
    RENEW_REJECTED = "RenewRejected"
    OVERDUE = "Overdue"
    RECALL = "Recalled"
    CHECKED_IN = "CheckedIn"
    LOAN_COMPLETED = "LoanCompleted"
    ACCEPT_CONDITIONS = "AcceptConditions"
    CANCEL = "Cancel"
    RECEIVED = "Received"
    RENEW = "Renew"
    SHIPPED_RETURN = "ShippedReturn"


@dataclass(frozen=True)
class Transition:
    role: Role
    next: State
    services: frozenset[Service] = frozenset(Service)


_L, _R = Role.LENDER, Role.REQUESTER
_LOAN_ONLY = frozenset({Service.LOAN})
_COPY_ONLY = frozenset({Service.COPY})
S, A = State, Action

# THE transition table: (state, action) -> who may take it, where it leads, for which services.
# docs/protocol.md draws the state diagram from it (tools/loandoc.py; a test keeps it current).
TRANSITIONS: dict[tuple[State, Action], Transition] = {
    (S.REQUEST_RECEIVED, A.WILL_SUPPLY): Transition(_L, S.WILL_SUPPLY),
    (S.REQUEST_RECEIVED, A.CONDITIONAL): Transition(_L, S.CONDITIONAL),
    (S.REQUEST_RECEIVED, A.UNFILLED): Transition(_L, S.UNFILLED),
    (S.REQUEST_RECEIVED, A.COPY_COMPLETED): Transition(_L, S.COPY_COMPLETED, _COPY_ONLY),
    (S.REQUEST_RECEIVED, A.CANCEL): Transition(_R, S.CANCELLED),
    (S.CONDITIONAL, A.ACCEPT_CONDITIONS): Transition(_R, S.WILL_SUPPLY),
    (S.CONDITIONAL, A.CANCEL): Transition(_R, S.CANCELLED),
    (S.CONDITIONAL, A.UNFILLED): Transition(_L, S.UNFILLED),
    (S.WILL_SUPPLY, A.SHIPPED): Transition(_L, S.LOANED, _LOAN_ONLY),
    (S.WILL_SUPPLY, A.COPY_COMPLETED): Transition(_L, S.COPY_COMPLETED, _COPY_ONLY),
    (S.WILL_SUPPLY, A.UNFILLED): Transition(_L, S.UNFILLED),
    (S.WILL_SUPPLY, A.CANCEL): Transition(_R, S.CANCELLED),
    (S.LOANED, A.RECEIVED): Transition(_R, S.RECEIVED, _LOAN_ONLY),
    (S.RECEIVED, A.RENEW): Transition(_R, S.RENEW_PENDING, _LOAN_ONLY),
    (S.RECEIVED, A.OVERDUE): Transition(_L, S.OVERDUE, _LOAN_ONLY),
    (S.RECEIVED, A.RECALL): Transition(_L, S.RECALLED, _LOAN_ONLY),
    (S.RECEIVED, A.SHIPPED_RETURN): Transition(_R, S.SHIPPED_RETURN, _LOAN_ONLY),
    (S.OVERDUE, A.RENEW): Transition(_R, S.RENEW_PENDING, _LOAN_ONLY),
    (S.OVERDUE, A.RECALL): Transition(_L, S.RECALLED, _LOAN_ONLY),
    (S.OVERDUE, A.SHIPPED_RETURN): Transition(_R, S.SHIPPED_RETURN, _LOAN_ONLY),
    (S.RENEW_PENDING, A.RENEW_ACCEPTED): Transition(_L, S.RECEIVED, _LOAN_ONLY),
    (S.RENEW_PENDING, A.RENEW_REJECTED): Transition(_L, S.RECEIVED, _LOAN_ONLY),
    (S.RENEW_PENDING, A.RECALL): Transition(_L, S.RECALLED, _LOAN_ONLY),
    (S.RENEW_PENDING, A.SHIPPED_RETURN): Transition(_R, S.SHIPPED_RETURN, _LOAN_ONLY),
    (S.RECALLED, A.SHIPPED_RETURN): Transition(_R, S.SHIPPED_RETURN, _LOAN_ONLY),
    (S.SHIPPED_RETURN, A.CHECKED_IN): Transition(_L, S.RETURNED, _LOAN_ONLY),
    (S.SHIPPED_RETURN, A.LOAN_COMPLETED): Transition(_L, S.LOAN_COMPLETED, _LOAN_ONLY),
    (S.RETURNED, A.LOAN_COMPLETED): Transition(_L, S.LOAN_COMPLETED, _LOAN_ONLY),
}
# Not a step anyone signs: the rota moves on by itself (see the module docstring).
ROTA_ADVANCE = (S.UNFILLED, S.REQUEST_RECEIVED, "the rota names another lender")
del S, A


class IllegalTransition(LocalProtocolError):
    """A step the table does not allow: wrong state, wrong service, or the wrong party."""

    def __init__(
        self, request: bytes, state: State, action: Action | str, actor: str, why: str
    ) -> None:
        self.request, self.state, self.action, self.actor = request, state, action, actor
        super().__init__(
            f"request {request.hex()[:12]} is {state}: {actor} cannot take {action} ({why})"
        )


# --- the entries, as the fold sees them ----------------------------------------------------------


@dataclass(frozen=True)
class LoanRequest:
    """A verified request entry. ``id`` is its entry hash."""

    id: bytes
    requester: bytes
    service: Service
    title: str
    match: str
    rota: tuple[tuple[bytes, str], ...]  # (lender key, that lender's record id), in order
    timestamp: int
    body: dict[str, Any]


@dataclass(frozen=True)
class LoanStep:
    """A verified step entry. ``hash`` is its entry hash; ``after`` the step it follows."""

    hash: bytes
    request: bytes
    author: bytes
    after: bytes
    action: str
    timestamp: int
    body: dict[str, Any]


def parse(
    author: bytes, entry_hash: bytes, timestamp: int, body: dict[str, Any]
) -> LoanRequest | LoanStep:
    """The request or step in a verified ``loan`` body."""
    if body["op"] == "request":
        return LoanRequest(
            entry_hash,
            author,
            Service(body["service"]),
            body["title"],
            body.get("match", ""),
            tuple((lender, rid) for lender, rid in body["rota"]),
            timestamp,
            body,
        )
    return LoanStep(
        entry_hash,
        body["request"],
        author,
        body["after"],
        body["action"],
        timestamp,
        body,
    )


# --- the fold ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loan:
    """A request's state as every node that holds its entries derives it."""

    request: LoanRequest
    state: State
    lender_index: int
    tip: bytes
    history: tuple[LoanStep, ...]
    superseded: tuple[LoanStep, ...] = ()
    due: str | None = None
    declined_by: tuple[bytes, ...] = field(default=())

    @property
    def id(self) -> bytes:
        return self.request.id

    @property
    def requester(self) -> bytes:
        return self.request.requester

    @property
    def lender(self) -> bytes:
        return self.request.rota[self.lender_index][0]

    def role_of(self, key: bytes) -> Role | None:
        if key == self.requester:
            return Role.REQUESTER
        if key == self.lender:
            return Role.LENDER
        return None


def start(request: LoanRequest) -> Loan:
    return Loan(request, State.REQUEST_RECEIVED, 0, request.id, ())


def refusal(loan: Loan, author: bytes, action: str) -> str | None:
    """Why ``author`` may not take ``action`` now; None when the table allows it."""
    try:
        act = Action(action)
    except ValueError:
        return f"{action!r} is not an action"
    rule = TRANSITIONS.get((loan.state, act))
    if rule is None:
        allowed = sorted(
            a
            for (s, a), t in TRANSITIONS.items()
            if s is loan.state and loan.request.service in t.services
        )
        return "the request is finished" if not allowed else f"allowed now: {', '.join(allowed)}"
    if loan.request.service not in rule.services:
        return f"not for a {loan.request.service} request"
    expected = loan.requester if rule.role is Role.REQUESTER else loan.lender
    if author != expected:
        party = (
            "the requesting library"
            if rule.role is Role.REQUESTER
            else (f"the current lender ({short_id(loan.lender)})")
        )
        return f"only {party} may"
    return None


def apply(loan: Loan, step: LoanStep) -> Loan:
    """``loan`` after ``step``, which must follow the tip and be allowed (``refusal`` is None)."""
    rule = TRANSITIONS[(loan.state, Action(step.action))]
    state, index, declined = rule.next, loan.lender_index, loan.declined_by
    if state is State.UNFILLED:
        declined = (*declined, loan.lender)
        if index + 1 < len(loan.request.rota):
            state, index = State.REQUEST_RECEIVED, index + 1
    due = step.body.get("due", loan.due)
    return Loan(
        loan.request,
        state,
        index,
        step.hash,
        (*loan.history, step),
        loan.superseded,
        due,
        declined,
    )


def fold(request: LoanRequest, steps: Iterable[LoanStep]) -> Loan:
    """Walk the steps from the request; the same set of steps always gives the same Loan."""
    children: dict[bytes, list[LoanStep]] = {}
    for step in {s.hash: s for s in steps if s.request == request.id}.values():
        children.setdefault(step.after, []).append(step)
    loan = start(request)
    superseded: list[LoanStep] = []
    for _ in range(sum(map(len, children.values())) + 1):  # each round consumes one step
        candidates = children.get(loan.tip, [])
        legal = [s for s in candidates if refusal(loan, s.author, s.action) is None]
        if not legal:
            superseded.extend(candidates)
            break
        # Concurrent steps: the lender's first (it holds the item), then the lowest hash.
        chosen = min(legal, key=lambda s: (s.author != loan.lender, s.hash))
        superseded.extend(s for s in candidates if s is not chosen)
        loan = apply(loan, chosen)
    return Loan(
        loan.request,
        loan.state,
        loan.lender_index,
        loan.tip,
        loan.history,
        tuple(sorted(superseded, key=lambda s: s.hash)),
        loan.due,
        loan.declined_by,
    )


def check_step(loan: Loan, author: bytes, action: str) -> Action:
    """The action, if ``author`` may take it now; raises IllegalTransition naming why."""
    why = refusal(loan, author, action)
    if why is not None:
        role = loan.role_of(author)
        actor = f"the {role}" if role else f"{short_id(author)} (not a party at this step)"
        raise IllegalTransition(loan.id, loan.state, action, actor, why)
    return Action(action)


# --- bodies --------------------------------------------------------------------------------------


def request_body(
    *,
    service: Service,
    title: str,
    match: str,
    rota: list[tuple[bytes, str]],
    needed_by: str | None = None,
    copyright: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "op": "request",
        "service": str(service),
        "title": title[:MAX_TITLE_CHARS],
        "match": match[:MAX_TITLE_CHARS],
        "rota": [[key, rid] for key, rid in rota],
    }
    if needed_by:
        body["needed_by"] = needed_by
    if copyright is not None:
        body["copyright"] = copyright
    if details is not None:
        body["details"] = details
    return body


def step_body(
    loan: Loan,
    action: Action,
    *,
    reason: str | None = None,
    terms: str | None = None,
    due: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "op": "step",
        "request": loan.id,
        "after": loan.tip,
        "action": str(action),
    }
    for name, value in (("reason", reason), ("terms", terms), ("due", due)):
        if value:
            body[name] = value
    if details is not None:
        body["details"] = details
    return body


def validate(body: dict[str, Any], where: str) -> None:
    """The ``loan`` kind's schema (protocol/kinds.py calls this)."""
    op = body.get("op")
    if op == "request":
        _only(
            body,
            {"op", "service", "title", "match", "rota", "needed_by", "copyright", "details"},
            where,
        )
        if body.get("service") not in tuple(Service):
            raise InvalidBody(f"{where}: 'service' must be loan or copy")
        _text(body, "title", MAX_TITLE_CHARS, where, required=True)
        _text(body, "match", MAX_TITLE_CHARS, where)
        rota = body.get("rota")
        if not isinstance(rota, list) or not 1 <= len(rota) <= MAX_ROTA:
            raise InvalidBody(f"{where}: 'rota' must list 1..{MAX_ROTA} lenders")
        keys = set()
        for index, item in enumerate(rota):
            if (
                not isinstance(item, list)
                or len(item) != 2
                or not isinstance(item[0], bytes)
                or len(item[0]) != _KEY_BYTES
                or not isinstance(item[1], str)
                or not 1 <= len(item[1].encode()) <= 256
            ):
                raise InvalidBody(f"{where}: rota[{index}] must be [32-byte key, record id]")
            keys.add(item[0])
        if len(keys) != len(rota):
            raise InvalidBody(f"{where}: a lender appears twice in the rota")
        _date(body, "needed_by", where)
        if (body["service"] == Service.COPY) != ("copyright" in body):
            raise InvalidBody(f"{where}: a copy request, and only one, declares 'copyright'")
        _text(body, "copyright", MAX_TEXT_CHARS, where)
    elif op == "step":
        _only(
            body, {"op", "request", "after", "action", "reason", "terms", "due", "details"}, where
        )
        for name in ("request", "after"):
            value = body.get(name)
            if not isinstance(value, bytes) or len(value) != _HASH_BYTES:
                raise InvalidBody(f"{where}: {name!r} must be a {_HASH_BYTES}-byte entry hash")
        if body.get("action") not in tuple(Action):
            raise InvalidBody(f"{where}: 'action' must be one of {', '.join(Action)}")
        _text(body, "reason", MAX_TEXT_CHARS, where)
        _text(body, "terms", MAX_TEXT_CHARS, where)
        _date(body, "due", where)
    else:
        raise InvalidBody(f"{where}: 'op' must be request or step")
    if "details" in body:
        validate_sealed(body["details"], f"{where} details")


def _text(
    body: dict[str, Any], name: str, chars: int, where: str, *, required: bool = False
) -> None:
    if name not in body:
        if required:
            raise InvalidBody(f"{where}: {name!r} is required")
        return
    value = body[name]
    if not isinstance(value, str) or len(value) > chars:
        raise InvalidBody(f"{where}: {name!r} must be text of at most {chars} characters")


def _date(body: dict[str, Any], name: str, where: str) -> None:
    if name in body and not is_date(body[name]):
        raise InvalidBody(f"{where}: {name!r} must be a date YYYY-MM-DD")


def is_date(value: Any) -> bool:
    """``YYYY-MM-DD`` with a real month and day (compared as text: ISO dates sort)."""
    if not isinstance(value, str) or not _DATE.match(value):
        return False
    month, day = int(value[5:7]), int(value[8:10])
    return 1 <= month <= 12 and 1 <= day <= 31


# --- the diagram, drawn from the table -----------------------------------------------------------


def diagram() -> str:
    """The state machine as mermaid text, generated from ``TRANSITIONS`` (docs/protocol.md)."""
    lines = ["stateDiagram-v2", f"    [*] --> {State.REQUEST_RECEIVED}"]
    for (state, action), rule in TRANSITIONS.items():
        only = (
            "" if rule.services == frozenset(Service) else f" ({'/'.join(sorted(rule.services))})"
        )
        lines.append(f"    {state} --> {rule.next}: {rule.role} {action}{only}")
    frm, to, why = ROTA_ADVANCE
    lines.append(f"    {frm} --> {to}: automatic, when {why}")
    lines.extend(f"    {state} --> [*]" for state in State if state in FINAL)
    return "\n".join(lines)
