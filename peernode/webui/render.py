"""Templates: one Jinja2 environment per language (autoescaping everything, undefined names an
error), and the context every page gets: language, CSRF token, whether staff is logged in."""

from __future__ import annotations

import gettext
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from protocol import node_id

from ..home import Home
from ..node import NODE
from ..records import BibRecord
from . import auth, loanactions
from .i18n import LANGUAGE_NAMES, LANGUAGES, language, translations
from .security import csrf_seed, csrf_token, remember_csrf_seed, safe_link
from .uploads import Uploads

TEMPLATES = Path(__file__).parent / "templates"
SESSION_COOKIE = "pn_session"
PAGE_CACHE_ENTRIES = 64
MAX_SHOWN_CHARS = 300  # catalogue text in lists is cut here; the entry page shows more


def _when(ms: object) -> str:
    if not isinstance(ms, int | float) or ms <= 0:
        return "—"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _cut(value: object, limit: int = MAX_SHOWN_CHARS) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit].rstrip() + "…"


def _call_numbers(record: BibRecord) -> list[str]:
    """A record's call numbers: its own, then its copies' (each once, at most five)."""
    found = [record.call_number] if record.call_number else []
    for copy in record.holdings[:50]:
        if copy.call_number and copy.call_number not in found:
            found.append(copy.call_number)
    return found[:5]


def make_environment(tr: gettext.NullTranslations) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(tr, newstyle=True)  # type: ignore[attr-defined]
    env.filters["when"] = _when
    env.filters["cut"] = _cut
    env.filters["safe_link"] = safe_link
    env.filters["call_numbers"] = _call_numbers
    # Words marked in Python (loan states and actions, agreement standings), in this language.
    env.filters["tr"] = lambda text: tr.gettext(str(text))
    env.filters["loan_state"] = lambda state: tr.gettext(loanactions.state_label(str(state)))
    env.filters["loan_action"] = lambda a: tr.gettext(loanactions.action_label(str(a)))
    env.filters["loan_service"] = lambda s: tr.gettext(loanactions.service_label(str(s)))
    return env


@dataclass
class WebState:
    """What the web pages keep for the daemon's life."""

    home: Home
    uploads: Uploads
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))  # CSRF tokens' key
    limiter: auth.LoginLimiter = field(default_factory=auth.LoginLimiter)
    envs: dict[str, jinja2.Environment] = field(default_factory=dict)
    record_counts: tuple[float, dict[str, int]] | None = None
    # Short-lived results of reports too costly to run for every reader (each caller says how
    # old a result it takes); bounded, so odd query strings cannot grow it.
    page_cache: dict[tuple[Any, ...], tuple[float, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.envs = {lang: make_environment(translations(lang)) for lang in LANGUAGES}

    def remember(self, key: tuple[Any, ...], value: Any) -> None:
        if len(self.page_cache) >= PAGE_CACHE_ENTRIES:
            self.page_cache.clear()
        self.page_cache[key] = (time.monotonic(), value)


WEB = web.AppKey("webui", WebState)
STAFF = web.RequestKey("staff", str)  # the logged-in account; "" when none (looked up once)


def gettext_for(request: web.Request) -> gettext.NullTranslations:
    return translations(language(request))


async def staff_account(request: web.Request) -> str | None:
    """The logged-in staff account of this request, or None (looked up once per request)."""
    if STAFF not in request:
        token = request.cookies.get(SESSION_COOKIE, "")
        account = None
        if token:
            node = request.app[NODE]
            account = await node.call(auth.session_account, node.store.conn, token)
        request[STAFF] = account or ""
    return request[STAFF] or None


async def render(
    request: web.Request, template: str, *, status: int = 200, **context: Any
) -> web.Response:
    state = request.app[WEB]
    node = request.app[NODE]
    lang = language(request)
    other = next(code for code in LANGUAGES if code != lang)
    base = {
        "lang": lang,
        "other_lang": other,
        "other_lang_name": LANGUAGE_NAMES[other],
        "csrf": csrf_token(state.secret, csrf_seed(request)),
        "staff": await staff_account(request),
        "own_id": node_id(node.public_key),
        "library_name": node.config.name,
        "here": request.path_qs,
        "section": request.path.split("/")[1] if request.path != "/" else "search",
    }
    html = state.envs[lang].get_template(template).render(**base, **context)
    response = web.Response(text=html, content_type="text/html", status=status)
    remember_csrf_seed(request, response)
    response.headers["Content-Language"] = lang
    response.headers["Vary"] = "Cookie, Accept-Language"
    if request.path.startswith("/staff"):
        response.headers["Cache-Control"] = "no-store"
    return response
