"""Who and where a rule targets: URL globs, journeys, audience predicates, holdouts.

Everything is compiled once per rule into plain closures; calling them is the hot path.

URL globs
    ``*`` matches any run of characters, ``/`` included; everything else is literal; a glob
    matches the whole string, case-sensitive. Matching takes time linear in the URL's
    length whatever the glob (no backtracking regex). Match globs against
    ``strip_url(url)`` (no query, no fragment). A journey is globs matched in order
    against the session's pages, gaps allowed.

Audience predicates, on the visitor's profile (attribute name -> JSON value)
    A missing attribute and a null one are the same thing: null.

    - plain value: JSON equality: ``1`` equals ``1.0``, but ``true`` is not ``1`` and ``"1"``
      is not ``1``. ``name: null`` holds when the attribute is missing or null.
    - ``in`` / ``not_in``: the value equals / equals none of the listed values (JSON
      equality; a list or object value is in no list).
    - ``gte``, ``gt``, ``lte``, ``lt``: hold only for a number (a boolean is not a number).
    - ``exists: true``: the value is not null; ``exists: false``: it is missing or null.
    - ``contains``: a string value contains the text, case-sensitive (a non-string operand
      is written as JSON first: ``contains: 5`` looks for ``"5"``); other values fail.

    So a missing attribute fails every predicate except ``exists: false`` and ``not_in``
    (and the ones that name null explicitly: ``name: null``, ``in: [null]``).

Holdouts
    ``in_holdout`` puts (visitor, rule) in one of 10,000 buckets with BLAKE2b, so the
    control group is the same in every process, on every machine, in a replay too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final

from schemas.conditions import Predicate, PredicateOps

__all__ = [
    "Audience",
    "Matcher",
    "compile_audience",
    "compile_globs",
    "compile_journey",
    "compile_predicate",
    "in_holdout",
    "journey_matches",
    "strip_url",
]

Matcher = Callable[[str], bool]
Test = Callable[[object], bool]
Audience = Callable[[Mapping[str, object]], tuple[bool, dict[str, object]]]

_BUCKETS: Final = 10_000
_HOLDOUT_PERSON: Final = b"beckon-holdout"  # domain separation for the hash


# --- URLs -----------------------------------------------------------------------------


def strip_url(url: str) -> str:
    """The URL without its query and fragment."""
    # '#' always starts the fragment (which may hold a '?'), so cut that first.
    cut = url.find("#")
    if cut >= 0:
        url = url[:cut]
    cut = url.find("?")
    return url[:cut] if cut >= 0 else url


def compile_globs(patterns: Sequence[str]) -> Matcher | None:
    """One matcher for several globs (any may match); None for no globs."""
    if not patterns:
        return None
    globs = [_collapse(p) for p in patterns]
    if "*" in globs:
        return _anything
    # Sorted by shape so the common ones are one C call for all globs of that shape:
    # "exact", "prefix*" and "*suffix"; the rest go segment by segment.
    exact: set[str] = set()
    prefixes: list[str] = []
    suffixes: list[str] = []
    others: list[Matcher] = []
    for glob in globs:
        stars = glob.count("*")
        if stars == 0:
            exact.add(glob)
        elif stars == 1 and glob.endswith("*"):
            prefixes.append(glob[:-1])
        elif stars == 1 and glob.startswith("*"):
            suffixes.append(glob[1:])
        else:
            others.append(_segments_matcher(glob))
    return _any_of(frozenset(exact), tuple(prefixes), tuple(suffixes), tuple(others))


def _any_of(
    exact: frozenset[str],
    prefixes: tuple[str, ...],
    suffixes: tuple[str, ...],
    others: tuple[Matcher, ...],
) -> Matcher:
    # The usual rule has one glob of one shape: give it the one C call it needs.
    if not others and not suffixes and not prefixes:
        return exact.__contains__
    if not others and not suffixes and not exact:
        return lambda url: url.startswith(prefixes)
    if not others and not prefixes and not exact:
        return lambda url: url.endswith(suffixes)
    if len(others) == 1 and not exact and not prefixes and not suffixes:
        return others[0]

    def match(url: str) -> bool:
        if url in exact or url.startswith(prefixes) or url.endswith(suffixes):
            return True
        return any(other(url) for other in others)

    return match


def _segments_matcher(glob: str) -> Matcher:
    # Not a regex: ".*a.*a.*b" backtracks for seconds on a 60-character URL, and URLs
    # come from visitors. Placing each middle segment at its leftmost match is optimal
    # for "*"-only globs, so this is a few str.find calls, linear in the URL.
    head, *middle, tail = glob.split("*")
    shortest = len(glob) - len(middle) - 1  # the literal characters

    def match(url: str) -> bool:
        if len(url) < shortest or not url.startswith(head) or not url.endswith(tail):
            return False
        pos, end = len(head), len(url) - len(tail)
        for segment in middle:
            found = url.find(segment, pos, end)
            if found < 0:
                return False
            pos = found + len(segment)
        return True

    return match


def _collapse(glob: str) -> str:
    # "a**b" is "a*b".
    while "**" in glob:
        glob = glob.replace("**", "*")
    return glob


def _anything(url: str) -> bool:
    return True


def compile_journey(globs: Iterable[str]) -> tuple[Matcher, ...]:
    """One matcher per journey step, in order."""
    matchers = []
    for glob in globs:
        matcher = compile_globs([glob])
        assert matcher is not None  # one glob gives a matcher
        matchers.append(matcher)
    return tuple(matchers)


def journey_matches(patterns: Sequence[Matcher], pages: Iterable[str]) -> bool:
    """Whether the steps match ``pages`` in order, gaps allowed (a subsequence).

    Pages are matched as given: pass stripped URLs (``strip_url``).
    """
    remaining = iter(pages)
    # Greedy: taking each step's earliest match never loses a later one. `remaining` is
    # one iterator shared by every step, so each step resumes after the previous match.
    for matches in patterns:
        for page in remaining:
            if matches(page):
                break
        else:
            return False
    return True


# --- Audience -------------------------------------------------------------------------

# JSON equality through hashing: True == 1 and hash(True) == hash(1) in Python, so
# booleans stand in as these markers; 1 and 1.0 stay equal, as in JSON.
_TRUE: Final = object()
_FALSE: Final = object()


def _json_key(value: object) -> object:
    if value is True:
        return _TRUE
    if value is False:
        return _FALSE
    return value


def compile_predicate(pred: Predicate) -> Test:
    """A test of one attribute's value (None when missing) against one predicate."""
    if not isinstance(pred, PredicateOps):
        return _equals(pred)
    tests = list(_operator_tests(pred))
    if len(tests) == 1:
        return tests[0]

    def every(value: object) -> bool:
        return all(test(value) for test in tests)

    return every


def compile_audience(audience: Mapping[str, Predicate]) -> Audience:
    """Whether every predicate holds for a profile, and the values it matched.

    The second item is ``{name: value}`` for every predicate (null for a missing
    attribute) when all hold, and empty when one does not.
    """
    checks = tuple((name, compile_predicate(pred)) for name, pred in audience.items())
    if not checks:
        return _everyone

    def check(profile: Mapping[str, object]) -> tuple[bool, dict[str, object]]:
        matched: dict[str, object] = {}
        get = profile.get
        for name, test in checks:
            value = get(name)
            if not test(value):
                return False, {}
            matched[name] = value
        return True, matched

    return check


def _everyone(profile: Mapping[str, object]) -> tuple[bool, dict[str, object]]:
    return True, {}


def _equals(expected: object) -> Test:
    if expected is None or isinstance(expected, bool):
        return lambda value: value is expected  # None, True and False are singletons
    if isinstance(expected, str):
        return lambda value: value == expected
    return lambda value: value == expected and not isinstance(value, bool)


def _operator_tests(ops: PredicateOps) -> Iterable[Test]:
    if ops.in_ is not None:
        members = frozenset(map(_json_key, ops.in_))
        yield lambda value: _is_member(value, members)
    if ops.not_in is not None:
        excluded = frozenset(map(_json_key, ops.not_in))
        yield lambda value: not _is_member(value, excluded)
    # `type(v) is`, not isinstance: bool is a subclass of int but not a JSON number.
    if ops.gte is not None:
        gte = ops.gte
        yield lambda v: (type(v) is int or type(v) is float) and v >= gte
    if ops.gt is not None:
        gt = ops.gt
        yield lambda v: (type(v) is int or type(v) is float) and v > gt
    if ops.lte is not None:
        lte = ops.lte
        yield lambda v: (type(v) is int or type(v) is float) and v <= lte
    if ops.lt is not None:
        lt = ops.lt
        yield lambda v: (type(v) is int or type(v) is float) and v < lt
    if ops.exists is not None:
        yield (lambda value: value is not None) if ops.exists else (lambda value: value is None)
    if ops.contains is not None:
        text = _json_text(ops.contains)
        yield lambda value: type(value) is str and text in value


def _is_member(value: object, members: frozenset[object]) -> bool:
    try:
        return _json_key(value) in members
    except TypeError:  # a list or object value is unhashable, and in no list of scalars
        return False


def _json_text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else repr(value)


# --- Holdout --------------------------------------------------------------------------


def in_holdout(visitor_id: str, rule_id: str, pct: float) -> bool:
    """Whether the visitor is in the rule's control group of ``pct`` percent (0..100)."""
    if pct <= 0:
        return False
    if pct >= 100:
        return True
    digest = hashlib.blake2b(
        f"{rule_id}\x00{visitor_id}".encode(), digest_size=8, person=_HOLDOUT_PERSON
    ).digest()
    # 10,000 buckets, so holdout_pct keeps two decimals of precision.
    return int.from_bytes(digest, "big") % _BUCKETS < pct * (_BUCKETS // 100)
