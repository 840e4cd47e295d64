"""Helpers every tier shares (plain functions; the fixtures are in the conftest files)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A local TCP port free right now, for a server a test starts."""
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return int(sock.getsockname()[1])
