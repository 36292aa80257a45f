"""The staff pages, behind the login: import a catalogue file, peers and invitations, the
network map and alerts (loans: loanpages.py; statistics and agreements: cooppages.py).

Every POST carries the page's CSRF token; a form without a valid one is refused before anything
else is read. Login failures are rate-limited per client address.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import BodyPartReader, web

from ..node import NODE
from ..peers import PeeringError, create_invite, join
from ..store import now_ms
from . import auth, meshmap, queries
from .render import SESSION_COOKIE, WEB, gettext_for, render, staff_account
from .security import CSRF_FIELD, csrf_ok, local_path
from .uploads import UploadError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_CODE_CHARS = 2000


def staff_only(handler: Handler) -> Handler:
    async def wrapper(request: web.Request) -> web.StreamResponse:
        if await staff_account(request) is None:
            target = urllib.parse.quote(request.path_qs, safe="")
            raise web.HTTPSeeOther(f"/staff/login?next={target}")
        return await handler(request)

    return wrapper


async def refuse_csrf(request: web.Request) -> web.Response:
    return await render(request, "refused.html", status=403)


async def checked_form(request: web.Request) -> dict[str, str] | None:
    """The POSTed form if its CSRF token is valid, else None (the caller answers 403)."""
    form = await request.post()
    if not csrf_ok(request.app[WEB].secret, request, form.get(CSRF_FIELD)):
        return None
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _client(request: web.Request) -> str:
    return request.remote or "unknown"


async def login_page(request: web.Request) -> web.Response:
    node = request.app[NODE]
    has_password = await node.call(auth.password_is_set, node.store.conn)
    return await render(
        request,
        "login.html",
        next=local_path(request.query.get("next"), "/staff"),
        has_password=has_password,
        error="",
    )


async def login(request: web.Request) -> web.StreamResponse:
    form = await checked_form(request)
    if form is None:
        return await refuse_csrf(request)
    state = request.app[WEB]
    node = request.app[NODE]
    tr = gettext_for(request)
    target = local_path(form.get("next"), "/staff")
    wait = state.limiter.blocked_for(_client(request))
    if wait > 0:
        error = tr.gettext("Too many failed attempts. Try again in %(minutes)d minutes.") % {
            "minutes": int(wait // 60) + 1
        }
        return await render(
            request, "login.html", status=429, next=target, has_password=True, error=error
        )
    password = form.get("password", "")[: auth.MAX_PASSWORD_CHARS]
    # scrypt runs on a worker thread of its own: ~50 ms must not stall the event loop or the
    # database thread.
    stored = await node.call(_stored_password, node.store.conn)
    ok = stored is not None and await asyncio.to_thread(auth.verify_password, password, stored)
    if not ok:
        state.limiter.failed(_client(request))
        error = tr.gettext("Wrong password.")
        return await render(
            request,
            "login.html",
            status=403,
            next=target,
            has_password=stored is not None,
            error=error,
        )
    state.limiter.succeeded(_client(request))
    token = await node.call(auth.open_session, node.store.conn)
    response = web.HTTPSeeOther(target)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        path="/",
        max_age=auth.SESSION_HOURS * 3600,
    )
    raise response


def _stored_password(conn: Any) -> str | None:
    row = conn.execute(
        "SELECT password FROM staff_accounts WHERE name = ?", (auth.STAFF,)
    ).fetchone()
    return None if row is None else str(row[0])


async def logout(request: web.Request) -> web.StreamResponse:
    form = await checked_form(request)
    if form is None:
        return await refuse_csrf(request)
    node = request.app[NODE]
    token = request.cookies.get(SESSION_COOKIE, "")
    if token:
        await node.call(auth.close_session, node.store.conn, token)
    response = web.HTTPSeeOther("/")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


@staff_only
async def dashboard(request: web.Request) -> web.Response:
    node = request.app[NODE]
    status = await node.status()
    return await render(request, "staff.html", node_status=status)


# --- import ------------------------------------------------------------------------------------


@staff_only
async def import_page(request: web.Request) -> web.Response:
    state = request.app[WEB]
    jobs = list(reversed(state.uploads.jobs.values()))
    return await render(
        request,
        "import.html",
        jobs=jobs,
        busy=state.uploads.busy,
        limit_mb=request.app[NODE].config.web_upload_mb,
        error="",
    )


@staff_only
async def import_upload(request: web.Request) -> web.StreamResponse:
    """multipart/form-data: the CSRF field first, then the file, streamed to disk."""
    state = request.app[WEB]
    node = request.app[NODE]
    tr = gettext_for(request)
    limit_mb = node.config.web_upload_mb
    try:
        reader = await request.multipart()
        first = await reader.next()
        if not isinstance(first, BodyPartReader) or first.name != CSRF_FIELD:
            return await refuse_csrf(request)
        token = (await first.read(decode=True))[:200].decode("ascii", "replace")
        if not csrf_ok(state.secret, request, token):
            return await refuse_csrf(request)
        part = await reader.next()
        if not isinstance(part, BodyPartReader) or part.name != "file":
            raise UploadError(tr.gettext("Choose a catalogue file to upload."))
        if state.uploads.busy:
            raise UploadError(tr.gettext("Another import is running. Wait until it ends."))
        try:
            job, path = await state.uploads.receive(part, limit_mb * 1024 * 1024)
        except UploadError as exc:
            if str(exc) == "empty":
                raise UploadError(tr.gettext("The file is empty.")) from None
            raise UploadError(
                tr.gettext("The file is larger than %(mb)d MiB: import it with the command line.")
                % {"mb": limit_mb}
            ) from None
    except (UploadError, ValueError) as exc:
        message = str(exc) if isinstance(exc, UploadError) else tr.gettext("Not a valid upload.")
        return await render(
            request,
            "import.html",
            status=400,
            jobs=list(reversed(state.uploads.jobs.values())),
            busy=state.uploads.busy,
            limit_mb=limit_mb,
            error=message,
        )
    state.uploads.start(job, path)
    raise web.HTTPSeeOther(f"/staff/import/{job.id}")


@staff_only
async def import_job_page(request: web.Request) -> web.Response:
    job = request.app[WEB].uploads.jobs.get(request.match_info["job"])
    if job is None:
        return await render(request, "not_found.html", status=404)
    return await render(request, "import_job.html", job=job)


@staff_only
async def import_job_json(request: web.Request) -> web.Response:
    job = request.app[WEB].uploads.jobs.get(request.match_info["job"])
    if job is None:
        raise web.HTTPNotFound(text="no such import")
    return web.json_response(job.as_dict(), headers={"Cache-Control": "no-store"})


# --- peers -------------------------------------------------------------------------------------


async def _peers_page(request: web.Request, **extra: Any) -> web.Response:
    node = request.app[NODE]
    status = await node.status()
    context: dict[str, Any] = {"invite": "", "error": "", "notice": ""}
    context.update(extra)
    return await render(
        request, "peers.html", peers=status["peers"], node_id=status["node_id"], **context
    )


@staff_only
async def peers_page(request: web.Request) -> web.Response:
    return await _peers_page(request)


@staff_only
async def make_invite(request: web.Request) -> web.Response:
    form = await checked_form(request)
    if form is None:
        return await refuse_csrf(request)
    node = request.app[NODE]
    try:
        invite = await node.call(create_invite, node.home, node.store.conn)
    except PeeringError as exc:
        return await _peers_page(request, error=str(exc))
    return await _peers_page(request, invite=invite.code)


@staff_only
async def join_network(request: web.Request) -> web.Response:
    form = await checked_form(request)
    if form is None:
        return await refuse_csrf(request)
    node = request.app[NODE]
    tr = gettext_for(request)
    code = form.get("code", "").strip()[:MAX_CODE_CHARS]
    if not code:
        return await _peers_page(request, error=tr.gettext("Paste the invite code first."))
    # Joining talks to the inviter over the network and writes: on a thread with its own
    # connection, as `peer join` would, so the database thread is not held for the round trip.
    try:
        accept = await asyncio.to_thread(_join, node.home, code)
    except PeeringError as exc:
        return await _peers_page(request, error=str(exc))
    await node.signed_here()
    await node.start_dialers()
    notice = tr.gettext("Joined %(name)s. This node now syncs with it.") % {"name": accept}
    return await _peers_page(request, notice=notice)


def _join(home: Any, code: str) -> str:
    store = home.open_store()
    try:
        accept = asyncio.run(join(home, store, code))
        return str(accept.name)
    finally:
        store.conn.close()


# --- network, alerts ----------------------------------------------------------------------------


@staff_only
async def network_page(request: web.Request) -> web.Response:
    node = request.app[NODE]
    tr = gettext_for(request)
    nodes = await node.call(
        queries.mesh, node.store, node.public_key, node.config.name, set(node.connections)
    )
    alive_ms = int(node.liveness.idle_seconds * 1000)
    drawing = meshmap.draw(nodes, now_ms(), alive_ms, tr.gettext("{n} behind"))
    states = {d.node_id: d.state for d in drawing.dots}
    return await render(request, "network.html", map=drawing, nodes=nodes, states=states)


@staff_only
async def alerts_page(request: web.Request) -> web.Response:
    node = request.app[NODE]
    data = await node.call(queries.alerts, node.store.conn)
    return await render(request, "alerts.html", **data)
