"""The preview's rule words for the object form of journey (the rest: test_preview.py)."""

from __future__ import annotations

import textwrap

from schemas.rules import load_rules
from streams.console.figures import trigger_words


def test_trigger_words_name_every_clause_of_a_journey_object() -> None:
    [rule] = load_rules(
        textwrap.dedent(
            """
            rules:
              - id: r
                trigger:
                  journey: {steps: ["*/product*", "*/cart"], within: 300, without: ["*/help*"],
                            min_views: [{glob: "*/product*", at_least: 2}], returned: true}
                message: {text: "Hi"}
            """
        )
    ).rules

    assert trigger_words(rule) == (
        "journey */product* → */cart in 300 s, not via */help* · 2× */product* · return"
    )
