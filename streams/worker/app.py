"""The Faust App, and nothing else: built from Settings by the worker's entry point."""

from __future__ import annotations

import faust

from streams.kafka import backoff
from streams.settings import Settings
from streams.worker.tables import partitioner


def create_app(settings: Settings) -> faust.App:
    """A Faust app on the settings' cluster, with RocksDB tables under ``data_path``."""
    backoff.install()  # its Kafka clients wait between failed metadata updates
    return faust.App(
        settings.app_id,
        broker=[f"kafka://{host}" for host in settings.bootstrap.split(",")],
        broker_credentials=_credentials(settings),
        store="rocksdb://",
        datadir=str(settings.data_path),
        processing_guarantee=settings.processing_guarantee,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        # The contract's topics are created by `beckon topics create`; Faust creates only
        # its own (the tables' changelogs).
        topic_allow_declare=True,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        consumer_auto_offset_reset="earliest",
        broker_commit_every=1000,
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.broker_session_timeout_s / 3),
        broker_commit_interval=1.0,
        # Ours is the only JSON on the hot path: values stay bytes until orjson reads them.
        key_serializer="raw",
        value_serializer="raw",
        producer_acks=-1,
        producer_partitioner=partitioner,  # Kafka's default, with the key hashes cached
        autodiscover=False,
        # One warm copy of every table partition on another worker (Faust's default) makes
        # a takeover quick, but each worker also applies the others' changelogs: ~1.7x the
        # CPU per event in a group of two or more (docs/worker.md, "Standby replicas").
        table_standby_replicas=settings.standby_replicas,
    )


def _credentials(settings: Settings) -> faust.auth.Credentials | None:
    ssl_context = settings.aiokafka_config().get("ssl_context")
    if not settings.security_protocol.startswith("SASL_"):
        return faust.SSLCredentials(ssl_context) if ssl_context is not None else None
    assert settings.sasl_password is not None  # Settings checks SASL is complete
    return faust.SASLCredentials(
        username=settings.sasl_username,
        password=settings.sasl_password.get_secret_value(),
        mechanism=settings.sasl_mechanism,
        ssl_context=ssl_context,
    )
