"""The peernode wire protocol, sans-IO: no sockets, no database, no clock.

Public API: entries (``sign_entry``, ``decode_entry``, ``Entry``), chains (``place``,
``Placement``, ``Head``, ``LogKey``, ``ForkProof``), the ``Session`` state machine and the
``Replicator`` that drives it, node ids, limits, and one error tree rooted at ``ProtocolError``.
"""

from .chains import ForkProof, Head, LogKey, Placement, fork_proof, place
from .entries import Entry, decode_entry, sign_entry
from .errors import (
    AuthenticationError,
    BadSignature,
    ChainError,
    DecodeError,
    InvalidBody,
    LimitExceeded,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    StateError,
    TimestampError,
    UnknownKind,
    UntrustedAuthor,
)
from .identity import node_id, parse_node_id, public_bytes, short_id
from .kinds import CATALOG, PROFILE
from .limits import DEFAULT_LIMITS, Limits
from .messages import PROTOCOL_VERSION
from .replication import Action, Apply, Closed, Ready, Reject, Replicator, Send, Serve
from .session import Session, State

__all__ = [
    "CATALOG",
    "DEFAULT_LIMITS",
    "PROFILE",
    "PROTOCOL_VERSION",
    "Action",
    "Apply",
    "AuthenticationError",
    "BadSignature",
    "ChainError",
    "Closed",
    "DecodeError",
    "Entry",
    "ForkProof",
    "Head",
    "InvalidBody",
    "LimitExceeded",
    "Limits",
    "LocalProtocolError",
    "LogKey",
    "Placement",
    "ProtocolError",
    "Ready",
    "Reject",
    "RemoteProtocolError",
    "Replicator",
    "Send",
    "Serve",
    "Session",
    "State",
    "StateError",
    "TimestampError",
    "UnknownKind",
    "UntrustedAuthor",
    "decode_entry",
    "fork_proof",
    "node_id",
    "parse_node_id",
    "place",
    "public_bytes",
    "short_id",
    "sign_entry",
]
