"""Copy cataloguing: a partner's record taken into our own catalogue in one step.

The copy is signed into our catalogue log like an imported record, so every member receives it
as ours. It keeps where it came from in ``copied_from``: the source library (node id), its
record id, the sequence number and hash of the signed entry that carried the version we copied,
and the date. The source's holdings are not copied: they are the partner's items, not ours.
Export writes the provenance as MARC 035 and 884 (peernode/exporters.py).

A record is named by a *record reference*: ``NODE_ID/RECORD_ID`` (as ``search --json`` shows
``node_id`` and ``record_id``), or the number of a union entry (``cluster show`` and the API give
it), which means the first record of that entry held by another library.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import CATALOG, node_id, parse_node_id
from protocol.limits import DEFAULT_LIMITS

from .catalog import CATALOG_LOG
from .clusters import cluster_of
from .records import BibRecord, decode_record
from .store import Store

COPY_SOURCE = "copy cataloguing"  # the ``source`` of copied records: no file re-import deletes them


class CopyError(Exception):
    """The reference names no record, or the copy would overwrite one of ours."""


@dataclass(frozen=True)
class Located:
    """A record of the replica, found by reference."""

    id: int  # records.id on this node
    author: bytes
    rid: str
    seq: int  # the catalogue entry that carried this version
    record: BibRecord

    @property
    def ref(self) -> str:
        return f"{node_id(self.author)}/{self.rid}"


def locate(conn: sqlite3.Connection, ref: str, *, not_author: bytes | None = None) -> Located:
    """The record named by ``ref``; for a union entry number, its first member whose library
    is not ``not_author`` (so "copy entry 12" takes a partner's record, never our own)."""
    ref = ref.strip()
    if ref.isdigit():
        cluster = cluster_of(conn, int(ref))
        rows = conn.execute(
            "SELECT r.id, r.author, r.rid, r.seq, r.data FROM record_clusters c "
            "JOIN records r ON r.id = c.id WHERE c.cluster = ? ORDER BY r.id",
            (cluster,),
        ).fetchall()
        if not rows:
            rows = conn.execute(
                "SELECT id, author, rid, seq, data FROM records WHERE id = ?", (int(ref),)
            ).fetchall()
        for row in rows:
            if row[1] != not_author:
                return Located(row[0], row[1], row[2], row[3], decode_record(row[4]))
        if rows:
            raise CopyError(f"union entry {ref} holds only this library's own records")
        raise CopyError(f"no union entry or record number {ref} on this node")
    library, slash, rid = ref.partition("/")
    if not slash or not rid:
        raise CopyError(
            f"{ref!r} is not a record reference: write NODE_ID/RECORD_ID (as `search --json` "
            "shows node_id and record_id) or a union entry number"
        )
    try:
        author = parse_node_id(library)
    except ValueError as exc:
        raise CopyError(f"{ref!r}: {exc}") from None
    row = conn.execute(
        "SELECT id, author, rid, seq, data FROM records WHERE author = ? AND rid = ?",
        (author, rid),
    ).fetchone()
    if row is None:
        raise CopyError(f"this node holds no record {rid!r} of library {library}")
    return Located(row[0], row[1], row[2], row[3], decode_record(row[4]))


def copy_record(
    store: Store, key: Ed25519PrivateKey, ref: str, new_id: str | None = None
) -> BibRecord:
    """Sign a copy of the record ``ref`` names into our catalogue; returns the copy."""
    source = locate(store.conn, ref, not_author=store.own_key)
    if source.author == store.own_key:
        raise CopyError(f"{ref} is already this library's own record")
    rid = new_id if new_id is not None else source.rid
    if not rid.strip() or len(rid.encode()) > DEFAULT_LIMITS.max_record_id_bytes:
        raise CopyError(
            f"the new record id must be 1..{DEFAULT_LIMITS.max_record_id_bytes} bytes of text"
        )
    taken = store.conn.execute(
        "SELECT 1 FROM records WHERE author = ? AND rid = ?", (store.own_key, rid)
    ).fetchone()
    if taken:
        raise CopyError(
            f"our catalogue already has a record {rid!r}: choose another id with --as NEW_ID"
        )
    entry = store.conn.execute(
        "SELECT hash FROM entries WHERE author = ? AND log = ? AND seq = ?",
        (source.author, CATALOG_LOG, source.seq),
    ).fetchone()
    provenance = {
        "library": node_id(source.author),
        "record": source.rid,
        "seq": str(source.seq),
        "hash": entry[0].hex() if entry else "",
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    copy = dataclasses.replace(
        source.record,
        rid=rid,
        holdings=(),
        copied_from=tuple(provenance.items()),
        original=None,
    )
    store.append(
        key, CATALOG_LOG, CATALOG, {"ops": [["put", rid, copy.to_wire()]]}, source=COPY_SOURCE
    )
    store.checkpoint(key, CATALOG_LOG)  # as after an import: snapshots start from here
    return copy
