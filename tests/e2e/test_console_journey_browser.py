"""The console's editor in headless Chromium with the object form of ``journey``: a rule in
force written with it is edited in the form and comes back exactly as it was (the object
stays an object, every clause kept), the form writes steps, within, without, page counts
and returns into the YAML, a bad value is shown beside its field, and a journey written
in the YAML fills the form."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from schemas.rules import JourneyPattern, ViewCount, load_rules
from streams.console.drafts import rules_json
from streams.kafka.rules_topic import apply_rules
from tests.e2e.conftest import RULES, ConsoleSystem

pytestmark = pytest.mark.integration

IN_FORCE = (
    RULES
    + """
  - id: compare-plans
    trigger:
      journey:
        steps: ["*/products/*", "*/pricing*"]
        within: 300
        without: ["*/support*", "*/help*"]
        min_views: [{glob: "*/products/*", at_least: 2}]
        returned: true
    message: {text: "Comparing plans?"}
  - id: steps-object
    trigger: {journey: {steps: ["*/a", "*/b"]}}
    message: {text: "A then B"}
  - id: steps-list
    trigger: {journey: ["*/a", "*/b"]}
    message: {text: "A then B, as a list"}
"""
)


def _type(element: Any, text: str) -> None:
    element.clear()
    element.send_keys(text)


def test_the_form_keeps_and_writes_a_journey_object(
    browser: Any, console_system: ConsoleSystem
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    system, wait = console_system, WebDriverWait(browser, 20)
    in_force = load_rules(IN_FORCE)
    apply_rules(system.settings, in_force)
    in_force_json = {rule["id"]: rule for rule in rules_json(in_force)}

    browser.set_window_size(1280, 2400)
    browser.get(system.url)
    wait.until(ec.visibility_of_element_located((By.ID, "signin-token")))
    _type(browser.find_element(By.ID, "signin-token"), system.token)
    browser.find_element(By.ID, "signin-submit").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "rules-table"), "compare-plans"))
    # The set in force, checked by the server (the editor is hidden until a rule is chosen).
    yaml_state = "return document.getElementById('yaml-state').textContent"
    wait.until(lambda d: d.execute_script(yaml_state).endswith("as in force"))
    # The rules list says the object form in words.
    words = (By.CSS_SELECTOR, "#rules-table tr[data-rule='compare-plans'] td.words")
    assert browser.find_element(*words).text.endswith(
        "after visiting */products/* then */pricing* within 300 s, without */support* or "
        "*/help* in between and after 2 views of */products/* and on coming back to a page "
        "seen earlier in the session"
    )

    def edit(rule_id: str) -> None:
        row = f"#rules-table tr[data-rule='{rule_id}'] button.edit"
        browser.find_element(By.CSS_SELECTOR, row).click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "editor-rule"), rule_id))

    def value(element_id: str) -> str:
        return str(browser.find_element(By.ID, element_id).get_attribute("value"))

    def draft_rule(rule_id: str) -> Any:
        """The rule as the page holds it in its draft: what validate, preview and publish send."""
        draft = orjson.loads(browser.execute_script("return JSON.stringify(state.draft)"))
        return next(rule for rule in draft if rule["id"] == rule_id)

    def checked(version: str) -> str:
        """The YAML view, once the server checked the draft whose version is ``version``."""
        wait.until(lambda d: d.execute_script(yaml_state).startswith(version))
        return value("yaml")

    # A rule in force with every clause fills the form...
    edit("compare-plans")
    assert value("f-journey") == "*/products/*\n*/pricing*"
    assert value("f-within") == "300"
    assert value("f-without") == "*/support*\n*/help*"
    counts = browser.find_elements(By.CSS_SELECTOR, "#min-views-rows tbody tr")
    assert [
        (row.find_element(By.CLASS_NAME, "glob").get_attribute("value"),
         row.find_element(By.CLASS_NAME, "at-least").get_attribute("value"))
        for row in counts
    ] == [("*/products/*", "2")]  # fmt: skip
    assert browser.find_element(By.ID, "f-returned").is_selected()
    assert value("f-text") == "Comparing plans?"
    # ... and, rebuilt from the form (a field typed again), is the rule in force exactly.
    _type(browser.find_element(By.ID, "f-text"), "Comparing plans?")
    assert draft_rule("compare-plans") == in_force_json["compare-plans"]
    # An object with only steps stays an object, a list stays a list.
    for rule_id in ("steps-object", "steps-list"):
        edit(rule_id)
        assert value("f-journey") == "*/a\n*/b"
        _type(browser.find_element(By.ID, "f-journey"), "*/a\n*/b")
        assert draft_rule(rule_id) == in_force_json[rule_id]
    checked(f"version {in_force.version}, as in force")
    assert load_rules(value("yaml")) == in_force

    # A new rule: steps, within and without in the form are the object form in the YAML.
    browser.find_element(By.ID, "new-rule").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "editor-rule"), "new-rule"))
    _type(browser.find_element(By.ID, "f-id"), "cart-journey")
    _type(browser.find_element(By.ID, "f-text"), "Need a hand?")
    _type(browser.find_element(By.ID, "f-dwell"), "")
    _type(browser.find_element(By.ID, "f-journey"), "*/products/*\n*/cart")
    _type(browser.find_element(By.ID, "f-within"), "120")
    _type(browser.find_element(By.ID, "f-without"), "*/support*")
    new_rule = """
  - id: cart-journey
    trigger:
      journey: {steps: ["*/products/*", "*/cart"], within: 120, without: ["*/support*"]}
    message: {text: "Need a hand?"}
"""
    expected = load_rules(IN_FORCE + new_rule)
    yaml_view = checked(f"version {expected.version}")
    assert load_rules(yaml_view).get("cart-journey").trigger.journey == JourneyPattern(
        steps=("*/products/*", "*/cart"), within=120, without=("*/support*",)
    )
    assert "within: 120" in yaml_view

    # A bad within is shown beside its field, then fixed.
    beside = (By.CSS_SELECTOR, "label:has(#f-within) .field-error")
    _type(browser.find_element(By.ID, "f-within"), "0")
    wait.until(ec.text_to_be_present_in_element(beside, "must be greater than 0, got 0"))
    _type(browser.find_element(By.ID, "f-within"), "-5")
    wait.until(ec.text_to_be_present_in_element(beside, "must be greater than 0, got -5"))
    assert browser.find_element(By.ID, "f-within").get_attribute("aria-invalid") == "true"
    _type(browser.find_element(By.ID, "f-within"), "120")
    wait.until(ec.invisibility_of_element_located(beside))
    checked(f"version {expected.version}")

    # A page count: a count above the bound is shown beside it.
    browser.find_element(By.ID, "min-views-add").click()
    row = browser.find_elements(By.CSS_SELECTOR, "#min-views-rows tbody tr")[-1]
    _type(row.find_element(By.CLASS_NAME, "glob"), "*/products/*")
    _type(row.find_element(By.CLASS_NAME, "at-least"), "101")
    at_least = (By.CSS_SELECTOR, "#min-views-rows td:has(.at-least) .field-error")
    wait.until(ec.text_to_be_present_in_element(at_least, "must be at most 100, got 101"))
    _type(row.find_element(By.CLASS_NAME, "at-least"), "3")
    browser.find_element(By.ID, "f-returned").click()
    with_counts = IN_FORCE + new_rule.replace(
        'without: ["*/support*"]}',
        'without: ["*/support*"], min_views: [{glob: "*/products/*", at_least: 3}], '
        "returned: true}",
    )
    assert load_rules(checked(f"version {load_rules(with_counts).version}")).get(
        "cart-journey"
    ).trigger.journey == JourneyPattern(
        steps=("*/products/*", "*/cart"),
        within=120,
        without=("*/support*",),
        min_views=(ViewCount(glob="*/products/*", at_least=3),),
        returned=True,
    )

    # A journey written in the YAML fills the form.
    edited = value("yaml").replace("within: 120", "within: 90")
    assert edited != value("yaml")
    browser.execute_script(
        "const y = document.getElementById('yaml'); y.value = arguments[0];"
        "y.dispatchEvent(new Event('input'));",
        edited,
    )
    wait.until(lambda d: value("f-within") == "90")
    assert value("f-journey") == "*/products/*\n*/cart"
    assert browser.find_element(By.ID, "f-returned").is_selected()
    assert draft_rule("cart-journey")["trigger"]["journey"]["within"] == 90
