"""The kept ``exactly_once`` path: a worker on Faust's agents and Kafka transactions.

docs/worker.md measured it unreliable after a crash (copies, hangs on shutdown); this is
the clean path, with no crash: a read_committed consumer of the invitations topic must
see the backtest's invitations, each exactly once.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer

from bench.clickstream import RULES_YAML, generate
from schemas.rules import load_rules
from streams.backtest import Result, read_events, run
from streams.core.engine import Limits
from streams.core.rules import CompiledRules
from streams.kafka.publisher import Publisher
from streams.settings import Settings
from tests.integration.helpers import start_worker

pytestmark = pytest.mark.integration

COPIES_WAIT_S = 5.0  # a copy follows its original within seconds, if it comes at all


def _backtest_ids(lines: list[bytes]) -> Counter[str]:
    result = Result()
    run(read_events(lines, result), CompiledRules.of(load_rules(RULES_YAML)), Limits(), result)
    return Counter(i["invitation_id"] for i in result.invitations)


def _committed_ids(settings: Settings, expected: Counter[str], timeout_s: float) -> Counter[str]:
    """The invitation ids a read_committed consumer reads, copies counted: until every
    expected id has arrived (or ``timeout_s``), then ``COPIES_WAIT_S`` more."""
    consumer = KafkaConsumer(
        settings.topic_invitations, **settings.kafka_python_config(),
        auto_offset_reset="earliest", isolation_level="read_committed",
        group_id=f"read-committed-{uuid.uuid4().hex[:8]}",
    )  # fmt: skip
    got: Counter[str] = Counter()

    def poll() -> None:
        for batch in consumer.poll(500).values():
            got.update(orjson.loads(r.value)["invitation_id"] for r in batch)

    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not expected.keys() <= got.keys():
            poll()
        deadline = time.monotonic() + COPIES_WAIT_S
        while time.monotonic() < deadline:
            poll()
    finally:
        consumer.close()
    return got


def test_exactly_once_without_a_crash_gives_the_backtests_invitations_once_each(
    live: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    settings, env = live
    env = {**env, "BECKON_PROCESSING_GUARANTEE": "exactly_once"}
    lines = list(generate(4_000, 300, seed=23))
    expected = _backtest_ids(lines)
    assert len(expected) > 20, "the sample should invite a fair number of visitors"
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES_YAML)
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = start_worker(env, rules, log)
        try:
            with Publisher(settings) as pub:
                for line in lines:
                    pub.publish_raw(orjson.loads(line)["visitor_id"].encode(), line)
            got = _committed_ids(settings, expected, timeout_s=120)
        finally:
            worker.terminate()
            try:
                stopped_in = _wait(worker, timeout_s=60)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(timeout=30)
                stopped_in = None

    copies = sum(n - 1 for n in got.values() if n > 1)
    stop = "never (killed)" if stopped_in is None else f"in {stopped_in:.1f} s"
    print(f"exactly_once: {len(set(got))} invitations, {copies} copies, stopped {stop}")
    log_text = log_path.read_text(errors="replace")
    assert "exactly_once" in log_text, "the worker should warn that it runs exactly_once"
    missing, extra = expected - got, got - expected
    assert not missing and not extra, (
        f"{sum(missing.values())} invitations missing, {sum(extra.values())} beyond the "
        f"backtest's (copies among them: {copies})\n" + log_text[-3000:]
    )
    assert stopped_in is not None, "the worker did not stop within 60 s of SIGTERM"


def _wait(worker: subprocess.Popen[bytes], timeout_s: float) -> float:
    """Seconds until ``worker`` exits; raises TimeoutExpired after ``timeout_s``."""
    started = time.monotonic()
    worker.wait(timeout=timeout_s)
    return time.monotonic() - started
