"""Backup and restore of a whole node: its key, its settings and its database, in one file.

The database copy comes from SQLite's online backup API, so a backup taken while the daemon
syncs is a consistent snapshot. A restored node may be missing entries it signed after the
backup: until it has learned its own head from a peer, it refuses to sign (see Store.append),
so it can never fork its own log. The key can also be exported alone, under a passphrase.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    PrivateFormat,
    load_pem_private_key,
)

from protocol import node_id, public_bytes

from . import __version__
from . import db as dbmod
from .files import replacing
from .home import CONFIG_FILE, DB_FILE, KEY_FILE, Home, HomeError

MANIFEST = "peernode-backup.json"
BACKUP_FORMAT = 1


class BackupError(Exception):
    """A backup cannot be written or read; the message names the file and says why."""


@dataclass(frozen=True)
class BackupSummary:
    node_id: str
    bytes: int
    entries: int


def backup(home: Home, path: Path) -> BackupSummary:
    """Write key, settings and a consistent copy of the database to ``path`` (a .tar.gz)."""
    home.require()
    with tempfile.TemporaryDirectory(prefix="peernode-backup-") as tmp:
        copy = Path(tmp) / DB_FILE
        source = sqlite3.connect(f"file:{home.path / DB_FILE}?mode=ro", uri=True, timeout=30)
        target = sqlite3.connect(copy)
        try:
            source.backup(target)  # one step: a single consistent snapshot, even mid-sync
            entries = int(target.execute("SELECT count(*) FROM entries").fetchone()[0])
        finally:
            target.close()
            source.close()
        manifest = {
            "format": BACKUP_FORMAT,
            "node_id": home.node_id,
            "created": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "peernode": __version__,
            "schema": dbmod.SCHEMA_VERSION,
            "entries": entries,
        }
        try:
            with replacing(path, mode=0o600) as part, tarfile.open(part, "w:gz") as tar:  # a key
                _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=2).encode())
                tar.add(home.path / KEY_FILE, KEY_FILE)
                tar.add(home.path / CONFIG_FILE, CONFIG_FILE)
                tar.add(copy, DB_FILE)
        except OSError as exc:
            raise BackupError(f"cannot write {path}: {exc.strerror or exc}") from None
    return BackupSummary(home.node_id, path.stat().st_size, entries)


def restore(path: Path, home_path: Path, *, latest: bool = False) -> Home:
    """Recreate the node saved in ``path`` at ``home_path``, which must not hold a node.

    All or nothing: the node is rebuilt in a sibling directory and renamed into place only once
    its key matches the manifest and its database passes the integrity check. ``latest`` says
    nothing was signed after the backup, so the node may sign at once (no sync needed).
    """
    if Home(home_path).exists or (home_path.exists() and any(home_path.iterdir())):
        raise HomeError(
            f"{home_path} is not empty; restore into a new directory (nothing was changed)"
        )
    members = _read_backup(path)
    try:
        manifest = json.loads(members[MANIFEST])
    except ValueError:
        raise BackupError(f"{path}: the backup's manifest is damaged") from None
    if manifest.get("format") != BACKUP_FORMAT:
        raise BackupError(f"{path}: backup format {manifest.get('format')!r} is not supported")
    try:
        key = load_pem_private_key(members[KEY_FILE], password=None)
    except (ValueError, TypeError):
        raise BackupError(f"{path}: the key in the backup is damaged") from None
    if not isinstance(key, Ed25519PrivateKey) or node_id(public_bytes(key)) != manifest.get(
        "node_id"
    ):
        raise BackupError(f"{path}: the key does not belong to the node named in the backup")
    home_path.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{home_path.name}.restoring-", dir=home_path.parent))
    try:
        (building / DB_FILE).write_bytes(members[DB_FILE])
        (building / CONFIG_FILE).write_bytes(members[CONFIG_FILE])
        fd = os.open(building / KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(members[KEY_FILE])
        _check_restored(Home(building), manifest, path, mark=not latest)
        if home_path.exists():
            home_path.rmdir()  # empty, checked above
        building.rename(home_path)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return Home(home_path)


def _check_restored(home: Home, manifest: dict[str, object], path: Path, *, mark: bool) -> None:
    store = home.open_store()  # also migrates a backup made by an older peernode
    try:
        check = store.conn.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            raise BackupError(f"{path}: the database in the backup is damaged ({check})")
        has_peers = store.conn.execute("SELECT count(*) FROM peers").fetchone()[0] > 0
        if mark and has_peers:  # with no peers, nothing newer can exist anywhere to fork from
            when = time.strftime("%Y-%m-%d %H:%M")
            store.mark_restored(f"restored {when} from a backup of {manifest['created']}")
    finally:
        store.conn.close()


def export_key(home: Home, path: Path, passphrase: str) -> None:
    """Write the private key alone, encrypted with ``passphrase`` (PKCS#8, best available)."""
    if len(passphrase) < 8:
        raise BackupError("the passphrase must be at least 8 characters")
    pem = home.key.private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(passphrase.encode())
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)


def _read_backup(path: Path) -> dict[str, bytes]:
    """The four members, read by exact name: nothing in the archive chooses where files go."""
    wanted = {MANIFEST, KEY_FILE, CONFIG_FILE, DB_FILE}
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for info in tar:
                if info.name in wanted and info.isfile() and info.name not in members:
                    extracted = tar.extractfile(info)
                    if extracted is not None:
                        members[info.name] = extracted.read()
    except FileNotFoundError:
        raise BackupError(f"{path}: no such file") from None
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BackupError(f"{path} is not a readable peernode backup ({exc})") from None
    missing = sorted(wanted - set(members))
    if missing:
        raise BackupError(
            f"{path} is not a complete peernode backup (missing {', '.join(missing)})"
        )
    return members


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(time.time())
    info.mode = 0o600
    tar.addfile(info, io.BytesIO(data))
