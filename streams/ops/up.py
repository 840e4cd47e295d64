"""``beckon up``: the broker, the topics, sample rules and every service on this machine.

Each service runs as its own process (``python -m streams.cli NAME``), as in production;
they share the settings through ``BECKON_`` variables.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Final

from pydantic import SecretStr

from schemas.rules import load_rules_file
from streams.console.auth import new_token
from streams.kafka import topics
from streams.kafka.rules_topic import apply_rules, read_rules
from streams.ops import broker
from streams.settings import Settings

# Applied when the rules topic holds no rules, so a first start has something to show.
SAMPLE_RULES: Final = Path(__file__).resolve().parent / "sample-rules.yaml"


def run_up(settings: Settings) -> int:
    """Everything on this machine until Ctrl-C: broker, worker, collector, delivery, console."""
    was_running = broker.status(settings).running
    state = broker.start(settings)
    settings = settings.model_copy(update={"bootstrap": state.bootstrap})
    topics.ensure_topics(settings)
    if not len(read_rules(settings).ruleset):
        apply_rules(settings, load_rules_file(SAMPLE_RULES))
        print(f"  rules: applied {SAMPLE_RULES} (the rules topic was empty)")
    sign_in = None
    if settings.console_token is None and settings.console_users is None:
        # As notebook servers do: a token for this run, in a URL printed once (not logged).
        token = new_token()
        settings = settings.model_copy(update={"console_token": SecretStr(token)})
        sign_in = f"http://{settings.dashboard_host}:{settings.dashboard_port}/rules?token={token}"
    # Each service is its own process, as in production; they share the settings through
    # the environment (the flags given to `beckon up` included). The console serves the
    # dashboard too, on the dashboard's port.
    env = {**os.environ, **_environment(settings)}
    services = {
        name: subprocess.Popen([sys.executable, "-m", "streams.cli", name], env=env)
        for name in ("worker", "collector", "delivery", "console")
    }
    print(f"Beckon is up. Kafka {settings.kafka_version}: {state}")
    print(f"  topics:    {', '.join(t.name for t in topics.contract_topics(settings))}")
    print(f"  demo shop: http://{settings.delivery_host}:{settings.delivery_port}/")
    print(f"  collector: http://{settings.collector_host}:{settings.collector_port}/v1/events")
    print(f"  dashboard: http://{settings.dashboard_host}:{settings.dashboard_port}/")
    print(f"  console:   http://{settings.dashboard_host}:{settings.dashboard_port}/rules")
    if sign_in is not None:
        print(f"  sign in:   {sign_in}")
    print(
        f"  worker:    pid {services['worker'].pid}, web on http://localhost:{settings.web_port}/"
    )
    print("Ctrl-C stops it all.")
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stopping and all(p.poll() is None for p in services.values()):
        time.sleep(0.5)
    for name, process in services.items():
        if process.poll() is None:
            print(f"stopping the {name} …")
            process.terminate()
    for process in services.values():
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
    if not was_running:
        print("stopping the broker …")
        broker.stop(settings)
    return 0 if stopping else 1


def _environment(settings: Settings) -> dict[str, str]:
    """The settings as BECKON_ variables, for child processes (secrets included)."""
    out = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        out[f"BECKON_{name.upper()}"] = str(value)
    return out
