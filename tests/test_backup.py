"""Backup, restore without forking, the key on its own, and a full disk during an import."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from peernode.backup import BackupError, backup, export_key, restore
from peernode.catalog import import_catalog
from peernode.home import HomeError, init_home

from .nodes import BOOKS, SHARED_DATA, NodeProc, peer, wait_for

MakeNode = Callable[[str], NodeProc]
SLIMS = SHARED_DATA / "slims" / "sampledata.sql"


def test_round_trip_keeps_identity_and_data(tmp_path: Path) -> None:
    home = init_home(tmp_path / "a", name="Perpus A", isil="ID-X", contact="", listen="127.0.0.1:1")
    import_catalog(home.open_store(), home.key, SLIMS)
    summary = backup(home, tmp_path / "a.backup")
    assert summary.node_id == home.node_id
    assert summary.entries == 3  # profile, catalogue batch, checkpoint
    assert (tmp_path / "a.backup").stat().st_mode & 0o077 == 0  # it holds the private key
    restored = restore(tmp_path / "a.backup", tmp_path / "restored")
    assert restored.node_id == home.node_id and restored.config.isil == "ID-X"
    assert (restored.path / "node.key").stat().st_mode & 0o777 == 0o600
    conn = restored.open_store().conn
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT count(*) FROM records").fetchone()[0] == 15
    # No peers: nothing newer can exist anywhere, so it may sign at once.
    assert restored.open_store().meta("restored_at") is None


def test_restore_never_overwrites_and_refuses_damaged_files(tmp_path: Path) -> None:
    home = init_home(tmp_path / "a", name="A", isil="", contact="", listen="127.0.0.1:1")
    backup(home, tmp_path / "a.backup")
    with pytest.raises(HomeError, match="not empty"):
        restore(tmp_path / "a.backup", home.path)
    data = (tmp_path / "a.backup").read_bytes()
    (tmp_path / "cut.backup").write_bytes(data[: len(data) // 2])
    with pytest.raises(BackupError, match=r"cut\.backup"):
        restore(tmp_path / "cut.backup", tmp_path / "new")
    assert not (tmp_path / "new").exists()  # nothing half-restored left behind
    assert not [p for p in tmp_path.iterdir() if "restoring" in p.name]


def test_key_export_is_encrypted(tmp_path: Path) -> None:
    home = init_home(tmp_path / "a", name="A", isil="", contact="", listen="127.0.0.1:1")
    export_key(home, tmp_path / "key.pem", "kata sandi rahasia")
    pem = (tmp_path / "key.pem").read_bytes()
    assert b"ENCRYPTED" in pem
    with pytest.raises(TypeError):
        load_pem_private_key(pem, password=None)
    loaded = load_pem_private_key(pem, password=b"kata sandi rahasia")
    assert loaded.public_key() == home.key.public_key()
    with pytest.raises(BackupError, match="8 characters"):
        export_key(home, tmp_path / "short.pem", "pendek")


@pytest.mark.slow
def test_backup_during_a_busy_sync_restores_without_forking(
    make_node: MakeNode, tmp_path: Path
) -> None:
    a, b = make_node("Library A"), make_node("Library B")
    a.start()
    b.start()
    peer(a, b)
    records = json.loads(BOOKS.read_text("utf-8"))
    first, second, third = (tmp_path / f"{n}.json" for n in ("first", "second", "third"))
    first.write_text(json.dumps(records[:6000]), "utf-8")
    second.write_text(json.dumps(records[6000:8000]), "utf-8")
    third.write_text(json.dumps(records[8000:]), "utf-8")
    a.cli("catalog", "import", str(first), "--source", "first")
    a.cli("backup", str(tmp_path / "a.backup"))  # while B is still pulling the first import
    a.cli("catalog", "import", str(second), "--source", "second")  # signed after the backup
    wait_for(lambda: b.status()["records"] == 8000, 60, "B to hold all of A's records")
    a_id = a.status()["node_id"]

    a.stop()  # the disaster: A's disk is lost
    lost = a.home.rename(a.home.with_name("lost"))
    assert lost.exists()
    out = a.cli("restore", str(tmp_path / "a.backup")).stdout
    assert a_id in out and "signs again once it has synced" in out
    status = a.status()
    assert status["node_id"] == a_id
    assert a.cli("check").returncode == 0
    refused = a.cli("catalog", "import", str(third), "--source", "third", check=False)
    assert refused.returncode == 1 and "could fork its own log" in refused.stderr

    a.start()  # learns its own newer entries back from B, then may sign again
    wait_for(lambda: a.status()["own_records"] == 8000, 60, "A to recover its own entries")
    wait_for(
        lambda: (
            a.cli("catalog", "import", str(third), "--source", "third", check=False).returncode == 0
        ),
        30,
        "A to sign again after catching up",
    )
    wait_for(lambda: b.status()["records"] == 10000, 60, "B to receive A's new entries")
    b_status = b.status()
    assert b_status["forks"] == 0, b_status
    assert b_status["rejected"] == 0, b_status["rejected_by_reason"]
    assert b.cli("check").returncode == 0 and a.cli("check").returncode == 0


def test_a_full_disk_stops_an_import_cleanly_and_it_resumes(make_node: MakeNode) -> None:
    node = make_node("Library A")
    full = node.cli("catalog", "import", str(BOOKS), check=False, env={"PEERNODE_MAX_DB_MB": "3"})
    assert full.returncode == 1 and "disk is full" in full.stderr
    assert "Traceback" not in full.stderr
    assert node.cli("check").returncode == 0
    partial = node.status()["own_records"]
    assert 0 <= partial < 10_000
    done = json.loads(node.cli("catalog", "import", str(BOOKS), "--json").stdout)
    assert done["added"] == 10_000 - partial and done["unchanged"] == partial
    assert node.status()["own_records"] == 10_000


@pytest.mark.slow
def test_a_daemon_whose_disk_fills_pauses_sync_and_resumes_when_space_returns(
    make_node: MakeNode,
) -> None:
    a, b = make_node("Library A"), make_node("Library B")
    a.cli("catalog", "import", str(BOOKS))
    a.start()
    b.start(env={"PEERNODE_MAX_DB_MB": "3"})  # a small disk
    peer(a, b)
    wait_for(lambda: "disk full" in b.log(), 60, "B to notice its disk is full")
    assert "Traceback" not in b.log()
    b.stop()
    assert b.cli("check").returncode == 0  # consistent, whatever it managed to store
    b.start()  # space is back
    wait_for(lambda: b.status()["records"] == 10_000, 90, "B to finish the sync")
    assert b.cli("check").returncode == 0


def test_a_node_with_peers_waits_for_a_sync_unless_the_backup_is_the_latest(
    tmp_path: Path,
) -> None:
    from peernode.peers import add_peer
    from peernode.store import OwnHeadUnconfirmed

    home = init_home(tmp_path / "a", name="A", isil="", contact="", listen="127.0.0.1:1")
    add_peer(home.open_store().conn, b"\x05" * 32, "Mitra", None)
    backup(home, tmp_path / "a.backup")
    waiting = restore(tmp_path / "a.backup", tmp_path / "waiting")
    with pytest.raises(OwnHeadUnconfirmed, match="fork its own log"):
        import_catalog(waiting.open_store(), waiting.key, SLIMS)
    latest = restore(tmp_path / "a.backup", tmp_path / "latest", latest=True)
    assert import_catalog(latest.open_store(), latest.key, SLIMS).added == 15
