"""The delivery service's agents as capacity records: consoles and simulated agents."""

from __future__ import annotations

import pytest

from schemas.capacity import validate_capacity
from schemas.errors import ConfigError
from streams.delivery.agents import Agents
from streams.settings import load_settings, parse_agents

AT = 1_796_119_200_000


def test_simulated_agents_and_consoles_add_up_per_queue() -> None:
    agents = Agents(slots=2, simulated={"sales": 1})
    agents.connect("sales")
    agents.connect("support")
    records = agents.records(AT)
    assert records == [
        {"queue": "sales", "agents_online": 2, "free_slots": 4, "expected_wait_s": 0.0,
         "measured_at": AT},
        {"queue": "support", "agents_online": 1, "free_slots": 2, "expected_wait_s": 0.0,
         "measured_at": AT},
    ]  # fmt: skip
    assert all(validate_capacity(r).measured_at == AT for r in records)


def test_a_queue_whose_agents_all_left_is_published_with_none() -> None:
    agents = Agents()
    agents.connect("sales")
    agents.connect("sales")
    agents.disconnect("sales")
    assert agents.online("sales") == 1
    agents.disconnect("sales")
    agents.disconnect("sales")  # more closes than opens never goes below 0
    assert agents.records(AT) == [{"queue": "sales", "agents_online": 0, "free_slots": 0,
                                   "expected_wait_s": None, "measured_at": AT}]  # fmt: skip
    agents.simulate("sales", 3)
    assert agents.records(AT)[0]["free_slots"] == 3
    with pytest.raises(ValueError, match="at least 0"):
        agents.simulate("sales", -1)


def test_the_setting_reads_queue_n_pairs_and_names_itself_when_wrong() -> None:
    assert parse_agents("") == {}
    assert parse_agents("sales=2, product experts = 0,") == {"sales": 2, "product experts": 0}
    assert load_settings(delivery_simulate_agents="sales=2").simulated_agents == {"sales": 2}
    with pytest.raises(ConfigError, match=r"BECKON_DELIVERY_SIMULATE_AGENTS.*'sales=two'"):
        load_settings(delivery_simulate_agents="sales=two")
