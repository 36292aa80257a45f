"""A node's home directory: its key, its settings, its database, and the daemon's lock.

HOME/node.key       Ed25519 private key, PKCS#8 PEM, mode 0600 (the library's identity)
HOME/peernode.toml  settings (see SETTINGS; each can be overridden by PEERNODE_<NAME>)
HOME/node.db        the SQLite replica (WAL)
HOME/daemon.lock    held (flock) by the running daemon
"""

from __future__ import annotations

import fcntl
import os
import stat
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import IO, Any

import platformdirs
import sqlite_utils
import tomli_w
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from protocol import PROFILE, node_id, public_bytes
from protocol.sealing import box_public_key

from . import db as dbmod
from .files import replacing
from .mesh import PROFILE_LOG, advertisable, profile_body
from .store import DEFAULT_SYNC_CACHE_MB, Store

DEFAULT_PORT = 8470
DEFAULT_LISTEN = f"127.0.0.1:{DEFAULT_PORT}"
KEY_FILE, CONFIG_FILE, DB_FILE, LOCK_FILE = "node.key", "peernode.toml", "node.db", "daemon.lock"


class HomeError(Exception):
    """The home directory is missing, incomplete or unsafe; the message says what to do."""


@dataclass(frozen=True)
class Config:
    """Settings in peernode.toml. Field docs are the documentation (docs/configuration.md)."""

    name: str = ""  # the library's name, shown to every member
    isil: str = ""  # ISIL code (ISO 15511), if the library has one
    contact: str = ""  # how other libraries reach the staff (email, phone)
    listen: str = DEFAULT_LISTEN  # HOST:PORT the daemon serves sync, API and web page on
    advertise: str = ""  # HOST:PORT peers should dial, if not the listen address
    invite_hours: int = 168  # how long an invite code stays valid
    max_db_mb: int = 0  # stop writing when the database reaches this size; 0 = no limit
    compress: str = "yes"  # yes or no: deflate sync messages (catalogue text shrinks ~3x)
    upload_kbps: int = 0  # most kbit/s sent to each peer; 0 = no limit
    heartbeat_seconds: int = 30  # signed heartbeat interval; 3 silent intervals close a link
    max_connections: int = 64  # most open sync connections; more are answered 503
    discovery: str = "yes"  # yes or no: announce this node on the LAN (mDNS), list nodes seen
    max_peers: int = 8  # most peers dialled; admin-added peers always, gossip-learned fill up
    log_level: str = "info"  # debug, info, warning or error
    log_format: str = "text"  # text, or json (one object a line, for log collectors)
    oai_page_size: int = 100  # records per OAI-PMH list response (1..1000)
    web_hosts: str = ""  # extra host names the web page answers to, comma-separated
    web_upload_mb: int = 200  # largest catalogue file staff may upload on the web page
    sync_cache_mb: int = DEFAULT_SYNC_CACHE_MB  # SQLite's page cache while a sync brings records


SETTINGS: dict[str, str] = {
    "name": "The library's name, shown to every member of the network.",
    "isil": "The library's ISIL code (ISO 15511), if it has one.",
    "contact": "How other libraries reach the staff: an email address or phone number.",
    "listen": "HOST:PORT the daemon listens on for sync, the API and the web page.",
    "advertise": "HOST:PORT that peers should dial, when it differs from listen (NAT, 0.0.0.0).",
    "invite_hours": "How many hours an invite code from `peer invite` stays valid.",
    "log_level": "How much the daemon logs: debug, info, warning or error.",
    "log_format": "How the daemon writes its log: text (for people) or json (one object a line, "
    "for log collectors).",
    "max_db_mb": "Largest size of the database in MiB; writes past it stop cleanly, as on a full "
    "disk (0: no limit). Useful on a shared PC.",
    "compress": "yes or no: compress sync messages (deflate, before they are encrypted). "
    "Catalogue records shrink about 3x; turn it off only on a fast LAN with a slow CPU.",
    "upload_kbps": "The most kilobits per second sent to each peer (0: no limit), so sync "
    "leaves room on a shared, slow line.",
    "heartbeat_seconds": "How often this node sends its signed heartbeat (peers pass members' "
    "heartbeats on, so `peer list` shows who is alive across the network). A connection that "
    "sends nothing for three times this long, or an HTTP client that dawdles that long, is "
    "closed. Use the same value on every node of a network.",
    "max_connections": "The most sync connections open at once, inbound and outbound; a "
    "connection beyond it is answered 503 and counted in `status`.",
    "discovery": "yes or no: announce this node on the local network (mDNS, "
    "`_peernode._tcp`) and list the libraries it sees there. A library found this way is only "
    "shown (`peer list`); nothing is exchanged with it until it is invited. Off by itself when "
    "the node listens on 127.0.0.1.",
    "max_peers": "How many peers this node keeps dialling. Peers added by `peer join` or `peer "
    "add --address` are always dialled and count first; the rest of the slots go to members "
    "whose address arrived in their signed profile (peer exchange), chosen at random.",
    "oai_page_size": "How many records (or headers) one OAI-PMH list response at /oai holds, "
    "1 to 1000; a harvester fetches the rest with the resumption token it is given.",
    "web_hosts": "Extra host names the web page answers to, comma-separated (for example "
    "katalog.perpus.local), besides localhost, the listen and advertise hosts and the address a "
    "reader connected to. Any other name is refused (421), which stops DNS rebinding attacks.",
    "web_upload_mb": "The largest catalogue file, in MiB, that staff may upload on the web page; "
    "larger files are refused while they arrive. Import bigger ones with `catalog import`.",
    "sync_cache_mb": "MiB of memory the database may keep as cache while a sync brings records "
    "(at least 2). More makes a large first sync faster; the memory goes back to the system five "
    "seconds after the last batch. Lower it on a PC with little memory.",
}


def key_file_problem(path: Path) -> str | None:
    """Why the key file at ``path`` must not be used as it is; None when only its owner reads it."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return (
            f"The key file {path} can be read by other users of this computer (mode {mode:03o}), "
            f"and anyone who reads it can sign as this library: run `chmod 600 {path}`."
        )
    return None


def resolve_home(option: str | None) -> Path:
    """--home, else $PEERNODE_HOME, else the platform's data directory."""
    if option:
        return Path(option).expanduser()
    env = os.environ.get("PEERNODE_HOME")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("peernode", appauthor=False))


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise HomeError(f"listen address {text!r} must be HOST:PORT, e.g. {DEFAULT_LISTEN}")
    return host.strip("[]"), int(port)


class Home:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._key: Ed25519PrivateKey | None = None

    @property
    def exists(self) -> bool:
        return (self.path / KEY_FILE).exists()

    def require(self) -> Home:
        if not self.exists:
            raise HomeError(
                f"no peernode node in {self.path}: run `peernode --home {self.path} init --name "
                "'Your Library'` first (or pass --home / set PEERNODE_HOME)"
            )
        return self

    # --- key -----------------------------------------------------------------------------------

    @property
    def key(self) -> Ed25519PrivateKey:
        if self._key is None:
            path = self.path / KEY_FILE
            problem = key_file_problem(path)
            if problem is not None:
                raise HomeError(problem)
            try:
                loaded = load_pem_private_key(path.read_bytes(), password=None)
            except ValueError:
                loaded = None
            if not isinstance(loaded, Ed25519PrivateKey):
                raise HomeError(
                    f"The key file {path} is damaged or is not a peernode key: restore it from "
                    "your backup, because without it this library cannot sign its changes."
                )
            self._key = loaded
        return self._key

    @property
    def public_key(self) -> bytes:
        return public_bytes(self.key)

    @property
    def node_id(self) -> str:
        return node_id(self.public_key)

    # --- config --------------------------------------------------------------------------------

    @property
    def config(self) -> Config:
        path = self.path / CONFIG_FILE
        try:
            data: dict[str, Any] = tomllib.loads(path.read_text("utf-8")) if path.exists() else {}
        except tomllib.TOMLDecodeError as exc:
            raise HomeError(f"{path} is not valid TOML: {exc}") from None
        values: dict[str, Any] = {}
        for f in fields(Config):
            raw = os.environ.get(f"PEERNODE_{f.name.upper()}", data.get(f.name))
            if raw is None:
                continue
            try:
                values[f.name] = int(raw) if f.type == "int" else str(raw)
            except ValueError:
                raise HomeError(f"setting {f.name!r} must be a whole number, not {raw!r}") from None
        unknown = sorted(set(data) - {f.name for f in fields(Config)})
        if unknown:
            raise HomeError(f"{path}: unknown setting(s) {', '.join(unknown)}")
        config = Config(**values)
        for name in ("compress", "discovery"):
            value = getattr(config, name)
            if value not in ("yes", "no"):
                raise HomeError(f"{path}: setting {name!r} must be yes or no, not {value!r}")
        for name in ("heartbeat_seconds", "max_connections"):
            if getattr(config, name) < 1:
                raise HomeError(f"{path}: setting {name!r} must be at least 1")
        if config.sync_cache_mb < 2:
            raise HomeError(f"{path}: setting 'sync_cache_mb' must be at least 2")
        return config

    def save_config(self, config: Config) -> None:
        data = {f.name: getattr(config, f.name) for f in fields(Config)}
        with replacing(self.path / CONFIG_FILE) as tmp:
            tmp.write_text(tomli_w.dumps(data), "utf-8")

    @property
    def advertised_address(self) -> str:
        config = self.config
        return config.advertise or config.listen

    # --- database ------------------------------------------------------------------------------

    def open_db(self) -> sqlite_utils.Database:
        return dbmod.connect(self.path / DB_FILE, self.config.max_db_mb)

    def open_store(self) -> Store:
        return Store(self.open_db(), self.public_key, self.config.sync_cache_mb)

    # --- daemon lock ---------------------------------------------------------------------------

    def lock_daemon(self, address: str) -> IO[str]:
        """Take the daemon lock, or raise if another daemon holds it. Keep the handle open.

        The lock file says the daemon's pid and the address it serves, for the CLI to ask it.
        """
        handle = open(self.path / LOCK_FILE, "a+")  # noqa: SIM115 - held for the daemon's life
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise HomeError(f"a peernode daemon is already running for {self.path}") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} {address}\n")
        handle.flush()
        return handle

    def daemon_address(self) -> str | None:
        """HOST:PORT of the running daemon, from its lock file; None when none runs."""
        if not self.daemon_running():
            return None
        parts = (self.path / LOCK_FILE).read_text().split()
        return parts[1] if len(parts) == 2 else None

    def daemon_running(self) -> bool:
        path = self.path / LOCK_FILE
        if not path.exists():
            return False
        with open(path) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False


def init_home(path: Path, *, name: str, isil: str, contact: str, listen: str) -> Home:
    """Create a new node: key pair, settings, database, and the signed library profile."""
    home = Home(path)
    if home.exists:
        raise HomeError(f"{path} already holds a node ({home.node_id}); nothing was changed")
    if not name.strip():
        raise HomeError("--name must not be empty: it is how other libraries see you")
    parse_listen(listen)
    path.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    key_path = path / KEY_FILE
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())
    home.save_config(
        replace(Config(), name=name.strip(), isil=isil, contact=contact, listen=listen)
    )
    publish_profile(home)
    return home


def publish_profile(home: Home) -> bool:
    """Sign the library profile from the settings into our 'profile' log, if it changed.

    The profile carries the advertised address, so members find this node by peer exchange
    (peernode/mesh.py); the daemon calls this at start, when the address may have changed.
    True when a new profile entry was signed.
    """
    config = home.config
    body: dict[str, Any] = {"name": config.name}
    if config.isil:
        body["isil"] = config.isil
    if config.contact:
        body["contact"] = config.contact
    if advertisable(home.advertised_address):
        body["addresses"] = [home.advertised_address]
    body["box_key"] = box_public_key(home.key)  # partners seal loan details to it
    store = home.open_store()
    try:
        if profile_body(store.conn, home.public_key) == body:
            return False
        store.append(home.key, PROFILE_LOG, PROFILE, body)
        return True
    finally:
        store.conn.close()
