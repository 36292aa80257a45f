"""Serial holdings statements ("v.1(1990)-v.12(2001)", "Vol. 3-5 (1992-1994); 1997-") read
into volume and year ranges, and merged across libraries with the gaps shown.

A statement comes from another library's catalogue, typed by hand over decades, so the reader
never raises and never drops anything: the text is always kept as written, and each part it
could not read with confidence is kept verbatim in ``Statement.unread`` (the statement is then
``flagged``). Volumes and years are read independently: "v.1-5 (1990-1994)" holds volumes 1..5
and years 1990..1994. Issue numbers ("no. 3") and months are understood and set aside: the union
list works at volume and year level. "lacking v.7" / "kurang" subtracts what follows it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

MAX_STATEMENT_CHARS = 1000  # beyond this a statement is kept verbatim but not read
MIN_YEAR, MAX_YEAR = 1500, 2099
MAX_VOLUME = 100_000


@dataclass(frozen=True, order=True)
class Span:
    """A closed run of numbers; ``end`` None means open ("1990-": to the present)."""

    start: int
    end: int | None

    def text(self) -> str:
        if self.end is None:
            return f"{self.start}-"
        return str(self.start) if self.end == self.start else f"{self.start}-{self.end}"


@dataclass(frozen=True)
class Statement:
    """One library's holdings statement: what it says, and what could be read from it."""

    text: str
    volumes: tuple[Span, ...] = ()
    years: tuple[Span, ...] = ()
    unread: tuple[str, ...] = ()  # parts not understood, verbatim

    @property
    def flagged(self) -> bool:
        return bool(self.unread)

    def summary(self) -> str:
        """The readable form: "v.1-5 (1990-1994)", or the text itself if nothing was read."""
        volumes = ", ".join(s.text() for s in self.volumes)
        years = ", ".join(s.text() for s in self.years)
        if volumes and years:
            return f"v.{volumes} ({years})"
        if volumes:
            return f"v.{volumes}"
        return years or self.text

    def as_dict(self) -> dict[str, object]:
        return {
            "statement": self.text,
            "volumes": [span_dict(s) for s in self.volumes],
            "years": [span_dict(s) for s in self.years],
            "summary": self.summary(),
            "flagged": self.flagged,
            "unread": list(self.unread),
        }


def span_dict(span: Span) -> dict[str, int | None]:
    return {"from": span.start, "to": span.end}


# --- reading -------------------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_VOLUME_WORDS = _words(
    "v vol vols volume volumes jil jilid jld bd band tome t th thn tahun jg jahrg jahrgang "
    "anno yr year annee"
)
_ISSUE_WORDS = _words(
    "no nos n nr num number numbers nomor iss issue issues pt part parts bag bagian ed edisi "
    "hft heft fasc suppl supplement sup"
)
_MONTHS = _words(
    "jan january januari feb february februari febr mar march maret apr april may mei jun june "
    "juni jul july juli aug august agu agt agustus sep sept september okt oct october oktober "
    "nov november nop nopember dec december des desember spring summer autumn fall winter "
    "spr sum aut win semester sem quarter q"
)
_LACKING_WORDS = _words(
    "lacking lacks lack missing wanting kurang hilang tanpa except kecuali excl"
)
_NOW_WORDS = _words("present sekarang current now kini berjalan date")
_FILLER_WORDS = _words("and dan with in of the to s d index indexes indeks ke held holdings")
_ROMAN = re.compile(r"^(m{0,3})(cm|cd|d?c{0,3})(xc|xl|l?x{0,3})(ix|iv|v?i{0,3})$")
_ROMAN_VALUES = {"i": 1, "v": 5, "x": 10, "l": 50, "c": 100, "d": 500, "m": 1000}
# "s/d" (sampai dengan) and "to" are Indonesian and English for a range dash.
_RANGE_WORDS = re.compile(r"\bs\s*/\s*d\b|\bs\.\s*d\.?|\bsampai\b|\bhingga\b|\buntil\b|\bto\b")
_TOKEN = re.compile(
    r"(?P<word>[^\W\d_]+)|(?P<num>\d+)|(?P<dash>[-\u2010-\u2015~])|(?P<open>[(\[])"
    r"|(?P<close>[)\]])|(?P<slash>/)|(?P<semi>;)|(?P<comma>,)|(?P<other>[^\s.:])"
)


@dataclass
class _Piece:
    """The values read from one comma- or semicolon-separated part of a statement."""

    start: int  # where it lies in the statement (first and past-last character)
    end: int
    volumes: list[int]
    years: list[int]
    dash: bool = False  # a range: the values are its ends
    open_end: bool = False  # "1990-" or "- present"
    doubt: bool = False  # a word or number not understood
    lacking: bool = False


def parse_statement(text: str) -> Statement:
    """Read ``text``; never raises. Unreadable parts go to ``unread`` verbatim."""
    if not isinstance(text, str):  # a hostile wire value would fail earlier; be sure anyway
        text = str(text)
    shown = " ".join(text.split())
    if not shown:
        return Statement(text="")
    if len(shown) > MAX_STATEMENT_CHARS:
        return Statement(text=shown, unread=(shown,))
    pieces = _pieces(shown)
    held_v: list[Span] = []
    held_y: list[Span] = []
    gone_v: list[Span] = []
    gone_y: list[Span] = []
    unread: list[str] = []
    for piece in pieces:
        raw = shown[piece.start : piece.end].strip(" ,;")
        if not piece.volumes and not piece.years:
            if raw and (piece.doubt or not piece.lacking):  # a bare "lacking" says nothing
                unread.append(raw)
            continue
        if piece.doubt:
            unread.append(raw)
        volumes = _spans(piece.volumes, piece.dash, piece.open_end)
        years = _spans(piece.years, piece.dash, piece.open_end)
        (gone_v if piece.lacking else held_v).extend(volumes)
        (gone_y if piece.lacking else held_y).extend(years)
    return Statement(
        text=shown,
        volumes=_subtract(_union(held_v), _union(gone_v)),
        years=_subtract(_union(held_y), _union(gone_y)),
        unread=tuple(unread),
    )


def _spans(values: list[int], dash: bool, open_end: bool) -> list[Span]:
    if not values:
        return []
    if dash or open_end:
        return [Span(min(values), None if open_end else max(values))]
    return [Span(v, v) for v in values]


def _pieces(text: str) -> list[_Piece]:
    """Split into pieces and read each one's numbers (see the module docstring)."""
    # Folded one character for one, so each token's place is its place in ``text``.
    folded = "".join(_fold_char(c) for c in text)
    folded = _RANGE_WORDS.sub(lambda m: "-".ljust(len(m.group())), folded)
    tokens = [(m.lastgroup or "other", m.group(), m.start()) for m in _TOKEN.finditer(folded)]
    pieces: list[_Piece] = []
    lacking = False
    piece = _Piece(0, 0, [], [], lacking=lacking)
    # What the last number was, per parenthesis depth: a number after a dash takes the kind of
    # the number before the dash at the same depth ("v.1(1990)-12(2001)": 12 is a volume).
    last_kind: list[str] = [""]
    marker = ""  # "vol", "issue" or "month": the word a following number belongs to
    pending_marker = False  # a volume word not yet followed by its number
    previous, previous_end = "", 0
    for index, (kind, value, at) in enumerate(tokens):
        nxt = tokens[index + 1][:2] if index + 1 < len(tokens) else ("", "")
        if kind in ("semi", "comma"):
            if kind == "semi":
                lacking = False
            if kind == "comma" and nxt[0] == "word" and nxt[1] in _ISSUE_WORDS | _MONTHS:
                previous = kind
                continue  # "v.1, no.1": one designation, not two pieces
            pieces.append(piece)
            piece = _Piece(at + 1, at + 1, [], [], lacking=lacking)
            last_kind, marker, pending_marker, previous = [""], "", False, kind
            continue
        if piece.start == piece.end:
            piece.start = at
        piece.end = at + len(value)
        depth = len(last_kind) - 1
        if kind == "open":
            last_kind.append("")
        elif kind == "close":
            if depth:
                last_kind.pop()
        elif kind == "dash":
            piece.dash = True
            piece.open_end = True  # until a value follows
        elif kind == "word":
            if value in _VOLUME_WORDS and not (pending_marker and _ROMAN.match(value)):
                if depth == 0 and piece.volumes and previous != "dash":
                    # "v.1 (1990)-v.3 (1992) v.5 (1994)-": a new run starts a new piece
                    piece.end = previous_end
                    pieces.append(piece)
                    piece = _Piece(at, at + len(value), [], [], lacking=lacking)
                    last_kind = [""]
                marker, pending_marker = "vol", True
            elif pending_marker and _ROMAN.match(value):
                _take(piece, "vol", _roman(value), last_kind)
                pending_marker = False
            elif value in _ISSUE_WORDS:
                marker, pending_marker = "issue", False
            elif value in _MONTHS:
                marker, pending_marker = "month", False
            elif value in _LACKING_WORDS:
                if piece.volumes or piece.years:
                    piece.end = previous_end
                    pieces.append(piece)
                    piece = _Piece(at, at + len(value), [], [], lacking=True)
                    last_kind = [""]
                lacking = piece.lacking = True
                marker, pending_marker = "", False
            elif value in _NOW_WORDS:
                piece.open_end = True
            elif value not in _FILLER_WORDS:
                piece.doubt = True
        elif kind == "num":
            number = int(value) if len(value) <= 9 else -1
            if number < 0:
                piece.doubt = True
            elif previous == "slash" and last_kind[-1] == "year" and len(value) == 2:
                # "1990/91": a season or academic year spanning two calendar years
                base = piece.years[-1]
                year = base - base % 100 + number
                _take(piece, "year", year + 100 if year < base else year, last_kind)
                piece.dash = True
            elif len(value) == 4 and MIN_YEAR <= number <= MAX_YEAR:
                _take(piece, "year", number, last_kind)
            elif marker == "vol" or (previous == "dash" and last_kind[-1] == "vol"):
                _take(piece, "vol", number, last_kind)
            elif marker in ("issue", "month"):
                last_kind[-1] = marker
            elif nxt[0] == "word" and nxt[1] in _MONTHS:
                last_kind[-1] = "day"  # "15 Jan. 1990"
            elif previous == "dash" and last_kind[-1] in ("issue", "month", "day"):
                pass  # "no. 1-4": the end of an issue range
            elif number <= MAX_VOLUME:
                _take(piece, "vol", number, last_kind)  # a bare number: a volume
            else:
                piece.doubt = True
            pending_marker = False
        elif kind not in ("slash",):
            piece.doubt = True
        if kind == "num":
            piece.open_end = False  # any number after a dash ends the range ("no.1-4")
        previous, previous_end = kind, at + len(value)
    pieces.append(piece)
    return pieces


def _fold_char(char: str) -> str:
    lower = char.lower()
    if len(lower) != 1:
        lower = char
    if lower.isascii():
        return lower
    base = unicodedata.normalize("NFKD", lower)[:1]
    return base if base and not unicodedata.combining(base) else lower


def _take(piece: _Piece, kind: str, number: int, last_kind: list[str]) -> None:
    if kind == "year":
        piece.years.append(number)
    elif number <= MAX_VOLUME:
        piece.volumes.append(number)
    else:
        piece.doubt = True
        return
    last_kind[-1] = kind
    piece.open_end = False  # a value came after the dash: the range is closed


def _roman(word: str) -> int:
    total = 0
    for index, char in enumerate(word):
        value = _ROMAN_VALUES[char]
        after = _ROMAN_VALUES[word[index + 1]] if index + 1 < len(word) else 0
        total += -value if value < after else value
    return total


# --- merging -------------------------------------------------------------------------------


def _union(spans: Iterable[Span]) -> tuple[Span, ...]:
    """Sorted, non-overlapping, with touching runs joined (1-5 and 6-9 are 1-9)."""
    out: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, _end(s))):
        if out and (out[-1].end is None or span.start <= out[-1].end + 1):
            last = out[-1]
            end = None if last.end is None or span.end is None else max(last.end, span.end)
            out[-1] = Span(last.start, end)
        else:
            out.append(Span(span.start, span.end))
    return tuple(out)


def _end(span: Span) -> float:
    return float("inf") if span.end is None else span.end


def _subtract(held: Sequence[Span], gone: Sequence[Span]) -> tuple[Span, ...]:
    out = list(held)
    for cut in gone:
        kept: list[Span] = []
        for span in out:
            if _end(span) < cut.start or (cut.end is not None and span.start > cut.end):
                kept.append(span)
                continue
            if span.start < cut.start:
                kept.append(Span(span.start, cut.start - 1))
            if cut.end is not None and _end(span) > cut.end:
                kept.append(Span(cut.end + 1, span.end))
        out = kept
    return tuple(out)


def gaps(spans: Sequence[Span]) -> tuple[Span, ...]:
    """The runs missing between the first and last of ``spans`` (already a union)."""
    return tuple(
        Span(a.end + 1, b.start - 1)
        for a, b in pairwise(spans)
        if a.end is not None and b.start > a.end + 1
    )


@dataclass(frozen=True)
class Coverage:
    """What a whole network holds of one serial, with the gaps between."""

    volumes: tuple[Span, ...]
    years: tuple[Span, ...]
    volume_gaps: tuple[Span, ...]
    year_gaps: tuple[Span, ...]

    def sentence(self) -> str:
        parts = []
        if self.years:
            first, last = self.years[0].start, self.years[-1].end
            whole = f"{first}-{last if last is not None else ''}"
            held = f"network holds {whole}"
            if self.year_gaps:
                held += ", gap " + ", ".join(s.text() for s in self.year_gaps)
            else:
                held += " with no gap"
            parts.append(held)
        if self.volumes:
            first, last = self.volumes[0].start, self.volumes[-1].end
            held = f"v.{first}-{last if last is not None else ''}"
            if self.volume_gaps:
                held += ", missing v." + ", ".join(s.text() for s in self.volume_gaps)
            else:
                held += " complete" if self.years else " with no gap"
            parts.append(held if self.years else f"network holds {held}")
        return "; ".join(parts) or "nothing readable in the holdings statements"

    def as_dict(self) -> dict[str, object]:
        return {
            "volumes": [span_dict(s) for s in self.volumes],
            "years": [span_dict(s) for s in self.years],
            "volume_gaps": [span_dict(s) for s in self.volume_gaps],
            "year_gaps": [span_dict(s) for s in self.year_gaps],
            "summary": self.sentence(),
        }


def merge(statements: Iterable[Statement]) -> Coverage:
    """The union of every statement's volumes and years; the same in any order."""
    items = list(statements)
    volumes = _union(s for st in items for s in st.volumes)
    years = _union(s for st in items for s in st.years)
    return Coverage(volumes, years, gaps(volumes), gaps(years))
