"""LAN discovery: announce this node over mDNS (DNS-SD) and note the nodes others announce.

A node announces ``_peernode._tcp.local.`` at the address peers should dial, with its node id,
protocol version and library name in the TXT record, and browses for the same type. What it
finds is a sighting, never trust: it goes into the ``discovered`` table for `peer list` and
`status`, and nowhere else. It is not added to ``peers``, not dialled, not replicated. Only when a
librarian admits it (invite/join, or `peer add NODE_ID`, which may take the discovered address)
does the node dial it, and then the session demands the advertised key: a node that announces
another library's id at its own address fails the handshake (AuthenticationError).

Everything in another node's TXT record is hostile input: it is bounded, checked, and dropped
with a debug line naming the sender's address when it does not parse. All of it runs on the
daemon's event loop with zeroconf's asyncio API; SQLite writes go through ``Node.call``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass

from aiohttp import web
from zeroconf import (
    BadTypeInNameException,
    InterfaceChoice,
    IPVersion,
    NonUniqueNameException,
    ServiceStateChange,
    Zeroconf,
)
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from protocol import PROTOCOL_VERSION, node_id, parse_node_id, short_id

from .db import transaction
from .home import Config, HomeError, parse_listen
from .node import NODE, Node
from .store import now_ms

log = logging.getLogger("peernode.discovery")

SERVICE_TYPE = "_peernode._tcp.local."
TXT_ID, TXT_VERSION, TXT_NAME = b"id", b"v", b"name"
MAX_NAME_CHARS = 64  # a library name shown in `peer list`; longer ones are cut
MAX_TXT_KEYS = 16  # ours has 3; a record with many more is not a peernode's
MAX_VERSION_CHARS = 6
MAX_TRACKED = 256  # services followed at once: a flood of fake ones cannot grow memory
MAX_ROWS = 256  # rows kept in the discovered table; the oldest go first
RESOLVE_SLOTS = 8  # concurrent lookups of announced services
RESOLVE_TIMEOUT_MS = 3000
# Our records' TTL: a node that vanishes without a goodbye drops out of others' caches in two
# minutes, not zeroconf's default 75; browsers re-ask at ~80% of it, a few packets a minute.
ADVERT_TTL = 120
REFRESH_SECONDS = 60.0  # how often live sightings get a new last_seen
FORGET_MS = 24 * 3600 * 1000  # rows older than this are deleted
CLOSE_SECONDS = 3.0  # the most shutdown waits for goodbye packets


class BadAdvert(ValueError):
    """Another node's announcement that is not a usable peernode advert; the message says why."""


@dataclass(frozen=True)
class Sighting:
    """A node that announced itself on the LAN: who it claims to be, and where."""

    key: bytes
    name: str
    address: str  # HOST:PORT, as `peer add --address` takes it
    version: int


@dataclass(frozen=True)
class Plan:
    """What discovery does for a node's settings, decided before any socket is opened."""

    interfaces: list[str] | None  # None: every interface (the node listens on a wildcard)
    ip_version: IPVersion
    announce: tuple[str, int] | None  # the address announced; None: browse only
    note: str  # why it does not announce, or ""


# --- TXT records -------------------------------------------------------------------------------


def txt_properties(key: bytes, name: str) -> dict[bytes, bytes]:
    """Our TXT record: node id, protocol version, and the library name cut to fit."""
    return {
        TXT_ID: node_id(key).encode("ascii"),
        TXT_VERSION: str(PROTOCOL_VERSION).encode("ascii"),
        TXT_NAME: _clean_name(name).encode("utf-8"),
    }


def parse_advert(
    properties: Mapping[bytes, bytes | None], addresses: Sequence[str], port: int | None
) -> Sighting:
    """Check another node's TXT record and address; BadAdvert says what is wrong with it."""
    if len(properties) > MAX_TXT_KEYS:
        raise BadAdvert(f"TXT record has {len(properties)} keys, more than {MAX_TXT_KEYS}")
    raw_id = properties.get(TXT_ID)
    if not raw_id:
        raise BadAdvert("TXT record has no node id")
    if len(raw_id) > 80:
        raise BadAdvert(f"node id is {len(raw_id)} bytes long")
    try:
        key = parse_node_id(raw_id.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise BadAdvert(f"node id {raw_id[:80]!r} is not a node id") from None
    raw_version = properties.get(TXT_VERSION) or b""
    if not (0 < len(raw_version) <= MAX_VERSION_CHARS and raw_version.isdigit()):
        raise BadAdvert(f"protocol version {raw_version[:20]!r} is not a number")
    version = int(raw_version)
    if version != PROTOCOL_VERSION:
        raise BadAdvert(f"speaks protocol version {version}, this node {PROTOCOL_VERSION}")
    name = _clean_name((properties.get(TXT_NAME) or b"").decode("utf-8", "replace"))
    if port is None or not 0 < port < 65536:
        raise BadAdvert(f"port {port} is not a TCP port")
    return Sighting(key, name or short_id(key), f"{_pick_host(addresses)}:{port}", version)


def _clean_name(name: str) -> str:
    """At most MAX_NAME_CHARS printable characters: a name is printed to a terminal as it is."""
    return "".join(c if c.isprintable() else "?" for c in name.strip())[:MAX_NAME_CHARS]


def _pick_host(addresses: Sequence[str]) -> str:
    """The first address another node could really be dialled at (IPv4 before IPv6)."""
    for text in addresses[:16]:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            continue
        if ip.is_loopback or ip.is_unspecified or ip.is_multicast:
            continue  # on a LAN these are mistakes or tricks aimed at this computer
        if isinstance(ip, ipaddress.IPv6Address) and (ip.is_link_local or ip.scope_id):
            continue  # its %scope names an interface of the sender, not one of ours
        return f"[{ip}]" if ip.version == 6 else str(ip)
    raise BadAdvert(f"no usable address among {list(addresses[:4])}")


# --- what to do, from the settings -------------------------------------------------------------


def plan(config: Config, listen: str) -> Plan | str:
    """How discovery runs for these settings, or a sentence saying why it does not."""
    if config.discovery != "yes":
        return "LAN discovery is off (setting `discovery`)"
    try:
        host, _ = parse_listen(listen)
        ad_host, ad_port = parse_listen(config.advertise or listen)
    except HomeError as exc:
        return str(exc)
    listen_ip = _ip(host)
    if host in ("localhost",) or (listen_ip is not None and listen_ip.is_loopback):
        return (
            f"this node listens on {listen}, which only this computer can reach, so it neither "
            "announces itself nor looks for libraries on the local network"
        )
    if listen_ip is None or listen_ip.is_unspecified:
        interfaces, version = None, IPVersion.V4Only
    else:
        interfaces = [str(listen_ip)]
        version = IPVersion.V6Only if listen_ip.version == 6 else IPVersion.V4Only
    ad_ip = _ip(ad_host)
    if ad_ip is not None and (ad_ip.is_unspecified or ad_ip.is_loopback):
        note = (
            f"not announcing this node: it would be reached at {ad_host}, which no other "
            "computer can dial; set `advertise` to this computer's LAN address"
        )
        return Plan(interfaces, version, None, note)
    return Plan(interfaces, version, (ad_host, ad_port), "")


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


# --- the running part --------------------------------------------------------------------------


class Discovery:
    """Announce this node and follow the others' announcements, until cancelled."""

    def __init__(self, node: Node, plan: Plan) -> None:
        self.node = node
        self.plan = plan
        self._live: dict[str, Sighting] = {}  # service name -> what it last said
        self._resolving: set[str] = set()
        self._slots = asyncio.Semaphore(RESOLVE_SLOTS)
        self._tasks: set[asyncio.Task[None]] = set()
        self._zc: AsyncZeroconf | None = None

    async def run(self) -> None:
        plan = self.plan
        aiozc = AsyncZeroconf(
            interfaces=plan.interfaces or InterfaceChoice.All, ip_version=plan.ip_version
        )
        self._zc = aiozc
        browser = AsyncServiceBrowser(aiozc.zeroconf, SERVICE_TYPE, handlers=[self._on_change])
        try:
            if plan.announce is not None:
                await self._announce(aiozc, *plan.announce)
            else:
                log.info("%s%s", plan.note[0].upper(), plan.note[1:])
            while True:
                await asyncio.sleep(REFRESH_SECONDS)
                await self._refresh()
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            try:
                async with asyncio.timeout(CLOSE_SECONDS):
                    await browser.async_cancel()
                    await aiozc.async_close()  # goodbyes: others drop us at once
            except TimeoutError:
                log.debug("mDNS goodbyes took longer than %s s", CLOSE_SECONDS)

    async def _announce(self, aiozc: AsyncZeroconf, host: str, port: int) -> None:
        node = self.node
        addresses = await _resolve(host)
        if not addresses:
            log.warning(
                "not announcing this node: %s does not resolve to an address; set "
                "`advertise` to this computer's LAN address",
                host,
            )
            return
        compact = node_id(node.public_key).replace("-", "")
        info = AsyncServiceInfo(
            SERVICE_TYPE,
            f"pn-{compact}.{SERVICE_TYPE}",
            port=port,
            properties=txt_properties(node.public_key, node.config.name),
            server=f"pn-{compact[:16].lower()}.local.",
            parsed_addresses=addresses,
            host_ttl=ADVERT_TTL,
            other_ttl=ADVERT_TTL,
        )
        try:
            # Another announcer may hold our name (a copy, or someone squatting it): then
            # zeroconf picks a free one, and the TXT id still says who we are.
            announced = await aiozc.async_register_service(info, allow_name_change=True)
            await announced  # probed and announced: others can see us from now on
        except NonUniqueNameException:
            log.warning("no free mDNS name to announce this node under")
            return
        log.info(
            "announcing %s on the local network (mDNS) at %s",
            short_id(node.public_key),
            ", ".join(f"{a}:{port}" for a in addresses),
        )

    def _on_change(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        """The browser's callback, on the event loop: start a lookup, never wait here."""
        if state_change is ServiceStateChange.Removed:
            self._live.pop(name, None)
            return
        if name in self._resolving:
            return
        if name not in self._live and len(self._live) >= MAX_TRACKED:
            log.debug("ignoring the announcement %.80r: already following %d", name, MAX_TRACKED)
            return
        self._resolving.add(name)
        task = asyncio.get_running_loop().create_task(self._lookup(name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _lookup(self, name: str) -> None:
        try:
            async with self._slots:
                await self._lookup_now(name)
        finally:
            self._resolving.discard(name)

    async def _lookup_now(self, name: str) -> None:
        assert self._zc is not None
        try:
            info = AsyncServiceInfo(SERVICE_TYPE, name)
        except BadTypeInNameException:
            log.debug("ignoring the announcement %.80r: not a %s name", name, SERVICE_TYPE)
            return
        if not await info.async_request(self._zc.zeroconf, RESOLVE_TIMEOUT_MS):
            log.debug("%.80r did not answer within %d ms", name, RESOLVE_TIMEOUT_MS)
            return
        addresses = info.parsed_scoped_addresses()
        try:
            sighting = parse_advert(info.properties, addresses, info.port)
        except BadAdvert as exc:
            where = ", ".join(addresses[:4]) or "no address"
            log.debug("ignoring the announcement %.80r from %s: %s", name, where, exc)
            return
        if sighting.key == self.node.public_key:
            return  # our own announcement, looped back
        first = name not in self._live or self._live[name] != sighting
        self._live[name] = sighting
        await self.node.call(record_sightings, self.node.store.conn, [sighting], now_ms())
        if first:
            admitted = "a peer" if self.node.is_peer(sighting.key) else "not a peer"
            log.info(
                "seen on the local network: %s (%s) at %s, %s",
                sighting.name,
                short_id(sighting.key),
                sighting.address,
                admitted,
            )

    async def _refresh(self) -> None:
        """Renew last_seen for nodes whose announcement is still live; forget old rows."""
        live = [s for s in self._live.values() if s.key != self.node.public_key]
        await self.node.call(record_sightings, self.node.store.conn, live, now_ms())


def record_sightings(conn: sqlite3.Connection, sightings: Sequence[Sighting], now: int) -> None:
    """Store what was seen at ``now`` (one transaction), and keep the table bounded."""
    with transaction(conn):
        conn.executemany(
            "INSERT INTO discovered (key, name, address, version, first_seen, last_seen) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET name = excluded.name, "
            "address = excluded.address, version = excluded.version, "
            "last_seen = excluded.last_seen",
            [(s.key, s.name, s.address, s.version, now, now) for s in sightings],
        )
        conn.execute("DELETE FROM discovered WHERE last_seen < ?", (now - FORGET_MS,))
        conn.execute(
            "DELETE FROM discovered WHERE key NOT IN "
            "(SELECT key FROM discovered ORDER BY last_seen DESC LIMIT ?)",
            (MAX_ROWS,),
        )


async def _resolve(host: str) -> list[str]:
    """``host`` as addresses, without blocking the loop (getaddrinfo runs in a thread)."""
    if _ip(host) is not None:
        return [host]
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return sorted({str(info[4][0]) for info in infos})


# --- the daemon's background task --------------------------------------------------------------


def discovery_context(listen: str) -> Callable[[web.Application], AsyncIterator[None]]:
    """A ``cleanup_ctx`` entry: discovery runs while the app does, for the daemon's address."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        node = app[NODE]
        decided = plan(node.config, listen)
        if isinstance(decided, str):
            log.info("%s%s", decided[0].upper(), decided[1:])
            yield
            return
        task = asyncio.get_running_loop().create_task(Discovery(node, decided).run())
        task.add_done_callback(_report_failure)
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    return context


def _report_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        log.warning("discovery stopped: %s: %s (sync with peers goes on)", type(exc).__name__, exc)
