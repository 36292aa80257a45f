"""Cooperation between libraries: lending policies, loan offers and agreements (sans-IO).

``policy`` (the author's ``policy`` log; the last entry counts): what a library lends and to whom.
``offer`` (the ``offers`` log): a library advertises a record (or a rule) it will lend.
``agreement`` (the ``agreements`` log): a cooperation agreement (perjanjian kerja sama). One
party *proposes* it (the proposal's entry hash is the agreement's id, and proposing is signing);
each other party *signs* it; any party may *withdraw*. It is in force only while every party has
signed, none has withdrawn, and the day lies between its start and end dates (``agreement_status``,
a pure fold: the same entries give the same answer whatever their order).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from .bodies import only_keys as _only
from .errors import InvalidBody
from .loans import is_date

POLICY, POLICY_LOG = "policy", "policy"
OFFER, OFFERS_LOG = "offer", "offers"
AGREEMENT, AGREEMENTS_LOG = "agreement", "agreements"

SERVES = ("all", "listed", "agreement")  # everyone; the partners listed; agreement partners
PAYERS = ("requester", "lender", "shared")
SCOPES = ("catalogue", "loans", "copies", "reciprocal")
OFFER_SERVICES = ("loan", "copy", "both")
MAX_PARTIES = 16
MAX_PARTNERS = 1000
MAX_CLOSED = 50
_KEY = 32

# Agreement standings, as `agreement list` shows them.
PROPOSED, IN_FORCE, NOT_STARTED, EXPIRED, WITHDRAWN = (
    "proposed",
    "in force",
    "not started",
    "expired",
    "withdrawn",
)


def validate_policy(body: dict[str, Any], where: str) -> None:
    _only(
        body,
        {
            "lends",
            "copies",
            "formats",
            "loan_days",
            "max_items",
            "renewals",
            "shipping",
            "copying",
            "serves",
            "partners",
            "closed",
            "contact",
        },
        where,
    )
    for name in ("lends", "copies"):
        if not isinstance(body.get(name), bool):
            raise InvalidBody(f"{where}: {name!r} must be true or false")
    if body.get("serves") not in SERVES:
        raise InvalidBody(f"{where}: 'serves' must be one of {', '.join(SERVES)}")
    if "formats" in body:
        formats = body["formats"]
        if (
            not isinstance(formats, list)
            or len(formats) > 32
            or not all(isinstance(f, str) and 0 < len(f) <= 100 for f in formats)
        ):
            raise InvalidBody(f"{where}: 'formats' must be at most 32 texts of 1..100 characters")
    for name, low, high in (("loan_days", 1, 366), ("max_items", 0, 100_000), ("renewals", 0, 100)):
        if name in body:
            value = body[name]
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise InvalidBody(f"{where}: {name!r} must be a whole number {low}..{high}")
    for name in ("shipping", "copying"):
        if name in body and body[name] not in PAYERS:
            raise InvalidBody(f"{where}: {name!r} must be one of {', '.join(PAYERS)}")
    if "partners" in body:
        _keys(body["partners"], MAX_PARTNERS, f"{where} 'partners'")
    if "closed" in body:
        closed = body["closed"]
        if not isinstance(closed, list) or len(closed) > MAX_CLOSED:
            raise InvalidBody(f"{where}: 'closed' must hold at most {MAX_CLOSED} periods")
        for index, period in enumerate(closed):
            if (
                not isinstance(period, list)
                or len(period) != 2
                or not all(is_date(d) for d in period)
                or period[0] > period[1]
            ):
                raise InvalidBody(f"{where}: closed[{index}] must be [first day, last day]")
    _text(body, "contact", 500, where)


def validate_offer(body: dict[str, Any], where: str) -> None:
    op = body.get("op")
    if op == "add":
        _only(body, {"op", "id", "record", "rule", "service", "note"}, where)
        if ("record" in body) == ("rule" in body):
            raise InvalidBody(f"{where}: an offer names either a 'record' or a 'rule'")
        _text(body, "record", 256, where)
        _text(body, "rule", 200, where)
        if body.get("service") not in OFFER_SERVICES:
            raise InvalidBody(f"{where}: 'service' must be one of {', '.join(OFFER_SERVICES)}")
        _text(body, "note", 500, where)
    elif op == "remove":
        _only(body, {"op", "id"}, where)
    else:
        raise InvalidBody(f"{where}: 'op' must be add or remove")
    offer_id = body.get("id")
    if not isinstance(offer_id, str) or not 0 < len(offer_id) <= 64:
        raise InvalidBody(f"{where}: 'id' must be text of 1..64 characters")


def validate_agreement(body: dict[str, Any], where: str) -> None:
    op = body.get("op")
    if op == "propose":
        _only(body, {"op", "title", "parties", "scope", "start", "end", "terms"}, where)
        _text(body, "title", 200, where, required=True)
        parties = body.get("parties")
        _keys(parties, MAX_PARTIES, f"{where} 'parties'")
        if not isinstance(parties, list) or len(parties) < 2:
            raise InvalidBody(f"{where}: an agreement has 2..{MAX_PARTIES} parties")
        scope = body.get("scope")
        if (
            not isinstance(scope, list)
            or not scope
            or len(set(scope)) != len(scope)
            or not all(s in SCOPES for s in scope)
        ):
            raise InvalidBody(f"{where}: 'scope' must list some of {', '.join(SCOPES)}")
        if not is_date(body.get("start")) or not is_date(body.get("end")):
            raise InvalidBody(f"{where}: 'start' and 'end' must be dates YYYY-MM-DD")
        if body["start"] > body["end"]:
            raise InvalidBody(f"{where}: the agreement ends before it starts")
        _text(body, "terms", 2000, where)
    elif op in ("sign", "withdraw"):
        _only(body, {"op", "agreement", "reason"}, where)
        agreement = body.get("agreement")
        if not isinstance(agreement, bytes) or len(agreement) != 32:
            raise InvalidBody(f"{where}: 'agreement' must be the 32-byte id of a proposal")
        _text(body, "reason", 1000, where)
    else:
        raise InvalidBody(f"{where}: 'op' must be propose, sign or withdraw")


@dataclass(frozen=True)
class AgreementStatement:
    """One verified ``agreement`` entry: ``hash`` is its entry hash."""

    hash: bytes
    author: bytes
    body: dict[str, Any]


@dataclass(frozen=True)
class Agreement:
    id: bytes
    proposer: bytes
    title: str
    parties: tuple[bytes, ...]
    scope: tuple[str, ...]
    start: str
    end: str
    terms: str
    signed: frozenset[bytes]
    withdrawn_by: frozenset[bytes]

    def status(self, today: str) -> str:
        """Standing on ``today`` (YYYY-MM-DD); the caller supplies the day, the fold no clock."""
        if self.withdrawn_by:
            return WITHDRAWN
        if today > self.end:
            return EXPIRED
        if set(self.parties) - self.signed:
            return PROPOSED
        return NOT_STARTED if today < self.start else IN_FORCE

    def waiting_for(self) -> list[bytes]:
        return [p for p in self.parties if p not in self.signed]


def fold_agreements(statements: Iterable[AgreementStatement]) -> dict[bytes, Agreement]:
    """Every proposal with the signatures and withdrawals of its parties (others are ignored)."""
    items = list(statements)
    out: dict[bytes, Agreement] = {}
    for st in items:
        body = st.body
        if body["op"] == "propose" and st.author in body["parties"]:
            out[st.hash] = Agreement(
                st.hash,
                st.author,
                body["title"],
                tuple(sorted(body["parties"])),
                tuple(body["scope"]),
                body["start"],
                body["end"],
                body.get("terms", ""),
                frozenset({st.author}),
                frozenset(),
            )
    for st in items:
        body = st.body
        found = out.get(body.get("agreement", b"")) if body["op"] != "propose" else None
        if found is None or st.author not in found.parties:
            continue
        if body["op"] == "sign":
            found = replace(found, signed=found.signed | {st.author})
        else:
            found = replace(found, withdrawn_by=found.withdrawn_by | {st.author})
        out[found.id] = found
    return out


def _keys(value: Any, most: int, where: str) -> None:
    if not isinstance(value, list) or len(value) > most:
        raise InvalidBody(f"{where}: must be an array of at most {most} keys")
    if not all(isinstance(k, bytes) and len(k) == _KEY for k in value):
        raise InvalidBody(f"{where}: every item must be a {_KEY}-byte key")
    if len(set(value)) != len(value):
        raise InvalidBody(f"{where}: a key appears twice")


def _text(
    body: dict[str, Any], name: str, chars: int, where: str, *, required: bool = False
) -> None:
    if name not in body:
        if required:
            raise InvalidBody(f"{where}: {name!r} is required")
        return
    value = body[name]
    if not isinstance(value, str) or len(value) > chars or (required and not value.strip()):
        raise InvalidBody(f"{where}: {name!r} must be text of at most {chars} characters")
