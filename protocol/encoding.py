"""Canonical msgpack: the one byte string an entry or message is.

Encoding rules (docs/protocol.md): maps have text keys in sorted order; integers use msgpack's
shortest form; text is ``str``, bytes are ``bin``; no floats, no extension types. Decoding never
trusts input: lengths are bounded before allocation, and maps must have text keys.
"""

from __future__ import annotations

from typing import Any

import msgpack

from .errors import DecodeError, LimitExceeded
from .limits import DEFAULT_LIMITS, Limits

# Values msgpack encodes one way only: returned as they are, without a call per value. This is
# the hot path of signing and of checking received entries (thousands of records a batch).
_LEAVES = frozenset({str, int, bytes, bool, type(None)})


def _canonical(obj: Any) -> Any:
    kind = type(obj)
    if kind is dict:
        return {k: v if type(v) in _LEAVES else _canonical(v) for k, v in sorted(obj.items())}
    if kind is list or kind is tuple:
        return [v if type(v) in _LEAVES else _canonical(v) for v in obj]
    if isinstance(obj, float):
        raise TypeError("floats are not allowed in the canonical encoding")
    if isinstance(obj, dict):  # subclasses (OrderedDict, ...) take the same slower road
        return {k: _canonical(obj[k]) for k in sorted(obj)}
    if isinstance(obj, list | tuple):
        return [_canonical(v) for v in obj]
    return obj


def pack(obj: Any) -> bytes:
    """Encode ``obj`` canonically (sorted map keys, bin for bytes, no floats)."""
    return pack_ordered(_canonical(obj))


def canonical(obj: Any) -> Any:
    """``obj`` as ``pack`` encodes it: every map's keys in sorted order, tuples as lists.

    Raises TypeError for a float."""
    return _canonical(obj)


def pack_ordered(obj: Any) -> bytes:
    """Encode ``obj`` whose maps are already in canonical order, without sorting them again.

    For what ``canonical`` returned and for values decoded from bytes checked canonical (an
    entry's body): the same bytes as ``pack``, for a fraction of the cost.
    """
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


def unpack(data: bytes, *, what: str, limits: Limits = DEFAULT_LIMITS, max_bytes: int) -> Any:
    """Decode one msgpack value from ``data`` exactly (no trailing bytes), within ``limits``.

    ``what`` names the thing being decoded for error messages ("message", "entry payload").
    """
    if len(data) > max_bytes:
        raise LimitExceeded(f"{what} is {len(data)} bytes, more than the limit of {max_bytes}")
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_str_len=limits.max_string_bytes,
            max_bin_len=max_bytes,
            # The loosest array bound any field has; each field then checks its own.
            max_array_len=max(
                limits.max_list_items,
                limits.max_ops_per_entry,
                limits.max_entries_per_message,
                limits.max_frontier_logs,
            ),
            max_map_len=limits.max_map_items,
            max_ext_len=0,
            ext_hook=_no_ext,  # max_ext_len=0 still lets an empty ext through
        )
    except msgpack.ExtraData as exc:
        raise DecodeError(f"{what} has {len(exc.extra)} trailing bytes after the value") from None
    except msgpack.StackError:
        # msgpack's own nesting bound (1024) is hit before our depth check can run.
        raise LimitExceeded(f"{what} nests deeper than {limits.max_depth} levels") from None
    except ValueError as exc:
        # msgpack raises ValueError for both over-long fields and malformed/truncated input.
        text = str(exc)
        if "exceeds max" in text:
            raise LimitExceeded(f"{what}: {text}") from None
        raise DecodeError(f"{what} is not valid msgpack: {text or 'truncated'}") from None
    except (msgpack.UnpackException, TypeError, UnicodeDecodeError, RecursionError) as exc:
        raise DecodeError(f"{what} is not valid msgpack: {exc}") from None
    _check_depth(value, limits.max_depth, what)
    return value


def _no_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"extension type {code} is not part of the encoding")


def _check_depth(value: Any, max_depth: int, what: str) -> None:
    """Reject nesting deeper than ``max_depth`` (iterative: no recursion on hostile input).

    One level at a time, testing exact types (msgpack builds plain lists and dicts): this walks
    every container of every received entry, so it must stay cheap per value.
    """
    level: list[Any] = [value] if type(value) is list or type(value) is dict else []
    depth = 1
    while level:
        if depth > max_depth:
            raise LimitExceeded(f"{what} nests deeper than {max_depth} levels")
        deeper: list[Any] = []
        for item in level:
            for child in item.values() if type(item) is dict else item:
                kind = type(child)
                if kind is list or kind is dict:
                    deeper.append(child)
        level = deeper
        depth += 1


def is_canonical(value: Any, data: bytes) -> bool:
    """Whether ``data``, which decoded to ``value``, is the canonical encoding of it.

    What ``pack(value) == data`` says, without building the sorted copy ``pack`` makes: the
    decoded maps keep the order their keys arrived in, so re-encoding them as they are gives
    ``data`` back exactly when every integer was in its shortest form and no key was repeated;
    what is left to check is that the keys came sorted and that no float came at all.
    """
    if type(value) is float:
        return False
    level: list[Any] = [value] if type(value) is list or type(value) is dict else []
    try:
        while level:
            deeper: list[Any] = []
            for item in level:
                if type(item) is dict:
                    keys = list(item)
                    if keys != sorted(keys):  # mixed key types raise TypeError: not canonical
                        return False
                    children = item.values()
                else:
                    children = item
                for child in children:
                    kind = type(child)
                    if kind is list or kind is dict:
                        deeper.append(child)
                    elif kind is float:
                        return False
            level = deeper
        return pack_ordered(value) == data
    except (TypeError, ValueError, OverflowError):
        return False
