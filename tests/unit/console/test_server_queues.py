"""The console's API with queue budgets: a draft carries ``queues`` beside its rules, is
answered with them (and in words), a bad budget is a 422 naming the field, and a
rollback or the history carries the queues of the version. Kafka is replaced by
literal history entries."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from schemas.rules import Queue, QueueBudget, RuleSet
from streams.console import server
from streams.settings import Settings

TOKEN = "unit-test-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
RULE = {"id": "quote", "queue": "sales", "trigger": {"dwell_seconds": 5},
        "message": {"text": "hi"}}  # fmt: skip
SALES = {"budget": {"invitations": 20, "per": "minute"}}


def _app() -> web.Application:
    settings = Settings(bootstrap="localhost:1", console_token=TOKEN)  # type: ignore[arg-type]
    app = web.Application()
    server.add_console(app, settings, lambda: [])
    return app


def _call(app: web.Application, *calls: tuple[str, str, Any, dict[str, str]]) -> list[Any]:
    async def scenario() -> list[Any]:
        async with TestClient(TestServer(app)) as client:
            out = []
            for method, path, body, headers in calls:
                r = await client.request(method, path, json=body, headers=headers)
                out.append((r.status, await r.json()))
            return out

    return asyncio.run(scenario())


def test_validate_answers_the_queues_their_words_and_a_rules_file_with_them() -> None:
    draft = {"rules": [RULE], "queues": {"sales": SALES}}
    ((status, body),) = _call(_app(), ("POST", "/api/rules/validate", draft, BEARER))
    assert status == 200
    assert body["queues"] == {"sales": SALES}
    assert body["queue_words"] == {"sales": "at most 20 invitations per minute"}
    assert body["yaml"].startswith("queues:\n  sales:\n    budget:\n")


def test_a_bad_budget_is_422_naming_the_field() -> None:
    draft = {"rules": [RULE], "queues": {"sales": {"budget": {"invitations": 20, "per": "day"}}}}
    ((status, body),) = _call(_app(), ("POST", "/api/rules/validate", draft, BEARER))
    assert status == 422
    assert body["errors"] == [{"rule_id": None, "index": None, "path": "queues.sales.budget.per",
                               "reason": "must be 'minute' or 'hour', got 'day'"}]  # fmt: skip


def test_changing_a_budget_needs_a_signed_in_editor() -> None:
    draft = {"rules": [RULE], "queues": {"sales": SALES}, "comment": "a budget for sales"}
    (publish, validate) = _call(
        _app(),
        ("POST", "/api/rules/publish", draft, {}),
        ("POST", "/api/rules/validate", draft, {}),
    )
    assert publish[0] == validate[0] == 401


def test_rollback_publishes_the_versions_queues_and_history_names_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = {"version": "a", "rules": [RULE], "action": "publish"}
    after = {"version": "b", "rules": [RULE], "queues": {"sales": SALES}, "action": "publish"}
    published: list[RuleSet] = []

    def publish_rules(settings: Settings, ruleset: RuleSet, **kwargs: Any) -> Any:
        published.append(ruleset)
        return [], [], None

    monkeypatch.setattr(server, "read_history", lambda settings: [before, after])
    monkeypatch.setattr(server, "publish_rules", publish_rules)
    (history, rollback) = _call(
        _app(),
        ("GET", "/api/rules/history", None, BEARER),
        ("POST", "/api/rules/rollback", {"version": "b"}, BEARER),
    )
    newest = history[1]["versions"][0]["diff"]
    assert (newest["changed"], newest["queues"]) == ([], ["sales"])
    assert "+queues:\n" in newest["text"]
    assert rollback[0] == 200
    budget = QueueBudget(invitations=20, per="minute")
    assert published[0].queues == {"sales": Queue(budget=budget)}
