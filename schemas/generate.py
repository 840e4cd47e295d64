"""Writes the JSON Schema files in ``schemas/json/`` from the models (the models are the source).

    python -m schemas.generate           # (re)write every file
    python -m schemas.generate --check   # exit 1, listing the files that drift from the models

The files are what other teams and other languages validate against, so they are kept in
the repository and a unit test fails when they drift.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from pydantic import TypeAdapter

from schemas.aggregates import PAGE_DWELL
from schemas.capacity import CAPACITY
from schemas.events import CLICK_EVENT
from schemas.invitations import DECISION, INVITATION
from schemas.rules import QueueMessage, Rule, RulesFile

JSON_DIR = Path(__file__).parent / "json"
_DIALECT = "https://json-schema.org/draft/2020-12/schema"

# file name -> (title, adapter); the title is what tools show for the root type.
_SOURCES: dict[str, tuple[str, TypeAdapter[Any]]] = {
    "click_event.schema.json": ("ClickEvent", CLICK_EVENT),
    "rules_file.schema.json": ("RulesFile", TypeAdapter(RulesFile)),
    "rule.schema.json": ("Rule", TypeAdapter(Rule)),
    "invitation.schema.json": ("Invitation", INVITATION),
    "decision.schema.json": ("Decision", DECISION),
    "page_dwell.schema.json": ("PageDwell", PAGE_DWELL),
    "capacity.schema.json": ("Capacity", CAPACITY),
    "queue.schema.json": ("QueueMessage", TypeAdapter(QueueMessage)),
}


def render_all() -> dict[str, str]:
    """Every schema file's expected text, by file name."""
    out = {}
    for name, (title, adapter) in _SOURCES.items():
        schema = {"$schema": _DIALECT, "$id": name, **adapter.json_schema(), "title": title}
        # orjson keeps non-ASCII as UTF-8 and sorts keys, so the text is stable everywhere.
        text = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
        out[name] = text.decode() + "\n"
    return out


def drifted(directory: Path = JSON_DIR) -> list[str]:
    """Names of the files that are missing or differ from what the models produce."""
    return [
        name
        for name, text in render_all().items()
        if not (directory / name).is_file()
        or (directory / name).read_text(encoding="utf-8") != text
    ]


def write_all(directory: Path = JSON_DIR) -> list[str]:
    """Write every schema file; return the names of those that changed."""
    changed = drifted(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in render_all().items():
        (directory / name).write_text(text, encoding="utf-8")
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m schemas.generate", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only report drift; exit 1 if any")
    parser.add_argument("--dir", type=Path, default=JSON_DIR, help="where the files live")
    args = parser.parse_args(argv)
    if args.check:
        stale = drifted(args.dir)
        for name in stale:
            print(f"{args.dir / name}: out of date; run `python -m schemas.generate`")
        return 1 if stale else 0
    for name in write_all(args.dir):
        print(f"wrote {args.dir / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
