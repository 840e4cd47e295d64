"""`beckon console-user NAME ROLE`: a users-file line the console accepts."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from streams.cli import main
from streams.console.auth import Credentials, Principal, Users


def test_the_printed_line_signs_that_user_in_with_that_role(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("long-enough-pw\n"))
    assert main(["console-user", "maria", "editor"]) == 0
    line = capsys.readouterr().out
    assert line.startswith("maria:editor:scrypt$") and "long-enough-pw" not in line
    (tmp_path / "users").write_text(line)
    credentials = Credentials(None, Users.load(tmp_path / "users"))
    assert credentials.by_password("maria", "long-enough-pw") == Principal("maria", "editor")


@pytest.mark.parametrize(
    ("argv", "password", "says"),
    [
        (["console-user", "maria", "admin"], "long-enough-pw", "role must be one of"),
        (["console-user", "ma:ria", "viewer"], "long-enough-pw", "hold no ':'"),
        (["console-user", "maria", "viewer"], "short", "at least 8 characters"),
    ],
)
def test_a_bad_user_is_refused_with_the_reason(
    argv: list[str], password: str, says: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert says in captured.err and captured.out == ""
