"""Beckon's configuration: one pydantic-settings class, read from the environment once.

Every field is a ``BECKON_<NAME>`` environment variable, read by every command, and a
``--name`` flag of the ``beckon`` commands that use its group (see ``streams.cli``). Entry
points build a :class:`Settings` and pass it down as a value; library code never reads the
environment itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.errors import ConfigError
from streams.core.engine import Limits

# Kafka 4.4.0: the current release (KRaft only, transactions v2 by default). Checked with
# aiokafka 0.14 (faust-streaming 0.15) and kafka-python 3.0: produce, consume, groups and
# transactions on a single combined node.
KAFKA_VERSION = "4.4.0"

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


@dataclass(frozen=True)
class Group:
    """A group of settings. A command offers as flags only the groups it reads, so its
    ``--help`` shows what matters to it; the environment still sets any setting."""

    name: str
    about: str


CONNECTION = Group("connection", "how to reach Kafka: servers, TLS, SASL")
TOPICS = Group("topics", "the contract's topics: names, partitions, replication")
ENGINE = Group("engine", "when rules fire: sessions, presence, gaps, expiry, dwell windows")
WORKER = Group("worker", "the stream worker: group, state, batches, guarantee, web port")
COLLECTOR = Group("collector", "the HTTP collector")
DELIVERY = Group("delivery", "the delivery service and its demo shop")
DASHBOARD = Group("dashboard", "the live operations page")
CONSOLE = Group("console", "the rules console: sign-in, sessions, funnel, preview")
BROKER = Group("broker", "the local broker (beckon broker): Kafka release, ports, files")
GROUPS: Final = (
    CONNECTION, TOPICS, ENGINE, WORKER, COLLECTOR, DELIVERY, DASHBOARD, CONSOLE, BROKER
)  # fmt: skip

# A field's type names its group, e.g. ``grace_s: Worker[float]``: the group is declared
# where the field is, and a field without one fails tests/unit/test_cli.py.
_T = TypeVar("_T")
Connection = Annotated[_T, CONNECTION]
Topics = Annotated[_T, TOPICS]
Engine = Annotated[_T, ENGINE]
Worker = Annotated[_T, WORKER]
Collector = Annotated[_T, COLLECTOR]
Delivery = Annotated[_T, DELIVERY]
Dashboard = Annotated[_T, DASHBOARD]
Console = Annotated[_T, CONSOLE]
Broker = Annotated[_T, BROKER]


def _default_home() -> Path:
    return Path.home() / ".cache" / "beckon"


class Settings(BaseSettings):
    """All of Beckon's settings. Secrets are ``SecretStr`` and never printed."""

    model_config = SettingsConfigDict(
        env_prefix="BECKON_", extra="ignore", frozen=True, validate_default=True
    )

    # --- Kafka connection -------------------------------------------------------------
    bootstrap: Connection[str] = Field(
        "localhost:9092", description="Kafka bootstrap servers, host:port,..."
    )
    security_protocol: Connection[SecurityProtocol] = Field(
        "PLAINTEXT", description="Kafka security protocol"
    )
    sasl_mechanism: Connection[SaslMechanism | None] = Field(None, description="SASL mechanism")
    sasl_username: Connection[str | None] = Field(None, description="SASL user name")
    sasl_password: Connection[SecretStr | None] = Field(
        None, description="SASL password (never logged)"
    )
    ssl_cafile: Connection[Path | None] = Field(None, description="CA bundle to verify the brokers")
    ssl_certfile: Connection[Path | None] = Field(
        None, description="client certificate (mutual TLS)"
    )
    ssl_keyfile: Connection[Path | None] = Field(
        None, description="client private key (mutual TLS)"
    )
    ssl_password: Connection[SecretStr | None] = Field(
        None, description="password of the private key"
    )
    ssl_check_hostname: Connection[bool] = Field(True, description="verify the brokers' host names")

    # --- Topics -----------------------------------------------------------------------
    topic_clickstream: Topics[str] = Field("beckon.clickstream", description="clickstream topic")
    topic_invitations: Topics[str] = Field("beckon.invitations", description="invitations topic")
    topic_decisions: Topics[str] = Field("beckon.decisions", description="decisions topic")
    topic_rules: Topics[str] = Field("beckon.rules", description="rules topic (compacted)")
    topic_rules_history: Topics[str] = Field(
        "beckon.rules.history", description="every published rules version (kept forever)"
    )
    topic_dlq: Topics[str] = Field("beckon.clickstream.dlq", description="dead-letter topic")
    topic_dwell_updates: Topics[str] = Field(
        "beckon.dwell.updates", description="per-batch page activity, keyed by page (internal)"
    )
    topic_dwell: Topics[str] = Field(
        "beckon.dwell", description="dwell aggregates per page and window (compacted)"
    )
    topic_capacity: Topics[str] = Field(
        "beckon.capacity", description="chat queues' capacity, keyed by queue (compacted)"
    )
    topic_budget: Topics[str] = Field(
        "beckon.budget",
        description="invitations of queues with a budget, and the partitions' clocks (internal)",
    )
    partitions: Topics[int] = Field(8, ge=1, le=10_000, description="partitions of new topics")
    replication_factor: Topics[int] = Field(1, ge=1, le=32, description="replication of new topics")

    # --- The engine (when rules fire) ----------------------------------------------------
    session_timeout_s: Engine[float] = Field(
        1800, gt=0, description="new session after this long without events (no session_id)"
    )
    presence_timeout_s: Engine[float] = Field(
        30, gt=0, description="present while the latest event is this recent"
    )
    min_gap_s: Engine[float] = Field(
        60, ge=0, description="minimum time between invitations to a visitor"
    )
    invitation_ttl_s: Engine[float] = Field(
        60, gt=0, description="expires_at = triggered_at + this"
    )
    dwell_window_s: Engine[int] = Field(
        60, ge=1, le=86_400, description="dwell aggregate window length"
    )
    journey_ttl_days: Engine[float] = Field(
        30.0,
        gt=0,
        description="a visitor gone this long starts anew and its journey is "
        "deleted (longer when a rule's after_decline_days is)",
    )
    capacity_delay_s: Engine[float] = Field(
        5.0,
        ge=0,
        description="a decision at t sees the latest capacity measured at or before t - this",
    )
    capacity_max_age_s: Engine[float] = Field(
        120.0, gt=0, description="capacity older than this at the decision is unknown"
    )
    capacity_unknown: Engine[Literal["allow", "deny"]] = Field(
        "allow", description="unknown capacity: allow (a capacity rule may invite) or deny"
    )

    # --- The worker (beckon worker) -------------------------------------------------------
    app_id: Worker[str] = Field(
        "beckon", description="Faust app id: the consumer group and table prefix"
    )
    data_dir: Worker[Path | None] = Field(None, description="worker state (RocksDB) [HOME/worker]")
    web_host: Worker[str] = Field("localhost", description="worker web listen address (metrics)")
    web_port: Worker[int] = Field(6066, ge=1, le=65535, description="worker web port (metrics)")
    grace_s: Worker[float] = Field(
        2.0, ge=0, description="fire an instant once the clock passes it + this"
    )
    clock_live_window_s: Worker[float] = Field(
        60.0,
        ge=0,
        description="events this close to the wall clock are live: time runs on "
        "between them (docs/event-time.md)",
    )
    clock_idle_s: Worker[float] = Field(
        5.0,
        ge=0,
        description="a replay's clock runs on once its partition was caught up and idle this long",
    )
    clock_ahead_s: Worker[float] = Field(
        300.0,
        gt=0,
        description="events further ahead of their partition's clock are "
        "counted as clock_ahead (they never move it)",
    )
    budget_slack_s: Worker[float] = Field(
        2.0,
        ge=0,
        description="a budget round is decided once every partition's clock passed its end "
        "by the grace and this (docs/contract.md, Budgets)",
    )
    budget_watermark_s: Worker[float] = Field(
        0.5, gt=0, description="how often the partitions' clocks are published to the budgets"
    )
    processing_guarantee: Worker[Literal["at_least_once", "exactly_once"]] = Field(
        "at_least_once", description="at_least_once, or exactly_once (see docs/worker.md)"
    )
    broker_session_timeout_s: Worker[float] = Field(
        30.0, gt=0, description="a worker silent this long leaves the group (crash takeover)"
    )
    standby_replicas: Worker[int] = Field(
        1, ge=0, description="warm copies of each table partition on other workers (docs/worker.md)"
    )
    worker_allocator: Worker[Literal["jemalloc", "system"]] = Field(
        "jemalloc",
        description="the worker's malloc: jemalloc, where installed, keeps RocksDB's memory flat "
        "(docs/worker.md)",
    )
    batch_max: Worker[int] = Field(5000, ge=1, description="records handled per batch at most")
    batch_within_s: Worker[float] = Field(
        0.05, gt=0, description="longest wait to fill a batch (exactly_once's Faust agents)"
    )
    max_event_bytes: Worker[int] = Field(65536, ge=256, description="larger messages go to the DLQ")
    table_write_buffer_mb: Worker[int] = Field(
        8, ge=1, le=1024, description="RocksDB memtable size of each table partition"
    )
    table_memory_mb: Worker[int] = Field(
        64,
        ge=8,
        le=65536,
        description="RocksDB memory of all the worker's table partitions together: one "
        "block cache, to which their memtables are charged (up to half)",
    )
    dwell_flush_s: Worker[float] = Field(
        1.0, gt=0, le=60, description="publish the page activity gathered this often"
    )
    dwell_retention_s: Worker[int] = Field(
        86_400, ge=60, description="dwell aggregates are kept this long after their window"
    )

    # --- The collector (beckon collector) -------------------------------------------------
    collector_host: Collector[str] = Field("localhost", description="collector listen address")
    collector_port: Collector[int] = Field(8080, ge=1, le=65535, description="collector HTTP port")
    collector_sites: Collector[Path | None] = Field(
        None, description="sites file: origins, keys, rate limits [none: accept every site]"
    )
    collector_max_body_bytes: Collector[int] = Field(
        1_048_576, ge=1024, description="larger request bodies are refused (413)"
    )
    collector_clock_skew_s: Collector[float] = Field(
        300, gt=0, description="client clocks further off than this are corrected"
    )
    collector_country_header: Collector[str] = Field(
        "", description="trusted header with the visitor's country code [none]"
    )
    collector_ack_timeout_s: Collector[float] = Field(
        10, gt=0, description="answer 503 when Kafka has not acknowledged within this"
    )

    # --- The delivery service and demo shop (beckon delivery) -----------------------------
    delivery_host: Delivery[str] = Field("localhost", description="delivery service listen address")
    delivery_port: Delivery[int] = Field(
        8000, ge=1, le=65535, description="delivery service HTTP port"
    )
    delivery_group: Delivery[str] = Field(
        "beckon-delivery",
        description="consumer group of the delivery service (its own for each instance)",
    )
    delivery_keepalive_s: Delivery[float] = Field(
        15, gt=0, le=3600, description="an SSE keep-alive comment after this long without data"
    )
    delivery_collector_url: Delivery[str | None] = Field(
        None,
        description="collector the demo pages post to [http://COLLECTOR_HOST:COLLECTOR_PORT]",
    )
    delivery_site_id: Delivery[str] = Field(
        "demo-shop", description="site_id of the demo shop's events"
    )
    delivery_simulate_agents: Delivery[str] = Field(
        "",
        description="simulated agents online per queue, e.g. sales=2,support=1, "
        "published as capacity with the connected agent consoles [none]",
    )
    delivery_agent_slots: Delivery[int] = Field(
        1, ge=1, le=100, description="chats one agent takes at once (its free slots)"
    )
    delivery_capacity_every_s: Delivery[float] = Field(
        5.0, gt=0, le=60, description="publish the queues' capacity this often"
    )

    # --- The dashboard (beckon dashboard) --------------------------------------------------
    dashboard_host: Dashboard[str] = Field("localhost", description="dashboard listen address")
    dashboard_port: Dashboard[int] = Field(8090, ge=1, le=65535, description="dashboard HTTP port")
    dashboard_lookback_s: Dashboard[float] = Field(
        3600, gt=0, description="the funnel and tables cover this much recent history"
    )

    # --- The rules console (beckon console, beckon up) ---------------------------------
    console_token: Console[SecretStr | None] = Field(
        None, description="sign-in token of an editor (never logged) [generated and printed]"
    )
    console_users: Console[Path | None] = Field(
        None, description="users file: name:role:hash lines (beckon console-user)"
    )
    console_session_hours: Console[float] = Field(
        12, gt=0, le=24 * 30, description="a signed-in session lasts this long"
    )
    console_secure_cookie: Console[bool] = Field(
        False, description="mark the session cookie Secure (the console is behind HTTPS)"
    )
    console_funnel_hours: Console[float] = Field(
        24, gt=0, le=24 * 31, description="the rules list's funnel covers this much history"
    )
    console_preview_max_events: Console[int] = Field(
        2_000_000, ge=1, description="a preview reads at most this many recorded events"
    )
    console_preview_max_capacity: Console[int] = Field(
        200_000,
        ge=1,
        description="a preview reads at most this many capacity records, the newest (~1 KB each)",
    )

    # --- Local broker (beckon broker ...) ---------------------------------------------
    kafka_version: Broker[str] = Field(KAFKA_VERSION, description="Apache Kafka release to run")
    home: Broker[Path] = Field(
        default_factory=_default_home,
        description="cache: Kafka's jars, broker data, worker state [~/.cache/beckon]",
    )
    broker_dir: Broker[Path | None] = Field(None, description="broker data and logs [HOME/broker]")
    broker_port: Broker[int] = Field(9092, ge=1, le=65535, description="local broker's client port")
    controller_port: Broker[int] = Field(9093, ge=1, le=65535, description="local controller port")
    broker_heap: Broker[str] = Field("1g", description="JVM heap of the local broker (-Xmx)")
    broker_start_timeout: Broker[float] = Field(90.0, gt=0, description="seconds to wait for start")

    @field_validator("console_token", "console_users", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # `BECKON_CONSOLE_TOKEN=` (as compose passes an unset variable) means none.
        return None if value == "" else value

    @field_validator("delivery_simulate_agents")
    @classmethod
    def _simulated_agents_parse(cls, value: str) -> str:
        parse_agents(value)
        return value

    @field_validator("bootstrap")
    @classmethod
    def _bootstrap_has_ports(cls, value: str) -> str:
        hosts = [h.strip() for h in value.split(",") if h.strip()]
        if not hosts or any(":" not in h for h in hosts):
            raise ValueError(f"must be host:port[,host:port...], got {value!r}")
        return ",".join(hosts)

    @model_validator(mode="after")
    def _sasl_is_complete(self) -> Settings:
        incomplete = not (self.sasl_mechanism and self.sasl_username and self.sasl_password)
        if self.security_protocol.startswith("SASL_") and incomplete:
            raise ValueError(
                f"security_protocol {self.security_protocol} needs BECKON_SASL_MECHANISM, "
                "BECKON_SASL_USERNAME and BECKON_SASL_PASSWORD"
            )
        if self.broker_port == self.controller_port:
            raise ValueError("broker_port and controller_port must differ")
        if self.capacity_max_age_s < self.capacity_delay_s:
            raise ValueError(
                f"capacity_max_age_s ({self.capacity_max_age_s}) must be at least "
                f"capacity_delay_s ({self.capacity_delay_s}): every capacity would be unknown"
            )
        return self

    @property
    def simulated_agents(self) -> dict[str, int]:
        """``delivery_simulate_agents`` as queue -> agents."""
        return parse_agents(self.delivery_simulate_agents)

    @property
    def broker_path(self) -> Path:
        return self.broker_dir or self.home / "broker"

    @property
    def data_path(self) -> Path:
        return self.data_dir or self.home / "worker"

    # --- Client configuration -----------------------------------------------------------
    def _security(self) -> dict[str, Any]:
        conf: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.security_protocol.startswith("SASL_"):
            assert self.sasl_password is not None  # checked by _sasl_is_complete
            conf.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password.get_secret_value(),
            )
        if self.security_protocol in ("SSL", "SASL_SSL"):
            conf.update(
                ssl_cafile=str(self.ssl_cafile) if self.ssl_cafile else None,
                ssl_certfile=str(self.ssl_certfile) if self.ssl_certfile else None,
                ssl_keyfile=str(self.ssl_keyfile) if self.ssl_keyfile else None,
                ssl_password=(self.ssl_password.get_secret_value() if self.ssl_password else None),
                ssl_check_hostname=self.ssl_check_hostname,
            )
        return conf

    def kafka_python_config(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python clients (producer, consumer, admin)."""
        return {"bootstrap_servers": self.bootstrap.split(","), **self._security()}

    def limits(self) -> Limits:
        """The engine's limits, in milliseconds: the core never sees this object."""
        return Limits(
            session_gap_ms=round(self.session_timeout_s * 1000),
            presence_ms=round(self.presence_timeout_s * 1000),
            min_gap_ms=round(self.min_gap_s * 1000),
            ttl_ms=round(self.invitation_ttl_s * 1000),
            window_ms=self.dwell_window_s * 1000,
            journey_ttl_ms=round(self.journey_ttl_days * 86_400_000),
            capacity_delay_ms=round(self.capacity_delay_s * 1000),
            capacity_max_age_ms=round(self.capacity_max_age_s * 1000),
            capacity_unknown_allows=self.capacity_unknown == "allow",
        )

    def rocksdb_options(self) -> dict[str, int]:
        """Options of each table partition's RocksDB. Its memory comes from the worker's
        one budget (``table_memory_mb``, ``faust_adapter.share_table_memory``): Faust's
        defaults (64 MB memtables, up to 3 of them, and a 2 GB block cache, per
        partition) grow a worker by gigabytes, and even bounded per partition it grew
        with every partition and table opened."""
        return {
            "write_buffer_size": self.table_write_buffer_mb * 1024 * 1024,
            "max_write_buffer_number": 2,
        }

    @property
    def table_memory_bytes(self) -> int:
        return self.table_memory_mb * 1024 * 1024

    def aiokafka_config(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka clients (what faust-streaming runs on)."""
        conf = {"bootstrap_servers": self.bootstrap, **self._security()}
        if self.security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            conf = {k: v for k, v in conf.items() if not k.startswith("ssl_")}
            conf["ssl_context"] = create_ssl_context(
                cafile=str(self.ssl_cafile) if self.ssl_cafile else None,
                certfile=str(self.ssl_certfile) if self.ssl_certfile else None,
                keyfile=str(self.ssl_keyfile) if self.ssl_keyfile else None,
                password=self.ssl_password.get_secret_value() if self.ssl_password else None,
            )
        return conf


_AGENTS_ENTRY: Final = re.compile(r"^\s*([^=,\s][^=,]{0,199}?)\s*=\s*(\d{1,6})\s*$")


def parse_agents(text: str) -> dict[str, int]:
    """``"sales=2,support=0"`` -> ``{"sales": 2, "support": 0}``; "" -> {}.

    Raises ValueError saying what is accepted."""
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = _AGENTS_ENTRY.match(part)
        if match is None:
            raise ValueError(
                f"must be queue=N pairs separated by commas, e.g. 'sales=2,support=1', got {part!r}"
            )
        out[match.group(1)] = int(match.group(2))
    return out


def group_of(name: str) -> Group:
    """The group of a Settings field. Exactly one: a field in none would be a flag of no
    command, so this raises, and every command's parser with it."""
    groups = [m for m in Settings.model_fields[name].metadata if isinstance(m, Group)]
    if len(groups) != 1:
        raise TypeError(f"Settings.{name} needs one group (e.g. Worker[int]), has {len(groups)}")
    return groups[0]


def load_settings(**overrides: Any) -> Settings:
    """Build Settings from the environment plus explicit overrides (e.g. CLI flags).

    Raises ConfigError naming the BECKON_ variable at fault.
    """
    from pydantic import ValidationError

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        faults = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"])
            where = f"BECKON_{name.upper()} (--{name.replace('_', '-')})" if name else "settings"
            faults.append(f"{where}: {err['msg']}")
        raise ConfigError("; ".join(faults)) from exc
