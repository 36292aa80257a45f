"""The loan state machine, its fold, sealed details and the cooperation bodies (sans-IO).

The property test plays both parties (and a second lender) acting on their own partial views,
with steps delivered late, in any order and more than once: every party ends in the same state.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import DEFAULT_LIMITS, InvalidBody, sign_entry
from protocol.cooperation import (
    EXPIRED,
    IN_FORCE,
    NOT_STARTED,
    PROPOSED,
    WITHDRAWN,
    AgreementStatement,
    fold_agreements,
)
from protocol.encoding import pack
from protocol.kinds import validate_body
from protocol.loans import (
    FINAL,
    TRANSITIONS,
    Action,
    IllegalTransition,
    Loan,
    LoanRequest,
    LoanStep,
    Role,
    Service,
    State,
    check_step,
    diagram,
    fold,
    parse,
    refusal,
    request_body,
    step_body,
)
from protocol.sealing import Sealed, box_private_key, box_public_key, open_sealed, seal

REQUESTER, LENDER_A, LENDER_B, STRANGER = (bytes([n]) * 32 for n in (1, 2, 3, 4))
DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"


def make_request(service: Service = Service.LOAN) -> LoanRequest:
    body = request_body(
        service=service,
        title="Sejarah Maluku",
        match="sejarah maluku|1999",
        rota=[(LENDER_A, "a-1"), (LENDER_B, "b-7")],
        copyright="private study" if service is Service.COPY else None,
    )
    item = parse(REQUESTER, hashlib.sha256(pack(body)).digest(), 1000, body)
    assert isinstance(item, LoanRequest)
    return item


def make_step(loan: Loan, author: bytes, action: Action, ts: int = 2000) -> LoanStep:
    body = step_body(loan, action)
    item = parse(author, hashlib.sha256(pack([author, body, ts])).digest(), ts, body)
    assert isinstance(item, LoanStep)
    return item


def run(request: LoanRequest, *moves: tuple[bytes, Action]) -> tuple[Loan, list[LoanStep]]:
    """Take ``moves`` in turn, each after the previous one, folding as a node would."""
    steps: list[LoanStep] = []
    loan = fold(request, steps)
    for author, action in moves:
        check_step(loan, author, action)
        steps.append(make_step(loan, author, action, 2000 + len(steps)))
        loan = fold(request, steps)
    return loan, steps


def test_the_whole_life_of_a_loan_with_a_decline_and_a_renewal() -> None:
    request = make_request()
    loan, steps = run(
        request,
        (LENDER_A, Action.UNFILLED),
        (LENDER_B, Action.WILL_SUPPLY),
        (LENDER_B, Action.SHIPPED),
        (REQUESTER, Action.RECEIVED),
        (REQUESTER, Action.RENEW),
        (LENDER_B, Action.RENEW_ACCEPTED),
        (REQUESTER, Action.SHIPPED_RETURN),
        (LENDER_B, Action.CHECKED_IN),
        (LENDER_B, Action.LOAN_COMPLETED),
    )
    assert loan.state is State.LOAN_COMPLETED and loan.lender == LENDER_B
    assert loan.declined_by == (LENDER_A,)
    assert [s.action for s in loan.history] == [s.action for s in steps]
    assert fold(request, reversed(steps + steps)) == loan  # any order, duplicates


def test_the_last_lender_declining_leaves_the_request_unfilled() -> None:
    loan, _ = run(make_request(), (LENDER_A, Action.UNFILLED), (LENDER_B, Action.UNFILLED))
    assert loan.state is State.UNFILLED and loan.state in FINAL


def test_a_copy_request_completes_without_shipping() -> None:
    request = make_request(Service.COPY)
    loan, _ = run(request, (LENDER_A, Action.WILL_SUPPLY), (LENDER_A, Action.COPY_COMPLETED))
    assert loan.state is State.COPY_COMPLETED
    with pytest.raises(IllegalTransition, match="not for a copy request"):
        check_step(run(request, (LENDER_A, Action.WILL_SUPPLY))[0], LENDER_A, Action.SHIPPED)


def test_illegal_steps_are_refused_naming_the_request_and_state() -> None:
    request = make_request()
    loan, _ = run(request, (LENDER_A, Action.WILL_SUPPLY))
    with pytest.raises(IllegalTransition) as never_shipped:
        check_step(loan, REQUESTER, Action.SHIPPED_RETURN)
    text = str(never_shipped.value)
    assert request.id.hex()[:12] in text and "WillSupply" in text and "ShippedReturn" in text
    with pytest.raises(IllegalTransition, match="only the current lender"):
        check_step(loan, LENDER_B, Action.SHIPPED)  # answering another library's request
    with pytest.raises(IllegalTransition, match="not a party"):
        check_step(loan, STRANGER, Action.SHIPPED)
    with pytest.raises(IllegalTransition, match="only the requesting library"):
        check_step(loan, LENDER_A, Action.CANCEL)
    done, _ = run(request, (REQUESTER, Action.CANCEL))
    assert "the request is finished" in (refusal(done, REQUESTER, Action.CANCEL) or "")


def test_concurrent_steps_resolve_the_same_way_everywhere() -> None:
    request = make_request()
    loan, steps = run(request, (LENDER_A, Action.WILL_SUPPLY))
    cancel = make_step(loan, REQUESTER, Action.CANCEL, 5000)
    ship = make_step(loan, LENDER_A, Action.SHIPPED, 5001)
    after_cancel = make_step(fold(request, [*steps, cancel]), REQUESTER, Action.CANCEL, 5002)
    for order in ([*steps, cancel, ship, after_cancel], [after_cancel, ship, cancel, *steps]):
        result = fold(request, order)
        assert result.state is State.LOANED  # the lender's step wins: it holds the item
        assert result.superseded == (cancel,)
    # Steps by someone who is not the party the table names never count.
    forged = make_step(loan, STRANGER, Action.SHIPPED, 6000)
    assert fold(request, [*steps, forged]).state is State.WILL_SUPPLY


def test_every_state_is_reachable_and_every_open_state_can_end() -> None:
    reached = {State.REQUEST_RECEIVED}
    for _ in range(len(State)):
        reached |= {t.next for (s, _a), t in TRANSITIONS.items() if s in reached}
    assert reached == set(State)
    for state in set(State) - FINAL:
        assert any(s is state for s, _ in TRANSITIONS), f"{state} has no way out"
    assert all(t.role in tuple(Role) for t in TRANSITIONS.values())


def test_the_state_diagram_in_the_docs_is_generated_from_the_table() -> None:
    text = DOC.read_text("utf-8")
    block = re.search(r"<!-- loan-states -->\n```mermaid\n(.*?)\n```", text, re.S)
    assert block is not None, "docs/protocol.md lacks the generated loan state diagram"
    assert block.group(1) == diagram(), (
        "the loan state diagram is stale: regenerate it with "
        "`PYTHONPATH=. python -m tests.test_loans_protocol`"
    )


# --- the property ---------------------------------------------------------------------------------

PARTIES = (REQUESTER, LENDER_A, LENDER_B)
moves = st.lists(
    st.tuples(st.sampled_from(("act", "deliver")), st.integers(0, 2), st.integers(0, 1000)),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(moves=moves, service=st.sampled_from(tuple(Service)), order=st.randoms())
def test_any_delivery_order_gives_both_sides_the_same_state(
    moves: list[tuple[str, int, int]], service: Service, order: Any
) -> None:
    request = make_request(service)
    produced: list[LoanStep] = []
    views: dict[bytes, list[LoanStep]] = {p: [] for p in PARTIES}
    for kind, who, pick in moves:
        party = PARTIES[who]
        if kind == "deliver" and produced:
            views[party].append(produced[pick % len(produced)])  # late, out of order, again
            continue
        loan = fold(request, views[party])  # each acts on what it has seen so far
        legal = [a for a in Action if refusal(loan, party, a) is None]
        if legal:
            step = make_step(loan, party, legal[pick % len(legal)], len(produced))
            produced.append(step)
            views[party].append(step)
    finals = []
    for party in PARTIES:
        everything = views[party] + produced + produced[: len(produced) // 2]
        order.shuffle(everything)
        finals.append(fold(request, everything))
    assert finals[0] == finals[1] == finals[2]
    assert finals[0] == fold(request, produced)


# --- bodies ---------------------------------------------------------------------------------------


def test_loan_bodies_are_checked_strictly() -> None:
    request = make_request()
    validate_body("loan", request.body, DEFAULT_LIMITS, where="e")
    bad: list[dict[str, Any]] = [
        {**request.body, "extra": 1},
        {**request.body, "rota": []},
        {**request.body, "rota": [[LENDER_A, "a"], [LENDER_A, "b"]]},
        {**request.body, "service": "copy"},  # a copy request declares copyright
        {**request.body, "needed_by": "2025-13-01"},
        {**request.body, "title": "x" * 501},
        {"op": "step", "request": b"x", "after": b"y" * 32, "action": "Loaned"},
        {"op": "step", "request": b"x" * 32, "after": b"y" * 32, "action": "Teleported"},
        {
            "op": "step",
            "request": b"x" * 32,
            "after": b"y" * 32,
            "action": "Loaned",
            "details": {"eph": b"", "keys": [], "box": b""},
        },
        {"op": "delete"},
    ]
    for body in bad:
        with pytest.raises(InvalidBody):
            validate_body("loan", body, DEFAULT_LIMITS, where="e")


def test_cooperation_bodies_are_checked_strictly() -> None:
    good: dict[str, dict[str, Any]] = {
        "policy": {
            "lends": True,
            "copies": False,
            "serves": "listed",
            "partners": [LENDER_A],
            "closed": [["2025-12-20", "2026-01-05"]],
            "loan_days": 21,
        },
        "offer": {"op": "add", "id": "x", "record": "a-1", "service": "loan"},
        "agreement": {
            "op": "propose",
            "title": "ILL Maluku",
            "parties": [REQUESTER, LENDER_A],
            "scope": ["loans"],
            "start": "2025-01-01",
            "end": "2025-12-31",
        },
    }
    for kind, body in good.items():
        validate_body(kind, body, DEFAULT_LIMITS, where="e")
    bad: list[tuple[str, dict[str, Any]]] = [
        ("policy", {**good["policy"], "serves": "friends"}),
        ("policy", {**good["policy"], "closed": [["2026-01-05", "2025-12-20"]]}),
        ("policy", {**good["policy"], "lends": 1}),
        ("offer", {"op": "add", "id": "x", "record": "a", "rule": "all", "service": "loan"}),
        ("agreement", {**good["agreement"], "parties": [REQUESTER]}),
        ("agreement", {**good["agreement"], "end": "2024-01-01"}),
        ("agreement", {**good["agreement"], "scope": ["everything"]}),
        ("agreement", {"op": "sign", "agreement": b"short"}),
    ]
    for kind, body in bad:
        with pytest.raises(InvalidBody):
            validate_body(kind, body, DEFAULT_LIMITS, where="e")


def test_an_agreement_is_in_force_only_when_every_party_signed_and_in_its_dates() -> None:
    propose = {
        "op": "propose",
        "title": "T",
        "parties": [REQUESTER, LENDER_A, LENDER_B],
        "scope": ["loans"],
        "start": "2025-01-01",
        "end": "2025-12-31",
    }
    pid = hashlib.sha256(pack(propose)).digest()
    statements = [AgreementStatement(pid, REQUESTER, propose)]
    sign_a = AgreementStatement(b"a" * 32, LENDER_A, {"op": "sign", "agreement": pid})
    sign_b = AgreementStatement(b"b" * 32, LENDER_B, {"op": "sign", "agreement": pid})
    forged = AgreementStatement(b"c" * 32, STRANGER, {"op": "withdraw", "agreement": pid})
    assert fold_agreements(statements)[pid].status("2025-06-01") == PROPOSED
    everything = [forged, sign_b, *statements, sign_a]
    agreement = fold_agreements(everything)[pid]
    assert agreement == fold_agreements(reversed(everything))[pid]
    assert [agreement.status(d) for d in ("2024-12-31", "2025-06-01", "2026-01-01")] == [
        NOT_STARTED,
        IN_FORCE,
        EXPIRED,
    ]
    withdraw = AgreementStatement(b"d" * 32, LENDER_B, {"op": "withdraw", "agreement": pid})
    assert fold_agreements([*everything, withdraw])[pid].status("2025-06-01") == WITHDRAWN


# --- sealed details -------------------------------------------------------------------------------


def test_sealed_details_open_for_the_recipients_only() -> None:
    keys = [Ed25519PrivateKey.generate() for _ in range(3)]
    boxes = [box_private_key(k) for k in keys]
    sealed = seal(
        b"alamat: Jl. Pattimura 1, Ambon",
        [box_public_key(k) for k in keys[:2]],
        b"ctx",
        ephemeral=X25519PrivateKey.generate(),
        content_key=bytes(32),
    )
    assert open_sealed(sealed, boxes[0], b"ctx") == b"alamat: Jl. Pattimura 1, Ambon"
    assert open_sealed(sealed, boxes[1], b"ctx") == b"alamat: Jl. Pattimura 1, Ambon"
    assert open_sealed(sealed, boxes[2], b"ctx") is None  # a relay
    assert open_sealed(sealed, boxes[0], b"another request") is None  # pasted elsewhere
    tampered = Sealed(sealed.ephemeral, sealed.wrapped, bytes([sealed.box[0] ^ 1]) + sealed.box[1:])
    assert open_sealed(tampered, boxes[0], b"ctx") is None


def vectors() -> dict[str, Any]:
    """Fixed inputs, everything else computed: the sealing vectors in docs/protocol.md."""
    identity = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    ephemeral = X25519PrivateKey.from_private_bytes(bytes(range(64, 96)))
    sealed = seal(
        b'{"note": "kirim ke Jl. Pattimura 1"}',
        [box_public_key(identity)],
        b"peernode/loan-step/v1\x00" + bytes(32),
        ephemeral=ephemeral,
        content_key=bytes(range(128, 160)),
    )
    entry = sign_entry(
        identity,
        log="loans",
        seq=1,
        prev=None,
        timestamp=1700000000000,
        kind="loan",
        body={
            "op": "step",
            "request": bytes(32),
            "after": bytes(32),
            "action": "Loaned",
            "due": "2025-07-01",
            "details": sealed.to_body(),
        },
    )
    return {
        "identity_seed": bytes(range(32)).hex(),
        "box_private": box_private_key(identity).private_bytes_raw().hex(),
        "box_public": box_public_key(identity).hex(),
        "ephemeral_private": bytes(range(64, 96)).hex(),
        "ephemeral_public": ephemeral.public_key()
        .public_bytes(Encoding.Raw, PublicFormat.Raw)
        .hex(),
        "content_key": bytes(range(128, 160)).hex(),
        "context": (b"peernode/loan-step/v1\x00" + bytes(32)).hex(),
        "plaintext": '{"note": "kirim ke Jl. Pattimura 1"}',
        "wrapped": sealed.wrapped[0].hex(),
        "box": sealed.box.hex(),
        "entry": entry.raw.hex(),
    }


def test_the_sealing_vectors_in_the_docs_match_the_code() -> None:
    text = DOC.read_text("utf-8")
    block = re.search(r"<!-- loan-vectors -->\n```json\n(.*?)\n```", text, re.S)
    assert block is not None, "docs/protocol.md lacks the loan sealing vectors"
    assert json.loads(block.group(1)) == vectors(), (
        "stale: regenerate with `PYTHONPATH=. python -m tests.test_loans_protocol`"
    )
    doc = json.loads(block.group(1))
    own = X25519PrivateKey.from_private_bytes(bytes.fromhex(doc["box_private"]))
    sealed = Sealed(
        bytes.fromhex(doc["ephemeral_public"]),
        (bytes.fromhex(doc["wrapped"]),),
        bytes.fromhex(doc["box"]),
    )
    assert open_sealed(sealed, own, bytes.fromhex(doc["context"])) == doc["plaintext"].encode()


if __name__ == "__main__":
    print("<!-- loan-states -->\n```mermaid\n" + diagram() + "\n```\n")
    print("<!-- loan-vectors -->\n```json\n" + json.dumps(vectors(), indent=2) + "\n```")
