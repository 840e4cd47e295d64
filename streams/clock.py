"""The wall clock, for the services (never for ``streams.core``, which is given every instant).

Instants are epoch milliseconds, as on events, decisions and invitations.
"""

from __future__ import annotations

import time


def now_ms() -> int:
    """The wall clock now, in epoch milliseconds."""
    return time.time_ns() // 1_000_000
