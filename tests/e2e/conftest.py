"""The e2e tier's fixtures: headless Chromium, and the whole system on its own topics.

`system` runs `beckon worker`, `beckon collector`, `beckon delivery` and `beckon dashboard`
as subprocesses on fresh topics and free ports, as a user runs them; `console_system` runs
a worker that follows the rules topic and `beckon console`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
import pytest
from kafka import KafkaConsumer

from streams.kafka.topics import ensure_topics
from streams.settings import Settings
from tests.helpers import free_port

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


def _fresh_settings(kafka_settings: Settings, tmp_path: Path) -> Settings:
    """The session's broker with topics, group, data dir and ports of this test's own."""
    run_id = uuid.uuid4().hex[:10]
    settings = kafka_settings.model_copy(
        update={
            "app_id": f"beckon-e2e-{run_id}",
            "topic_clickstream": f"e2e.{run_id}.clickstream",
            "topic_invitations": f"e2e.{run_id}.invitations",
            "topic_decisions": f"e2e.{run_id}.decisions",
            "topic_rules": f"e2e.{run_id}.rules",
            "topic_rules_history": f"e2e.{run_id}.rules.history",
            "topic_dlq": f"e2e.{run_id}.dlq",
            "topic_dwell_updates": f"e2e.{run_id}.dwell.updates",
            "topic_dwell": f"e2e.{run_id}.dwell",
            "topic_capacity": f"e2e.{run_id}.capacity",
            "topic_budget": f"e2e.{run_id}.budget",
            "partitions": 2,
            "data_dir": tmp_path / "worker",
            "grace_s": GRACE_S,
            "collector_port": free_port(),
            "delivery_port": free_port(),
            "dashboard_port": free_port(),
            "delivery_group": f"delivery-{run_id}",
        }
    )
    ensure_topics(settings)
    return settings


def _env(settings: Settings) -> dict[str, str]:
    """This process's environment without its BECKON_ variables, plus the settings'."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BECKON_")}
    for name in ("bootstrap", "app_id", "topic_clickstream", "topic_invitations",
                 "topic_decisions", "topic_rules", "topic_rules_history", "topic_dlq",
                 "topic_dwell_updates", "topic_dwell", "topic_capacity", "topic_budget",
                 "partitions",
                 "data_dir", "grace_s",
                 "collector_port", "delivery_port", "dashboard_port",
                 "delivery_group"):  # fmt: skip
        env[f"BECKON_{name.upper()}"] = str(getattr(settings, name))
    return env


@dataclass
class Services:
    """`beckon` commands running as subprocesses, each with its log file."""

    logs: dict[str, Path]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def tails(self) -> str:
        """The end of each log, for a failure's message."""
        return "\n".join(
            f"--- {name}.log ---\n{path.read_text(errors='replace')[-2500:]}"
            for name, path in self.logs.items()
            if path.exists()
        )

    def wait_for_port(self, port: int) -> None:
        _wait_for_port(port, self.processes, self.tails)

    def wait_for_log(self, name: str, text: str) -> None:
        _wait_for_log(self.logs[name], text, self.processes, self.tails)


@contextlib.contextmanager
def _services(
    commands: dict[str, list[str]], env: dict[str, str], tmp_path: Path
) -> Iterator[Services]:
    """Start ``python -m streams.cli <args>`` per command; terminate them all at the end."""
    services = Services({name: tmp_path / f"{name}.log" for name in commands})
    handles: list[IO[bytes]] = []
    try:
        for name, args in commands.items():
            handles.append(services.logs[name].open("wb"))
            services.processes.append(
                _start([sys.executable, "-m", "streams.cli", *args], env, handles[-1])
            )
        yield services
    finally:
        for process in services.processes:
            process.terminate()
        for process in services.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for handle in handles:
            handle.close()


@pytest.fixture
def system(
    kafka_settings: Settings, tmp_path: Path
) -> Iterator[tuple[Settings, str, Callable[[], str]]]:
    """Worker, collector, delivery and dashboard on fresh topics and free ports: (settings,
    shop URL, a function returning the services' logs); the dashboard is on
    ``settings.dashboard_port``."""
    settings = _fresh_settings(kafka_settings, tmp_path)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    commands = {
        "worker": ["worker", "--rules", str(rules), "--web-port", str(free_port())],
        "collector": ["collector"],
        "delivery": ["delivery"],
        "dashboard": ["dashboard"],
    }
    with _services(commands, _env(settings), tmp_path) as services:
        services.wait_for_port(settings.collector_port)
        services.wait_for_port(settings.delivery_port)
        services.wait_for_port(settings.dashboard_port)
        services.wait_for_log("worker", "Ready")
        yield settings, f"http://localhost:{settings.delivery_port}", services.tails


@dataclass
class ConsoleSystem:
    """A worker following the rules topic, and `beckon console` at ``url``."""

    settings: Settings
    url: str  # the console page: http://localhost:<dashboard_port>/rules
    token: str  # BECKON_CONSOLE_TOKEN: signs in as an editor
    viewer: tuple[str, str]  # (name, password) of a viewer in BECKON_CONSOLE_USERS
    services: Services


@pytest.fixture
def console_system(kafka_settings: Settings, tmp_path: Path) -> Iterator[ConsoleSystem]:
    """`beckon worker` following the rules topic (it starts with ``RULES`` applied, as
    `beckon rules apply` would) and `beckon console` on ``settings.dashboard_port``.

    No collector or delivery: the console's tests publish events straight to Kafka."""
    from schemas.rules import load_rules
    from streams.console.auth import hash_password
    from streams.kafka.rules_topic import apply_rules

    settings = _fresh_settings(kafka_settings, tmp_path)
    apply_rules(settings, load_rules(RULES))
    token, viewer = uuid.uuid4().hex, ("vera", uuid.uuid4().hex[:12])
    users = tmp_path / "console-users"
    users.write_text(f"{viewer[0]}:viewer:{hash_password(viewer[1])}\n")
    env = _env(settings) | {"BECKON_CONSOLE_TOKEN": token, "BECKON_CONSOLE_USERS": str(users)}
    commands = {
        "worker": ["worker", "--web-port", str(free_port())],
        "console": ["console"],
    }
    with _services(commands, env, tmp_path) as services:
        services.wait_for_port(settings.dashboard_port)
        services.wait_for_log("worker", "Ready")
        url = f"http://localhost:{settings.dashboard_port}/rules"
        yield ConsoleSystem(settings, url, token, viewer, services)


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
