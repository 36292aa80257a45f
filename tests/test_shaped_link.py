"""A far library on a 256 kbit/s line: real daemons in network namespaces this test creates.

Two namespaces joined by a veth pair, each side shaped with tc's token bucket (tbf) to 256
kbit/s, and 10% random loss with nftables where `nft` is installed. Needs root and iproute2;
elsewhere it skips and says why. Only the namespaces' own addresses are used.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .nodes import BOOKS, NodeProc, wait_for

pytestmark = pytest.mark.slow
RATE = "256kbit"


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


@pytest.fixture
def link() -> Iterator[tuple[str, str, str, str, bool]]:
    """(namespace A, address A, namespace B, address B, lossy) for a shaped veth link."""
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("tc"):
        pytest.skip("needs root, ip and tc to build network namespaces (not available here)")
    tag = f"{os.getpid() % 10000}{random.randrange(100)}"
    ns_a, ns_b, subnet = f"pnA{tag}", f"pnB{tag}", f"10.203.{random.randrange(1, 250)}"
    try:
        _run("ip", "netns", "add", ns_a)
        _run("ip", "netns", "add", ns_b)
    except (subprocess.CalledProcessError, OSError) as exc:
        pytest.skip(f"cannot create network namespaces here: {exc}")
    lossy = False
    try:
        _run("ip", "link", "add", f"va{tag}", "type", "veth", "peer", "name", f"vb{tag}")
        for ns, dev, host in ((ns_a, f"va{tag}", 1), (ns_b, f"vb{tag}", 2)):
            _run("ip", "link", "set", dev, "netns", ns)
            _run("ip", "-n", ns, "addr", "add", f"{subnet}.{host}/24", "dev", dev)
            _run("ip", "-n", ns, "link", "set", dev, "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
            _run(
                "ip",
                "netns",
                "exec",
                ns,
                "tc",
                "qdisc",
                "add",
                "dev",
                dev,
                "root",
                "tbf",
                "rate",
                RATE,
                "burst",
                "16kbit",
                "latency",
                "400ms",
            )
        if shutil.which("nft"):  # 10% of arriving packets lost, each way, as on a bad rural line
            for ns in (ns_a, ns_b):
                _run(
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "nft",
                    "add table inet loss; "
                    "add chain inet loss inbound { type filter hook input priority 0; }; "
                    "add rule inet loss inbound numgen random mod 100 < 10 drop",
                )
            lossy = True
        yield ns_a, f"{subnet}.1", ns_b, f"{subnet}.2", lossy
    finally:
        for ns in (ns_a, ns_b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def test_a_catalogue_and_a_day_of_changes_reach_a_node_on_a_slow_line(
    link: tuple[str, str, str, str, bool], tmp_path: Path
) -> None:
    ns_a, host_a, ns_b, host_b, lossy = link
    a = NodeProc(tmp_path / "a", "Library A", netns=ns_a, host=host_a)
    b = NodeProc(tmp_path / "b", "Library B", netns=ns_b, host=host_b)
    try:
        for node in (a, b):
            node.init()
        a.cli("catalog", "import", str(BOOKS), "--source", "katalog")
        a.start()
        b.start()
        code = a.cli("peer", "invite").stdout.strip().splitlines()[-1]
        for _ in range(20):  # the daemon may still be binding its socket
            if b.cli("peer", "join", code, check=False).returncode == 0:
                break
            time.sleep(0.5)
        started = time.monotonic()
        wait_for(lambda: b.records() == 10_000, 300, f"10,000 records over {RATE}", step=1)
        first = time.monotonic() - started
        # A day of changes: 100 records edited, 20 withdrawn.
        records = json.loads(BOOKS.read_text("utf-8"))
        for record in records[:100]:
            record["title"] = f"{record['title']} (edisi revisi)"
        day = tmp_path / "katalog.json"
        day.write_text(json.dumps(records[:-20]), "utf-8")
        summary = json.loads(
            a.cli("catalog", "import", str(day), "--source", "katalog", "--json").stdout
        )
        assert (summary["changed"], summary["deleted"]) == (100, 20)
        started = time.monotonic()
        wait_for(lambda: b.records() == 9_980, 300, "the day's changes", step=1)
        changes = time.monotonic() - started
    finally:
        a.stop()
        b.stop()
    status = b.status()
    assert status["duplicates_received"] == 0 and status["rejected"] == 0
    assert b.cli("check").returncode == 0
    print(
        f"\n{RATE}{' with 10% loss' if lossy else ''}: 10,000 records in {first:.0f} s, "
        f"a day of changes in {changes:.0f} s"
    )
