"""Faust's internals stay in ``streams.worker.faust_adapter``, and aiokafka's in
``streams.kafka.backoff``: no other module of the package reaches into another object's
private attributes or imports a private name.

import-linter (``make lint``) checks that only ``streams.worker`` imports faust at all;
this test checks the finer rule it cannot see, by reading the code."""

from __future__ import annotations

import ast
from pathlib import Path

import streams
from streams.kafka import backoff
from streams.worker import faust_adapter

PACKAGE = Path(streams.__file__).resolve().parent
ADAPTERS = {Path(faust_adapter.__file__).resolve(), Path(backoff.__file__).resolve()}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


# argparse types its sub-command parsers only as ``argparse._SubParsersAction``; ``os._exit``
# is public API spelled with an underscore (a forked child ends with it).
ALLOWED_OWNERS = {"self", "cls", "argparse", "os"}


def _own(node: ast.expr) -> bool:
    """``self._x``, ``cls._x`` and ``super()._x`` are a class's own business."""
    if isinstance(node, ast.Name):
        return node.id in ALLOWED_OWNERS
    return (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and (node.func.id == "super")
    )


OURS = {"streams", "schemas"}


def reaches_into(source: str) -> list[str]:
    """Where ``source`` reads another object's private attribute or imports a private name."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and _private(node.attr) and not _own(node.value):
            found.append(f"line {node.lineno}: .{node.attr}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] not in OURS:
            found += [
                f"line {node.lineno}: import {a.name}" for a in node.names if _private(a.name)
            ]
    return found


def test_only_the_adapter_reaches_into_private_attributes() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): hits
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.resolve() not in ADAPTERS and (hits := reaches_into(path.read_text()))
    }
    assert offenders == {}


def test_the_check_sees_what_it_forbids() -> None:
    assert reaches_into("consumer._acked[tp].extend(offsets)") == ["line 1: ._acked"]
    assert reaches_into("from faust.streams import _current_event") == [
        "line 1: import _current_event"
    ]
    assert reaches_into("self._pending.clear()\nsuper()._wait(1)") == []
