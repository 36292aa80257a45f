"""Real nodes for tests: temporary homes, the real CLI, daemons as subprocesses on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from peernode.home import Home, init_home

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
BOOKS = SHARED_DATA / "loc-books" / "books.json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.1) -> None:
    """Poll ``predicate`` until true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class NodeProc:
    """One node: its home directory, its CLI, and (when started) its daemon process."""

    def __init__(self, home: Path, name: str, netns: str | None = None, host: str = "") -> None:
        self.home = home
        self.name = name
        self.netns = netns  # run every command inside this network namespace (test hosts)
        self.port = free_port() if netns is None else 8470
        self.address = f"{host or '127.0.0.1'}:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = home.parent / f"{home.name}.log"

    def cli(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 120,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self._prefix(), sys.executable, "-m", "peernode", "--home", str(self.home), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        )
        if check and result.returncode != 0:
            command = " ".join(args)
            raise AssertionError(
                f"peernode {command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def init(self) -> NodeProc:
        self.cli("init", "--name", self.name, "--listen", self.address)
        return self

    def start(self, env: dict[str, str] | None = None) -> NodeProc:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the daemon writes it until stopped
        self.proc = subprocess.Popen(
            [*self._prefix(), sys.executable, "-m", "peernode", "--home", str(self.home), "run"],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "PEERNODE_LOG_LEVEL": "debug",
                **(env or {}),
            },
        )
        log.close()
        wait_for(self._answers, 20, f"{self.name}'s daemon to answer on {self.address}")
        return self

    def _prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns] if self.netns else []

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name}'s daemon exited: {self.log()}")
        if self.netns:  # not reachable from the test's own namespace: the daemon's lock tells
            return "starting peernode" in self.log() and (self.home / "daemon.lock").exists()
        try:
            self.api("/api/status")
            return True
        except OSError:
            return False

    def api(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://{self.address}{path}", timeout=5) as response:
            return json.load(response)

    def status(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.cli("status", "--json").stdout)
        return data

    def search(self, query: str, limit: int = 20) -> list[dict[str, Any]]:
        out = self.cli("search", query, "--json", "--limit", str(limit)).stdout
        hits: list[dict[str, Any]] = json.loads(out)
        return hits

    def records(self) -> int:
        """Rows in the replica, read straight from the SQLite file (read-only, daemon or not)."""
        conn = sqlite3.connect(f"file:{self.home / 'node.db'}?mode=ro", uri=True, timeout=10)
        try:
            return int(conn.execute("SELECT count(*) FROM records").fetchone()[0])
        finally:
            conn.close()

    def log(self) -> str:
        return self.log_path.read_text("utf-8", "replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def kill9(self) -> None:
        self.stop(signal.SIGKILL)


def peer(inviter: NodeProc, joiner: NodeProc) -> None:
    """Make two nodes peers the way a librarian would: invite on one, join on the other."""
    code = inviter.cli("peer", "invite").stdout.strip().splitlines()[-1]
    joiner.cli("peer", "join", code)


def offline_home(tmp_path: Path, name: str) -> Home:
    """A node's home with no daemon, for store-level tests (bundles, snapshots)."""
    return init_home(tmp_path / name, name=name, isil="", contact="", listen="127.0.0.1:1")


def trusting(home: Home, *others: Home) -> Callable[[bytes], bool]:
    """Trust as `home` would with ``others`` as its peers."""
    keys = {home.public_key, *(o.public_key for o in others)}
    return lambda author: author in keys
