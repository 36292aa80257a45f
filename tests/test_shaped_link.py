"""A far library on a 256 kbit/s line: real daemons in network namespaces this test creates.

The link (bench/netlink.py): two namespaces joined by a veth pair, 256 kbit/s each way, and 10%
of arriving packets lost where nftables is installed. Needs root and iproute2; elsewhere it skips
and says why. Only the namespaces' own addresses are used.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.netlink import Link, LinkUnavailable, shaped_link

from .nodes import BOOKS, NodeProc, wait_for

pytestmark = pytest.mark.slow
RATE = "256kbit"


@pytest.fixture
def link() -> Iterator[Link]:
    try:
        with shaped_link(RATE, loss_percent=10) as made:
            yield made
    except LinkUnavailable as exc:
        pytest.skip(str(exc))


def test_a_catalogue_and_a_day_of_changes_reach_a_node_on_a_slow_line(
    link: Link, tmp_path: Path
) -> None:
    a = NodeProc(tmp_path / "a", "Library A", netns=link.ns_a, host=link.host_a)
    b = NodeProc(tmp_path / "b", "Library B", netns=link.ns_b, host=link.host_b)
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
    loss = f" with {link.loss_percent}% loss" if link.loss_percent else ""
    print(f"\n{RATE}{loss}: 10,000 records in {first:.0f} s, a day of changes in {changes:.0f} s")


def test_a_line_that_goes_dead_mid_sync_ends_both_sessions_and_the_sync_resumes(
    tmp_path: Path,
) -> None:
    """Both libraries stream a catalogue at each other when the line goes dead (every packet
    dropped, no reset): each side's sender blocks on a socket the peer no longer reads. Both
    sessions must still end within the idle limit (three heartbeats), not when TCP gives up
    minutes later, and once the line is back both catalogues arrive whole."""
    if not shutil.which("nft"):
        pytest.skip("needs nftables to cut the line")
    try:
        context = shaped_link("2mbit", loss_percent=0)
        link = context.__enter__()
    except LinkUnavailable as exc:
        pytest.skip(str(exc))
    try:
        link.small_socket_buffers()
        a = NodeProc(tmp_path / "a", "Library A", netns=link.ns_a, host=link.host_a)
        b = NodeProc(tmp_path / "b", "Library B", netns=link.ns_b, host=link.host_b)
        fast = {"PEERNODE_HEARTBEAT_SECONDS": "1"}  # idle after 3 s of silence
        try:
            for node in (a, b):
                node.init()
                node.cli("catalog", "import", str(BOOKS))
                node.start(env=fast)
            code = a.cli("peer", "invite").stdout.strip().splitlines()[-1]
            for _ in range(20):  # the daemon may still be binding its socket
                if b.cli("peer", "join", code, check=False).returncode == 0:
                    break
                time.sleep(0.5)
            # Cut as soon as records flow: at 2 Mbit/s either way takes seconds, so both
            # directions are mid-way (each holds its own 10,000 and some of the other's).
            wait_for(
                lambda: a.records() > 10_500 or b.records() > 10_500, 120, "the syncs under way"
            )
            ended = [node.log().count("disconnected from") for node in (a, b)]
            link.cut()
            cut_at = time.monotonic()
            assert min(a.records(), b.records()) < 20_000, "the line is too fast to cut mid-sync"
            wait_for(
                lambda: all(
                    node.log().count("disconnected from") > before
                    for node, before in zip((a, b), ended, strict=True)
                ),
                30,
                "both sessions to end on the dead line",
                step=0.5,
            )
            took = time.monotonic() - cut_at
            link.heal()
            wait_for(
                lambda: a.records() == 20_000 and b.records() == 20_000,
                180,
                "both catalogues whole after the line came back",
                step=1,
            )
        finally:
            a.stop()
            b.stop()
        for node in (a, b):
            assert node.cli("check").returncode == 0
        assert took < 15, f"sessions ended {took:.0f} s after the line went dead"
        print(f"\nboth sessions ended {took:.1f} s after the line went dead")
    finally:
        context.__exit__(None, None, None)
