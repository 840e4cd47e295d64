"""URL globs, journeys, audience predicates and holdouts, as the module docstring defines."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.conditions import Predicate, PredicateOps
from streams.core.matching import (
    compile_audience,
    compile_globs,
    compile_journey,
    compile_predicate,
    in_holdout,
    journey_matches,
    strip_url,
)

# --- strip_url ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "stripped"),
    [
        ("https://shop.example/pricing", "https://shop.example/pricing"),
        ("https://shop.example/pricing?plan=pro", "https://shop.example/pricing"),
        ("https://shop.example/pricing#faq", "https://shop.example/pricing"),
        ("https://shop.example/pricing?a=1#faq", "https://shop.example/pricing"),
        ("https://shop.example/pricing#faq?not-a-query", "https://shop.example/pricing"),
        ("https://shop.example/?", "https://shop.example/"),
        ("", ""),
    ],
)
def test_strip_url_drops_query_and_fragment(url: str, stripped: str) -> None:
    assert strip_url(url) == stripped


# --- globs --------------------------------------------------------------------------


def matches(globs: list[str], url: str) -> bool:
    matcher = compile_globs(globs)
    assert matcher is not None
    return matcher(url)


def test_no_globs_compile_to_none() -> None:
    assert compile_globs([]) is None


@pytest.mark.parametrize(
    ("glob", "url", "expected"),
    [
        ("https://shop.example/pricing*", "https://shop.example/pricing", True),
        ("https://shop.example/pricing*", "https://shop.example/pricing/team/annual", True),
        ("https://shop.example/pricing*", "http://shop.example/pricing", False),
        ("https://shop.example/pricing*", "https://shop.example/about/pricing", False),
        ("*/thank-you", "https://shop.example/orders/42/thank-you", True),
        ("*/thank-you", "https://shop.example/thank-you/again", False),
        ("*/products/*", "https://shop.example/products/a/b/c", True),
        ("*/products/*", "https://shop.example/products", False),
        ("https://a.example/x", "https://a.example/x", True),
        ("https://a.example/x", "https://a.example/x/", False),
        ("https://a.example/x", "https://aXexample/x", False),  # "." is literal
        ("https://a.example/(x)+[y]?", "https://a.example/(x)+[y]?", True),
        ("https://a.example/(x)+[y]?", "https://a.example/xx[y]", False),
        ("*", "", True),
        ("**", "https://anything/at/all", True),
        ("a**b", "a/x/b", True),
        ("*a*a*a*a*a*a*b", "a" * 60, False),  # no catastrophic backtracking to hang on
    ],
)
def test_glob(glob: str, url: str, expected: bool) -> None:
    assert matches([glob], url) is expected


def test_glob_is_case_sensitive() -> None:
    assert not matches(["*/Pricing"], "https://shop.example/pricing")


def test_several_globs_match_when_any_does() -> None:
    globs = ["https://shop.example/pricing", "*/checkout/*", "https://shop.example/cart*"]
    assert matches(globs, "https://shop.example/pricing")
    assert matches(globs, "https://shop.example/checkout/step-2")
    assert matches(globs, "https://shop.example/cart")
    assert not matches(globs, "https://shop.example/about")


def test_globs_apply_to_the_url_without_query_and_fragment() -> None:
    url = "https://shop.example/orders/7/thank-you?utm_source=mail#top"
    assert not matches(["*/thank-you"], url)
    assert matches(["*/thank-you"], strip_url(url))


@given(
    st.lists(st.text("ab/*", max_size=8), min_size=1, max_size=3),
    st.text("ab/", max_size=12),
)
def test_globs_agree_with_a_regex_translation(globs: list[str], url: str) -> None:
    regex = "|".join(".*".join(map(re.escape, g.split("*"))) for g in globs)
    assert matches(globs, url) is (re.fullmatch(regex, url, re.DOTALL) is not None)


# --- journeys -----------------------------------------------------------------------

JOURNEY = compile_journey(["*/products/*", "*/pricing"])


@pytest.mark.parametrize(
    ("pages", "expected"),
    [
        (["https://s/products/a", "https://s/pricing"], True),
        (["https://s/", "https://s/products/a", "https://s/blog", "https://s/pricing"], True),
        (["https://s/pricing", "https://s/products/a"], False),  # wrong order
        (["https://s/products/a"], False),
        (
            ["https://s/pricing", "https://s/products/a", "https://s/about", "https://s/pricing"],
            True,
        ),
        ([], False),
    ],
)
def test_journey_matches_in_order_with_gaps(pages: list[str], expected: bool) -> None:
    assert journey_matches(JOURNEY, pages) is expected


def test_one_page_cannot_serve_two_steps() -> None:
    twice = compile_journey(["*/pricing", "*/pricing"])
    assert not journey_matches(twice, ["https://s/pricing"])
    assert journey_matches(twice, ["https://s/pricing", "https://s/x", "https://s/pricing"])


def test_empty_journey_matches_anything() -> None:
    assert journey_matches((), [])


# --- predicates ---------------------------------------------------------------------


def ops(**given: Any) -> PredicateOps:
    return PredicateOps.model_validate(given)


MISSING = object()  # the attribute is not in the profile at all


@pytest.mark.parametrize(
    ("pred", "value", "expected"),
    [
        # plain value: JSON equality
        ("JP", "JP", True),
        ("JP", "jp", False),
        (2, 2, True),
        (2, 2.0, True),
        (2.5, 2.5, True),
        (1, True, False),
        (True, 1, False),
        (True, True, True),
        (False, 0, False),
        ("1", 1, False),
        (1, "1", False),
        ("JP", MISSING, False),
        (None, MISSING, True),
        (None, None, True),
        (None, "", False),
        # in / not_in
        (ops(**{"in": ["JP", "US"]}), "US", True),
        (ops(**{"in": ["JP", "US"]}), "FR", False),
        (ops(**{"in": [1, 2]}), 2.0, True),
        (ops(**{"in": [1, 2]}), True, False),
        (ops(**{"in": [True]}), 1, False),
        (ops(**{"in": ["JP"]}), ["JP"], False),
        (ops(**{"in": ["JP"]}), MISSING, False),
        (ops(**{"in": ["JP", None]}), MISSING, True),
        (ops(not_in=["enterprise"]), "pro", True),
        (ops(not_in=["enterprise"]), "enterprise", False),
        (ops(not_in=[1]), 1.0, False),
        (ops(not_in=[1]), True, True),
        (ops(not_in=["enterprise"]), MISSING, True),
        (ops(not_in=["enterprise"]), {"a": 1}, True),
        # comparisons: numbers only
        (ops(gte=2), 2, True),
        (ops(gte=2), 1.5, False),
        (ops(gt=2), 2, False),
        (ops(gt=2), 2.01, True),
        (ops(lte=2), 2, True),
        (ops(lte=2), 3, False),
        (ops(lt=2), 1, True),
        (ops(lt=2), 2, False),
        (ops(gte=1), True, False),
        (ops(lt=5), "3", False),
        (ops(gte=2), MISSING, False),
        (ops(lt=2), None, False),
        (ops(gte=2, lt=5), 4, True),
        (ops(gte=2, lt=5), 5, False),
        # exists
        (ops(exists=True), "", True),
        (ops(exists=True), 0, True),
        (ops(exists=True), None, False),
        (ops(exists=True), MISSING, False),
        (ops(exists=False), MISSING, True),
        (ops(exists=False), None, True),
        (ops(exists=False), False, False),
        # contains: strings only, case-sensitive
        (ops(contains="pro"), "enterprise-pro", True),
        (ops(contains="Pro"), "enterprise-pro", False),
        (ops(contains="pro"), ["pro"], False),
        (ops(contains="pro"), MISSING, False),
        (ops(contains=5), "plan-5", True),
        (ops(contains=5), 5, False),
        (ops(contains=True), "is-true", True),
    ],
)
def test_predicate(pred: Predicate, value: object, expected: bool) -> None:
    profile = {} if value is MISSING else {"attr": value}
    assert compile_predicate(pred)(profile.get("attr")) is expected
    assert compile_audience({"attr": pred})(profile)[0] is expected


def test_audience_needs_every_predicate_and_returns_the_matched_values() -> None:
    audience = compile_audience(
        {
            "authenticated": True,
            "visits": ops(gte=2),
            "country": ops(**{"in": ["JP", "US"]}),
            "plan": ops(not_in=["enterprise"]),
        }
    )
    profile = {"authenticated": True, "visits": 3, "country": "JP", "email": "a@b.example"}
    assert audience(profile) == (
        True,
        {"authenticated": True, "visits": 3, "country": "JP", "plan": None},
    )
    assert audience({**profile, "visits": 1}) == (False, {})
    assert audience({**profile, "plan": "enterprise"}) == (False, {})


def test_empty_audience_is_everyone() -> None:
    assert compile_audience({})({}) == (True, {})


def test_audience_from_a_loaded_rule() -> None:
    from schemas.rules import Rule

    rule = Rule.model_validate(
        {
            "id": "r",
            "audience": {"visits": {"gte": 2}, "device": "mobile"},
            "trigger": {"dwell_seconds": 5},
            "message": {"text": "hi"},
        }
    )
    audience = compile_audience(rule.audience)
    assert audience({"visits": 2, "device": "mobile"})[0]
    assert not audience({"visits": 2, "device": "desktop"})[0]


# --- holdout ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("visitor", "rule", "bucket"),
    [
        ("v-1", "pricing-hesitation", 9467),
        ("v-2", "pricing-hesitation", 6842),
        ("visitor-42", "exit-offer", 1820),
        ("b3f1c2", "exit-offer", 8437),
    ],
)
def test_holdout_bucket_is_fixed_forever(visitor: str, rule: str, bucket: int) -> None:
    # A visitor's bucket must not move between releases: that would reshuffle the
    # control group in the middle of an experiment. The bucket is b / 100 percent.
    assert in_holdout(visitor, rule, (bucket + 1) / 100)
    assert not in_holdout(visitor, rule, bucket / 100)


def test_holdout_extremes() -> None:
    visitors = [f"v{i}" for i in range(1000)]
    assert not any(in_holdout(v, "r", 0) for v in visitors)
    assert all(in_holdout(v, "r", 100) for v in visitors)


@pytest.mark.parametrize("pct", [1, 10, 33.3, 50, 90])
def test_holdout_holds_out_about_pct_percent(pct: float) -> None:
    held = sum(in_holdout(f"visitor-{i}", "pricing-hesitation", pct) for i in range(10_000))
    assert abs(held - pct * 100) < 200  # > 4 standard deviations at worst


def test_holdout_depends_on_the_rule() -> None:
    visitors = [f"visitor-{i}" for i in range(1000)]
    a = {v for v in visitors if in_holdout(v, "rule-a", 50)}
    b = {v for v in visitors if in_holdout(v, "rule-b", 50)}
    assert a != b
