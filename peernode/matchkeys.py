"""The keys that say two records describe the same edition, whichever library catalogued them.

A record gets several keys; two records that share any key fall into one union entry
(peernode/clusters.py). The keys:

- ``i:ISBN13[#part]`` for each ISBN: ISBN-10 and -13 agree once normalised. A volume of a set
  often carries the set's ISBN too, so a record whose title names a part ("v. 2", "jilid 2",
  "Part 2") qualifies its ISBN keys with that part: volumes of one set stay apart.
- ``s:ISSN`` for each ISSN: a serial title, whatever its holdings.
- ``m:...`` an edition key in the spirit of the Colorado Alliance "Gold Rush" key that FOLIO
  uses: title proper, part, year, edition number, publisher, first author and format, each
  normalised so that cataloguing habits (case, diacritics, ISBD punctuation, a leading article,
  "2nd ed." vs "Edisi kedua") do not matter. Unlike Gold Rush it leaves out the subtitle and the
  pagination: libraries disagree on both far more often than editions differ by them
  (measured: docs/clustering.md). A record too thin to tell editions apart (a title and at
  most one of author, year and publisher) gets no edition key, so "Annual report" records of
  unrelated bodies do not merge.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["edition_number", "part_number", "record_keys", "title_proper"]

TITLE_CHARS = 70  # as Gold Rush: long titles differ early or not at all
SHORT_TITLE = 12  # a title proper shorter than this (folded, no spaces) keeps its subtitle
_NON_ALNUM = re.compile(r"[^0-9a-z]+")
# For ASCII text, _fold in one C pass: A-Z to a-z, every other non-alphanumeric to a space (the
# apostrophe is deleted and "&" expanded before the table applies).
_ASCII_FOLD = bytes(
    ord(char) if char in "0123456789abcdefghijklmnopqrstuvwxyz" else ord(" ")
    for char in (chr(byte).lower() for byte in range(256))
)
# A leading article is dropped from the title (English; Indonesian has none).
_ARTICLES = frozenset(("the", "an", "a"))
# The part of a multi-part work named in a title: "v. 2", "vol. 3", "jilid 2", "Part II".
_PART = re.compile(
    r"(?:^|[\s.,:;(\[])(?:v|vol|volume|jil|jilid|jld|bagian|bag|buku|part|pt|tome|teil|bd|band)"
    r"\.?\s*([0-9]+|[ivxlc]+)\b",
    re.IGNORECASE,
)
# _PART for lower-cased ASCII text, about twice as fast: case-sensitive; the words as a trie
# (where one word begins another, as "v", "vol", "volume", the shorter cannot match there: the
# letters after it are no number ending a word; so the order of the words does not matter); and
# a part at the very start looked for apart, so that the search can skip straight to the marks.
_PART_WORD = (
    r"(?:v(?:ol(?:ume)?)?|j(?:il(?:id)?|ld)|b(?:agian|ag|uku|d|and)|p(?:art|t)|t(?:ome|eil))"
    r"\.?\s*([0-9]+|[ivxlc]+)\b"
)
_PART_AT_START = re.compile(_PART_WORD)
_PART_AFTER_MARK = re.compile(r"[\s.,:;(\[]" + _PART_WORD)
_ROMAN = {"i": 1, "v": 5, "x": 10, "l": 50, "c": 100}
_ORDINALS = {
    # English and Indonesian ordinal words, as edition statements spell them.
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "sixth": 6,
    "seventh": 7,
    "eighth": 8,
    "ninth": 9,
    "tenth": 10,
    "pertama": 1,
    "kedua": 2,
    "ketiga": 3,
    "keempat": 4,
    "kelima": 5,
    "keenam": 6,
    "ketujuh": 7,
    "kedelapan": 8,
    "kesembilan": 9,
    "kesepuluh": 10,
}
_DIGITS = re.compile(r"\d+")
# Words that open a publisher's name in one catalogue and not in another.
_PUBLISHER_NOISE = frozenset(
    ("the", "pt", "cv", "penerbit", "published", "publishing", "publisher", "publishers", "by")
)
KEY_CHARS = 500  # a hostile ISBN cannot bloat the index


def _words(text: str) -> list[str]:
    """The words of ``_fold(text)``: lower case, no diacritics, split at every non-alphanumeric."""
    if text.isascii():  # nearly every string: casefold() is lower() and there is nothing to NFKD
        if "&" in text:
            text = text.replace("&", " and ")
        return text.encode().translate(_ASCII_FOLD, b"'").decode().split()
    folded = text.casefold()
    if not folded.isascii():
        decomposed = unicodedata.normalize("NFKD", folded)
        folded = "".join(c for c in decomposed if not unicodedata.combining(c))
    # Only [0-9a-z] and single spaces are left, so split() cuts exactly at the spaces.
    return _NON_ALNUM.sub(" ", folded.replace("'", "").replace("&", " and ")).split()


def _fold(text: str) -> str:
    """Lower case, no diacritics, every run of non-alphanumerics one space."""
    return " ".join(_words(text))


def title_proper(title: str) -> str:
    """The title before its subtitle, parallel title or statement of responsibility."""
    for mark in (" : ", " = ", " / ", "; ", ": "):
        if mark in title:  # cheaper than a partition that finds nothing
            head = title.partition(mark)[0]
            if head.strip():
                title = head
    return title


def part_number(title: str) -> str:
    """The volume or part a title names ("2"), or "" when it names none."""
    if title.isascii():  # on ASCII text, IGNORECASE is lower()
        lowered = title.lower()
        match = _PART_AT_START.match(lowered) or _PART_AFTER_MARK.search(lowered)
    else:
        match = _PART.search(title)
    if not match:
        return ""
    value = match.group(1).lower()
    if value.isdigit():
        return str(int(value))
    if not set(value) <= _ROMAN.keys():
        return ""  # Turkish dotless/dotted i match the numeral class case-blind: no numeral
    total, previous = 0, 0
    for char in reversed(value):  # a Roman numeral
        number = _ROMAN[char]
        total += -number if number < previous else number
        previous = max(previous, number)
    return str(total)


def edition_number(edition: str) -> str:
    """ "2" for "2nd ed.", "Edisi kedua", "Second edition"; "1" when no number is stated."""
    if not edition:  # most records state no edition
        return "1"
    folded = _fold(edition)
    match = _DIGITS.search(folded)
    if match:
        return str(int(match.group()))
    for word in folded.split():
        if word in _ORDINALS:
            return str(_ORDINALS[word])
    return "1"


def _title_key(title: str) -> str:
    """The folded title without spaces, a leading article dropped if more words follow."""
    words = _words(title)
    if len(words) > 1 and words[0] in _ARTICLES:
        return "".join(words[1:])
    return "".join(words)


def _surname(authors: Sequence[str]) -> str:
    """The first author's surname: before the comma of an inverted name ("Hunt, Andrew"), else
    the last word ("Andrew Hunt"), as libraries that do not invert names write it."""
    if not authors:
        return ""
    head, comma, _ = authors[0].partition(",")
    if not comma:  # the last word, a hyphenated surname whole ("Prokudin-Gorskiĭ")
        words = head.split()
        head = words[-1] if words else ""
    return "".join(_words(head))[:5]


def _publisher(publisher: str) -> str:
    words = _words(publisher)
    start = 0
    while start < len(words) and words[start] in _PUBLISHER_NOISE:
        start += 1
    return "".join(words[start:] if start else words)[:5]


def edition_key(data: Mapping[str, Any]) -> str | None:
    """The ``m:`` key of a wire record map, or None when the record is too thin for one."""
    return _edition_key(data, None)


def _edition_key(data: Mapping[str, Any], part: str | None) -> str | None:
    """edition_key, given ``part_number`` of the title when the caller has it already."""
    full_title: str = data.get("title", "")
    proper = title_proper(full_title)
    title = _title_key(proper)
    # "Perl", "Indonesia": the subtitle is what tells them apart (no subtitle: same key again)
    if len(title) < SHORT_TITLE and len(proper) != len(full_title):
        title = _title_key(full_title)
    title = title[:TITLE_CHARS]
    if not title:
        return None
    authors: Sequence[str] = data.get("authors", ())
    year = data.get("year")
    surname = _surname(authors)
    publisher = _publisher(data.get("publisher", ""))
    if bool(surname) + bool(year) + bool(publisher) < 2:
        return None
    if part is None:
        part = part_number(full_title)
    return (
        f"m:{title}|{part}|{year if year is not None else ''}|"
        f"{edition_number(data.get('edition', ''))}|{publisher}|{surname}|"
        f"{data.get('format') or 'book'}"
    )


def record_keys(data: Mapping[str, Any]) -> list[str]:
    """Every key of a wire record map (see the module docstring), without repeats."""
    keys: list[str] = []
    part = None
    isbns: Sequence[str] = data.get("isbn", ())
    if isbns:
        part = part_number(data.get("title", ""))
        suffix = f"#{part}" if part else ""
        keys = [f"i:{isbn}{suffix}" for isbn in isbns if isbn]
    keys += [f"s:{issn}" for issn in data.get("issn", ()) if issn]
    # Only a second ISBN or ISSN can repeat a key: the edition key alone starts with "m:", and
    # cutting a key to KEY_CHARS keeps that start.
    unique = len(keys) < 2
    edition = _edition_key(data, part)
    if edition is not None:
        keys.append(edition)
    if unique:
        return [key[:KEY_CHARS] for key in keys]
    return list(dict.fromkeys(key[:KEY_CHARS] for key in keys))
