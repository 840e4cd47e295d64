"""streams.split: each line's visitor and time exactly as the event model reads them."""

from __future__ import annotations

import random

import orjson
import pytest

from bench.clickstream import generate
from schemas.errors import InvalidEvent
from schemas.events import parse_event
from streams.split import FIRST, index_of, key, route, visitor_and_time

BASE = b'"event_id": "e1", "type": "page_view", "site_id": "s", "url": "https://shop.example/"'

# Lines the fast path must not be fooled by: each is read as the model reads it.
TRICKY = [
    b'{"visitor_id": "v1", "ts": 1764583200000, ' + BASE + b"}",
    b'{"visitor_id":"v1","ts":"2025-12-01T10:00:00.5+01:00",' + BASE + b"}",
    # an escaped key, and the same names inside the attributes
    b'{"visitor\\u005fid": "v1", "ts": 1764583200000, "attributes": {"visitor_id": "x", "ts": 1},'
    + BASE
    + b"}",
    b'{"attributes": {"visitor_id": "x"}, "visitor_id": "v2", "ts": 1764583200000, ' + BASE + b"}",
    # a key twice: the last one counts
    b'{"visitor_id": "x", "visitor_id": "v3", "ts": 5, "ts": 1764583200000, ' + BASE + b"}",
    # escapes in the value, whitespace across lines, a title that names the fields
    b'{"visitor_id": "v\\u00e9\\"", "ts": 1764583200000, ' + BASE + b"}",
    b'{\n  "visitor_id" :\r\n "v4" ,\t"ts"\n:\n1764583200000\n, ' + BASE + b"}",
    b'{"title": "visitor_id", "visitor_id": "v5", "ts": 1764583200000, ' + BASE + b"}",
    b'{"visitor_id": "v6", "title": "ts", "ts": 1764583200000, ' + BASE + b"}",
    b'{"ts": 1764583200000, ' + BASE + b', "visitor_id": "v7"}',
    # refused by the model: a float time, an int visitor, no visitor, not JSON, blank
    b'{"visitor_id": "v8", "ts": 1764583200000.0, ' + BASE + b"}",
    b'{"visitor_id": 8, "ts": 1764583200000, ' + BASE + b"}",
    b'{"ts": 1764583200000, ' + BASE + b"}",
    b'{"visitor_id": "v9", "ts": 17645832000' + BASE,
    b"",
    b"\n",
]


@pytest.mark.parametrize("line", TRICKY)
def test_the_visitor_and_time_are_the_models(line: bytes) -> None:
    try:
        event = parse_event(line)
    except InvalidEvent:
        visitor_and_time(line)  # any process may take it (and count it): it must not raise
        return
    assert visitor_and_time(line) == (event.visitor_id, event.ts)


def test_a_line_that_is_no_event_goes_first() -> None:
    assert visitor_and_time(b"{not json") == (None, FIRST)
    assert visitor_and_time(b"[1]") == (None, FIRST)


def test_recorded_lines_give_their_visitor_and_time() -> None:
    for line in generate(3_000, 300, seed=4):
        event = parse_event(line)
        assert visitor_and_time(line) == (event.visitor_id, event.ts)


def test_keys_sort_by_time_then_line() -> None:
    rng = random.Random(1)
    pairs = [(rng.choice([FIRST, -5, 0, 1, 1_764_583_200_000]), rng.randrange(10**6))
             for _ in range(2_000)]  # fmt: skip
    keys = sorted(key(ts, index) for ts, index in pairs)
    assert [index_of(k) for k in keys] == [index for _, index in sorted(pairs)]


def test_route_gives_each_visitor_to_one_process_and_no_event_to_the_first() -> None:
    lines = [*generate(2_000, 200, seed=6), b"{not json", b""]
    shares = route(lines, 3)
    owner: dict[str, int] = {}
    for part, share in enumerate(shares):
        for packed in share:
            visitor = visitor_and_time(lines[index_of(packed)])[0]
            assert owner.setdefault(str(visitor), part) == part
    assert owner["None"] == 0
    assert sorted(index_of(k) for share in shares for k in share) == list(range(len(lines)))
    assert all(shares)
    assert orjson.loads(lines[0])["visitor_id"] in owner
