"""The console in headless Chromium and rules' capacity clauses: the form writes the
clause into the draft (and leaves it out when unticked), and a preview of a recording
with its capacity recording suppresses as `beckon backtest --capacity` does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas.rules import CapacityNeed, load_rules
from streams.backtest import backtest_file
from streams.core.rules import CompiledRules
from tests.e2e.conftest import RULES, ConsoleSystem

pytestmark = pytest.mark.integration


def _type(element: Any, text: str) -> None:
    element.clear()
    element.send_keys(text)


def _signed_in(browser: Any, system: ConsoleSystem) -> Any:
    """The page, signed in with the token, once the rules in force show; its waiter."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 20)
    browser.set_window_size(1280, 2000)
    browser.get(system.url)
    wait.until(ec.visibility_of_element_located((By.ID, "signin-token")))
    _type(browser.find_element(By.ID, "signin-token"), system.token)
    browser.find_element(By.ID, "signin-submit").click()
    wait.until(ec.visibility_of_element_located((By.ID, "rules-table")))
    wait.until(ec.text_to_be_present_in_element((By.ID, "rules-table"), "pricing-dwell"))
    return wait


def test_the_form_sets_and_clears_the_capacity_clause(
    browser: Any, console_system: ConsoleSystem
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    system = console_system
    wait = _signed_in(browser, system)

    def draft(version_of: str) -> Any:
        """The draft's rule ``cart-help`` once the server checked the YAML for ``version_of``."""
        version = load_rules(version_of).version
        wait.until(lambda d: d.find_element(By.ID, "yaml-state").text == f"version {version}")
        return load_rules(browser.find_element(By.ID, "yaml").get_attribute("value")).get(
            "cart-help"
        )

    browser.find_element(By.ID, "new-rule").click()
    wait.until(ec.visibility_of_element_located((By.ID, "editor")))
    _type(browser.find_element(By.ID, "f-id"), "cart-help")
    _type(browser.find_element(By.ID, "f-queue"), "support")
    _type(browser.find_element(By.ID, "f-text"), "Need a hand?")
    _type(browser.find_element(By.ID, "f-dwell"), "2")
    assert not browser.find_element(By.ID, "f-min-free").is_enabled()  # unticked: no clause
    plain = (
        RULES
        + """
  - id: cart-help
    trigger: {dwell_seconds: 2}
    message: {text: "Need a hand?"}
    queue: support
"""
    )
    assert draft(plain).capacity is None

    browser.find_element(By.ID, "f-capacity-on").click()
    _type(browser.find_element(By.ID, "f-min-free"), "2")
    _type(browser.find_element(By.ID, "f-max-wait"), "60")
    with_clause = plain + "    capacity: {min_free: 2, max_wait_s: 60}\n"
    assert draft(with_clause).capacity == CapacityNeed(min_free=2, max_wait_s=60)
    # A bad value is shown beside its field.
    _type(browser.find_element(By.ID, "f-min-agents"), "-1")
    beside = (By.CSS_SELECTOR, "label:has(#f-min-agents) .field-error")
    assert wait.until(ec.visibility_of_element_located(beside)).text == (
        "must be at least 0, got -1"
    )
    _type(browser.find_element(By.ID, "f-min-agents"), "1")
    wait.until(ec.invisibility_of_element_located(beside))

    browser.find_element(By.ID, "f-capacity-on").click()
    assert draft(plain).capacity is None


RECORDED_AT = 1_796_000_000_000  # the recording's first instant (epoch ms)
CART_HELP = """
  - id: cart-help
    trigger: {dwell_seconds: 2}
    message: {text: "Need a hand?"}
    queue: support
    capacity: {min_free: 1}
"""


def _line(data: dict[str, Any]) -> bytes:
    return orjson.dumps(data)


def _recordings(tmp_path: Path) -> tuple[Path, Path]:
    """Two visitors on the cart, 100 s apart, and the support queue's capacity: no free
    slot before the first one's instant, one before the second's, and a bad line."""
    events, capacity = tmp_path / "events.jsonl", tmp_path / "capacity.jsonl"
    events.write_bytes(b"\n".join(
        _line({"event_id": f"cart-{n}", "type": "page_view", "visitor_id": f"cart-{n}",
               "site_id": "demo-shop", "ts": RECORDED_AT + n * 100_000,
               "url": "https://shop.example/cart"})
        for n in range(2)
    ))  # fmt: skip
    capacity.write_bytes(b"\n".join([
        _line({"queue": "support", "agents_online": 1, "free_slots": 0,
               "measured_at": RECORDED_AT - 30_000}),
        _line({"queue": "support"}),
        _line({"queue": "support", "agents_online": 1, "free_slots": 1,
               "measured_at": RECORDED_AT + 60_000}),
    ]))  # fmt: skip
    return events, capacity


def test_a_recording_previewed_with_its_capacity_suppresses_as_the_backtest(
    browser: Any, console_system: ConsoleSystem, tmp_path: Path
) -> None:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    system = console_system
    wait = _signed_in(browser, system)
    browser.find_element(By.ID, "new-rule").click()
    wait.until(ec.visibility_of_element_located((By.ID, "editor")))
    _type(browser.find_element(By.ID, "f-id"), "cart-help")
    _type(browser.find_element(By.ID, "f-queue"), "support")
    _type(browser.find_element(By.ID, "f-text"), "Need a hand?")
    _type(browser.find_element(By.ID, "f-dwell"), "2")
    browser.find_element(By.ID, "f-capacity-on").click()
    _type(browser.find_element(By.ID, "f-min-free"), "1")
    draft = load_rules(RULES + CART_HELP)
    wait.until(lambda d: d.find_element(By.ID, "yaml-state").text == f"version {draft.version}")

    events, capacity = _recordings(tmp_path)
    result = backtest_file(events, CompiledRules.of(draft), system.settings.limits(),
                           show_progress=False, capacity=capacity)  # fmt: skip
    outcomes = [(d["visitor_id"], d["reason"]) for d in result.decisions]
    assert outcomes == [("cart-0", "no_capacity"), ("cart-1", None)]  # a real test
    browser.find_element(By.ID, "preview-file").send_keys(str(events))
    browser.find_element(By.ID, "preview-capacity-file").send_keys(str(capacity))
    browser.find_element(By.ID, "preview-run").click()
    try:
        wait.until(ec.text_to_be_present_in_element((By.ID, "preview-status"), "Done."))
    except TimeoutException as exc:
        status = browser.find_element(By.ID, "preview-status").text
        raise AssertionError(f"preview: {status}\n{system.services.tails()}") from exc

    row = "#preview-table tr[data-rule='cart-help']"
    assert browser.find_element(By.CSS_SELECTOR, f"{row} .draft-invitations").text == "1"
    assert browser.find_element(By.CSS_SELECTOR, f"{row} .draft-suppressed").text == (
        "no_capacity 1"
    )
    said = browser.find_element(By.ID, "preview-capacity").text
    assert said.startswith("Capacity: 2 records of 1 queue, the oldest measured "), said
    assert "(BECKON_CAPACITY_UNKNOWN=allow). 1 bad capacity record left out." in said, said
