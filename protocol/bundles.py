"""Offline bundles: signed entries on a USB stick, for a library with no link.

A bundle is a stream of msgpack values: first a header map, then one value per entry, each the
signed entry exactly as it travels in an Entries message (``raw``), grouped by log in sequence
order. Entries carry their own signatures, so the bundle itself is not signed: a receiver verifies
each entry as the wire does, and nothing in the header is trusted. The file layer (gzip) is the
node's business; this module only turns entries into bytes and bytes back into raw entries.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .encoding import pack
from .errors import DecodeError
from .identity import KEY_BYTES
from .limits import DEFAULT_LIMITS, Limits
from .streams import ValueStream

BUNDLE_MAGIC = "peernode-bundle"
BUNDLE_VERSION = 1


@dataclass(frozen=True)
class BundleHeader:
    creator: bytes  # the node that wrote the bundle: informative only
    created: int  # ms since 1970, the creator's clock: informative only
    entries: int  # how many entries follow

    def encode(self) -> bytes:
        return pack(
            {
                "magic": BUNDLE_MAGIC,
                "version": BUNDLE_VERSION,
                "creator": self.creator,
                "created": self.created,
                "entries": self.entries,
            }
        )


def encode_bundle(header: BundleHeader, raws: Iterable[bytes]) -> Iterator[bytes]:
    """The bundle as a sequence of byte chunks: the header, then each entry as msgpack bin."""
    yield header.encode()
    for raw in raws:
        yield pack(raw)


class BundleReader:
    """Feed bytes in any pieces; get the header once, then raw entries. Bounded by ``limits``."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.header: BundleHeader | None = None
        self._stream = ValueStream("bundle", limits)

    @property
    def position(self) -> int:
        return self._stream.position

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        for value in self._stream.feed(data):
            if self.header is None:
                self.header = _header(value)
            elif isinstance(value, bytes):
                out.append(value)
            else:
                raise DecodeError(f"bundle value {self.position} is not a signed entry")
        return out

    def finish(self) -> None:
        """Call at the end of the file: a bundle cut short is an error, not a smaller bundle."""
        if self.header is None:
            raise DecodeError("this is not a peernode bundle (no header)")
        if not self._stream.ends_cleanly:
            raise DecodeError("the bundle ends in the middle of an entry: the file was cut short")
        if self.position - 1 != self.header.entries:
            raise DecodeError(
                f"the bundle holds {self.position - 1} entries but its header says "
                f"{self.header.entries}: the file was cut short"
            )


def _header(value: Any) -> BundleHeader:
    if not isinstance(value, dict) or value.get("magic") != BUNDLE_MAGIC:
        raise DecodeError("this is not a peernode bundle (no bundle header)")
    if value.get("version") != BUNDLE_VERSION:
        raise DecodeError(
            f"bundle version {value.get('version')!r} is not supported (this node reads "
            f"{BUNDLE_VERSION}): upgrade peernode"
        )
    creator, created, entries = value.get("creator"), value.get("created"), value.get("entries")
    if not (
        isinstance(creator, bytes)
        and len(creator) == KEY_BYTES
        and isinstance(created, int)
        and isinstance(entries, int)
        and entries >= 0
    ):
        raise DecodeError("bundle header has a field of the wrong type")
    return BundleHeader(creator, created, entries)
