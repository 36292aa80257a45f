"""Run the daemon as a systemd service, so it starts at boot and restarts after a crash.

A *user* unit (``~/.config/systemd/user/peernode.service``) needs no root: the node runs as the
librarian's own account, and ``loginctl enable-linger USER`` makes it start at boot without a
login. A *system* unit (``/etc/systemd/system/peernode.service``) needs root to install, and
runs the daemon as an ordinary user (``User=``) with some sandboxing.

Every function returns, line by line, what it did, for the CLI to print. Failures raise
:class:`ServiceError` with one plain sentence that says what failed and what to do by hand.
"""

from __future__ import annotations

import getpass
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .files import replacing
from .home import KEY_FILE, LOCK_FILE, Home

DEFAULT_NAME = "peernode"
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
# systemd-logind marks a user with lingering on by a file of that user's name here.
LINGER_DIR = Path("/var/lib/systemd/linger")
SYSTEMCTL_TIMEOUT_S = 60.0

Runner = Callable[..., subprocess.CompletedProcess[Any]]

_NAME_OK = re.compile(r"[A-Za-z0-9_.@:-]+")
# Characters that never need quoting in a unit file value; anything else gets double quotes.
_PLAIN = re.compile(r"[A-Za-z0-9_@+=:,./-]+")


class ServiceError(Exception):
    """Installing or removing the service failed; the message says what to do by hand."""


def default_command() -> list[str]:
    """The command that runs peernode with this very Python, so a venv or pipx install works."""
    if not sys.executable or not os.path.isabs(sys.executable):
        raise ServiceError(
            "cannot tell which Python runs peernode (sys.executable is empty); "
            "write the unit by hand from docs/peernode.service"
        )
    # Not resolved: a venv's python is a symlink, and it finds the venv by its own path.
    return [sys.executable, "-m", "peernode"]


def unit_dir(user_mode: bool) -> Path:
    """Where systemd looks for this kind of unit."""
    if not user_mode:
        return SYSTEM_UNIT_DIR
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "systemd" / "user"


def unit_path(user_mode: bool, name: str = DEFAULT_NAME) -> Path:
    return unit_dir(user_mode) / f"{_unit_name(name)}.service"


def invoking_user() -> str:
    """The user the daemon should run as: under sudo, the one who typed sudo, not root."""
    sudo_user = os.environ.get("SUDO_USER")
    if os.geteuid() == 0 and sudo_user and sudo_user != "root":
        return sudo_user
    return getpass.getuser()


def quote(value: str, *, exec_line: bool = False) -> str:
    """One word of a unit file value, quoted so systemd reads it back unchanged.

    ``%`` starts a specifier everywhere; ``$`` starts a variable only on Exec lines.
    """
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ServiceError(f"{value!r} contains a control character, which a unit file cannot hold")
    text = value.replace("%", "%%")
    if exec_line:
        text = text.replace("$", "$$")
    if text and _PLAIN.fullmatch(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unit_text(
    home: Path, executable: list[str], user_mode: bool, *, user: str | None = None
) -> str:
    """The unit file that runs ``EXECUTABLE --home HOME run``.

    ``executable`` is the command that starts peernode, e.g. ``[sys.executable, "-m",
    "peernode"]`` (see :func:`default_command`). ``user`` is only used for system units; it
    defaults to :func:`invoking_user`.
    """
    if not executable or not os.path.isabs(executable[0]):
        raise ServiceError(f"the command {executable!r} must start with an absolute path")
    home = _absolute(home)
    argv = [*executable, "--home", str(home), "run"]
    exec_start = " ".join(quote(arg, exec_line=True) for arg in argv)
    lines = [
        "# Written by `peernode service install`; reinstalling overwrites it.",
        "[Unit]",
        "Description=peernode: library catalogue sharing",
    ]
    if not user_mode:
        # Only the system manager has these targets; a user unit cannot wait for them.
        lines += ["Wants=network-online.target", "After=network-online.target"]
    lines += [
        "",
        "[Service]",
        "Type=simple",
        f"ExecStart={exec_start}",
        # Logs go straight to the journal instead of waiting in a buffer.
        "Environment=PYTHONUNBUFFERED=1",
        "Restart=on-failure",
        "RestartSec=5",
    ]
    if not user_mode:
        lines += [
            f"User={user or invoking_user()}",
            # Sandboxing that leaves the home writable: the daemon only writes there.
            "NoNewPrivileges=yes",
            "PrivateTmp=yes",
            "ProtectSystem=full",
            f"ReadWritePaths={quote(str(home))}",
            "ProtectKernelTunables=yes",
            "ProtectKernelModules=yes",
            "ProtectControlGroups=yes",
            "RestrictSUIDSGID=yes",
        ]
    lines += [
        "",
        "[Install]",
        f"WantedBy={'default.target' if user_mode else 'multi-user.target'}",
    ]
    return "\n".join(lines) + "\n"


def install_service(
    home: Path,
    *,
    user_mode: bool,
    dry_run: bool,
    run: Runner = subprocess.run,
    name: str = DEFAULT_NAME,
    executable: list[str] | None = None,
    user: str | None = None,
) -> list[str]:
    """Write the unit, reload systemd, enable and start the service; return what was done.

    With ``dry_run``, nothing is written or run: the lines say what would be, and show the unit.
    """
    _refuse_user_mode_under_sudo(user_mode)
    home = _absolute(home)
    unit = f"{_unit_name(name)}.service"
    path = unit_path(user_mode, name)
    text = unit_text(home, executable or default_command(), user_mode, user=user)
    systemctl = ["systemctl", "--user"] if user_mode else ["systemctl"]
    commands = [[*systemctl, "daemon-reload"], [*systemctl, "enable", "--now", unit]]
    if dry_run:
        return [
            f"Would write {path}:",
            *text.splitlines(),
            *(f"Would run: {' '.join(command)}" for command in commands),
            *_linger_note(user_mode),
        ]
    if not (home / KEY_FILE).exists():
        raise ServiceError(
            f"no peernode node in {home}: run `peernode --home {home} init --name ...` first"
        )
    old = path.read_text("utf-8") if path.exists() else None
    by_hand = (
        f"The unit file {path} is in place: you can use it by hand with systemd, or run the "
        "daemon yourself with `peernode run`."
    )
    done: list[str] = []
    manual = _manual_daemon(home) if old is None else None
    _write_atomic(path, text)
    done.append(f"Wrote {path}")
    for command in commands:
        _systemctl(run, command, by_hand, done)
    if old is not None and old != text:
        # enable --now leaves a running service alone; restart it so the new unit applies.
        _systemctl(run, [*systemctl, "try-restart", unit], by_hand, done)
    done.append(f"The daemon for {home} now runs as the service {unit}.")
    if manual:
        done.append(
            f"Note: a daemon you started by hand is still running for {home} (pid {manual}). "
            f"Stop it (Ctrl-C, or `kill {manual}`); the service takes over within seconds."
        )
    done += _linger_note(user_mode)
    journal = "journalctl --user" if user_mode else "journalctl"
    done.append(f"Its log: {journal} -u {unit}")
    return done


def uninstall_service(
    *,
    user_mode: bool,
    dry_run: bool = False,
    run: Runner = subprocess.run,
    name: str = DEFAULT_NAME,
) -> list[str]:
    """Stop and disable the service, remove its unit file, reload systemd; return what was done.

    The node's home (key, settings, database) is never touched.
    """
    _refuse_user_mode_under_sudo(user_mode)
    unit = f"{_unit_name(name)}.service"
    path = unit_path(user_mode, name)
    systemctl = ["systemctl", "--user"] if user_mode else ["systemctl"]
    disable = [*systemctl, "disable", "--now", unit]
    reload = [*systemctl, "daemon-reload"]
    if dry_run:
        return [
            f"Would run: {' '.join(disable)}",
            f"Would remove {path}" if path.exists() else f"{path} does not exist",
            f"Would run: {' '.join(reload)}",
        ]
    if not path.exists():
        return [f"No service to remove: {path} does not exist."]
    by_hand = (
        f"The unit file {path} was left in place: stop the daemon and delete that file by hand."
    )
    done: list[str] = []
    try:
        _systemctl(run, disable, by_hand, done)
    except _NoSystemctl:
        # Without systemctl nothing can be running from this file; removing it is safe.
        path.unlink()
        return [f"Removed {path} (systemctl was not found, so nothing else was done)."]
    path.unlink()
    done.append(f"Removed {path}")
    _systemctl(run, reload, f"{path} is removed; systemd forgets it at the next reboot.", done)
    done.append("The node's files (key, settings, database) were left as they are.")
    return done


# --- helpers ---------------------------------------------------------------------------------


class _NoSystemctl(ServiceError):
    pass


def _refuse_user_mode_under_sudo(user_mode: bool) -> None:
    # Under sudo, HOME and the systemd user instance would be root's, not the librarian's.
    if user_mode and os.geteuid() == 0 and os.environ.get("SUDO_USER"):
        raise ServiceError(
            "a user service belongs to the user who runs it: run this without sudo, "
            "or use --system for a system service"
        )


def _unit_name(name: str) -> str:
    name = name.removesuffix(".service")
    if not _NAME_OK.fullmatch(name):
        raise ServiceError(f"{name!r} is not a valid unit name (letters, digits, _ . @ : -)")
    return name


def _absolute(home: Path) -> Path:
    # systemd starts the daemon in /, so a relative home would point somewhere else.
    return Path(home).expanduser().resolve()


def _write_atomic(path: Path, text: str) -> None:
    """Write the whole file or nothing: a temporary file in the same directory, then rename."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path, mode=0o644) as tmp:  # systemd and other admins read it
            tmp.write_text(text, "utf-8")
    except PermissionError:
        raise ServiceError(
            f"cannot write {path}: permission denied. A system service needs root: run the "
            "same command with sudo, or install a user service with --user"
        ) from None
    except OSError as exc:
        raise ServiceError(f"cannot write {path}: {exc.strerror or exc}") from None


def _systemctl(run: Runner, command: list[str], by_hand: str, done: list[str]) -> None:
    """Run one systemctl command; on any failure raise with what failed, then ``by_hand``."""
    shown = " ".join(command)
    try:
        result = run(command, capture_output=True, text=True, timeout=SYSTEMCTL_TIMEOUT_S)
    except FileNotFoundError:
        raise _NoSystemctl(
            f"`{shown}` failed: systemctl was not found (this system, or container, does not "
            f"run systemd). {by_hand}"
        ) from None
    except subprocess.TimeoutExpired:
        raise ServiceError(
            f"`{shown}` did not finish within {SYSTEMCTL_TIMEOUT_S:.0f} seconds. {by_hand}"
        ) from None
    except OSError as exc:
        raise ServiceError(f"`{shown}` could not run: {exc.strerror or exc}. {by_hand}") from None
    if result.returncode != 0:
        said = " ".join(str(result.stderr or result.stdout or "").split())
        reason = f": {said}" if said else f" (exit status {result.returncode})"
        if "--user" in command and "bus" in said.lower():
            # The usual cause: a shell reached through su or sudo has no user session.
            reason += " (a user service needs a direct login as this user, not su or sudo)"
        raise ServiceError(f"`{shown}` failed{reason}. {by_hand}")
    done.append(f"Ran: {shown}")


def _linger_note(user_mode: bool) -> list[str]:
    if not user_mode:
        return []
    user = getpass.getuser()
    if (LINGER_DIR / user).exists():
        return [f"Lingering is on for {user}: the service starts at boot, without a login."]
    return [
        "So that it also starts at boot, before anyone logs in, run this once:",
        f"    loginctl enable-linger {user}",
        f"(if that is refused, ask an administrator to run: sudo loginctl enable-linger {user})",
    ]


def _manual_daemon(home: Path) -> str | None:
    """The pid of a daemon already running for this home, from its lock file, if any."""
    if not Home(home).daemon_running():
        return None
    parts = (home / LOCK_FILE).read_text().split()
    return parts[0] if parts else "?"
