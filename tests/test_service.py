"""The systemd service: unit text, install/uninstall with a fake systemctl, and one real run."""

from __future__ import annotations

import getpass
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from peernode import service
from peernode.home import Home, init_home
from peernode.service import (
    ServiceError,
    default_command,
    install_service,
    uninstall_service,
    unit_text,
)

from .nodes import free_port

PYTHON = [sys.executable, "-m", "peernode"]


def _value(text: str, key: str) -> str:
    values = [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{key}=")]
    assert len(values) == 1, f"{key}= appears {len(values)} times"
    return values[0]


def _systemd_words(value: str, *, exec_line: bool) -> list[str]:
    """Split a value as systemd does for what quote() writes: quotes, \\ and \", %% and $$."""
    words = shlex.split(value)
    words = [word.replace("%%", "%") for word in words]
    return [word.replace("$$", "$") for word in words] if exec_line else words


class FakeSystemctl:
    """Stands in for subprocess.run: records each command, answers with a chosen result."""

    def __init__(self, returncode: int = 0, stderr: str = "", missing: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.returncode = returncode
        self.stderr = stderr
        self.missing = missing

    def __call__(self, args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        assert kwargs.get("timeout"), "systemctl must not be able to hang the command"
        self.calls.append(list(args))
        if self.missing:
            raise FileNotFoundError(2, "No such file or directory", args[0])
        return subprocess.CompletedProcess(args, self.returncode, "", self.stderr)


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """User units go under a temporary XDG_CONFIG_HOME; system units under a temporary /etc."""
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("SUDO_USER", raising=False)
    monkeypatch.setattr(service, "SYSTEM_UNIT_DIR", tmp_path / "etc" / "systemd" / "system")
    monkeypatch.setattr(service, "LINGER_DIR", tmp_path / "linger")
    return tmp_path / "config"


@pytest.fixture
def node_home(tmp_path: Path) -> Path:
    home = tmp_path / "perpus"
    home.mkdir()
    (home / "node.key").write_text("not read by the service code")
    return home


# --- unit text -------------------------------------------------------------------------------


@pytest.mark.parametrize("user_mode", [True, False])
def test_unit_runs_the_daemon_for_the_home_and_restarts_it(user_mode: bool) -> None:
    text = unit_text(Path("/srv/perpus"), PYTHON, user_mode, user="pustakawan")
    argv = _systemd_words(_value(text, "ExecStart"), exec_line=True)
    assert argv == [*PYTHON, "--home", "/srv/perpus", "run"]
    assert _value(text, "Restart") == "on-failure"
    assert _value(text, "RestartSec") == "5"
    assert _value(text, "Environment") == "PYTHONUNBUFFERED=1"
    target = "default.target" if user_mode else "multi-user.target"
    assert _value(text, "WantedBy") == target
    assert text.index("[Unit]") < text.index("[Service]") < text.index("[Install]")


def test_system_unit_runs_as_a_user_with_hardening_that_keeps_the_home_writable() -> None:
    text = unit_text(Path("/srv/perpus"), PYTHON, False, user="pustakawan")
    assert _value(text, "User") == "pustakawan"
    assert _value(text, "NoNewPrivileges") == "yes"
    assert _value(text, "ProtectSystem") == "full"
    assert _value(text, "PrivateTmp") == "yes"
    assert _value(text, "ReadWritePaths") == "/srv/perpus"
    assert "ProtectHome" not in text  # homes usually live under /home


def test_user_unit_has_no_user_and_no_system_only_settings() -> None:
    text = unit_text(Path("/srv/perpus"), PYTHON, True)
    for key in ("User=", "ProtectSystem=", "network-online.target"):
        assert key not in text


def test_system_unit_user_defaults_to_the_one_behind_sudo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setenv("SUDO_USER", "pustakawan")
    assert _value(unit_text(Path("/srv/p"), PYTHON, False), "User") == "pustakawan"


def test_a_home_with_spaces_and_special_characters_survives_quoting() -> None:
    home = Path('/srv/Perpustakaan SMA 1/katalog 100% "baru" $HOME \\ end')
    text = unit_text(home, ["/opt/my tools/python", "-m", "peernode"], False, user="p")
    exec_start = _value(text, "ExecStart")
    assert exec_start.startswith('"/opt/my tools/python" -m peernode --home "/srv/')
    argv = _systemd_words(exec_start, exec_line=True)
    assert argv == ["/opt/my tools/python", "-m", "peernode", "--home", str(home), "run"]
    assert _systemd_words(_value(text, "ReadWritePaths"), exec_line=False) == [str(home)]


def test_a_relative_home_becomes_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    argv = _systemd_words(
        _value(unit_text(Path("perpus"), PYTHON, True), "ExecStart"), exec_line=True
    )
    assert argv[argv.index("--home") + 1] == str(tmp_path / "perpus")


def test_bad_inputs_are_refused_with_a_reason() -> None:
    with pytest.raises(ServiceError, match="control character"):
        unit_text(Path("/srv/a\nb"), PYTHON, True)
    with pytest.raises(ServiceError, match="absolute path"):
        unit_text(Path("/srv/p"), ["python", "-m", "peernode"], True)
    with pytest.raises(ServiceError, match="unit name"):
        service.unit_path(True, "peer node")


def test_default_command_is_this_python() -> None:
    assert default_command() == [sys.executable, "-m", "peernode"]


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
@pytest.mark.parametrize("user_mode", [True, False])
def test_systemd_accepts_the_unit(tmp_path: Path, user_mode: bool) -> None:
    home = tmp_path / "perpus 100% $X"
    home.mkdir()
    # verify checks that the program exists: a path with a space shows the quoting is read right.
    python = tmp_path / "my tools" / "python"
    python.parent.mkdir()
    python.symlink_to(sys.executable)
    unit = tmp_path / "peernode-verify.service"
    unit.write_text(unit_text(home, [str(python), "-m", "peernode"], user_mode, user="root"))
    # Verified as a system unit in both modes: verifying a user unit needs a user manager.
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    # Other units it loads (targets) may draw warnings on some systems; ours must draw none.
    assert [line for line in result.stderr.splitlines() if unit.name in line] == []


# --- install and uninstall with a fake systemctl ---------------------------------------------


def test_user_install_writes_the_unit_then_reloads_and_enables(
    config_home: Path, node_home: Path
) -> None:
    fake = FakeSystemctl()
    lines = install_service(node_home, user_mode=True, dry_run=False, run=fake)
    path = config_home / "systemd" / "user" / "peernode.service"
    assert path.read_text() == unit_text(node_home, default_command(), True)
    assert fake.calls == [
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", "--now", "peernode.service"],
    ]
    assert f"Wrote {path}" in lines
    assert any("loginctl enable-linger" in line for line in lines)
    assert [p.name for p in path.parent.iterdir()] == ["peernode.service"]  # no temp file left


def test_user_install_says_when_lingering_is_already_on(
    config_home: Path, node_home: Path, tmp_path: Path
) -> None:
    (tmp_path / "linger").mkdir()
    (tmp_path / "linger" / getpass.getuser()).touch()
    lines = install_service(node_home, user_mode=True, dry_run=False, run=FakeSystemctl())
    assert not any("loginctl enable-linger" in line for line in lines)
    assert any("Lingering is on" in line for line in lines)


def test_system_install_uses_plain_systemctl_and_the_system_directory(
    config_home: Path, node_home: Path, tmp_path: Path
) -> None:
    fake = FakeSystemctl()
    lines = install_service(node_home, user_mode=False, dry_run=False, run=fake, user="perpus")
    path = tmp_path / "etc" / "systemd" / "system" / "peernode.service"
    assert "User=perpus" in path.read_text()
    assert fake.calls == [
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "--now", "peernode.service"],
    ]
    assert not any("linger" in line for line in lines)


def test_reinstalling_a_changed_unit_restarts_the_service(
    config_home: Path, node_home: Path
) -> None:
    install_service(node_home, user_mode=True, dry_run=False, run=FakeSystemctl())
    same = FakeSystemctl()
    install_service(node_home, user_mode=True, dry_run=False, run=same)
    assert ["systemctl", "--user", "try-restart", "peernode.service"] not in same.calls
    changed = FakeSystemctl()
    install_service(
        node_home, user_mode=True, dry_run=False, run=changed, executable=["/usr/bin/peernode"]
    )
    assert changed.calls[-1] == ["systemctl", "--user", "try-restart", "peernode.service"]


def test_dry_run_writes_and_runs_nothing_but_shows_the_unit(
    config_home: Path, tmp_path: Path
) -> None:
    fake = FakeSystemctl()
    lines = install_service(tmp_path / "not yet", user_mode=True, dry_run=True, run=fake)
    assert fake.calls == []
    assert not (config_home / "systemd").exists()
    assert any(line.startswith("ExecStart=") for line in lines)
    assert "Would run: systemctl --user enable --now peernode.service" in lines


def test_install_without_a_node_says_to_init_first(config_home: Path, tmp_path: Path) -> None:
    fake = FakeSystemctl()
    with pytest.raises(ServiceError, match="init"):
        install_service(tmp_path / "empty", user_mode=True, dry_run=False, run=fake)
    assert fake.calls == []


def test_a_failing_systemctl_names_the_unit_file_for_use_by_hand(
    config_home: Path, node_home: Path
) -> None:
    fake = FakeSystemctl(returncode=1, stderr="Failed to connect to bus: No medium found\n")
    path = config_home / "systemd" / "user" / "peernode.service"
    with pytest.raises(ServiceError) as caught:
        install_service(node_home, user_mode=True, dry_run=False, run=fake)
    message = str(caught.value)
    assert "systemctl --user daemon-reload` failed: Failed to connect to bus" in message
    assert str(path) in message and "by hand" in message
    assert path.exists()  # the complete unit stays for use by hand


def test_a_missing_systemctl_names_the_unit_file_for_use_by_hand(
    config_home: Path, node_home: Path
) -> None:
    with pytest.raises(ServiceError, match="systemctl was not found") as caught:
        install_service(node_home, user_mode=True, dry_run=False, run=FakeSystemctl(missing=True))
    assert str(config_home / "systemd" / "user" / "peernode.service") in str(caught.value)


def test_an_unwritable_system_directory_says_to_use_sudo(
    config_home: Path, node_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> tuple[int, str]:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    fake = FakeSystemctl()
    with pytest.raises(ServiceError, match="sudo"):
        install_service(node_home, user_mode=False, dry_run=False, run=fake, user="p")
    assert fake.calls == []


def test_a_failed_write_leaves_neither_a_half_file_nor_a_temp_file(
    config_home: Path, node_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_service(node_home, user_mode=True, dry_run=False, run=FakeSystemctl())
    path = config_home / "systemd" / "user" / "peernode.service"
    before = path.read_text()

    def full_disk(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(ServiceError, match="No space left"):
        install_service(
            node_home, user_mode=True, dry_run=False, run=FakeSystemctl(), executable=["/x/pn"]
        )
    assert path.read_text() == before
    assert [p.name for p in path.parent.iterdir()] == ["peernode.service"]


def test_a_user_service_under_sudo_is_refused(
    config_home: Path, node_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setenv("SUDO_USER", "pustakawan")
    with pytest.raises(ServiceError, match="without sudo"):
        install_service(node_home, user_mode=True, dry_run=False, run=FakeSystemctl())
    with pytest.raises(ServiceError, match="without sudo"):
        uninstall_service(user_mode=True, dry_run=False, run=FakeSystemctl())


def test_uninstall_stops_disables_removes_and_reloads(config_home: Path, node_home: Path) -> None:
    install_service(node_home, user_mode=True, dry_run=False, run=FakeSystemctl())
    path = config_home / "systemd" / "user" / "peernode.service"
    fake = FakeSystemctl()
    lines = uninstall_service(user_mode=True, dry_run=False, run=fake)
    assert fake.calls == [
        ["systemctl", "--user", "disable", "--now", "peernode.service"],
        ["systemctl", "--user", "daemon-reload"],
    ]
    assert not path.exists()
    assert f"Removed {path}" in lines
    assert (node_home / "node.key").exists()
    again = FakeSystemctl()
    assert "No service to remove" in uninstall_service(user_mode=True, dry_run=False, run=again)[0]
    assert again.calls == []


def test_uninstall_keeps_the_file_when_systemctl_fails(config_home: Path, node_home: Path) -> None:
    install_service(node_home, user_mode=False, dry_run=False, run=FakeSystemctl(), user="p")
    failing = FakeSystemctl(returncode=1, stderr="Access denied")
    with pytest.raises(ServiceError, match="left in place"):
        uninstall_service(user_mode=False, dry_run=False, run=failing)
    assert service.unit_path(False).exists()


def test_uninstall_without_systemctl_removes_the_file(config_home: Path, node_home: Path) -> None:
    install_service(node_home, user_mode=True, dry_run=False, run=FakeSystemctl())
    lines = uninstall_service(user_mode=True, dry_run=False, run=FakeSystemctl(missing=True))
    assert "systemctl was not found" in lines[0]
    assert not service.unit_path(True).exists()


def test_a_daemon_started_by_hand_is_pointed_out(config_home: Path, node_home: Path) -> None:
    lock = Home(node_home).lock_daemon("127.0.0.1:8470")
    try:
        lines = install_service(node_home, user_mode=True, dry_run=False, run=FakeSystemctl())
    finally:
        lock.close()
    assert any(f"(pid {os.getpid()})" in line and "Stop it" in line for line in lines)


# --- the real thing, where a systemd user instance answers -----------------------------------


def _user_systemd() -> str | None:
    """None when `systemctl --user` works here; otherwise why not."""
    try:
        result = subprocess.run(
            ["systemctl", "--user", "is-system-running"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    state = result.stdout.strip()
    if result.returncode == 0 or state == "degraded":
        return None
    return f"`systemctl --user is-system-running` says {state or result.stderr.strip()!r}"


def _is_active(name: str) -> str:
    result = subprocess.run(
        ["systemctl", "--user", "is-active", f"{name}.service"],
        capture_output=True,
        text=True,
        timeout=5,
    )
    return result.stdout.strip()


def test_real_user_service_starts_the_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    why_not = _user_systemd()
    if why_not:
        pytest.skip(f"no systemd user instance here: {why_not}")
    monkeypatch.delenv("SUDO_USER", raising=False)
    home = init_home(
        tmp_path / "perpus real",
        name="Perpustakaan Uji",
        isil="",
        contact="",
        listen=f"127.0.0.1:{free_port()}",
    )
    name = f"peernode-test-{uuid.uuid4().hex[:12]}"
    try:
        install_service(home.path, user_mode=True, dry_run=False, name=name)
        deadline = time.monotonic() + 8
        while not (_is_active(name) == "active" and home.daemon_running()):
            assert time.monotonic() < deadline, f"{name} is {_is_active(name)!r} after 8 s"
            time.sleep(0.2)
    finally:
        uninstall_service(user_mode=True, dry_run=False, name=name)
    assert not service.unit_path(True, name).exists()
    assert _is_active(name) != "active"
    assert not home.daemon_running()
