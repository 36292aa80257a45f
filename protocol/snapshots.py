"""Snapshots: start a new node from a catalogue's state instead of replaying its whole history.

A catalogue log grows with every edit: a library that re-imports its catalogue each month has
signed each record many times. A new node needs the *state*, not the history. The author makes
the state checkable by signing, now and then, a ``checkpoint`` entry in its own log:

    {"records": n, "state": sha256(STATE_CONTEXT + d(r1) + d(r2) + ... + d(rn))}

where ``d(r) = sha256(canonical msgpack [rid, record])`` and the records are sorted by the UTF-8
bytes of their ids. It states what the log holds after the entries before it.

A snapshot is a stream of msgpack values: a header map, then per log a section
``["log", author, log, checkpoint | nil, records, entries]`` followed by ``records`` record
values (bin, canonical ``[rid, record]``, ids strictly ascending) and ``entries`` signed entries
(bin, in sequence order: those after the checkpoint, or the whole log when there is none).

Trust: the receiver checks the checkpoint's signature like any entry and recomputes the state
digest from the records it was given, so whoever carries the snapshot can withhold it but cannot
alter it. What it must trust is the author's own statement — the same author whose entries it
would otherwise replay. Nothing in the header or the section line is trusted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .chains import LogKey
from .encoding import pack, unpack
from .errors import DecodeError, InvalidBody
from .identity import KEY_BYTES
from .kinds import validate_record
from .limits import DEFAULT_LIMITS, Limits
from .streams import ValueStream

SNAPSHOT_MAGIC = "peernode-snapshot"
SNAPSHOT_VERSION = 1
STATE_CONTEXT = b"peernode/state/v1\x00"


class StateHasher:
    """The state digest of a catalogue, fed one record digest at a time in id order."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256(STATE_CONTEXT)
        self._last: bytes | None = None
        self.count = 0

    def add(self, rid: str, digest: bytes) -> None:
        key = rid.encode()
        if self._last is not None and key <= self._last:
            raise DecodeError(f"record {rid!r} is out of order (ids must strictly ascend)")
        self._last = key
        self._hash.update(digest)
        self.count += 1

    def digest(self) -> bytes:
        return self._hash.digest()


def state_digest(records: Iterable[tuple[str, bytes]]) -> tuple[int, bytes]:
    """(count, state) of ``(rid, record digest)`` pairs given in id order."""
    hasher = StateHasher()
    for rid, digest in records:
        hasher.add(rid, digest)
    return hasher.count, hasher.digest()


def check_record(blob: bytes, limits: Limits = DEFAULT_LIMITS) -> tuple[str, dict[str, Any]]:
    """A record value from a snapshot: canonical ``[rid, record]`` with a valid record map."""
    value = unpack(blob, what="snapshot record", limits=limits, max_bytes=limits.max_entry_bytes)
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)):
        raise DecodeError("a snapshot record must be [id, record]")
    if pack(value) != blob:  # its digest feeds the state: one value, one byte string
        raise DecodeError(f"record {value[0][:80]!r} is not in canonical encoding")
    rid, record = value
    if not rid or len(rid.encode()) > limits.max_record_id_bytes:
        raise InvalidBody(f"record id {rid[:80]!r} is empty or too long")
    validate_record(record, limits, f"record {rid!r}")
    return rid, record


@dataclass(frozen=True)
class SnapshotHeader:
    creator: bytes  # informative only: trust comes from the authors' checkpoints
    created: int
    logs: int

    def encode(self) -> bytes:
        return pack(
            {
                "magic": SNAPSHOT_MAGIC,
                "version": SNAPSHOT_VERSION,
                "creator": self.creator,
                "created": self.created,
                "logs": self.logs,
            }
        )


@dataclass(frozen=True)
class LogSection:
    """One log: its checkpoint entry (if the state is included), then records, then entries."""

    key: LogKey
    checkpoint: bytes | None
    records: int
    entries: int

    def encode(self) -> bytes:
        return pack(
            ["log", self.key.author, self.key.log, self.checkpoint, self.records, self.entries]
        )


@dataclass(frozen=True)
class RecordValue:
    blob: bytes


@dataclass(frozen=True)
class EntryValue:
    raw: bytes


SnapshotEvent = SnapshotHeader | LogSection | RecordValue | EntryValue


def encode_snapshot(
    header: SnapshotHeader,
    sections: Iterable[tuple[LogSection, Iterable[bytes], Iterable[bytes]]],
) -> Iterator[bytes]:
    """The snapshot as byte chunks; each section comes with its record blobs and entry raws."""
    yield header.encode()
    for section, records, entries in sections:
        yield section.encode()
        for blob in records:
            yield pack(blob)
        for raw in entries:
            yield pack(raw)


class SnapshotReader:
    """Feed bytes in any pieces; get events in order. Counts are checked as values arrive."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.header: SnapshotHeader | None = None
        self._stream = ValueStream("snapshot", limits)
        self._sections = 0
        self._records_left = 0
        self._entries_left = 0

    @property
    def position(self) -> int:
        return self._stream.position

    def feed(self, data: bytes) -> list[SnapshotEvent]:
        return [self._event(value) for value in self._stream.feed(data)]

    def _event(self, value: Any) -> SnapshotEvent:
        if self.header is None:
            self.header = _header(value)
            return self.header
        if self._records_left:
            self._records_left -= 1
            if not isinstance(value, bytes):
                raise DecodeError(f"snapshot value {self.position} should be a record")
            return RecordValue(value)
        if self._entries_left:
            self._entries_left -= 1
            if not isinstance(value, bytes):
                raise DecodeError(f"snapshot value {self.position} should be a signed entry")
            return EntryValue(value)
        section = _section(value, self.limits, self.position)
        self._sections += 1
        if self._sections > self.header.logs:
            raise DecodeError("the snapshot holds more logs than its header says")
        self._records_left, self._entries_left = section.records, section.entries
        return section

    def finish(self) -> None:
        """Call at the end of the file: a snapshot cut short is an error, never a smaller one."""
        if self.header is None:
            raise DecodeError("this is not a peernode snapshot (no header)")
        if (
            not self._stream.ends_cleanly
            or self._records_left
            or self._entries_left
            or self._sections != self.header.logs
        ):
            raise DecodeError("the snapshot ends early: the file was cut short")


def _header(value: Any) -> SnapshotHeader:
    if not isinstance(value, dict) or value.get("magic") != SNAPSHOT_MAGIC:
        raise DecodeError("this is not a peernode snapshot (no snapshot header)")
    if value.get("version") != SNAPSHOT_VERSION:
        raise DecodeError(
            f"snapshot version {value.get('version')!r} is not supported (this node reads "
            f"{SNAPSHOT_VERSION}): upgrade peernode"
        )
    creator, created, logs = value.get("creator"), value.get("created"), value.get("logs")
    if not (
        isinstance(creator, bytes)
        and len(creator) == KEY_BYTES
        and isinstance(created, int)
        and isinstance(logs, int)
        and logs >= 0
    ):
        raise DecodeError("snapshot header has a field of the wrong type")
    return SnapshotHeader(creator, created, logs)


def _section(value: Any, limits: Limits, position: int) -> LogSection:
    if not (isinstance(value, list) and len(value) == 6 and value[0] == "log"):
        raise DecodeError(f"snapshot value {position} should start a log section")
    _, author, log, checkpoint, records, entries = value
    if not (
        isinstance(author, bytes)
        and len(author) == KEY_BYTES
        and isinstance(log, str)
        and 0 < len(log.encode()) <= limits.max_log_id_bytes
        and (checkpoint is None or isinstance(checkpoint, bytes))
        and isinstance(records, int)
        and isinstance(entries, int)
        and 0 <= records < 2**40
        and 0 <= entries < 2**40
    ):
        raise DecodeError(f"snapshot value {position}: a log section has a wrong field")
    if checkpoint is None and records:
        raise DecodeError(f"snapshot value {position}: records without a checkpoint")
    return LogSection(LogKey(author, log), checkpoint, records, entries)
