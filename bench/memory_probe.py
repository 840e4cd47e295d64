"""A worker that says where its memory is: ``python -m bench.memory_probe OUT beckon-args…``.

Runs ``beckon`` (``streams.cli``) with the given arguments, and a thread that appends one
JSON line to ``OUT`` every ``PROBE_EVERY_S`` (20 s): VmRSS; Python's allocated blocks;
glibc's ``mallinfo2`` (its heaps, and how much of them is free but kept), unless another
allocator is preloaded; the RocksDB budget's usage (``faust_adapter``); every third line,
the ten commonest object types. ``bench.live`` runs its workers so when
``BENCH_MEMORY_PROBE`` names a folder.
docs/worker.md, "Memory", has what it found.
"""

from __future__ import annotations

import collections
import ctypes
import gc
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

PROBE_EVERY_S = 20.0


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks",
                "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]  # fmt: skip


def _rss_mb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return -1


def _glibc() -> dict[str, int] | None:
    if "jemalloc" in os.environ.get("LD_PRELOAD", ""):
        return None  # mallinfo2 would describe an allocator not in use
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    return {"heap_mb": info.arena >> 20, "used_mb": info.uordblks >> 20,
            "free_mb": info.fordblks >> 20}  # fmt: skip


def probe(path: Path, stop: threading.Event | None = None) -> None:
    """Log to ``path`` every ``PROBE_EVERY_S`` until ``stop`` is set."""
    stop = stop or threading.Event()
    start, n = time.monotonic(), 0
    while not stop.wait(PROBE_EVERY_S):
        n += 1
        record: dict[str, Any] = {
            "s": round(time.monotonic() - start),
            "rss_mb": _rss_mb(),
            "python_blocks": sys.getallocatedblocks(),
            "glibc": _glibc(),
        }
        from streams.worker.faust_adapter import _BUDGETS

        record["rocksdb_mb"] = [int(cache.get_usage()) >> 20 for cache, _ in _BUDGETS.values()]
        if n % 3 == 0:
            kinds = collections.Counter(type(o).__name__ for o in gc.get_objects())
            record["types"] = kinds.most_common(10)
        with path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")


def main() -> None:
    thread = threading.Thread(target=probe, args=(Path(sys.argv[1]),), daemon=True)
    thread.start()
    from streams.cli import main as beckon

    sys.exit(beckon(sys.argv[2:]))


if __name__ == "__main__":
    main()
