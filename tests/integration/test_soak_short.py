"""The short chaos soak (``python -m bench.soak --short``): three workers on a private
broker, a SIGKILL during a backlog and the restart, records published twice, poison
messages and a group of visitors 3 h fast give exactly the backtest's invitations and
decisions (copies allowed: at least once). About 3 minutes; docs/reliability.md. Again
with budgets on two queues (``--budgets``), without the fast visitors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("budgets", [False, True], ids=["rules", "with-budgets"])
def test_short_soak_gives_the_backtests_invitations_and_decisions(
    budgets: bool, tmp_path: Path
) -> None:
    # A process of its own: the soak sets the workers' environment (BECKON_CLOCK_IDLE_S,
    # BECKON_BROKER_SESSION_TIMEOUT_S) in its own, and starts and stops its own broker.
    flags = ["--budgets"] if budgets else []
    done = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--seed", "1", "--short", *flags,
         "--keep", str(tmp_path)],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    out = done.stdout + done.stderr[-3000:]
    assert "invitations: 0 missing, 0 extra, 0 differing" in done.stdout, out
    assert "decisions:   0 missing, 0 extra, 0 differing" in done.stdout, out
    assert "acknowledged and lost: 0" in done.stdout, out
    assert done.returncode == 0, out
    if budgets:  # the budgets bound: many invitations were held back, live as in the backtest
        held = re.search(r"decisions, ([\d,]+) of them suppressed budget", done.stdout)
        assert held is not None and int(held[1].replace(",", "")) >= 20, out
