"""The labelled pairs that measure clustering (tests/data/clusters/pairs.csv), and the measure.

``python -m tools.cluster_pairs build`` rebuilds the CSV from the real records in ../shared/data;
``python -m tools.cluster_pairs evaluate`` prints precision and recall of peernode's match keys
over it (tests/test_clusters.py asserts floors on the same numbers). How the pairs are made, and
which labels were set by hand, is in tests/data/clusters/README.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import unicodedata
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peernode.importers import Imported, read_catalog
from peernode.matchkeys import record_keys
from peernode.records import BibRecord, fold

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
PAIRS = ROOT / "tests" / "data" / "clusters" / "pairs.csv"
COLUMNS = ("label", "kind", "a_ref", "b_ref", "a_record", "b_record", "note")

# Checked by hand: Library of Congress records with the same title and first author. LoC
# catalogues each edition once, so most are different editions (another place, editor,
# illustrator, a large-type printing, another animal in a children's series); this pair is the
# same edition catalogued twice (every field the same, subjects included).
SAME_BY_HAND = {("00007034", "00007035")}
# Left out: the records agree in every field LoC gives (no year), so nobody can tell by hand.
AMBIGUOUS = {("00008034", "00008586"), ("00008729", "00009027")}


@dataclass(frozen=True)
class Pair:
    label: str  # "same" or "different"
    kind: str
    a_ref: str
    b_ref: str
    a: dict[str, Any]
    b: dict[str, Any]
    note: str = ""

    def row(self) -> list[str]:
        dump = json.dumps
        return [
            self.label,
            self.kind,
            self.a_ref,
            self.b_ref,
            dump(self.a, ensure_ascii=False, sort_keys=True),
            dump(self.b, ensure_ascii=False, sort_keys=True),
            self.note,
        ]


def _records(path: Path) -> list[BibRecord]:
    return [o.record for o in read_catalog(path) if isinstance(o, Imported)]


def _wire(record: BibRecord) -> dict[str, Any]:
    return record.to_wire()


# --- how another library would catalogue the same edition ------------------------------------


def _invert(name: str) -> str:
    surname, comma, forenames = name.partition(",")
    return f"{forenames.strip()} {surname.strip()}" if comma else name


def _strip_marks(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _isbn10(isbn13: str) -> str:
    core = isbn13[3:12]
    total = sum((10 - i) * int(d) for i, d in enumerate(core))
    check = (11 - total % 11) % 11
    return core + ("X" if check == 10 else str(check))


_VARIANTS = (
    "upper-case title and ISBD marks",
    "subtitle left out",
    "names not inverted",
    "diacritics and apostrophes dropped",
    "ISBN-10 instead of -13",
    "edition in words",
    "publisher with a prefix",
    "no physical description, no notes",
)


def recatalogue(wire: dict[str, Any], rng: random.Random) -> tuple[dict[str, Any], str]:
    """``wire`` as a second library might have catalogued the same edition: 2 to 3 of the
    habits in ``_VARIANTS`` that differ between catalogues."""
    out = dict(wire)
    chosen = rng.sample(_VARIANTS, rng.randint(2, 3))
    for change in chosen:
        if change.startswith("upper"):
            out["title"] = out["title"].upper() + " /"
        elif change.startswith("subtitle"):
            out["title"] = out["title"].split(" : ")[0]
        elif change.startswith("names") and out.get("authors"):
            out["authors"] = [_invert(a) for a in out["authors"]]
        elif change.startswith("diacritics"):
            out["title"] = _strip_marks(out["title"]).replace("'", "")
            if out.get("publisher"):
                out["publisher"] = out["publisher"].replace("'", "")
        elif change.startswith("ISBN") and out.get("isbn"):
            out["isbn"] = [_isbn10(i) if i.startswith("978") else i for i in out["isbn"]]
        elif change.startswith("edition") and out.get("edition"):
            number = "".join(c for c in out["edition"] if c.isdigit())
            words = {"2": "Edisi kedua", "3": "Third edition", "5": "Fifth edition"}
            out["edition"] = words.get(number, out["edition"].replace("ed", "edition"))
        elif change.startswith("publisher") and out.get("publisher"):
            out["publisher"] = "Penerbit " + out["publisher"]
        else:
            out.pop("description", None)
            out.pop("notes", None)
    return out, "; ".join(chosen)


def other_edition(wire: dict[str, Any], rng: random.Random) -> tuple[dict[str, Any], str]:
    """A later edition of the same work: same title and author, new edition, year and ISBN."""
    out = dict(wire)
    out["edition"] = f"{rng.randint(2, 5)}th ed."
    out["year"] = (wire.get("year") or 1990) + rng.randint(2, 9)
    if wire.get("isbn"):
        out["isbn"] = [f"978{rng.randrange(10**9):09d}0"]
    return out, "another edition: edition statement, year and ISBN differ"


def other_volume(wire: dict[str, Any], rng: random.Random) -> tuple[dict[str, Any], str]:
    """Two volumes of a set that both carry the set's ISBN."""
    a, b = dict(wire), dict(wire)
    a["title"] = f"{wire['title']}. Vol. 1"
    b["title"] = f"{wire['title']}. Vol. 2"
    return b, json.dumps(a, ensure_ascii=False)


# --- the pairs ---------------------------------------------------------------------------------


def build(seed: int = 8) -> list[Pair]:
    rng = random.Random(seed)
    loc = _records(DATA / "loc-books" / "books.json")
    marc_files = sorted((DATA / "marc-pymarc").glob("*.*"))
    marc: list[tuple[str, BibRecord]] = []
    for path in marc_files:
        if path.suffix in (".dat", ".mrc", ".xml", ".json"):
            marc += [(path.name, r) for r in _records(path)]
    slims = _records(DATA / "slims" / "sampledata.sql")
    pairs: list[Pair] = []
    pairs += list(_natural_marc(marc))
    pairs += list(_loc_same_title(loc))
    pairs += list(_similar_titles(loc, rng, 110))
    pairs += list(_similar_titles([r for _, r in marc], rng, 40, prefix_words=1))
    pairs += list(_similar_titles(slims, rng, 10, prefix_words=1))
    with_isbn = [r for _, r in marc if r.isbn] + slims
    for record in rng.sample(loc, 100) + [r for _, r in marc] + slims:
        variant, note = recatalogue(_wire(record), rng)
        pairs.append(
            Pair("same", "recatalogued", record.rid, "variant", _wire(record), variant, note)
        )
    for record in rng.sample(with_isbn, 25) + rng.sample(loc, 10):
        variant, note = other_edition(_wire(record), rng)
        pairs.append(
            Pair("different", "other-edition", record.rid, "variant", _wire(record), variant, note)
        )
    for record in rng.sample(with_isbn, 15):
        first = dict(_wire(record), title=f"{record.title}. Vol. 1")
        second = dict(_wire(record), title=f"{record.title}. Vol. 2")
        pairs.append(
            Pair("different", "volumes", record.rid, "variant", first, second, "same set ISBN")
        )
    return pairs


def _natural_marc(marc: list[tuple[str, BibRecord]]) -> Iterator[Pair]:
    """The same record in several pymarc files (other encodings, formats, a damaged copy)."""
    by_title: dict[str, list[tuple[str, BibRecord]]] = defaultdict(list)
    for name, record in marc:
        by_title[fold(record.title)].append((name, record))
    for group in by_title.values():
        for i, (name_a, a) in enumerate(group):
            for name_b, b in group[i + 1 :]:
                if name_a != name_b:
                    yield Pair(
                        "same",
                        "same-record-other-file",
                        f"{name_a}#{a.rid}",
                        f"{name_b}#{b.rid}",
                        _wire(a),
                        _wire(b),
                    )


def _loc_same_title(loc: list[BibRecord]) -> Iterator[Pair]:
    by_key: dict[tuple[str, str], list[BibRecord]] = defaultdict(list)
    for record in loc:
        surname = fold(record.authors[0]).split(" ")[0] if record.authors else ""
        by_key[(fold(record.title), surname)].append(record)
    for group in by_key.values():
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                if (a.rid, b.rid) in AMBIGUOUS:
                    continue
                same = (a.rid, b.rid) in SAME_BY_HAND
                yield Pair(
                    "same" if same else "different",
                    "loc-same-title-author",
                    a.rid,
                    b.rid,
                    _wire(a),
                    _wire(b),
                    "checked by hand" + ("" if same else ": another edition (place, editor)"),
                )


def _similar_titles(
    records: list[BibRecord], rng: random.Random, count: int, prefix_words: int = 3
) -> Iterator[Pair]:
    """Different works whose titles start alike ("Programming Python" / "Programming Perl")."""
    by_prefix: dict[str, list[BibRecord]] = defaultdict(list)
    for record in records:
        words = fold(record.title).split()
        if len(words) >= prefix_words:
            by_prefix[" ".join(words[:prefix_words])].append(record)
    candidates = [
        (a, b)
        for group in by_prefix.values()
        for i, a in enumerate(group)
        for b in group[i + 1 :]
        if fold(a.title) != fold(b.title)
    ]
    for a, b in rng.sample(candidates, min(count, len(candidates))):
        yield Pair("different", "similar-title", a.rid, b.rid, _wire(a), _wire(b))


def write(pairs: list[Pair], path: Path = PAIRS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as stream:
        out = csv.writer(stream)
        out.writerow(COLUMNS)
        for pair in pairs:
            out.writerow(pair.row())


# --- the measure -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Score:
    pairs: int
    true_positive: int
    false_positive: int
    false_negative: int

    @property
    def precision(self) -> float:
        found = self.true_positive + self.false_positive
        return self.true_positive / found if found else 1.0

    @property
    def recall(self) -> float:
        wanted = self.true_positive + self.false_negative
        return self.true_positive / wanted if wanted else 1.0


def read_pairs(path: Path = PAIRS) -> list[Pair]:
    with path.open(newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    return [
        Pair(
            r["label"],
            r["kind"],
            r["a_ref"],
            r["b_ref"],
            json.loads(r["a_record"]),
            json.loads(r["b_record"]),
            r["note"],
        )
        for r in rows
    ]


def linked(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Would peernode put these two records into one union entry (they share a key)?"""
    return bool(set(record_keys(a)) & set(record_keys(b)))


def evaluate(pairs: list[Pair]) -> tuple[Score, list[Pair]]:
    """The score, and the pairs it got wrong."""
    tp = fp = fn = 0
    wrong: list[Pair] = []
    for pair in pairs:
        said = linked(pair.a, pair.b)
        same = pair.label == "same"
        if said and same:
            tp += 1
        elif said:
            fp += 1
            wrong.append(pair)
        elif same:
            fn += 1
            wrong.append(pair)
    return Score(len(pairs), tp, fp, fn), wrong


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.cluster_pairs", description=__doc__)
    parser.add_argument("action", choices=("build", "evaluate"))
    parser.add_argument("--wrong", action="store_true", help="list the pairs judged wrongly")
    args = parser.parse_args()
    if args.action == "build":
        pairs = build()
        write(pairs)
        print(f"wrote {len(pairs)} pairs to {PAIRS.relative_to(ROOT)}")
        return
    score, wrong = evaluate(read_pairs())
    same = score.true_positive + score.false_negative
    print(
        f"{score.pairs} pairs ({same} same edition, {score.pairs - same} different): "
        f"precision {score.precision:.3f}, recall {score.recall:.3f} "
        f"(TP {score.true_positive}, FP {score.false_positive}, FN {score.false_negative})"
    )
    for pair in wrong if args.wrong else []:
        print(
            f"  {pair.label:9} {pair.kind:24} {pair.a_ref} {pair.b_ref}: {pair.note}",
            file=sys.stdout,
        )
        print(f"      a {pair.a.get('title')!r} {pair.a.get('authors')} {pair.a.get('year')}")
        print(f"      b {pair.b.get('title')!r} {pair.b.get('authors')} {pair.b.get('year')}")


if __name__ == "__main__":
    main()
