"""The session state machine: every transition, every illegal step, and mutual authentication."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import (
    AuthenticationError,
    DecodeError,
    LocalProtocolError,
    LogKey,
    State,
    StateError,
    UnknownKind,
    public_bytes,
    short_id,
    sign_entry,
)
from protocol.messages import (
    PROTOCOL_VERSION,
    Ack,
    Auth,
    Close,
    Entries,
    Frontier,
    Hello,
    Message,
    Request,
    encode_message,
)
from protocol.session import AUTH_CONTEXT, TRANSITIONS, Session

KEY_A = Ed25519PrivateKey.from_private_bytes(b"\x0a" * 32)
KEY_B = Ed25519PrivateKey.from_private_bytes(b"\x0b" * 32)
KEY_M = Ed25519PrivateKey.from_private_bytes(b"\x0c" * 32)  # a third party, or an attacker
PUB_A, PUB_B, PUB_M = (public_bytes(k) for k in (KEY_A, KEY_B, KEY_M))
NONCE_A, NONCE_B, NONCE_M = b"\xa1" * 32, b"\xb1" * 32, b"\xc1" * 32
LOG = LogKey(PUB_A, "catalog")
ENTRY = sign_entry(
    KEY_A,
    log="catalog",
    seq=1,
    prev=None,
    timestamp=0,
    kind="profile",
    body={"name": "A"},
)
HELLO_A = encode_message(Hello(PROTOCOL_VERSION, PUB_A, NONCE_A, "A"))
OPEN_STATES = [State.START, State.GREETED, State.AUTHENTICATED, State.SYNCING]
MESSAGE_TYPES: list[type[Any]] = [Hello, Auth, Frontier, Request, Entries, Ack, Close]


def sample(kind: type[Any], sender: Session) -> Message:
    """A well-formed message of ``kind`` as ``sender`` would send it."""
    samples: dict[type[Any], Callable[[], Message]] = {
        Hello: lambda: Hello(PROTOCOL_VERSION, sender.our_key, sender.our_nonce, sender.name),
        Auth: lambda: Auth(bytes(64)),
        Frontier: lambda: Frontier(()),
        Request: lambda: Request(LOG, 1, 1),
        Entries: lambda: Entries(LOG, (ENTRY.raw,)),
        Ack: lambda: Ack(LOG, 1),
        Close: lambda: Close("bye"),
    }
    return samples[kind]()


def pair(**b_kwargs: Any) -> tuple[Session, Session]:
    return Session(KEY_A, NONCE_A, "A"), Session(KEY_B, NONCE_B, "B", **b_kwargs)


def pair_at(state: State) -> tuple[Session, Session]:
    """Two sessions that have both reached ``state`` on both sides, in lockstep."""
    a, b = pair()
    steps: list[Callable[[Session, Session], bytes]] = [
        lambda s, _: s.hello(),
        lambda s, _: s.auth(),
        lambda s, _: s.send(Frontier(())),
    ]
    for step in steps[: OPEN_STATES.index(state)]:
        to_b, to_a = step(a, b), step(b, a)
        b.receive(to_b)
        a.receive(to_a)
    assert (a.our_state, a.their_state, b.our_state, b.their_state) == (state,) * 4
    return a, b


def send(session: Session, msg: Message) -> bytes:
    """Send ``msg``; Auth is signed for real so that the receiver accepts it."""
    return session.auth() if isinstance(msg, Auth) else session.send(msg)


# --- the table, row by row -------------------------------------------------------------------

ROWS = sorted(TRANSITIONS.items(), key=lambda row: (row[0][0].value, row[0][1].__name__))


def test_the_table_is_the_documented_one() -> None:
    expected: dict[tuple[State, type[Any]], State] = {
        (State.START, Hello): State.GREETED,
        (State.GREETED, Auth): State.AUTHENTICATED,
        (State.AUTHENTICATED, Frontier): State.SYNCING,
        **{(State.SYNCING, t): State.SYNCING for t in (Frontier, Request, Entries, Ack)},
        **{(s, Close): State.CLOSED for s in OPEN_STATES},
    }
    assert expected == TRANSITIONS


@pytest.mark.parametrize(
    ("state", "kind", "new"),
    [(s, t, n) for (s, t), n in ROWS],
    ids=[f"{s.value}-{t.__name__}" for (s, t), _ in ROWS],
)
def test_every_transition_on_both_sides(state: State, kind: type[Any], new: State) -> None:
    a, b = pair_at(state)
    data = send(a, sample(kind, a))
    assert a.our_state is new
    msg = b.receive(data)
    assert type(msg) is kind
    assert b.their_state is new
    assert b.our_state is state  # a message moves only its sender's side
    assert a.their_state is state


ILLEGAL = [
    (s, t) for s in [*OPEN_STATES, State.CLOSED] for t in MESSAGE_TYPES if (s, t) not in TRANSITIONS
]


@pytest.mark.parametrize(
    ("state", "kind"), ILLEGAL, ids=[f"{s.value}-{t.__name__}" for s, t in ILLEGAL]
)
def test_illegal_sends_raise_local_protocol_error(state: State, kind: type[Any]) -> None:
    a, _ = pair_at(State.SYNCING if state is State.CLOSED else state)
    if state is State.CLOSED:
        assert a.close("done") is not None
    before = (a.our_state, a.their_state)
    with pytest.raises(LocalProtocolError):
        a.send(sample(kind, a))
    assert (a.our_state, a.their_state) == before


@pytest.mark.parametrize(
    ("state", "kind"), ILLEGAL, ids=[f"{s.value}-{t.__name__}" for s, t in ILLEGAL]
)
def test_illegal_receives_raise_state_error_and_close(state: State, kind: type[Any]) -> None:
    a, b = pair_at(State.SYNCING if state is State.CLOSED else state)
    if state is State.CLOSED:
        b.receive(a.send(Close("first")))
    # Encoded directly: the sender's own checks would refuse to produce these bytes.
    with pytest.raises(StateError):
        b.receive(encode_message(sample(kind, a)))
    assert b.their_state is State.CLOSED
    assert b.closed
    assert b.close_reason
    # The session stays closed: even a legal-looking message is refused now.
    with pytest.raises(StateError):
        b.receive(encode_message(Close("again")))


# --- the two guards --------------------------------------------------------------------------


def test_auth_is_sent_only_after_the_peers_hello() -> None:
    a, _ = pair()
    a.hello()
    with pytest.raises(LocalProtocolError, match="hello"):
        a.auth()
    with pytest.raises(LocalProtocolError, match="hello"):
        a.send(Auth(bytes(64)))
    assert a.our_state is State.GREETED


def test_auth_is_not_sent_to_a_peer_that_never_said_hello() -> None:
    a, _ = pair()
    a.hello()
    with pytest.raises(DecodeError):
        a.receive(b"\xc1")  # the peer's state is now CLOSED, not START: still no nonce to sign
    with pytest.raises(LocalProtocolError, match="hello"):
        a.send(Auth(bytes(64)))


def test_auth_is_accepted_only_after_our_hello() -> None:
    a, b = pair()
    b.receive(a.hello())
    a.receive(b.hello())
    auth = a.auth()
    quiet = Session(KEY_B, NONCE_B, "B")  # has not said hello: cannot have been asked to trust
    quiet.receive(encode_message(sample(Hello, a)))
    with pytest.raises(StateError, match="before our hello"):
        quiet.receive(auth)
    assert quiet.closed


def test_auth_is_refused_after_we_closed_without_a_hello() -> None:
    a, b = pair()
    b.receive(a.hello())
    a.receive(b.hello())
    fresh = Session(KEY_B, NONCE_B, "B")
    fresh.receive(encode_message(sample(Hello, a)))
    fresh.close("changed my mind")  # START -> CLOSED: our hello never went out
    with pytest.raises(StateError, match="before our hello"):
        fresh.receive(a.auth())


def test_request_is_sent_only_after_the_peers_frontier() -> None:
    a, b = pair_at(State.AUTHENTICATED)
    b.receive(a.send(Frontier(())))
    assert a.our_state is State.SYNCING and a.their_state is State.AUTHENTICATED
    with pytest.raises(LocalProtocolError, match="frontier"):
        a.send(Request(LOG, 1, 1))
    a.receive(b.send(Frontier(())))
    a.send(Request(LOG, 1, 1))


# --- authentication --------------------------------------------------------------------------


def test_handshake_authenticates_both_keys() -> None:
    a, b = pair_at(State.SYNCING)
    assert (a.peer_key, a.peer_name) == (PUB_B, "B")
    assert (b.peer_key, b.peer_name) == (PUB_A, "A")


def test_auth_signs_the_documented_transcript() -> None:
    a, b = pair()
    b.receive(a.hello())
    a.receive(b.hello())
    data = a.auth()
    msg = b.receive(data)
    assert isinstance(msg, Auth)
    KEY_A.public_key().verify(msg.signature, AUTH_CONTEXT + NONCE_B + NONCE_A + PUB_A + PUB_B)


def handshake_to_auth(b: Session, hello: Hello) -> None:
    """``b`` says hello and receives ``hello`` from whoever claims to be its peer."""
    b.hello()
    b.receive(encode_message(hello))


def test_auth_by_the_wrong_key_is_rejected() -> None:
    _, b = pair()
    handshake_to_auth(b, Hello(PROTOCOL_VERSION, PUB_A, NONCE_M, "A"))
    # M claims A's key but can only sign with its own.
    forged = KEY_M.sign(AUTH_CONTEXT + NONCE_B + NONCE_M + PUB_A + PUB_B)
    with pytest.raises(AuthenticationError, match="failed to prove"):
        b.receive(encode_message(Auth(forged)))
    assert b.closed and b.their_state is State.CLOSED


def test_auth_replayed_from_another_session_is_rejected() -> None:
    a, b = pair()
    b.receive(a.hello())
    a.receive(b.hello())
    recorded_hello, recorded_auth = encode_message(sample(Hello, a)), a.auth()
    b.receive(recorded_auth)  # genuine in its own session
    later = Session(KEY_B, b"\xb2" * 32, "B")  # a new session: a new nonce
    later.hello()
    later.receive(recorded_hello)
    with pytest.raises(AuthenticationError):
        later.receive(recorded_auth)


def test_reflected_auth_is_rejected() -> None:
    a, b = pair()
    b.receive(a.hello())
    a.receive(b.hello())
    b_auth = b.auth()
    # Echo B's own proof back at it as if A had sent it: the transcript is not symmetric.
    with pytest.raises(AuthenticationError):
        b.receive(b_auth)


def test_reflected_hello_is_rejected() -> None:
    _, b = pair()
    echo = b.hello()
    with pytest.raises(AuthenticationError, match="our own key"):
        b.receive(echo)
    assert b.closed


def test_expected_peer() -> None:
    a, b = pair(expected_peer=PUB_A)
    hello = a.hello()
    b.hello()
    b.receive(hello)
    assert b.peer_key == PUB_A
    _, b2 = pair(expected_peer=PUB_M)
    b2.hello()
    with pytest.raises(AuthenticationError, match="expected"):
        b2.receive(hello)
    assert b2.closed and b2.peer_key is None


@pytest.mark.parametrize("version", [0, PROTOCOL_VERSION + 1, 2**40])
def test_version_mismatch(version: int) -> None:
    _, b = pair()
    b.hello()
    with pytest.raises(AuthenticationError, match="version"):
        b.receive(encode_message(Hello(version, PUB_A, NONCE_A, "A")))
    assert b.closed


def test_auth_from_an_invalid_public_key_is_rejected() -> None:
    _, b = pair()
    handshake_to_auth(b, Hello(PROTOCOL_VERSION, b"\xff" * 32, NONCE_M, "?"))
    with pytest.raises(AuthenticationError):
        b.receive(encode_message(Auth(bytes(64))))


# --- the rest of the session API -------------------------------------------------------------


def test_nonce_must_be_32_bytes() -> None:
    with pytest.raises(LocalProtocolError):
        Session(KEY_A, b"short", "A")


def test_close_once_and_keep_the_first_reason() -> None:
    a, b = pair_at(State.GREETED)
    data = a.close("going away")
    assert data is not None and a.closed
    assert a.close("again") is None
    assert a.close_reason == "going away"
    assert isinstance(b.receive(data), Close)
    assert b.closed and b.close_reason == "peer closed: going away"


def test_close_reason_is_truncated() -> None:
    a, b = pair()
    data = a.close("x" * 1000)
    assert data is not None
    msg = b.receive(data)
    assert isinstance(msg, Close) and msg.reason == "x" * 500


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\xc1", DecodeError),
        (encode_message(Close("x"))[:-1], DecodeError),
        (b"\x91\x08", None),
        (b"\x95\xc3" + HELLO_A[2:], DecodeError),  # a Hello with true for its type code 1
        (b"\x92\x07\xa1x\x00", DecodeError),  # trailing byte
        (b"\x91\xcb" + bytes(8), DecodeError),  # a float type code
    ],
    ids=["c1", "truncated", "unknown-type", "true-as-code", "trailing-byte", "float-code"],
)
def test_garbage_closes_the_session(data: bytes, error: type[Exception] | None) -> None:
    _, b = pair()
    with pytest.raises(error or UnknownKind):
        b.receive(data)
    assert b.closed and b.close_reason


def test_peer_property() -> None:
    a, b = pair_at(State.GREETED)
    assert Session(KEY_A, NONCE_A, "A").peer == "unknown peer"
    assert (a.peer, b.peer) == (short_id(PUB_B), short_id(PUB_A))
