"""Message templates: ``"Hi {first_name|there}"`` — the one definition of their syntax.

A placeholder is ``{name}`` or ``{name|default}``; the name is letters, digits, ``_``,
``.`` and ``-``; the default is any text without braces (``{name|}`` means "empty when
unknown"). Braces are used for placeholders only, so a brace that opens no placeholder is
an error rather than a silent literal: a typo must not reach a visitor's screen.
The rules schema validates with ``parse_template``; the engine renders with
``render_template``, so both agree on the syntax by construction.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple

_NAME = re.compile(r"[A-Za-z0-9_.-]+")


class Placeholder(NamedTuple):
    """``{name|default}``; ``default`` is None when the placeholder has no ``|``."""

    name: str
    default: str | None


def parse_template(text: str) -> tuple[str | Placeholder, ...]:
    """Split a template into literal text and placeholders; raise ValueError when malformed."""
    parts: list[str | Placeholder] = []
    i = 0
    while i < len(text):
        start, stray = text.find("{", i), text.find("}", i)
        if stray != -1 and (start == -1 or stray < start):
            raise ValueError(
                f"'}}' at position {stray} closes no placeholder; "
                "placeholders look like {name} or {name|default}"
            )
        if start == -1:
            parts.append(text[i:])
            break
        end = text.find("}", start + 1)
        nested = text.find("{", start + 1)
        if end == -1 or (nested != -1 and nested < end):
            raise ValueError(
                f"'{{' at position {start} is not closed; "
                "placeholders look like {name} or {name|default}"
            )
        if start > i:
            parts.append(text[i:start])
        name, bar, default = text[start + 1 : end].partition("|")
        if not _NAME.fullmatch(name):
            raise ValueError(
                f"placeholder {text[start : end + 1]} at position {start} needs a name of "
                "letters, digits, '_', '.' or '-', as in {first_name} or {first_name|there}"
            )
        parts.append(Placeholder(name, default if bar else None))
        i = end + 1
    return tuple(parts)


def check_template(text: str) -> str:
    """Validate a template and return it unchanged (for use as a pydantic validator)."""
    parse_template(text)
    return text


def render_template(text: str, values: Mapping[str, object]) -> str:
    """Fill a template: a known, non-null value wins, then the default, then ''."""
    return render_parts(parse_template(text), values)


def render_parts(parts: tuple[str | Placeholder, ...], values: Mapping[str, object]) -> str:
    """Fill an already parsed template (see ``render_template``)."""
    out: list[str] = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
            continue
        value = values.get(part.name)
        if value is None:
            out.append(part.default or "")
        elif isinstance(value, bool):
            out.append("true" if value else "false")
        else:
            out.append(str(value))
    return "".join(out)
