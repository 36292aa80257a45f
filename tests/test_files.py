"""Files written whole or not at all, and private while they are written."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from peernode.files import replacing


def test_a_private_file_is_never_readable_by_others(tmp_path: Path) -> None:
    target = tmp_path / "node.backup"
    with replacing(target, mode=0o600) as tmp:
        tmp.write_bytes(b"secret key")
        assert stat.S_IMODE(tmp.stat().st_mode) == 0o600  # even half-written
        assert not target.exists()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_bytes() == b"secret key"
    assert [p.name for p in tmp_path.iterdir()] == ["node.backup"]


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "peernode.toml"
    target.write_text("name = 'lama'\n")
    with pytest.raises(RuntimeError), replacing(target) as tmp:
        tmp.write_text("name = 'baru")
        raise RuntimeError("the disk went away")
    assert target.read_text() == "name = 'lama'\n"
    assert [p.name for p in tmp_path.iterdir()] == ["peernode.toml"]
