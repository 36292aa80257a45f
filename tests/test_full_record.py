"""The full record: subtitle, roles, DDC, notes; the original MARC kept and exported whole; and
MARC-8 / UTF-8 detection whichever way leader/09 is wrong."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from peernode.catalog import import_catalog
from peernode.exporters import export_catalog
from peernode.importers import Imported, read_catalog
from peernode.importers.marc import decode_binary, original_json
from peernode.records import BibRecord
from protocol import InvalidBody
from protocol.kinds import validate_record
from protocol.limits import DEFAULT_LIMITS

from .nodes import SHARED_DATA
from .test_exporters import make_store

MARC = SHARED_DATA / "marc-pymarc"
needs_data = pytest.mark.skipif(not MARC.is_dir(), reason="../shared/data is not present")
pytestmark = pytest.mark.filterwarnings("ignore::pymarc.exceptions.BadSubfieldCodeWarning")

# Every MARC file of ../shared/data with at least one readable record (1251.dat and
# testunimarc.dat are refused whole: a code page and UNIMARC, each with a reason).
MARC_FILES = (
    sorted(
        p.name
        for p in MARC.glob("*")
        if p.suffix in (".dat", ".mrc", ".xml", ".json")
        and p.name not in ("1251.dat", "testunimarc.dat")
    )
    if MARC.is_dir()
    else []
)


def fields_of(records: list[BibRecord]) -> dict[str, list[Any]]:
    """rid -> every field of the kept source record (tags, indicators, subfields, data)."""
    out = {}
    for record in records:
        assert record.original is not None, record.rid
        # A record that came without an 001 goes out with its made-up id in one.
        fields = json.loads(record.original)["fields"]
        out[record.rid] = [f for f in fields if "001" not in f]
    return out


def imported(path: Path, fmt: str = "auto") -> list[BibRecord]:
    return [o.record for o in read_catalog(path, fmt) if isinstance(o, Imported)]


@needs_data
@pytest.mark.parametrize("name", MARC_FILES)
@pytest.mark.parametrize("fmt", ["marc", "marcxml"])
def test_every_marc_field_survives_import_export_import(
    tmp_path: Path, name: str, fmt: str
) -> None:
    store, key = make_store(tmp_path)
    first = imported(MARC / name)
    if not first:
        pytest.skip(f"{name}: no readable record")
    summary = import_catalog(store, key, MARC / name)
    assert summary.added == len(first)
    out = tmp_path / ("out.xml" if fmt == "marcxml" else "out.mrc")
    export_catalog(store.conn, out, fmt, author=store.own_key)
    again = imported(out, fmt)
    # Fields peernode does not model (029, 9XX, 856, 880 ...) come back too, byte for byte.
    assert fields_of(again) == fields_of(first)
    assert {r.rid: r.to_wire() for r in again} == {r.rid: r.to_wire() for r in first}


@needs_data
def test_unmodelled_fields_are_in_the_export(tmp_path: Path) -> None:
    store, key = make_store(tmp_path)
    import_catalog(store, key, MARC / "marc.dat")
    out = tmp_path / "out.mrc"
    export_catalog(store.conn, out, "marc", author=store.own_key)
    tags = {
        field["tag"] if "tag" in field else next(iter(field))
        for r in imported(out)
        for field in json.loads(r.original or "{}")["fields"]
    }
    assert {"010", "040", "042", "050", "082", "504", "650"} <= tags


@needs_data
def test_new_fields_from_marc() -> None:
    records = {r.rid: r for r in imported(MARC / "marc.dat")}
    pragmatic = records["11778504"]
    assert pragmatic.subtitle == "from journeyman to master"
    assert pragmatic.title == "The pragmatic programmer : from journeyman to master"
    assert pragmatic.ddc == "005.1"
    assert pragmatic.notes == ("Includes bibliographical references",)
    alpha = {r.rid: r for r in imported(MARC / "alphatag.dat")}["000000001"]
    assert alpha.authors == ("Mullin, Virginia L.", "Case, Bernard")
    assert alpha.roles == ("", "ill")  # 700 $e ill. (relator term as catalogued)
    ray = {r.rid: r for r in imported(MARC / "batch.xml")}["5637241"]
    assert ray.roles == ("performer",)  # 100 $4 prf, as its term


def test_new_fields_are_optional_wire_fields() -> None:
    record = BibRecord(
        rid="r1",
        title="Laskar pelangi : sebuah novel",
        subtitle="sebuah novel",
        authors=("Hirata, Andrea", "Editor, Sang"),
        roles=("", "editor"),
        ddc="899.2213",
        notes=("Cetakan pertama",),
        copied_from=(("library", "pn1abc"), ("record", "b-42"), ("seq", "7")),
    )
    wire = record.to_wire()
    validate_record(wire, DEFAULT_LIMITS, "test")
    assert BibRecord.from_wire("r1", wire) == record
    validate_record({"title": "old record, no new field"}, DEFAULT_LIMITS, "test")
    with pytest.raises(InvalidBody, match="copied_from"):
        validate_record({"title": "x", "copied_from": {"seq": 7}}, DEFAULT_LIMITS, "test")
    with pytest.raises(InvalidBody, match="copied_from"):
        validate_record({"title": "x", "copied_from": {"evil": "x"}}, DEFAULT_LIMITS, "test")
    with pytest.raises(InvalidBody, match="roles"):
        validate_record({"title": "x", "roles": [1]}, DEFAULT_LIMITS, "test")


@needs_data
def test_leader_says_marc8_but_bytes_are_utf8() -> None:
    # A real file: leader/09 blank (MARC-8) over UTF-8 text.
    chunk = (MARC / "utf8_without_leader_flag.dat").read_bytes()
    assert chunk[9:10] == b" "
    flagged = (MARC / "utf8_with_leader_flag.dat").read_bytes()
    assert (
        json.loads(original_json(decode_binary(chunk)))["fields"]
        == json.loads(original_json(decode_binary(flagged)))["fields"]
    )


@needs_data
def test_leader_says_utf8_but_bytes_are_marc8() -> None:
    # No real file has this mistake, so take the real MARC-8 record and set its flag to UTF-8.
    chunk = (MARC / "marc8.dat").read_bytes()
    assert chunk[9:10] == b" " and any(b > 0x7F for b in chunk)
    wrong = chunk[:9] + b"a" + chunk[10:]
    as_marc8 = json.loads(original_json(decode_binary(chunk)))["fields"]
    assert json.loads(original_json(decode_binary(wrong)))["fields"] == as_marc8
    # And both read as the same text as the UTF-8 copy of the record.
    utf8 = (MARC / "utf8_with_leader_flag.dat").read_bytes()
    as_utf8 = json.loads(original_json(decode_binary(utf8)))["fields"]
    nfc = unicodedata.normalize  # MARC-8 diacritics decode as combining characters
    text = {json.dumps(f, ensure_ascii=False) for f in (as_utf8, as_marc8)}
    assert len({nfc("NFC", t) for t in text}) == 1
