"""Journey triggers compiled to one test over the session's page views.

A test takes the session's latest page views (``Journey.pages``: URLs without query and
fragment, the current page last) and when each was viewed (``Journey.page_ms``, ms from
the session's start, -1 when unknown), and says whether the journey holds. The list form
is the subsequence test it always was (``matching.journey_matches``); the object form
adds its clauses, all of which must hold:

- ``steps``: the steps match page views in order, gaps allowed (a subsequence);
- ``within``: some such match spans at most T s from its first to its last step;
- ``without``: some such match has no page view matching ``without`` strictly between
  its first and its last step (``within`` and ``without`` hold for the same match);
- ``min_views``: at least k page views match the glob;
- ``returned``: the current page was viewed before, with another page viewed since
  (a reload is not a return).

The tests read nothing but their arguments, so the live worker and ``beckon backtest``
judge a journey alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from schemas.journeys import JourneyPattern
from streams.core.matching import Matcher, compile_globs, compile_journey, journey_matches

__all__ = ["PagesTest", "compile_journey_test", "returned"]

# (pages, page_ms) -> whether the journey holds
PagesTest = Callable[[Sequence[str], Sequence[int]], bool]


def compile_journey_test(journey: tuple[str, ...] | JourneyPattern) -> PagesTest:
    """The test for a rule's ``trigger.journey``, in either form."""
    if not isinstance(journey, JourneyPattern):
        steps = compile_journey(journey)
        return lambda pages, page_ms: journey_matches(steps, pages)
    tests: list[PagesTest] = []
    if journey.steps is not None:
        tests.append(_steps_test(journey))
    for count in journey.min_views or ():
        tests.append(_count_test(count.glob, count.at_least))
    if journey.returned:
        tests.append(lambda pages, page_ms: returned(pages))
    if len(tests) == 1:
        return tests[0]
    return lambda pages, page_ms: all(test(pages, page_ms) for test in tests)


def _steps_test(journey: JourneyPattern) -> PagesTest:
    assert journey.steps is not None
    steps = compile_journey(journey.steps)
    if journey.within is None and journey.without is None:
        return lambda pages, page_ms: journey_matches(steps, pages)
    within = None if journey.within is None else journey.within * 1000
    without = compile_globs(journey.without or ())
    return lambda pages, page_ms: _timed_match(steps, within, without, pages, page_ms)


def _timed_match(
    steps: Sequence[Matcher],
    within_ms: int | None,
    without: Matcher | None,
    pages: Sequence[str],
    page_ms: Sequence[int],
) -> bool:
    """Whether the steps match in order with the last step at most ``within_ms`` after the
    first, and no ``without`` page strictly between the two.

    One pass. ``start[s]`` is the latest index at which a match of steps 0..s that ends
    at or before the current page can start (-1: none). For a given last page the latest
    start makes the shortest span and the fewest pages between, so if any match ending
    there qualifies, that one does. A ``without`` page ends every partial match: none may
    pass over it, though a match may start or end on it.
    """
    last = len(steps) - 1
    start = [-1] * len(steps)
    for i, page in enumerate(pages):
        end = -1
        # Last step first, so that this page extends a match from before it, never
        # one that it started itself: each step takes a page view of its own.
        for s in range(last, 0, -1):
            if start[s - 1] >= 0 and steps[s](page):
                start[s] = start[s - 1]
                if s == last:
                    end = start[s]
        first = steps[0](page)
        if first:
            start[0] = i
            if last == 0:
                end = i
        if end >= 0 and (within_ms is None or _span_ok(page_ms[end], page_ms[i], within_ms)):
            return True
        if without is not None and without(page):
            start = [-1] * len(steps)
            if first:
                start[0] = i
    return False


def _span_ok(first_ms: int, last_ms: int, within_ms: int) -> bool:
    # A page view saved without its time (before times were kept) is never timed.
    return first_ms >= 0 and last_ms - first_ms <= within_ms


def _count_test(glob: str, at_least: int) -> PagesTest:
    matches = compile_globs([glob])
    assert matches is not None

    def test(pages: Sequence[str], page_ms: Sequence[int]) -> bool:
        if len(pages) < at_least:
            return False
        n = 0
        for page in pages:
            if matches(page):
                n += 1
                if n >= at_least:
                    return True
        return False

    return test


def returned(pages: Sequence[str]) -> bool:
    """Whether the current (last) page was viewed before another page was: a return,
    not a reload."""
    if not pages:
        return False
    current = pages[-1]
    i = len(pages) - 1
    while i > 0 and pages[i - 1] == current:  # reloads of the current page
        i -= 1
    return current in pages[:i]
