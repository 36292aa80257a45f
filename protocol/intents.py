"""The ``intent`` entry: a library announces a title it plans to buy, or withdraws that plan.

Coordinated collection development: before buying an expensive title, a library says so, and
every member sees it beside who already holds the title or also plans to buy it. Intents live
in the author's ``intents`` log; each carries an id the author chose, unique in its log.

``{"op": "add", "id": ID, "isbn"?: [ISBN-13, ...], "title"?: text, "authors"?: [text, ...],
"note"?: text, "planned"?: "YYYY-MM" | "YYYY-MM-DD"}`` — at least one ISBN or a title.
``{"op": "withdraw", "id": ID, "reason"?: text}``.
An ``add`` with an id already used replaces that intent (an edit, or a plan taken up again).
"""

from __future__ import annotations

import re
from typing import Any

from .errors import InvalidBody

INTENT = "intent"
INTENTS_LOG = "intents"
INTENT_OPS = ("add", "withdraw")
MAX_ID_CHARS = 64
MAX_TITLE_CHARS = 500
MAX_NOTE_CHARS = 2000
MAX_NAME_CHARS = 200
MAX_ISBNS = 20
MAX_AUTHORS = 20
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_ISBN13 = re.compile(r"97[89][0-9]{10}")
_PLANNED = re.compile(r"([0-9]{4})-([0-9]{2})(?:-([0-9]{2}))?")
_ADD_KEYS = frozenset(("op", "id", "isbn", "title", "authors", "note", "planned"))
_WITHDRAW_KEYS = frozenset(("op", "id", "reason"))


def validate(body: dict[str, Any], where: str) -> None:
    """Raise :class:`InvalidBody` naming the first thing wrong with an ``intent`` body."""
    op = body.get("op")
    if op not in INTENT_OPS:
        raise InvalidBody(f"{where}: 'op' must be one of {', '.join(INTENT_OPS)}")
    extra = sorted(set(body) - (_ADD_KEYS if op == "add" else _WITHDRAW_KEYS))
    if extra:
        raise InvalidBody(f"{where}: unknown field(s) {', '.join(map(repr, extra))} in {op}")
    intent_id = body.get("id")
    if (
        not isinstance(intent_id, str)
        or len(intent_id) > MAX_ID_CHARS
        or not _ID.fullmatch(intent_id)
    ):
        raise InvalidBody(
            f"{where}: 'id' must be 1..{MAX_ID_CHARS} characters of A-Z, a-z, 0-9, '.', '_', '-'"
        )
    if op == "withdraw":
        _text(body, "reason", MAX_NOTE_CHARS, where)
        return
    isbns = body.get("isbn", [])
    if not isinstance(isbns, list) or len(isbns) > MAX_ISBNS:
        raise InvalidBody(f"{where}: 'isbn' must be an array of at most {MAX_ISBNS} ISBN-13s")
    for index, isbn in enumerate(isbns):
        if not isinstance(isbn, str) or not is_isbn13(isbn):
            raise InvalidBody(f"{where}: isbn[{index}] is not a valid 13-digit ISBN")
    _text(body, "title", MAX_TITLE_CHARS, where)
    title = body.get("title", "")
    if not isbns and not title.strip():
        raise InvalidBody(f"{where}: an intent needs at least one ISBN or a title")
    authors = body.get("authors", [])
    if not isinstance(authors, list) or len(authors) > MAX_AUTHORS:
        raise InvalidBody(f"{where}: 'authors' must be an array of at most {MAX_AUTHORS} names")
    for index, name in enumerate(authors):
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS:
            raise InvalidBody(f"{where}: authors[{index}] must be text of 1..{MAX_NAME_CHARS}")
    _text(body, "note", MAX_NOTE_CHARS, where)
    if "planned" in body and not is_planned_date(body["planned"]):
        raise InvalidBody(f"{where}: 'planned' must be a date YYYY-MM or YYYY-MM-DD")


def _text(body: dict[str, Any], key: str, limit: int, where: str) -> None:
    value = body.get(key, "")
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidBody(f"{where}: {key!r} must be text of at most {limit} characters")


def is_isbn13(text: str) -> bool:
    if not _ISBN13.fullmatch(text):
        return False
    total = sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(text[:12]))
    return (10 - total % 10) % 10 == int(text[12])


def is_planned_date(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    match = _PLANNED.fullmatch(value)
    if not match:
        return False
    month = int(match.group(2))
    day = int(match.group(3) or "1")
    return 1 <= month <= 12 and 1 <= day <= 31
