"""The worker starts itself again with jemalloc preloaded (streams.worker.allocator)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from streams.worker.allocator import find_jemalloc, preload_environment, reexec

PRINT_ALLOCATOR = "from streams.worker.allocator import reexec; print(reexec('jemalloc'))"


def test_the_library_is_added_in_front_of_what_is_preloaded_already() -> None:
    lib = "/usr/lib/libjemalloc.so.2"
    assert preload_environment({"A": "1"}, lib) == {"A": "1", "LD_PRELOAD": lib}
    assert preload_environment({"LD_PRELOAD": "/x.so"}, lib) == {"LD_PRELOAD": f"{lib} /x.so"}


def test_a_process_with_the_library_preloaded_is_not_started_again() -> None:
    lib = "/usr/lib/libjemalloc.so.2"
    assert preload_environment({"LD_PRELOAD": lib}, lib) is None
    assert preload_environment({"LD_PRELOAD": f"/x.so:{lib}"}, lib) is None


def test_the_first_installed_library_is_found(tmp_path: Path) -> None:
    present = tmp_path / "libjemalloc.so.2"
    present.write_bytes(b"")
    assert find_jemalloc([str(tmp_path / "missing.so"), str(present)]) == str(present)
    assert find_jemalloc([str(tmp_path / "missing.so")]) is None


def test_the_system_allocator_is_kept_when_asked_for() -> None:
    assert reexec("system") == "the system's malloc"


def test_a_process_starts_again_on_jemalloc_and_runs_on_it() -> None:
    # deploy/setup.sh installs libjemalloc2; the worker's memory figures depend on it
    assert find_jemalloc() is not None, "libjemalloc.so.2 is not installed"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[3])}
    done = subprocess.run([sys.executable, "-c", PRINT_ALLOCATOR], env=env,
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    assert done.stdout.startswith("jemalloc ("), done.stdout + done.stderr
