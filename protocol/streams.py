"""A bounded stream of msgpack values from a file, fed in pieces: the layer under offline
bundles and snapshots. Every value is bounded by the entry size limit, whatever the file says."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgpack

from .errors import DecodeError, LimitExceeded
from .limits import DEFAULT_LIMITS, Limits


class ValueStream:
    """Feed bytes in any pieces; get whole values, counted from 1 for error messages."""

    def __init__(self, what: str, limits: Limits = DEFAULT_LIMITS) -> None:
        self.what = what  # "bundle", "snapshot": names the file kind in errors
        self.position = 0  # values read so far
        self._fed = 0
        self._unpacker = msgpack.Unpacker(
            raw=False,
            strict_map_key=True,
            max_buffer_size=limits.max_entry_bytes + 1024,
            max_bin_len=limits.max_entry_bytes + 128,
            max_str_len=1024,
            max_array_len=16,
            max_map_len=16,
            max_ext_len=0,
        )

    def feed(self, data: bytes) -> Iterator[Any]:
        """The whole values that ``data`` completes, each counted as it is taken (so an error
        the caller raises names the right one). Take them all before feeding more."""
        self._fed += len(data)
        try:
            self._unpacker.feed(data)
        except msgpack.BufferFull:
            raise LimitExceeded(
                f"{self.what} value {self.position + 1} is larger than an entry may be"
            ) from None
        try:
            for value in self._unpacker:
                self.position += 1
                yield value
        except (ValueError, msgpack.UnpackException) as exc:
            raise DecodeError(
                f"{self.what} value {self.position + 1} is not valid msgpack: {exc}"
            ) from None

    @property
    def ends_cleanly(self) -> bool:
        """Every byte fed belongs to a whole value (a cut file ends inside one)."""
        return bool(self._unpacker.tell() == self._fed)
