"""The console's JSON API over a real broker: `beckon console` as a subprocess.

Who may do what (401, 403, CSRF, 429), validation (422 at the field), publish with its
history entry, a stale publish (409), history with its differences, and rollback: the
rules topic and the history topic are read back from Kafka to check each step. The
process's output must never show the token, a password or a session id.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from schemas.rules import EMPTY_RULES
from streams.console.auth import hash_password
from streams.kafka.rules_topic import read_history, read_rules
from streams.settings import Settings
from tests.helpers import free_port

pytestmark = pytest.mark.integration

TOKEN = "console-test-token-5f2b9c"
PASSWORDS = {"maria": "maria-editor-pw", "olaf": "olaf-viewer-pw"}
RULE = {
    "id": "pricing",
    "location": {"include": ["*/pricing*"]},
    "trigger": {"dwell_seconds": 30},
    "message": {"text": "Questions about {plan|our plans}?"},
    "queue": "sales",
}


class Console:
    def __init__(self, url: str, settings: Settings, output: Path) -> None:
        self.url, self.settings, self.output = url, settings, output

    def session(self, **credentials: str) -> tuple[requests.Session, str]:
        """A signed-in browser-like session and its CSRF token."""
        s = requests.Session()
        r = s.post(f"{self.url}/api/session", json=credentials, timeout=10)
        assert r.status_code == 200, r.text
        return s, r.json()["csrf"]

    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def console(live: tuple[Settings, dict[str, str]], tmp_path: Path) -> Iterator[Console]:
    settings, env = live
    port = free_port()
    users = tmp_path / "users"
    users.write_text(
        f"maria:editor:{hash_password(PASSWORDS['maria'])}\n"
        f"olaf:viewer:{hash_password(PASSWORDS['olaf'])}\n"
    )
    env = {**env, "BECKON_DASHBOARD_PORT": str(port), "BECKON_CONSOLE_TOKEN": TOKEN,
           "BECKON_CONSOLE_USERS": str(users)}  # fmt: skip
    output = tmp_path / "console.log"
    with output.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "console"], env=env, stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://localhost:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, output.read_text()
            try:
                requests.get(f"{url}/healthz", timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, output.read_text()
                time.sleep(0.3)
        yield Console(url, settings, output)
    finally:
        process.terminate()
        process.wait(timeout=30)
    text = output.read_text()
    for secret in (TOKEN, *PASSWORDS.values()):
        assert secret not in text, f"a secret reached the console's output:\n{text}"


ROUTES = [
    ("GET", "/api/rules"),
    ("POST", "/api/rules/validate"),
    ("POST", "/api/rules/preview"),
    ("POST", "/api/rules/publish"),
    ("GET", "/api/rules/history"),
    ("POST", "/api/rules/rollback"),
]


def test_every_api_route_answers_401_without_credentials(console: Console) -> None:
    for method, path in ROUTES:
        for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": TOKEN}):
            r = requests.request(
                method, console.url + path, json={"rules": [RULE]}, headers=headers, timeout=10
            )
            assert r.status_code == 401, (method, path, headers, r.text)
            assert r.headers["WWW-Authenticate"] == "Bearer"
    assert len(read_rules(console.settings).ruleset) == 0  # nothing was published


def test_a_change_with_the_cookie_alone_is_refused_as_csrf(console: Console) -> None:
    s, csrf = console.session(token=TOKEN)
    body = {"rules": [RULE], "comment": "first"}
    # What a cross-site form would send: the cookie, and no CSRF header.
    r = s.post(f"{console.url}/api/rules/publish", json=body, timeout=10)
    assert r.status_code == 403 and "CSRF" in r.json()["error"]
    r = s.post(f"{console.url}/api/rules/publish", json=body, headers={"X-CSRF-Token": "x"},
               timeout=10)  # fmt: skip
    assert r.status_code == 403
    assert len(read_rules(console.settings).ruleset) == 0
    r = s.post(f"{console.url}/api/rules/publish", json=body, headers={"X-CSRF-Token": csrf},
               timeout=30)  # fmt: skip
    assert r.status_code == 200, r.text
    assert [rule.id for rule in read_rules(console.settings).ruleset] == ["pricing"]
    cookie = next(c for c in s.cookies if c.name == "beckon_session")
    assert cookie.has_nonstandard_attr("HttpOnly")
    assert cookie.get_nonstandard_attr("SameSite") == "Strict"
    # Signed out, the cookie is worth nothing.
    assert s.delete(f"{console.url}/api/session", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert s.get(f"{console.url}/api/rules", timeout=10).status_code == 401


def test_a_viewer_reads_and_validates_but_may_not_publish(console: Console) -> None:
    s, csrf = console.session(user="olaf", password=PASSWORDS["olaf"])
    assert s.get(f"{console.url}/api/session").json()["role"] == "viewer"
    h = {"X-CSRF-Token": csrf}
    assert s.get(f"{console.url}/api/rules", timeout=10).status_code == 200
    assert s.post(f"{console.url}/api/rules/validate", json={"rules": [RULE]}, headers=h,
                  timeout=10).status_code == 200  # fmt: skip
    for path, body in (("publish", {"rules": [RULE], "comment": "x"}),
                       ("rollback", {"version": "abc"})):  # fmt: skip
        r = s.post(f"{console.url}/api/rules/{path}", json=body, headers=h, timeout=10)
        assert r.status_code == 403, r.text
        assert "viewer" in r.json()["error"]
    assert len(read_rules(console.settings).ruleset) == 0


def test_validation_errors_name_the_rule_and_the_field(console: Console) -> None:
    bad = {**RULE, "trigger": {"dwell_seconds": 0}}
    r = requests.post(f"{console.url}/api/rules/validate", json={"rules": [bad]},
                      headers=console.bearer(), timeout=10)  # fmt: skip
    assert r.status_code == 422
    assert r.json()["errors"] == [{"rule_id": "pricing", "index": 0,
                                   "path": "trigger.dwell_seconds",
                                   "reason": "must be greater than 0, got 0"}]  # fmt: skip
    r = requests.post(f"{console.url}/api/rules/validate",
                      json={"rules": [RULE], "sample": {"plan": "Pro"}},
                      headers=console.bearer(), timeout=10)  # fmt: skip
    assert r.status_code == 200
    assert r.json()["rendered"] == {"pricing": {"text": "Questions about Pro?", "locales": {}}}
    assert "dwell_seconds: 30" in r.json()["yaml"]
    # A bad draft is never published: the publish refuses it whole.
    r = requests.post(f"{console.url}/api/rules/publish",
                      json={"rules": [RULE, bad], "comment": "x"},
                      headers=console.bearer(), timeout=10)  # fmt: skip
    assert r.status_code == 422
    assert len(read_rules(console.settings).ruleset) == 0


def _post(console: Console, path: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{console.url}/api/rules/{path}", json=body, headers=console.bearer(),
                         timeout=30)  # fmt: skip


def test_publish_history_and_rollback_live_in_kafka(console: Console) -> None:
    s, csrf = console.session(user="maria", password=PASSWORDS["maria"])
    first = s.post(f"{console.url}/api/rules/publish", headers={"X-CSRF-Token": csrf},
                   json={"rules": [RULE], "comment": "pricing hesitation"}, timeout=30)  # fmt: skip
    assert first.status_code == 200, first.text
    v1 = first.json()["version"]
    in_force = s.get(f"{console.url}/api/rules", timeout=10).json()
    assert in_force["version"] == v1
    assert in_force["published"]["author"] == "maria"
    assert in_force["published"]["comment"] == "pricing hesitation"
    assert in_force["words"]["pricing"]["trigger"] == "after 30 s on the page"

    second_rule = {**RULE, "id": "cart", "location": {"include": ["*/cart"]}}
    changed = {**RULE, "trigger": {"dwell_seconds": 45}}
    assert _post(console, "publish", {"rules": [changed, second_rule], "comment": "x",
                                      "expected_version": "stale"}).status_code == 409  # fmt: skip
    second = _post(console, "publish", {"rules": [changed, second_rule], "comment": "longer",
                                        "expected_version": v1})  # fmt: skip
    assert second.status_code == 200, second.text
    v2 = second.json()["version"]
    assert second.json()["published"] == ["cart", "pricing"]
    assert read_rules(console.settings).ruleset.version == v2

    history = requests.get(f"{console.url}/api/rules/history", headers=console.bearer(),
                           timeout=10).json()["versions"]  # fmt: skip
    assert [(e["version"], e["author"], e["action"]) for e in history] == [
        (v2, "token", "publish"), (v1, "maria", "publish")]  # fmt: skip
    assert history[0]["diff"]["added"] == ["cart"]
    assert history[0]["diff"]["changed"] == ["pricing"]
    assert "-    dwell_seconds: 30\n+    dwell_seconds: 45\n" in history[0]["diff"]["text"]

    back = _post(console, "rollback", {"version": v1})
    assert back.status_code == 200, back.text
    assert back.json()["deleted"] == ["cart"]
    book = read_rules(console.settings)
    assert book.ruleset.version == v1
    entries = read_history(console.settings)  # straight from Kafka, not the console
    assert [(e["version"], e["action"], e["previous"]) for e in entries] == [
        (v1, "publish", EMPTY_RULES.version),
        (v2, "publish", v1),
        (v1, "rollback", v2),
    ]
    assert entries[2]["comment"] == f"rollback to {v1}"
    assert _post(console, "rollback", {"version": "0123456789ab"}).status_code == 404


def test_the_token_in_the_url_signs_in_and_is_dropped_from_the_address(console: Console) -> None:
    s = requests.Session()
    r = s.get(f"{console.url}/rules?token={TOKEN}", allow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["Location"] == "/rules"
    assert s.get(f"{console.url}/api/session", timeout=10).json()["role"] == "editor"
    r = requests.get(f"{console.url}/rules?token=wrong", allow_redirects=False, timeout=10)
    assert r.headers["Location"] == "/rules?signin=failed"


def test_failed_sign_ins_are_rate_limited(console: Console) -> None:
    for _ in range(5):
        r = requests.post(f"{console.url}/api/session", json={"user": "maria", "password": "no"},
                          timeout=10)  # fmt: skip
        assert r.status_code == 401
    r = requests.post(f"{console.url}/api/session", json={"token": TOKEN}, timeout=10)
    assert r.status_code == 429  # even the right token waits: guesses must not go on
    assert 0 < int(r.headers["Retry-After"]) <= 60
