"""The peernode wire protocol, sans-IO: no sockets, no database, no clock.

Public API: entries (``sign_entry``, ``decode_entry``, ``Entry``), chains (``place``,
``Placement``, ``Head``, ``LogKey``, ``ForkProof``), the ``Session`` state machine and the
``Replicator`` that drives it, node ids, limits, and one error tree rooted at ``ProtocolError``.
"""

from .chains import ForkProof, Head, LogKey, Placement, fork_proof, place, verify_fork_proof
from .entries import Entry, decode_entry, sign_entry
from .errors import (
    AuthenticationError,
    BadSignature,
    ChainError,
    DecodeError,
    DecryptError,
    InvalidBody,
    InvalidForkProof,
    LimitExceeded,
    LocalProtocolError,
    ProtocolError,
    RateLimited,
    RemoteProtocolError,
    StateError,
    TimestampError,
    UnknownKind,
    UntrustedAuthor,
)
from .identity import node_id, parse_node_id, public_bytes, short_id
from .kinds import CATALOG, CHECKPOINT, PROFILE
from .limits import DEFAULT_LIMITS, Limits
from .liveness import LivenessBook, sign_heartbeat, verify_heartbeat
from .messages import PROTOCOL_VERSION
from .replication import (
    Action,
    Apply,
    Closed,
    ForkReported,
    Heard,
    OwnLogBehind,
    Ready,
    Reject,
    Replicator,
    Send,
    Serve,
)
from .session import Session, State

__all__ = [
    "CATALOG",
    "CHECKPOINT",
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
    "DecryptError",
    "Entry",
    "ForkProof",
    "ForkReported",
    "Head",
    "Heard",
    "InvalidBody",
    "InvalidForkProof",
    "LimitExceeded",
    "Limits",
    "LivenessBook",
    "LocalProtocolError",
    "LogKey",
    "OwnLogBehind",
    "Placement",
    "ProtocolError",
    "RateLimited",
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
    "sign_heartbeat",
    "verify_fork_proof",
    "verify_heartbeat",
]
