"""Staff login: one scrypt-hashed password per account, sessions as random tokens.

The browser holds the token (an HttpOnly, SameSite=Strict cookie); the database holds only its
SHA-256, so a copied database or backup opens no session. Changing a password ends every session.
Failed logins are counted per client address and refused past a small budget.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import sqlite3
import time
from collections import deque
from dataclasses import dataclass

from ..db import transaction
from ..store import now_ms

STAFF = "staff"  # the one account of round 1; the table allows more later
MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 1024  # scrypt takes any length; a megabyte "password" is only a DoS
SESSION_HOURS = 12
# scrypt cost: 16 MiB and ~50 ms per check on a modest PC; slow for a guesser, quick for a login.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
# Failed logins allowed per client address within the window; then 429 until it slides by.
LOGIN_FAILURES, LOGIN_WINDOW_SECONDS = 5, 300.0


class PasswordError(ValueError):
    """The password cannot be used; the message says why."""


def check_new_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise PasswordError(
            f"the staff password must have at least {MIN_PASSWORD_CHARS} characters"
        )
    if len(password) > MAX_PASSWORD_CHARS:
        raise PasswordError(f"the staff password must have at most {MAX_PASSWORD_CHARS} characters")
    return password


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join(
        ["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)]
    )


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = _scrypt(
            password[:MAX_PASSWORD_CHARS], base64.b64decode(salt), int(n), int(r), int(p)
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=32
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def set_password(conn: sqlite3.Connection, password: str, account: str = STAFF) -> None:
    """Store a new password hash and end the account's sessions."""
    stored = hash_password(check_new_password(password))
    with transaction(conn):
        conn.execute(
            "INSERT INTO staff_accounts (name, password, changed_at) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET password = excluded.password, "
            "changed_at = excluded.changed_at",
            (account, stored, now_ms()),
        )
        conn.execute("DELETE FROM staff_sessions WHERE account = ?", (account,))


def password_is_set(conn: sqlite3.Connection, account: str = STAFF) -> bool:
    row = conn.execute("SELECT 1 FROM staff_accounts WHERE name = ?", (account,)).fetchone()
    return row is not None


def check_login(conn: sqlite3.Connection, password: str, account: str = STAFF) -> bool:
    row = conn.execute("SELECT password FROM staff_accounts WHERE name = ?", (account,)).fetchone()
    if row is None:
        return False
    return verify_password(password, str(row[0]))


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii", "replace")).digest()


def open_session(conn: sqlite3.Connection, account: str = STAFF) -> str:
    """A new session token for ``account``; expired sessions are swept on the way."""
    token = secrets.token_urlsafe(32)
    now = now_ms()
    with transaction(conn):
        conn.execute("DELETE FROM staff_sessions WHERE expires_at < ?", (now,))
        conn.execute(
            "INSERT INTO staff_sessions (token_hash, account, created_at, expires_at) "
            "VALUES (?, ?, ?, ?)",
            (token_hash(token), account, now, now + SESSION_HOURS * 3600 * 1000),
        )
    return token


def session_account(conn: sqlite3.Connection, token: str) -> str | None:
    """The account a live session token belongs to; None for an unknown or expired token."""
    if not token or len(token) > 100:
        return None
    row = conn.execute(
        "SELECT account FROM staff_sessions WHERE token_hash = ? AND expires_at >= ?",
        (token_hash(token), now_ms()),
    ).fetchone()
    return None if row is None else str(row[0])


def close_session(conn: sqlite3.Connection, token: str) -> None:
    conn.execute("DELETE FROM staff_sessions WHERE token_hash = ?", (token_hash(token),))


@dataclass
class LoginLimiter:
    """Failed logins per client address in a sliding window (kept in memory: a restart forgets,
    which costs a guesser nothing it could not get by waiting). Bounded in addresses held."""

    failures: int = LOGIN_FAILURES
    window: float = LOGIN_WINDOW_SECONDS
    max_clients: int = 10_000

    def __post_init__(self) -> None:
        self._seen: dict[str, deque[float]] = {}

    def blocked_for(self, client: str, now: float | None = None) -> float:
        """Seconds until ``client`` may try again; 0 when it may now."""
        now = time.monotonic() if now is None else now
        times = self._seen.get(client)
        if not times:
            return 0.0
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) < self.failures:
            return 0.0
        return times[0] + self.window - now

    def failed(self, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if client not in self._seen and len(self._seen) >= self.max_clients:
            # Forget the stalest address, so a spray of addresses cannot grow this without end.
            stalest = min(self._seen, key=lambda c: self._seen[c][-1] if self._seen[c] else 0.0)
            del self._seen[stalest]
        self._seen.setdefault(client, deque(maxlen=self.failures)).append(now)

    def succeeded(self, client: str) -> None:
        self._seen.pop(client, None)
