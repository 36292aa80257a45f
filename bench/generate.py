"""Deterministic benchmark catalogues made from the real records in ../shared/data.

Same seed, same size -> the same file, byte for byte. Titles, authors, subjects and publishers
come from the 10,000 Library of Congress records; a share of records are Indonesian-language,
built from Indonesian title patterns over the same subjects. Years and valid ISBN-13s are added.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BOOKS = (
    Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "loc-books" / "books.json"
)

_ID_PATTERNS = [
    "Pengantar {s}",
    "Sejarah {s} di Indonesia",
    "Kumpulan karangan tentang {s}",
    "Pedoman praktis {s}",
    "{s}: teori dan praktik",
    "Bunga rampai {s}",
    "Kajian {s} di Nusantara",
]
_ID_AUTHORS = [
    "Sutrisno, Budi",
    "Rahmawati, Siti",
    "Hasibuan, Malayu",
    "Wijaya, Andi",
    "Nasution, Harun",
    "Kartika, Dewi",
    "Siregar, Togar",
    "Pratama, Yoga",
    "Lestari, Sri",
    "Suharto, Bambang",
]
_ID_PUBLISHERS = ["Gramedia", "Balai Pustaka", "Pustaka Jaya", "Erlangga", "Mizan", "Kanisius"]


def _isbn13(rng: random.Random) -> str:
    core = "978" + "".join(str(rng.randrange(10)) for _ in range(9))
    total = sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(core))
    return core + str((10 - total % 10) % 10)


def generate(count: int, seed: int = 1) -> Iterator[dict[str, Any]]:
    source: list[dict[str, Any]] = json.loads(BOOKS.read_text("utf-8"))
    subjects = sorted({s for r in source for s in r.get("subjects", [])})
    rng = random.Random(seed)
    for number in range(count):
        base = source[number % len(source)]
        record: dict[str, Any] = {"id": f"b{seed}-{number:07d}"}
        if rng.random() < 0.3:
            subject = rng.choice(subjects)
            record["title"] = rng.choice(_ID_PATTERNS).format(s=subject.lower())
            record["authors"] = [rng.choice(_ID_AUTHORS)]
            record["subjects"] = [subject]
            record["publisher"] = rng.choice(_ID_PUBLISHERS)
            record["language"] = "ind"
        else:
            record["title"] = str(base["title"]).rstrip(" /:,")
            if number >= len(source):
                record["title"] += f" (vol. {number // len(source) + 1})"
            if base.get("author"):
                record["authors"] = [str(base["author"]).rstrip(",")]
            record["subjects"] = list(base.get("subjects", []))[:5]
            record["publisher"] = str(base.get("publisher", "")).rstrip(" ,:")
            record["language"] = "eng"
        record["year"] = rng.randrange(1950, 2026)
        if rng.random() < 0.6:
            record["isbn"] = [_isbn13(rng)]
        yield record


def write_jsonl(path: Path, count: int, seed: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for record in generate(count, seed):
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path
