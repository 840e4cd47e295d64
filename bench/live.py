"""How fast the live worker is: ``python -m bench.live [--events N] [--visitors V] ...``.

Targets (issue 4): at least 10,000 events/s per worker process; p99 trigger latency under
1 s at 2,000 events/s. Uses the broker at ``--bootstrap`` / ``BECKON_BOOTSTRAP``, else a
private one (``streams.ops.broker``, free ports, a temporary folder). Workers are real
``beckon worker --rules`` processes with the 20 rules of ``bench.rules``; each run has
its own topics, each worker group its own app id, data dirs and output topics.

1. Preload ``--events`` seeded ``bench.clickstream`` events into a clickstream topic.
2. Raw ceiling: a plain aiokafka consumer (Faust's client; kafka-python is several times
   slower, its CRC check being pure Python) reads it and ``orjson``-decodes each value.
   Faust's agent path: ``bench.faust_floor``, a Faust app built as the worker's with one
   agent that reads the topic with ``take_events`` and only counts, measured as in 3:
   the most a worker reading through a Faust agent could do (the worker reads through
   its intake instead, ``streams/worker/intake.py``; under ``exactly_once`` it keeps the agent).
3. One worker, fresh group: events/s from the first move of the group's committed offsets
   to the poll at which they reach the topic's end offsets. Polls are 0.2 s apart and
   Faust commits every 1,000 events or 1 s, so the start is seen ~0.3 s late and the end
   up to ~1.2 s late (the last events commit on the 1 s tick): about ±2% on 300,000
   events at 5,000/s. The rate from 10% to 90% of the input, free of both ends, is shown.
   Start-up apart: spawn to Faust's "Ready" and to the first commit. Memory: VmRSS at the
   end minus a baseline (a worker with the same rules, 3 s after "Ready" on empty topics)
   per 100,000 visitors; and VmRSS growth from 25% to 100% of the input per 100,000
   visitors first seen there (no start-up costs), and from 50% to 100% in percent (issue
   14: flat within 10% on 1,000,000 visitors). The data dir's size on disk. Then
   the invitations against ``beckon backtest`` of the same events, by id: the workers
   run on until every instant had its chance (the last ones lie up to the presence
   timeout after their partition's last event, reached in wall time), and missing,
   extra ids and copies are counted.
4. Scale (issue 14: CPU per event with 1, 2 and 4 workers within 10% of each other, and
   each run equal to the backtest): for each N of ``--scale`` (1,2,4), a fresh group of N
   workers over the same topic. Combined events/s, measured as in 3; the CPU-seconds the
   N processes used (utime + stime of /proc/<pid>/stat: all their threads), each from
   the poll that first sees its "Ready" to the poll at which the group reaches the end;
   that total per event read after the first worker was Ready (the group's committed
   offsets then, in practice all), and its ratio to the first N's; the invitations
   against the backtest as in 3. Two cores cannot show a wall-clock speed-up beyond two
   workers (the broker and this script share them), but a CPU cost per event that stays
   flat as N grows shows that the work splits without overhead, so more cores add
   throughput. Why from "Ready": Faust logs it once the worker's first assignment is
   recovered and its partitions are sought, so its reading starts there. What comes
   before (imports, the rules, joining the group) is paid once per process, not per
   event; counting it would charge N workers N start-ups for one input. A worker not
   yet Ready when the group reaches the end read nothing and counts nothing. "Ready" is
   seen up to a poll (0.2 s) late: up to 0.2 s of a core per worker of early reading is
   missed while its events are counted. Still counted: the idle second between the last
   event and its commit, the rebalances as later workers join, and the rest of a
   start-up that outlasts Ready: one worker alone is done by then (0.01 CPU-s a second
   after it, idle), but four starting together on two cores still had device-detector's
   warm-up and the joins to finish, ~1.1 CPU-s each after Ready with nothing to read
   (2026-12-03). Hence a second figure: the CPU from the poll at which every worker has
   been Ready ``SETTLE_S`` (3 s) to the end, per event left then: the input less the
   events the workers had handled (``beckon_events_total`` on their /metrics; committed
   offsets lag too far for this, the first commit coming up to 2 s after Ready). It is
   nan when the group is done before that, as on a small input, where start-up and
   rebalances take most of the run anyway. ``--skip two`` (the phase's former name,
   when it ran two workers only) skips it.
5. Paced latency, with the default grace and with ``--grace``: an idle worker on fresh
   topics, then ``--rate`` events/s for ``--paced-seconds``, each ``ts`` rewritten to the
   wall clock as sent. The traffic is generated dense enough to run at about ``--rate``
   on its own (~24M visitors over the generator's day at 10 events each); its first 10
   minutes (the site filling up) are skipped, and the next ``rate × seconds`` events keep
   each visitor's relative spacing, scaled by the factor shown (near 1) to fit the run.
   Visitors mid-page at the cut lack their page view, as for a worker joining a live
   site. Latency = the invitation record's Kafka timestamp (CreateTime, set by the
   worker's producer) minus its ``triggered_at``. Timer instants fire once the clock
   passes t + grace, hence the latency beyond the grace; a visitor's next event may fire
   an instant sooner.

The machine is shared (2 cores, the broker and this script beside the workers): the load
average is printed with the figures. Run it twice before trusting a difference.

With ``BENCH_MEMORY_PROBE=DIR`` in the environment every worker runs under
``bench.memory_probe``, which logs where its memory is to ``DIR/<app id>-<i>.jsonl``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from bench.clickstream import RULES_YAML, generate
from bench.rules import BUDGETS_YAML
from schemas.instants import parse_instant
from streams.kafka.publisher import Publisher
from streams.kafka.topics import TopicSpec, contract_topics, ensure_topics
from streams.ops import broker
from streams.settings import Settings, load_settings

TARGET_EPS, TARGET_P99_MS, POLL_S = 10_000, 1_000, 0.2
SETTLE_S = 3  # after the last worker's Ready: its start-up's rest is done (bench.live 4)
WARMUP_MS = 10 * 60_000  # event time skipped before the paced window: the site fills up
# Events a visitor adds to a day of bench.clickstream traffic, per unit of the generator's
# events/visitors ratio (measured: 1,400 events/s 10-30 minutes in, 17M visitors, ratio 10).
DAILY_SHARE = 0.71
TOPIC_FIELDS = [name for name in Settings.model_fields if name.startswith("topic_")]
Timed = tuple[int, bytes, bytes]  # (ts or ms from the start, key, value)


# --- pure helpers -----------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank q-th percentile (0 < q <= 100); NaN for no values."""
    if not values:
        return float("nan")
    return sorted(values)[max(1, math.ceil(len(values) * q / 100)) - 1]


def rate_between(samples: Sequence[tuple[float, int]], lo: float, hi: float) -> float | None:
    """Events/s from (seconds, events done) samples: from the first at ``lo`` or more
    events to the first at ``hi`` or more; None unless both exist, in that order."""
    a = next(((t, n) for t, n in samples if n >= lo), None)
    b = next(((t, n) for t, n in samples if n >= hi), None)
    if a is None or b is None or b[0] <= a[0]:
        return None
    return (b[1] - a[1]) / (b[0] - a[0])


def retimed(raw: bytes, ts_ms: int) -> bytes:
    """An event's JSON with its ``ts`` replaced by ``ts_ms``."""
    event = orjson.loads(raw)
    event["ts"] = ts_ms
    return orjson.dumps(event)


def paced_schedule(timed: Sequence[Timed], seconds: float) -> tuple[list[Timed], float]:
    """(ms from the start, key, value) playing the events over ``seconds`` with their
    relative spacing, and the speed-up (event time per wall time) that takes."""
    if not timed:
        return [], 1.0
    first, last = timed[0][0], timed[-1][0]
    speedup = (last - first) / (seconds * 1000) if last > first else 1.0
    return [(round((ts - first) / speedup), key, value) for ts, key, value in timed], speedup


def group_sizes(text: str) -> list[int]:
    """``--scale``'s "1,2,4": the group sizes, in order, each once."""
    sizes = [int(part) for part in text.split(",") if part.strip()]
    if not sizes or min(sizes) < 1:
        raise ValueError(f"group sizes are whole numbers from 1: {text!r}")
    return list(dict.fromkeys(sizes))


def cpu_since(at_start: Sequence[float], at_end: Sequence[float]) -> float:
    """CPU-seconds the workers used from each one's start (its Ready, say) to the end,
    summed; a worker with no start (nan: not Ready by the end) read nothing and counts
    nothing."""
    pairs = zip(at_start, at_end, strict=True)
    return sum(end - start for start, end in pairs if not math.isnan(start))


def per_event_us(cpu_s: float, events: int) -> float:
    """CPU-µs an event; nan for no events."""
    return cpu_s / events * 1e6 if events > 0 else math.nan


def spread(values: Sequence[float]) -> float:
    """How far the largest value lies above the smallest, max / min - 1; nan unless all
    are positive."""
    if not values or not all(v > 0 for v in values):  # nan > 0 is False
        return math.nan
    return max(values) / min(values) - 1


# --- broker, topics, workers -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def kafka(bootstrap: str | None, folder: Path) -> Iterator[tuple[Settings, str]]:
    """Settings for the given broker, or for a private one started (and stopped) here."""
    if bootstrap or os.environ.get("BECKON_BOOTSTRAP"):
        settings = load_settings(bootstrap=bootstrap)
        yield settings, f"given, {settings.bootstrap}"
        return
    port, cport = free_port(), free_port()
    settings = load_settings(bootstrap=f"localhost:{port}", broker_port=port,
                             controller_port=cport, broker_dir=folder / "broker")  # fmt: skip
    broker.start(settings)
    try:
        yield settings, f"private, {settings.bootstrap}"
    finally:
        broker.stop(settings)


def group_settings(base: Settings, prefix: str, folder: Path, **update: Any) -> Settings:
    """Every topic named under ``prefix`` (but those in ``update``) and created; an app id
    and a data dir of its own."""
    app_id = f"bench-{prefix}".replace(".", "-")
    topics = {f: f"{prefix}.{f.removeprefix('topic_')}" for f in TOPIC_FIELDS}
    settings = base.model_copy(
        update={**topics, "app_id": app_id, "data_dir": folder / app_id, **update}
    )
    specs = contract_topics(settings)
    known = {spec.name for spec in specs}
    specs += [TopicSpec(getattr(settings, f), settings.partitions) for f in TOPIC_FIELDS
              if getattr(settings, f) not in known]  # fmt: skip
    ensure_topics(settings, specs)
    return settings


class Worker:
    """Worker ``i`` of a group (a ``beckon worker --rules`` process, with its own data dir
    and web port), its log, and what /proc says of it."""

    def __init__(
        self, settings: Settings, rules: Path, folder: Path, i: int = 0, *, floor: bool = False
    ) -> None:
        settings = settings.model_copy(
            update={"data_dir": settings.data_path / str(i), "web_port": free_port()}
        )
        # Faust wants it there; it may hold a past (bench.soak restarts a worker on it).
        settings.data_path.mkdir(parents=True, exist_ok=True)

        def flags(*names: str) -> list[str]:
            pairs = (("--" + n.replace("_", "-"), str(getattr(settings, n))) for n in names)
            return [f for pair in pairs for f in pair]

        process = ("bootstrap", "app_id", "data_dir", "web_port")
        argv = [str(Path(sys.executable).with_name("beckon")), "worker", "--rules", str(rules),
                *flags(*process, "grace_s", *TOPIC_FIELDS)]  # fmt: skip
        if probes := os.environ.get("BENCH_MEMORY_PROBE"):  # a folder: bench.memory_probe
            probe = Path(probes) / f"{settings.app_id}-{i}.jsonl"
            argv = [sys.executable, "-m", "bench.memory_probe", str(probe), *argv[1:]]
        if floor:  # Faust alone: an agent that only counts (bench.faust_floor)
            argv = [sys.executable, "-m", "bench.faust_floor", *flags(*process),
                    "--topic", settings.topic_clickstream]  # fmt: skip
        self.log, self.web = folder / f"{settings.app_id}-{i}.log", settings.web_port
        self.started, self.ready_s = time.monotonic(), math.nan
        self.ready_cpu_s = math.nan  # CPU-seconds used by the time "Ready" was seen
        with self.log.open("ab") as out:  # a restarted worker logs on after its past
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)

    def ready(self) -> bool:
        """Has Faust logged "Ready" (noting when it first did, and the CPU used by then)?
        Raises if the worker died."""
        if self.proc.poll() is not None:
            raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.tail()}")
        if math.isnan(self.ready_s) and "Worker]: Ready" in self.tail(None):
            self.ready_s, self.ready_cpu_s = time.monotonic() - self.started, self.cpu_s()
        return not math.isnan(self.ready_s)

    def wait_idle(self, timeout_s: float = 120) -> None:
        """Until it is Ready, and 3 s more: joined, recovered, idle."""
        deadline = time.monotonic() + timeout_s
        while not self.ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker not Ready in {timeout_s:g} s:\n{self.tail()}")
            time.sleep(POLL_S)
        time.sleep(3)

    def mb(self, field: str) -> float:
        """VmRSS, VmHWM, ... in MB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return math.nan

    def cpu_s(self) -> float:
        """CPU-seconds used so far, all threads: utime + stime of /proc/<pid>/stat."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def events(self) -> int:
        """Clickstream events it has handled so far: ``beckon_events_total`` on its /metrics
        (answered between batches)."""
        from urllib.request import urlopen

        with urlopen(f"http://localhost:{self.web}/metrics", timeout=10) as response:
            lines = response.read().decode().splitlines()
        counts = (float(x.split()[-1]) for x in lines if x.startswith("beckon_events_total"))
        return round(sum(counts))

    def stop(self) -> None:
        """SIGTERM (Faust stops cleanly), SIGKILL after 30 s."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tail(self, lines: int | None = 15) -> str:
        text = self.log.read_text(errors="replace")
        return text if lines is None else "\n".join(text.splitlines()[-lines:])

    def problems(self) -> Counter[str]:
        """Warnings and errors in the log, numbers blanked so that alike ones count as one."""
        return Counter(
            re.sub(r"\d+(\.\d+)?", "N", line.split("] ", 3)[-1].strip())
            for line in self.tail(None).splitlines()
            if "[WARNING]" in line or "[ERROR]" in line or line.startswith("Traceback")
        )


def committed(admin: Any, group: str, topic: str) -> int:
    """Offsets the group committed on the topic, summed; 0 while its coordinator loads."""
    from kafka.errors import (
        CoordinatorLoadInProgressError,
        CoordinatorNotAvailableError,
        NotCoordinatorError,
    )

    try:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
    except (CoordinatorNotAvailableError, CoordinatorLoadInProgressError, NotCoordinatorError):
        return 0  # a fresh broker creates __consumer_offsets on the first group's request
    return sum(max(0, meta.offset) for tp, meta in offsets.items() if tp.topic == topic)


def read_topic(settings: Settings, topic: str) -> list[Any]:
    """Every record of a topic up to its end offsets now."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**settings.kafka_python_config(), enable_auto_commit=False)
    try:
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in range(settings.partitions)])
        consumer.assign(list(ends))
        consumer.seek_to_beginning()
        records: list[Any] = []
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            records += [r for batch in consumer.poll(500).values() for r in batch]
        return records
    finally:
        consumer.close()


def outputs(settings: Settings) -> str:
    """Invitations and dead letters written: "N / M"."""
    return " / ".join(str(len(read_topic(settings, t)))
                      for t in (settings.topic_invitations, settings.topic_dlq))  # fmt: skip


def backtest_ids(
    settings: Settings, n: int, visitors: int, seed: int, rules_yaml: str = RULES_YAML
) -> set[str]:
    """The invitation ids ``beckon backtest`` gives for the preloaded events."""
    from schemas.rules import load_rules
    from streams.backtest import Result, read_events, run
    from streams.core.rules import CompiledRules

    result = Result()
    rules = CompiledRules.of(load_rules(rules_yaml))
    run(read_events(generate(n, visitors, seed), result), rules, settings.limits(), result)
    return {i["invitation_id"] for i in result.invitations}


def against_backtest(settings: Settings, expected: set[str]) -> tuple[str, str]:
    """The invitations written, against the backtest's, once every instant had its chance:
    "N / M" (invitations / dead letters) and how they compare.

    A replay's last instants lie up to the presence timeout after the last event of
    their partition, and the partition's clock reaches them in wall time: wait that
    long (less once all are there) before counting."""
    deadline = time.monotonic() + settings.presence_timeout_s + settings.grace_s + 5
    while True:
        ids = [orjson.loads(r.value)["invitation_id"]
               for r in read_topic(settings, settings.topic_invitations)]  # fmt: skip
        if expected <= set(ids) or time.monotonic() > deadline:
            break
        time.sleep(2)
    found = set(ids)
    dead = len(read_topic(settings, settings.topic_dlq))
    return (f"{len(ids)} / {dead}",
            f"backtest {len(expected)}: {len(expected - found)} missing, "
            f"{len(found - expected)} extra, {len(ids) - len(found)} copies")  # fmt: skip


# --- the phases -------------------------------------------------------------------------


def preload(settings: Settings, n: int, visitors: int, seed: int) -> tuple[int, list[int]]:
    """Publish the generated events; distinct visitors in the first k% of them, k=0..100."""
    seen: set[bytes] = set()
    curve = [0]
    with Publisher(settings, validate=False, linger_ms=20, batch_size=1 << 20) as pub:
        for i, raw in enumerate(generate(n, visitors, seed), 1):
            key = orjson.loads(raw)["visitor_id"].encode()
            seen.add(key)
            pub.publish_raw(key, raw)
            while i * 100 // n >= len(curve):
                curve.append(len(seen))
    return n, curve


def raw_ceiling(settings: Settings, total: int) -> float:
    """Events/s of a plain aiokafka consumer that reads and decodes the whole topic."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def read() -> float:
        consumer = AIOKafkaConsumer(**settings.aiokafka_config(), enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign([TopicPartition(settings.topic_clickstream, p)
                             for p in range(settings.partitions)])  # fmt: skip
            await consumer.seek_to_beginning()
            n, loads, started = 0, orjson.loads, time.perf_counter()
            while n < total:
                for batch in (await consumer.getmany(timeout_ms=500, max_records=10_000)).values():
                    for record in batch:
                        loads(record.value)
                    n += len(batch)
            return n / (time.perf_counter() - started)
        finally:
            await consumer.stop()

    return asyncio.run(read())


def consume(settings: Settings, rules: Path, folder: Path, n: int, curve: list[int],
            total: int, *, expected: set[str] | None = None,
            floor: bool = False) -> dict[str, Any]:  # fmt: skip
    """``n`` workers of one fresh group over the preloaded topic, until they consumed it
    (with ``floor``, Faust agents that only count); then their invitations against the
    ``expected`` ids of the backtest."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(**settings.kafka_python_config())
    workers = [Worker(settings, rules, folder, i, floor=floor) for i in range(n)]
    samples: list[tuple[float, int, float, float]] = []  # (s, committed, VmRSS MB, CPU s)
    since: int | None = None  # committed when the first worker was seen Ready
    settled: tuple[int, list[float]] = (total, [math.nan] * n)  # handled, CPU: all settled
    try:
        deadline = time.monotonic() + 60 + total / 500
        while not samples or samples[-1][1] < total:
            if time.monotonic() > deadline:
                raise RuntimeError(f"not done in time: {samples[-1:]}\n{workers[0].tail()}")
            ready = [w.ready() for w in workers]
            done_now = committed(admin, settings.app_id, settings.topic_clickstream)
            since = done_now if since is None and any(ready) else since
            cpu = [w.cpu_s() for w in workers]
            last_ready = max(w.started + w.ready_s for w in workers) if all(ready) else math.inf
            if math.isnan(settled[1][0]) and time.monotonic() >= last_ready + SETTLE_S:
                # handled, not committed: the first commit can come 2 s after Ready
                settled = sum(w.events() for w in workers), [w.cpu_s() for w in workers]
            samples.append((time.monotonic() - workers[0].started, done_now,
                            sum(w.mb("VmRSS") for w in workers), sum(cpu)))  # fmt: skip
            time.sleep(POLL_S)
        progress = [(round(t, 2), c) for t, c, _, _ in samples]
        first = next(s for s in samples if s[1] > 0)
        quarter, done = next(s for s in samples if s[1] >= total / 4), samples[-1]
        half = next(s for s in samples if s[1] >= total / 2)
        later = curve[-1] - curve[min(100, quarter[1] * 100 // total)]  # new after 25%
        at_ready = [w.ready_cpu_s for w in workers]
        cpu_s = cpu_since(at_ready, cpu)  # start-up apart
        read = 0 if since is None else total - since  # events read after the first Ready
        settled_cpu_s = cpu_since(settled[1], cpu)
        result: dict[str, Any] = {
            # nan when too few polls saw it move (a small input)
            "events_per_s": rate_between(progress, 1, total) or math.nan,
            "middle_per_s": rate_between(progress, total / 10, total * 9 / 10) or math.nan,
            "ready_s": max(w.ready_s for w in workers),
            "first_commit_s": first[0],
            "done_s": done[0],
            # nan when one commit took it all (a small input)
            "cpu_share": (done[3] - first[3]) / (done[0] - first[0] or math.nan),
            "cpu_s": cpu_s,
            "cpu_us_per_event": per_event_us(cpu_s, read),
            "cpu_s_to_ready": at_ready,  # each worker's
            "settled_events": total - settled[0],
            "settled_cpu_s": settled_cpu_s,
            "settled_cpu_us_per_event": per_event_us(settled_cpu_s, total - settled[0]),
            "ready_workers": sum(ready),
            "rss_mb": [round(w.mb("VmRSS")) for w in workers],
            "hwm_mb": [round(w.mb("VmHWM")) for w in workers],
            "growth_mb_per_100k": (done[2] - quarter[2]) / max(1, later) * 100_000,
            "second_half_growth": (done[2] - half[2]) / half[2],  # issue 14: flat, <= 10%
            "progress": progress,
        }
        if expected is not None:
            result["outputs"], result["versus"] = against_backtest(settings, expected)
    finally:
        for w in workers:
            w.stop()
        admin.close()
    files = [f for f in settings.data_path.rglob("*") if f.is_file()]
    result["data_dir_mb"] = sum(f.stat().st_size for f in files) / 1e6
    if "outputs" not in result:
        result["outputs"] = "-" if floor else outputs(settings)
    result["problems"] = sum((w.problems() for w in workers), Counter())
    return result


def paced_input(rate: float, seconds: float, ratio: int, seed: int) -> list[Timed]:
    """``rate × seconds`` events of traffic that runs at about ``rate``/s on its own."""
    visitors = round(rate * 86_400 / (DAILY_SHARE * ratio))
    wanted, start = round(rate * seconds), None
    out: list[Timed] = []
    for raw in generate(visitors * ratio, visitors, seed):
        event = orjson.loads(raw)
        start = event["ts"] + WARMUP_MS if start is None else start
        if event["ts"] >= start:
            out.append((event["ts"], event["visitor_id"].encode(), raw))
            if len(out) >= wanted:
                break
    return out


def paced(settings: Settings, rules: Path, folder: Path, schedule: list[Timed]) -> dict[str, Any]:
    """One idle worker, then the schedule played live; latencies from its invitations."""
    from kafka import KafkaAdminClient

    worker = Worker(settings, rules, folder)
    try:
        worker.wait_idle()
        late = 0.0  # how far the sender fell behind its schedule, ms
        with Publisher(settings, validate=False, linger_ms=2) as pub:
            started, wall_ms, cpu = time.monotonic(), time.time() * 1000, worker.cpu_s()
            for offset, key, raw in schedule:
                ahead = offset - (time.monotonic() - started) * 1000
                if ahead > 2:
                    time.sleep(ahead / 1000)
                late = max(late, -ahead)
                pub.publish_raw(key, retimed(raw, int(time.time() * 1000)))
            sent_s, cpu = time.monotonic() - started, worker.cpu_s() - cpu
        admin = KafkaAdminClient(**settings.kafka_python_config())
        backlog = len(schedule) - committed(admin, settings.app_id, settings.topic_clickstream)
        admin.close()
        # Instants lie at most the presence timeout after a visitor's latest event.
        time.sleep(settings.presence_timeout_s + settings.grace_s + 3)
        worker.ready()
        records = read_topic(settings, settings.topic_invitations)
    finally:
        worker.stop()
    triggered = [parse_instant(orjson.loads(r.value)["triggered_at"]) for r in records]
    latency = [r.timestamp - t for r, t in zip(records, triggered, strict=True)]
    second_half = [
        x for x, t in zip(latency, triggered, strict=True) if t >= wall_ms + sent_s * 500
    ]
    grace_ms = settings.grace_s * 1000
    return {
        "grace_s": settings.grace_s, "sent": len(schedule), "rate": len(schedule) / sent_s,
        "sender_late_ms": late, "backlog": backlog, "cpu_share": cpu / sent_s,
        "outputs": outputs(settings),
        **{f"p{q}_ms": percentile(latency, q) for q in (50, 90, 99)},
        "min_ms": min(latency, default=math.nan), "max_ms": max(latency, default=math.nan),
        "p99_second_half_ms": percentile(second_half, 99),
        **{f"beyond_p{q}_ms": percentile([x - grace_ms for x in latency], q) for q in (50, 90, 99)},
        "before_grace": sum(x < grace_ms for x in latency),
        "negative": sum(x < 0 for x in latency),
        "problems": worker.problems(),
    }  # fmt: skip


# --- the report -------------------------------------------------------------------------


def report(r: dict[str, Any]) -> str:
    """The figures as a table: what, value, and the target or a note."""
    ms = "{:,.0f} / {:,.0f} / {:,.0f} ms".format
    rows = [
        ("input", f"{r['events']:,} events, {r['visitors']:,} visitors", "20 rules"),
        ("load average (1 min), start / end", "{:.1f} / {:.1f}".format(*r["load"]), "2 cores"),
    ]
    if "raw" in r:
        rows += [("raw ceiling: aiokafka + orjson.loads", f"{r['raw']:,.0f} events/s", "")]
    if floor := r.get("faust"):
        rows += [("Faust's agent path: an agent that only counts",
                  f"{floor['events_per_s']:,.0f} events/s",
                  f"CPU {floor['cpu_share']:.0%} of a core")]  # fmt: skip
    if one := r.get("one"):
        rows += [
            ("one worker: events/s", f"{one['events_per_s']:,.0f}",
             ("meets" if one["events_per_s"] >= TARGET_EPS else "short of") + f" {TARGET_EPS:,}"),
            ("  events/s from 10% to 90% of the input", f"{one['middle_per_s']:,.0f}", ""),
            ("  spawn to Ready / first commit / all done",
             f"{one['ready_s']:.1f} / {one['first_commit_s']:.1f} / {one['done_s']:.1f} s", ""),
            ("  worker CPU while consuming", f"{one['cpu_share']:.0%} of a core", ""),
            ("  VmRSS / VmHWM at the end", f"{one['rss_mb'][0]} / {one['hwm_mb'][0]} MB", ""),
            ("  memory per 100k visitors",
             f"{(one['rss_mb'][0] - r['baseline_mb']) / r['visitors'] * 100_000:,.0f} MB",
             f"(end - idle {r['baseline_mb']:.0f} MB) / visitors"),
            ("  VmRSS growth per 100k new visitors", f"{one['growth_mb_per_100k']:,.0f} MB",
             "from 25% to 100% of the input"),
            ("  VmRSS growth over the second half", f"{one['second_half_growth']:+.0%}",
             "from 50% to 100% of the input"),
            ("  data dir on disk", f"{one['data_dir_mb']:,.1f} MB",
             f"{one['data_dir_mb'] * 1024 * 1024 / r['visitors']:,.0f} bytes per visitor"),
            ("  invitations / dead letters", one["outputs"], one.get("versus", "")),
        ]  # fmt: skip
    for g in (scale := r.get("scale", [])):
        n, first = g["workers"], scale[0]
        rows += [
            (f"{n} worker{'s' if n > 1 else ''}, one group: events/s", f"{g['events_per_s']:,.0f}",
             f"{g['events_per_s'] / first['events_per_s']:.2f}x {first['workers']}"),
            ("  events/s from 10% to 90% of the input", f"{g['middle_per_s']:,.0f}", ""),
            ("  CPU from each one's Ready to the end", f"{g['cpu_s']:,.2f} s",
             f"{g['ready_workers']} of {n} Ready; {g['cpu_share']:.0%} of a core while consuming"),
            ("  CPU per event", f"{g['cpu_us_per_event']:,.1f} µs",
             f"{g['cpu_ratio']:.2f}x {first['workers']}"),
            (f"  CPU per event once all Ready {SETTLE_S} s",
             f"{g['settled_cpu_us_per_event']:,.1f} µs",
             f"{g['settled_cpu_ratio']:.2f}x {first['workers']}; "
             f"{g['settled_cpu_s']:,.2f} s over the last {g['settled_events']:,} events")
            if g["settled_events"] else
            (f"  CPU per event once all Ready {SETTLE_S} s", "-", "the group was done before"),
            ("  VmRSS at the end", " / ".join(f"{m} MB" for m in g["rss_mb"]), ""),
            ("  invitations / dead letters", g["outputs"], g.get("versus", "")),
        ]  # fmt: skip
    if scale:
        for key, name in [("", "from Ready"), ("settled_", "once settled")]:
            over = r[f"scale_{key}spread"]
            verdict = "within" if over <= 0.1 else "beyond"
            rows += [(f"CPU per event {name}, largest over smallest", f"{over:+.1%}",
                      f"{verdict} 10% (issue 14)") if not math.isnan(over) else
                     (f"CPU per event {name}, largest over smallest", "-", "")]  # fmt: skip
    for p in r.get("paced", []):
        verdict = "meets" if p["p99_ms"] < TARGET_P99_MS else "misses"
        rows += [
            (f"paced, grace {p['grace_s']:g} s: sent", f"{p['sent']:,} at {p['rate']:,.0f}/s",
             f"spacing x{1 / r['speedup']:.2f}, sender late <= {p['sender_late_ms']:.0f} ms"),
            ("  not yet committed when sending ended", f"{p['backlog']:,} events",
             f"worker CPU {p['cpu_share']:.0%} of a core while sent"),
            ("  invitations / dead letters", p["outputs"], ""),
            ("  latency p50 / p90 / p99", ms(p["p50_ms"], p["p90_ms"], p["p99_ms"]),
             f"p99 {verdict} < {TARGET_P99_MS:,} ms"),
            ("  latency min / max", f"{p['min_ms']:,.0f} / {p['max_ms']:,.0f} ms",
             f"{p['negative']} negative"),
            ("  latency p99, second half of the run", f"{p['p99_second_half_ms']:,.0f} ms", ""),
            ("  beyond grace p50 / p90 / p99",
             ms(p["beyond_p50_ms"], p["beyond_p90_ms"], p["beyond_p99_ms"]),
             f"{p['before_grace']} fired before t + grace"),
        ]  # fmt: skip
    wide = [max(len(row[i]) for row in rows) for i in (0, 1)]
    return "\n".join(f"{a:<{wide[0]}}  {b:>{wide[1]}}  {c}".rstrip() for a, b, c in rows)


def main(argv: list[str] | None = None) -> int:
    raw_doc = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        "python -m bench.live", description=__doc__, formatter_class=raw_doc
    )
    add = parser.add_argument
    add("--events", type=int, default=300_000, help="events preloaded [300000]")
    add("--visitors", type=int, default=30_000, help="visitors among them [30000]")
    add("--seed", type=int, default=7, help="clickstream seed [7]")
    add("--rate", type=float, default=2_000, help="paced events/s [2000]")
    add("--paced-seconds", type=float, default=60, help="paced run length [60]")
    add("--grace", type=float, default=0.25, help="grace of the second paced run [0.25]")
    add("--bootstrap", help="a running broker [BECKON_BOOTSTRAP, else a private one]")
    phases = ["raw", "faust", "one", "scale", "two", "paced"]  # two: scale's former name
    add("--skip", action="append", default=[], choices=phases,
        help="leave out a phase (two: the same as scale)")  # fmt: skip
    add("--scale", type=group_sizes, default="1,2,4", help="group sizes of scale [1,2,4]")
    add("--budgets", action="store_true", help="the rules with budgets on two queues")
    add("--json", help="also write the figures to this file")
    add("--keep", help="keep the worker logs and data in this folder [a temporary one]")
    args = parser.parse_args(argv)
    skip = set(args.skip) | ({"scale"} if "two" in args.skip else set())

    def say(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    r: dict[str, Any] = {"load": [os.getloadavg()[0]]}
    with contextlib.ExitStack() as stack:
        if args.keep:
            (folder := Path(args.keep)).mkdir(parents=True, exist_ok=True)
        else:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="beckon-live-")))
        base, r["broker"] = stack.enter_context(kafka(args.bootstrap, folder))
        run, rules = f"live{uuid.uuid4().hex[:8]}", folder / "rules.yaml"
        rules_yaml = BUDGETS_YAML + RULES_YAML if args.budgets else RULES_YAML
        rules.write_text(rules_yaml, encoding="utf-8")
        say(f"broker {r['broker']}; run {run}; logs in {folder}")
        source = group_settings(base, f"{run}.input", folder)
        say(f"preloading {args.events:,} events into {source.topic_clickstream}")
        total, curve = preload(source, args.events, args.visitors, args.seed)
        r.update(events=total, visitors=curve[-1])
        say("the backtest of the same events")
        expected = backtest_ids(base, args.events, args.visitors, args.seed, rules_yaml)
        shared = {"topic_clickstream": source.topic_clickstream}
        if "raw" not in skip:
            say("raw ceiling")
            r["raw"] = raw_ceiling(source, total)
        if "faust" not in skip:
            say("Faust's agent path: an agent that only counts")
            settings = group_settings(base, f"{run}.faust", folder, **shared)
            r["faust"] = consume(settings, rules, folder, 1, curve, total, floor=True)
        if "one" not in skip:
            say("idle baseline")
            idle = Worker(group_settings(base, f"{run}.idle", folder), rules, folder)
            try:
                idle.wait_idle()
                r["baseline_mb"] = idle.mb("VmRSS")
            finally:
                idle.stop()
        groups = [("one", 1)] if "one" not in skip else []
        groups += [(f"scale{n}", n) for n in args.scale if "scale" not in skip]
        for phase, n in groups:
            say(f"{n} worker(s) in a fresh group over the preloaded topic ({phase})")
            settings = group_settings(base, f"{run}.{phase}", folder, **shared)
            result = consume(settings, rules, folder, n, curve, total, expected=expected)
            if phase == "one":
                r["one"] = result
            else:
                r.setdefault("scale", []).append({"workers": n, **result})
        if scale := r.get("scale"):
            for key in ["", "settled_"]:  # from Ready, and once settled
                per_event = [g[f"{key}cpu_us_per_event"] for g in scale]
                for g, us in zip(scale, per_event, strict=True):
                    g[f"{key}cpu_ratio"] = us / (per_event[0] or math.nan)
                r[f"scale_{key}spread"] = spread(per_event)
        if "paced" not in skip:
            say(f"generating {args.rate * args.paced_seconds:,.0f} events to pace")
            ratio = max(1, args.events // max(1, args.visitors))
            timed = paced_input(args.rate, args.paced_seconds, ratio, args.seed)
            schedule, r["speedup"] = paced_schedule(timed, args.paced_seconds)
            r["paced"] = []
            for grace in dict.fromkeys([base.grace_s, args.grace]):
                say(f"paced at {args.rate:,.0f} events/s, grace {grace:g} s")
                name = f"{run}.paced{round(grace * 1000)}ms"
                settings = group_settings(base, name, folder, grace_s=grace)
                r["paced"].append(paced(settings, rules, folder, schedule))
    r["load"].append(os.getloadavg()[0])
    print(report(r))
    for phase in [r.get("faust"), r.get("one"), *r.get("scale", []), *r.get("paced", [])]:
        for line, count in (phase or {}).get("problems", Counter()).most_common(8):
            print(f"worker log: {count} x {line[:150]}")
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(r, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
