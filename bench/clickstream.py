"""A deterministic, realistic clickstream for benchmarks: ``generate`` and ``RULES_YAML``.

``generate(n_events, n_visitors, seed)`` yields exactly ``n_events`` ClickEvents as JSON
(orjson bytes, one document per item, no newline: a Kafka value as it is, or a line of a
file once a newline is added) in non-decreasing event time. The same arguments give the
same bytes, on any machine.

The traffic, on the one site of ``bench.site``:

- Visitors arrive as a Poisson process over about a day (busier in the afternoon, UTC),
  each with one browser (a real user agent: desktop, mobile or tablet), a country and a
  language, sent as attributes on each session's first page view as a collector would.
- A session lands from a source (direct, search, ads and newsletters with ``utm_*``,
  social and referral sites) on a page that suits it, then follows the shop's funnel
  (category -> product -> cart -> checkout) or Zipf popularity: 1 to 20 page views, about
  half the sessions bounce after one.
- On each page: ``page_ping`` every 5 s while it is visible (so pings are the commonest
  event, as in real traffic), sometimes ``scroll`` milestones, custom events
  (``add_to_cart``, ``payment_error``…), ``exit_intent`` (desktop only), ``identify`` when
  the visitor signs in (first_name, plan, authenticated, country, language), and usually a
  ``page_leave``. A few events are sent twice (tracker retries), as duplicates.
- Some visitors come back after more than 30 minutes: a new session, by the engine's gap
  rule (events carry no ``session_id``).

How long visitors stay is calibrated so that all ``n_visitors`` arrive within about 85%
of the ``n_events``; once the last has arrived, every visitor whose session ends comes
back later, so the stream always reaches ``n_events`` (the tail is returning visitors).
With fewer than ~5 events per visitor, not every visitor can appear.

Lazy: a heap of active visitors keyed by the time of their next event, each a generator
suspended between events, so memory grows with the visitors present, not with
``n_events``.

CLI: ``python -m bench.clickstream --events N --visitors V --out FILE [--rules FILE]``.
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import sys
import time
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from bench import site
from bench.rules import RULES_YAML

__all__ = ["RULES_YAML", "generate"]

Event = dict[str, Any]
Timed = tuple[int, Event]  # (ts, event)

DAY_MS: Final = 86_400_000
PING_MS: Final = 5_000  # the tracker's heartbeat while the page is visible
FILL: Final = 0.85  # share of n_events the calibration aims the visitors' own sessions at
ENGAGED: Final = 0.5  # visitors who browse (the rest bounce), when the budget allows
MEAN_EXTRA_PAGES: Final = 4.0  # beyond the second, in an engaged visitor's session
MAX_PAGES: Final = 20
DWELL_MEDIAN_MS: Final = 12_000  # on a typical page, before calibration
DWELL_SIGMA: Final = 1.1  # lognormal: most views are short, a few last minutes
MAX_DWELL_MS: Final = 20 * 60_000
P_RETURN: Final = {True: 0.35, False: 0.1}  # comes back after a session, by engagement
P_DUPLICATE: Final = 0.002  # an event the tracker sends twice
PILOT_VISITORS: Final = 1_000  # of each kind


@dataclass(slots=True)
class _Visitor:
    visitor_id: str
    device: str
    user_agent: str
    country: str
    language: str
    engaged: bool  # browses several pages per session, or bounces after one
    identity: dict[str, Any] | None = None  # set once the visitor has signed in


@dataclass(frozen=True, slots=True)
class _Shape:
    """The calibrated traffic: the share of engaged visitors and a factor on dwell times."""

    engaged: float
    scale: float


class _Traffic:
    """State shared by the visitor generators: has the last visitor arrived?"""

    __slots__ = ("all_arrived",)

    def __init__(self) -> None:
        self.all_arrived = False


def generate(
    n_events: int, n_visitors: int, seed: int = 7, start_ms: int = 1_764_576_000_000
) -> Iterator[bytes]:
    """Yield ``n_events`` ClickEvents as JSON bytes, in event-time order (see the module)."""
    if n_events < 0 or (n_events > 0 and n_visitors < 1):
        raise ValueError(f"need n_events >= 0 and n_visitors >= 1, got {n_events}, {n_visitors}")
    shape = _calibrate(n_events / max(n_visitors, 1), seed)
    rng = random.Random(seed)
    traffic = _Traffic()
    dumps = orjson.dumps
    # (ts of the visitor's next event, tie-breaker, that event, the visitor's generator)
    heap: list[tuple[int, int, Event, Iterator[Timed]]] = []
    arrivals = _arrivals(rng, n_visitors, start_ms)
    next_arrival = next(arrivals, None)
    arrived = emitted = order = 0
    while emitted < n_events:
        if next_arrival is not None and (not heap or next_arrival <= heap[0][0]):
            visitor = _new_visitor(rng, shape.engaged)
            events: Iterator[Timed] = _visitor_events(
                rng, visitor, next_arrival, shape.scale, traffic
            )
            ts, event = next(events)  # every visitor has at least one event
            heapq.heappush(heap, (ts, order, event, events))
            order += 1
            arrived += 1
            traffic.all_arrived = arrived == n_visitors
            next_arrival = next(arrivals, None)
            continue
        _, _, event, events = heap[0]
        yield dumps(event)
        emitted += 1
        following = next(events, None)
        if following is None:
            heapq.heappop(heap)
        else:
            heapq.heapreplace(heap, (following[0], order, following[1], events))
            order += 1


def _arrivals(rng: random.Random, n_visitors: int, start_ms: int) -> Iterator[int]:
    """Arrival instants: Poisson, ~n_visitors a day, busiest at 14:00 UTC (by thinning)."""
    mean_gap = DAY_MS / max(n_visitors, 1)
    peak = 1.5  # the rate at its daily peak, relative to the mean rate
    t = float(start_ms)
    for _ in range(n_visitors):
        while True:
            t += rng.expovariate(peak / mean_gap)
            hour = (t % DAY_MS) / 3_600_000
            if rng.random() * peak < 1 + 0.5 * math.sin(2 * math.pi * (hour - 8) / 24):
                break
        yield int(t)


def _new_visitor(rng: random.Random, engaged_share: float) -> _Visitor:
    browser = site.browser(rng)
    country, language = site.country(rng)
    visitor_id = f"v-{rng.getrandbits(64):016x}"
    engaged = rng.random() < engaged_share
    return _Visitor(visitor_id, browser.device, browser.user_agent, country, language, engaged)


def _event_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _visitor_events(
    rng: random.Random, visitor: _Visitor, t: int, scale: float, traffic: _Traffic
) -> Generator[Timed, None, None]:
    """Every event of one visitor, in time order: sessions separated by > 30 minutes."""
    returning = False
    while True:
        t = yield from _session(rng, visitor, t, scale, returning=returning)
        if not (traffic.all_arrived or rng.random() < P_RETURN[visitor.engaged]):
            return
        # Past the engine's 30-minute session gap, typically a few hours later.
        t += 31 * 60_000 + min(int(rng.lognormvariate(math.log(3 * 3_600_000), 1.0)), 7 * DAY_MS)
        returning = True


def _session(
    rng: random.Random, visitor: _Visitor, t: int, scale: float, *, returning: bool
) -> Generator[Timed, None, int]:
    """One session's events; returns the instant it ended."""
    source = site.source(rng, returning=returning)
    path = site.landing_page(rng, source.landing)
    n_pages = 1
    if visitor.engaged:
        n_pages = min(MAX_PAGES, 2 + int(rng.expovariate(1 / MEAN_EXTRA_PAGES)))
    else:
        scale *= 0.5  # a bounce is a glance
    sign_in = -1  # the page view on which the visitor signs in, if any
    if visitor.identity is not None and rng.random() < 0.6:
        sign_in = 0  # remembered login
    elif visitor.engaged and rng.random() < (0.25 if returning else 0.06):
        sign_in = rng.randrange(n_pages)
    referrer = source.referrer
    for i in range(n_pages):
        url = site.ORIGIN + path
        if i == 0 and source.query:
            url += "?" + source.query
        elif path.startswith("/products/") and rng.random() < 0.05:
            url += f"?variant={rng.randrange(1, 5)}"
        last = i == n_pages - 1
        events, end = _page(rng, visitor, t, url, path, referrer, scale, first=i == 0, last=last)
        if i == sign_in:
            events.append(_identify(rng, visitor, t, end, url))
            events.sort(key=_ts)
        for timed in events:
            yield timed
            if rng.random() < P_DUPLICATE:
                yield timed
        t = end
        if last:
            break
        going = site.next_page(rng, path)
        if going is None:
            break
        referrer, path = url, going
        t += rng.randrange(200, 2_500)  # the next page loads
        if rng.random() < 0.05:
            t += rng.randrange(2, 25) * 60_000  # a hidden tab: no pings, same session
    return t


def _page(
    rng: random.Random,
    visitor: _Visitor,
    t: int,
    url: str,
    path: str,
    referrer: str,
    scale: float,
    *,
    first: bool,
    last: bool,
) -> tuple[list[Timed], int]:
    """One page view's events, sorted by time (view, pings, scrolls, custom, leave), and
    the instant the visitor left it."""
    ua = visitor.user_agent
    vid = visitor.visitor_id
    view: Event = {
        "event_id": _event_id(rng),
        "type": "page_view",
        "visitor_id": vid,
        "site_id": site.SITE_ID,
        "ts": t,
        "url": url,
        "title": site.title(path),
        "user_agent": ua,
    }
    if referrer:
        view["referrer"] = referrer
    if first:  # the collector's geo lookup and Accept-Language, once per session
        view["attributes"] = {"country": visitor.country, "language": visitor.language}
    median = DWELL_MEDIAN_MS * scale * site.dwell_factor(path)
    dwell = min(MAX_DWELL_MS, max(1_000, int(rng.lognormvariate(math.log(median), DWELL_SIGMA))))
    end = t + dwell
    events: list[Timed] = [(t, view)]

    def on_page(at: int, kind: str, **fields: Any) -> None:
        event = {
            "event_id": _event_id(rng),
            "type": kind,
            "visitor_id": vid,
            "site_id": site.SITE_ID,
            "ts": at,
            "url": url,
            "user_agent": ua,
            **fields,
        }
        events.append((at, event))

    for at in range(t + PING_MS, end, PING_MS):
        on_page(at, "page_ping")
    if rng.random() < (0.35 if path.startswith(("/blog/", "/products/")) else 0.1):
        depth = rng.choice((25, 50, 50, 75, 75, 100))
        times = sorted(rng.randrange(t + 1, end + 1) for _ in range(depth // 25))
        for n, at in enumerate(times, 1):
            on_page(at, "scroll", scroll_pct=25 * n)
    for name, chance in site.custom_events(path):
        if rng.random() < chance:
            on_page(rng.randrange(t + 1, end + 1), "custom", name=name)
    hesitant = path in ("/cart", "/checkout") and rng.random() < 0.2
    if visitor.device == "desktop" and (hesitant or (last and rng.random() < 0.35)):
        on_page(max(t + 1, end - rng.randrange(200, 1_500)), "exit_intent")
    events.sort(key=_ts)  # stable: a ping and a scroll at one instant keep their order
    if rng.random() < 0.8:  # unload beacons get lost, mostly on mobile
        on_page(end, "page_leave")
    return events, end


def _identify(rng: random.Random, visitor: _Visitor, t: int, end: int, url: str) -> Timed:
    if visitor.identity is None:
        visitor.identity = {
            "first_name": rng.choice(site.FIRST_NAMES),
            "plan": rng.choice(site.PLANS),
            "authenticated": True,
        }
    at = min(end, t + rng.randrange(500, 4_000))  # signing in takes a moment, on this page
    attributes = {**visitor.identity, "country": visitor.country, "language": visitor.language}
    event = {
        "event_id": _event_id(rng),
        "type": "identify",
        "visitor_id": visitor.visitor_id,
        "site_id": site.SITE_ID,
        "ts": at,
        "url": url,
        "user_agent": visitor.user_agent,
        "attributes": attributes,
    }
    return at, event


def _ts(timed: Timed) -> int:
    return timed[0]


def _calibrate(events_per_visitor: float, seed: int) -> _Shape:
    """The shape that makes the visitors' own sessions fill ``FILL`` of the budget.

    A pilot (its own generator, same seed) measures each kind of visitor at scale 1;
    pings grow linearly with dwell and other events do not. A roomy budget keeps the
    natural share of engaged visitors and lengthens their stays; a tight one (the default
    10 events per visitor is tighter than real traffic's ~35) makes more visitors bounce
    first, so sessions keep realistic lengths, and shortens stays only as a last resort.
    """
    rng = random.Random(seed ^ 0x5EED)
    traffic = _Traffic()
    per_kind = {}
    for engaged in (True, False):
        pings = others = 0
        for n in range(PILOT_VISITORS):
            visitor = _new_visitor(rng, 1.0 if engaged else 0.0)
            for _, event in _visitor_events(rng, visitor, n * DAY_MS, 1.0, traffic):
                if event["type"] == "page_ping":
                    pings += 1
                else:
                    others += 1
        per_kind[engaged] = (pings / PILOT_VISITORS, others / PILOT_VISITORS)
    (ep, eo), (bp, bo) = per_kind[True], per_kind[False]
    target = FILL * events_per_visitor
    natural = ENGAGED * (ep + eo) + (1 - ENGAGED) * (bp + bo)
    if target >= natural:
        mix_pings = ENGAGED * ep + (1 - ENGAGED) * bp
        mix_others = ENGAGED * eo + (1 - ENGAGED) * bo
        return _Shape(ENGAGED, min(100.0, (target - mix_others) / mix_pings))
    least = 0.02  # some visitors always browse: the rules need them
    share = (target - (bp + bo)) / ((ep + eo) - (bp + bo))
    if share >= least:
        return _Shape(share, 1.0)
    mix_pings = least * ep + (1 - least) * bp
    mix_others = least * eo + (1 - least) * bo
    return _Shape(least, max(0.05, (target - mix_others) / mix_pings))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.clickstream", description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000, help="events [1000000]")
    parser.add_argument("--visitors", type=int, default=100_000, help="visitors [100000]")
    parser.add_argument("--seed", type=int, default=7, help="random seed [7]")
    parser.add_argument("--out", help="events as JSON lines ('-': standard output)")
    parser.add_argument("--rules", help="also write the benchmark's rules (YAML) here")
    args = parser.parse_args(argv)
    if args.rules:
        Path(args.rules).write_text(RULES_YAML, encoding="utf-8")
    if not args.out:
        if not args.rules:
            parser.error("give --out, --rules or both")
        return 0
    started = time.perf_counter()
    lines = generate(args.events, args.visitors, args.seed)
    if args.out == "-":
        _write(sys.stdout.buffer, lines)
    else:
        with open(args.out, "wb") as out:
            _write(out, lines)
    took = time.perf_counter() - started
    print(f"{args.events} events, {args.visitors} visitors in {took:.1f} s", file=sys.stderr)
    return 0


def _write(out: Any, lines: Iterator[bytes]) -> None:
    # Chunks of lines: one write per ~10,000 events rather than one per event.
    chunk: list[bytes] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) == 10_000:
            out.write(b"\n".join(chunk) + b"\n")
            chunk.clear()
    if chunk:
        out.write(b"\n".join(chunk) + b"\n")


if __name__ == "__main__":
    sys.exit(main())
