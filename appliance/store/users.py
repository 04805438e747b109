"""Local accounts of the web UI: users (argon2id hashes), sessions and login rate limiting.

Every change to an account and every login, failed login and logout is written to the
hash-chained audit log in the same transaction. No password, hash or session token is ever
logged or audited; session tokens are stored only as their sha256.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from appliance.errors import ApplianceError
from appliance.store import audit
from appliance.store.db import Store

log = logging.getLogger(__name__)

ROLES = ("inspector", "supervisor", "model_engineer", "admin")
# What each role may do: admin everything, supervisor what an inspector does, model engineer apart.
GRANTS: dict[str, frozenset[str]] = {
    "inspector": frozenset({"inspector"}),
    "supervisor": frozenset({"supervisor", "inspector"}),
    "model_engineer": frozenset({"model_engineer"}),
    "admin": frozenset(ROLES),
}
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,31}$")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
TOUCH_EVERY_S = 60.0  # a session's last_seen_at is written at most this often


@dataclass(frozen=True)
class User:
    """The logged-in user, as the web pages see it."""

    id: int
    username: str
    role: str

    def has_role(self, *roles: str) -> bool:
        """True when this user's role grants any of ``roles`` (admin grants all)."""
        return any(role in GRANTS[self.role] for role in roles)


@dataclass(frozen=True)
class UserRow:
    id: int
    username: str
    role: str
    disabled: bool
    created_at: float


@dataclass(frozen=True)
class Session:
    user: User
    csrf_token: str
    token_hash: str


@dataclass(frozen=True)
class LoginPolicy:
    max_failures_per_user: int = 5
    max_failures_per_ip: int = 20
    window_s: float = 15 * 60  # failures older than this are forgotten (so a lock lasts at most this)
    idle_s: float = 30 * 60
    absolute_s: float = 12 * 3600


class AccountError(ApplianceError):
    """A refused account change; ``code`` is the UI text key (see appliance/web/i18n.py)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class LoginRefused(Exception):
    """Wrong username or password (``locked`` False, one message for both) or too many failures."""

    def __init__(self, locked: bool):
        super().__init__("login locked" if locked else "login failed")
        self.locked = locked


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalise_username(username: str) -> str:
    return username.strip().lower()[:64]


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError("password_too_short", f"passwords need at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError("password_too_long", f"passwords have at most {MAX_PASSWORD} characters")


class Accounts:
    """Users, sessions and login attempts in the appliance's store."""

    def __init__(self, store: Store, policy: LoginPolicy | None = None, hasher: PasswordHasher | None = None):
        self.store = store
        self.policy = policy or LoginPolicy()
        self.hasher = hasher or PasswordHasher()  # argon2id, RFC 9106 low-memory profile
        self.clock: Callable[[], float] = time.time

    @cached_property
    def _dummy_hash(self) -> str:
        # Verified against on unknown usernames, so they cost as much time as known ones.
        return self.hasher.hash(secrets.token_urlsafe(16))

    # --- users --------------------------------------------------------------------------------

    def create_user(self, username: str, password: str, role: str, actor: str) -> User:
        name = normalise_username(username)
        if not USERNAME.match(name):
            raise AccountError("invalid_username", "usernames are 3-32 of a-z 0-9 . _ - (starting with a letter/digit)")
        if role not in ROLES:
            raise AccountError("invalid_role", f"role must be one of {', '.join(ROLES)}")
        check_password(password)
        hashed = self.hasher.hash(password)
        now = self.clock()
        with self.store.transaction() as conn:
            if conn.execute("SELECT 1 FROM users WHERE username = ?", (name,)).fetchone():
                raise AccountError("user_exists", f"user {name!r} already exists")
            cur = conn.execute(
                "INSERT INTO users (username, password_hash, role, created_at, password_changed_at) VALUES (?,?,?,?,?)",
                (name, hashed, role, now, now),
            )
            audit.append(conn, actor, "user_created", name, {"role": role}, now=now)
        return User(int(cur.lastrowid or 0), name, role)

    def get(self, username: str) -> UserRow | None:
        rows = self.store.query(
            "SELECT id, username, role, disabled, created_at FROM users WHERE username = ?",
            (normalise_username(username),),
        )
        return None if not rows else UserRow(rows[0][0], rows[0][1], rows[0][2], bool(rows[0][3]), rows[0][4])

    def list_users(self) -> list[UserRow]:
        rows = self.store.query("SELECT id, username, role, disabled, created_at FROM users ORDER BY username")
        return [UserRow(r[0], r[1], r[2], bool(r[3]), r[4]) for r in rows]

    def count_admins(self) -> int:
        """Enabled admins."""
        return int(self.store.query("SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0")[0][0])

    def _update(self, username: str, sql: str, params: tuple[object, ...], actor: str, action: str,
                details: dict[str, object], end_sessions: bool) -> None:
        name = normalise_username(username)
        with self.store.transaction() as conn:
            row = conn.execute("SELECT id FROM users WHERE username = ?", (name,)).fetchone()
            if row is None:
                raise AccountError("no_such_user", f"no user {name!r}")
            conn.execute(f"UPDATE users SET {sql} WHERE id = ?", (*params, row[0]))
            if end_sessions:
                conn.execute("DELETE FROM sessions WHERE user_id = ?", (row[0],))
            audit.append(conn, actor, action, name, details, now=self.clock())

    def set_disabled(self, username: str, disabled: bool, actor: str) -> None:
        """Disable (ending the user's sessions) or enable an account."""
        self._update(username, "disabled = ?", (int(disabled),), actor,
                     "user_disabled" if disabled else "user_enabled", {}, end_sessions=disabled)

    def set_password(self, username: str, password: str, actor: str) -> None:
        """Set a new password and end the user's sessions."""
        check_password(password)
        hashed = self.hasher.hash(password)
        self._update(username, "password_hash = ?, password_changed_at = ?", (hashed, self.clock()), actor,
                     "password_reset", {}, end_sessions=True)

    def set_role(self, username: str, role: str, actor: str) -> None:
        if role not in ROLES:
            raise AccountError("invalid_role", f"role must be one of {', '.join(ROLES)}")
        self._update(username, "role = ?", (role,), actor, "role_changed", {"role": role}, end_sessions=True)

    # --- login and sessions -----------------------------------------------------------------------

    def is_locked(self, username: str, ip: str) -> bool:
        since = self.clock() - self.policy.window_s
        name = normalise_username(username)
        per_user, per_ip = self.store.query(
            "SELECT (SELECT COUNT(*) FROM login_failures WHERE username = ? AND ts > ?), "
            "(SELECT COUNT(*) FROM login_failures WHERE ip = ? AND ts > ?)",
            (name, since, ip, since),
        )[0]
        return bool(per_user >= self.policy.max_failures_per_user or per_ip >= self.policy.max_failures_per_ip)

    def _verify(self, username: str, password: str) -> User | None:
        dummy = self._dummy_hash  # made before the lookup, so the first login costs the same either way
        rows = self.store.query("SELECT id, username, role, disabled, password_hash FROM users WHERE username = ?",
                                (username,))
        stored = rows[0][4] if rows else dummy
        try:
            self.hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if not rows or rows[0][3]:
            return None
        if self.hasher.check_needs_rehash(stored):
            with self.store.transaction() as conn:
                conn.execute("UPDATE users SET password_hash = ? WHERE id = ?",
                             (self.hasher.hash(password), rows[0][0]))
        return User(rows[0][0], rows[0][1], rows[0][2])

    def login(self, username: str, password: str, ip: str) -> tuple[str, Session]:
        """Check the password and open a session: (cookie token, session). Raises ``LoginRefused``."""
        name = normalise_username(username)
        now = self.clock()
        if self.is_locked(name, ip):
            # Not audited (an attacker could fill the log cheaply); nothing identifying at WARNING.
            log.warning("login refused: too many recent failures for this account or client")
            raise LoginRefused(locked=True)
        user = self._verify(name, password[:MAX_PASSWORD]) if name else None
        if user is None:
            with self.store.transaction() as conn:
                conn.execute("INSERT INTO login_failures (ts, username, ip) VALUES (?,?,?)", (now, name, ip))
                conn.execute("DELETE FROM login_failures WHERE ts < ?", (now - 4 * self.policy.window_s,))
                audit.append(conn, "anonymous", "login_failed", name, {"ip": ip}, now=now)
            raise LoginRefused(locked=False)
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        session = Session(user, csrf, _sha256(token))
        with self.store.transaction() as conn:
            conn.execute(
                "DELETE FROM sessions WHERE created_at < ? OR last_seen_at < ?",
                (now - self.policy.absolute_s, now - self.policy.idle_s),
            )
            conn.execute(
                "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, last_seen_at) VALUES (?,?,?,?,?)",
                (session.token_hash, user.id, csrf, now, now),
            )
            conn.execute("DELETE FROM login_failures WHERE username = ?", (name,))
            audit.append(conn, user.username, "login", user.username, {"ip": ip}, now=now)
        return token, session

    def session_for(self, token: str | None) -> Session | None:
        """The live session of a cookie token (None when unknown, expired or its user disabled)."""
        if not token or len(token) > 128:
            return None
        token_hash = _sha256(token)
        rows = self.store.query(
            "SELECT s.csrf_token, s.created_at, s.last_seen_at, u.id, u.username, u.role, u.disabled "
            "FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?",
            (token_hash,),
        )
        if not rows:
            return None
        csrf, created, seen, user_id, username, role, disabled = rows[0]
        now = self.clock()
        if disabled or now - created > self.policy.absolute_s or now - seen > self.policy.idle_s:
            with self.store.transaction() as conn:
                conn.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))
            return None
        if now - seen > TOUCH_EVERY_S:
            with self.store.transaction() as conn:
                conn.execute("UPDATE sessions SET last_seen_at = ? WHERE token_hash = ?", (now, token_hash))
        return Session(User(user_id, username, role), csrf, token_hash)

    def logout(self, session: Session) -> None:
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM sessions WHERE token_hash = ?", (session.token_hash,))
            audit.append(conn, session.user.username, "logout", session.user.username, {}, now=self.clock())
