"""The services' one wall clock, and the core that never reads it."""

from __future__ import annotations

import ast
import time
from pathlib import Path

import streams.core
from streams.clock import now_ms


def test_now_ms_is_the_wall_clock_in_epoch_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    now = now_ms()
    assert isinstance(now, int) and before <= now <= time.time_ns() // 1_000_000


def test_the_core_imports_no_clock() -> None:
    core = Path(streams.core.__file__).parent
    for module in sorted(core.glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            assert not {"time", "streams.clock"} & set(names), f"{module.name} reads the clock"
