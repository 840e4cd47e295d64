"""bench.memory_probe: what a probed worker logs about its memory."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from bench import memory_probe


def test_each_line_says_where_the_memory_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memory_probe, "PROBE_EVERY_S", 0.05)
    out = tmp_path / "probe.jsonl"
    stop = threading.Event()
    thread = threading.Thread(target=memory_probe.probe, args=(out, stop), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while (
        not out.exists() or len(out.read_text().splitlines()) < 3
    ) and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) >= 3
    first, third = lines[0], lines[2]
    assert first["rss_mb"] > 0 and first["python_blocks"] > 0
    assert first["glibc"]["heap_mb"] >= first["glibc"]["free_mb"] >= 0
    assert first["rocksdb_mb"] == []  # no table opened in this process
    assert dict(third["types"])  # every third line: the commonest object types
