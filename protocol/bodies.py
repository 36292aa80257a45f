"""Checks shared by the validators of every entry kind's body (protocol/kinds.py and the kinds'
own modules): each body is a map with a fixed set of keys, and anything else is rejected."""

from __future__ import annotations

from typing import Any

from .errors import InvalidBody


def only_keys(body: dict[str, Any], allowed: set[str] | frozenset[str], where: str) -> None:
    """Reject a body with a key outside ``allowed``, naming every one."""
    extra = sorted(set(body) - allowed)
    if extra:
        raise InvalidBody(f"{where}: unknown field(s) {', '.join(map(repr, extra))}")
