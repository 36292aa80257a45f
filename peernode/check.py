"""``peernode check``: is the replica whole? SQLite's own check, then every entry re-verified."""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol import Head, LogKey, ProtocolError, place, short_id
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
    for author, log, seq, raw in store.iter_entries():
        key = LogKey(author, log)
        report.entries += 1
        where = f"{short_id(author)}/{log}#{seq}"
        try:
            entry = decode_entry(raw, now_ms=None)
            if (entry.author, entry.log, entry.seq) != (author, log, seq):
                raise ProtocolError("stored under the wrong author, log or seq")
            place(walked.get(key), entry)
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
