"""Wiring: the web pages' routes, static files and security middleware on the daemon's app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from ..home import Home
from . import catalogpages, cooppages, loanpages, public, staff
from .render import WEB, WebState
from .security import allowed_names, security_middleware
from .uploads import Uploads

STATIC = Path(__file__).parent / "static"


def setup_webui(app: web.Application, home: Home) -> None:
    """Add the web pages to the daemon's ``app`` (call before the app starts)."""
    config = home.config
    names = allowed_names(config)
    app[WEB] = WebState(home, Uploads(home))
    app.middlewares.append(security_middleware(lambda: names))

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        yield
        await app[WEB].uploads.close()

    app.cleanup_ctx.append(lifecycle)
    router = app.router
    router.add_get("/", public.search_page)
    router.add_get("/search", public.search_page)
    router.add_get("/entry", public.entry_page)
    router.add_get("/libraries", public.libraries_page)
    router.add_get("/library", public.library_page)
    router.add_get("/lang", public.switch_language)
    router.add_static("/static/", STATIC, append_version=False)
    router.add_get("/staff/login", staff.login_page)
    router.add_post("/staff/login", staff.login)
    router.add_post("/staff/logout", staff.logout)
    router.add_get("/staff", staff.dashboard)
    router.add_get("/staff/import", staff.import_page)
    router.add_post("/staff/import", staff.import_upload)
    router.add_get("/staff/import/{job:[0-9a-f]{16}}", staff.import_job_page)
    router.add_get("/staff/import/{job:[0-9a-f]{16}}.json", staff.import_job_json)
    router.add_get("/staff/peers", staff.peers_page)
    router.add_post("/staff/peers/invite", staff.make_invite)
    router.add_post("/staff/peers/join", staff.join_network)
    router.add_get("/staff/network", staff.network_page)
    router.add_get("/staff/alerts", staff.alerts_page)
    loanpages.add_routes(router)
    cooppages.add_routes(router)
    catalogpages.add_routes(router)
