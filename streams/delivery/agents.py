"""The delivery service's agents: who can answer in each queue, as capacity records.

Pure: no I/O and no clock; ``server.py`` connects agent consoles, sets simulated agents
and publishes :meth:`Agents.records` to ``beckon.capacity`` every few seconds.

An agent is a connected agent console (``GET /v1/agents/stream?queue=…``: online while
the stream is open) or a simulated one (``BECKON_DELIVERY_SIMULATE_AGENTS``, or
``PUT /v1/agents/simulated``). Each agent takes ``slots`` chats at once. The reference
service holds no chats itself, so every slot of an agent online is free, and the expected
wait is 0 with a free slot, unknown (null) without one.

A queue, once it had an agent, stays known and keeps being published with 0 agents when
they are all gone: a rule then sees "no one can answer" rather than capacity going stale.
"""

from __future__ import annotations

from typing import Any


class Agents:
    """Agents online per queue: connected consoles plus simulated ones."""

    def __init__(self, slots: int = 1, simulated: dict[str, int] | None = None) -> None:
        self.slots = slots
        self._connected: dict[str, int] = {}
        self._simulated: dict[str, int] = dict(simulated or {})
        self._known: dict[str, None] = dict.fromkeys(self._simulated)

    def connect(self, queue: str) -> None:
        """An agent console for ``queue`` opened."""
        self._connected[queue] = self._connected.get(queue, 0) + 1
        self._known[queue] = None

    def disconnect(self, queue: str) -> None:
        """An agent console for ``queue`` closed."""
        left = self._connected.get(queue, 0) - 1
        if left > 0:
            self._connected[queue] = left
        else:
            self._connected.pop(queue, None)

    def simulate(self, queue: str, agents: int) -> None:
        """Set the simulated agents of ``queue`` (0: none; the queue stays known)."""
        if agents < 0:
            raise ValueError(f"agents must be at least 0, got {agents}")
        self._simulated[queue] = agents
        self._known[queue] = None

    def online(self, queue: str) -> int:
        return self._connected.get(queue, 0) + self._simulated.get(queue, 0)

    def records(self, at_ms: int) -> list[dict[str, Any]]:
        """One capacity record per known queue, measured at ``at_ms`` (sorted by queue)."""
        out = []
        for queue in sorted(self._known):
            agents = self.online(queue)
            free = agents * self.slots
            out.append({
                "queue": queue, "agents_online": agents, "free_slots": free,
                "expected_wait_s": 0.0 if free else None, "measured_at": at_ms,
            })  # fmt: skip
        return out

    def __repr__(self) -> str:
        return f"Agents({ {q: self.online(q) for q in sorted(self._known)}!r})"
