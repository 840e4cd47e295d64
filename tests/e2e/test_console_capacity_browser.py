"""The console's editor in headless Chromium sets a rule's capacity clause: the form
writes it into the draft (and leaves it out when unticked), and a clause written in the
YAML fills the form."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.rules import CapacityNeed, load_rules
from tests.e2e.conftest import RULES, ConsoleSystem

pytestmark = pytest.mark.integration


def _type(element: Any, text: str) -> None:
    element.clear()
    element.send_keys(text)


def test_the_form_sets_and_clears_the_capacity_clause(
    browser: Any, console_system: ConsoleSystem
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    system, wait = console_system, WebDriverWait(browser, 20)
    browser.set_window_size(1280, 2000)
    browser.get(system.url)
    wait.until(ec.visibility_of_element_located((By.ID, "signin-token")))
    _type(browser.find_element(By.ID, "signin-token"), system.token)
    browser.find_element(By.ID, "signin-submit").click()
    wait.until(ec.visibility_of_element_located((By.ID, "rules-table")))
    wait.until(ec.text_to_be_present_in_element((By.ID, "rules-table"), "pricing-dwell"))

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
