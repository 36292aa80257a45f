"""Offline bundles on disk: export the entries a far library lacks, import them there.

A bundle file is gzip around the byte stream of ``protocol.bundles``. Import verifies every entry
exactly as a sync session does (signature, canonical form, chain, trust) and applies it through
``Store.apply``; a running daemon then passes the new entries on to its peers by itself.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol import (
    Entry,
    LogKey,
    RemoteProtocolError,
    UntrustedAuthor,
    decode_entry,
    short_id,
)
from protocol.bundles import BundleHeader, BundleReader, encode_bundle
from protocol.encoding import pack, unpack

from .files import replacing
from .store import Store, now_ms

FRONTIER_MAGIC = "peernode-frontier"
READ_CHUNK = 1024 * 1024
APPLY_BATCH = 64  # entries per store transaction on import


class BundleError(Exception):
    """The file cannot be used at all; the message names it and says why."""


@dataclass
class ExportSummary:
    entries: int = 0
    logs: int = 0
    bytes: int = 0


@dataclass
class ImportSummary:
    entries: int = 0
    applied: int = 0
    duplicates: int = 0
    logs: int = 0
    rejected: list[str] = field(default_factory=list)
    complete: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "entries": self.entries,
            "applied": self.applied,
            "duplicates": self.duplicates,
            "logs": self.logs,
            "rejected": self.rejected,
            "complete": self.complete,
        }


def export_bundle(store: Store, path: Path, since: Mapping[LogKey, int]) -> ExportSummary:
    """Write every stored entry after ``since`` (per log; absent = from the start) to ``path``."""
    heads = store.heads()
    bases = store.bases()  # logs we hold only from a snapshot's checkpoint on
    ranges = [
        (key, max(since.get(key, 0) + 1, bases.get(key, 1)), head.seq)
        for key, head in sorted(heads.items())
        if head.seq > since.get(key, 0)
    ]
    summary = ExportSummary(entries=sum(last - first + 1 for _, first, last in ranges))
    summary.logs = len(ranges)

    def raws() -> Iterator[bytes]:
        for key, first, last in ranges:
            while first <= last:
                chunk = store.entry_raws(key, first, last, READ_CHUNK)
                if not chunk:
                    raise BundleError(f"entries {first}..{last} of a log are missing here")
                yield from chunk
                first += len(chunk)

    header = BundleHeader(store.own_key, now_ms(), summary.entries)
    try:  # whole or nothing: a USB stick may be pulled out right after we return
        with replacing(path) as tmp, gzip.open(tmp, "wb") as out:
            for chunk in encode_bundle(header, raws()):
                out.write(chunk)
    except OSError as exc:
        raise BundleError(f"cannot write {path}: {exc.strerror or exc}") from None
    summary.bytes = path.stat().st_size
    return summary


def import_bundle(
    store: Store, path: Path, trusts: Callable[[bytes], bool], now: int | None = None
) -> ImportSummary:
    """Verify and apply every entry in the bundle at ``path``; bad entries are listed, not fatal."""
    summary = ImportSummary()
    reader = BundleReader()
    pending: list[Entry] = []
    refused: set[LogKey] = set()
    seen: set[LogKey] = set()

    def pending_key() -> LogKey:
        return LogKey(pending[0].author, pending[0].log)

    def flush() -> None:
        if not pending:
            return
        key = pending_key()
        result = store.apply(key, pending)
        summary.applied += result.applied
        summary.duplicates += result.duplicates
        if result.error is not None:
            refuse(key, result.error)
        pending.clear()

    def note(where: str, error: RemoteProtocolError) -> None:
        summary.rejected.append(f"{where}: {error.reason}: {error}")
        store.record_rejection(None, error.reason, f"bundle {path.name}: {error}")

    def refuse(key: LogKey, error: RemoteProtocolError) -> None:
        refused.add(key)
        note(f"{short_id(key.author)}/{key.log}", error)

    def take(raw: bytes) -> None:
        summary.entries += 1
        try:
            entry = decode_entry(raw, now_ms=now if now is not None else now_ms())
        except RemoteProtocolError as exc:
            flush()
            note(f"entry {summary.entries}", exc)
            return
        key = LogKey(entry.author, entry.log)
        seen.add(key)
        if key in refused:
            return
        if not trusts(entry.author):
            flush()
            refuse(key, _untrusted(entry))
            return
        if pending and (pending_key() != key or len(pending) >= APPLY_BATCH):
            flush()
        pending.append(entry)

    try:
        with gzip.open(path, "rb") as handle:
            while block := handle.read(READ_CHUNK):
                for raw in reader.feed(block):
                    take(raw)
        flush()
        reader.finish()
    except FileNotFoundError:
        raise BundleError(f"{path}: no such file") from None
    except (OSError, EOFError) as exc:
        flush()
        if reader.header is None:
            raise BundleError(f"{path} is not a peernode bundle ({exc})") from None
        summary.complete = False
        summary.rejected.append(f"{path.name} is damaged after entry {summary.entries}: {exc}")
    except RemoteProtocolError as exc:
        flush()
        if reader.header is None:
            raise BundleError(f"{path}: {exc}") from None
        summary.complete = False
        summary.rejected.append(f"{path.name}: {exc}")
    summary.logs = len(seen)
    return summary


def _untrusted(entry: Entry) -> RemoteProtocolError:
    return UntrustedAuthor(
        f"{entry.where}: its library is not a peer here (add it with `peernode peer add`)"
    )


# --- frontier files: what a far node holds, carried to the node that exports for it ------------


def write_frontier(store: Store, path: Path) -> int:
    heads = store.heads()
    rows = [[k.author, k.log, h.seq] for k, h in sorted(heads.items())]
    data = pack({"magic": FRONTIER_MAGIC, "node": store.own_key, "heads": rows})
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise BundleError(f"cannot write {path}: {exc.strerror or exc}") from None
    return len(rows)


def read_frontier(path: Path) -> dict[LogKey, int]:
    try:
        data = path.read_bytes()
        value = unpack(data, what="frontier file", max_bytes=64 * 1024 * 1024)
    except OSError as exc:
        raise BundleError(f"cannot read {path}: {exc.strerror or exc}") from None
    except RemoteProtocolError as exc:
        raise BundleError(f"{path} is not a frontier file: {exc}") from None
    if not isinstance(value, dict) or value.get("magic") != FRONTIER_MAGIC:
        raise BundleError(f"{path} is not a frontier file from `peernode bundle frontier`")
    heads: dict[LogKey, int] = {}
    for row in value.get("heads", []):
        if not (
            isinstance(row, list)
            and len(row) == 3
            and isinstance(row[0], bytes)
            and isinstance(row[1], str)
            and isinstance(row[2], int)
        ):
            raise BundleError(f"{path}: a head has the wrong shape")
        heads[LogKey(row[0], row[1])] = row[2]
    return heads


def peer_frontier(store: Store, peer: bytes) -> dict[LogKey, int]:
    """What ``peer`` last said it holds (from sync sessions), for ``export --for``."""
    rows = store.conn.execute("SELECT author, log, seq FROM peer_heads WHERE peer = ?", (peer,))
    return {LogKey(a, log): seq for a, log, seq in rows}
