"""Beckon's configuration: one pydantic-settings class, read from the environment once.

Every field is a ``BECKON_<NAME>`` environment variable and a ``--name`` flag of the
``beckon`` command (see ``streams.cli``). Entry points build a :class:`Settings` and pass
it down as a value; library code never reads the environment itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

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


def _default_home() -> Path:
    return Path.home() / ".cache" / "beckon"


class Settings(BaseSettings):
    """All of Beckon's settings. Secrets are ``SecretStr`` and never printed."""

    model_config = SettingsConfigDict(
        env_prefix="BECKON_", extra="ignore", frozen=True, validate_default=True
    )

    # --- Kafka connection -------------------------------------------------------------
    bootstrap: str = Field("localhost:9092", description="Kafka bootstrap servers, host:port,...")
    security_protocol: SecurityProtocol = Field("PLAINTEXT", description="Kafka security protocol")
    sasl_mechanism: SaslMechanism | None = Field(None, description="SASL mechanism")
    sasl_username: str | None = Field(None, description="SASL user name")
    sasl_password: SecretStr | None = Field(None, description="SASL password (never logged)")
    ssl_cafile: Path | None = Field(None, description="CA bundle to verify the brokers")
    ssl_certfile: Path | None = Field(None, description="client certificate (mutual TLS)")
    ssl_keyfile: Path | None = Field(None, description="client private key (mutual TLS)")
    ssl_password: SecretStr | None = Field(None, description="password of the private key")
    ssl_check_hostname: bool = Field(True, description="verify the brokers' host names")

    # --- Topics -----------------------------------------------------------------------
    topic_clickstream: str = Field("beckon.clickstream", description="clickstream topic")
    topic_invitations: str = Field("beckon.invitations", description="invitations topic")
    topic_decisions: str = Field("beckon.decisions", description="decisions topic")
    topic_rules: str = Field("beckon.rules", description="rules topic (compacted)")
    topic_dlq: str = Field("beckon.clickstream.dlq", description="dead-letter topic")
    topic_dwell_updates: str = Field(
        "beckon.dwell.updates", description="per-batch page activity, keyed by page (internal)"
    )
    topic_dwell: str = Field(
        "beckon.dwell", description="dwell aggregates per page and window (compacted)"
    )
    partitions: int = Field(8, ge=1, le=10_000, description="partitions of new topics")
    replication_factor: int = Field(1, ge=1, le=32, description="replication of new topics")

    # --- The engine (when rules fire) ----------------------------------------------------
    session_timeout_s: float = Field(
        1800, gt=0, description="new session after this long without events (no session_id)"
    )
    presence_timeout_s: float = Field(
        30, gt=0, description="present while the latest event is this recent"
    )
    min_gap_s: float = Field(60, ge=0, description="minimum time between invitations to a visitor")
    invitation_ttl_s: float = Field(60, gt=0, description="expires_at = triggered_at + this")

    # --- The worker (beckon worker) -------------------------------------------------------
    app_id: str = Field("beckon", description="Faust app id: the consumer group and table prefix")
    data_dir: Path | None = Field(None, description="worker state (RocksDB) [HOME/worker]")
    web_host: str = Field("localhost", description="worker web listen address (metrics)")
    web_port: int = Field(6066, ge=1, le=65535, description="worker web port (metrics)")
    grace_s: float = Field(2.0, ge=0, description="fire an instant once the clock passes it + this")
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        "at_least_once", description="at_least_once, or exactly_once (see docs/worker.md)"
    )
    broker_session_timeout_s: float = Field(
        30.0, gt=0, description="a worker silent this long leaves the group (crash takeover)"
    )
    batch_max: int = Field(5000, ge=1, description="records handled per batch at most")
    batch_within_s: float = Field(
        0.05, gt=0, description="longest wait to fill a batch (exactly_once's Faust agents)"
    )
    max_event_bytes: int = Field(65536, ge=256, description="larger messages go to the DLQ")
    table_write_buffer_mb: int = Field(
        8, ge=1, le=1024, description="RocksDB memtable size of each table partition"
    )
    table_block_cache_mb: int = Field(
        16, ge=1, le=8192, description="RocksDB block cache of each table partition"
    )
    dwell_window_s: int = Field(60, ge=1, le=86_400, description="dwell aggregate window length")
    dwell_flush_s: float = Field(
        1.0, gt=0, le=60, description="publish the page activity gathered this often"
    )
    dwell_retention_s: int = Field(
        86_400, ge=60, description="dwell aggregates are kept this long after their window"
    )

    # --- The collector (beckon collector) -------------------------------------------------
    collector_host: str = Field("localhost", description="collector listen address")
    collector_port: int = Field(8080, ge=1, le=65535, description="collector HTTP port")
    collector_sites: Path | None = Field(
        None, description="sites file: origins, keys, rate limits [none: accept every site]"
    )
    collector_max_body_bytes: int = Field(
        1_048_576, ge=1024, description="larger request bodies are refused (413)"
    )
    collector_clock_skew_s: float = Field(
        300, gt=0, description="client clocks further off than this are corrected"
    )
    collector_country_header: str = Field(
        "", description="trusted header with the visitor's country code [none]"
    )
    collector_ack_timeout_s: float = Field(
        10, gt=0, description="answer 503 when Kafka has not acknowledged within this"
    )

    # --- The delivery service and demo shop (beckon delivery) -----------------------------
    delivery_host: str = Field("localhost", description="delivery service listen address")
    delivery_port: int = Field(8000, ge=1, le=65535, description="delivery service HTTP port")
    delivery_group: str = Field(
        "beckon-delivery",
        description="consumer group of the delivery service (its own for each instance)",
    )
    delivery_keepalive_s: float = Field(
        15, gt=0, le=3600, description="an SSE keep-alive comment after this long without data"
    )
    delivery_collector_url: str | None = Field(
        None,
        description="collector the demo pages post to [http://COLLECTOR_HOST:COLLECTOR_PORT]",
    )
    delivery_site_id: str = Field("demo-shop", description="site_id of the demo shop's events")

    # --- The dashboard (beckon dashboard) --------------------------------------------------
    dashboard_host: str = Field("localhost", description="dashboard listen address")
    dashboard_port: int = Field(8090, ge=1, le=65535, description="dashboard HTTP port")
    dashboard_lookback_s: float = Field(
        3600, gt=0, description="the funnel and tables cover this much recent history"
    )

    # --- Local broker (beckon broker ...) ---------------------------------------------
    kafka_version: str = Field(KAFKA_VERSION, description="Apache Kafka release to run")
    home: Path = Field(default_factory=_default_home, description="cache: jars, broker data")
    broker_dir: Path | None = Field(None, description="broker data and logs [HOME/broker]")
    broker_port: int = Field(9092, ge=1, le=65535, description="local broker's client port")
    controller_port: int = Field(9093, ge=1, le=65535, description="local controller port")
    broker_heap: str = Field("1g", description="JVM heap of the local broker (-Xmx)")
    broker_start_timeout: float = Field(90.0, gt=0, description="seconds to wait for start")

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
        return self

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
        )

    def rocksdb_options(self) -> dict[str, int]:
        """Options of each table partition's RocksDB: Faust's defaults (64 MB memtables,
        up to 3 of them, and a 2 GB block cache, per partition) grow a worker by
        gigabytes; these bound a table partition to about 2 memtables and its cache."""
        mb = 1024 * 1024
        return {
            "write_buffer_size": self.table_write_buffer_mb * mb,
            "max_write_buffer_number": 2,
            "block_cache_size": self.table_block_cache_mb * mb,
            "block_cache_compressed_size": self.table_block_cache_mb * mb // 4,
        }

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
