"""``make demo``: three libraries on this machine, each seeded from a different real data set,
peered with each other, syncing. Prints each node's web address; Ctrl-C stops them all.

Run from the project root (it reads ../shared/data). ``--check`` exits once every node holds
every library's records, for tests and for a quick look that the network works.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"


@dataclass
class DemoNode:
    name: str
    slug: str
    files: list[Path]
    port: int
    base: Path = ROOT / "demo-data"

    @property
    def home(self) -> Path:
        return self.base / self.slug

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "peernode", "--home", str(self.home), *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        if result.returncode != 0:
            sys.exit(f"peernode {' '.join(args)} failed for {self.name}:\n{result.stderr}")
        return result.stdout


DEMO_PASSWORD = "perpustakaan"  # the staff login of the three demo nodes, printed with them


def _port(preferred: int) -> int:
    """``preferred`` if free on loopback, else any free port."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def nodes() -> list[DemoNode]:
    marc = sorted((DATA / "marc-pymarc").glob("*.dat")) + sorted(
        (DATA / "marc-pymarc").glob("*.xml")
    )
    return [
        DemoNode(
            "Perpustakaan Universitas Nusantara",
            "nusantara",
            [DATA / "loc-books" / "books.json"],
            _port(8701),
        ),
        DemoNode("Perpustakaan SMA Negeri 1 Makassar", "makassar", marc, _port(8702)),
        DemoNode(
            "Perpustakaan Umum Kota Ambon",
            "ambon",
            [DATA / "slims" / "sampledata.sql"],
            _port(8703),
        ),
    ]


def _records(node: DemoNode, field: str = "records") -> int:
    return int(json.loads(node.cli("status", "--json"))[field])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m peernode.demo", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit once every node converged")
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait to converge")
    parser.add_argument(
        "--dir", type=Path, default=ROOT / "demo-data", help="where the three nodes live"
    )
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"the demo needs the shared data at {DATA}")
    demo = nodes()
    for node in demo:
        node.base = args.dir.resolve()
    shutil.rmtree(args.dir, ignore_errors=True)
    password = args.dir.resolve() / "staff-password"
    args.dir.mkdir(parents=True)
    password.write_text(f"{DEMO_PASSWORD}\n", "utf-8")
    for node in demo:
        node.cli(
            "init", "--name", node.name, "--listen", node.address,
            "--staff-password-file", str(password),
        )  # fmt: skip
        for file in node.files:
            summary = json.loads(node.cli("catalog", "import", str(file), "--json"))
            print(
                f"{node.name}: {file.name}: {summary['added']} records, "
                f"{summary['rejected']} rejected"
            )
    procs = []
    try:
        for node in demo:
            log = open(node.home / "daemon.log", "ab")  # noqa: SIM115 - the daemon writes it
            proc = subprocess.Popen(
                [sys.executable, "-m", "peernode", "--home", str(node.home), "run"],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            procs.append(proc)
        time.sleep(1.0)
        for inviter, joiner in ((0, 1), (0, 2), (1, 2)):
            code = demo[inviter].cli("peer", "invite").strip().splitlines()[-1]
            demo[joiner].cli("peer", "join", code)
        total = sum(_records(n, "own_records") for n in demo)
        started = time.monotonic()
        while time.monotonic() - started < args.timeout:
            if all(_records(n) == total for n in demo):
                break
            time.sleep(1)
        counts = [_records(n) for n in demo]
        print(f"\nRecords in each node's replica: {counts} (all libraries together: {total})")
        print("\nThe demo network is running:")
        for node in demo:
            print(f"  {node.name:40s} http://{node.address}/")
        print(f"Staff pages (loans, import, network map): log in with {DEMO_PASSWORD!r}")
        print(f"\nTry: .venv/bin/peernode --home {demo[1].home} search 'botany'")
        if args.check:
            if counts != [total] * len(demo):
                sys.exit(f"the nodes did not converge within {args.timeout:.0f} s: {counts}")
            return
        print("Press Ctrl-C to stop the three daemons.")
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            while all(p.poll() is None for p in procs):
                time.sleep(1)
            print(f"A daemon stopped; see {args.dir}/*/daemon.log", file=sys.stderr)
        except KeyboardInterrupt:
            print("\nStopping.")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=15)


if __name__ == "__main__":
    main()
