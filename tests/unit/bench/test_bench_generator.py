"""The benchmark's clickstream generator and rules (``bench.clickstream``)."""

from __future__ import annotations

import itertools
from collections import Counter

import orjson
import pytest

from bench.clickstream import RULES_YAML, generate
from schemas.events import parse_event
from schemas.rules import load_rules
from streams.core.profile import device_of


@pytest.fixture(scope="module")
def stream() -> list[bytes]:
    return list(generate(5_000, 500, seed=11))


def test_same_seed_gives_the_same_bytes(stream: list[bytes]) -> None:
    assert list(generate(5_000, 500, seed=11)) == stream


def test_another_seed_gives_another_stream(stream: list[bytes]) -> None:
    assert list(itertools.islice(generate(5_000, 500, seed=12), 100)) != stream[:100]


def test_yields_exactly_the_events_asked_for(stream: list[bytes]) -> None:
    assert len(stream) == 5_000
    assert list(generate(0, 10)) == []


def test_every_event_is_a_valid_click_event(stream: list[bytes]) -> None:
    for raw in stream:
        parse_event(raw)  # raises InvalidEvent on the first bad one


def test_events_come_in_non_decreasing_event_time(stream: list[bytes]) -> None:
    times = [parse_event(raw).ts for raw in stream]
    assert times == sorted(times)
    assert times[0] >= 1_764_576_000_000


def test_traffic_looks_like_real_traffic(stream: list[bytes]) -> None:
    events = [orjson.loads(raw) for raw in stream]
    kinds = Counter(e["type"] for e in events)
    assert kinds.most_common(1)[0][0] == "page_ping"
    assert {"page_view", "page_leave", "scroll", "exit_intent", "identify", "custom"} <= set(kinds)
    assert len({e["visitor_id"] for e in events}) == 500
    assert any("utm_source=" in e.get("url", "") for e in events)
    devices = {device_of(e["user_agent"]) for e in events}
    assert devices == {"desktop", "mobile", "tablet"}


def test_rules_yaml_loads_twenty_rules() -> None:
    rules = load_rules(RULES_YAML)
    assert len(rules) == 20
    assert all(rule.enabled for rule in rules)


def test_bench_devices_user_agents_are_distinct_and_of_every_class() -> None:
    from bench.devices import user_agents

    agents = user_agents(60)
    assert len(set(agents)) == 60 and agents == user_agents(60)
    assert {device_of(ua) for ua in agents} == {"desktop", "mobile", "tablet"}
