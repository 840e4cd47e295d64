"""Sign-in pieces: password hashes, the users file, tokens, sessions, CSRF, the limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.errors import ConfigError
from streams.console.auth import (
    Credentials,
    Principal,
    Sessions,
    SignInLimit,
    Users,
    check_password,
    csrf_ok,
    hash_password,
)


def test_a_password_checks_against_its_hash_and_nothing_else() -> None:
    encoded = hash_password("correct horse")
    assert encoded.startswith("scrypt$")
    assert "correct horse" not in encoded
    assert check_password("correct horse", encoded)
    assert not check_password("correct horsE", encoded)
    assert not check_password("correct horse", "scrypt$garbage")
    assert hash_password("correct horse") != encoded  # salted


def _users(tmp_path: Path, text: str) -> Users:
    path = tmp_path / "users"
    path.write_text(text)
    return Users.load(path)


def test_the_users_file_gives_each_user_a_role(tmp_path: Path) -> None:
    users = _users(
        tmp_path,
        f"# console users\nmaria:editor:{hash_password('maria-pw-1')}\n\n"
        f"olaf:viewer:{hash_password('olaf-pw-22')}\n",
    )
    credentials = Credentials(None, users)
    assert credentials.by_password("maria", "maria-pw-1") == Principal("maria", "editor")
    assert credentials.by_password("olaf", "olaf-pw-22") == Principal("olaf", "viewer")
    assert credentials.by_password("olaf", "maria-pw-1") is None
    assert credentials.by_password("nobody", "x") is None
    assert credentials.by_token("anything") is None  # no token configured


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("maria:admin:scrypt$1$1$1$AA==$AA==", "role must be viewer or editor, got 'admin'"),
        ("maria:editor", "must be name:role:hash"),
        ("maria:editor:plaintext", "must be name:role:hash"),
    ],
)
def test_a_bad_users_line_is_named_by_its_number_without_its_hash(
    tmp_path: Path, line: str, says: str
) -> None:
    with pytest.raises(ConfigError, match="line 2") as caught:
        _users(tmp_path, f"# header\n{line}\n")
    assert says in str(caught.value)
    assert "AA==" not in str(caught.value)


def test_a_user_listed_twice_is_refused(tmp_path: Path) -> None:
    line = f"maria:editor:{hash_password('pw-pw-pw-1')}\n"
    with pytest.raises(ConfigError, match="listed twice"):
        _users(tmp_path, line + line)


def test_the_token_makes_an_editor_and_is_compared_whole() -> None:
    credentials = Credentials("s3cret-token", None)
    assert credentials.by_token("s3cret-token") == Principal("token", "editor")
    assert credentials.by_token("s3cret-toke") is None
    assert credentials.by_token("") is None
    assert "s3cret" not in repr(credentials)


def test_no_token_and_no_users_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="BECKON_CONSOLE_TOKEN"):
        Credentials(None, None)


def test_sessions_carry_a_csrf_token_and_end() -> None:
    sessions = Sessions(ttl_s=3600)
    sid, session = sessions.start(Principal("maria", "editor"))
    assert sessions.get(sid) is session
    assert csrf_ok(session, session.csrf)
    assert not csrf_ok(session, None)
    assert not csrf_ok(session, session.csrf[:-1])
    assert session.csrf not in repr(session)
    sessions.end(sid)
    assert sessions.get(sid) is None
    assert sessions.get(None) is None


def test_failed_sign_ins_are_limited_per_client_for_the_window() -> None:
    now = [1000.0]
    limit = SignInLimit(failures=3, window_s=60, clock=lambda: now[0])
    for _ in range(3):
        assert limit.retry_after("10.0.0.1") == 0
        limit.failed("10.0.0.1")
    assert limit.retry_after("10.0.0.1") == 60
    assert limit.retry_after("10.0.0.2") == 0  # another client is not held back
    now[0] += 30
    assert limit.retry_after("10.0.0.1") == 30
    now[0] += 30
    assert limit.retry_after("10.0.0.1") == 0
    limit.failed("10.0.0.1")
    limit.succeeded("10.0.0.1")
    assert limit.retry_after("10.0.0.1") == 0
