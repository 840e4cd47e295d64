"""The two forms of an instant in Beckon's data: epoch milliseconds and RFC 3339 text.

Inside Beckon every instant is an ``int`` of epoch milliseconds (UTC by definition, so a
naive datetime never exists). At the edges, events may carry RFC 3339 with an offset, and
outputs carry the one canonical form ``2026-12-01T09:00:30.000Z``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

# RFC 3339 section 5.6; 't', 'z' and a space separator are allowed by it (and by browsers).
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})")
_WITHOUT_OFFSET = re.compile(r"\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?")
_CANONICAL = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

# Year 1 to year 9999: every instant format_instant can write is one parse_instant can read.
MIN_MS = -62135596800000
MAX_MS = 253402300799999


def parse_instant(text: str) -> int:
    """RFC 3339 text with an offset -> epoch milliseconds (sub-millisecond digits dropped).

    Raises ValueError with a message that says what is accepted.
    """
    if not _RFC3339.fullmatch(text):
        if _WITHOUT_OFFSET.fullmatch(text):
            raise ValueError(
                f"has no UTC offset: {text!r}; add one, e.g. '2026-12-01T09:00:00Z' "
                "or '2026-12-01T18:00:00+09:00', or send epoch milliseconds"
            )
        raise ValueError(
            f"must be RFC 3339 with an offset (e.g. '2026-12-01T09:00:00Z') "
            f"or epoch milliseconds, got {text[:60]!r}"
        )
    head, dot, tail = text.upper().partition(".")
    if dot:
        # datetime takes at most 6 fraction digits; milliseconds need only 3.
        digits = len(tail) - len(tail.lstrip("0123456789"))
        tail = tail[: min(digits, 6)] + tail[digits:]
    try:
        moment = datetime.fromisoformat(head + dot + tail)
    except ValueError as exc:
        raise ValueError(f"is not a real date and time: {text!r} ({exc})") from exc
    return (moment - _EPOCH) // _MS


def format_instant(ms: int) -> str:
    """Epoch milliseconds -> ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC, always 3 fraction digits)."""
    if not MIN_MS <= ms <= MAX_MS:
        raise ValueError(f"instant {ms} ms is outside years 1 to 9999")
    t = _EPOCH + timedelta(milliseconds=ms)
    return (
        f"{t.year:04d}-{t.month:02d}-{t.day:02d}T"
        f"{t.hour:02d}:{t.minute:02d}:{t.second:02d}.{t.microsecond // 1000:03d}Z"
    )


def check_canonical(text: str) -> str:
    """Accept only the canonical output form; return it unchanged."""
    if not _CANONICAL.fullmatch(text):
        raise ValueError(
            f"must be RFC 3339 UTC with milliseconds, e.g. '2026-12-01T09:00:30.000Z', "
            f"got {text[:60]!r}"
        )
    parse_instant(text)  # a well-formed string can still name 2026-13-45
    return text
