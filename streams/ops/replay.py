"""``beckon replay``: a recorded JSON-lines file published to the clickstream topic.

Lines go out as they are, in file order: validating is the worker's job, so a poison
line must reach Kafka (and from there the DLQ with its reason) rather than vanish here.
Each line is keyed by its ``visitor_id`` when it has one, so one visitor's events land on
one partition in order, exactly as the collector would have sent them.

With a rate, events are paced by their own ``ts``: ``rate=2`` replays a recorded hour in
half an hour. Without one, the file goes out as fast as the producer takes it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from schemas.errors import BrokerError, InvalidInput
from schemas.instants import parse_instant
from streams.backtest import Progress
from streams.kafka.publisher import Publisher
from streams.settings import Settings


@dataclass(frozen=True, slots=True)
class ReplayStats:
    sent: int
    unkeyed: int  # lines without a string visitor_id (poison included): sent without a key
    elapsed_s: float

    @property
    def events_per_s(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


def key_and_ts(line: bytes) -> tuple[bytes | None, int | None]:
    """The line's visitor key and event time (epoch ms), each None when it has none."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    visitor = data.get("visitor_id")
    key = visitor.encode() if isinstance(visitor, str) else None
    return key, _ts(data.get("ts"))


def _ts(value: Any) -> int | None:
    # bool is an int to Python, but never an instant.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return parse_instant(value)
        except ValueError:
            return None
    return None


class _Pacer:
    """Sleeps so that an event with time ts goes out at start + (ts - ts_0) / rate."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.ts0: int | None = None
        self.start = 0.0

    def wait(self, ts: int | None) -> None:
        if ts is None:
            return  # nothing to pace by: at once
        if self.ts0 is None:
            self.ts0, self.start = ts, time.monotonic()
            return
        delay = self.start + (ts - self.ts0) / 1000 / self.rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def replay(
    settings: Settings,
    path: str | Path,
    *,
    rate: float | None = None,
    topic: str | None = None,
    progress: bool = True,
) -> ReplayStats:
    """Publish every non-blank line of ``path`` (acks=all, batched); return the counts."""
    from kafka.errors import KafkaError, KafkaTimeoutError

    if rate is not None and not rate > 0:
        raise ValueError(f"rate must be greater than 0, got {rate}")
    path = Path(path)
    pacer = _Pacer(rate) if rate is not None else None
    sent = unkeyed = 0
    began = time.monotonic()
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InvalidInput([("events", f"cannot read {path}: {exc}")]) from exc
    with handle, Publisher(settings, topic=topic, validate=False) as publisher:
        bar = Progress(path.stat().st_size, enabled=progress)
        for number, line in enumerate(bar.lines(handle), 1):
            value = line.rstrip(b"\r\n")
            if not value.strip():
                continue
            key, ts = key_and_ts(value)
            if pacer is not None:
                pacer.wait(ts)
            try:
                publisher.publish_raw(key, value)
            except KafkaTimeoutError as exc:  # no metadata: the broker never creates topics
                raise BrokerError(
                    f"{path} line {number}: no answer for topic {publisher.topic!r}: does it "
                    f"exist? (BECKON_TOPIC_CLICKSTREAM; `beckon topics create`) {exc}"
                ) from exc
            except KafkaError as exc:  # e.g. a line larger than the broker takes
                raise BrokerError(f"{path} line {number}: Kafka refused it: {exc}") from exc
            sent += 1
            unkeyed += key is None
        bar.done()
        # Leaving the block flushes: the elapsed time includes the last acknowledgement.
    return ReplayStats(sent, unkeyed, time.monotonic() - began)
