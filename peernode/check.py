"""``peernode check``: is the replica whole? SQLite's own check, then every entry re-verified."""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol import CHECKPOINT, Head, LogKey, Placement, ProtocolError, place, short_id
from protocol.entries import decode_entry

from .store import Store


@dataclass
class CheckReport:
    integrity: str = ""
    entries: int = 0
    logs: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.integrity == "ok" and not self.problems


def check_store(store: Store) -> CheckReport:
    """Run ``PRAGMA integrity_check``, re-verify every signature and hash chain, compare heads."""
    report = CheckReport()
    report.integrity = "; ".join(r[0] for r in store.conn.execute("PRAGMA integrity_check"))
    walked: dict[LogKey, Head] = {}
    bases = store.bases()  # logs started from a snapshot begin at their checkpoint
    for author, log, seq, raw in store.iter_entries():
        key = LogKey(author, log)
        report.entries += 1
        where = f"{short_id(author)}/{log}#{seq}"
        try:
            entry = decode_entry(raw, now_ms=None)
            if (entry.author, entry.log, entry.seq) != (author, log, seq):
                raise ProtocolError("stored under the wrong author, log or seq")
            if key in walked or seq != bases.get(key, 1):
                if place(walked.get(key), entry) is not Placement.NEXT:
                    raise ProtocolError("a gap in the log: earlier entries are missing")
            elif entry.kind != CHECKPOINT and seq > 1:
                raise ProtocolError("the log starts from a base that is not a checkpoint")
        except ProtocolError as exc:
            report.problems.append(f"{where}: {exc}")
            continue
        walked[key] = Head(entry.seq, entry.hash)
    heads = store.heads()
    report.logs = len(heads)
    for key, head in heads.items():
        if walked.get(key) != head:
            report.problems.append(
                f"{short_id(key.author)}/{key.log}: head #{head.seq} does not match the entries"
            )
    return report
