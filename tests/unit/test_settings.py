"""Settings: read from BECKON_ variables, errors name the variable, secrets stay secret."""

from __future__ import annotations

import pytest

from schemas.errors import ConfigError
from streams.settings import Settings, load_settings


def test_defaults_follow_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(__import__("os").environ):
        if key.startswith("BECKON_"):
            monkeypatch.delenv(key)
    settings = load_settings()
    assert settings.bootstrap == "localhost:9092"
    assert settings.topic_clickstream == "beckon.clickstream"
    assert settings.topic_rules == "beckon.rules"
    assert settings.topic_dlq == "beckon.clickstream.dlq"
    assert settings.partitions == 8


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BECKON_BOOTSTRAP", "k1:9092, k2:9092")
    monkeypatch.setenv("BECKON_PARTITIONS", "12")
    settings = load_settings()
    assert settings.bootstrap == "k1:9092,k2:9092"
    assert settings.kafka_python_config()["bootstrap_servers"] == ["k1:9092", "k2:9092"]
    assert settings.partitions == 12


def test_a_bad_value_names_the_variable_and_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BECKON_PARTITIONS", "zero")
    with pytest.raises(ConfigError, match=r"BECKON_PARTITIONS \(--partitions\)"):
        load_settings()


def test_a_bootstrap_without_port_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"BECKON_BOOTSTRAP.*host:port"):
        load_settings(bootstrap="kafka.internal")


def test_sasl_needs_mechanism_user_and_password() -> None:
    with pytest.raises(ConfigError, match="BECKON_SASL_MECHANISM"):
        load_settings(security_protocol="SASL_SSL", sasl_username="beckon")


def test_sasl_settings_reach_both_clients_and_the_password_is_never_printed() -> None:
    settings = Settings(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="beckon",
        sasl_password="hunter2-secret",
    )
    assert "hunter2-secret" not in repr(settings)
    assert "hunter2-secret" not in str(settings.model_dump())
    for conf in (settings.kafka_python_config(), settings.aiokafka_config()):
        assert conf["security_protocol"] == "SASL_PLAINTEXT"
        assert conf["sasl_mechanism"] == "SCRAM-SHA-512"
        assert conf["sasl_plain_username"] == "beckon"
        assert conf["sasl_plain_password"] == "hunter2-secret"


def test_aiokafka_gets_an_ssl_context_for_tls() -> None:
    import ssl

    conf = Settings(security_protocol="SSL").aiokafka_config()
    assert isinstance(conf["ssl_context"], ssl.SSLContext)
    assert not any(key.startswith("ssl_") and key != "ssl_context" for key in conf)


def test_broker_and_controller_ports_must_differ() -> None:
    with pytest.raises(ConfigError, match="must differ"):
        load_settings(broker_port=9092, controller_port=9092)


def test_table_partitions_get_memtables_of_the_set_size_and_one_shared_budget() -> None:
    settings = Settings(table_write_buffer_mb=4, table_memory_mb=32)
    assert settings.rocksdb_options() == {
        "write_buffer_size": 4 * 1024 * 1024,
        "max_write_buffer_number": 2,
    }
    assert settings.table_memory_bytes == 32 * 1024 * 1024


def test_capacity_settings_reach_the_engine_and_a_max_age_below_the_delay_is_refused() -> None:
    limits = load_settings(capacity_delay_s=2.5, capacity_unknown="deny").limits()
    assert (limits.capacity_delay_ms, limits.capacity_max_age_ms) == (2_500, 120_000)
    assert limits.capacity_unknown_allows is False
    assert load_settings().limits().capacity_unknown_allows is True
    with pytest.raises(ConfigError, match=r"capacity_max_age_s \(3.0\) must be at least"):
        load_settings(capacity_delay_s=5, capacity_max_age_s=3)
    with pytest.raises(ConfigError, match="BECKON_CAPACITY_UNKNOWN"):
        load_settings(capacity_unknown="maybe")
