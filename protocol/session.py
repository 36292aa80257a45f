"""The replication session as a pure state machine (after h11).

Each side of a connection has a state; every message moves the state of the side that sent it,
by the table ``TRANSITIONS``. ``Session.send`` checks our side (illegal -> LocalProtocolError),
``Session.receive`` checks theirs (illegal -> StateError, and the session is CLOSED).

    START --Hello--> GREETED --Auth--> AUTHENTICATED --Frontier--> SYNCING
    SYNCING --Frontier|Request|Entries|Ack|Heartbeat|ForkNotice--> SYNCING
    any state --Close--> CLOSED

Two guards sit beside the table: Auth is sent only after the peer's Hello (it signs the peer's
nonce), and accepted only after ours was sent; Request is sent only once the peer's Frontier
arrived. Mutual authentication: each side signs ``AUTH_CONTEXT + th + peer nonce + own nonce +
own key + peer key``, where ``th`` hashes both Hellos (so both ephemeral keys), binding the
channel and both keys so an answer cannot be replayed, reflected or relayed by a man in the
middle. The Hellos travel in plaintext; every later message is sealed (protocol/channel.py).
"""

from __future__ import annotations

import enum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from .channel import Channel, shared_secret, transcript_hash
from .errors import (
    AuthenticationError,
    DecryptError,
    LocalProtocolError,
    ProtocolError,
    StateError,
)
from .identity import public_bytes, short_id
from .limits import DEFAULT_LIMITS, Limits
from .messages import (
    NONCE_BYTES,
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

AUTH_CONTEXT = b"peernode/auth/v2\x00"


class State(enum.Enum):
    START = "start"
    GREETED = "greeted"
    AUTHENTICATED = "authenticated"
    SYNCING = "syncing"
    CLOSED = "closed"


TRANSITIONS: dict[tuple[State, type[Any]], State] = {
    (State.START, Hello): State.GREETED,
    (State.GREETED, Auth): State.AUTHENTICATED,
    (State.AUTHENTICATED, Frontier): State.SYNCING,
    (State.SYNCING, Frontier): State.SYNCING,
    (State.SYNCING, Request): State.SYNCING,
    (State.SYNCING, Entries): State.SYNCING,
    (State.SYNCING, Ack): State.SYNCING,
    (State.SYNCING, Heartbeat): State.SYNCING,
    (State.SYNCING, ForkNotice): State.SYNCING,
    **{(s, Close): State.CLOSED for s in State if s is not State.CLOSED},
}


class Session:
    """One side of one connection. Holds no socket and reads no clock.

    ``ephemeral`` is this session's X25519 key (a fresh one when None; tests pass a fixed one).
    ``compress`` deflates what we send when that makes it smaller; the peer inflates either way.
    Everything after the Hellos travels sealed by ``channel`` (protocol/channel.py).
    """

    def __init__(
        self,
        key: Ed25519PrivateKey,
        nonce: bytes,
        name: str,
        *,
        expected_peer: bytes | None = None,
        limits: Limits = DEFAULT_LIMITS,
        ephemeral: X25519PrivateKey | None = None,
        compress: bool = True,
    ) -> None:
        if len(nonce) != NONCE_BYTES:
            raise LocalProtocolError(f"nonce must be {NONCE_BYTES} random bytes")
        self._key = key
        self.our_key = public_bytes(key)
        self.our_nonce = nonce
        self.name = name
        self.expected_peer = expected_peer
        self.limits = limits
        self.compress = compress
        self._ephemeral = ephemeral if ephemeral is not None else X25519PrivateKey.generate()
        self.our_ephemeral = self._ephemeral.public_key().public_bytes_raw()
        self.our_state = State.START
        self.their_state = State.START
        self.peer_key: bytes | None = None
        self.peer_name = ""  # from the peer's Auth, once verified
        self._their_nonce: bytes | None = None
        self._hello_sent = False
        self._our_hello: bytes | None = None
        self._their_hello: bytes | None = None
        self._shared: bytes | None = None
        self.transcript_hash: bytes | None = None  # SHA-256 of both Hellos, once both are known
        self.channel: Channel | None = None
        self.close_reason: str | None = None

    @property
    def peer(self) -> str:
        """The peer's short id for messages, or 'unknown peer' before its Hello."""
        return short_id(self.peer_key) if self.peer_key else "unknown peer"

    @property
    def closed(self) -> bool:
        return State.CLOSED in (self.our_state, self.their_state)

    # --- sending -----------------------------------------------------------------------------

    def hello(self) -> bytes:
        return self.send(Hello(PROTOCOL_VERSION, self.our_key, self.our_nonce, self.our_ephemeral))

    def auth(self) -> bytes:
        if self._their_nonce is None or self.peer_key is None or self.transcript_hash is None:
            raise LocalProtocolError("cannot authenticate before both hellos")
        transcript = self._transcript(
            self.transcript_hash, self._their_nonce, self.our_nonce, self.our_key, self.peer_key
        )
        return self.send(Auth(self._key.sign(transcript), self.name))

    def send(self, msg: Message) -> bytes:
        """Check ``msg`` against our state and return the bytes to send: sealed once both
        Hellos are known; only a Hello, or a Close before that, goes in plaintext."""
        if isinstance(msg, Auth) and self._their_nonce is None:
            raise LocalProtocolError("cannot send auth before the peer's hello")
        if isinstance(msg, Request) and self.their_state is not State.SYNCING:
            raise LocalProtocolError("cannot request entries before the peer's frontier")
        if isinstance(msg, Hello) and msg.ephemeral != self.our_ephemeral:
            raise LocalProtocolError("a hello must carry this session's ephemeral key")
        self.our_state = self._step(self.our_state, msg, LocalProtocolError, "we")
        data = encode_message(msg)
        if isinstance(msg, Hello):
            self._hello_sent = True
            self._our_hello = data
            self._derive_channel()
            return data
        if isinstance(msg, Close):
            self.close_reason = self.close_reason or msg.reason
        if self.channel is None:
            assert isinstance(msg, Close), "the table allows only Close before both hellos"
            return data
        return self.channel.seal(data)

    def close(self, reason: str) -> bytes | None:
        """Close with ``reason``; returns the Close message, or None if we already sent one."""
        if self.our_state is State.CLOSED:
            return None
        self.close_reason = self.close_reason or reason
        return self.send(Close(reason))

    # --- receiving ---------------------------------------------------------------------------

    def receive(self, data: bytes) -> Message:
        """Open, decode and check one message from the peer. Any error closes the session."""
        try:
            raw = data if self.channel is None else self._open(data)
            msg = decode_message(raw, self.limits)
            if isinstance(msg, Auth) and not self._hello_sent:
                raise StateError(f"{self.peer} sent auth before our hello")
            self.their_state = self._step(self.their_state, msg, StateError, self.peer)
            if isinstance(msg, Hello):
                self._on_hello(msg, raw)
            elif isinstance(msg, Auth):
                self._on_auth(msg)
            elif isinstance(msg, Close):
                self.close_reason = self.close_reason or f"peer closed: {msg.reason}"
            return msg
        except ProtocolError as exc:
            self.their_state = State.CLOSED
            self.close_reason = self.close_reason or str(exc)
            raise

    def _open(self, data: bytes) -> bytes:
        assert self.channel is not None
        try:
            return self.channel.open(data)
        except DecryptError:
            # A peer that refused our Hello has no keys and says why in a plaintext Close.
            # Taking it changes nothing but the reason shown: the session ends either way.
            if self.their_state is State.GREETED and _is_close(data, self.limits):
                return data
            raise

    def _on_hello(self, msg: Hello, raw: bytes) -> None:
        # The version was checked by the decoder: another version's Hello may not even parse.
        if msg.node_key == self.our_key:
            raise AuthenticationError("peer presented our own key (a loop back to ourselves?)")
        if self.expected_peer is not None and msg.node_key != self.expected_peer:
            raise AuthenticationError(
                f"expected {short_id(self.expected_peer)} but {short_id(msg.node_key)} answered"
            )
        self._shared = shared_secret(self._ephemeral, msg.ephemeral)
        self.peer_key, self._their_nonce = msg.node_key, msg.nonce
        self._their_hello = raw
        self._derive_channel()

    def _derive_channel(self) -> None:
        if self._our_hello is None or self._their_hello is None:
            return
        assert self.peer_key is not None and self._shared is not None
        self.transcript_hash = transcript_hash(
            [(self.our_key, self._our_hello), (self.peer_key, self._their_hello)]
        )
        self.channel = Channel.derive(
            self._shared,
            self.transcript_hash,
            self.our_key,
            self.peer_key,
            compress=self.compress,
            limits=self.limits,
        )

    def _on_auth(self, msg: Auth) -> None:
        assert self.peer_key is not None and self._their_nonce is not None  # by the table
        assert self.transcript_hash is not None  # Auth arrives sealed, so both hellos are known
        transcript = self._transcript(
            self.transcript_hash, self.our_nonce, self._their_nonce, self.peer_key, self.our_key
        )
        try:
            Ed25519PublicKey.from_public_bytes(self.peer_key).verify(msg.signature, transcript)
        except (InvalidSignature, ValueError):
            raise AuthenticationError(f"{self.peer} failed to prove it holds its key") from None
        self.peer_name = msg.name  # sealed in a channel only the verified peer holds keys to

    @staticmethod
    def _transcript(
        th: bytes, nonce_for: bytes, nonce_by: bytes, key_by: bytes, key_for: bytes
    ) -> bytes:
        return AUTH_CONTEXT + th + nonce_for + nonce_by + key_by + key_for

    @staticmethod
    def _step(state: State, msg: Message, error: type[ProtocolError], who: str) -> State:
        new = TRANSITIONS.get((state, type(msg)))
        if new is None:
            raise error(f"{who}: {type(msg).__name__} is not allowed in state {state.value}")
        return new


def _is_close(data: bytes, limits: Limits) -> bool:
    try:
        return isinstance(decode_message(data, limits), Close)
    except ProtocolError:
        return False
