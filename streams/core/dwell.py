"""Dwell-time aggregates per page and tumbling window: the pure part.

The engine calls :func:`observe` for every event it applies (unless its driver publishes
no aggregates: the backtest passes ``dwell=False``); it returns what the event adds to
the aggregates, as ``Contribution`` tuples. The worker sums a batch's
contributions into :class:`PageWindow` partials and publishes them; the aggregator
(``streams.worker.aggregates``) merges the partials of every worker into one record per page
and window. Everything is attributed to the window in which it happened:

- ``page_views``: page views that started in the window;
- ``visitors``: distinct visitors with a page view of the page in the window;
- ``dwell_ms``: the time visitors were present on the page during the window, as the
  engine judges presence (the latest event no older than the presence timeout, or the
  window the visitor's events set with ``presence_s``; no ``page_leave`` since the page
  view). An interval is counted when the event that ends it arrives, so a visitor's last
  seconds on a page without a ``page_leave`` are counted at their next event;
- ``ended`` and ``histogram``: page views that ended in the window (next ``page_view``,
  ``page_leave`` or a new session) and their whole dwell, in buckets of one second below
  100 s and of two significant digits above; ``typical_dwell_ms`` is their median.

Pages are URLs without query and fragment, as rules' locations see them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, NamedTuple

import orjson

from schemas.events import ClickEvent, PageLeave, PageView
from schemas.instants import format_instant
from streams.core.journey import Journey
from streams.core.matching import strip_url

DEFAULT_WINDOW_MS: Final = 60_000


class Contribution(NamedTuple):
    """What one event adds to one page's window."""

    site_id: str
    page: str
    window: int  # the window's start, epoch ms
    views: int = 0
    visitors: int = 0
    dwell_ms: int = 0
    ended_ms: int = -1  # the whole dwell of a page view that ended here, or -1


def window_of(t: int, window_ms: int) -> int:
    """The start of the tumbling window that holds instant ``t``."""
    return t - t % window_ms


def observe(
    journey: Journey,
    event: ClickEvent,
    t: int,
    new_session: bool,
    presence_ms: int,
    window_ms: int,
) -> list[Contribution]:
    """What ``event`` at ``t`` adds, judged from the journey *before* it is applied.

    Updates the journey's own dwell bookkeeping (``engaged``, ``viewed``).
    """
    out: list[Contribution] = []
    path = journey.path
    if path is not None and not journey.left and journey.last_seen >= 0:
        # Present on the page from the latest event until t, or until presence lapsed.
        start = journey.last_seen
        end = min(t, start + journey.presence(presence_ms))
        if end > start:
            journey.engaged += end - start
            _split(out, journey.site_id, path, start, end, window_ms)
        leaves = isinstance(event, PageLeave) and (
            event.url is None or strip_url(event.url) == path
        )
        if new_session or leaves or isinstance(event, PageView):
            ended = window_of(end, window_ms)
            out.append(Contribution(journey.site_id, path, ended, ended_ms=journey.engaged))
            journey.engaged = 0
    if isinstance(event, PageView):
        page, window = strip_url(event.url), window_of(t, window_ms)
        viewed = journey.viewed
        if not viewed or viewed[0] != window:
            viewed = journey.viewed = [window, []]
        first = page not in viewed[1]
        if first:
            viewed[1].append(page)
        journey.engaged = 0
        out.append(Contribution(journey.site_id, page, window, views=1, visitors=int(first)))
    return out


def _split(
    out: list[Contribution], site_id: str, page: str, start: int, end: int, window_ms: int
) -> None:
    """Credit the presence interval [start, end) to the windows it spans."""
    while start < end:
        window = window_of(start, window_ms)
        upto = min(end, window + window_ms)
        out.append(Contribution(site_id, page, window, dwell_ms=upto - start))
        start = upto


def bucket(dwell_ms: int) -> int:
    """The histogram bucket of a dwell: whole seconds below 100 s, two digits above."""
    seconds = dwell_ms // 1000
    if seconds < 100:
        return seconds
    scale = 10 ** (len(str(seconds)) - 2)
    return seconds // scale * scale


class PageWindow:
    """The aggregate of one page in one window; partials merge by addition."""

    __slots__ = ("dwell_ms", "ended", "histogram", "page_views", "visitors")

    def __init__(self) -> None:
        self.page_views = 0
        self.visitors = 0
        self.dwell_ms = 0
        self.ended = 0
        self.histogram: dict[int, int] = {}  # bucket (s) -> ended page views

    def add(self, c: Contribution) -> None:
        self.page_views += c.views
        self.visitors += c.visitors
        self.dwell_ms += c.dwell_ms
        if c.ended_ms >= 0:
            self.ended += 1
            b = bucket(c.ended_ms)
            self.histogram[b] = self.histogram.get(b, 0) + 1

    def merge(self, other: PageWindow) -> None:
        self.page_views += other.page_views
        self.visitors += other.visitors
        self.dwell_ms += other.dwell_ms
        self.ended += other.ended
        for b, n in other.histogram.items():
            self.histogram[b] = self.histogram.get(b, 0) + n

    def typical_dwell_ms(self) -> int | None:
        """The median bucket of the ended page views (its lower bound), or None."""
        if not self.ended:
            return None
        middle, seen = (self.ended + 1) // 2, 0
        for b in sorted(self.histogram):
            seen += self.histogram[b]
            if seen >= middle:
                return b * 1000
        raise AssertionError("histogram counts do not add up to ended")

    # --- the record on the topics ------------------------------------------------------
    # Its shape is the contract's, schemas.aggregates.PageDwell (page_dwell.schema.json): a
    # unit test holds to_record's output to the model. Plain dicts here, not the model:
    # the worker writes and reads these on its hot path.
    def to_record(self, site_id: str, page: str, window: int, window_ms: int) -> dict[str, Any]:
        """The PageDwell record of this aggregate, for ``page`` in the window at ``window``."""
        return {
            "site_id": site_id,
            "page": page,
            "window_start": format_instant(window),
            "window_end": format_instant(window + window_ms),
            "page_views": self.page_views,
            "visitors": self.visitors,
            "dwell_ms": self.dwell_ms,
            "ended": self.ended,
            "typical_dwell_ms": self.typical_dwell_ms(),
            "histogram": {str(b): n for b, n in sorted(self.histogram.items())},
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> PageWindow:
        """The aggregate of a PageDwell record (its counts; the key says page and window)."""
        agg = cls()
        agg.page_views = record["page_views"]
        agg.visitors = record["visitors"]
        agg.dwell_ms = record["dwell_ms"]
        agg.ended = record["ended"]
        agg.histogram = {int(b): n for b, n in record["histogram"].items()}
        return agg

    def __repr__(self) -> str:
        return (
            f"PageWindow(views={self.page_views}, visitors={self.visitors}, "
            f"dwell_ms={self.dwell_ms}, ended={self.ended})"
        )


Key = tuple[str, str, int]  # (site_id, page, window start)


def encode_key(key: Key) -> bytes:
    """The Kafka key of a page and window: ``["shop", "https://…/pricing", 1764583200000]``."""
    return orjson.dumps(key)


def decode_key(raw: bytes) -> Key:
    site_id, page, window = orjson.loads(raw)
    if not (isinstance(site_id, str) and isinstance(page, str) and isinstance(window, int)):
        raise ValueError("a dwell key is [site_id, page, window start ms]")
    return site_id, page, window


def fold(contributions: list[Contribution], into: dict[Key, PageWindow]) -> None:
    """Add contributions to the partials of their page and window."""
    for c in contributions:
        key = (c.site_id, c.page, c.window)
        agg = into.get(key)
        if agg is None:
            agg = into[key] = PageWindow()
        agg.add(c)
