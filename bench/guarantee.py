"""What each processing guarantee delivers when a worker is killed mid-stream.

    .venv/bin/python -m bench.guarantee [--guarantee exactly_once] [--runs 3] [--events 60000]

For each run: fresh topics, a generated clickstream published up front, one
``beckon worker`` started, ``kill -9`` once a third of the expected invitations are on the
topic (read_uncommitted: transactions not yet committed count too), a restart, then a
``read_committed`` consumer reads until every invitation of the backtest has arrived.
It reports, per run: whether the invitations equal the backtest's (ids and
``triggered_at``), the copies a read_committed consumer sees, the seconds from restart to
the last invitation, and how long the restarted worker takes to stop on SIGTERM.

Uses the broker at ``BECKON_BOOTSTRAP`` (default localhost:9092; ``beckon broker start``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer

from bench.clickstream import RULES_YAML, generate
from schemas.rules import load_rules
from streams.backtest import Result, read_events, run
from streams.core.engine import Limits
from streams.core.rules import CompiledRules
from streams.kafka.publisher import Publisher
from streams.kafka.topics import ensure_topics
from streams.settings import Settings, load_settings

_TOPICS = (
    "clickstream", "invitations", "decisions", "rules", "dlq", "dwell_updates", "dwell", "budget"
)  # fmt: skip


def _expected(lines: list[bytes]) -> set[tuple[str, str]]:
    result = Result()
    run(read_events(lines, result), CompiledRules.of(load_rules(RULES_YAML)), Limits(), result)
    return {(i["invitation_id"], i["triggered_at"]) for i in result.invitations}


def _reader(settings: Settings, isolation: str) -> KafkaConsumer:
    return KafkaConsumer(
        settings.topic_invitations, **settings.kafka_python_config(),
        auto_offset_reset="earliest", isolation_level=isolation,
        group_id=f"guarantee-{uuid.uuid4().hex[:8]}",
    )  # fmt: skip


def _poll(consumer: KafkaConsumer) -> list[tuple[str, str]]:
    return [
        (orjson.loads(r.value)["invitation_id"], orjson.loads(r.value)["triggered_at"])
        for batch in consumer.poll(200).values()
        for r in batch
    ]


def one_run(guarantee: str, n_events: int, seed: int, workdir: Path) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    fields: dict[str, Any] = {f"topic_{t}": f"guarantee.{run_id}.{t}" for t in _TOPICS}
    fields.update(app_id=f"guarantee-{run_id}", partitions=4, data_dir=workdir / run_id,
                  processing_guarantee=guarantee, grace_s=1.0)  # fmt: skip
    settings = load_settings(**fields)
    ensure_topics(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BECKON_")}
    env.update({f"BECKON_{k.upper()}": str(v) for k, v in fields.items()})
    env["BECKON_BOOTSTRAP"] = settings.bootstrap
    rules = workdir / "rules.yaml"
    rules.write_text(RULES_YAML)
    log = (workdir / f"{run_id}.log").open("wb")
    command = [sys.executable, "-m", "streams.cli", "worker", "--rules", str(rules)]

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)

    lines = list(generate(n_events, max(100, n_events // 20), seed=seed))
    expected = _expected(lines)
    with Publisher(settings) as pub:
        for line in lines:
            pub.publish_raw(orjson.loads(line)["visitor_id"].encode(), line)
    worker = start()
    seen: set[tuple[str, str]] = set()
    uncommitted = _reader(settings, "read_uncommitted")
    deadline = time.monotonic() + 120
    while len(seen) < len(expected) / 3 and time.monotonic() < deadline:
        seen.update(_poll(uncommitted))
    uncommitted.close()
    worker.kill()
    worker.wait()
    killed_at, worker = time.monotonic(), start()
    committed = _reader(settings, "read_committed")
    got: list[tuple[str, str]] = []
    deadline = time.monotonic() + 180
    while not expected <= set(got) and time.monotonic() < deadline:
        got += _poll(committed)
    done = time.monotonic() - killed_at
    time.sleep(3)  # copies arrive soon after the originals, if at all
    got += _poll(committed)
    committed.close()
    stop_started = time.monotonic()
    worker.terminate()
    try:
        worker.wait(timeout=60)
        stop_s: float | str = round(time.monotonic() - stop_started, 1)
    except subprocess.TimeoutExpired:
        worker.kill()
        stop_s = "hung > 60 s (killed)"
    log.close()
    return {
        "guarantee": guarantee,
        "invitations": len(expected),
        "seen before kill": len(seen),
        "equal to backtest": set(got) == expected,
        "missing": len(expected - set(got)),
        "not in backtest": len(set(got) - expected),
        "copies (read_committed)": len(got) - len(set(got)),
        "restart to last invitation s": round(done, 1),
        "SIGTERM stop": stop_s,
        "log": str(workdir / f"{run_id}.log"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--guarantee", choices=["at_least_once", "exactly_once"],
                        default="exactly_once")  # fmt: skip
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=int, default=60_000)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="beckon-guarantee-"))
    for i in range(args.runs):
        report = one_run(args.guarantee, args.events, seed=100 + i, workdir=workdir)
        print(orjson.dumps(report).decode(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
