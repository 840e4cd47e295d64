"""Stand-ins for what ``streams.worker.pipeline.Pipeline`` uses of a Faust app, for unit tests of
its bookkeeping; the integration tests run the real worker on the real broker."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import orjson

from streams.worker.tables import partition_of


class StandInTable(dict[bytes, bytes]):
    """A dict as the table, its store and its partitions' databases; its changelog's
    persisted offsets noted."""

    def __init__(self) -> None:
        super().__init__()
        self.data = self
        self.changelog_topic = SimpleNamespace(get_topic_name=lambda: "journeys-changelog")
        self.persisted: dict[Any, int] = {}

    def _db_for_partition(self, partition: int) -> StandInTable:
        return self  # one dict for every partition's database

    @property
    def _dbs(self) -> SimpleNamespace:
        return SimpleNamespace(get=lambda partition: self)  # every partition held

    def put(self, key: bytes, value: bytes) -> None:
        self[key] = value

    def delete(self, key: bytes) -> None:
        self.pop(key, None)

    def on_recover(self, callback: Any) -> None:
        pass

    def set_persisted_offset(self, tp: Any, offset: int) -> None:
        self.persisted[tp] = offset


class StandInApp:
    """What ``Pipeline`` uses of a Faust app: a producer that acks at once, a dict for a
    table."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None]] = []
        self.table = StandInTable()
        self.producer = SimpleNamespace(send=self._send)
        self.on_before_shutdown = SimpleNamespace(connect=lambda receiver: None)

    async def _send(self, topic: str, key: bytes, value: bytes | None, *_: Any) -> Any:
        self.sent.append((topic, value))
        future = asyncio.get_running_loop().create_future()
        future.set_result(SimpleNamespace(offset=len(self.sent) - 1))
        return future

    def topic(self, name: str, **_: Any) -> Any:
        return SimpleNamespace(get_topic_name=lambda: name)

    def Table(self, *_: Any, **__: Any) -> StandInTable:
        return self.table

    def agent(self, *_: Any, **__: Any) -> Any:
        return lambda fn: fn

    timer = agent


_offsets = itertools.count()  # one counter for every partition: offsets only grow


def batch(*messages: tuple[bytes, bytes], partitions: int = 4) -> Sequence[Any]:
    """Records as the intake hands them to ``Pipeline.handle``, at offsets after every
    earlier batch's."""
    return [
        SimpleNamespace(key=key, value=value, topic="clickstream", offset=next(_offsets),
                        partition=partition_of(key, partitions))
        for key, value in messages
    ]  # fmt: skip


def click(visitor: str, n: int, kind: str, ts: int) -> tuple[bytes, bytes]:
    event = {"event_id": f"{visitor}-{n}", "type": kind, "visitor_id": visitor,
             "site_id": "shop", "ts": ts, "url": "https://shop.example/pricing"}  # fmt: skip
    return visitor.encode(), orjson.dumps(event)
