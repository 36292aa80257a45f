"""Peers: inviting, joining, and the peer list. Only peers may open a sync session."""

from __future__ import annotations

import os
import sqlite3
import time

import aiohttp

from protocol import AuthenticationError, DecodeError
from protocol.invites import SECRET_BYTES, Invite, JoinAccept, JoinRequest, invite_id

from .db import transaction
from .home import Home
from .store import now_ms

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


def accept_join(
    home: Home, conn: sqlite3.Connection, data: bytes
) -> tuple[JoinRequest, JoinAccept]:
    """The inviter's side of a join: check the invite, record the joiner, answer signed."""
    request = JoinRequest.from_bytes(data)
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
    return request, JoinAccept.make(home.key, home.config.name, request)


async def join(
    home: Home, conn: sqlite3.Connection, code: str, wait_seconds: float = 15
) -> JoinAccept:
    """The joiner's side: send a JoinRequest to the inviter and record it as a peer."""
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
    add_peer(conn, accept.key, accept.name, invite.address)
    return accept
