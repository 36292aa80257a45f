"""Entry kinds and the exact shape of each body. Anything else is rejected.

``catalog``: ``{"ops": [op, ...]}`` with 1..max_ops_per_entry operations, each
``["put", record_id, record]`` or ``["del", record_id]``; one signature covers the whole batch.
``profile``: ``{"name": text, "isil"?: text, "contact"?: text, "addresses"?: [host:port, ...]}``
— the library's public profile; ``addresses`` are where its daemon can be dialled (peer exchange).
``checkpoint``: ``{"records": n, "state": 32 bytes}`` in a catalogue log — the author's signed
statement of what its catalogue holds after the entries before it (see protocol/snapshots.py), so
a new node can start from a snapshot instead of replaying every historical entry.
``member``: ``{"op": "admit"|"remove"|"revoke", "key": 32 bytes, "name": text, "reason"?: text,
"role"?: "admin"|"member"}`` in the author's ``members`` log — a statement about who belongs to
the network (protocol/membership.py folds them into the member set).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import cooperation, intents, loans
from .bodies import only_keys as _only_keys
from .errors import InvalidBody, UnknownKind
from .limits import Limits

CATALOG = "catalog"
PROFILE = "profile"
CHECKPOINT = "checkpoint"
MEMBER = "member"
MEMBERS_LOG = "members"  # the log every member statement lives in (protocol/membership.py)
MEMBER_OPS = ("admit", "remove", "revoke")
MEMBER_ROLES = ("admin", "member")
_MEMBER_KEY_BYTES = 32

# The record map inside a "put": field name -> kind of value.
# ``roles`` runs parallel to ``authors`` (the relator term of each name, "" when none), so
# ``authors`` stays a plain list of names for readers that know nothing of roles.
RECORD_LIST_FIELDS = ("authors", "isbn", "issn", "subjects", "series", "roles", "notes")
RECORD_TEXT_FIELDS = (
    "title",
    "responsibility",
    "publisher",
    "place",
    "edition",
    "language",
    "call_number",
    "format",
    "description",
    "subtitle",
    "ddc",
)
# ``copied_from``: where a copy-catalogued record came from (peernode/copying.py), all text.
PROVENANCE_FIELDS = ("library", "record", "seq", "hash", "date")
# ``summary``: a serial's holdings statement as the library wrote it ("v.1(1990)-v.12(2001)").
HOLDING_FIELDS = ("call_number", "barcode", "location", "note", "summary")
# ``box_key``: the library's X25519 key for sealed loan details (protocol/sealing.py).
PROFILE_FIELDS = ("name", "isil", "contact", "addresses", "box_key")
# Peer exchange: where a library's daemon listens. Few and short, because every member stores
# every member's profile and a node dials only a handful of them.
MAX_PROFILE_ADDRESSES = 4
MAX_ADDRESS_CHARS = 260  # a DNS name (253) and a port
_RECORD_FIELDS = frozenset(
    (*RECORD_LIST_FIELDS, *RECORD_TEXT_FIELDS, "year", "holdings", "copied_from")
)
_MAX_HOLDINGS = 1000


def validate_body(kind: str, body: Any, limits: Limits, *, where: str) -> None:
    validator = _VALIDATORS.get(kind)
    if validator is None:
        raise UnknownKind(f"{where}: unknown entry kind {kind!r}")
    if not isinstance(body, dict):
        raise InvalidBody(f"{where}: body must be a map")
    validator(body, limits, where)


def _catalog(body: dict[str, Any], limits: Limits, where: str) -> None:
    _only_keys(body, {"ops"}, where)
    ops = body.get("ops")
    if not isinstance(ops, list) or not ops:
        raise InvalidBody(f"{where}: 'ops' must be a non-empty array")
    if len(ops) > limits.max_ops_per_entry:
        raise InvalidBody(f"{where}: {len(ops)} operations, more than {limits.max_ops_per_entry}")
    for index, op in enumerate(ops):
        at = f"{where} op {index}"
        if not isinstance(op, list) or not op:
            raise InvalidBody(f"{at}: an operation must be a non-empty array")
        name = op[0]
        if name == "put" and len(op) == 3:
            _record_id(op[1], limits, at)
            _record(op[2], limits, f"{at} ({op[1]})")
        elif name == "del" and len(op) == 2:
            _record_id(op[1], limits, at)
        else:
            raise InvalidBody(f'{at}: expected ["put", id, record] or ["del", id]')


def _record_id(rid: Any, limits: Limits, where: str) -> None:
    if not isinstance(rid, str) or not rid or len(rid.encode()) > limits.max_record_id_bytes:
        raise InvalidBody(
            f"{where}: record id must be text of 1..{limits.max_record_id_bytes} bytes"
        )


def validate_record(rec: Any, limits: Limits, where: str) -> None:
    """The record map of a ``put``; also checks records that arrive in a snapshot."""
    _record(rec, limits, where)


def _record(rec: Any, limits: Limits, where: str) -> None:
    if not isinstance(rec, dict):
        raise InvalidBody(f"{where}: record must be a map")
    if not isinstance(rec.get("title"), str):
        raise InvalidBody(f"{where}: field 'title' is required text")
    for key, value in rec.items():
        if key not in _RECORD_FIELDS:
            raise InvalidBody(f"{where}: unknown field {key!r}")
        if key in RECORD_TEXT_FIELDS:
            if not isinstance(value, str):
                raise InvalidBody(f"{where}: field {key!r} must be text")
        elif key in RECORD_LIST_FIELDS:
            _text_list(value, limits, f"{where} field {key!r}")
        elif key == "year":
            if not isinstance(value, int) or isinstance(value, bool) or not -9999 <= value <= 9999:
                raise InvalidBody(f"{where}: field 'year' must be an integer year")
        elif key == "copied_from":
            _provenance(value, where)
        else:
            _holdings(value, where)


def _provenance(value: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise InvalidBody(f"{where}: 'copied_from' must be a map")
    for key, text in value.items():
        if key not in PROVENANCE_FIELDS or not isinstance(text, str):
            raise InvalidBody(f"{where}: 'copied_from' field {key!r} is not a text field")


def _text_list(value: Any, limits: Limits, where: str) -> None:
    if not isinstance(value, list) or len(value) > limits.max_list_items:
        raise InvalidBody(f"{where}: must be an array of at most {limits.max_list_items} texts")
    if not all(isinstance(v, str) for v in value):
        raise InvalidBody(f"{where}: every item must be text")


def _holdings(value: Any, where: str) -> None:
    if not isinstance(value, list) or len(value) > _MAX_HOLDINGS:
        raise InvalidBody(f"{where}: 'holdings' must be an array of at most {_MAX_HOLDINGS} maps")
    for index, holding in enumerate(value):
        if not isinstance(holding, dict):
            raise InvalidBody(f"{where} holding {index}: must be a map")
        for key, text in holding.items():
            if key not in HOLDING_FIELDS or not isinstance(text, str):
                raise InvalidBody(f"{where} holding {index}: field {key!r} is not a text field")


def _profile(body: dict[str, Any], limits: Limits, where: str) -> None:
    _only_keys(body, set(PROFILE_FIELDS), where)
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InvalidBody(f"{where}: 'name' must be text of 1..200 characters")
    for key in ("isil", "contact"):
        if key in body and not isinstance(body[key], str):
            raise InvalidBody(f"{where}: {key!r} must be text")
    box_key = body.get("box_key", b"0" * 32)
    if not isinstance(box_key, bytes) or len(box_key) != 32:
        raise InvalidBody(f"{where}: 'box_key' must be a 32-byte X25519 key")
    if "addresses" in body:
        addresses = body["addresses"]
        if not isinstance(addresses, list) or len(addresses) > MAX_PROFILE_ADDRESSES:
            raise InvalidBody(
                f"{where}: 'addresses' must be an array of at most {MAX_PROFILE_ADDRESSES} texts"
            )
        for index, address in enumerate(addresses):
            if not is_dial_address(address):
                raise InvalidBody(
                    f"{where}: addresses[{index}] is not HOST:PORT ({MAX_ADDRESS_CHARS} "
                    "characters at most, no spaces, port 1..65535)"
                )


def is_dial_address(value: Any) -> bool:
    """``HOST:PORT`` text a node may dial: a name, IPv4, or [IPv6], and a port 1..65535.

    Addresses come from other libraries' profiles, so nothing but these characters gets through
    (no spaces, no URL parts: the dialler puts the text into ``http://HOST:PORT/sync``).
    """
    if not isinstance(value, str) or not 3 <= len(value) <= MAX_ADDRESS_CHARS:
        return False
    host, sep, port = value.rpartition(":")
    if not sep or not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        return False
    if host.startswith("[") and host.endswith("]"):
        inner = host[1:-1]
        return bool(inner) and all(c in _IPV6_CHARS for c in inner)
    return bool(host) and all(c in _HOST_CHARS for c in host)


_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")
_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.%")


def _checkpoint(body: dict[str, Any], limits: Limits, where: str) -> None:
    _only_keys(body, {"records", "state"}, where)
    count, state = body.get("records"), body.get("state")
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count < 2**63:
        raise InvalidBody(f"{where}: 'records' must be a count of records")
    if not isinstance(state, bytes) or len(state) != 32:
        raise InvalidBody(f"{where}: 'state' must be a 32-byte digest")


def _member(body: dict[str, Any], limits: Limits, where: str) -> None:
    _only_keys(body, {"op", "key", "name", "reason", "role"}, where)
    op = body.get("op")
    if op not in MEMBER_OPS:
        raise InvalidBody(f"{where}: 'op' must be one of {', '.join(MEMBER_OPS)}")
    key = body.get("key")
    if not isinstance(key, bytes) or len(key) != _MEMBER_KEY_BYTES:
        raise InvalidBody(f"{where}: 'key' must be a {_MEMBER_KEY_BYTES}-byte public key")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InvalidBody(f"{where}: 'name' must be text of 1..200 characters")
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 1000:
        raise InvalidBody(f"{where}: 'reason' must be text of at most 1000 characters")
    if "role" in body and (op != "admit" or body["role"] not in MEMBER_ROLES):
        raise InvalidBody(f"{where}: 'role' is admin or member, and only in an admit")


_VALIDATORS: dict[str, Callable[[dict[str, Any], Limits, str], None]] = {
    CATALOG: _catalog,
    CHECKPOINT: _checkpoint,
    MEMBER: _member,
    PROFILE: _profile,
    # Interlibrary loan and cooperation (issue 4): schemas live beside their folds.
    loans.LOAN: lambda body, limits, where: loans.validate(body, where),
    cooperation.POLICY: lambda body, limits, where: cooperation.validate_policy(body, where),
    cooperation.OFFER: lambda body, limits, where: cooperation.validate_offer(body, where),
    cooperation.AGREEMENT: lambda body, limits, where: cooperation.validate_agreement(body, where),
    intents.INTENT: lambda body, limits, where: intents.validate(body, where),
}
KINDS = tuple(sorted(_VALIDATORS))
