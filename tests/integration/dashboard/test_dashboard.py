"""`beckon dashboard` over a real broker and a real worker: its numbers equal the backtest's.

A generated clickstream (and three poison messages) goes through `beckon worker`; the
dashboard, a subprocess with the same topics, must show the backtest's funnel, the DLQ by
reason, the top pages from the dwell aggregates, no lag once the worker is done; then,
with the worker stopped, visitor responses published to the clickstream show up as
shown/accepted/declined per rule and as exactly that much lag.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from bench.clickstream import RULES_YAML, generate
from schemas.rules import load_rules
from streams.backtest import Result, read_events, run
from streams.core.engine import Limits
from streams.core.rules import CompiledRules
from streams.kafka.publisher import Publisher
from streams.kafka.topics import ensure_topics
from streams.settings import Settings
from tests.helpers import free_port
from tests.integration.helpers import dwell_records, start_worker

pytestmark = pytest.mark.integration


def _summary(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://localhost:{port}/api/summary", timeout=5) as r:
            return dict(orjson.loads(r.read()))
    except (urllib.error.URLError, OSError):
        return None


def _wait_for(
    port: int, ok: Callable[[dict[str, Any]], bool], timeout_s: float, logs: Callable[[], str]
) -> dict[str, Any]:
    deadline, last = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        last = _summary(port)
        if last is not None and ok(last):
            return last
        time.sleep(1)
    pytest.fail(f"the summary never got there: {orjson.dumps(last).decode()[:3000]}\n{logs()}")


def _funnel(decisions: list[dict[str, Any]]) -> dict[str, tuple[int, int, dict[str, int]]]:
    """Per rule, from the backtest: (matched, invited, suppressed by reason)."""
    out: dict[str, tuple[int, int, Counter[str]]] = {}
    for d in decisions:
        matched, invited, reasons = out.get(d["rule_id"], (0, 0, Counter()))
        if d["reason"] is not None:  # suppressed, or a shadow rule's would-be reason
            reasons[d["reason"]] += 1
        out[d["rule_id"]] = (matched + 1, invited + (d["outcome"] == "invited"), reasons)
    return {rule: (m, i, dict(sorted(r.items()))) for rule, (m, i, r) in out.items()}


def _shown_funnel(summary: dict[str, Any]) -> dict[str, tuple[int, int, dict[str, int]]]:
    return {r["rule_id"]: (r["matched"], r["invited"], r["suppressed"]) for r in summary["funnel"]}


def _top_pages(records: dict[bytes, Any], windows: int = 5, n: int = 10) -> list[Any]:
    """The pages with the most dwell over the latest windows, computed here on its own."""
    latest = sorted({orjson.loads(k)[2] for k in records}, reverse=True)[:windows]
    sums: dict[str, list[int]] = {}
    for key, record in records.items():
        if orjson.loads(key)[2] in latest:
            total = sums.setdefault(record["page"], [0, 0])
            total[0] += record["dwell_ms"]
            total[1] += record["page_views"]
    ranked = sorted(sums.items(), key=lambda kv: (-kv[1][0], kv[0]))[:n]
    return [(page, dwell, views) for page, (dwell, views) in ranked]


def _pages(summary: dict[str, Any]) -> list[Any]:
    return [(p["page"], p["dwell_ms"], p["page_views"]) for p in summary["top_pages"]["pages"]]


def _response(invitation: dict[str, Any], response: str, n: int = 0) -> dict[str, Any]:
    return {"event_id": f"{invitation['invitation_id']}-{response}-{n}",
            "type": "invitation_response", "visitor_id": invitation["visitor_id"],
            "site_id": invitation["site_id"], "ts": int(time.time() * 1000),
            "invitation_id": invitation["invitation_id"], "response": response}  # fmt: skip


@pytest.fixture
def live(kafka_settings: Settings, tmp_path: Path) -> tuple[Settings, dict[str, str]]:
    """Settings and environment for one isolated pipeline: its own topics, group and state."""
    run_id = uuid.uuid4().hex[:10]
    names = ("clickstream", "invitations", "decisions", "rules", "dlq", "dwell_updates",
             "dwell")  # fmt: skip
    settings = kafka_settings.model_copy(update={
        "app_id": f"beckon-dash-{run_id}", "partitions": 4, "data_dir": tmp_path / "worker",
        "grace_s": 1.0, **{f"topic_{n}": f"dash.{run_id}.{n}" for n in names},
    })  # fmt: skip
    ensure_topics(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BECKON_")}
    for name in ("bootstrap", "app_id", "partitions", "data_dir", "grace_s",
                 *(f"topic_{n}" for n in names)):  # fmt: skip
        env[f"BECKON_{name.upper()}"] = str(getattr(settings, name))
    return settings, env


@pytest.fixture
def dashboard(live: tuple[Settings, dict[str, str]], tmp_path: Path) -> Iterator[int]:
    """`beckon dashboard` on the test's topics and a free port: the port."""
    env = live[1]
    port = free_port()
    with (tmp_path / "dashboard.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "dashboard", "--dashboard-port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            yield port
        finally:
            process.terminate()
            process.wait(timeout=30)


def test_dashboard_shows_the_backtests_funnel_the_dlq_dwell_responses_and_lag(
    live: tuple[Settings, dict[str, str]], dashboard: int, tmp_path: Path
) -> None:
    settings, env = live
    lines = list(generate(2_000, 150, seed=23))
    result = Result()
    run(read_events(lines, result), CompiledRules.of(load_rules(RULES_YAML)), Limits(), result)
    expected = _funnel(result.decisions)
    assert len(result.invitations) >= 6 and len(expected) >= 2, "a scenario worth showing"
    expected_pages = _top_pages(dwell_records(lines))
    poison = [(b"v-poison", b"not json"),
              (b"v-poison", orjson.dumps({"event_id": "p1", "type": "teleport"})),
              (b"someone-else", lines[0])]  # fmt: skip
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES_YAML)

    def logs() -> str:
        return "\n".join(f"--- {p.name} ---\n{p.read_text(errors='replace')[-2500:]}"
                         for p in tmp_path.glob("*.log"))  # fmt: skip

    with (tmp_path / "worker.log").open("wb") as log:
        worker = start_worker(env, rules, log)
        try:
            with Publisher(settings) as pub:
                for key, value in poison:
                    pub.publish_raw(key, value)
                for line in lines:
                    pub.publish_raw(orjson.loads(line)["visitor_id"].encode(), line)
            done = _wait_for(
                dashboard,
                # Rates come from end offsets sampled every 2 s: wait for a sample after
                # the last write too.
                lambda s: (
                    _shown_funnel(s) == expected
                    and s["rates"]["invitations"]["total"] == len(result.invitations)
                    and s["rates"]["events"]["total"] == len(lines) + len(poison)
                    and s["lag"]["total"] == 0
                    and len(s["lag"]["partitions"]) >= settings.partitions
                    and _pages(s) == expected_pages
                ),
                timeout_s=120,
                logs=logs,
            )
        finally:
            worker.terminate()
            worker.wait(timeout=60)

    assert done["dlq"]["by_reason"] == {"invalid": 2, "key_mismatch": 1}
    assert done["rates"]["events"]["total"] == len(lines) + len(poison)
    assert done["rates"]["invitations"]["total"] == len(result.invitations)
    clicks = [p for p in done["lag"]["partitions"] if p["topic"] == settings.topic_clickstream]
    assert len(clicks) == settings.partitions
    assert sum(p["committed"] for p in clicks) == len(lines) + len(poison)
    ids = {i["invitation_id"] for i in result.invitations}
    latest = done["latest_invitations"]
    assert len(latest) == min(20, len(ids)) and {i["invitation_id"] for i in latest} <= ids
    assert all(i["why"].startswith("dwell ") for i in latest)

    # The worker is gone: responses reach the dashboard straight from the clickstream.
    first = result.invitations[:6]
    responses = [_response(i, "shown") for i in first]
    responses += [_response(i, "accepted") for i in first[:3]]
    responses += [_response(i, "declined") for i in first[3:5]]
    responses.append(_response(first[0], "accepted", 2))  # a retry: counted once
    responses.append({**_response(first[5], "accepted"), "invitation_id": "never-invited"})
    with Publisher(settings) as pub:
        pub.publish_many(responses)
    by_rule: dict[str, Counter[str]] = {}
    for n, i in enumerate(first):
        counts = by_rule.setdefault(i["rule_id"], Counter())
        counts["shown"] += 1
        counts["accepted"] += n < 3
        counts["declined"] += 3 <= n < 5
    after = _wait_for(
        dashboard,
        lambda s: s["lag"]["total"] == len(responses) and s["totals"]["shown"] == 6,
        timeout_s=30,
        logs=logs,
    )
    rows = {r["rule_id"]: r for r in after["funnel"]}
    for rule, counts in by_rule.items():
        row = rows[rule]
        assert (row["shown"], row["accepted"], row["declined"]) == (
            counts["shown"], counts["accepted"], counts["declined"]), rule  # fmt: skip
        assert row["acceptance"] == round(counts["accepted"] / counts["shown"], 4)
    assert (after["totals"]["accepted"], after["totals"]["declined"]) == (3, 2)
    assert _shown_funnel(after) == expected, "responses never change the decisions"
    assert after["caught_up"] and after["kafka"]["ok"]
    with urllib.request.urlopen(f"http://localhost:{dashboard}/healthz", timeout=5) as r:
        assert orjson.loads(r.read())["status"] == "ok"
    with urllib.request.urlopen(f"http://localhost:{dashboard}/", timeout=5) as r:
        assert b"<title>Beckon dashboard</title>" in r.read()
