"""Who may use the console: the token, the users file, sessions, CSRF and sign-in limits.

Nothing here logs, and no ``repr`` shows a secret: tokens, passwords, hashes and session
ids stay in memory. What each rule protects against is in ``docs/console.md``.

    hash_password / check_password   scrypt with a random salt, compared in constant time
    Users                            the users file: ``name:role:hash`` per line
    Credentials                      the configured token and users: who a sign-in is
    Sessions                         random ids -> (user, role, CSRF token), expiring
    SignInLimit                      failed sign-ins per client address, per minute
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from cachetools import TTLCache

from schemas.errors import ConfigError

Role = Literal["viewer", "editor"]
ROLES: Final[tuple[Role, ...]] = ("viewer", "editor")
TOKEN_USER: Final = "token"  # the name a token sign-in goes by in the history
# scrypt's parameters: 16 MiB of memory per check, ~50 ms here; stored with each hash.
_N, _R, _P = 2**14, 8, 1


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64): what a users file holds."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, encoded: str) -> bool:
    """Does ``password`` match a ``hash_password`` result? (Constant-time compare.)"""
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
            dklen=len(expected),
        )  # fmt: skip
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    hash: str = field(repr=False)


class Users:
    """The users file: one ``name:role:hash`` per line; blank lines and ``#`` comments."""

    def __init__(self, users: dict[str, User]) -> None:
        self._users = users

    @classmethod
    def load(cls, path: Path) -> Users:
        """Read the file; a malformed line is a ConfigError naming its line (not its hash)."""
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"console_users: cannot read {path}: {exc}") from exc
        users: dict[str, User] = {}
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(":", 2)
            where = f"console_users: {path}, line {number}"
            if len(parts) != 3 or not parts[0] or not parts[2].startswith("scrypt$"):
                raise ConfigError(
                    f"{where}: must be name:role:hash, a line from `beckon console-user`"
                )
            name, role, hashed = parts
            if role not in ROLES:
                raise ConfigError(f"{where}: role must be viewer or editor, got {role!r}")
            if name in users:
                raise ConfigError(f"{where}: the user {name!r} is listed twice")
            users[name] = User(name, role, hashed)
        return cls(users)

    def check(self, name: str, password: str) -> User | None:
        """The user, if the password is theirs. An unknown name costs a hash too, so the
        answer's timing does not tell which names exist."""
        user = self._users.get(name)
        if user is None:
            check_password(password, _DUMMY)
            return None
        return user if check_password(password, user.hash) else None

    def __len__(self) -> int:
        return len(self._users)


_DUMMY: Final = hash_password(secrets.token_hex(8))


@dataclass(frozen=True)
class Principal:
    """Who is asking: a user name and a role."""

    name: str
    role: Role

    @property
    def may_edit(self) -> bool:
        return self.role == "editor"


class Credentials:
    """The configured token (an editor's) and users; either may be absent, not both."""

    def __init__(self, token: str | None, users: Users | None) -> None:
        if not token and not users:
            raise ConfigError("the console needs BECKON_CONSOLE_TOKEN or BECKON_CONSOLE_USERS")
        self._token = token.encode() if token else None
        self.users = users

    def by_token(self, token: str) -> Principal | None:
        if self._token is None or not token:
            return None
        if hmac.compare_digest(token.encode(), self._token):
            return Principal(TOKEN_USER, "editor")
        return None

    def by_password(self, name: str, password: str) -> Principal | None:
        if self.users is None:
            return None
        user = self.users.check(name, password)
        return Principal(user.name, user.role) if user else None

    def __repr__(self) -> str:
        return f"Credentials(token={'set' if self._token else None}, users={len(self.users or ())})"


def new_token() -> str:
    """A token for a console started without one (printed once, in its sign-in URL)."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Session:
    principal: Principal
    csrf: str = field(repr=False)


class Sessions:
    """Signed-in sessions by random id; each lasts ``ttl_s`` from sign-in."""

    def __init__(self, ttl_s: float, maxsize: int = 10_000) -> None:
        self._sessions: TTLCache[str, Session] = TTLCache(maxsize=maxsize, ttl=ttl_s)

    def start(self, principal: Principal) -> tuple[str, Session]:
        sid = secrets.token_urlsafe(32)
        session = self._sessions[sid] = Session(principal, secrets.token_urlsafe(32))
        return sid, session

    def get(self, sid: str | None) -> Session | None:
        return self._sessions.get(sid) if sid else None

    def end(self, sid: str | None) -> None:
        if sid:
            self._sessions.pop(sid, None)


def csrf_ok(session: Session, sent: str | None) -> bool:
    """Did a change made with this session's cookie carry the session's CSRF token?"""
    return sent is not None and hmac.compare_digest(sent.encode(), session.csrf.encode())


class SignInLimit:
    """At most ``failures`` failed sign-ins per client in ``window_s``; then wait."""

    def __init__(
        self, failures: int = 5, window_s: float = 60, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.failures, self.window_s, self.clock = failures, window_s, clock
        self._failed: TTLCache[str, list[float]] = TTLCache(maxsize=100_000, ttl=window_s)

    def retry_after(self, client: str) -> int:
        """Seconds this client must wait before trying again (0: it may try now)."""
        now = self.clock()
        recent = [t for t in self._failed.get(client, ()) if now - t < self.window_s]
        if len(recent) < self.failures:
            return 0
        return max(1, int(recent[0] + self.window_s - now + 0.999))

    def failed(self, client: str) -> None:
        now = self.clock()
        recent = [t for t in self._failed.get(client, ()) if now - t < self.window_s]
        self._failed[client] = [*recent, now]

    def succeeded(self, client: str) -> None:
        self._failed.pop(client, None)
