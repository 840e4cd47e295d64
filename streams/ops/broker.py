"""A local single-node Apache Kafka (KRaft) for development and tests, without Docker.

Owns the broker's whole life on this machine:

- install: Maven resolves the pinned Kafka release and its runtime dependencies from
  Maven Central into ``HOME/kafka-<version>/libs`` (outside the repository, once);
- start: writes ``server.properties``, formats the storage the first time, runs one
  combined broker/controller in the background and returns once it answers Kafka
  requests; idempotent;
- stop: SIGTERM (a clean shutdown), SIGKILL only if it will not end;
- status: running or not, for an exit code.

The data, the pid file and the logs live in ``broker_dir`` (default ``HOME/broker``);
the broker's own log is ``broker_dir/logs/server.log``.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from schemas.errors import BrokerError
from streams.settings import Settings

log = logging.getLogger(__name__)

_RESOURCES = Path(__file__).parent / "kafka_dist"
_MAIN_CLASS = "kafka.Kafka"
# Brokers this process started, by pid: held so that `stop` can reap them (tests start
# and stop brokers in-process) and Python does not warn about a running child on exit.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class BrokerPaths:
    """Where one local broker keeps its files."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def config(self) -> Path:
        return self.root / "server.properties"

    @property
    def pidfile(self) -> Path:
        return self.root / "broker.pid"

    @property
    def server_log(self) -> Path:
        return self.logs / "server.log"

    @property
    def console_log(self) -> Path:
        return self.logs / "console.log"


# --- install ------------------------------------------------------------------------------


def libs_dir(settings: Settings) -> Path:
    return settings.home / f"kafka-{settings.kafka_version}" / "libs"


def _java_major() -> int:
    java = shutil.which("java")
    if java is None:
        raise BrokerError(
            "Java 17 or newer is needed to run the local Kafka broker and `java` is not on "
            "PATH (Debian: apt-get install openjdk-17-jre-headless)"
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        raise BrokerError(f"could not read the Java version from: {out.stderr.strip()!r}")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def install(settings: Settings) -> Path:
    """Fetch Kafka's jars with Maven once; return the directory that holds them."""
    libs = libs_dir(settings)
    marker = libs.parent / ".complete"
    if marker.exists():
        return libs
    if (major := _java_major()) < 17:
        raise BrokerError(f"Kafka {settings.kafka_version} needs Java 17 or newer, found {major}")
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(
            "Maven (`mvn`) is needed once to fetch Apache Kafka from Maven Central and is "
            "not on PATH (Debian: apt-get install maven)"
        )
    libs.parent.mkdir(parents=True, exist_ok=True)
    pom = (_RESOURCES / "pom.xml").read_text().replace("@KAFKA_VERSION@", settings.kafka_version)
    (libs.parent / "pom.xml").write_text(pom)
    shutil.rmtree(libs, ignore_errors=True)
    log.info("fetching Apache Kafka %s from Maven Central (once)", settings.kafka_version)
    cmd = [mvn, "-q", "-B", "dependency:copy-dependencies", "-DincludeScope=runtime",
           f"-DoutputDirectory={libs}"]  # fmt: skip
    done = subprocess.run(cmd, cwd=libs.parent, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise BrokerError(f"Maven could not fetch Kafka {settings.kafka_version}:\n{tail}")
    if not any(libs.glob(f"kafka_2.13-{settings.kafka_version}.jar")):
        raise BrokerError(f"Maven finished but {libs} holds no kafka_2.13 jar")
    marker.write_text(settings.kafka_version + "\n")
    return libs


# --- configuration ------------------------------------------------------------------------


def server_properties(settings: Settings, paths: BrokerPaths) -> str:
    """The combined broker/controller's configuration, sized for one machine."""
    port, cport = settings.broker_port, settings.controller_port
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"localhost:{cport}",
        "listeners": f"PLAINTEXT://localhost:{port},CONTROLLER://localhost:{cport}",
        "advertised.listeners": f"PLAINTEXT://localhost:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(paths.data),
        "num.partitions": str(settings.partitions),
        # Topics are created by Beckon (streams.kafka.topics) and by Faust, with their own counts.
        "auto.create.topics.enable": "false",
        # One node: every internal topic has one replica. Fewer partitions than the
        # defaults (50) make the first group and the first transaction start fast.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "8",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "8",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "log.retention.hours": "168",
        "message.max.bytes": "1048588",
    }
    return "".join(f"{k}={v}\n" for k, v in props.items())


def _cluster_id() -> str:
    # Kafka's own form: 16 random bytes, URL-safe base64 without padding. Like Kafka's
    # Uuid.randomUuid, draw again when it starts with "-": kafka-storage's argument
    # parser would read such an id as an option (1 format in 64 failed this way).
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def _java_command(settings: Settings, paths: BrokerPaths, main: str, *args: str) -> list[str]:
    return [
        "java", f"-Xmx{settings.broker_heap}", "-Xms256m", "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={_RESOURCES / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={paths.logs}",
        "-cp", f"{libs_dir(settings)}/*", main, *args,
    ]  # fmt: skip


def _format_storage(settings: Settings, paths: BrokerPaths) -> None:
    if (paths.data / "meta.properties").exists():
        return
    cmd = _java_command(settings, paths, "kafka.tools.StorageTool", "format",
                        "-t", _cluster_id(), "-c", str(paths.config), "--standalone")  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BrokerError(f"formatting {paths.data} failed: {(done.stdout + done.stderr)[-2000:]}")


# --- process control ----------------------------------------------------------------------


def _read_pid(paths: BrokerPaths) -> int | None:
    """The broker's pid if the pid file names a live Kafka process, else None."""
    try:
        pid = int(paths.pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    # A stale pid file may name a recycled pid: only a Kafka JVM counts.
    return pid if _MAIN_CLASS.encode() in cmdline else None


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("localhost", port), timeout=0.5):
            return True
    except OSError:
        return False


def _answers_kafka(bootstrap: str) -> bool:
    """True when a broker answers a metadata request (not only accepts TCP)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    except (KafkaError, OSError, ValueError):
        return False
    try:
        admin.describe_cluster()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


@dataclass(frozen=True)
class Status:
    running: bool
    pid: int | None
    bootstrap: str
    log: Path

    def __str__(self) -> str:
        if not self.running:
            return f"not running (log: {self.log})"
        owner = f"pid {self.pid}" if self.pid else "not started by beckon"
        return f"running on {self.bootstrap} ({owner}); log: {self.log}"


def status(settings: Settings) -> Status:
    paths = BrokerPaths(settings.broker_path)
    pid = _read_pid(paths)
    running = _port_open(settings.broker_port) and (pid is not None or _answers_kafka(
        f"localhost:{settings.broker_port}"))  # fmt: skip
    return Status(running, pid, f"localhost:{settings.broker_port}", paths.server_log)


def start(settings: Settings) -> Status:
    """Start the local broker unless it runs; return once it answers Kafka requests."""
    paths = BrokerPaths(settings.broker_path)
    current = status(settings)
    if current.running:
        return current
    if _port_open(settings.broker_port) or _port_open(settings.controller_port):
        raise BrokerError(
            f"port {settings.broker_port} or {settings.controller_port} is taken by another "
            "program; choose others with BECKON_BROKER_PORT / BECKON_CONTROLLER_PORT"
        )
    install(settings)
    paths.logs.mkdir(parents=True, exist_ok=True)
    paths.config.write_text(server_properties(settings, paths))
    _format_storage(settings, paths)
    cmd = _java_command(settings, paths, _MAIN_CLASS, str(paths.config))
    with paths.console_log.open("ab") as console:
        proc = subprocess.Popen(cmd, stdout=console, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    paths.pidfile.write_text(f"{proc.pid}\n")
    _children[proc.pid] = proc
    bootstrap = f"localhost:{settings.broker_port}"
    deadline = time.monotonic() + settings.broker_start_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            paths.pidfile.unlink(missing_ok=True)
            raise BrokerError(f"the broker exited with {proc.returncode}:\n{_log_tail(paths)}")
        if _port_open(settings.broker_port) and _answers_kafka(bootstrap):
            return Status(True, proc.pid, bootstrap, paths.server_log)
        time.sleep(0.2)
    _terminate(proc.pid, timeout=10)
    raise BrokerError(
        f"the broker did not answer on {bootstrap} within {settings.broker_start_timeout:g} s "
        f"(BECKON_BROKER_START_TIMEOUT):\n{_log_tail(paths)}"
    )


def stop(settings: Settings, timeout: float = 60.0) -> bool:
    """Stop the local broker; True if one was running."""
    paths = BrokerPaths(settings.broker_path)
    pid = _read_pid(paths)
    paths_had_pid = paths.pidfile.exists()
    if pid is not None:
        _terminate(pid, timeout)
    if paths_had_pid:
        paths.pidfile.unlink(missing_ok=True)
    return pid is not None


def _terminate(pid: int, timeout: float) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)  # the JVM is its session's leader
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.1)
    log.warning("broker pid %d did not stop within %g s; killing it", pid, timeout)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    while _alive(pid):
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:  # our own child: poll() reaps it once it has exited
        if child.poll() is None:
            return True
        del _children[pid]
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _log_tail(paths: BrokerPaths, lines: int = 20) -> str:
    out: list[str] = []
    for path in (paths.console_log, paths.server_log):
        if path.exists():
            out += path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(out[-lines:]) or f"(no log in {paths.logs})"
