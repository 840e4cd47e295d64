"""The console in headless Chromium and queue budgets: the Queues section lists the queue
the rules send to, writes a budget typed there into the draft (and says it in words),
and shows the server's reason beside the field when the budget is refused; published,
the budget is in force."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.rules import load_rules
from streams.kafka.rules_topic import read_rules
from tests.e2e.conftest import RULES, ConsoleSystem
from tests.e2e.test_console_capacity_browser import _signed_in, _type

pytestmark = pytest.mark.integration


def test_the_queues_section_shows_and_edits_a_budget(
    browser: Any, console_system: ConsoleSystem
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select

    wait = _signed_in(browser, console_system)
    row = '#queues-table tr[data-queue="sales"]'
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, row), "sales: no budget"))
    assert "pricing-dwell" in browser.find_element(By.CSS_SELECTOR, row).text

    _type(browser.find_element(By.CSS_SELECTOR, f"{row} .budget-invitations"), "20")
    Select(browser.find_element(By.CSS_SELECTOR, f"{row} .budget-per")).select_by_value("hour")
    budgeted = "queues:\n  sales:\n    budget: {invitations: 20, per: hour}\n" + RULES
    version = load_rules(budgeted).version
    # The YAML is in the editor, hidden while no rule is open in it: read it as text.
    state = (By.ID, "yaml-state")
    wait.until(
        lambda d: d.find_element(*state).get_attribute("textContent") == f"version {version}"
    )
    words = browser.find_element(By.CSS_SELECTOR, f"{row} .budget-words").text
    assert words == "sales: at most 20 invitations per hour"
    drafted = load_rules(browser.find_element(By.ID, "yaml").get_attribute("value"))
    assert drafted.version == version
    assert "1 budget changed" in browser.find_element(By.ID, "draft-status").text

    _type(browser.find_element(By.CSS_SELECTOR, f"{row} .budget-invitations"), "0")
    error = (By.CSS_SELECTOR, f'{row} .field-error[data-for="queues.sales.budget.invitations"]')
    wait.until(ec.text_to_be_present_in_element(error, "must be at least 1, got 0"))

    # Published, the budget is in force: on the rules topic, and no longer a draft change.
    _type(browser.find_element(By.CSS_SELECTOR, f"{row} .budget-invitations"), "20")
    wait.until(
        lambda d: d.find_element(*state).get_attribute("textContent") == f"version {version}"
    )
    _type(browser.find_element(By.ID, "publish-comment"), "sales: 20 an hour at most")
    browser.find_element(By.ID, "publish").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "publish-status"), f"version {version}"))
    wait.until(lambda d: "changed in the draft" not in d.find_element(By.CSS_SELECTOR, row).text)
    in_force = read_rules(console_system.settings).ruleset
    assert (in_force.version, dict(in_force.queues)) == (version, dict(drafted.queues))
