"""The session state machine: every transition, every illegal step, and mutual authentication."""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from protocol import (
    AuthenticationError,
    DecodeError,
    DecryptError,
    LimitExceeded,
    Limits,
    LocalProtocolError,
    LogKey,
    State,
    StateError,
    UnknownKind,
    public_bytes,
    short_id,
    sign_entry,
)
from protocol.channel import Channel, direction_key, shared_secret, transcript_hash
from protocol.encoding import pack
from protocol.messages import (
    PROTOCOL_VERSION,
    Ack,
    Auth,
    Close,
    Entries,
    ForkNotice,
    Frontier,
    Heartbeat,
    Hello,
    Message,
    Request,
    decode_message,
    encode_message,
)
from protocol.session import AUTH_CONTEXT, TRANSITIONS, Session

KEY_A = Ed25519PrivateKey.from_private_bytes(b"\x0a" * 32)
KEY_B = Ed25519PrivateKey.from_private_bytes(b"\x0b" * 32)
KEY_M = Ed25519PrivateKey.from_private_bytes(b"\x0c" * 32)  # a third party, or an attacker
PUB_A, PUB_B, PUB_M = (public_bytes(k) for k in (KEY_A, KEY_B, KEY_M))
NONCE_A, NONCE_B, NONCE_M = b"\xa1" * 32, b"\xb1" * 32, b"\xc1" * 32
EPH_A, EPH_B, EPH_M = (
    X25519PrivateKey.from_private_bytes(bytes([i]) * 32) for i in (0x1A, 0x1B, 0x1C)
)
EPUB_A, EPUB_B, EPUB_M = (k.public_key().public_bytes_raw() for k in (EPH_A, EPH_B, EPH_M))
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
HELLO_A = encode_message(Hello(PROTOCOL_VERSION, PUB_A, NONCE_A, EPUB_A))
OPEN_STATES = [State.START, State.GREETED, State.AUTHENTICATED, State.SYNCING]
MESSAGE_TYPES: list[type[Any]] = [
    Hello,
    Auth,
    Frontier,
    Request,
    Entries,
    Ack,
    Close,
    Heartbeat,
    ForkNotice,
]


def sample(kind: type[Any], sender: Session) -> Message:
    """A well-formed message of ``kind`` as ``sender`` would send it."""
    samples: dict[type[Any], Callable[[], Message]] = {
        Hello: lambda: Hello(
            PROTOCOL_VERSION, sender.our_key, sender.our_nonce, sender.our_ephemeral
        ),
        Auth: lambda: Auth(bytes(64), sender.name),
        Frontier: lambda: Frontier(()),
        Request: lambda: Request(LOG, 1, 1),
        Entries: lambda: Entries(LOG, (ENTRY.raw,)),
        Ack: lambda: Ack(LOG, 1),
        Close: lambda: Close("bye"),
        Heartbeat: lambda: Heartbeat(sender.our_key, 1, bytes(64)),
        ForkNotice: lambda: ForkNotice(b"a proof"),
    }
    return samples[kind]()


def pair(**b_kwargs: Any) -> tuple[Session, Session]:
    return (
        Session(KEY_A, NONCE_A, "A", ephemeral=EPH_A),
        Session(KEY_B, NONCE_B, "B", ephemeral=EPH_B, **b_kwargs),
    )


def forge(sender: Session, msg: Message) -> bytes:
    """``msg`` as ``sender``'s channel would carry it, past the checks that ``send`` makes."""
    data = encode_message(msg)
    return sender.channel.seal(data) if sender.channel is not None else data


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
        **{
            (State.SYNCING, t): State.SYNCING
            for t in (Frontier, Request, Entries, Ack, Heartbeat, ForkNotice)
        },
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
    # Forged: the sender's own checks would refuse to produce these bytes.
    with pytest.raises(StateError):
        b.receive(forge(a, sample(kind, a)))
    assert b.their_state is State.CLOSED
    assert b.closed
    assert b.close_reason
    # The session stays closed: even a legal-looking message is refused now.
    with pytest.raises(StateError):
        b.receive(forge(a, Close("again")))


# --- the two guards --------------------------------------------------------------------------


def test_auth_is_sent_only_after_the_peers_hello() -> None:
    a, _ = pair()
    a.hello()
    with pytest.raises(LocalProtocolError, match="hello"):
        a.auth()
    with pytest.raises(LocalProtocolError, match="hello"):
        a.send(Auth(bytes(64), "A"))
    assert a.our_state is State.GREETED


def test_auth_is_not_sent_to_a_peer_that_never_said_hello() -> None:
    a, _ = pair()
    a.hello()
    with pytest.raises(DecodeError):
        a.receive(b"\xc1")  # the peer's state is now CLOSED, not START: still no nonce to sign
    with pytest.raises(LocalProtocolError, match="hello"):
        a.send(Auth(bytes(64), "A"))


def test_auth_is_accepted_only_after_our_hello() -> None:
    a, b = pair()
    b.receive(a.hello())
    a.receive(b.hello())
    quiet = Session(KEY_B, NONCE_B, "B")  # has not said hello: cannot have been asked to trust
    quiet.receive(encode_message(sample(Hello, a)))
    # Without our hello there are no keys either: the Auth can only come in plaintext.
    with pytest.raises(StateError, match="before our hello"):
        quiet.receive(encode_message(Auth(bytes(64), "A")))
    assert quiet.closed


def test_auth_is_refused_after_we_closed_without_a_hello() -> None:
    a, b = pair()
    b.receive(a.hello())
    a.receive(b.hello())
    fresh = Session(KEY_B, NONCE_B, "B")
    fresh.receive(encode_message(sample(Hello, a)))
    fresh.close("changed my mind")  # START -> CLOSED: our hello never went out
    with pytest.raises(StateError, match="before our hello"):
        fresh.receive(encode_message(Auth(bytes(64), "A")))


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


def test_the_name_travels_sealed_and_counts_only_once_auth_verified() -> None:
    a, b = pair()
    hello = a.hello()
    assert decode_message(hello) == Hello(PROTOCOL_VERSION, PUB_A, NONCE_A, EPUB_A)
    b.receive(hello)
    assert b.peer_key == PUB_A and b.peer_name == ""  # only keys and a nonce so far
    a.receive(b.hello())
    b.receive(a.auth())
    assert b.peer_name == "A"


def test_auth_signs_the_documented_transcript() -> None:
    a, b = pair()
    b.receive(a.hello())
    a.receive(b.hello())
    data = a.auth()
    msg = b.receive(data)
    assert isinstance(msg, Auth)
    # The transcript hash covers both Hellos as sent, the smaller node key's first.
    hellos = sorted([(PUB_A, encode_message(sample(Hello, a))), (PUB_B, b._our_hello or b"")])
    th = hashlib.sha256(hellos[0][1] + hellos[1][1]).digest()
    assert a.transcript_hash == b.transcript_hash == th
    signed = AUTH_CONTEXT + th + NONCE_B + NONCE_A + PUB_A + PUB_B
    KEY_A.public_key().verify(msg.signature, signed)


def handshake_to_auth(b: Session, hello: Hello) -> Channel:
    """``b`` says hello and receives ``hello`` from whoever claims to be its peer (holding
    ``EPH_M``); returns that claimant's channel to ``b``."""
    ours, theirs = b.hello(), encode_message(hello)
    b.receive(theirs)
    th = transcript_hash([(b.our_key, ours), (hello.node_key, theirs)])
    shared = shared_secret(EPH_M, b.our_ephemeral)
    return Channel(direction_key(shared, th, hello.node_key), direction_key(shared, th, PUB_B))


def test_auth_by_the_wrong_key_is_rejected() -> None:
    _, b = pair()
    m = handshake_to_auth(b, Hello(PROTOCOL_VERSION, PUB_A, NONCE_M, EPUB_M))
    # M claims A's key and holds the channel keys, but can only sign with its own key.
    assert b.transcript_hash is not None
    forged = KEY_M.sign(AUTH_CONTEXT + b.transcript_hash + NONCE_B + NONCE_M + PUB_A + PUB_B)
    with pytest.raises(AuthenticationError, match="failed to prove"):
        b.receive(m.seal(encode_message(Auth(forged, "A"))))
    assert b.closed and b.their_state is State.CLOSED


def test_auth_replayed_from_another_session_is_rejected() -> None:
    a, b = pair()
    b.receive(a.hello())
    a.receive(b.hello())
    recorded_hello, recorded_auth = encode_message(sample(Hello, a)), a.auth()
    b.receive(recorded_auth)  # genuine in its own session
    later = Session(KEY_B, b"\xb2" * 32, "B")  # a new session: new nonce, new ephemeral key
    later.hello()
    later.receive(recorded_hello)
    # New keys (even with the old ephemeral: the new nonce changes the transcript hash).
    with pytest.raises(DecryptError):
        later.receive(recorded_auth)


def test_reflected_auth_is_rejected() -> None:
    a, b = pair()
    b.receive(a.hello())
    a.receive(b.hello())
    b_auth = b.auth()
    # Echoed back at B: each direction has its own key, so it does not even open.
    with pytest.raises(DecryptError):
        b.receive(b_auth)
    # Re-sealed by someone holding both keys, the signature still fails: the transcript
    # names the signer first.
    a, b = pair()
    b.receive(a.hello())
    a.receive(b.hello())
    assert a.channel is not None and b.channel is not None
    relay = Channel(a.channel.send_key, b.channel.send_key)
    with pytest.raises(AuthenticationError):
        b.receive(relay.seal(relay.open(b.auth())))


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


@pytest.mark.parametrize("version", [0, 1, PROTOCOL_VERSION + 1, 2**40])
def test_version_mismatch(version: int) -> None:
    _, b = pair()
    b.hello()
    with pytest.raises(AuthenticationError, match="version"):
        b.receive(encode_message(Hello(version, PUB_A, NONCE_A, EPUB_A)))
    assert b.closed
    # A version 1 Hello has no ephemeral key: the version is still what gets reported.
    _, b = pair()
    with pytest.raises(AuthenticationError, match="version 1,"):
        b.receive(pack([1, 1, PUB_A, NONCE_A, "A"]))


def test_auth_from_an_invalid_public_key_is_rejected() -> None:
    _, b = pair()
    m = handshake_to_auth(b, Hello(PROTOCOL_VERSION, b"\xff" * 32, NONCE_M, EPUB_M))
    with pytest.raises(AuthenticationError):
        b.receive(m.seal(encode_message(Auth(bytes(64), "A"))))


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
        (b"\x91\x63", None),  # type 99: no such message
        (HELLO_A[:1] + b"\xc3" + HELLO_A[2:], DecodeError),  # a Hello with true for code 1
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


# --- the sealed channel (protocol/channel.py) ------------------------------------------------


def test_everything_after_the_hellos_is_sealed() -> None:
    a, b = pair()
    hello = a.hello()
    assert decode_message(hello) == sample(Hello, a)  # the Hello alone is plaintext
    b.receive(hello)
    a.receive(b.hello())
    auth = a.auth()
    with pytest.raises(DecodeError):
        decode_message(auth)
    assert isinstance(b.receive(auth), Auth)
    assert a.channel is not None and b.channel is not None
    assert a.channel.send_key == b.channel.receive_key != a.channel.receive_key


def test_a_flipped_byte_closes_the_session() -> None:
    a, b = pair_at(State.SYNCING)
    data = bytearray(a.send(Ack(LOG, 1)))
    data[len(data) // 2] ^= 0x01
    with pytest.raises(DecryptError) as caught:
        b.receive(bytes(data))
    assert caught.value.reason == "decrypt"
    assert b.closed and b.close_reason and "does not decrypt" in b.close_reason
    # What follows does not open either: the session is over.
    with pytest.raises(DecryptError):
        b.receive(a.send(Ack(LOG, 1)))


def test_a_replayed_message_closes_the_session() -> None:
    a, b = pair_at(State.SYNCING)
    data = a.send(Request(LOG, 1, 1))
    assert isinstance(b.receive(data), Request)
    with pytest.raises(DecryptError):
        b.receive(data)
    assert b.closed


def test_reordered_and_lost_messages_close_the_session() -> None:
    a, b = pair_at(State.SYNCING)
    a.send(Ack(LOG, 1))
    with pytest.raises(DecryptError):
        b.receive(a.send(Ack(LOG, 2)))  # overtook the first
    a, b = pair_at(State.SYNCING)
    a.send(Ack(LOG, 1))  # lost on the way
    with pytest.raises(DecryptError):
        b.receive(a.send(Ack(LOG, 2)))


def test_plaintext_after_the_hellos_is_refused() -> None:
    _, b = pair_at(State.SYNCING)
    with pytest.raises(DecryptError):
        b.receive(encode_message(Frontier(())))  # injected by someone on the path
    _, b = pair_at(State.SYNCING)
    with pytest.raises(DecryptError):
        b.receive(encode_message(Close("spoofed")))  # a Close too, once Auth arrived


def test_a_peer_that_refused_our_hello_can_say_why_in_plaintext() -> None:
    a, b = pair(expected_peer=PUB_M)
    hello_b = b.hello()
    a.receive(hello_b)
    with pytest.raises(AuthenticationError):
        b.receive(a.hello())
    close = b.close("expected someone else")
    assert close is not None and isinstance(decode_message(close), Close)  # b has no keys
    assert a.channel is not None  # a has keys and expects sealed messages, but takes this
    assert isinstance(a.receive(close), Close)
    assert a.closed and a.close_reason == "peer closed: expected someone else"


def test_messages_are_deflated_before_sealing_when_that_helps() -> None:
    big = Entries(LOG, (ENTRY.raw,) * 50)
    plain = encode_message(big)
    a, b = pair_at(State.SYNCING)
    sealed = a.send(big)
    assert len(sealed) < len(plain) // 4
    assert b.receive(sealed) == big
    small = a.send(Ack(LOG, 1))  # not worth it: one flag byte and the tag on top
    assert len(small) == len(encode_message(Ack(LOG, 1))) + 1 + 16
    assert b.receive(small) == Ack(LOG, 1)


def test_compression_off() -> None:
    big = Entries(LOG, (ENTRY.raw,) * 50)
    a = Session(KEY_A, NONCE_A, "A", ephemeral=EPH_A, compress=False)
    b = Session(KEY_B, NONCE_B, "B", ephemeral=EPH_B)  # compresses; reads either
    b.receive(a.hello())
    a.receive(b.hello())
    b.receive(a.auth())
    a.receive(b.auth())
    b.receive(a.send(Frontier(())))
    a.receive(b.send(Frontier(())))
    sealed = a.send(big)
    assert len(sealed) == len(encode_message(big)) + 1 + 16
    assert b.receive(sealed) == big
    assert a.receive(b.send(big)) == big


def test_a_zip_bomb_is_a_typed_limit() -> None:
    limits = Limits(max_message_bytes=64 * 1024)
    sender, receiver = Channel(b"k" * 32, b"l" * 32), Channel(b"l" * 32, b"k" * 32, limits=limits)
    bomb = sender.seal(bytes(10 * 1024 * 1024))  # 10 MiB of zeros deflate to ~10 KiB
    assert len(bomb) < 20 * 1024
    with pytest.raises(LimitExceeded, match="inflates past"):
        receiver.open(bomb)


def test_frames_that_open_but_do_not_parse_are_typed_errors() -> None:
    key = b"k" * 32
    for frame, error in [
        (b"", DecodeError),  # no flag byte
        (b"\x07hello", DecodeError),  # unknown flag
        (b"\x01\xff\xff", DecodeError),  # not deflate
        (b"\x01" + zlib.compress(b"x" * 200)[2:-4] + b"!", DecodeError),  # bytes after the end
    ]:
        sealed = ChaCha20Poly1305(key).encrypt(bytes(12), frame, None)
        with pytest.raises(error):
            Channel(key, key).open(sealed)


def test_a_small_order_ephemeral_key_is_refused() -> None:
    _, b = pair()
    b.hello()
    with pytest.raises(AuthenticationError, match="ephemeral"):
        b.receive(encode_message(Hello(PROTOCOL_VERSION, PUB_A, NONCE_A, bytes(32))))
    assert b.closed


def test_a_swapped_ephemeral_key_is_caught() -> None:
    """A man in the middle who swaps the ephemeral keys in both Hellos holds both channels'
    keys, and re-seals everything; the signatures cover the Hellos and fail."""
    a, b = pair()
    hello_a, hello_b = a.hello(), b.hello()

    def swapped(hello: bytes) -> bytes:
        msg = decode_message(hello)
        assert isinstance(msg, Hello)
        return encode_message(Hello(msg.version, msg.node_key, msg.nonce, EPUB_M))

    to_b, to_a = swapped(hello_a), swapped(hello_b)
    b.receive(to_b)
    a.receive(to_a)

    def leg(victim: Session, its_hello: bytes, our_hello: bytes, claimed: bytes) -> Channel:
        th = transcript_hash([(victim.our_key, its_hello), (claimed, our_hello)])
        shared = shared_secret(EPH_M, victim.our_ephemeral)
        return Channel(
            direction_key(shared, th, claimed), direction_key(shared, th, victim.our_key)
        )

    with_a, with_b = leg(a, hello_a, to_a, PUB_B), leg(b, hello_b, to_b, PUB_A)
    relayed = with_b.seal(with_a.open(a.auth()))  # M reads A's Auth and passes it on
    with pytest.raises(AuthenticationError, match="failed to prove"):
        b.receive(relayed)
    assert b.peer_key == PUB_A and b.closed
