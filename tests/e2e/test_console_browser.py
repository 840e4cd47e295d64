"""The rules console in headless Chromium, over a worker that follows the rules topic.

As a person would: sign in with the token, write a new rule in the form (a bad dwell
time is shown beside its field, then fixed), preview it on a recording whose figures
`beckon backtest` gives, publish it with a comment, see the running worker invite a
visitor with it, roll back in the history, and see the rules in force go back. A viewer
then sees neither Publish nor Roll back.
"""

from __future__ import annotations

import os
import shutil
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas.rules import load_rules
from streams.backtest import backtest_file
from streams.core.rules import CompiledRules
from streams.kafka.publisher import Publisher
from streams.settings import Settings
from tests.e2e.conftest import RULES, ConsoleSystem, _records

pytestmark = pytest.mark.integration

SHOP = "https://shop.example"
NEW_RULE = """
  - id: cart-help
    location: {include: ["*/cart"]}
    trigger: {dwell_seconds: 2}
    message: {text: "Need a hand with your cart, {first_name|there}?"}
    queue: support
"""
RECORDED_AT = 1_796_000_000_000  # the recording's first instant (epoch ms)


def _view(visitor: str, path: str, ts: int) -> dict[str, Any]:
    return {"event_id": f"{visitor}-{path}-{ts}", "type": "page_view", "visitor_id": visitor,
            "site_id": "demo-shop", "ts": ts, "url": f"{SHOP}{path}"}  # fmt: skip


def _recording(path: Path) -> None:
    """Six visitors on the cart (two of them back on it: suppressed once a session), four
    on pricing (one then on the cart), and a line that is no event."""
    events = [_view(f"cart-{n}", "/cart", RECORDED_AT + n * 60_000) for n in range(6)]
    events += [_view(f"cart-{n}", "/cart", RECORDED_AT + n * 60_000 + 30_000) for n in range(2)]
    events += [_view(f"price-{n}", "/pricing", RECORDED_AT + n * 45_000) for n in range(4)]
    events.append(_view("price-0", "/cart", RECORDED_AT + 20_000))
    lines = [orjson.dumps(e) for e in events] + [b"not an event"]
    path.write_bytes(b"\n".join(lines) + b"\n")


def _backtest(path: Path, rules_yaml: str, settings: Settings) -> dict[str, dict[str, Any]]:
    """Per rule, what `beckon backtest` decides over the recording: the page's figures."""
    result = backtest_file(
        path, CompiledRules.of(load_rules(rules_yaml)), settings.limits(), show_progress=False
    )
    out: dict[str, dict[str, Any]] = {}
    for d in result.decisions:
        row = out.setdefault(d["rule_id"], {"invitations": 0, "visitors": set(),
                                            "suppressed": Counter(), "shadow": 0})  # fmt: skip
        if d["outcome"] == "invited":
            row["invitations"] += 1
            row["visitors"].add(d["visitor_id"])
        elif d["outcome"] == "shadow":
            row["shadow"] += 1
        else:
            row["suppressed"][d["reason"] or d["outcome"]] += 1
    return out


def _api(system: ConsoleSystem, path: str) -> Any:
    """A GET on the console's API, as a script would: with the token."""
    url = system.url.removesuffix("/rules") + path
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {system.token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return orjson.loads(response.read())


def _cells(driver: Any, table: str, rule_id: str) -> dict[str, str]:
    """One rule's row, as {cell class: text}, read in one go (the page re-renders rows)."""
    cells: dict[str, str] = driver.execute_script(
        "const tr = document.querySelector("
        "  `#${arguments[0]} tbody tr[data-rule='${arguments[1]}']`);"
        "if (!tr) return {};"
        "return Object.fromEntries([...tr.cells].map(td => [td.classList[td.classList.length - 1]"
        " || '', [...td.querySelectorAll('.reason')].map(s => s.textContent).join(', ')"
        " || td.textContent]));",
        table,
        rule_id,
    )
    return cells


def _rule_ids(driver: Any) -> list[str]:
    ids: list[str] = driver.execute_script(
        "return [...document.querySelectorAll('#rules-table tbody tr[data-rule]')]"
        ".map(tr => tr.dataset.rule)"
    )
    return ids


def _type(element: Any, text: str) -> None:
    element.clear()
    element.send_keys(text)


def _screenshot(driver: Any, element_id: str, name: str, tmp_path: Path) -> None:
    """One section of the page; CONSOLE_SCREENSHOTS=docs/img copies it there."""
    from selenium.webdriver.common.by import By

    driver.execute_script("document.getElementById(arguments[0]).scrollIntoView()", element_id)
    driver.find_element(By.ID, element_id).screenshot(str(tmp_path / name))
    print(f"screenshot: {tmp_path / name}")
    if os.environ.get("CONSOLE_SCREENSHOTS"):  # CONSOLE_SCREENSHOTS=docs/img
        shutil.copy(tmp_path / name, Path(os.environ["CONSOLE_SCREENSHOTS"]) / name)


def test_a_rule_written_previewed_published_and_rolled_back_in_the_console(
    browser: Any, console_system: ConsoleSystem, tmp_path: Path
) -> None:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    system, settings = console_system, console_system.settings
    tails = system.services.tails
    wait = WebDriverWait(browser, 20)
    first_version = load_rules(RULES).version
    draft_yaml = RULES + NEW_RULE
    draft_version = load_rules(draft_yaml).version

    # Some traffic under the rule in force, so that its funnel has figures.
    now = int(time.time() * 1000)
    with Publisher(settings) as pub:
        pub.publish_many(_view(f"early-{n}", "/pricing", now) for n in range(3))

    # Signing in: the page asks, a wrong token is refused, the right one lets in.
    browser.set_window_size(1280, 2000)
    browser.get(system.url)
    wait.until(ec.visibility_of_element_located((By.ID, "signin-token")))
    _type(browser.find_element(By.ID, "signin-token"), "not-the-token")
    browser.find_element(By.ID, "signin-submit").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "signin-error"), "wrong token"))
    _type(browser.find_element(By.ID, "signin-token"), system.token)
    browser.find_element(By.ID, "signin-submit").click()
    wait.until(ec.visibility_of_element_located((By.ID, "rules-table")))
    assert browser.find_element(By.ID, "whoami-role").text == "editor"
    wait.until(lambda d: _rule_ids(d) == ["pricing-dwell"])
    assert first_version in browser.find_element(By.ID, "published").text

    # The rules in force with their funnel: the three early visitors were invited.
    deadline = time.monotonic() + 60
    while _cells(browser, "rules-table", "pricing-dwell").get("invited") != "3":
        assert time.monotonic() < deadline, f"{_cells(browser, 'rules-table', 'pricing-dwell')}"
        time.sleep(2)
        browser.refresh()
        wait.until(lambda d: _rule_ids(d) == ["pricing-dwell"])
    row = _cells(browser, "rules-table", "pricing-dwell")
    assert (row["matched"], row["mode"], row["queue"]) == ("3", "live", "sales")
    assert "on */pricing" in row["words"] and "after 3 s on the page" in row["words"]
    _screenshot(browser, "in-force", "console-list.png", tmp_path)

    # A new rule in the form; a dwell of 0 is refused beside its field, then fixed.
    browser.find_element(By.ID, "new-rule").click()
    wait.until(ec.visibility_of_element_located((By.ID, "editor")))
    _type(browser.find_element(By.ID, "f-id"), "cart-help")
    browser.find_element(By.ID, "f-include").send_keys("*/cart")
    _type(browser.find_element(By.ID, "f-queue"), "support")
    _type(browser.find_element(By.ID, "f-text"), "Need a hand with your cart, {first_name|there}?")
    dwell = browser.find_element(By.ID, "f-dwell")
    _type(dwell, "0")
    beside = (By.CSS_SELECTOR, "label:has(#f-dwell) .field-error")
    error = wait.until(ec.visibility_of_element_located(beside))
    assert error.text == "must be greater than 0, got 0"
    assert dwell.get_attribute("aria-invalid") == "true"
    assert browser.find_element(By.ID, "form-errors").text == ""  # not in the list: beside
    _type(dwell, "2")
    wait.until(ec.invisibility_of_element_located(beside))
    wait.until(lambda d: d.find_element(By.ID, "yaml-state").text == f"version {draft_version}")
    yaml_text = browser.find_element(By.ID, "yaml").get_attribute("value")
    assert load_rules(yaml_text).version == draft_version, yaml_text
    assert browser.find_element(By.ID, "rendered").text == "Need a hand with your cart, Ana?"
    _screenshot(browser, "editor-section", "console-editor.png", tmp_path)

    # Preview on a recording; its figures are what `beckon backtest` gives for each set.
    recording = tmp_path / "recording.jsonl"
    _recording(recording)
    ours, theirs = _backtest(recording, draft_yaml, settings), _backtest(recording, RULES, settings)
    assert ours["cart-help"]["invitations"] and ours["cart-help"]["suppressed"]  # a real test
    browser.find_element(By.ID, "preview-file").send_keys(str(recording))
    browser.find_element(By.ID, "preview-run").click()
    try:
        wait.until(ec.text_to_be_present_in_element((By.ID, "preview-status"), "Done."))
    except TimeoutException as exc:
        status = browser.find_element(By.ID, "preview-status").text
        raise AssertionError(f"preview: {status}\n{tails()}") from exc
    summary = browser.find_element(By.ID, "preview-summary").text
    assert summary.startswith("13 events from 10 visitors, 1 bad line skipped"), summary
    assert f"Draft {draft_version} against version {first_version} in force" in summary
    for rule_id in ("cart-help", "pricing-dwell"):
        mine, before = ours.get(rule_id), theirs.get(rule_id)
        got = _cells(browser, "preview-table", rule_id)
        want = _expected_row(mine, before)
        assert {k: got.get(k) for k in want} == want, (rule_id, got)
    samples = browser.find_element(By.CSS_SELECTOR, "tr[data-samples-of='cart-help']").text
    assert "cart-0" in samples and "dwell 2 s" in samples, samples
    _screenshot(browser, "preview-section", "console-preview.png", tmp_path)

    # Publish, with a comment; the running worker takes the new version from the topic.
    browser.find_element(By.ID, "publish-comment").send_keys("Help on the cart page")
    browser.find_element(By.ID, "publish").click()
    wait.until(ec.text_to_be_present_in_element(
        (By.ID, "publish-status"), f"Published version {draft_version}"))  # fmt: skip
    assert _api(system, "/api/rules")["version"] == draft_version
    system.services.wait_for_log("worker", f"rules version {draft_version} in force")
    wait.until(lambda d: _rule_ids(d) == ["cart-help", "pricing-dwell"])
    first = f"#history > li:first-child[data-version='{draft_version}']"
    newest = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, first)))
    assert "Help on the cart page" in newest.text and "added: cart-help" in newest.text

    # A visitor on the cart now gets the new rule's invitation from the worker.
    with Publisher(settings) as pub:
        pub.publish(_view("after-publish", "/cart", int(time.time() * 1000)))
    invitations = _records(
        settings, settings.topic_invitations,
        lambda values: any(v["visitor_id"] == "after-publish" for v in values),
    )  # fmt: skip
    mine_now = [v for v in invitations if v["visitor_id"] == "after-publish"]
    assert [(v["rule_id"], v["queue"], v["message"]) for v in mine_now] == [
        ("cart-help", "support", "Need a hand with your cart, there?")
    ], tails()

    # Roll back to the first version in the history: the rules in force go back.
    rollback = f"#history li[data-version='{first_version}'] button.rollback"
    browser.find_element(By.CSS_SELECTOR, rollback).click()
    try:
        wait.until(ec.text_to_be_present_in_element((By.ID, "history-status"), "Rolled back"))
    except TimeoutException as exc:
        status = browser.find_element(By.ID, "history-status").text
        raise AssertionError(f"rollback: {status!r}\n{tails()}") from exc
    in_force = _api(system, "/api/rules")
    assert in_force["version"] == first_version
    assert [r["id"] for r in in_force["rules"]] == ["pricing-dwell"]
    assert in_force["published"]["action"] == "rollback"
    wait.until(lambda d: _rule_ids(d) == ["pricing-dwell"])
    system.services.wait_for_log("worker", f"rules version {first_version} in force")

    # A viewer reads everything but may neither publish nor roll back.
    browser.find_element(By.ID, "signout").click()
    wait.until(ec.visibility_of_element_located((By.ID, "signin-user")))
    browser.find_element(By.ID, "signin-user").send_keys(system.viewer[0])
    browser.find_element(By.ID, "signin-password").send_keys(system.viewer[1])
    browser.find_element(By.ID, "signin-submit").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "whoami-role"), "viewer"))
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#history > li")) == 3)
    assert not browser.find_element(By.ID, "publish").is_displayed()
    assert browser.find_elements(By.CSS_SELECTOR, "#history button.rollback") == []


def _expected_row(mine: dict[str, Any] | None, before: dict[str, Any] | None) -> dict[str, str]:
    """The preview row the page must show, from the two backtests (None: no decision)."""
    empty = {"invitations": 0, "visitors": set(), "suppressed": Counter(), "shadow": 0}
    a, b = mine or empty, before or empty

    def signed(n: int) -> str:
        return f"+{n}" if n > 0 else f"−{-n}" if n < 0 else "0"

    def reasons(counts: Counter[str]) -> str:
        return ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items())) or "–"

    return {
        "draft-invitations": str(a["invitations"]),
        "in-force-invitations": str(b["invitations"]),
        "diff-invitations": signed(a["invitations"] - b["invitations"]),
        "draft-visitors": str(len(a["visitors"])),
        "in-force-visitors": str(len(b["visitors"])),
        "diff-visitors": signed(len(a["visitors"]) - len(b["visitors"])),
        "draft-suppressed": reasons(a["suppressed"]),
        "in-force-suppressed": reasons(b["suppressed"]),
    }
