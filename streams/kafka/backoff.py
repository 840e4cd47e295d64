"""Back off between failed metadata updates in aiokafka, as Kafka's Java client does.

aiokafka (0.14) retries a failed metadata update as soon as anything asks for one, and
while the broker is away its producer, fetcher and coordinator ask in a loop: each
connection refused comes back in a millisecond, so a worker logged over a thousand
"Unable to update metadata" lines a second and took half a core. In the chaos soak, three
such workers on the broker's two cores kept the restarting broker from starting within
90 s (aiokafka issue 1155 reports the same kind of loop for another error).

``install()`` makes every client in the process wait after a failed update, starting at
its ``retry_backoff_ms`` and doubling up to ``MAX_BACKOFF_S`` (Java's
``reconnect.backoff.max.ms`` is 1 s), and reset by the first update that succeeds.
Everything that waits for metadata waits with it, so the loops slow down to a few tries
a second; a broker that comes back is seen within ``MAX_BACKOFF_S``.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

MAX_BACKOFF_S: Final = 1.0
_PATCHED: Final = "_beckon_backoff"


def install() -> None:
    """Patch ``AIOKafkaClient._metadata_update`` once per process (idempotent)."""
    from aiokafka.client import AIOKafkaClient

    update = AIOKafkaClient._metadata_update
    if getattr(update, _PATCHED, False):
        return

    async def _metadata_update(self: Any, cluster_metadata: Any, topics: Any) -> bool:
        ok: bool = await update(self, cluster_metadata, topics)
        if ok:
            self._beckon_failures = 0
            return True
        failures = getattr(self, "_beckon_failures", 0)
        self._beckon_failures = failures + 1
        await asyncio.sleep(backoff_s(self._retry_backoff, failures))
        return False

    setattr(_metadata_update, _PATCHED, True)
    AIOKafkaClient._metadata_update = _metadata_update


def backoff_s(base_s: float, failures: int) -> float:
    """The wait after the ``failures + 1``-th failed update in a row."""
    return float(min(MAX_BACKOFF_S, base_s * 2 ** min(failures, 16)))


__all__ = ["MAX_BACKOFF_S", "backoff_s", "install"]
