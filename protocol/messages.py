"""Session messages: frozen dataclasses, each one WebSocket binary message on the wire.

Every message is ``pack([type, *fields])``; the table of types is ``_CODES`` below and in
docs/protocol.md. ``decode_message`` checks every field's type and bound. After the Hellos the
session seals each message before it goes on the wire (protocol/channel.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .chains import Head, LogKey, max_fork_proof_bytes
from .encoding import pack, unpack
from .errors import AuthenticationError, DecodeError, LimitExceeded, UnknownKind
from .identity import KEY_BYTES, SIGNATURE_BYTES
from .limits import DEFAULT_LIMITS, Limits

PROTOCOL_VERSION = 2
NONCE_BYTES = 32
EPHEMERAL_BYTES = 32  # an X25519 public key


@dataclass(frozen=True)
class Hello:
    """Who I am, a nonce for you to sign, and my ephemeral X25519 key for this session only.

    Sent in plaintext, so it holds nothing but public keys and a random nonce."""

    version: int
    node_key: bytes
    nonce: bytes
    ephemeral: bytes


@dataclass(frozen=True)
class Auth:
    """The proof of my key, and my library's name: sealed, so an eavesdropper learns neither."""

    signature: bytes
    name: str


@dataclass(frozen=True)
class Frontier:
    """Per log, the highest sequence held and its hash. Sent whole once, then as updates.

    ``bases``: logs the sender holds only from a checkpoint on (it started from a snapshot) and
    the first seq it can serve; on the wire, a fifth element of that log's head.
    """

    heads: tuple[tuple[LogKey, Head], ...]
    bases: tuple[tuple[LogKey, int], ...] = ()


@dataclass(frozen=True)
class Request:
    """Ask for entries ``first..last`` (inclusive) of one log."""

    key: LogKey
    first: int
    last: int


@dataclass(frozen=True)
class Entries:
    """Signed entries of one log, in sequence order, as stored by the sender."""

    key: LogKey
    raws: tuple[bytes, ...]


@dataclass(frozen=True)
class Ack:
    """We now hold ``key`` up to ``seq``: the sender may forget about earlier entries."""

    key: LogKey
    seq: int


@dataclass(frozen=True)
class Close:
    reason: str


@dataclass(frozen=True)
class Heartbeat:
    """``node_key`` was alive at ``timestamp`` (its clock, ms), signed by it: relayable by anyone.

    The signature is over ``HEARTBEAT_CONTEXT || node_key || timestamp`` (protocol/liveness.py).
    """

    node_key: bytes
    timestamp: int
    signature: bytes


@dataclass(frozen=True)
class ForkNotice:
    """A fork proof (``ForkProof.to_bytes``), passed on so every member freezes that log."""

    proof: bytes


Message = Hello | Auth | Frontier | Request | Entries | Ack | Close | Heartbeat | ForkNotice

_CODES: dict[type[Any], int] = {
    Hello: 1,
    Auth: 2,
    Frontier: 3,
    Request: 4,
    Entries: 5,
    Ack: 6,
    Close: 7,
    Heartbeat: 8,
    ForkNotice: 9,
}


def encode_message(msg: Message) -> bytes:
    code = _CODES[type(msg)]
    match msg:
        case Hello(version, node_key, nonce, ephemeral):
            return pack([code, version, node_key, nonce, ephemeral])
        case Auth(signature, name):
            return pack([code, signature, name])
        case Frontier(heads, bases):
            based = dict(bases)
            return pack(
                [
                    code,
                    [
                        [k.author, k.log, h.seq, h.hash, *([based[k]] if k in based else [])]
                        for k, h in heads
                    ],
                ]
            )
        case Request(key, first, last):
            return pack([code, key.author, key.log, first, last])
        case Entries(key, raws):
            return pack([code, key.author, key.log, list(raws)])
        case Ack(key, seq):
            return pack([code, key.author, key.log, seq])
        case Close(reason):
            return pack([code, reason[:500]])
        case Heartbeat(node_key, timestamp, signature):
            return pack([code, node_key, timestamp, signature])
        case ForkNotice(proof):
            return pack([code, proof])
    raise TypeError(f"not a message: {msg!r}")  # pragma: no cover


def decode_message(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Message:
    value = unpack(data, what="message", limits=limits, max_bytes=limits.max_message_bytes)
    if (
        not isinstance(value, list)
        or not value
        or not isinstance(value[0], int)
        or isinstance(value[0], bool)  # msgpack true is not the type code 1
    ):
        raise DecodeError("message must be an array starting with an integer type")
    code, fields = value[0], value[1:]
    decoder = _DECODERS.get(code)
    if decoder is None:
        raise UnknownKind(f"unknown message type {code}")
    try:
        return decoder(fields, limits)
    except (ValueError, TypeError) as exc:
        raise DecodeError(f"message type {code}: {exc}") from None


def _arity(fields: list[Any], n: int, name: str) -> None:
    if len(fields) != n:
        raise DecodeError(f"{name} has {len(fields)} fields, expected {n}")


def _bytes(value: Any, size: int, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != size:
        raise DecodeError(f"{what} must be {size} bytes")
    return value


def _int(value: Any, what: str, low: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value < 2**63:
        raise DecodeError(f"{what} must be an integer >= {low}")
    return value


def _key(author: Any, log: Any, limits: Limits) -> LogKey:
    if not isinstance(log, str) or not log or len(log.encode()) > limits.max_log_id_bytes:
        raise DecodeError("log id must be non-empty text within the length limit")
    return LogKey(_bytes(author, KEY_BYTES, "author"), log)


def _hello(f: list[Any], limits: Limits) -> Hello:
    # The version first: another version's Hello may have other fields, and the person reading
    # the log needs "upgrade", not "hello has 4 fields".
    version = _int(f[0] if f else None, "version")
    if version != PROTOCOL_VERSION:
        raise AuthenticationError(
            f"peer speaks protocol version {version}, this node speaks {PROTOCOL_VERSION}"
        )
    _arity(f, 4, "hello")
    return Hello(
        version,
        _bytes(f[1], KEY_BYTES, "node key"),
        _bytes(f[2], NONCE_BYTES, "nonce"),
        _bytes(f[3], EPHEMERAL_BYTES, "ephemeral key"),
    )


def _auth(f: list[Any], limits: Limits) -> Auth:
    _arity(f, 2, "auth")
    if not isinstance(f[1], str) or len(f[1]) > 200:
        raise DecodeError("auth name must be text of at most 200 characters")
    return Auth(_bytes(f[0], SIGNATURE_BYTES, "signature"), f[1])


def _frontier(f: list[Any], limits: Limits) -> Frontier:
    _arity(f, 1, "frontier")
    rows = f[0]
    if not isinstance(rows, list):
        raise DecodeError("frontier must be an array of heads")
    if len(rows) > limits.max_frontier_logs:
        raise LimitExceeded(
            f"frontier lists {len(rows)} logs, more than {limits.max_frontier_logs}"
        )
    heads = []
    bases = []
    for row in rows:
        if not isinstance(row, list) or len(row) not in (4, 5):
            raise DecodeError("frontier head must be [author, log, seq, hash] or [..., base]")
        key = _key(row[0], row[1], limits)
        head = Head(_int(row[2], "seq", 1), _bytes(row[3], 32, "hash"))
        heads.append((key, head))
        if len(row) == 5:
            base = _int(row[4], "base", 2)
            if base > head.seq:
                raise DecodeError(f"frontier base {base} is past its head {head.seq}")
            bases.append((key, base))
    return Frontier(tuple(heads), tuple(bases))


def _request(f: list[Any], limits: Limits) -> Request:
    _arity(f, 4, "request")
    first, last = _int(f[2], "first", 1), _int(f[3], "last", 1)
    if last < first:
        raise DecodeError(f"request range {first}..{last} is empty")
    return Request(_key(f[0], f[1], limits), first, last)


def _entries(f: list[Any], limits: Limits) -> Entries:
    _arity(f, 3, "entries")
    raws = f[2]
    if not isinstance(raws, list) or not all(isinstance(r, bytes) for r in raws):
        raise DecodeError("entries must be an array of bin")
    if len(raws) > limits.max_entries_per_message:
        raise LimitExceeded(
            f"{len(raws)} entries in one message, more than {limits.max_entries_per_message}"
        )
    return Entries(_key(f[0], f[1], limits), tuple(raws))


def _ack(f: list[Any], limits: Limits) -> Ack:
    _arity(f, 3, "ack")
    return Ack(_key(f[0], f[1], limits), _int(f[2], "seq"))


def _close(f: list[Any], limits: Limits) -> Close:
    _arity(f, 1, "close")
    if not isinstance(f[0], str):
        raise DecodeError("close reason must be text")
    return Close(f[0][:500])


def _heartbeat(f: list[Any], limits: Limits) -> Heartbeat:
    _arity(f, 3, "heartbeat")
    return Heartbeat(
        _bytes(f[0], KEY_BYTES, "node key"),
        _int(f[1], "timestamp"),
        _bytes(f[2], SIGNATURE_BYTES, "signature"),
    )


def _fork_notice(f: list[Any], limits: Limits) -> ForkNotice:
    _arity(f, 1, "fork notice")
    if not isinstance(f[0], bytes):
        raise DecodeError("fork notice must carry the proof as bin")
    if len(f[0]) > max_fork_proof_bytes(limits):
        raise LimitExceeded(f"fork proof of {len(f[0])} bytes, more than two entries can take")
    return ForkNotice(f[0])


_DECODERS: dict[int, Callable[[list[Any], Limits], Message]] = {
    1: _hello,
    2: _auth,
    3: _frontier,
    4: _request,
    5: _entries,
    6: _ack,
    7: _close,
    8: _heartbeat,
    9: _fork_notice,
}
