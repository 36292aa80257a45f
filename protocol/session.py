"""The replication session as a pure state machine (after h11).

Each side of a connection has a state; every message moves the state of the side that sent it,
by the table ``TRANSITIONS``. ``Session.send`` checks our side (illegal -> LocalProtocolError),
``Session.receive`` checks theirs (illegal -> StateError, and the session is CLOSED).

    START --Hello--> GREETED --Auth--> AUTHENTICATED --Frontier--> SYNCING
    SYNCING --Frontier|Request|Entries|Ack--> SYNCING
    any state --Close--> CLOSED

Two guards sit beside the table: Auth is sent only after the peer's Hello (it signs the peer's
nonce), and accepted only after ours was sent; Request is sent only once the peer's Frontier
arrived. Mutual authentication: each side signs ``AUTH_CONTEXT + peer nonce + own nonce + own key
+ peer key``, binding both nonces and both keys so an answer cannot be replayed or reflected.
"""

from __future__ import annotations

import enum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from .errors import (
    AuthenticationError,
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
    Frontier,
    Hello,
    Message,
    Request,
    decode_message,
    encode_message,
)

AUTH_CONTEXT = b"peernode/auth/v1\x00"


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
    **{(s, Close): State.CLOSED for s in State if s is not State.CLOSED},
}


class Session:
    """One side of one connection. Holds no socket and reads no clock."""

    def __init__(
        self,
        key: Ed25519PrivateKey,
        nonce: bytes,
        name: str,
        *,
        expected_peer: bytes | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        if len(nonce) != NONCE_BYTES:
            raise LocalProtocolError(f"nonce must be {NONCE_BYTES} random bytes")
        self._key = key
        self.our_key = public_bytes(key)
        self.our_nonce = nonce
        self.name = name
        self.expected_peer = expected_peer
        self.limits = limits
        self.our_state = State.START
        self.their_state = State.START
        self.peer_key: bytes | None = None
        self.peer_name = ""
        self._their_nonce: bytes | None = None
        self._hello_sent = False
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
        return self.send(Hello(PROTOCOL_VERSION, self.our_key, self.our_nonce, self.name))

    def auth(self) -> bytes:
        if self._their_nonce is None or self.peer_key is None:
            raise LocalProtocolError("cannot authenticate before the peer's hello")
        transcript = self._transcript(
            self._their_nonce, self.our_nonce, self.our_key, self.peer_key
        )
        return self.send(Auth(self._key.sign(transcript)))

    def send(self, msg: Message) -> bytes:
        if isinstance(msg, Auth) and self._their_nonce is None:
            raise LocalProtocolError("cannot send auth before the peer's hello")
        if isinstance(msg, Request) and self.their_state is not State.SYNCING:
            raise LocalProtocolError("cannot request entries before the peer's frontier")
        self.our_state = self._step(self.our_state, msg, LocalProtocolError, "we")
        if isinstance(msg, Hello):
            self._hello_sent = True
        if isinstance(msg, Close):
            self.close_reason = self.close_reason or msg.reason
        return encode_message(msg)

    def close(self, reason: str) -> bytes | None:
        """Close with ``reason``; returns the Close message, or None if we already sent one."""
        if self.our_state is State.CLOSED:
            return None
        self.close_reason = self.close_reason or reason
        return self.send(Close(reason))

    # --- receiving ---------------------------------------------------------------------------

    def receive(self, data: bytes) -> Message:
        """Decode and check one message from the peer. Any error closes the session."""
        try:
            msg = decode_message(data, self.limits)
            if isinstance(msg, Auth) and not self._hello_sent:
                raise StateError(f"{self.peer} sent auth before our hello")
            self.their_state = self._step(self.their_state, msg, StateError, self.peer)
            if isinstance(msg, Hello):
                self._on_hello(msg)
            elif isinstance(msg, Auth):
                self._on_auth(msg)
            elif isinstance(msg, Close):
                self.close_reason = self.close_reason or f"peer closed: {msg.reason}"
            return msg
        except ProtocolError as exc:
            self.their_state = State.CLOSED
            self.close_reason = self.close_reason or str(exc)
            raise

    def _on_hello(self, msg: Hello) -> None:
        if msg.version != PROTOCOL_VERSION:
            raise AuthenticationError(
                f"peer speaks protocol version {msg.version}, this node speaks {PROTOCOL_VERSION}"
            )
        if msg.node_key == self.our_key:
            raise AuthenticationError("peer presented our own key (a loop back to ourselves?)")
        if self.expected_peer is not None and msg.node_key != self.expected_peer:
            raise AuthenticationError(
                f"expected {short_id(self.expected_peer)} but {short_id(msg.node_key)} answered"
            )
        self.peer_key, self.peer_name, self._their_nonce = msg.node_key, msg.name, msg.nonce

    def _on_auth(self, msg: Auth) -> None:
        assert self.peer_key is not None and self._their_nonce is not None  # by the table
        transcript = self._transcript(
            self.our_nonce, self._their_nonce, self.peer_key, self.our_key
        )
        try:
            Ed25519PublicKey.from_public_bytes(self.peer_key).verify(msg.signature, transcript)
        except (InvalidSignature, ValueError):
            raise AuthenticationError(f"{self.peer} failed to prove it holds its key") from None

    @staticmethod
    def _transcript(nonce_for: bytes, nonce_by: bytes, key_by: bytes, key_for: bytes) -> bytes:
        return AUTH_CONTEXT + nonce_for + nonce_by + key_by + key_for

    @staticmethod
    def _step(state: State, msg: Message, error: type[ProtocolError], who: str) -> State:
        new = TRANSITIONS.get((state, type(msg)))
        if new is None:
            raise error(f"{who}: {type(msg).__name__} is not allowed in state {state.value}")
        return new
