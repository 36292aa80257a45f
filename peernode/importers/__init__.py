"""Catalogue importers: a library's export file in, :class:`BibRecord` values out.

``read_catalog(path, fmt)`` yields, for each record of the file, :class:`Imported` or
:class:`Rejected` (with the position and the reason in plain words), streaming where the format
allows it. It raises :class:`ImportFileError` only when the file cannot be read at all: missing,
unreadable, empty, of no format we know, or not of the format named. Those checks run when
``read_catalog`` is called, except the few that need the whole file (a SQL dump without biblio
rows, XML without MARC records) and read errors mid-file; those raise during the iteration, and
never after a record has been imported.

Formats: ``marc`` (MARC 21, ISO 2709), ``marcxml``, ``marcjson`` (MARC-in-JSON), ``csv``,
``json`` (records as objects: an array or JSON Lines) and ``slims`` (a SLiMS MySQL dump).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from .base import Imported, ImportFileError, Outcome, Rejected
from .marc import read_marc, read_marcjson, read_marcxml
from .slims import read_slims
from .tabular import field_name, read_csv, read_csv_header, read_json

FORMATS: tuple[str, ...] = ("auto", "marc", "marcxml", "marcjson", "csv", "json", "slims")

_SNIFF_BYTES = 1 << 16
_EXTENSIONS = {
    ".mrc": "marc",
    ".marc": "marc",
    ".iso": "marc",
    ".dat": "marc",
    ".xml": "marcxml",
    ".marcxml": "marcxml",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
    ".csv": "csv",
    ".tsv": "csv",
    ".sql": "slims",
}
_SQL_START = re.compile(
    rb"(--|/\*|#|(INSERT|REPLACE|CREATE|SET|DROP|LOCK|USE|START|BEGIN)\b)", re.IGNORECASE
)
_MARCJSON_KEYS = (re.compile(rb'"leader"\s*:\s*"'), re.compile(rb'"fields"\s*:\s*\['))
_MARCXML_HINTS = (b"<record", b":record", b"<collection", b":collection", b"MARC21/slim")
_NAMES = {
    "marc": "MARC 21 (ISO 2709)",
    "marcxml": "MARCXML",
    "marcjson": "MARC-in-JSON",
    "csv": "CSV",
    "json": "JSON records",
    "slims": "a SLiMS SQL dump",
}


def detect_format(path: Path) -> str:
    """The format of ``path``, from its first bytes and, failing that, its extension."""
    path = Path(path)
    head = _head(path)
    sniffed = _sniff(head)
    if sniffed:
        return sniffed
    if _text_start(head).startswith(b"<"):
        raise ImportFileError(
            f"{path}: this is XML but not MARCXML (no <record> or <collection> element near "
            "the start)"
        )
    by_extension = _EXTENSIONS.get(path.suffix.lower())
    # Content that proves nothing either way: a CSV whose header we do not know, or MARC whose
    # first record is damaged but still opens with a length.
    if by_extension == "csv" or (by_extension == "marc" and _text_start(head)[:5].isdigit()):
        return by_extension
    raise ImportFileError(
        f"{path}: cannot tell the format (not MARC, MARCXML, JSON, a SQL dump, or CSV with a "
        f"title column); name one of {', '.join(FORMATS[1:])}"
    )


def read_catalog(path: Path, fmt: str = "auto") -> Iterator[Imported | Rejected]:
    """Each record of ``path`` as Imported or Rejected, in file order.

    Raises ImportFileError at once when the file cannot be read or is not the format named.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise ImportFileError(f"{path}: unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "auto":
        fmt = detect_format(path)
    else:
        _check_named(path, fmt, _head(path))
    return _read(path, fmt)


def _check_named(path: Path, fmt: str, head: bytes) -> None:
    """Refuse a file that is plainly not the format the caller named."""
    sniffed = _sniff(head)
    start = _text_start(head)
    # MARC-in-JSON whose first record is too large to show its keys sniffs as plain JSON.
    compatible = sniffed in ("", fmt) or (fmt == "marcjson" and sniffed == "json")
    opening = {
        "marc": start[:5].isdigit(),
        "marcxml": start.startswith(b"<"),
        "marcjson": start.startswith((b"[", b"{")),
        "json": start.startswith((b"[", b"{")),
        "slims": bool(_SQL_START.match(start)),
        "csv": True,
    }[fmt]
    if compatible and opening:
        return
    looks = f"it looks like {_NAMES[sniffed]}" if sniffed else f"it starts with {start[:16]!r}"
    raise ImportFileError(f"{path}: this is not {_NAMES[fmt]}: {looks}")


def _read(path: Path, fmt: str) -> Iterator[Outcome]:
    if fmt == "csv":
        header = read_csv_header(path)  # a CSV without a title column is refused before reading
        return _io_errors(path, read_csv(path, header))
    readers = {
        "marc": read_marc,
        "marcxml": read_marcxml,
        "marcjson": read_marcjson,
        "json": read_json,
        "slims": read_slims,
    }
    return _io_errors(path, readers[fmt](path))


def _io_errors(path: Path, outcomes: Iterator[Outcome]) -> Iterator[Outcome]:
    """The file vanishing or a disk failing mid-read is a file problem, not a record problem."""
    try:
        yield from outcomes
    except OSError as exc:
        raise ImportFileError(f"{path}: reading failed ({exc.strerror or exc})") from exc


def _head(path: Path) -> bytes:
    try:
        with path.open("rb") as stream:
            head = stream.read(_SNIFF_BYTES)
    except FileNotFoundError:
        raise ImportFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImportFileError(f"{path}: is a directory, not a file") from None
    except PermissionError:
        raise ImportFileError(f"{path}: permission denied") from None
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not head.strip():
        raise ImportFileError(f"{path}: the file is empty")
    return head


def _text_start(head: bytes) -> bytes:
    for bom in (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"):
        if head.startswith(bom):
            if bom != b"\xef\xbb\xbf":
                head = (
                    head[len(bom) :]
                    .decode("utf-16-le" if bom == b"\xff\xfe" else "utf-16-be", "replace")
                    .encode()
                )
            else:
                head = head[len(bom) :]
            break
    return head.lstrip()


def _sniff(head: bytes) -> str:
    """The format the first bytes show beyond doubt, or "" when they do not."""
    start = _text_start(head)
    # A MARC record opens with its five-digit length; its field and record separators never
    # occur in text formats.
    if start[:5].isdigit() and (b"\x1e" in start or b"\x1d" in start):
        return "marc"
    if start.startswith(b"<"):
        return "marcxml" if any(hint in start for hint in _MARCXML_HINTS) else ""
    if start.startswith((b"[", b"{")):
        return "marcjson" if all(key.search(start) for key in _MARCJSON_KEYS) else "json"
    if _SQL_START.match(start) and re.search(rb"\bINSERT\b|\bCREATE\s+TABLE\b", start, re.I):
        return "slims"
    first = start.split(b"\n", 1)[0].decode("utf-8", "replace")
    cells = re.split(r"[,;\t|]", first)
    if len(cells) > 1 and any(field_name(cell) == "title" for cell in cells):
        return "csv"
    return ""


__all__ = [
    "FORMATS",
    "ImportFileError",
    "Imported",
    "Rejected",
    "detect_format",
    "read_catalog",
]
