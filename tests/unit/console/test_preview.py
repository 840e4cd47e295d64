"""The console's preview: a draft and the set in force over the same literal events."""

from __future__ import annotations

import os
import textwrap
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from bench.clickstream import RULES_YAML, generate
from schemas.instants import format_instant, parse_instant
from schemas.rules import Queue, QueueBudget, load_rules
from streams.backtest import Result, read_events, run
from streams.console import preview as preview_module
from streams.console.figures import trigger_words
from streams.console.preview import PreviewCancelled, PreviewFailed, run_preview
from streams.core.engine import Limits
from streams.core.rules import CompiledRules

T0 = parse_instant("2026-12-01T10:00:00Z")
S = 1_000
PRICING = "https://shop.example/pricing"

DRAFT = """
rules:
  - id: pricing
    priority: 10
    location: {include: ["https://shop.example/pricing*"]}
    trigger: {dwell_seconds: 10}
    message: {text: "Questions?"}
  - id: welcome
    trigger: {pages_in_session: 2}
    message: {text: "Welcome"}
"""
IN_FORCE = """
rules:
  - id: pricing
    priority: 10
    location: {include: ["https://shop.example/pricing*"]}
    trigger: {dwell_seconds: 40}
    message: {text: "Questions?"}
  - id: docs
    location: {include: ["https://shop.example/docs"]}
    trigger: {pages_in_session: 1}
    message: {text: "Docs"}
"""


def rules(text: str) -> CompiledRules:
    return CompiledRules.of(load_rules(textwrap.dedent(text)))


def line(visitor: str, kind: str, seconds: int, url: str = PRICING) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"{visitor}-{kind}-{seconds}",
            "type": kind,
            "visitor_id": visitor,
            "site_id": "shop",
            "ts": T0 + seconds * S,
            "url": url,
        }
    )


# v1 stays 40 s on pricing, then views it again in the same session and stays 40 s more;
# v2 is present 35 s (a ping at 5 s, presence 30 s); v3 is present 30 s (no ping).
# Lines are out of time order on purpose.
LINES = [
    line("v2", "page_view", 0),
    *(line("v1", "page_ping", s) for s in (10, 20, 30, 40)),
    line("v1", "page_view", 0),
    line("v3", "page_view", 0),
    b"{not json",
    b"",
    b'{"type": "page_view"}',
    line("v2", "page_ping", 5),
    line("v1", "page_view", 60, PRICING + "?plan=pro"),
    *(line("v1", "page_ping", s, PRICING + "?plan=pro") for s in (70, 80, 90, 100)),
]


def preview(**kwargs: Any) -> dict[str, Any]:
    return run_preview(LINES, rules(DRAFT), rules(IN_FORCE), Limits(), **kwargs)


def by_id(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["rule_id"]: row for row in answer["rules"]}


@pytest.fixture(params=[1, 2, 3], ids=["one-process", "two-processes", "three-processes"])
def processes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """How many processes share the work, forking even for a few lines."""
    monkeypatch.setattr(preview_module, "MIN_SPLIT", 0)
    n: int = request.param
    return n


def test_preview_counts_each_set_as_worked_out_by_hand(processes: int) -> None:
    answer = preview(processes=processes)
    rows = by_id(answer)

    assert (answer["events"], answer["visitors"], answer["bad_lines"]) == (13, 3, 2)
    assert [r["rule_id"] for r in answer["rules"]] == ["pricing", "welcome", "docs"]
    # Draft, 10 s: v1, v2 and v3 invited; v1's second view is past per_session.
    # In force, 40 s: only v1 (the others are gone by then), then the same per_session.
    assert rows["pricing"]["draft"] == {
        "invitations": 3, "suppressed": {"per_session": 1}, "shadow": 0, "visitors": 3,
    }  # fmt: skip
    assert rows["pricing"]["in_force"] == {
        "invitations": 1, "suppressed": {"per_session": 1}, "shadow": 0, "visitors": 1,
    }  # fmt: skip
    assert rows["pricing"]["difference"] == {"invitations": 2, "visitors": 2}
    assert rows["pricing"]["in"] == ["draft", "in_force"]
    # v1's second page, 50 s after the draft's invitation at 10 s: within the 60 s min gap.
    assert rows["welcome"]["draft"]["suppressed"] == {"min_gap": 1}
    assert rows["welcome"]["in"] == ["draft"]
    assert rows["docs"]["in"] == ["in_force"]
    assert rows["docs"]["in_force"]["invitations"] == 0
    assert rows["docs"]["sample"] == []
    assert answer["draft"]["version"] != answer["in_force"]["version"]
    orjson.dumps(answer)  # JSON-able as it is


def test_preview_samples_the_drafts_decisions_with_why(processes: int) -> None:
    sample = by_id(preview(sample_size=3, processes=processes))["pricing"]["sample"]

    assert [(d["visitor_id"], d["triggered_at"], d["outcome"]) for d in sample] == [
        ("v1", "2026-12-01T10:00:10.000Z", "invited"),
        ("v2", "2026-12-01T10:00:10.000Z", "invited"),
        ("v3", "2026-12-01T10:00:10.000Z", "invited"),
    ]
    assert sample[0]["why"].startswith("dwell 10 s")
    suppressed = by_id(preview())["pricing"]["sample"][-1]
    assert (suppressed["outcome"], suppressed["reason"]) == ("suppressed", "per_session")
    assert suppressed["why"] == "dwell 10 s on https://shop.example/pricing*"


def test_preview_quotes_bad_lines_and_counts_them(processes: int) -> None:
    answer = preview(processes=processes)
    assert answer["bad_lines"] == 2
    assert [example.split(":")[0] for example in answer["bad_examples"]] == ["line 8", "line 10"]


@pytest.mark.parametrize("processes", [1, 2])
def test_preview_equals_backtest_of_each_set(processes: int) -> None:
    lines = list(generate(20_000, 1_000, seed=3))
    in_force = load_rules(RULES_YAML)
    rule = in_force.get("pricing-hesitation")
    assert rule is not None
    trigger = rule.trigger.model_copy(update={"dwell_seconds": 10})
    draft = in_force.with_rule(rule.model_copy(update={"trigger": trigger}))

    answer = run_preview(
        lines, CompiledRules.of(draft), CompiledRules.of(in_force), Limits(), processes=processes
    )

    for name, ruleset in (("draft", draft), ("in_force", in_force)):
        result = Result()
        backtest = run(read_events(lines, result), CompiledRules.of(ruleset), Limits(), result)
        invited = Counter(d["rule_id"] for d in backtest.decisions if d["outcome"] == "invited")
        suppressed = Counter(
            (d["rule_id"], d["reason"]) for d in backtest.decisions if d["outcome"] == "suppressed"
        )
        for row in answer["rules"]:
            figures = row[name]
            assert figures["invitations"] == invited[row["rule_id"]]
            assert figures["suppressed"] == {
                reason: n for (rid, reason), n in suppressed.items() if rid == row["rule_id"]
            }
        assert sum(row[name]["invitations"] for row in answer["rules"]) == len(backtest.invitations)
    assert sum(row["difference"]["invitations"] != 0 for row in answer["rules"]) >= 1


def test_preview_holds_back_what_the_queues_budget_refuses(processes: int) -> None:
    # The draft invites v1, v2 and v3 in the same second; its queue takes two a minute.
    budgeted = DRAFT + "queues:\n  default:\n    budget: {invitations: 2, per: minute}\n"
    answer = run_preview(
        LINES, rules(budgeted), rules(IN_FORCE), Limits(), sample_size=3, processes=processes
    )

    pricing = by_id(answer)["pricing"]
    assert pricing["draft"] == {
        "invitations": 2, "suppressed": {"budget": 1, "per_session": 1}, "shadow": 0,
        "visitors": 2,
    }  # fmt: skip
    assert pricing["difference"] == {"invitations": 1, "visitors": 1}
    assert sorted((d["outcome"], d["reason"]) for d in pricing["sample"]) == [
        ("invited", None), ("invited", None), ("suppressed", "budget"),
    ]  # fmt: skip
    # A budget suppression still counts as sent: v1's second page is still within min_gap.
    assert by_id(answer)["welcome"]["draft"]["suppressed"] == {"min_gap": 1}


@pytest.mark.parametrize("processes", [1, 2])
def test_preview_with_budgets_equals_backtest_of_each_set(processes: int) -> None:
    lines = list(generate(20_000, 1_000, seed=3))
    plain = load_rules(RULES_YAML)
    draft = plain.with_queue("sales", Queue(budget=QueueBudget(invitations=2, per="hour")))
    draft = draft.with_queue("marketing", Queue(budget=QueueBudget(invitations=1, per="minute")))
    in_force = plain.with_queue("default", Queue(budget=QueueBudget(invitations=1, per="hour")))

    answer = run_preview(
        lines, CompiledRules.of(draft), CompiledRules.of(in_force), Limits(), processes=processes
    )

    held = []
    for name, ruleset in (("draft", draft), ("in_force", in_force)):
        result = Result()
        backtest = run(read_events(lines, result), CompiledRules.of(ruleset), Limits(), result)
        invited = [d for d in backtest.decisions if d["outcome"] == "invited"]
        suppressed = Counter(
            (d["rule_id"], d["reason"]) for d in backtest.decisions if d["outcome"] == "suppressed"
        )
        held.append(sum(n for (_, reason), n in suppressed.items() if reason == "budget"))
        for row in answer["rules"]:
            figures, rule_id = row[name], row["rule_id"]
            assert figures["invitations"] == sum(d["rule_id"] == rule_id for d in invited)
            assert figures["visitors"] == len({d["visitor_id"] for d in invited
                                               if d["rule_id"] == rule_id})  # fmt: skip
            assert figures["suppressed"] == {
                reason: n for (rid, reason), n in suppressed.items() if rid == rule_id
            }
    assert all(held), held  # the budgets held some back, in both sets


def test_preview_counts_shadow_decisions_apart() -> None:
    shadow = DRAFT.replace(
        "    trigger: {dwell_seconds: 10}", "    mode: shadow\n    trigger: {dwell_seconds: 10}"
    )
    answer = run_preview(LINES, rules(shadow), rules(IN_FORCE), Limits())
    pricing = by_id(answer)["pricing"]["draft"]
    assert (pricing["invitations"], pricing["shadow"]) == (0, 4)


def test_preview_stops_when_cancelled(processes: int) -> None:
    calls = Counter[str]()

    def cancelled() -> bool:
        calls["asked"] += 1
        return calls["asked"] > 1

    with pytest.raises(PreviewCancelled):
        preview(cancelled=cancelled, processes=processes)


def test_preview_reports_progress_up_to_its_total(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preview_module, "CHECK_EVERY", 1_000)
    seen: list[tuple[int, int]] = []
    lines = list(generate(50_000, 2_000, seed=5))
    run_preview(
        lines, rules(DRAFT), rules(IN_FORCE), Limits(), progress=lambda d, t: seen.append((d, t))
    )

    assert len(seen) > 10
    assert {total for _, total in seen} == {len(lines)}
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert seen[-1] == (len(lines), len(lines))


def test_trigger_words_name_every_condition_and_the_pages() -> None:
    [rule] = load_rules(
        textwrap.dedent(
            """
            rules:
              - id: r
                location: {include: ["*/cart", "*/checkout"]}
                trigger: {session_seconds: 60, pages_in_session: 1, scroll_pct: 50,
                          event: add_to_cart, journey: ["*/product*", "*/cart"]}
                message: {text: "Hi"}
            """
        )
    ).rules
    assert trigger_words(rule) == (
        "session 60 s · 1 page · journey */product* → */cart · scroll 50% · event add_to_cart"
        " on */cart, */checkout"
    )


@pytest.mark.parametrize(
    ("failure", "said"),
    [(lambda: 1 / 0, "ZeroDivisionError"), (lambda: os.kill(os.getpid(), 9), "no answer")],
    ids=["raises", "killed"],
)
def test_preview_says_when_a_child_process_fails(
    failure: Callable[[], object], said: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(preview_module, "MIN_SPLIT", 0)
    share = preview_module._share

    def failing(*args: Any, **kwargs: Any) -> Any:
        if args[2] is None:  # only a child runs without progress and cancellation
            failure()
        return share(*args, **kwargs)

    monkeypatch.setattr(preview_module, "_share", failing)
    with pytest.raises(PreviewFailed, match=said):
        preview(processes=2)


def test_preview_orders_rfc3339_and_epoch_times_alike(processes: int) -> None:
    def as_text(line: bytes) -> bytes:
        data = orjson.loads(line) if line.startswith(b'{"event_id"') else None
        if data is None:
            return line
        return orjson.dumps({**data, "ts": format_instant(data["ts"])})

    texts = [as_text(line) if n % 2 else line for n, line in enumerate(LINES)]
    epoch, text = (
        preview(processes=processes),
        run_preview(texts, rules(DRAFT), rules(IN_FORCE), Limits(), processes=processes),
    )
    assert {**epoch, "seconds": 0} == {**text, "seconds": 0}
