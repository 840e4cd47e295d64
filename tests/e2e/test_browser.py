"""The whole system as a visitor meets it, in headless Chromium.

A real broker; `beckon worker`, `beckon collector` and `beckon delivery` as subprocesses
with their own topics and ports; Debian's chromium driven by Selenium. The visitor opens
the demo shop's pricing page, stays past the rule's dwell threshold, sees the invitation
bubble, accepts it, and the `accepted` response reaches the clickstream topic.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson
import pytest
from kafka import KafkaConsumer

from streams.settings import Settings
from streams.topics import ensure_topics
from tests.conftest import _free_port

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DWELL_S = 3
GRACE_S = 0.5
RULES = f"""
rules:
  - id: pricing-dwell
    location: {{include: ["*/pricing"]}}
    trigger: {{dwell_seconds: {DWELL_S}}}
    message: {{text: "Hi {{first_name|there}}, any questions about our plans?"}}
    queue: sales
"""
SCREENSHOT = "invitation-bubble.png"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium; the test fails (never skips) without it: set-up installs it."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not found: the browser tests need Debian's chromium and "
            "chromium-driver (deploy/setup.sh installs them as root; or: sudo apt-get "
            "install chromium chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1280,800",
                 f"--user-data-dir={tmp_path / 'chromium'}"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def system(
    kafka_settings: Settings, tmp_path: Path
) -> Iterator[tuple[Settings, str, Callable[[], str]]]:
    """Worker, collector and delivery on fresh topics and free ports: (settings, shop
    URL, a function returning the services' logs)."""
    run_id = uuid.uuid4().hex[:10]
    settings = kafka_settings.model_copy(
        update={
            "app_id": f"beckon-e2e-{run_id}",
            "topic_clickstream": f"e2e.{run_id}.clickstream",
            "topic_invitations": f"e2e.{run_id}.invitations",
            "topic_decisions": f"e2e.{run_id}.decisions",
            "topic_rules": f"e2e.{run_id}.rules",
            "topic_dlq": f"e2e.{run_id}.dlq",
            "partitions": 2,
            "data_dir": tmp_path / "worker",
            "grace_s": GRACE_S,
            "collector_port": _free_port(),
            "delivery_port": _free_port(),
            "delivery_group": f"delivery-{run_id}",
        }
    )
    ensure_topics(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BECKON_")}
    for name in ("bootstrap", "app_id", "topic_clickstream", "topic_invitations",
                 "topic_decisions", "topic_rules", "topic_dlq", "partitions", "data_dir",
                 "grace_s", "collector_port", "delivery_port", "delivery_group"):  # fmt: skip
        env[f"BECKON_{name.upper()}"] = str(getattr(settings, name))
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    logs = {name: tmp_path / f"{name}.log" for name in ("worker", "collector", "delivery")}
    commands = {
        "worker": ["worker", "--rules", str(rules), "--web-port", str(_free_port())],
        "collector": ["collector"],
        "delivery": ["delivery"],
    }

    def log_tails() -> str:
        return "\n".join(
            f"--- {name}.log ---\n{path.read_text(errors='replace')[-2500:]}"
            for name, path in logs.items()
            if path.exists()
        )

    processes: list[subprocess.Popen[bytes]] = []
    handles: list[IO[bytes]] = []
    try:
        for name, args in commands.items():
            handles.append(logs[name].open("wb"))
            processes.append(_start([sys.executable, "-m", "streams.cli", *args], env, handles[-1]))
        _wait_for_port(settings.collector_port, processes, log_tails)
        _wait_for_port(settings.delivery_port, processes, log_tails)
        _wait_for_log(logs["worker"], "Ready", processes, log_tails)
        yield settings, f"http://localhost:{settings.delivery_port}", log_tails
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for handle in handles:
            handle.close()


def _start(argv: list[str], env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)


def _check_running(processes: list[subprocess.Popen[bytes]], log_tails: Callable[[], str]) -> None:
    for process in processes:
        if process.poll() is not None:
            pytest.fail(f"{process.args} exited with {process.returncode}\n{log_tails()}")


def _wait_for_port(
    port: int, processes: list[subprocess.Popen[bytes]], log_tails: Callable[[], str]
) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        _check_running(processes, log_tails)
        try:
            with socket.create_connection(("localhost", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"nothing listens on port {port} after 60 s\n{log_tails()}")


def _wait_for_log(
    path: Path, text: str, processes: list[subprocess.Popen[bytes]], log_tails: Callable[[], str]
) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        _check_running(processes, log_tails)
        if text in path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    pytest.fail(f"{path.name} never said {text!r}\n{log_tails()}")


def _records(settings: Settings, topic: str, enough: Callable[[list[Any]], bool]) -> list[Any]:
    """The topic's JSON values from the start, until ``enough`` of them (or 30 s)."""
    consumer = KafkaConsumer(
        topic, **settings.kafka_python_config(), auto_offset_reset="earliest",
        group_id=f"read-{uuid.uuid4().hex[:8]}",
    )  # fmt: skip
    values: list[Any] = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline and not enough(values):
            values += [orjson.loads(r.value) for b in consumer.poll(500).values() for r in b]
    finally:
        consumer.close()
    return values


def _responses(values: list[Any], response: str) -> list[Any]:
    return [
        v for v in values if v.get("type") == "invitation_response" and v["response"] == response
    ]


def test_dwell_on_pricing_shows_the_bubble_and_accept_reaches_kafka(
    browser: Any, system: tuple[Settings, str, Callable[[], str]], tmp_path: Path
) -> None:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    settings, shop, log_tails = system
    with urllib.request.urlopen(f"{shop}/beckon.js") as response:
        assert response.headers["Content-Type"].startswith("application/javascript")

    opened = time.monotonic()
    browser.get(f"{shop}/pricing")
    visitor_id = WebDriverWait(browser, 10).until(
        lambda d: d.execute_script("return window.beckon && window.beckon.visitorId")
    )
    within_s = DWELL_S + 8  # the dwell, the worker's grace, Kafka and the page: a few seconds
    try:
        card = WebDriverWait(browser, within_s).until(
            ec.visibility_of_element_located((By.CSS_SELECTOR, ".bk-card[role=dialog]"))
        )
    except TimeoutException as exc:
        raise AssertionError(f"no invitation bubble within {within_s} s\n{log_tails()}") from exc
    waited = time.monotonic() - opened
    print(f"the bubble appeared {waited:.1f} s after the page opened (dwell {DWELL_S} s)")
    assert waited >= DWELL_S, "shown before the dwell threshold"

    # Accessible: a labelled dialog in a polite live region, with real buttons.
    title = browser.find_element(By.ID, card.get_attribute("aria-labelledby"))
    assert title.text == "Chat with us"
    message = browser.find_element(By.ID, card.get_attribute("aria-describedby"))
    assert message.text == "Hi there, any questions about our plans?"
    live = card.find_element(By.XPATH, "..")
    assert live.get_attribute("aria-live") == "polite"
    accept = card.find_element(By.CSS_SELECTOR, "button.bk-accept")
    assert accept.text == "Chat now"
    assert card.find_element(By.CSS_SELECTOR, "button.bk-decline").text == "No thanks"
    time.sleep(0.5)  # let its 0.25 s entrance animation end before the picture
    browser.save_screenshot(str(tmp_path / SCREENSHOT))
    print(f"screenshot: {tmp_path / SCREENSHOT}")

    accept.click()
    WebDriverWait(browser, 5).until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".bk-card"))
    assert "Connecting you to our sales team" in browser.find_element(By.TAG_NAME, "main").text

    [invitation] = _records(settings, settings.topic_invitations, lambda v: len(v) >= 1)
    assert invitation["visitor_id"] == visitor_id
    assert invitation["rule_id"] == "pricing-dwell"
    clicks = _records(
        settings,
        settings.topic_clickstream,
        lambda v: bool(_responses(v, "accepted")) and any(e["type"] == "page_ping" for e in v),
    )
    answers = _responses(clicks, "accepted")
    assert len(answers) == 1, log_tails()
    accepted = answers[0]
    assert accepted["invitation_id"] == invitation["invitation_id"]
    assert accepted["visitor_id"] == visitor_id
    [shown] = _responses(clicks, "shown")
    assert shown["invitation_id"] == invitation["invitation_id"]
    views = [v for v in clicks if v["type"] == "page_view"]
    assert views and views[0]["url"] == f"{shop}/pricing"
    assert views[0]["title"] == "Subscription · Northwind Coffee"
    assert any(v["type"] == "page_ping" for v in clicks), "pings while the page is visible"
    if os.environ.get("E2E_SCREENSHOT"):  # E2E_SCREENSHOT=docs/img/invitation-bubble.png
        shutil.copy(tmp_path / SCREENSHOT, os.environ["E2E_SCREENSHOT"])
