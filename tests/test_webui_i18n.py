"""Every string of the web page has its Bahasa Indonesia translation, with the same
placeholders, and the catalogue in the tree is what `python -m tools.i18n` would write."""

from __future__ import annotations

import re

from peernode.webui.i18n import translations
from tools.i18n import extracted, load

PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|\{\w+\}")


def test_every_message_has_an_indonesian_translation() -> None:
    catalog = load()
    missing, mismatched = [], []
    messages = extracted()
    assert len(messages) > 100  # the extractor found the templates, not only the Python
    for msgid in messages:
        key = msgid[0] if isinstance(msgid, tuple) else msgid
        entry = catalog.get(key)
        string = None if entry is None else entry.string
        strings = [string] if isinstance(string, str) else list(string or ())
        if entry is None or entry.fuzzy or not strings or not all(s.strip() for s in strings):
            missing.append(key)
            continue
        for string in strings:
            if sorted(PLACEHOLDER.findall(key)) != sorted(PLACEHOLDER.findall(string)):
                mismatched.append((key, string))
    assert missing == [], f"untranslated (run python -m tools.i18n, then translate): {missing}"
    assert mismatched == []


def test_no_stale_messages_and_the_catalogue_loads() -> None:
    used = {m[0] if isinstance(m, tuple) else m for m in extracted()}
    stale = [
        m.id for m in load() if m.id and (m.id[0] if isinstance(m.id, tuple) else m.id) not in used
    ]
    assert stale == [], "run python -m tools.i18n to drop messages no longer used"
    assert translations("id").gettext("Search") == "Telusur"
    assert translations("en").gettext("Search") == "Search"
