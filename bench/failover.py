"""How long a crashed worker's partitions wait: ``python -m bench.failover [--standby N]``.

Two ``beckon worker`` processes of one fresh group read ``--events`` preloaded events
(``bench.live``'s preload and rules), with ``BECKON_STANDBY_REPLICAS=N`` and a 6 s
session timeout. Once the group has committed them all and idled 5 s, the second worker
is killed with SIGKILL, and the first is timed until Faust logs "Restore complete!" for
the partitions it took over: the session timeout, the rebalance, and with no warm copy
(``--standby 0``) the restore of their changelogs. The CPU the survivor used meanwhile
is printed too. docs/worker.md, "Standby replicas", has the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.clickstream import RULES_YAML
from bench.live import POLL_S, Worker, committed, group_settings, kafka, preload
from streams.settings import Settings

SESSION_TIMEOUT_S = 6
DONE = "Restore complete!"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser("python -m bench.failover", description=__doc__)
    parser.add_argument("--events", type=int, default=300_000, help="events [300000]")
    parser.add_argument("--visitors", type=int, default=30_000, help="visitors [30000]")
    parser.add_argument("--standby", type=int, default=0, help="standby replicas [0]")
    parser.add_argument("--bootstrap", help="a running broker [else a private one]")
    parser.add_argument("--keep", help="keep the worker logs and data in this folder")
    args = parser.parse_args(argv)
    os.environ["BECKON_STANDBY_REPLICAS"] = str(args.standby)  # the workers inherit them
    os.environ["BECKON_BROKER_SESSION_TIMEOUT_S"] = str(SESSION_TIMEOUT_S)
    with contextlib.ExitStack() as stack:
        if args.keep:
            (folder := Path(args.keep)).mkdir(parents=True, exist_ok=True)
        else:
            folder = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="beckon-failover-"))
            )
        base, where = stack.enter_context(kafka(args.bootstrap, folder))
        rules = folder / "rules.yaml"
        rules.write_text(RULES_YAML, encoding="utf-8")
        settings = group_settings(base, f"failover{uuid.uuid4().hex[:8]}", folder)
        print(f"broker {where}; preloading {args.events:,} events", file=sys.stderr)
        total, _ = preload(settings, args.events, args.visitors, seed=7)
        took, cpu = _takeover(settings, rules, folder, total)
    print(f"standby replicas {args.standby}: the survivor restored the dead worker's "
          f"partitions {took:.1f} s after the kill (session timeout {SESSION_TIMEOUT_S} s), "
          f"using {cpu:.1f} CPU-s")  # fmt: skip
    return 0


def _takeover(settings: Settings, rules: Path, folder: Path, total: int) -> tuple[float, float]:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(**settings.kafka_python_config())
    workers = [Worker(settings, rules, folder, i) for i in range(2)]
    try:
        while not all(w.ready() for w in workers):
            time.sleep(POLL_S)
        deadline = time.monotonic() + 600
        while committed(admin, settings.app_id, settings.topic_clickstream) < total:
            if time.monotonic() > deadline:
                raise RuntimeError(f"not all committed in 600 s:\n{workers[0].tail()}")
            time.sleep(POLL_S)
        time.sleep(5)
        survivor, seen = workers[0], workers[0].tail(None).count(DONE)
        cpu, started = survivor.cpu_s(), time.monotonic()
        workers[1].proc.send_signal(signal.SIGKILL)
        workers[1].proc.wait()
        while survivor.tail(None).count(DONE) == seen:
            if time.monotonic() - started > 600:
                raise RuntimeError(f"no restore in 600 s:\n{survivor.tail()}")
            time.sleep(0.1)
        return time.monotonic() - started, survivor.cpu_s() - cpu
    finally:
        for worker in workers:
            worker.stop()


if __name__ == "__main__":
    sys.exit(main())
