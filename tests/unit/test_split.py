"""streams.split: each line's visitor and time exactly as the event model reads them, and
the same routing whether one pass reads every line or each process reads a span."""

from __future__ import annotations

import io
import random
from itertools import accumulate

import orjson
import pytest

from bench.clickstream import generate
from schemas.errors import InvalidEvent
from schemas.events import parse_event
from streams import split
from streams.split import (
    FIRST,
    INDEX_BITS,
    index_of,
    key,
    route,
    route_span,
    spans,
    visitor_and_time,
)

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


def _file(lines: list[bytes], end: bytes) -> bytes:
    return b"".join(line + b"\n" for line in lines[:-1]) + lines[-1] + end


@pytest.mark.parametrize("end", [b"\n", b""], ids=["newline-at-end", "none-at-end"])
@pytest.mark.parametrize("processes", [1, 2, 3, 7])
def test_spans_cut_the_file_at_line_starts(processes: int, end: bytes) -> None:
    data = _file([*TRICKY, b"x" * 500, b"", b"  "], end)
    bounds = spans(data, processes)
    assert len(bounds) == processes + 1
    assert bounds[0] == 0 and bounds[-1] == len(data)
    assert bounds == sorted(bounds)
    assert all(cut == len(data) or data[cut - 1 : cut] == b"\n" for cut in bounds[1:])


def test_spans_of_one_long_line_give_it_to_the_first() -> None:
    assert spans(b"x" * 100, 3) == [0, 100, 100, 100]
    assert spans(b"x" * 100 + b"\n", 3) == [0, 101, 101, 101]


@pytest.mark.parametrize("chunk", [1 << 24, 64, 1], ids=["chunks", "small-chunks", "a-byte"])
@pytest.mark.parametrize("end", [b"\n", b""], ids=["newline-at-end", "none-at-end"])
@pytest.mark.parametrize("processes", [2, 3])
def test_routing_spans_gives_what_routing_the_lines_gives(
    processes: int, end: bytes, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each span routed in its own process must give each line to the process ``route``
    gives it to, with its time, whatever lines are around it: tricky JSON, bad lines,
    blank ones, CRLF endings, lines longer than a chunk, no newline at the end."""
    monkeypatch.setattr(split, "_CHUNK_BYTES", chunk)
    recorded = list(generate(300, 40, seed=9))
    lines = [*recorded[:100], *TRICKY, b"\r", b"   ", *(line + b"\r" for line in recorded[100:])]
    random.Random(processes).shuffle(lines)
    data = _file(lines, end)
    read = [line for line in io.BytesIO(data)]  # the lines as iterating over the file gives
    offsets = [0, *accumulate(len(line) for line in read)][:-1]

    bounds = spans(data, processes)
    routed = [route_span(data, bounds[n], bounds[n + 1], processes) for n in range(processes)]

    assert [offset for _, starts in routed for offset in starts] == offsets
    expected = [
        sorted(key(packed >> INDEX_BITS, offsets[index_of(packed)]) for packed in share)
        for share in route(read, processes)
    ]
    assert [sorted(k for keys, _ in routed for k in keys[part]) for part in range(processes)] == (
        expected
    )
    assert all(expected)
