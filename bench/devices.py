"""What a worker pays for user agents it has not seen: ``python -m bench.devices [--agents N]``.

device-detector parses a user agent in milliseconds; ``streams.core.profile`` caches the
result per process, and each journey keeps the key of its visitor's user agent
(``streams.core.journey._set_device``). A worker that restarts, or takes over partitions in a
rebalance, starts with an empty cache while its visitors' journeys come from the table.
This measures, on ``--agents`` visitors each with its own user agent (Android phones and
tablets, iPhones and in-app browsers whose strings carry models and build numbers):

1. cold: each visitor's first event, every user agent parsed;
2. a restart: the cache emptied, the journeys saved and loaded as the table does, one
   more event each: what the worker pays now;
3. the same restart with journeys that do not keep the key (as before 2026-12-01): every
   user agent parsed again;
4. warm: one more event each, the cache full: the per-event cost on the hot path.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from typing import Any

import orjson

import streams.core.profile as profile
from schemas.events import ClickEvent, validate_event
from streams.core.journey import Journey, apply


def user_agents(n: int, seed: int = 7) -> list[str]:
    """``n`` distinct user agents of the high-entropy kinds: models, OS and app builds."""
    rng = random.Random(seed)
    found: set[str] = set()
    while len(found) < n:
        kind = rng.random()
        chrome = f"{rng.randint(110, 131)}.0.{rng.randint(5000, 6800)}.{rng.randint(1, 200)}"
        if kind < 0.45:
            model = f"SM-{rng.choice('AGSNX')}{rng.randint(100, 999)}{rng.choice('BFUN')}"
            mobile = "" if model.startswith("SM-X") else " Mobile"
            found.add(f"Mozilla/5.0 (Linux; Android {rng.randint(10, 15)}; {model}) "
                      f"AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{chrome}{mobile} "
                      "Safari/537.36")  # fmt: skip
        elif kind < 0.75:
            ios = f"{rng.randint(15, 18)}_{rng.randint(0, 7)}"
            found.add(
                f"Mozilla/5.0 (iPhone; CPU iPhone OS {ios} like Mac OS X) "
                f"AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 "
                f"[FBAN/FBIOS;FBAV/{rng.randint(400, 480)}.0.0.{rng.randint(10, 99)}."
                f"{rng.randint(10, 199)};FBBV/{rng.randint(500000000, 699999999)}]"
            )
        else:
            found.add(f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
                      f"(KHTML, like Gecko) Chrome/{chrome} Safari/537.36 "
                      f"Edg/{chrome}")  # fmt: skip
    return sorted(found)


def _ping(visitor: str, user_agent: str, t: int) -> ClickEvent:
    return validate_event({"event_id": f"{visitor}-{t}", "type": "page_ping",
                           "visitor_id": visitor, "site_id": "shop", "ts": t,
                           "url": "https://shop.example/", "user_agent": user_agent})  # fmt: skip


def _round(
    journeys: list[Journey], agents: list[str], t: int, save: Callable[[Journey], Any]
) -> tuple[float, list[Journey]]:
    """Apply one ping per visitor, timed; then save and load each journey (not timed)."""
    events = [_ping(j.visitor_id, ua, t) for j, ua in zip(journeys, agents, strict=True)]
    start = time.perf_counter()
    for journey, event in zip(journeys, events, strict=True):
        apply(journey, event, t)
    elapsed = time.perf_counter() - start
    return elapsed, [Journey.from_dict(orjson.loads(orjson.dumps(save(j)))) for j in journeys]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=2_000)
    args = parser.parse_args(argv)
    n = args.agents
    agents = user_agents(n)
    profile.device_of(agents[0])  # device-detector's one-off start-up, not counted
    profile._devices.clear()

    def keep(journey: Journey) -> dict[str, Any]:
        return journey.to_dict()

    def before(journey: Journey) -> dict[str, Any]:
        return {k: v for k, v in journey.to_dict().items() if k != "ua_key"}

    journeys = [Journey(f"v{i}", "shop") for i in range(n)]
    cold, saved = _round(journeys, agents, 1, keep)
    profile._devices.clear()
    restart, _ = _round(saved, agents, 2, keep)
    profile._devices.clear()
    old_saved = [Journey.from_dict(before(j)) for j in saved]
    restart_before, after = _round(old_saved, agents, 2, keep)
    warm, _ = _round(after, agents, 3, keep)
    devices = {d: sum(j.device == d for j in after) for d in ("desktop", "mobile", "tablet")}
    print(f"{n:,} visitors, each with its own user agent: {devices}")
    for label, seconds in (
        ("cold: first event, every user agent parsed", cold),
        ("restart, journeys keep their user agent's key", restart),
        ("restart, journeys without the key (before)", restart_before),
        ("warm: the process knows every user agent", warm),
    ):
        print(f"{label:<52}{seconds:8.2f} s{seconds * 1e6 / n:12,.1f} µs/event")


if __name__ == "__main__":
    main()
