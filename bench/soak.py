"""A chaos soak on a real broker: ``python -m bench.soak --seed N [--visitors V] [--faults F]``.

Beckon's promise is that ``beckon worker`` gives exactly the invitations and decisions of
``beckon backtest`` for the same events, under every fault. This soak checks it:

1. A private broker (``streams.ops.broker``, free ports, a temporary folder), topics of
   the run's own, the 20 rules of ``bench.rules``.
2. ``bench.clickstream.generate(visitors x 8, visitors, seed)``: historical event times
   over about a day, published over the run (paced, so faults land mid-stream), keyed by
   visitor, by a producer that blocks and retries while the broker is away.
3. Three ``beckon worker`` processes in one group, each with its own data dir.
4. Faults at seeded moments (a ``random.Random(seed)`` schedule, printed first): SIGKILL
   during a backlog, right after a restart (recovery) and while the last timers fire;
   SIGTERM; a fourth worker joining and leaving; the broker stopped and started;
   visitors whose clocks run 3 h fast or slow (their whole sequences shifted); records
   published twice; poison messages (which must reach the DLQ); a share of the visitors
   sent through a ``beckon collector`` over HTTP, retried on 503.
5. Every stopped worker restarts on its group and data dir (a deployment with a past).
6. At the end, once the group has read the clickstream to its end and the last instants
   had their chance, the invitations and decisions topics are compared, by id, with
   ``beckon backtest`` of exactly the events on the clickstream topic (read back; the
   poison left out as the worker leaves it out). Exit 0 only with nothing missing, extra
   or differing and no acknowledged event lost; copies are reported (at least once).

``--short``: a few faults, a few thousand visitors, about 3 minutes (the integration
test ``tests/integration/test_soak_short.py``). Results: docs/reliability.md.

``--budgets``: the same rules with budgets on two queues (``BUDGETS_YAML``), so that the
budget stage's rounds, table and watermarks go through every fault; without the clock
faults, whose visitors are the budgets' stated caveat (docs/contract.md, "Budgets").
"""

from __future__ import annotations

import _thread
import argparse
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.clickstream import RULES_YAML, generate
from bench.live import Worker, committed, free_port, group_settings, kafka, read_topic
from bench.rules import BUDGETS_YAML
from streams.ops import broker
from streams.settings import Settings
from streams.worker.tables import partition_of

EVENTS_PER_VISITOR = 8
SHIFT_MS = 3 * 3600 * 1000  # a producer clock 3 h fast or slow
WORKERS = 3
JOINER = WORKERS  # the index (and data dir) of the fourth worker that joins and leaves
CHUNK = 250  # events published per paced step
HTTP_BATCH = 50  # events per collector request
PARTITIONS = 8  # of the run's topics (the settings' default)
HTTP_PARTITIONS = frozenset({0, 1})  # the collector takes these partitions' visitors
# The soak's workers: a replay's clock runs on after 2 s caught up and idle, and a killed
# worker's partitions move after 10 s of silence (both shorter than the defaults).
WORKER_ENV = {"BECKON_CLOCK_IDLE_S": "2", "BECKON_BROKER_SESSION_TIMEOUT_S": "10"}
PROCESS_KINDS = ("kill_backlog", "kill_recovery", "sigterm", "join_leave", "broker_bounce")
RECORD_KINDS = ("duplicate", "poison")
CLOCK_KINDS = ("clock_fast", "clock_slow")
END_KINDS = ("kill_end",)
ALL_KINDS = PROCESS_KINDS + RECORD_KINDS + CLOCK_KINDS + END_KINDS
WEIGHTS = {"kill_backlog": 4, "kill_recovery": 3, "sigterm": 2, "join_leave": 2,
           "broker_bounce": 1, "duplicate": 2, "poison": 2, "clock_fast": 1, "clock_slow": 1,
           "kill_end": 2}  # fmt: skip
SHORT_KINDS = ("kill_backlog", "duplicate", "poison", "clock_fast")


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# --- the plan ---------------------------------------------------------------------------


@dataclass
class Fault:
    """One fault: what, at which moment (events published before it; end faults: seconds
    after the group caught up), on which worker, for how long, on how many records."""

    kind: str
    at: float
    worker: int = 0
    hold_s: float = 0.0
    count: int = 0
    done: str = ""  # what happened, filled in as it runs

    def describe(self) -> str:
        where = f"+{self.at:.0f} s after catch-up" if self.kind in END_KINDS else f"@{self.at:,.0f}"
        what = {"duplicate": f"{self.count} records again", "poison": f"{self.count} records",
                "clock_fast": f"next {self.count} new visitors +3 h",
                "clock_slow": f"next {self.count} new visitors -3 h",
                "join_leave": f"worker {JOINER} for {self.hold_s:.0f} s",
                "broker_bounce": f"down {self.hold_s:.0f} s"}.get(
            self.kind, f"worker {self.worker}, down {self.hold_s:.0f} s")  # fmt: skip
        return f"{self.kind:14} {where:>22}  {what}"


def plan_faults(
    rng: random.Random, n: int, events: int, *, short: bool, budgets: bool = False
) -> list[Fault]:
    """The seeded schedule: every kind once (the short soak: its four), the rest drawn by
    weight; moments spread over 5-90% of the stream so each lands mid-stream. With
    budgets, no clock faults."""
    kinds = [k for k in (SHORT_KINDS if short else ALL_KINDS)
             if not (budgets and k in CLOCK_KINDS)]  # fmt: skip
    if not short:
        pool = [k for k, w in WEIGHTS.items() for _ in range(w)
                if not (budgets and k in CLOCK_KINDS)]  # fmt: skip
        kinds += [rng.choice(pool) for _ in range(max(0, n - len(kinds)))]
    faults = [_fault(rng, kind, events, short=short) for kind in kinds]
    return sorted(faults, key=lambda f: (f.kind in END_KINDS, f.at))


def _fault(rng: random.Random, kind: str, events: int, *, short: bool) -> Fault:
    if kind in END_KINDS:
        return Fault(kind, rng.uniform(1, 25), rng.randrange(WORKERS), rng.uniform(3, 15))
    at = rng.uniform(0.3, 0.6) if short else rng.uniform(0.05, 0.9)
    fault = Fault(kind, round(at * events), rng.randrange(WORKERS))
    if kind in ("kill_backlog", "kill_recovery", "sigterm"):
        fault.hold_s = rng.uniform(5, 25)
    elif kind == "join_leave":
        fault.hold_s = rng.uniform(20, 45)
    elif kind == "broker_bounce":
        fault.hold_s = rng.uniform(5, 15)
    elif kind == "duplicate":
        fault.count = rng.randrange(50, 400)
    elif kind == "poison":
        fault.count = 4
    elif kind in CLOCK_KINDS:
        fault.count = rng.randrange(10, 40)
    return fault


@dataclass
class Record:
    """An event to publish: its visitor (the key), its bytes, and whether it goes through
    the collector."""

    key: bytes
    value: bytes
    http: bool = False


def prepare(
    events: int, visitors: int, seed: int, faults: list[Fault], http: frozenset[int]
) -> tuple[list[Record], dict[str, set[str]]]:
    """The generated stream with the clock faults applied (every event of the next
    ``count`` new visitors from the fault's moment shifted by 3 h), and the visitors of the
    partitions in ``http`` routed to the collector. Returns the records and the visitors
    by group.

    Whole partitions, not a share of the visitors: a replay runs hundreds of times faster
    than real time, so a visitor's events sent over HTTP beside a direct producer would
    reach its partition minutes of event time behind the other visitors' (far beyond the
    grace), and find instants fired that the backtest never fires: the lateness the
    contract allows for (docs/event-time.md), not a fault of the worker."""
    clocks = sorted((f for f in faults if f.kind in CLOCK_KINDS), key=lambda f: f.at)
    shift: dict[str, int] = {}
    groups: dict[str, set[str]] = {"clock_fast": set(), "clock_slow": set(), "collector": set()}
    pending: list[list[Any]] = []  # [fault, new visitors still to take]
    records: list[Record] = []
    for i, raw in enumerate(generate(events, visitors, seed)):
        while clocks and clocks[0].at <= i:
            fault = clocks.pop(0)
            pending.append([fault, fault.count])
        event = orjson.loads(raw)
        visitor = event["visitor_id"]
        if visitor not in shift:
            shift[visitor] = _take_shift(pending, visitor, groups)
            if partition_of(visitor.encode(), PARTITIONS) in http:
                groups["collector"].add(visitor)
        if shift[visitor]:
            event["ts"] += shift[visitor]
            raw = orjson.dumps(event)
        records.append(Record(visitor.encode(), raw, visitor in groups["collector"]))
    return records, groups


def _take_shift(pending: list[list[Any]], visitor: str, groups: dict[str, set[str]]) -> int:
    """The shift of a new visitor: the oldest clock fault still taking visitors, or 0."""
    while pending and pending[0][1] <= 0:
        pending.pop(0)
    if not pending:
        return 0
    pending[0][1] -= 1
    fault = pending[0][0]
    groups[fault.kind].add(visitor)
    fault.done = f"{fault.count - pending[0][1]} visitors shifted, all their events"
    return SHIFT_MS if fault.kind == "clock_fast" else -SHIFT_MS


def poison_records(records: list[Record], n: int, rng: random.Random) -> list[tuple[bytes, bytes]]:
    """Messages the worker must dead-letter: not JSON, not an event, a real event keyed by
    another visitor, too large."""
    a, b = rng.sample(records, 2)
    kinds = [
        (a.key, b"not json " + uuid.uuid4().hex.encode()),
        (a.key, orjson.dumps({"event_id": uuid.uuid4().hex, "type": "teleport"})),
        (b"v-someone-else", b.value),
        (a.key, b"{" + b" " * 70_000 + b"}"),
    ]
    return [kinds[i % len(kinds)] for i in range(n)]


# --- publishing -------------------------------------------------------------------------


class Sender:
    """Publishes the records, paced, straight to Kafka or through the collector; counts
    what was acknowledged. The producer never gives up while the broker is away (it
    blocks and retries, in order), so nothing acknowledged is lost and nothing reorders."""

    def __init__(self, settings: Settings, collector_url: str | None) -> None:
        from kafka import KafkaProducer

        self.topic = settings.topic_clickstream
        self.producer = KafkaProducer(
            **settings.kafka_python_config(), acks="all", enable_idempotence=True,
            linger_ms=20, delivery_timeout_ms=3_600_000, max_block_ms=3_600_000,
            request_timeout_ms=10_000, reconnect_backoff_max_ms=1_000,
            client_id="beckon-soak",
        )  # fmt: skip
        self.url = collector_url
        self.published = 0  # events of the stream handed over (the fault clock)
        self.acked: list[bytes] = []  # values Kafka or the collector acknowledged
        self.http_503 = self.http_requests = 0
        self.failures: list[BaseException] = []
        self.poison: list[tuple[bytes, bytes]] = []  # (key, value): each must be dead-lettered

    def send(self, key: bytes, value: bytes) -> None:
        future = self.producer.send(self.topic, key=key, value=value)
        future.add_errback(self.failures.append)
        future.add_callback(lambda _meta, v=value: self.acked.append(v))

    def flush(self) -> None:
        self.producer.flush()
        if self.failures:
            raise RuntimeError(f"{len(self.failures)} sends failed: {self.failures[0]!r}")

    def post(self, values: list[bytes]) -> None:
        """One collector request, retried (after a 503 or a refused connection) until
        answered 200; anything else is a failure of the soak."""
        assert self.url is not None
        body = b"[" + b",".join(values) + b"]"
        sent_at = str(max(orjson.loads(v)["ts"] for v in values))
        while True:
            self.http_requests += 1
            request = urllib.request.Request(
                f"{self.url}/v1/events", data=body, method="POST",
                headers={"Content-Type": "application/json", "Beckon-Sent-At": sent_at},
            )  # fmt: skip
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    if answer.status == 200:
                        self.acked += values
                        return
            except urllib.error.HTTPError as exc:
                if exc.code != 503:
                    raise RuntimeError(
                        f"collector answered {exc.code}: {exc.read()[:300]!r}"
                    ) from exc
                self.http_503 += 1
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                self.http_503 += 1
            time.sleep(1)

    def close(self) -> None:
        self.flush()
        self.producer.close()


def publish(
    sender: Sender, records: list[Record], faults: list[Fault], seconds: float,
    rng: random.Random, t0: float,
) -> dict[str, int]:  # fmt: skip
    """Play the records over about ``seconds``; the record faults fire at their moments,
    and before a kill during a backlog the producer runs unpaced so that it is ahead."""
    mine = sorted((f for f in faults if f.kind in RECORD_KINDS), key=lambda f: f.at)
    bursts = [(f.at - burst_size(len(records)), f.at) for f in faults if f.kind == "kill_backlog"]
    counts: Counter[str] = Counter()
    started = time.monotonic()
    rate = len(records) / seconds
    for lo in range(0, len(records), CHUNK):
        chunk = records[lo : lo + CHUNK]
        while mine and mine[0].at <= lo:
            counts.update(record_fault(sender, mine.pop(0), records, lo, rng, t0))
        direct = [r for r in chunk if not r.http]
        for r in direct:
            sender.send(r.key, r.value)
        http = [r.value for r in chunk if r.http]
        for i in range(0, len(http), HTTP_BATCH):
            sender.post(http[i : i + HTTP_BATCH])
        sender.flush()
        sender.published = lo + len(chunk)
        counts["direct"] += len(direct)
        counts["http"] += len(http)
        if any(a <= lo < b for a, b in bursts):
            # Paced on from where the burst ends: waiting for the schedule to catch up
            # would pause every partition ~15 s, and a replay that pauses longer than
            # BECKON_CLOCK_IDLE_S counts as ended (docs/event-time.md, known limits).
            started = time.monotonic() - (lo + len(chunk)) / rate
        else:
            ahead = lo / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    while mine:
        counts.update(record_fault(sender, mine.pop(0), records, len(records), rng, t0))
    sender.flush()
    return dict(counts)


def burst_size(events: int) -> int:
    return max(1_000, events // 30)


def record_fault(
    sender: Sender, fault: Fault, records: list[Record], at: int, rng: random.Random, t0: float
) -> Counter[str]:
    """Publish a record fault: the latest ``count`` direct records again (as a producer
    retry would), or poison messages."""
    if fault.kind == "duplicate":
        again = [r for r in records[max(0, at - 4 * fault.count) : at] if not r.http]
        again = again[-fault.count :]
        for r in again:
            sender.send(r.key, r.value)
        fault.done = f"t+{time.monotonic() - t0:.0f} s: {len(again)} records published again"
        return Counter(duplicate=len(again))
    bad = poison_records(records[:at] or records, fault.count, rng)
    for key, value in bad:
        sender.send(key, value)
    sender.poison += bad
    fault.done = f"t+{time.monotonic() - t0:.0f} s: {len(bad)} poison messages"
    return Counter(poison=len(bad))


# --- processes: workers, collector, broker ----------------------------------------------


class Fleet:
    """The workers of the group, the fault conductor's actions on them, and a supervisor
    that restarts a worker that died unasked (and says so)."""

    def __init__(self, settings: Settings, rules: Path, folder: Path, t0: float) -> None:
        self.settings, self.rules, self.folder, self.t0 = settings, rules, folder, t0
        self.workers: dict[int, Worker] = {}
        self.down: set[int] = set()  # stopped on purpose, waiting for their restart
        self.unexpected: list[str] = []
        self.lock = threading.Lock()

    def now(self) -> str:
        return f"t+{time.monotonic() - self.t0:.0f} s"

    def start(self, i: int) -> None:
        with self.lock:
            self.workers[i] = Worker(self.settings, self.rules, self.folder, i)
            self.down.discard(i)

    def kill(self, i: int, sig: int = signal.SIGKILL) -> bool:
        """Signal worker ``i`` (if it runs) and mark it down until restarted."""
        with self.lock:
            w = self.workers.get(i)
            self.down.add(i)
            if w is None or w.proc.poll() is not None:
                return False
            w.proc.send_signal(sig)
            return True

    def restart(self, i: int) -> None:
        """Start worker ``i`` again on its data dir, once its previous life has ended."""
        w = self.workers.get(i)
        if w is not None:
            try:
                w.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()
        self.start(i)

    def supervise(self) -> None:
        """Restart any worker that exited although nobody stopped it."""
        for i, w in list(self.workers.items()):
            if i not in self.down and w.proc.poll() is not None:
                self.unexpected.append(f"{self.now()}: worker {i} exited {w.proc.returncode}")
                say(f"worker {i} exited by itself ({w.proc.returncode}); restarting it")
                self.start(i)

    def stop_all(self) -> None:
        for w in self.workers.values():
            w.stop()

    def problems(self) -> Counter[str]:
        logs = {w.log for w in self.workers.values()}
        total: Counter[str] = Counter()
        for w in self.workers.values():
            if w.log in logs:
                total += w.problems()
                logs.discard(w.log)
        return total


class Conductor(threading.Thread):
    """Runs the process faults when the stream reaches their moments (and the end faults
    once the group caught up), and their follow-ups (restarts, the joiner's leave, the
    broker's start) when due; supervises the workers all along."""

    def __init__(self, fleet: Fleet, sender: Sender, faults: list[Fault], base: Settings) -> None:
        super().__init__(name="conductor", daemon=True)
        self.fleet, self.sender, self.base = fleet, sender, base
        self.todo = [f for f in faults if f.kind in PROCESS_KINDS]
        self.end = [f for f in faults if f.kind in END_KINDS]
        self.caught_up_at: float | None = None  # set by the main thread at the end
        self.later: list[tuple[float, Callable[[], None]]] = []
        self.broker_busy = threading.Event()
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def idle(self) -> bool:
        """Nothing left to do or to undo."""
        return not (self.todo or self.end or self.later or self.broker_busy.is_set())

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                self.step()
                time.sleep(0.2)
        except BaseException as exc:  # reported by the main thread
            self.error = exc

    def step(self) -> None:
        now = time.monotonic()
        for due, action in [x for x in self.later if x[0] <= now]:
            self.later.remove((due, action))
            action()
        while self.todo and self.todo[0].at <= self.sender.published:
            self.process_fault(self.todo.pop(0))
        if self.caught_up_at is not None:
            while self.end and self.caught_up_at + self.end[0].at <= now:
                self.process_fault(self.end.pop(0))
        if not self.broker_busy.is_set():
            self.fleet.supervise()

    def after(self, seconds: float, action: Callable[[], None]) -> None:
        self.later.append((time.monotonic() + seconds, action))

    def process_fault(self, f: Fault) -> None:
        fleet, w = self.fleet, f.worker
        if f.kind in ("kill_backlog", "kill_end", "kill_recovery", "sigterm"):
            sig = signal.SIGTERM if f.kind == "sigterm" else signal.SIGKILL
            hit = fleet.kill(w, sig)
            f.done = f"{fleet.now()}: {sig.name} worker {w}" + ("" if hit else " (not running)")
            f.done += f", backlog {self.backlog():,}"
            self.after(f.hold_s, lambda: self.restart(f, w))
        elif f.kind == "join_leave":
            fleet.start(JOINER)
            f.done = f"{fleet.now()}: worker {JOINER} joined"
            self.after(f.hold_s, lambda: self.leave(f))
        elif f.kind == "broker_bounce":
            f.done = f"{fleet.now()}: broker stopped"
            self.broker_busy.set()
            threading.Thread(target=self.bounce, args=(f,), daemon=True).start()
        say(f"fault {f.kind}: {f.done}")

    def restart(self, f: Fault, w: int) -> None:
        self.fleet.restart(w)
        f.done += f"; {self.fleet.now()}: restarted"
        if f.kind == "kill_recovery" and "recovery" not in f.done:
            # Killed again while it rejoins and recovers its tables, then back for good.
            pause = random.Random(f.at).uniform(1, 5)
            self.after(pause, lambda: self.kill_in_recovery(f, w, pause))

    def kill_in_recovery(self, f: Fault, w: int, pause: float) -> None:
        self.fleet.kill(w)
        f.done += f"; {self.fleet.now()}: SIGKILL again {pause:.1f} s into recovery"
        self.after(f.hold_s, lambda: self.restart(f, w))

    def leave(self, f: Fault) -> None:
        self.fleet.kill(JOINER, signal.SIGTERM)
        f.done += f"; {self.fleet.now()}: SIGTERM, left"

    def bounce(self, f: Fault) -> None:
        """Stop the broker, and start it again after the fault's hold. A broker that does
        not start fails the soak at once (the main thread is interrupted) rather than
        leaving producers and workers to wait for it until a timeout."""
        try:
            broker.stop(self.base)
            time.sleep(f.hold_s)
            broker.start(self.base)
            f.done += f"; {self.fleet.now()}: broker started"
        except BaseException as exc:
            self.error = exc
            say(f"fault {f.kind}: the broker did not start again: {exc}")
            _thread.interrupt_main()
        finally:
            self.broker_busy.clear()

    def backlog(self) -> int:
        """Events published and not yet committed by the group (-1 if unknown)."""
        try:
            from kafka import KafkaAdminClient

            admin = KafkaAdminClient(**self.base.kafka_python_config(), request_timeout_ms=5000)
            try:
                done = committed(admin, self.fleet.settings.app_id, self.sender.topic)
            finally:
                admin.close()
            return self.sender.published - done
        except Exception:  # a figure for the table, not a condition
            return -1


@contextlib.contextmanager
def running_collector(settings: Settings, folder: Path) -> Iterator[str]:
    """``beckon collector`` on a free port, in development mode (any site), with a clock
    skew wider than the replay's distance from now: a replay's historical times are not
    "wrong clocks", and a correction would compress a visitor's time against the
    stream's (docs/reliability.md)."""
    port = free_port()
    argv = [sys.executable, "-m", "streams.cli", "collector", "--bootstrap", settings.bootstrap,
            "--topic-clickstream", settings.topic_clickstream, "--collector-port", str(port),
            "--collector-clock-skew-s", str(20 * 365 * 86_400),
            "--collector-ack-timeout-s", "3"]  # fmt: skip
    with (folder / "collector.log").open("ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the collector did not start; see collector.log") from None
            time.sleep(0.3)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# --- the end: caught up, then against the backtest --------------------------------------


def end_offsets(settings: Settings, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**settings.kafka_python_config())
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
        return sum(consumer.end_offsets(tps).values())
    finally:
        consumer.close()


def wait_caught_up(settings: Settings, conductor: Conductor, timeout_s: float) -> float:
    """Until the group committed the clickstream to its end (supervising meanwhile);
    returns the seconds it took."""
    from kafka import KafkaAdminClient

    started = time.monotonic()
    end = end_offsets(settings, settings.topic_clickstream)
    admin = KafkaAdminClient(**settings.kafka_python_config())
    try:
        while committed(admin, settings.app_id, settings.topic_clickstream) < end:
            if time.monotonic() - started > timeout_s:
                raise RuntimeError(f"the group did not catch up in {timeout_s:g} s")
            time.sleep(1)
    finally:
        admin.close()
    return time.monotonic() - started


def backtest_input(settings: Settings) -> tuple[list[bytes], int]:
    """The clickstream topic's records the worker judges (key = visitor, not too large),
    partition by partition in offset order, and how many it dead-letters instead."""
    lines, dead = [], 0
    records = sorted(read_topic(settings, settings.topic_clickstream),
                     key=lambda r: (r.partition, r.offset))  # fmt: skip
    for r in records:
        if len(r.value) > settings.max_event_bytes or not r.value.strip():
            dead += 1
            continue
        try:
            visitor = orjson.loads(r.value).get("visitor_id")
        except (orjson.JSONDecodeError, AttributeError):
            visitor = None
        if visitor is not None and r.key != str(visitor).encode():
            dead += 1
            continue
        lines.append(r.value)
    return lines, dead


def backtest(settings: Settings, lines: list[bytes], rules_yaml: str = RULES_YAML) -> Any:
    from schemas.rules import load_rules
    from streams.backtest import Result, read_events, run
    from streams.core.rules import CompiledRules

    result = Result()
    rules = CompiledRules.of(load_rules(rules_yaml))
    return run(read_events(lines, result), rules, settings.limits(), result)


@dataclass
class Comparison:
    """The worker's outputs against the backtest's, by id."""

    invitations: int = 0
    decisions: int = 0
    inv_missing: list[str] = field(default_factory=list)
    inv_extra: list[str] = field(default_factory=list)
    inv_differing: list[str] = field(default_factory=list)
    inv_copies: int = 0
    dec_missing: list[Any] = field(default_factory=list)
    dec_extra: list[Any] = field(default_factory=list)
    dec_differing: list[Any] = field(default_factory=list)
    dec_copies: int = 0

    def ok(self) -> bool:
        return not (self.inv_missing or self.inv_extra or self.inv_differing
                    or self.dec_missing or self.dec_extra or self.dec_differing)  # fmt: skip


def compare(settings: Settings, expected: Any) -> Comparison:
    """Invitations by id (whole record); decisions by (invitation_id, rule_id): outcome
    and reason. Copies of one id are counted, not faults (at least once)."""
    got_inv = [orjson.loads(r.value) for r in read_topic(settings, settings.topic_invitations)]
    got_dec = [orjson.loads(r.value) for r in read_topic(settings, settings.topic_decisions)]
    want_inv = {i["invitation_id"]: i for i in expected.invitations}
    want_dec = {(d["invitation_id"], d["rule_id"]): (d["outcome"], d.get("reason"))
                for d in expected.decisions}  # fmt: skip
    inv: dict[str, list[Any]] = {}
    for i in got_inv:
        inv.setdefault(i["invitation_id"], []).append(i)
    dec: dict[tuple[str, str], list[Any]] = {}
    for d in got_dec:
        dec.setdefault((d["invitation_id"], d["rule_id"]), []).append(
            (d["outcome"], d.get("reason"))
        )
    return Comparison(
        invitations=len(want_inv), decisions=len(want_dec),
        inv_missing=sorted(want_inv.keys() - inv.keys()),
        inv_extra=sorted(inv.keys() - want_inv.keys()),
        inv_differing=sorted(k for k in want_inv.keys() & inv.keys()
                             if any(x != want_inv[k] for x in inv[k])),
        inv_copies=len(got_inv) - len(inv),
        dec_missing=sorted(want_dec.keys() - dec.keys()),
        dec_extra=sorted(dec.keys() - want_dec.keys()),
        dec_differing=sorted(k for k in want_dec.keys() & dec.keys()
                             if any(x != want_dec[k] for x in dec[k])),
        dec_copies=len(got_dec) - len(dec),
    )  # fmt: skip


def settle(settings: Settings, expected: Any, conductor: Conductor) -> Comparison:
    """Compare until the outputs match the backtest, or the last instants certainly had
    their chance: they lie up to the presence timeout after their partition's last
    event, and the clock runs on in wall time once the partition is idle."""
    floor = time.monotonic() + settings.grace_s + float(WORKER_ENV["BECKON_CLOCK_IDLE_S"]) + 5
    deadline = floor + settings.presence_timeout_s + 90
    while True:
        conductor_quiet = conductor.idle()
        result = compare(settings, expected)
        now = time.monotonic()
        if conductor_quiet and ((result.ok() and now > floor) or now > deadline):
            return result
        if not conductor_quiet:
            deadline = max(deadline, now + settings.presence_timeout_s + 60)
        time.sleep(3)


def dead_letters(settings: Settings, poison: list[tuple[bytes, bytes]]) -> tuple[Counter[str], int]:
    """Dead letters by reason, and how many of the poison messages are not among them."""
    records = read_topic(settings, settings.topic_dlq)
    reasons = Counter(dict(r.headers).get("beckon.reason", b"?").decode() for r in records)
    return reasons, len(set(poison) - {(r.key, r.value) for r in records})


# --- the run -----------------------------------------------------------------------------


def soak(args: argparse.Namespace) -> dict[str, Any]:
    """Run the whole soak; the figures and the comparison."""
    os.environ.update(WORKER_ENV)
    if args.budget_slack_s is not None:
        os.environ["BECKON_BUDGET_SLACK_S"] = str(args.budget_slack_s)
    t0, t0_epoch = time.monotonic(), time.time()
    rng = random.Random(args.seed)
    events = args.visitors * EVENTS_PER_VISITOR
    faults = plan_faults(rng, args.faults, events, short=args.short, budgets=args.budgets)
    rules_yaml = BUDGETS_YAML + RULES_YAML if args.budgets else RULES_YAML
    print(f"seed {args.seed}: {args.visitors:,} visitors, {events:,} events over "
          f"~{args.publish_s:g} s; {len(faults)} faults:", flush=True)  # fmt: skip
    for f in faults:
        print("  " + f.describe(), flush=True)
    http = frozenset() if args.short else HTTP_PARTITIONS
    records, groups = prepare(events, args.visitors, args.seed, faults, http)
    r: dict[str, Any] = {"seed": args.seed, "faults": faults, "events": events,
                         "groups": {k: len(v) for k, v in groups.items()}}  # fmt: skip
    with contextlib.ExitStack() as stack:
        if args.keep:
            (folder := Path(args.keep)).mkdir(parents=True, exist_ok=True)
        else:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="beckon-soak-")))
        base, where = stack.enter_context(kafka(None, folder))
        run_id = f"soak{args.seed}x{uuid.uuid4().hex[:6]}"
        settings = group_settings(base, run_id, folder, partitions=PARTITIONS)
        rules = folder / "rules.yaml"
        rules.write_text(rules_yaml, encoding="utf-8")
        say(f"broker {where}; run {run_id}; logs in {folder}")
        url = stack.enter_context(running_collector(settings, folder)) if http else None
        fleet = Fleet(settings, rules, folder, t0)
        stack.callback(fleet.stop_all)
        for i in range(WORKERS):
            fleet.start(i)
        for w in list(fleet.workers.values()):
            w.wait_idle()
        sender = Sender(settings, url)
        conductor = Conductor(fleet, sender, faults, base)
        conductor.start()
        stack.callback(conductor.stopping.set)
        say("publishing")
        r["sent"] = publish(sender, records, faults, args.publish_s, rng, t0)
        sender.close()
        r["http"] = {"requests": sender.http_requests, "retried": sender.http_503}
        say(f"published {r['sent']}; waiting for the processes' faults to end")
        while conductor.todo or conductor.later or conductor.broker_busy.is_set():
            time.sleep(0.5)
        r["catch_up_s"] = wait_caught_up(settings, conductor, timeout_s=1800)
        conductor.caught_up_at = time.monotonic()
        say(f"caught up in {r['catch_up_s']:.0f} s; the backtest of the topic")
        lines, poisoned = backtest_input(settings)
        r["lost"] = len(event_ids(sender.acked) - event_ids(lines))
        r["topic_records"], r["judged"] = len(lines) + poisoned, len(lines)
        r["poisoned_on_topic"] = poisoned
        expected = backtest(settings, lines, rules_yaml)
        r["budget"] = sum(d["reason"] == "budget" for d in expected.decisions)
        r["visitors"] = expected.visitors
        say(f"backtest: {len(expected.invitations)} invitations; settling")
        r["cmp"] = settle(settings, expected, conductor)
        r["dlq"], r["poison_missing"] = dead_letters(settings, sender.poison)
        r["unexpected"] = fleet.unexpected
        r["problems"] = fleet.problems()
        if not r["cmp"].ok():
            r["detail"] = mismatch_detail(r["cmp"], expected, settings, groups, t0_epoch)
        conductor.stopping.set()
    r["wall_s"] = time.monotonic() - t0
    return r


def event_ids(values: list[bytes]) -> set[str]:
    """The event ids among these values (poison without one left out): what was
    acknowledged must be on the topic, though the collector rewrites the JSON."""
    ids = set()
    for value in values:
        with contextlib.suppress(orjson.JSONDecodeError):
            event = orjson.loads(value)
            if isinstance(event, dict) and isinstance(event.get("event_id"), str):
                ids.add(event["event_id"])
    return ids


def mismatch_detail(cmp: Comparison, expected: Any, settings: Settings,
                    groups: dict[str, set[str]], t0_epoch: float) -> list[str]:  # fmt: skip
    """Each mismatched output with its visitor, rule, instant and the visitor's groups."""
    got: dict[str, Any] = {}
    emitted: dict[Any, list[str]] = {}  # id -> when each copy reached the topic, t+s
    for r in read_topic(settings, settings.topic_invitations):
        got.setdefault(orjson.loads(r.value)["invitation_id"], orjson.loads(r.value))
        when = f"p{r.partition} t+{r.timestamp / 1000 - t0_epoch:.0f}s"
        emitted.setdefault(orjson.loads(r.value)["invitation_id"], []).append(when)
    want = {i["invitation_id"]: i for i in expected.invitations}
    want_dec = {(d["invitation_id"], d["rule_id"]): d for d in expected.decisions}
    got_dec: dict[Any, Any] = {}
    for r in read_topic(settings, settings.topic_decisions):
        d = orjson.loads(r.value)
        got_dec.setdefault((d["invitation_id"], d["rule_id"]), d)
        if (d["invitation_id"], d["rule_id"]) not in want_dec:
            emitted.setdefault((d["invitation_id"], d["rule_id"]), []).append(
                f"p{r.partition} t+{r.timestamp / 1000 - t0_epoch:.0f}s"
            )

    def tag(visitor: str) -> str:
        return ",".join(k for k, v in groups.items() if visitor in v) or "-"

    lines = []
    for what, ids, source in [("invitation missing", cmp.inv_missing, want),
                              ("invitation extra", cmp.inv_extra, got),
                              ("invitation differing", cmp.inv_differing, want),
                              ("decision missing", cmp.dec_missing, want_dec),
                              ("decision extra", cmp.dec_extra, got_dec),
                              ("decision differing", cmp.dec_differing, want_dec)]:  # fmt: skip
        for key in ids[:20]:
            x = source[key]
            other = got_dec.get(key) if what.startswith("decision differing") else None
            lines.append(f"{what}: {x['visitor_id']} [{tag(x['visitor_id'])}] {x['rule_id']} "
                         f"at {x['triggered_at']} {x.get('outcome', '')} {x.get('reason') or ''}"
                         + (f" / live {other['outcome']} {other.get('reason')} at "
                            f"{other['triggered_at']}" if other else "")
                         + f"; emitted {' '.join(emitted.get(key, []))}")  # fmt: skip
            if what == "invitation differing":
                live = got[key]
                fields = sorted(k for k in x.keys() | live.keys() if x.get(k) != live.get(k))
                lines.append("    differs in: " + ", ".join(
                    f"{k} {x.get(k)!r} / live {live.get(k)!r}" for k in fields))  # fmt: skip
    return lines


# --- the report --------------------------------------------------------------------------


def report(r: dict[str, Any]) -> str:
    c: Comparison = r["cmp"]
    rows = [f"seed {r['seed']}: {len(r['faults'])} faults"]
    rows += ["  " + f.describe() + "\n      " + (f.done or "(not run)") for f in r["faults"]]
    rows += [
        f"events generated {r['events']:,}; published {r['sent']}; collector {r.get('http')}",
        f"visitor groups: {r['groups']}",
        f"clickstream topic: {r['topic_records']:,} records, {r['judged']:,} judged, "
        f"{r['poisoned_on_topic']} poison; acknowledged and lost: {r['lost']}",
        f"dead letters: {dict(r['dlq'])}; poison messages not dead-lettered: {r['poison_missing']}",
        f"backtest: {r['visitors']:,} visitors, {c.invitations:,} invitations, "
        f"{c.decisions:,} decisions, {r.get('budget', 0):,} of them suppressed budget",
        f"invitations: {len(c.inv_missing)} missing, {len(c.inv_extra)} extra, "
        f"{len(c.inv_differing)} differing, {c.inv_copies} copies",
        f"decisions:   {len(c.dec_missing)} missing, {len(c.dec_extra)} extra, "
        f"{len(c.dec_differing)} differing, {c.dec_copies} copies",
        f"workers that died unasked: {r['unexpected'] or 'none'}",
        f"caught up {r['catch_up_s']:.0f} s after publishing; wall time {r['wall_s']:.0f} s",
    ]
    rows += [f"  {line}" for line in r.get("detail", [])]
    rows += [f"worker log: {n} x {line[:140]}" for line, n in r["problems"].most_common(8)]
    verdict = "PASS" if passed(r) else "FAIL"
    rows.append(f"{verdict}: seed {r['seed']}")
    return "\n".join(rows)


def passed(r: dict[str, Any]) -> bool:
    return bool(r["cmp"].ok() and r["lost"] == 0 and r["poison_missing"] == 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        "python -m bench.soak", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    add = parser.add_argument
    add("--seed", type=int, required=True, help="the clickstream's and the faults' seed")
    add("--visitors", type=int, help="visitors [30000; --short 3000]")
    add("--faults", type=int, default=20, help="faults, at least one of each kind [20]")
    add("--publish-s", type=float, help="seconds over which to publish [480; --short 60]")
    add("--short", action="store_true", help="a few faults, a few thousand visitors")
    add("--budgets", action="store_true", help="budgets on two queues; no clock faults")
    add(
        "--budget-slack-s",
        type=float,
        help="the workers' BECKON_BUDGET_SLACK_S (event time: a replay compresses it)",
    )
    add("--keep", help="keep logs and data in this folder [a temporary one]")
    args = parser.parse_args(argv)
    args.visitors = args.visitors or (3_000 if args.short else 30_000)
    args.publish_s = args.publish_s or (60.0 if args.short else 480.0)
    r = soak(args)
    print(report(r), flush=True)
    return 0 if passed(r) else 1


if __name__ == "__main__":
    sys.exit(main())
