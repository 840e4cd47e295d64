"""Journey patterns over literal pages and times, and against a brute-force reading."""

from __future__ import annotations

from fnmatch import fnmatchcase
from itertools import accumulate, combinations
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.journeys import JourneyPattern
from streams.core.patterns import compile_journey_test, returned

A, B, C, S = "https://s/a", "https://s/b", "https://s/c", "https://s/support"


def holds(pages: list[str], page_ms: list[int] | None = None, **pattern: Any) -> bool:
    test = compile_journey_test(JourneyPattern(**pattern))
    return test(pages, page_ms if page_ms is not None else list(range(len(pages))))


def test_steps_alone_are_the_list_form() -> None:
    listed = compile_journey_test(("*/a", "*/b"))
    for pages in ([A, B], [A, C, B], [B, A], [A], [A, A]):
        assert holds(pages, steps=["*/a", "*/b"]) == listed(pages, [0] * len(pages))


def test_within_takes_the_fastest_match() -> None:
    # a at 0 s and at 200 s, b at 250 s: the later a makes the 50 s match.
    assert holds([A, A, B], [0, 200_000, 250_000], steps=["*/a", "*/b"], within=60)
    assert not holds([A, C, B], [0, 200_000, 250_000], steps=["*/a", "*/b"], within=60)


def test_within_holds_at_exactly_t_seconds() -> None:
    assert holds([A, B], [0, 60_000], steps=["*/a", "*/b"], within=60)
    assert not holds([A, B], [0, 60_001], steps=["*/a", "*/b"], within=60)


def test_within_never_times_a_page_view_saved_without_its_time() -> None:
    assert not holds([A, B], [-1, 5], steps=["*/a", "*/b"], within=60)
    assert holds([A, A, B], [-1, 0, 5], steps=["*/a", "*/b"], within=60)


def test_without_refuses_a_page_between_the_first_and_last_step() -> None:
    pattern = {"steps": ["*/a", "*/b"], "without": ["*/support*"]}
    assert not holds([A, S, B], **pattern)
    assert holds([A, S, A, B], **pattern)  # the later a starts a clean match
    assert holds([S, A, B, S], **pattern)  # before and after do not count


def test_a_without_page_may_be_a_step_itself() -> None:
    pattern = {"steps": ["*/a", "*/support", "*/b"], "without": ["*/support"]}
    # The middle step lies between the first and the last: it cannot be a without page.
    assert not holds([A, S, B], **pattern)
    assert holds([S, B], steps=["*/support", "*/b"], without=["*/support"])
    assert holds([A, S], steps=["*/a", "*/support"], without=["*/support"])


def test_within_and_without_hold_for_the_same_match() -> None:
    # a(0) c(10) b(20) is fast but passes c; a(100) b(500) is clean but slow.
    pages, times = [A, C, B, A, B], [0, 10_000, 20_000, 100_000, 500_000]
    assert holds(pages, times, steps=["*/a", "*/b"], within=60)
    assert holds(pages, times, steps=["*/a", "*/b"], without=["*/c"])
    assert not holds(pages, times, steps=["*/a", "*/b"], within=60, without=["*/c"])


def test_min_views_counts_matching_page_views() -> None:
    three = {"min_views": [{"glob": "*/a", "at_least": 3}]}
    assert not holds([A, B, A], **three)
    assert holds([A, B, A, A], **three)  # reloads count: each is a page view


def test_every_min_views_entry_must_hold() -> None:
    both = {"min_views": [{"glob": "*/a", "at_least": 2}, {"glob": "*/b", "at_least": 1}]}
    assert not holds([A, A], **both)
    assert holds([A, B, A], **both)


def test_returned_is_a_page_seen_before_another_page() -> None:
    assert returned([A, B, A])
    assert returned([A, B, A, A])
    assert not returned([A, A])  # a reload is not a return
    assert not returned([B, A])
    assert not returned([])


def test_every_clause_must_hold() -> None:
    pattern = {"steps": ["*/b"], "min_views": [{"glob": "*/a", "at_least": 2}], "returned": True}
    assert holds([A, B, A], **pattern)
    assert not holds([A, B, C], **pattern)  # no return
    assert not holds([B, A, B], **pattern)  # one view of a


# --- against a brute-force reading of the contract ------------------------------------

GLOBS = ("*/a", "*/b", "*/c", "*/support*", "*")
PAGES = (A, B, C, S)


def _glob(glob: str, page: str) -> bool:
    return fnmatchcase(page, glob)  # the same globs here: only '*' is special


def brute_force(pattern: JourneyPattern, pages: list[str], ms: list[int]) -> bool:
    """Every clause read literally: all ways to pick the steps' page views are tried."""
    if pattern.steps is not None:
        without = pattern.without or ()

        def fits(picked: tuple[int, ...]) -> bool:
            steps = zip(pattern.steps or (), picked, strict=True)
            if not all(_glob(g, pages[i]) for g, i in steps):
                return False
            first, last = picked[0], picked[-1]
            span = ms[last] - ms[first]
            if pattern.within is not None and (ms[first] < 0 or span > pattern.within * 1000):
                return False
            between = pages[first + 1 : last]
            return not any(_glob(g, p) for g in without for p in between)

        if not any(fits(p) for p in combinations(range(len(pages)), len(pattern.steps))):
            return False
    for count in pattern.min_views or ():
        if sum(_glob(count.glob, p) for p in pages) < count.at_least:
            return False
    if pattern.returned:
        current, i = pages[-1], len(pages) - 1
        while i > 0 and pages[i - 1] == current:
            i -= 1
        if current not in pages[:i]:
            return False
    return True


@st.composite
def patterns(draw: st.DrawFn) -> JourneyPattern:
    steps = draw(st.none() | st.lists(st.sampled_from(GLOBS), min_size=1, max_size=4))
    two = steps is not None and len(steps) >= 2
    views = st.builds(dict, glob=st.sampled_from(GLOBS), at_least=st.integers(1, 4))
    fields = {
        "steps": steps,
        "within": draw(st.none() | st.integers(1, 30)) if two else None,
        "without": draw(st.none() | st.lists(st.sampled_from(GLOBS), min_size=1)) if two else None,
        "min_views": draw(st.none() | st.lists(views, min_size=1, max_size=2)),
        "returned": draw(st.sampled_from([None, True])),
    }
    if fields["steps"] is None and fields["min_views"] is None and fields["returned"] is None:
        fields["returned"] = True
    return JourneyPattern(**fields)


@settings(max_examples=400, deadline=None)
@given(
    patterns(),
    st.lists(st.tuples(st.sampled_from(PAGES), st.integers(0, 15_000)), min_size=1, max_size=9),
    st.integers(0, 2),
)
def test_a_pattern_holds_exactly_when_the_brute_force_reading_says(
    pattern: JourneyPattern, views: list[tuple[str, int]], unknown: int
) -> None:
    pages = [page for page, _ in views]
    ms = list(accumulate(gap for _, gap in views))
    ms = [-1] * min(unknown, len(ms)) + ms[unknown:]  # saved before times were kept

    assert compile_journey_test(pattern)(pages, ms) == brute_force(pattern, pages, ms)
