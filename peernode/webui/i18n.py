"""Bahasa Indonesia and English. Message ids are the English text; the Indonesian catalogue is
``translations/id/LC_MESSAGES/messages.po``, read at start-up (no compile step, so a fresh
clone works as it is). The reader's choice is a cookie; without one, the browser's
Accept-Language decides, and Bahasa Indonesia, the network's working language, is the default.
"""

from __future__ import annotations

import functools
import gettext
import io
from pathlib import Path

from aiohttp import web
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LANGUAGES = ("id", "en")
DEFAULT_LANGUAGE = "id"
LANGUAGE_NAMES = {"id": "Bahasa Indonesia", "en": "English"}
LANG_COOKIE = "pn_lang"
TRANSLATIONS_DIR = Path(__file__).parent / "translations"
DOMAIN = "messages"


def po_path(lang: str) -> Path:
    return TRANSLATIONS_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


@functools.cache
def translations(lang: str) -> gettext.NullTranslations:
    """The catalogue for ``lang``: English is the message ids themselves."""
    if lang == "en":
        return gettext.NullTranslations()
    with po_path(lang).open("rb") as handle:
        catalog = read_po(handle, locale=lang)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)  # fuzzy entries are left out, as msgfmt does
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def accepted(header: str) -> str | None:
    """The first of our languages in an Accept-Language header, by its q weights."""
    choices: list[tuple[float, int, str]] = []
    for number, part in enumerate(header.split(",")[:32]):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                weight = float(params[2:])
            except ValueError:
                weight = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary == "in":
            primary = "id"  # the old code for Indonesian, still sent by some Android browsers
        if primary in LANGUAGES and weight > 0:
            choices.append((-weight, number, primary))
    return min(choices)[2] if choices else None


def language(request: web.Request) -> str:
    chosen = request.cookies.get(LANG_COOKIE, "")
    if chosen in LANGUAGES:
        return chosen
    return accepted(request.headers.get("Accept-Language", "")) or DEFAULT_LANGUAGE
