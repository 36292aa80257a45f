"""Peers: inviting, joining, and the peer list (the admin's pinned peers). Joining admits both
libraries as members of one network (peernode/members.py)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time

import aiohttp

from protocol import AuthenticationError, DecodeError, short_id
from protocol.invites import SECRET_BYTES, Invite, JoinAccept, JoinRequest, invite_id
from protocol.membership import REVOKED

from . import members
from .db import transaction
from .home import Home
from .store import OwnHeadUnconfirmed, Store, now_ms

JOIN_PATH = "/peer/join"
JOIN_CONTENT_TYPE = "application/x-peernode-join"


class PeeringError(Exception):
    """Joining failed; the message says why in words a librarian can act on."""


def create_invite(home: Home, conn: sqlite3.Connection) -> Invite:
    address = home.advertised_address
    host = address.rpartition(":")[0].strip("[]")
    if host in ("0.0.0.0", "::", ""):
        raise PeeringError(
            f"this node listens on {address}, which other libraries cannot dial: set `advertise` "
            "in peernode.toml to the address they reach you at (for example 192.0.2.10:8470)"
        )
    secret = os.urandom(SECRET_BYTES)
    created = now_ms()
    expires = created + home.config.invite_hours * 3600 * 1000
    with transaction(conn):
        conn.execute(
            "INSERT INTO invites (id, secret, created_at, expires_at) VALUES (?, ?, ?, ?)",
            (invite_id(secret), secret, created, expires),
        )
    return Invite(address, home.public_key, secret)


def add_peer(conn: sqlite3.Connection, key: bytes, name: str, address: str | None) -> None:
    with transaction(conn):
        conn.execute(
            "INSERT INTO peers (key, name, address, added_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET name = excluded.name, "
            "address = COALESCE(excluded.address, peers.address)",
            (key, name, address or None, now_ms()),
        )


def peer_keys(conn: sqlite3.Connection) -> set[bytes]:
    return {key for (key,) in conn.execute("SELECT key FROM peers")}


def accept_join(home: Home, store: Store, data: bytes) -> tuple[JoinRequest, JoinAccept]:
    """The inviter's side of a join: check the invite, record the joiner, admit it as a member
    (a signed statement that replicates), and answer signed, naming our network's founders."""
    request = JoinRequest.from_bytes(data)
    conn = store.conn
    _refuse_excluded(store, request.key)
    with transaction(conn):
        row = conn.execute(
            "SELECT expires_at, used_at, secret FROM invites WHERE id = ?",
            (request.invite_id,),
        ).fetchone()
        if row is None:
            raise AuthenticationError("unknown invite: it was never made here, or already used")
        expires_at, used_at, secret = row
        if used_at is not None:
            raise AuthenticationError("this invite was already used: ask for a new one")
        if expires_at < now_ms():
            raise AuthenticationError("this invite has expired: ask for a new one")
        request.verify(secret, home.public_key)
        conn.execute(
            "UPDATE invites SET used_at = ?, used_by = ?, secret = NULL WHERE id = ?",
            (now_ms(), request.key, request.invite_id),
        )
        conn.execute(
            "INSERT INTO peers (key, name, address, added_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET name = excluded.name, address = excluded.address",
            (request.key, request.name, request.address or None, now_ms()),
        )
    admit_peer(store, home, request.key, request.name)
    founders = tuple(members.founders(conn))
    return request, JoinAccept.make(home.key, home.config.name, request, founders)


def _refuse_excluded(store: Store, key: bytes) -> None:
    """A blocked or revoked key may not join here, whatever invite it holds."""
    if key in members.blocked(store.conn):
        raise AuthenticationError(f"{short_id(key)} is on this library's block list")
    if members.load(store).status(key) == REVOKED:
        raise AuthenticationError(
            f"{short_id(key)} revoked its own key (declared it stolen): join with a new key"
        )


def admit_peer(store: Store, home: Home, key: bytes, name: str) -> None:
    """Vouch for a library we just peered with. A node restored from a backup signs nothing
    until it has synced (store.OwnHeadUnconfirmed); the peer stays trusted as a pinned peer,
    and `peernode member admit` can vouch for it later."""
    with contextlib.suppress(OwnHeadUnconfirmed):
        members.admit_if_new(store, home.key, key, name)


async def join(home: Home, store: Store, code: str, wait_seconds: float = 15) -> JoinAccept:
    """The joiner's side: send a JoinRequest to the inviter, record it as a peer, and admit it
    as a member. A fresh node (one that has admitted nobody) adopts the inviter's founders."""
    try:
        invite = Invite.parse(code)
    except ValueError as exc:
        raise PeeringError(str(exc)) from None
    if invite.key == home.public_key:
        raise PeeringError("this invite was made by this very node: give it to another library")
    config = home.config
    request = JoinRequest.make(
        invite, home.key, config.name, home.advertised_address, os.urandom(32)
    )
    url = f"http://{invite.address}{JOIN_PATH}"
    started = time.monotonic()
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=wait_seconds)) as http,
            http.post(
                url, data=request.to_bytes(), headers={"Content-Type": JOIN_CONTENT_TYPE}
            ) as response,
        ):
            body = await response.read()
            if response.status != 200:
                reason = body.decode("utf-8", "replace")[:300]
                raise PeeringError(f"{invite.address} refused the invite: {reason}")
    except (aiohttp.ClientError, TimeoutError) as exc:
        waited = time.monotonic() - started
        raise PeeringError(
            f"could not reach the inviting library at {invite.address} ({type(exc).__name__} "
            f"after {waited:.0f} s): is its peernode daemon running and reachable?"
        ) from None
    try:
        accept = JoinAccept.from_bytes(body)
        accept.verify(request, invite)
    except (DecodeError, AuthenticationError) as exc:
        raise PeeringError(f"the answer from {invite.address} is not valid: {exc}") from None
    add_peer(store.conn, accept.key, accept.name, invite.address)
    if members.is_fresh(store):
        members.adopt_founders(store, accept.founders or (accept.key,))
    admit_peer(store, home, accept.key, accept.name)
    return accept
