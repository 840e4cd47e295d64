"""Beckon as a library user gets it: a wheel built from the checkout, installed into a new venv.

The wheel must carry every file the services read at run time (package data) and nothing
of the repository's tests or benchmarks. Installed non-editable with the pinned
constraints into a fresh venv (its dependencies are resolved for real: no
``--system-site-packages``), the installed ``beckon up`` runs from a directory outside
the checkout, with no ``PYTHONPATH``: the delivery service serves the snippet, the
dashboard its page and assets, each byte for byte the checkout's, and Ctrl-C stops every
process it started.

``beckon up`` is pointed at the session's broker, which it finds running, so it starts
no second JVM and must leave that broker alone; its topics, consumer groups and worker
state are its own, so no other test sees them. (Where the session's broker is not a
local one, ``beckon up`` gets its own on free ports, as in test_up.py, and must stop it.)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient

from streams.settings import Settings
from tests.helpers import descendants, free_port

pytestmark = pytest.mark.integration

CHECKOUT = Path(__file__).resolve().parents[3]
# Besides every module: the files the services open at run time.
RUNTIME_FILES = (
    "streams/delivery/static/beckon.js",
    "streams/dashboard/static/*",
    "streams/ops/kafka_dist/*",
    "streams/ops/sample-rules.yaml",
    "schemas/json/*.json",
)
# Never copied into the build: local state a checkout may hold (a stale build/ or
# *.egg-info would feed old files into the wheel).
_TOP_LEVEL_JUNK = {".git", ".venv", "venv", "build", "dist", "var", "node_modules"}
_ANYWHERE_JUNK = {"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis"}


def _ignore(directory: str, names: list[str]) -> set[str]:
    top = Path(directory) == CHECKOUT
    return {
        n
        for n in names
        if n in _ANYWHERE_JUNK or n.endswith(".egg-info") or (top and n in _TOP_LEVEL_JUNK)
    }


def _clean_env() -> dict[str, str]:
    """This environment less Beckon's settings, PYTHONPATH and the dev venv."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    return {k: v for k, v in os.environ.items() if not k.startswith("BECKON_") and k not in drop}


def _run(cmd: list[str], cwd: Path, timeout: float) -> None:
    done = subprocess.run(
        cmd, cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=timeout,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{cmd}:\n{(done.stdout + done.stderr)[-4000:]}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The wheel of the checkout as it is now, built from a clean copy of it."""
    root = tmp_path_factory.mktemp("wheel")
    source, dist = root / "source", root / "dist"
    try:
        shutil.copytree(CHECKOUT, source, ignore=_ignore)
        _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist),
              str(source)], cwd=root, timeout=300)  # fmt: skip
        (built,) = dist.glob("beckon-*.whl")
        yield built
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A new venv holding the wheel (not editable) and its pinned dependencies."""
    root = tmp_path_factory.mktemp("venv")
    try:
        _run([sys.executable, "-m", "venv", str(root)], cwd=root, timeout=120)
        _run([str(root / "bin" / "python"), "-m", "pip", "install", "-q", "--no-input",
              "-c", str(CHECKOUT / "deploy" / "constraints.txt"), str(wheel)],
             cwd=root, timeout=600)  # fmt: skip
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_the_wheel_holds_every_runtime_file_and_no_tests(wheel: Path) -> None:
    dist_info = "-".join(wheel.name.split("-")[:2]) + ".dist-info"  # beckon-VERSION.dist-info
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = archive.read(f"{dist_info}/entry_points.txt")
    wanted = {
        p.relative_to(CHECKOUT).as_posix()
        for pattern in (*RUNTIME_FILES, "streams/**/*.py", "schemas/**/*.py")
        for p in CHECKOUT.glob(pattern)
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert len(wanted) > len(RUNTIME_FILES) + 20  # the globs found the package
    assert "streams/delivery/static/beckon.js" in wanted
    assert not sorted(wanted - names), "missing from the wheel"
    assert {n.split("/")[0] for n in names} == {"streams", "schemas", dist_info}
    assert not [n for n in names if n.startswith(("tests/", "bench/"))]
    assert b"beckon = streams.cli:main" in entry_points


def _get(url: str) -> bytes | None:
    """The body of a 200 answer, else None."""
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return bytes(response.read()) if response.status == 200 else None
    except (urllib.error.URLError, OSError):
        return None


def _alive(pid: int) -> bool:
    """True while the process runs (a zombie not reaped yet has ended: it does not count)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _session_broker_port(settings: Settings) -> int | None:
    """The session broker's port where `beckon up` can use it: one broker on this machine."""
    host, _, port = settings.bootstrap.rpartition(":")
    local = host in ("localhost", "127.0.0.1") and "," not in settings.bootstrap
    return int(port) if local and port.isdigit() else None


def _answers_kafka(bootstrap: str) -> bool:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        return bool(admin.describe_cluster())
    finally:
        admin.close()


def test_the_installed_beckon_up_serves_its_files_from_the_venv(
    venv: Path, kafka_settings: Settings, tmp_path: Path
) -> None:
    workdir = tmp_path / "elsewhere"  # outside the checkout: nothing to import from here
    workdir.mkdir()
    python = venv / "bin" / "python"
    probe = subprocess.run(
        [str(python), "-c", "import json, streams, schemas; "
         "print(json.dumps([streams.__file__, schemas.__file__]))"],
        cwd=workdir, env=_clean_env(), capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    for module_file in json.loads(probe.stdout):
        assert Path(module_file).resolve().is_relative_to(venv.resolve()), module_file

    session_port = _session_broker_port(kafka_settings)
    ports = {name: free_port() for name in ("broker", "controller", "web", "collector",
                                            "delivery", "dashboard")}  # fmt: skip
    if session_port is not None:
        ports["broker"] = session_port  # running already: `beckon up` uses it as it is
    suffix = uuid.uuid4().hex[:8]
    env = _clean_env()
    env.update(
        BECKON_HOME=str(Path.home() / ".cache" / "beckon"),  # the jars setup fetched
        BECKON_BROKER_DIR=str(tmp_path / "broker"),
        BECKON_DATA_DIR=str(tmp_path / "worker"),
        BECKON_BROKER_PORT=str(ports["broker"]),
        BECKON_CONTROLLER_PORT=str(ports["controller"]),
        BECKON_WEB_PORT=str(ports["web"]),
        BECKON_COLLECTOR_PORT=str(ports["collector"]),
        BECKON_DELIVERY_PORT=str(ports["delivery"]),
        BECKON_DASHBOARD_PORT=str(ports["dashboard"]),
        BECKON_PARTITIONS="2",
        # Topics, groups and tables of its own on the shared broker.
        BECKON_APP_ID=f"beckon-wheel-{suffix}",
        BECKON_DELIVERY_GROUP=f"beckon-wheel-delivery-{suffix}",
        **{
            f"BECKON_{name.upper()}": f"{field.default}.wheel-{suffix}"
            for name, field in Settings.model_fields.items()
            if name.startswith("topic_")
        },
    )
    delivery = f"http://localhost:{ports['delivery']}"
    dashboard = f"http://localhost:{ports['dashboard']}"
    # Every service answering: each runs from the venv, from its installed files.
    ready = (f"{delivery}/beckon.js", f"{dashboard}/healthz",
             f"http://localhost:{ports['collector']}/healthz",
             f"http://localhost:{ports['web']}/metrics")  # fmt: skip
    log_path = tmp_path / "up.log"
    started: list[int] = []
    with log_path.open("wb") as log:
        up = subprocess.Popen(
            [str(venv / "bin" / "beckon"), "up"], cwd=workdir, env=env, stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 180
            while not all(_get(url) is not None for url in ready):
                assert up.poll() is None, log_path.read_text(errors="replace")[-4000:]
                assert time.monotonic() < deadline, log_path.read_text(errors="replace")[-4000:]
                time.sleep(0.5)
            started = descendants(up.pid)
            for pid in started:  # the services, and a broker it started: the venv's python
                exe = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
                assert exe in (str(python), "java"), exe

            snippet = CHECKOUT / "streams" / "delivery" / "static" / "beckon.js"
            assert _get(f"{delivery}/beckon.js") == snippet.read_bytes()
            static = CHECKOUT / "streams" / "dashboard" / "static"
            assert _get(f"{dashboard}/") == (static / "dashboard.html").read_bytes()
            for asset in ("dashboard.js", "dashboard.css"):
                assert _get(f"{dashboard}/static/{asset}") == (static / asset).read_bytes()
        finally:
            up.send_signal(signal.SIGINT)
            try:
                code = up.wait(timeout=120)
            finally:
                left = [pid for pid in started if _alive(pid)]
                for pid in left:  # clean up before failing
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                if up.poll() is None:
                    up.kill()
                    up.wait()
    text = log_path.read_text(errors="replace")
    assert code == 0, text[-4000:]
    assert not left, f"processes left behind: {left}\n{text[-4000:]}"
    # The sample rules came from the installed package (the rules topic was new).
    sample = venv.resolve() / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    sample = sample / "site-packages" / "streams" / "ops" / "sample-rules.yaml"
    assert f"rules: applied {sample}" in text, text[-4000:]
    if session_port is not None:  # not its broker: left running
        assert "stopping the broker" not in text
        assert _answers_kafka(kafka_settings.bootstrap)
    else:
        assert "stopping the broker" in text
