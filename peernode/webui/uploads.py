"""Catalogue files uploaded by staff: streamed to disk under a size limit, then imported by the
same code as `peernode catalog import`, on a thread of its own with its own database
connection (as the CLI would be), so sync and the pages go on while a large file imports.
Progress is kept in memory for the page (and its JSON twin) to poll."""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader

from ..catalog import import_catalog
from ..db import DatabaseError
from ..home import Home
from ..importers import ImportFileError
from ..store import OwnHeadUnconfirmed

CHUNK = 256 * 1024
KEPT_JOBS = 20  # finished jobs remembered for their pages; older ones are forgotten
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class UploadError(Exception):
    """The upload was refused; the message says why (already translated by the caller)."""


@dataclass
class ImportJob:
    id: str
    filename: str
    state: str = "receiving"  # receiving, importing, done, failed
    received: int = 0  # bytes
    records: int = 0  # records read so far
    summary: dict[str, Any] | None = None
    error: str = ""
    started: float = field(default_factory=time.time)
    finished: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "filename": self.filename,
            "state": self.state,
            "received_bytes": self.received,
            "records": self.records,
            "summary": self.summary,
            "error": self.error,
            "started": self.started,
            "finished": self.finished,
        }


def safe_filename(name: str | None) -> str:
    """A file name of only safe characters, keeping the extension (formats are told by it)."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE.sub("_", base).strip("._")[:100]
    return cleaned or "catalogue"


class Uploads:
    def __init__(self, home: Home) -> None:
        self.home = home
        self.folder = home.path / "uploads"
        self.jobs: dict[str, ImportJob] = {}
        self._running: asyncio.Task[None] | None = None

    @property
    def busy(self) -> bool:
        return self._running is not None and not self._running.done()

    async def receive(self, part: BodyPartReader, limit_bytes: int) -> tuple[ImportJob, Path]:
        """Stream ``part`` to disk; refuse it (and delete what arrived) past ``limit_bytes``."""
        job = ImportJob(secrets.token_hex(8), safe_filename(part.filename))
        folder = self.folder / job.id
        folder.mkdir(parents=True, mode=0o700)
        path = folder / job.filename
        try:
            with path.open("wb") as out:
                while chunk := await part.read_chunk(CHUNK):
                    job.received += len(chunk)
                    if job.received > limit_bytes:
                        raise UploadError("too large")
                    await asyncio.to_thread(out.write, chunk)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        if job.received == 0:
            shutil.rmtree(folder, ignore_errors=True)
            raise UploadError("empty")
        self._remember(job)
        return job, path

    def start(self, job: ImportJob, path: Path) -> None:
        job.state = "importing"
        self._running = asyncio.get_running_loop().create_task(self._import(job, path))

    async def _import(self, job: ImportJob, path: Path) -> None:
        try:
            summary = await asyncio.to_thread(self._run, job, path)
            job.summary = summary
            job.state = "done"
        except (ImportFileError, DatabaseError, OwnHeadUnconfirmed, OSError) as exc:
            job.error = str(exc)
            job.state = "failed"
        finally:
            job.finished = time.time()
            shutil.rmtree(path.parent, ignore_errors=True)

    def _run(self, job: ImportJob, path: Path) -> dict[str, Any]:
        store = self.home.open_store()
        try:

            def progress(count: int) -> None:
                job.records += count

            summary = import_catalog(store, self.home.key, path, progress=progress)
            return summary.as_dict()
        finally:
            store.conn.close()

    def _remember(self, job: ImportJob) -> None:
        self.jobs[job.id] = job
        while len(self.jobs) > KEPT_JOBS:
            oldest = next(iter(self.jobs))
            if self.jobs[oldest].state in ("receiving", "importing"):
                break
            del self.jobs[oldest]

    async def close(self) -> None:
        if self._running is not None:
            self._running.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._running
