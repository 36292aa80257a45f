"""The baseline people would reach for instead: two ``pouchdb-server`` instances on loopback.

The same generated records, one JSON document each (``_id`` = the record id), are loaded into a
source server; a target server is told to ``_replicate`` them (CouchDB's replication protocol,
as PouchDB runs it) and timed until its doc count matches. The resync changes 1% of the
documents on the source and replicates again through a counting proxy (bench/wire.py), like
peernode's. Both PouchDB storage back ends are measured: in memory (MemDOWN) and on disk
(LevelDOWN). ``make bench`` runs ``npm install`` in bench/pouchdb first; without node or that
install, the section says why it was not measured instead of failing the run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .wire import CountingProxy, Traffic

PACKAGE = Path(__file__).resolve().parent / "pouchdb"
SERVER = PACKAGE / "node_modules" / ".bin" / "pouchdb-server"
LOAD_BATCH = 2000  # documents per _bulk_docs request while loading the source
DB = "catalogue"


class PouchUnavailable(Exception):
    """pouchdb-server cannot run here; the message says why (for the report)."""


def check() -> None:
    if shutil.which("node") is None:
        raise PouchUnavailable("node is not installed")
    if not SERVER.exists():
        raise PouchUnavailable(
            "pouchdb-server is not installed (`npm install` in bench/pouchdb, which `make bench` "
            "does)"
        )


@dataclass
class PouchRun:
    adapter: str  # "memory" or "leveldb"
    records: int
    load_seconds: float
    replicate_seconds: float | None  # None: stopped at the time limit
    replicated: int  # documents at the target when it finished or was stopped
    resync: Traffic | None = None
    resync_seconds: float = 0.0

    @property
    def rate(self) -> float:
        seconds = self.replicate_seconds
        return self.replicated / seconds if seconds else 0.0


def request(method: str, url: str, body: Any = None, timeout: float = 600) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as answer:
        return json.loads(answer.read())


class PouchServer:
    """One pouchdb-server process on ``port``, its files (config, log, data) under ``home``."""

    def __init__(self, home: Path, port: int, adapter: str) -> None:
        self.home = home
        self.port = port
        self.adapter = adapter
        self.url = f"http://127.0.0.1:{port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PouchServer:
        shutil.rmtree(self.home, ignore_errors=True)
        self.home.mkdir(parents=True)
        store = ["--in-memory"] if self.adapter == "memory" else ["--dir", str(self.home)]
        self._proc = subprocess.Popen(
            [str(SERVER), "--port", str(self.port), "--no-stdout-logs", *store],
            cwd=self.home,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                request("GET", self.url + "/", timeout=2)
                return self
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.__exit__()
                    raise PouchUnavailable(f"pouchdb-server did not start: {exc}") from None
                time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(15)
            self._proc = None

    def doc_count(self) -> int:
        return int(request("GET", f"{self.url}/{DB}")["doc_count"])


def documents(data: Path) -> Iterator[dict[str, Any]]:
    """The generated records as JSON documents (the same file peernode imports)."""
    with data.open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            record["_id"] = record.pop("id")
            yield record


def load(server: PouchServer, data: Path) -> int:
    request("PUT", f"{server.url}/{DB}")
    batch: list[dict[str, Any]] = []
    loaded = 0
    for doc in documents(data):
        batch.append(doc)
        if len(batch) == LOAD_BATCH:
            request("POST", f"{server.url}/{DB}/_bulk_docs", {"docs": batch})
            loaded += len(batch)
            batch = []
    if batch:
        request("POST", f"{server.url}/{DB}/_bulk_docs", {"docs": batch})
        loaded += len(batch)
    return loaded


def replicate(source_url: str, target: PouchServer, records: int, timeout: float) -> float | None:
    """Seconds until ``target`` holds ``records`` documents; None when ``timeout`` ran out."""
    started = time.perf_counter()
    try:
        request(
            "POST",
            f"{target.url}/_replicate",
            {"source": source_url, "target": DB, "create_target": True},
            timeout=timeout,
        )
    except TimeoutError:
        return None
    while target.doc_count() < records:  # _replicate answers once done; this is a backstop
        if time.perf_counter() - started > timeout:
            return None
        time.sleep(0.05)
    return time.perf_counter() - started


def change_one_percent(server: PouchServer, rids: list[str]) -> None:
    """Edit the title of each document in ``rids`` on ``server`` (the same edit as peernode's)."""
    rows = request("POST", f"{server.url}/{DB}/_all_docs?include_docs=true", {"keys": rids})
    docs = []
    for row in rows["rows"]:
        doc = row["doc"]
        doc["title"] = edited_title(doc["title"])
        docs.append(doc)
    request("POST", f"{server.url}/{DB}/_bulk_docs", {"docs": docs})


def edited_title(title: str) -> str:
    return f"{title} (rev. 2)"


def run(
    data: Path,
    records: int,
    changed: list[str],
    work: Path,
    ports: tuple[int, int],
    adapter: str,
    timeout: float,
) -> PouchRun:
    """Load, replicate, then resync ``changed`` through the counting proxy."""
    root = work / f"pouchdb-{adapter}"
    with (
        PouchServer(root / "source", ports[0], adapter) as source,
        PouchServer(root / "target", ports[1], adapter) as target,
    ):
        started = time.perf_counter()
        load(source, data)
        loaded = time.perf_counter() - started
        seconds = replicate(f"{source.url}/{DB}", target, records, timeout)
        result = PouchRun(adapter, records, loaded, seconds, target.doc_count())
        if seconds is None or not changed:
            return result
        change_one_percent(source, changed)
        with CountingProxy(source.port) as proxy:
            started = time.perf_counter()
            request(
                "POST",
                f"{target.url}/_replicate",
                {"source": f"http://127.0.0.1:{proxy.port}/{DB}", "target": DB},
                timeout=timeout,
            )
            result.resync_seconds = time.perf_counter() - started
            result.resync = proxy.reset()
        doc = request("GET", f"{target.url}/{DB}/{changed[0]}")
        if doc["title"] != edited_title(doc["title"].removesuffix(" (rev. 2)")):
            raise RuntimeError(f"PouchDB resync did not bring the edit of {changed[0]}")
    shutil.rmtree(root, ignore_errors=True)
    return result
