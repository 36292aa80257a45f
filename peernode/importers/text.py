"""Repairs and vocabularies for text that arrives through exports: mojibake, language, material.

Library systems on MySQL often stored UTF-8 bytes in latin1 columns, or exported them through a
cp1252 step, so "’" arrives as "â€™" or, twice over, as "Ã¢â‚¬â„¢". :func:`repair_mojibake` undoes
that only where the repair provably round-trips, and leaves everything else alone.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import TextIO

from ..records import clean_text

# Each cp1252 character and its byte. MySQL's "latin1" is cp1252 with the five bytes cp1252
# leaves undefined mapped to the C1 controls, so those map through unchanged.
_CP1252_CHAR: list[str] = []
for _byte in range(256):
    try:
        _CP1252_CHAR.append(bytes([_byte]).decode("cp1252"))
    except UnicodeDecodeError:
        _CP1252_CHAR.append(chr(_byte))
_CP1252_BYTE = {char: byte for byte, char in enumerate(_CP1252_CHAR)}

# UTF-8 lead bytes whose mojibake is repaired: the 2-byte ones and E1/E2 (Vietnamese Latin,
# punctuation, currency, letterlike symbols). Other 3-byte leads (CJK, Indic) are skipped.
_LEADS_2 = frozenset(range(0xC2, 0xE0))
_LEADS_3 = frozenset((0xE1, 0xE2))

# What a repaired character may be. Legitimate text can look like mojibake ("Fuß”" is the
# cp1252 form of "ߔ", "CAFÉ»" of "ɻ"), so only characters that real catalogue text contains are
# accepted, and letters of another script only when the same text yields several of them (a
# Russian title yields dozens; "ESPAÑ”" would yield one).
_LATIN_RANGES = (
    (0x00A0, 0x017F),  # Latin-1 supplement, Latin Extended-A
    (0x01A0, 0x01B4),  # Vietnamese horn letters
    (0x01CD, 0x01DC),  # pinyin tone letters
    (0x0218, 0x021B),  # Romanian comma-below letters
    (0x02B9, 0x02BC),  # modifier primes and apostrophes used in transliteration
    (0x0300, 0x030C),  # the combining accents decomposed text uses
    (0x0323, 0x0328),
    (0x1E00, 0x1EFF),  # Latin Extended Additional (Vietnamese)
    (0x2000, 0x214F),  # punctuation, currency, letterlike symbols
)
_SCRIPT_RANGES = (
    (0x0370, 0x03FF),  # Greek
    (0x0400, 0x04FF),  # Cyrillic
    (0x0590, 0x05FF),  # Hebrew
    (0x0600, 0x06FF),  # Arabic
)


def repair_mojibake(text: str) -> str:
    """Undo UTF-8 that was decoded as cp1252/latin-1, once or several times over.

    A sequence is replaced only when its cp1252 bytes are one valid UTF-8 character, encoding
    that character the same wrong way gives back exactly the original sequence, and the
    character is one catalogue text plausibly contains (see ``_LATIN_RANGES``).
    """
    if text.isascii():
        return text
    for _ in range(3):  # three layers of double-encoding is already more than real data shows
        fixed = _repair_once(text)
        if fixed == text:
            break
        text = fixed
    return text


def _repair_once(text: str) -> str:
    found: list[tuple[int, int, str, int]] = []  # (start, size, character, script or -1)
    i = 0
    n = len(text)
    while i < n:
        lead = _CP1252_BYTE.get(text[i], 0)
        size = 2 if lead in _LEADS_2 else 3 if lead in _LEADS_3 else 0
        decoded = _decode_sequence(text[i : i + size]) if size and i + size <= n else None
        if decoded is not None:
            script = _script(decoded)
            if script is not None:
                found.append((i, size, decoded, script))
                i += size
                continue
        i += 1
    if not found:
        return text
    counts: dict[int, int] = {}
    for *_, script in found:
        counts[script] = counts.get(script, 0) + 1
    out: list[str] = []
    done = 0
    for start, size, decoded, script in found:
        if script >= 0 and counts[script] < 2:
            continue
        out.append(text[done:start])
        out.append(decoded)
        done = start + size
    out.append(text[done:])
    return "".join(out)


def _script(char: str) -> int | None:
    """-1 for characters always accepted, the index of a script range, or None to refuse."""
    code = ord(char)
    if any(low <= code <= high for low, high in _LATIN_RANGES):
        return -1
    for index, (low, high) in enumerate(_SCRIPT_RANGES):
        if low <= code <= high:
            return index
    return None


def _decode_sequence(seq: str) -> str | None:
    raw = bytearray()
    for char in seq:
        byte = _CP1252_BYTE.get(char)
        if byte is None:
            return None
        raw.append(byte)
    if any(not 0x80 <= b <= 0xBF for b in raw[1:]):
        return None
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(decoded) != 1:
        return None
    # The round trip: the repaired character, mis-decoded again, must be exactly what we saw.
    again = "".join(_CP1252_CHAR[b] for b in decoded.encode("utf-8"))
    return decoded if again == seq else None


_ISBD_END = re.compile(r"(?:\s+[:;/=]|,)\s*$")


def clean(text: str) -> str:
    """:func:`clean_text` after dropping the ISBD mark that introduced the next element.

    Dropping " :" first lets clean_text see an abbreviation's own full stop ("N.Y. :").
    """
    return clean_text(_ISBD_END.sub("", text)) if text else ""


_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def strip_controls(text: str) -> str:
    """Remove control characters (MARC non-sort marks, stray escapes) but keep tabs/newlines."""
    return _CONTROLS.sub("", text) if not text.isprintable() else text


_LIST_SPLIT = re.compile(r"\s*[;|]\s*")
_ANGLE_ITEMS = re.compile(r"<([^<>]*)>")


def split_list(value: str) -> list[str]:
    """Split a multi-valued cell: "a; b", "a | b", or SLiMS's export form "<a><b>"."""
    value = value.strip()
    if value.startswith("<") and value.endswith(">"):
        items = _ANGLE_ITEMS.findall(value)
        if items:
            return [item.strip() for item in items if item.strip()]
    return [item for item in _LIST_SPLIT.split(value) if item]


# ISO 639-1 codes and names as SLiMS and spreadsheets write them -> MARC language codes, so
# records from SLiMS and from MARC agree. Anything else is kept as it was written.
_LANGUAGES = {
    "ar": "ara",
    "arab": "ara",
    "arabic": "ara",
    "bahasa arab": "ara",
    "de": "ger",
    "german": "ger",
    "jerman": "ger",
    "deutsch": "ger",
    "en": "eng",
    "english": "eng",
    "inggris": "eng",
    "bahasa inggris": "eng",
    "es": "spa",
    "spanish": "spa",
    "fr": "fre",
    "french": "fre",
    "perancis": "fre",
    "id": "ind",
    "in": "ind",
    "indonesia": "ind",
    "indonesian": "ind",
    "bahasa indonesia": "ind",
    "ja": "jpn",
    "japanese": "jpn",
    "jepang": "jpn",
    "jv": "jav",
    "jawa": "jav",
    "javanese": "jav",
    "bahasa jawa": "jav",
    "ms": "may",
    "malay": "may",
    "malaysia": "may",
    "melayu": "may",
    "nl": "dut",
    "dutch": "dut",
    "belanda": "dut",
    "ru": "rus",
    "russian": "rus",
    "su": "sun",
    "sunda": "sun",
    "sundanese": "sun",
    "bahasa sunda": "sun",
    "th": "tha",
    "thai": "tha",
    "vi": "vie",
    "vietnamese": "vie",
    "zh": "chi",
    "chinese": "chi",
    "mandarin": "chi",
    "cina": "chi",
}


def normalize_language(raw: str) -> str:
    text = " ".join(raw.split())
    key = text.casefold()
    if key in _LANGUAGES:
        return _LANGUAGES[key]
    if len(key) == 3 and key.isalpha():
        return key
    return text


# General material designations (SLiMS's stock list and common spreadsheet words) -> the same
# format words the MARC importer derives from the leader.
_FORMATS = {
    "text": "book",
    "book": "book",
    "buku": "book",
    "monograph": "book",
    "monografi": "book",
    "serial": "serial",
    "serials": "serial",
    "journal": "serial",
    "jurnal": "serial",
    "majalah": "serial",
    "magazine": "serial",
    "periodical": "serial",
    "map": "map",
    "globe": "map",
    "peta": "map",
    "cartographic material": "map",
    "music": "music",
    "musik": "music",
    "sound recording": "audio",
    "audio": "audio",
    "video recording": "video",
    "video": "video",
    "motion picture": "video",
    "film": "video",
    "digital versatile disc": "video",
    "dvd": "video",
    "manuscript": "manuscript",
    "naskah": "manuscript",
    "computer file": "electronic",
    "computer software": "electronic",
    "electronic resource": "electronic",
    "cd-rom": "electronic",
    "e-book": "electronic",
    "ebook": "electronic",
    "kit": "kit",
    "multimedia": "mixed",
    "picture": "image",
    "art original": "image",
    "chart": "image",
    "slide": "image",
    "filmstrip": "image",
    "flash card": "image",
    "technical drawing": "image",
    "transparency": "image",
    "microform": "microform",
    "realia": "object",
    "model": "object",
    "diorama": "object",
    "game": "object",
    "equipment": "object",
    "microscope slide": "object",
}


def normalize_format(raw: str) -> str:
    text = " ".join(raw.split())
    return _FORMATS.get(text.casefold(), text.casefold())


# --- reading text files ---------------------------------------------------------------------


def _cp1252_fallback(exc: UnicodeError) -> tuple[str, int]:
    """Decode a byte that is not UTF-8 as cp1252: spreadsheets on Windows save "ANSI" files."""
    if isinstance(exc, UnicodeDecodeError):
        bad = exc.object[exc.start : exc.end]
        return "".join(_CP1252_CHAR[b] for b in bad), exc.end
    raise exc


FALLBACK_ERRORS = "peernode-cp1252"
codecs.register_error(FALLBACK_ERRORS, _cp1252_fallback)


def open_text(path: Path) -> TextIO:
    """Open a text export: UTF-8 with or without BOM, UTF-16 with BOM, stray cp1252 bytes kept."""
    with path.open("rb") as probe:
        head = probe.read(4)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return path.open(encoding="utf-16", errors="replace", newline="")
    return path.open(encoding="utf-8-sig", errors=FALLBACK_ERRORS, newline="")
