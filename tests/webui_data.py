"""Catalogue data for the web page tests: real records, plus the hostile ones every page must
render inert (markup, script URLs, bidi overrides, a 1 MB title)."""

from __future__ import annotations

import json
from pathlib import Path

from .nodes import BOOKS

HOSTILE_TITLES = [
    "<script>alert('judul')</script>",
    '"><img src=x onerror=alert(1)>',
    "Buku \u202etxt.exe sejarah",
    "Judul raksasa " + "panjang " * 131072,  # 1 MiB of title
]
JS_LINK = "javascript:alert(document.cookie)"
SAFE_LINK = "https://example.org/buku/42"
PASSWORD = "kata-sandi-staf-1"


def write_hostile(path: Path) -> Path:
    """The hostile records as a JSON catalogue (CSV readers refuse a 1 MB field outright)."""
    rows = [
        {
            "id": f"h{number}",
            "title": title,
            "author": "<b>Penulis</b> Jahat",
            "subject": "Sejarah",
            "description": JS_LINK,
            "year": "1999",
        }
        for number, title in enumerate(HOSTILE_TITLES)
    ]
    rows.append(
        {
            "id": "link",
            "title": "Katalog dengan tautan",
            "author": "Ani",
            "subject": "Sejarah",
            "description": SAFE_LINK,
            "year": "2001",
        }
    )
    rows.append(
        {
            "id": "ok1",
            "title": "Sejarah Maluku",
            "author": "Des Alwi",
            "subject": "Sejarah -- Maluku",
            "year": "2005",
            "isbn": "9789794613566",
        }
    )
    path.write_text(json.dumps(rows, ensure_ascii=False), "utf-8")
    return path


def write_books(path: Path, count: int = 300) -> Path:
    """The first ``count`` Library of Congress records (real data, quick to import)."""
    books = json.loads(BOOKS.read_text("utf-8"))[:count]
    path.write_text(json.dumps(books, ensure_ascii=False), "utf-8")
    return path
