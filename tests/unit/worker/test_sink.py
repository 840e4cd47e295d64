"""The sink: records and table writes sent through the producer, acknowledged together."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from streams.worker.sink import Sink


class Producer:
    """Faust's driver-level ``send``: each record gets the next offset of its partition."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, bytes | None, int | None, Any]] = []
        self.offsets: dict[tuple[str, int | None], int] = {}

    async def send(self, topic: str, key: bytes, value: bytes | None, partition: int | None,
                   timestamp: float | None, headers: Any) -> asyncio.Future[Any]:  # fmt: skip
        self.records.append((topic, key, value, partition, headers))
        offset = self.offsets[topic, partition] = self.offsets.get((topic, partition), -1) + 1
        future = asyncio.get_running_loop().create_future()
        future.set_result(SimpleNamespace(offset=offset))
        return future


class Database(dict[bytes, bytes]):
    """One partition's RocksDB database (rocksdict's ``put`` and ``delete``)."""

    def put(self, key: bytes, value: bytes) -> None:
        self[key] = value

    def delete(self, key: bytes) -> None:
        self.pop(key, None)


class Store:
    """Faust's RocksDB store: a database per partition."""

    def __init__(self) -> None:
        self.databases: dict[int, Database] = {}
        self.persisted: dict[TP, int] = {}

    def _db_for_partition(self, partition: int) -> Database:
        return self.databases.setdefault(partition, Database())

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        self.persisted[tp] = offset


class Table(dict[bytes, bytes]):
    """A Faust table: writes through ``table[key]`` would also send a changelog record."""

    def __init__(self) -> None:
        super().__init__()
        self.data = Store()
        self.changelog_topic = SimpleNamespace(get_topic_name=lambda: "app-journeys-changelog")
        self.changelog: list[tuple[int, bytes, bytes | None]] = []  # Faust's send_changelog

    def send_changelog(self, partition: int, key: bytes, value: bytes | None) -> Any:
        self.changelog.append((partition, key, value))
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def test_records_and_changelogs_go_through_the_producer_and_offsets_are_noted_once() -> None:
    producer, table = Producer(), Table()
    sink = Sink(SimpleNamespace(producer=producer), transactional=False)  # type: ignore[arg-type]
    topic = SimpleNamespace(get_topic_name=lambda: "beckon.invitations")

    async def batch() -> None:
        await sink.send(topic, b"v1", b"invitation", [("h", b"1")])  # type: ignore[arg-type]
        await sink.put(table, 3, b"v1", b"journey-1")  # type: ignore[arg-type]
        await sink.put(table, 3, b"v2", b"journey-2")  # type: ignore[arg-type]
        await sink.put(table, 5, b"v3", b"journey-3")  # type: ignore[arg-type]
        await sink.put(table, 5, b"v3", None)  # type: ignore[arg-type]
        await sink.flush()

    asyncio.run(batch())
    changelog = "app-journeys-changelog"
    assert producer.records == [
        ("beckon.invitations", b"v1", b"invitation", None, [("h", b"1")]),
        (changelog, b"v1", b"journey-1", 3, None),
        (changelog, b"v2", b"journey-2", 3, None),
        (changelog, b"v3", b"journey-3", 5, None),
        (changelog, b"v3", None, 5, None),  # a delete is a tombstone
    ]
    # Each partition's database holds its writes; Faust's table itself was not written
    # (that would send a second record).
    assert table.data.databases == {3: {b"v1": b"journey-1", b"v2": b"journey-2"}, 5: {}}
    assert dict(table) == {}
    # Each changelog partition's newest offset, as Faust's _on_changelog_sent notes it.
    assert table.data.persisted == {TP(changelog, 3): 1, TP(changelog, 5): 1}


def test_under_exactly_once_writes_stay_on_faust_paths() -> None:
    producer, table, sent = Producer(), Table(), []

    async def topic_send(**record: Any) -> asyncio.Future[Any]:
        sent.append(record)
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    sink = Sink(SimpleNamespace(producer=producer), transactional=True)  # type: ignore[arg-type]
    topic = SimpleNamespace(send=topic_send)

    async def batch() -> None:
        await sink.send(topic, b"v1", b"invitation")  # type: ignore[arg-type]
        await sink.send(topic, b"page", b"update", partition=1)  # type: ignore[arg-type]
        await sink.put(table, 2, b"v1", b"journey")  # type: ignore[arg-type]
        await sink.flush()

    asyncio.run(batch())
    assert sent == [
        {"key": b"v1", "value": b"invitation", "partition": None, "headers": None},
        {"key": b"page", "value": b"update", "partition": 1, "headers": None},
    ]
    # The partition's database, and Faust's changelog send to the same partition.
    assert table.data.databases == {2: {b"v1": b"journey"}}
    assert table.changelog == [(2, b"v1", b"journey")]
    assert producer.records == []
