"""Keep the web page's Indonesian catalogue in step with the code.

``python -m tools.i18n`` extracts every message of peernode/webui (Python ``gettext`` and
``ngettext`` calls, and ``_``/``gettext``/``ngettext`` in the templates), adds the new ones to
``translations/id/LC_MESSAGES/messages.po`` with an empty translation, and drops the ones no
longer used. Then translate the empty entries; tests/test_webui_i18n.py fails until every
message has one.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
WEBUI = ROOT / "peernode" / "webui"
PO = WEBUI / "translations" / "id" / "LC_MESSAGES" / "messages.po"
METHODS = [("**.py", "python"), ("templates/**.html", "jinja2")]
OPTIONS = {"templates/**.html": {"extensions": "jinja2.ext.i18n"}}
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2)}

MessageId = str | tuple[str, ...]
Message = tuple[MessageId, list[tuple[str, int]]]


def extracted() -> dict[MessageId, list[tuple[str, int]]]:
    """Every message id in the web pages' code, with where it occurs."""
    found: dict[MessageId, list[tuple[str, int]]] = {}
    for message in _extract():
        msgid, where = message
        found.setdefault(msgid, []).extend(where)
    return found


def _extract() -> Iterator[Message]:
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(WEBUI),
        method_map=METHODS,
        options_map=OPTIONS,
        keywords=KEYWORDS,
        strip_comment_tags=True,
    ):
        if message:
            yield message, [(f"peernode/webui/{filename}", lineno)]


def load() -> Catalog:
    with PO.open("rb") as handle:
        return read_po(handle, locale="id")


def update() -> int:
    """Add new messages (untranslated), drop unused ones; returns how many lack a translation."""
    old = load() if PO.exists() else Catalog(locale="id")
    new = Catalog(
        locale="id",
        project="peernode",
        header_comment="# Bahasa Indonesia for the peernode web page. Update: python -m tools.i18n",
    )
    if PO.exists():
        new.creation_date = old.creation_date  # stable headers: a re-run changes no line
        new.revision_date = old.revision_date
    new.fuzzy = False
    for msgid, where in extracted().items():
        previous = old.get(msgid[0] if isinstance(msgid, tuple) else msgid)
        string: str | tuple[str, ...] = ""
        if previous is not None and previous.string:
            string = previous.string if isinstance(previous.string, str) else tuple(previous.string)
        if isinstance(msgid, tuple):
            # Indonesian does not inflect for number: both plural forms carry the same text.
            forms = [string] if isinstance(string, str) else list(string)
            string = (forms[0], forms[0]) if forms else ("", "")
        new.add(msgid, string, locations=sorted(set(where)))
    PO.parent.mkdir(parents=True, exist_ok=True)
    with PO.open("wb") as handle:
        write_po(
            handle, new, width=100, sort_output=True, omit_header=False, include_previous=False
        )
    return sum(1 for m in new if m.id and not _translated(m.string))


def _translated(string: str | tuple[str, ...] | list[str] | None) -> bool:
    if string is None:
        return False
    if isinstance(string, str):
        return bool(string.strip())
    return all(s.strip() for s in string)


def main() -> None:
    missing = update()
    print(f"{PO.relative_to(ROOT)}: {missing} message(s) still need a translation")
    sys.exit(0)


if __name__ == "__main__":
    main()
