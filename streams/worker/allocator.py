"""The worker's memory allocator: jemalloc, preloaded by starting the process again.

A worker's native memory is mostly RocksDB's, allocated and freed by its flush and
compaction threads. glibc's malloc keeps what those threads free in per-thread arenas
and hands little of it back, so a worker's resident memory crept up with the data it
held although every RocksDB cache is bounded (docs/worker.md, "Memory"). RocksDB's own
advice is jemalloc, which returns freed pages to the system
after a few seconds.

An allocator can only be chosen before the process starts, so ``beckon worker`` starts
itself again, at once, with jemalloc in ``LD_PRELOAD`` (``reexec``). That happens only
when the setting asks for it, the library is installed (Debian: ``libjemalloc2``, which
``deploy/setup.sh`` installs) and it is not preloaded yet; otherwise the worker runs on
as it is, and says so.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

# Where Debian, Ubuntu, Fedora and source builds put it.
JEMALLOC_PATHS: Final = (
    "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
    "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
    "/usr/lib64/libjemalloc.so.2",
    "/usr/lib/libjemalloc.so.2",
    "/usr/local/lib/libjemalloc.so.2",
)


def find_jemalloc(paths: Iterable[str] = JEMALLOC_PATHS) -> str | None:
    """The first of ``paths`` that exists, or None."""
    return next((p for p in paths if Path(p).is_file()), None)


def preload_environment(environ: Mapping[str, str], library: str) -> dict[str, str] | None:
    """The environment to start again with ``library`` preloaded, or None when it is
    preloaded already (so a process started again never starts again)."""
    preloaded = environ.get("LD_PRELOAD", "")
    if library in preloaded.replace(":", " ").split():
        return None
    return {**environ, "LD_PRELOAD": f"{library} {preloaded}".strip()}


def reexec(allocator: str) -> str:
    """Start this process again with jemalloc preloaded, if ``allocator`` asks for it and
    it is needed and possible; otherwise return which allocator the process runs on."""
    if allocator != "jemalloc" or not sys.platform.startswith("linux"):
        return "the system's malloc"
    library = find_jemalloc()
    if library is None:
        return "the system's malloc (libjemalloc.so.2 not found: apt-get install libjemalloc2)"
    environment = preload_environment(os.environ, library)
    if environment is None:  # preloaded: loaded too, unless the loader refused it
        loaded = library in Path("/proc/self/maps").read_text()
        return (
            f"jemalloc ({library})" if loaded else f"the system's malloc ({library} failed to load)"
        )
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], environment)
    raise AssertionError("unreachable: execve returns only by raising")
