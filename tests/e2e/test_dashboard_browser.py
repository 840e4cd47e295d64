"""The dashboard in headless Chromium, over the whole system with live data.

A visitor in the browser gets the pricing rule's bubble and accepts it; twelve more
visitors, published straight to the clickstream, are invited too, four of them see the
rule fire again on a second page view (suppressed: per_session), and some answer. The
dashboard page must show exactly those numbers in its funnel.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streams.kafka.publisher import Publisher
from streams.settings import Settings
from tests.e2e.conftest import DWELL_S, _records

pytestmark = pytest.mark.integration

SCREENSHOT = "dashboard.png"
SYNTHETIC = 12


def _view(visitor: str, shop: str) -> dict[str, Any]:
    return {"event_id": f"{visitor}-{time.time_ns()}", "type": "page_view", "visitor_id": visitor,
            "site_id": "demo-shop", "ts": int(time.time() * 1000),
            "url": f"{shop}/pricing"}  # fmt: skip


def _answer(invitation: dict[str, Any], response: str) -> dict[str, Any]:
    return {"event_id": f"{invitation['invitation_id']}-{response}",
            "type": "invitation_response", "visitor_id": invitation["visitor_id"],
            "site_id": invitation["site_id"], "ts": int(time.time() * 1000),
            "invitation_id": invitation["invitation_id"], "response": response}  # fmt: skip


def _rows(driver: Any, table: str) -> list[list[str]]:
    """The cells' text of a table's body rows, read in one go (the page re-renders them)."""
    rows: list[list[str]] = driver.execute_script(
        "return [...document.querySelectorAll(arguments[0] + ' tbody tr')]"
        ".map(tr => [...tr.cells].map(td => td.textContent))",
        f"#{table}",
    )
    return rows


def _funnel_row(driver: Any, rule_id: str) -> list[str]:
    return next((r for r in _rows(driver, "funnel") if r and r[0] == rule_id), [])


def test_dashboard_page_shows_the_live_funnel(
    browser: Any, system: tuple[Settings, str, Callable[[], str]], tmp_path: Path
) -> None:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    settings, shop, log_tails = system
    dashboard = f"http://localhost:{settings.dashboard_port}/"

    # One real visitor: the bubble, accepted (shown by delivery, accepted by the widget).
    browser.get(f"{shop}/pricing")
    accept = WebDriverWait(browser, DWELL_S + 10).until(
        ec.element_to_be_clickable((By.CSS_SELECTOR, ".bk-card button.bk-accept"))
    )
    accept.click()

    # Twelve more, straight to Kafka; none has a page open, so none is shown by delivery.
    visitors = [f"synthetic-{n:02}" for n in range(SYNTHETIC)]
    with Publisher(settings) as pub:
        pub.publish_many(_view(v, shop) for v in visitors)
        pub.publish_raw(b"v-poison", b"not json")
        pub.publish_raw(b"v-poison", b'{"type": "teleport"}')
    invitations = _records(settings, settings.topic_invitations, lambda v: len(v) >= 13)
    assert len(invitations) == 13, log_tails()
    ours = sorted((i for i in invitations if i["visitor_id"] in visitors),
                  key=lambda i: i["visitor_id"])  # fmt: skip
    # Four come back to the page: the rule fires again, and is suppressed (once a session).
    with Publisher(settings) as pub:
        pub.publish_many(_view(v, shop) for v in visitors[:4])
        pub.publish_many(_answer(i, "shown") for i in ours[:10])
        pub.publish_many(_answer(i, "accepted") for i in ours[:5])
        pub.publish_many(_answer(i, "declined") for i in ours[5:8])

    browser.get(dashboard)
    expected = ["pricing-dwell", "17", "per_session 4", "13", "0", "0", "11", "6", "3", "54.5%"]
    try:
        WebDriverWait(browser, 40).until(lambda d: _funnel_row(d, "pricing-dwell") == expected)
    except TimeoutException as exc:
        raise AssertionError(
            f"funnel row {_funnel_row(browser, 'pricing-dwell')}, want {expected}\n{log_tails()}"
        ) from exc
    WebDriverWait(browser, 10).until(
        lambda d: (
            d.find_element(By.ID, "status").text == "Live"
            and d.find_element(By.ID, "dlq-total").text == "2"
        )
    )
    assert browser.find_element(By.ID, "acceptance").text == "54.5%"
    latest = _rows(browser, "latest")
    assert len(latest) == 13
    assert all(row[3] == f"{shop}/pricing" and row[4].startswith("dwell 3 s") for row in latest)
    reasons = browser.find_element(By.ID, "dlq-reasons").text
    assert reasons == "By reason — invalid: 2"
    assert f"{shop}/pricing" in [row[0] for row in _rows(browser, "pages")]
    # Accessible: headed sections, captioned/headed tables, a polite status line.
    assert browser.find_element(By.ID, "status").get_attribute("role") == "status"
    assert browser.find_elements(By.CSS_SELECTOR, "#funnel thead th[scope=col]")

    # Traffic while the picture is taken: the synthetic visitors, still on the page, ping.
    # None is invited again (the rule fired on this page view already), so the funnel
    # stays; the events tile must show the rate, sampled from the end offsets every 2 s.
    browser.set_window_size(1280, 1500)
    deadline = time.monotonic() + 20
    with Publisher(settings) as pub:
        while browser.find_element(By.ID, "events-rate").text in ("0", "–"):
            assert time.monotonic() < deadline, "the events tile never showed the pings' rate"
            pub.publish_many(_view(v, shop) | {"type": "page_ping"} for v in visitors)
            time.sleep(0.1)
    assert _funnel_row(browser, "pricing-dwell") == expected
    browser.save_screenshot(str(tmp_path / SCREENSHOT))
    print(f"screenshot: {tmp_path / SCREENSHOT}")
    if os.environ.get("DASHBOARD_SCREENSHOT"):  # DASHBOARD_SCREENSHOT=docs/img/dashboard.png
        shutil.copy(tmp_path / SCREENSHOT, os.environ["DASHBOARD_SCREENSHOT"])
