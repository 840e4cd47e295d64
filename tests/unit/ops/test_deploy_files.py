"""The deployment files agree with the code, checked without a Docker engine.

docker-compose.yml, deploy/Dockerfile, deploy/prometheus/prometheus.yml and the Grafana
provisioning are parsed and held against what they name: ``streams.cli``'s sub-commands,
``Settings``' fields, the routes each service serves, ``streams.metrics.METRIC_NAMES``.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from streams.cli import build_parser
from streams.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
IMAGE = "deploy/Dockerfile"  # the Beckon services are those built from it
BECKON = {n: s for n, s in SERVICES.items() if s.get("build", {}).get("dockerfile") == IMAGE}
JOBS = ("topics", "rules")  # one-shot: they exit once their work is done
# The long-running services, and the settings of the address each one listens on.
LISTENS = {"worker": ("web_host", "web_port"), "collector": ("collector_host", "collector_port"),
           "delivery": ("delivery_host", "delivery_port"),
           "dashboard": ("dashboard_host", "dashboard_port")}  # fmt: skip
SCRAPED = ("worker", "collector", "delivery")  # the services that serve /metrics
SAMPLE_RULES = "streams/ops/sample-rules.yaml"
PROMETHEUS = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
GRAFANA = ROOT / "deploy/grafana"
DATASOURCES = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
PROVIDERS = yaml.safe_load((GRAFANA / "provisioning/dashboards/beckon.yml").read_text())
DASHBOARD = json.loads((GRAFANA / "dashboards/beckon.json").read_text())


@pytest.fixture(autouse=True)
def _no_beckon_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the compose file alone, not from the shell running the tests."""
    for key in list(__import__("os").environ):
        if key.startswith("BECKON_"):
            monkeypatch.delenv(key)


def settings_of(service: str) -> Settings:
    env = SERVICES[service].get("environment", {})
    return load_settings(**{k.removeprefix("BECKON_").lower(): str(v) for k, v in env.items()})


def probe(service: str) -> tuple[int, str]:
    """The port and path the service's healthcheck asks on localhost."""
    test = " ".join(SERVICES[service]["healthcheck"]["test"])
    found = re.search(r"http://localhost:(\d+)(/[^'\"\s]*)", test)
    assert found, f"{service}: the healthcheck names no http://localhost URL: {test}"
    return int(found[1]), found[2]


def mounts(service: str) -> dict[str, str]:
    """The service's volumes, target -> source."""
    pairs = (v.split(":") for v in SERVICES[service].get("volumes", []))
    return {parts[1]: parts[0] for parts in pairs}


# --- compose: commands, settings, ports --------------------------------------------------


def test_compose_runs_what_beckon_up_runs() -> None:
    commands = {tuple(s["command"][1:2]) for s in BECKON.values() if s["command"][0] == "beckon"}
    assert {("worker",), ("collector",), ("delivery",), ("console",)} <= commands
    assert set(LISTENS) | set(JOBS) == set(BECKON)
    assert {"kafka", "prometheus", "grafana"} <= set(SERVICES)


@pytest.mark.parametrize("name", [n for n, s in BECKON.items() if s["command"][0] == "beckon"])
def test_every_beckon_command_is_a_cli_command(name: str) -> None:
    argv = BECKON[name]["command"][1:]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"{name}: `beckon {shlex.join(argv)}` is refused by streams.cli")
    assert callable(args.handler)


@pytest.mark.parametrize("name", sorted(BECKON))
def test_every_variable_is_a_setting_with_a_valid_value(name: str) -> None:
    env = BECKON[name]["environment"]
    for key in env:
        field = key.removeprefix("BECKON_").lower()
        assert key.startswith("BECKON_") and field in Settings.model_fields, f"{name}: {key}"
    assert settings_of(name).bootstrap == "kafka:19092"


@pytest.mark.parametrize("name", sorted(LISTENS))
def test_each_service_listens_publishes_and_probes_its_own_port(name: str) -> None:
    host_field, port_field = LISTENS[name]
    settings = settings_of(name)
    port = getattr(settings, port_field)
    assert getattr(settings, host_field) == "0.0.0.0", f"{name}: set BECKON_{host_field.upper()}"
    published = [int(p.split(":")[-1].split("/")[0]) for p in SERVICES[name]["ports"]]
    assert published == [port]
    assert probe(name)[0] == port


HEALTH = "/healthz"  # the one health route every service answers


def _routes(app: Any) -> set[str]:
    return {r.resource.canonical for r in app.router.routes() if r.method == "GET"}


def _worker_routes(settings: Settings) -> set[str]:
    from streams.worker.app import create_app
    from streams.worker.metrics import WorkerMetrics

    app = create_app(settings)
    WorkerMetrics().serve(app, settings.topic_clickstream)  # as the worker's build does
    return set(app.web.views)


def _collector_routes(settings: Settings) -> set[str]:
    from streams.collector.server import Collector
    from streams.collector.sites import Sites

    return _routes(Collector(settings, Sites.load(None)).app())


def _delivery_routes(settings: Settings) -> set[str]:
    from streams.delivery.server import build_app

    return _routes(build_app(settings))


def _dashboard_routes(settings: Settings) -> set[str]:
    from streams.dashboard.server import build_app

    return _routes(build_app(settings))


ROUTES: dict[str, Callable[[Settings], set[str]]] = {
    "worker": _worker_routes, "collector": _collector_routes, "delivery": _delivery_routes,
    "dashboard": _dashboard_routes,
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(LISTENS))
def test_healthchecks_and_scrapes_ask_routes_the_services_serve(name: str) -> None:
    routes = ROUTES[name](settings_of(name))
    assert probe(name)[1] == HEALTH, f"{name}: every service is probed at {HEALTH}"
    assert HEALTH in routes
    if name in SCRAPED:
        assert "/metrics" in routes


def test_the_delivery_service_still_answers_its_old_health_route() -> None:
    # Load balancers deployed before /healthz probe /v1/health (docs/delivery.md).
    assert "/v1/health" in _delivery_routes(settings_of("delivery"))


def test_services_wait_for_kafka_the_topics_and_the_rules() -> None:
    for name, service in BECKON.items():
        needs = {dep: cond["condition"] for dep, cond in service["depends_on"].items()}
        assert needs.get("kafka") == "service_healthy", name
        if name != "topics":
            assert needs.get("topics") == "service_completed_successfully", name
        assert service["restart"] == ("no" if name in JOBS else "unless-stopped"), name
    worker_needs = SERVICES["worker"]["depends_on"]
    assert worker_needs["rules"]["condition"] == "service_completed_successfully"
    for service in SERVICES.values():
        assert set(service.get("depends_on", {})) <= set(SERVICES)


def test_worker_state_lives_on_a_named_volume() -> None:
    data = PurePosixPath(settings_of("worker").data_path)
    volumes = {t: s for t, s in mounts("worker").items() if data.is_relative_to(t)}
    assert len(volumes) == 1 and next(iter(volumes.values())) in COMPOSE["volumes"]


# --- the rules job: the sample rules, as `beckon up` applies them -----------------------


def test_rules_job_applies_the_sample_only_to_an_empty_rules_topic() -> None:
    # --if-empty itself is tested on the broker (tests/integration/kafka/test_rules_topic.py).
    assert BECKON["rules"]["command"] == ["beckon", "rules", "apply", "--if-empty", SAMPLE_RULES]
    assert (ROOT / SAMPLE_RULES).is_file()


# --- the image -----------------------------------------------------------------------------


def _dockerfile() -> tuple[str, list[tuple[list[str], str]], str]:
    """WORKDIR, the COPY instructions as (sources, destination), the RUN instructions."""
    text = (ROOT / "deploy/Dockerfile").read_text().replace("\\\n", " ")
    workdir, copies, runs = "/", [], []
    for line in text.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word == "WORKDIR":
            workdir = rest.strip()
        elif word == "COPY":
            *sources, dest = [p for p in rest.split() if not p.startswith("--")]
            copies.append((sources, dest))
        elif word == "RUN":
            runs.append(rest)
    return workdir, copies, " ".join(runs)


def test_image_keeps_the_files_the_services_read_where_the_code_looks() -> None:
    from streams.dashboard import server as dashboard_server
    from streams.delivery import server as delivery

    workdir, copies, runs = _dockerfile()
    # Installed as a wheel would be (package data), with the source kept under the workdir.
    assert re.search(r"pip install .* \.(\s|$)", runs)
    assert not re.search(r"pip install .*(-e|--editable) ", runs)
    in_image = {}
    for sources, dest in copies:
        for source in sources:
            base = PurePosixPath(workdir, dest)
            many = len(sources) > 1 or dest.endswith("/")
            in_image[source] = base / PurePosixPath(source).name if many else base
    ignored = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()]
    needed = [delivery.SNIPPET, dashboard_server.STATIC, ROOT / SAMPLE_RULES, ROOT / "streams"]
    for path in (p.relative_to(ROOT).as_posix() for p in needed):
        assert (ROOT / path).exists(), path
        copied = [s for s in in_image if path == s or path.startswith(s.rstrip("/") + "/")]
        assert copied, f"deploy/Dockerfile copies no {path}"
        where = in_image[copied[0]] / PurePosixPath(path).relative_to(copied[0])
        assert where == PurePosixPath(workdir, path), f"{path} lands at {where} in the image"
        parts = PurePosixPath(path).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        dropped = [p for p in prefixes for pattern in ignored if pattern and fnmatch(p, pattern)]
        assert not dropped, f".dockerignore leaves {path} out of the build context"


# --- Prometheus ----------------------------------------------------------------------------


def test_prometheus_scrapes_each_beckon_service_at_its_port() -> None:
    scraped = {}
    for job in PROMETHEUS["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics"
        for target in (t for group in job["static_configs"] for t in group["targets"]):
            host, port = target.split(":")
            scraped[host] = (int(port), job["job_name"])
    assert sorted(scraped) == sorted(SCRAPED)
    for name, (port, job_name) in scraped.items():
        assert port == getattr(settings_of(name), LISTENS[name][1])
        assert job_name == f"beckon-{name}"
    config = next(a for a in SERVICES["prometheus"]["command"] if a.startswith("--config.file="))
    source = mounts("prometheus")[config.removeprefix("--config.file=")]
    assert source == "./deploy/prometheus/prometheus.yml"


# --- Grafana -------------------------------------------------------------------------------

_STRING = re.compile(r'"(?:\\.|[^"\\])*"')
_STRIPPED = re.compile(
    r"\{[^}]*\}|\[[^\]]*\]|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"
)
_NAME = re.compile(r"(?<![\w.$])([A-Za-z_:][\w:]*)(\s*\()?")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan"})
_SUFFIXES = ("_bucket", "_sum", "_count")
# Series that Prometheus writes itself for every target.
PROMETHEUS_SERIES = frozenset({"up"})


def metric_names(expr: str) -> set[str]:
    """The metric families a PromQL expression reads (histogram series: their family)."""
    bare = _STRIPPED.sub(" ", _STRING.sub('""', expr))
    names = set()
    for name, call in _NAME.findall(bare):
        if not call and name.lower() not in _KEYWORDS:
            names.add(next((name.removesuffix(s) for s in _SUFFIXES if name.endswith(s)), name))
    return names


def client_defaults() -> set[str]:
    from prometheus_client import (
        CollectorRegistry,
        GCCollector,
        PlatformCollector,
        ProcessCollector,
    )

    registry = CollectorRegistry()
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        collector(registry=registry)
    return {sample.name for family in registry.collect() for sample in family.samples}


def panels() -> list[dict[str, Any]]:
    return [p for p in DASHBOARD["panels"] if p["type"] != "row"]


def expressions() -> list[str]:
    return [t["expr"] for p in panels() for t in p["targets"]]


def test_metric_names_are_read_from_promql() -> None:
    expr = 'histogram_quantile(0.99, sum by (le, endpoint) (rate(x_seconds_bucket{a="b"}[5m])))'
    assert metric_names(expr) == {"x_seconds"}
    assert metric_names('sum(a_total{job=~"b-.*"}) / sum(c) > 1e3') == {"a_total", "c"}


def test_dashboard_reads_only_metrics_that_are_exported() -> None:
    from streams.metrics import METRIC_NAMES

    known = METRIC_NAMES | client_defaults() | PROMETHEUS_SERIES
    for expr in expressions():
        assert metric_names(expr), expr
        assert metric_names(expr) <= known, f"not exported: {metric_names(expr) - known}"


def test_dashboard_shows_every_beckon_metric() -> None:
    from streams.metrics import METRIC_NAMES

    shown = set().union(*map(metric_names, expressions()))
    assert sorted(METRIC_NAMES - shown) == []


def test_quantiles_keep_the_bucket_label() -> None:
    for expr in (e for e in expressions() if "histogram_quantile" in e):
        assert re.search(r"by \((le|le, [\w, ]+)\)", expr), expr


def test_dashboard_is_importable_and_names_the_provisioned_data_source() -> None:
    (source,) = DATASOURCES["datasources"]
    assert source["url"].split("//")[1].split(":")[0] in SERVICES
    assert isinstance(DASHBOARD["schemaVersion"], int) and DASHBOARD["schemaVersion"] >= 39
    assert DASHBOARD["uid"] and DASHBOARD["title"] and DASHBOARD.get("id") is None
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in DASHBOARD["panels"]:
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        area = {(x, y) for x in range(box["x"], box["x"] + box["w"])
                for y in range(box["y"], box["y"] + box["h"])}  # fmt: skip
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area
    for panel in panels():
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for ds in [panel["datasource"], *(t["datasource"] for t in panel["targets"])]:
            assert ds == {"type": "prometheus", "uid": source["uid"]}, panel["title"]


def test_grafana_finds_its_provisioning_and_the_dashboard_where_compose_mounts_them() -> None:
    mounted = mounts("grafana")
    assert mounted["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    (provider,) = PROVIDERS["providers"]
    source = mounted[provider["options"]["path"]]
    assert (ROOT / source / "beckon.json").is_file()
    home = SERVICES["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    target = str(PurePosixPath(home).parent)
    assert (ROOT / mounted[target] / PurePosixPath(home).name).is_file()


def test_third_party_images_are_pinned() -> None:
    for name in ("kafka", "prometheus", "grafana"):
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", SERVICES[name]["image"]), name
