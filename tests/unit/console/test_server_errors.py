"""The console's answer when Kafka cannot be reached: 503 naming the reason, never a 500.

What is under test is the server's mapping of ``BrokerError``; the Kafka readers raise it
(their own behaviour on a real broker is tested in tests/integration/console)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from schemas.errors import BrokerError
from streams.console import server
from streams.settings import Settings

TOKEN = "unit-test-token"


def _down(*args: Any, **kwargs: Any) -> Any:
    raise BrokerError("cannot reach Kafka at localhost:1: NoBrokersAvailable")


def test_reads_and_publishes_answer_503_naming_kafka(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("read_rules", "read_history", "publish_rules"):
        monkeypatch.setattr(server, name, _down)
    settings = Settings(bootstrap="localhost:1", console_token=TOKEN)  # type: ignore[arg-type]
    app = web.Application()
    server.add_console(app, settings, lambda: [])
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    rule = {"id": "r", "trigger": {"dwell_seconds": 5}, "message": {"text": "hi"}}

    async def scenario() -> list[tuple[int, Any]]:
        async with TestClient(TestServer(app)) as client:
            out = []
            for method, path, body in (
                ("GET", "/api/rules", None),
                ("GET", "/api/rules/history", None),
                ("POST", "/api/rules/publish", {"rules": [rule], "comment": "c"}),
                ("POST", "/api/rules/rollback", {"version": "abc"}),
            ):
                r = await client.request(method, path, json=body, headers=bearer)
                out.append((r.status, await r.json()))
            return out

    for status, body in asyncio.run(scenario()):
        assert (status, body) == (
            503,
            {"error": "cannot reach Kafka at localhost:1: NoBrokersAvailable"},
        )
