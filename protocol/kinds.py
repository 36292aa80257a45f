"""Entry kinds and the exact shape of each body. Anything else is rejected.

``catalog``: ``{"ops": [op, ...]}`` with 1..max_ops_per_entry operations, each
``["put", record_id, record]`` or ``["del", record_id]``; one signature covers the whole batch.
``profile``: ``{"name": text, "isil"?: text, "contact"?: text}`` — the library's public profile.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import InvalidBody, UnknownKind
from .limits import Limits

CATALOG = "catalog"
PROFILE = "profile"

# The record map inside a "put": field name -> kind of value.
RECORD_LIST_FIELDS = ("authors", "isbn", "issn", "subjects", "series")
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
)
HOLDING_FIELDS = ("call_number", "barcode", "location", "note")
PROFILE_FIELDS = ("name", "isil", "contact")
_RECORD_FIELDS = frozenset((*RECORD_LIST_FIELDS, *RECORD_TEXT_FIELDS, "year", "holdings"))
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
        else:
            _holdings(value, where)


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


def _only_keys(body: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(body) - allowed)
    if extra:
        raise InvalidBody(f"{where}: unknown field(s) {', '.join(map(repr, extra))}")


_VALIDATORS: dict[str, Callable[[dict[str, Any], Limits, str], None]] = {
    CATALOG: _catalog,
    PROFILE: _profile,
}
KINDS = tuple(sorted(_VALIDATORS))
