"""The Faust app the worker builds from Settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.settings import load_settings
from streams.worker.app import create_app


@pytest.mark.parametrize(("given", "expected"), [({}, 1), ({"standby_replicas": 0}, 0)])
def test_standby_replicas_come_from_the_settings_and_default_to_one(
    tmp_path: Path, given: dict[str, int], expected: int
) -> None:
    # One keeps takeovers quick; none halves a group's CPU per event (docs/worker.md,
    # "Standby replicas").
    app = create_app(load_settings(data_dir=tmp_path, **given))
    assert app.conf.table_standby_replicas == expected
