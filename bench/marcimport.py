"""Importing a MARC 21 file vs pymarc's bare parse of the same file.

The file is written from bench/generate.py's records with pymarc (245 title, 100 author, 650
subjects, 260 publisher and date, 020 ISBN, 008 language), so it is as large as asked and the
same every run. The baseline reads every record with ``pymarc.MARCReader`` and does nothing
else: the floor under any importer that uses pymarc. peernode's figure is ``import_catalog``:
parse, normalise, sign, store and index.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from pymarc import Field, Indicators, MARCReader, Record, Subfield

from peernode.catalog import import_catalog
from peernode.home import init_home

from .generate import generate


@dataclass
class MarcImport:
    records: int
    file_bytes: int
    pymarc_seconds: float
    import_seconds: float
    imported: int


def write_marc(path: Path, count: int, seed: int = 1) -> Path:
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    with partial.open("wb") as out:
        for rec in generate(count, seed):
            marc = Record(force_utf8=True)
            language = str(rec.get("language", "eng"))
            marc.fields.append(Field(tag="001", data=str(rec["id"])))
            marc.fields.append(Field(tag="008", data=f"{'':<35}{language:<3}{'':<2}"))
            for isbn in rec.get("isbn", []):
                marc.fields.append(Field("020", Indicators(" ", " "), [Subfield("a", isbn)]))
            for author in rec.get("authors", [])[:1]:
                marc.fields.append(Field("100", Indicators("1", " "), [Subfield("a", author)]))
            marc.fields.append(
                Field("245", Indicators("1", "0"), [Subfield("a", str(rec["title"]))])
            )
            marc.fields.append(
                Field(
                    "260",
                    Indicators(" ", " "),
                    [Subfield("b", str(rec.get("publisher", ""))), Subfield("c", str(rec["year"]))],
                )
            )
            for subject in rec.get("subjects", []):
                marc.fields.append(Field("650", Indicators(" ", "0"), [Subfield("a", subject)]))
            out.write(marc.as_marc())
    partial.rename(path)
    return path


def pymarc_parse(path: Path) -> tuple[int, float]:
    """(records, seconds) for pymarc alone to read every record of ``path``."""
    started = time.perf_counter()
    count = 0
    with path.open("rb") as stream:
        for record in MARCReader(stream, to_unicode=True, force_utf8=True):
            if record is not None:
                count += 1
    return count, time.perf_counter() - started


def measure(records: int, work: Path) -> MarcImport:
    path = write_marc(work / f"records-{records}.mrc", records)
    parsed, parse_seconds = pymarc_parse(path)
    home = work / "marc-import"
    shutil.rmtree(home, ignore_errors=True)
    node = init_home(home, name="MARC import", isil="", contact="", listen="127.0.0.1:1")
    store = node.open_store()
    started = time.perf_counter()
    summary = import_catalog(store, node.key, path, "marc")
    seconds = time.perf_counter() - started
    store.conn.close()
    shutil.rmtree(home, ignore_errors=True)
    return MarcImport(parsed, path.stat().st_size, parse_seconds, seconds, summary.added)


def report(result: MarcImport) -> list[str]:
    parse_rate = result.records / result.pymarc_seconds
    import_rate = result.imported / result.import_seconds
    return [
        "## 5. Import: a MARC 21 file vs pymarc's bare parse",
        "",
        f"A {result.file_bytes / 2**20:.1f} MiB MARC 21 file of {result.records:,} records "
        "written with pymarc from the generated records (bench/marcimport.py).",
        "",
        "| what | records/s | seconds | vs pymarc parse |",
        "| --- | ---: | ---: | ---: |",
        f"| pymarc MARCReader, parse only (baseline) | {parse_rate:,.0f} | "
        f"{result.pymarc_seconds:.2f} | 100% |",
        f"| peernode `catalog import` (parse, normalise, sign, store, index) | "
        f"{import_rate:,.0f} | {result.import_seconds:.2f} | {import_rate / parse_rate:.0%} |",
        "",
    ]
