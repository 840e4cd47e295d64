"""Invitation, Decision and the instant forms they carry."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.errors import InvalidInput
from schemas.events import DLQ_REASONS, DeadLetterReason
from schemas.instants import MAX_MS, MIN_MS
from schemas.invitations import (
    SUPPRESSION_REASONS,
    Decision,
    Invitation,
    Suppression,
    decision_to_json,
    format_instant,
    invitation_to_json,
    parse_decision,
    parse_instant,
    parse_invitation,
)

IDENTITY = {
    "invitation_id": "inv-7f3a",
    "visitor_id": "v-1",
    "session_id": "s-1",
    "site_id": "shop",
    "rule_id": "pricing-hesitation",
    "url": "https://shop.example/pricing",
    "triggered_at": "2026-12-01T09:00:30.000Z",
    "priority": 10,
}
INVITATION = {
    **IDENTITY,
    "queue": "sales",
    "message": "Hi there, any questions about our plans?",
    "locale": None,
    "expires_at": "2026-12-01T09:01:30.000Z",
    "context": {"dwell_ms": 30000, "journey": ["https://shop.example/pricing"]},
}


def invitation(**fields: Any) -> bytes:
    return orjson.dumps({**INVITATION, **fields})


def decision(**fields: Any) -> bytes:
    return orjson.dumps({**IDENTITY, "outcome": "invited", "rules_version": "abc", **fields})


def fields_of(parse: Any, raw: bytes) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        parse(raw)
    return [path for path, _ in caught.value.problems]


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (1796115630000, "2026-12-01T09:00:30.000Z"),
        (0, "1970-01-01T00:00:00.000Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
        (1796115630007, "2026-12-01T09:00:30.007Z"),
        (MIN_MS, "0001-01-01T00:00:00.000Z"),
    ],
)
def test_format_instant_writes_utc_with_milliseconds(ms: int, text: str) -> None:
    assert format_instant(ms) == text
    assert parse_instant(text) == ms


def test_format_instant_refuses_instants_outside_years_1_to_9999() -> None:
    with pytest.raises(ValueError, match="outside years 1 to 9999"):
        format_instant(MAX_MS + 1)


@pytest.mark.parametrize(
    "text", ["2026-12-01T09:00:30", "2026-12-01", "12/01/2026 09:00", "2026-12-01T25:00:00Z"]
)
def test_parse_instant_refuses_text_without_offset_or_not_a_time(text: str) -> None:
    with pytest.raises(ValueError, match=r"offset|RFC 3339|real date"):
        parse_instant(text)


@given(st.integers(min_value=MIN_MS, max_value=MAX_MS))
def test_instants_round_trip(ms: int) -> None:
    assert parse_instant(format_instant(ms)) == ms


def test_an_invitation_round_trips() -> None:
    inv = parse_invitation(invitation())
    assert isinstance(inv, Invitation)
    assert inv.context["dwell_ms"] == 30000
    assert parse_invitation(invitation_to_json(inv)) == inv
    assert orjson.loads(invitation_to_json(inv))["locale"] is None  # nulls are written out


def test_newer_fields_are_ignored_so_old_consumers_keep_working() -> None:
    assert parse_invitation(invitation(channel="whatsapp")) == parse_invitation(invitation())
    assert parse_decision(decision(score=0.3)).outcome == "invited"


@pytest.mark.parametrize(
    "field",
    [
        "invitation_id",
        "visitor_id",
        "session_id",
        "site_id",
        "rule_id",
        "queue",
        "message",
        "url",
        "triggered_at",
        "expires_at",
        "priority",
    ],
)
def test_missing_invitation_field_is_named(field: str) -> None:
    data = {**INVITATION}
    del data[field]
    assert fields_of(parse_invitation, orjson.dumps(data)) == [field]


@pytest.mark.parametrize(
    "instant",
    [
        "2026-12-01T09:00:30Z",
        "2026-12-01T09:00:30.000+00:00",
        "2026-12-01 09:00:30.000Z",
        "2026-13-01T09:00:30.000Z",
        1796115630000,
    ],
)
def test_instants_must_be_the_canonical_form(instant: Any) -> None:
    assert fields_of(parse_invitation, invitation(triggered_at=instant)) == ["triggered_at"]


def test_expiry_before_the_trigger_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"expires_at: .* is before triggered_at"):
        parse_invitation(invitation(expires_at="2026-12-01T09:00:29.999Z"))


def test_invitation_errors_say_what_they_are() -> None:
    with pytest.raises(InvalidInput, match=r"^invitation: priority: must be an integer"):
        parse_invitation(invitation(priority="high"))


@pytest.mark.parametrize("raw", [b"{", b"[]", b"null"])
def test_an_invitation_that_is_not_an_object_is_refused(raw: bytes) -> None:
    assert fields_of(parse_invitation, raw) == [""]


def test_invitations_are_frozen() -> None:
    inv = parse_invitation(invitation())
    with pytest.raises(ValueError, match="frozen"):
        inv.priority = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    "fields",
    [
        {"outcome": "invited"},
        {"outcome": "suppressed", "reason": "holdout"},
        {"outcome": "suppressed", "reason": "a-reason-added-later", "rules_version": None},
        {"outcome": "shadow"},
        {"outcome": "shadow", "reason": None},
        {"outcome": "shadow", "reason": "per_session"},
        {"outcome": "shadow", "reason": "a-reason-added-later"},
    ],
)
def test_decisions_round_trip(fields: dict[str, Any]) -> None:
    d = parse_decision(decision(**fields))
    assert isinstance(d, Decision)
    assert parse_decision(decision_to_json(d)) == d


@pytest.mark.parametrize("reason", [None, ""])
def test_suppressed_without_reason_names_the_field(reason: str | None) -> None:
    raw = decision(outcome="suppressed", reason=reason)
    assert fields_of(parse_decision, raw) == ["reason"]
    with pytest.raises(InvalidInput, match="required when outcome is 'suppressed'"):
        parse_decision(raw)


def test_a_missing_reason_on_a_suppression_is_named_too() -> None:
    assert fields_of(parse_decision, decision(outcome="suppressed")) == ["reason"]


def test_invited_with_a_reason_is_refused() -> None:
    assert fields_of(parse_decision, decision(reason="holdout")) == ["reason"]


def test_shadow_with_an_empty_reason_is_refused() -> None:
    raw = decision(outcome="shadow", reason="")
    assert fields_of(parse_decision, raw) == ["reason"]
    with pytest.raises(InvalidInput, match="null or a reason when outcome is 'shadow'"):
        parse_decision(raw)


def test_unknown_outcome_is_named() -> None:
    assert fields_of(parse_decision, decision(outcome="maybe")) == ["outcome"]


def test_the_reasons_are_listed_once_and_written_as_their_values() -> None:
    assert SUPPRESSION_REASONS == ("holdout", "per_session", "per_day", "min_gap",
                                   "after_decline", "lower_priority", "no_capacity",
                                   "budget")  # fmt: skip
    assert DLQ_REASONS == ("empty", "too_large", "invalid", "key_mismatch")
    assert all(type(reason) is str for reason in SUPPRESSION_REASONS + DLQ_REASONS)
    # An engine's decision dict holds the member; what is written is the value.
    written = orjson.dumps({"reason": Suppression.HOLDOUT, "dlq": DeadLetterReason.TOO_LARGE})
    assert written == b'{"reason":"holdout","dlq":"too_large"}'
    assert f"{Suppression.MIN_GAP}" == str(Suppression.MIN_GAP) == "min_gap"
    raw = decision(outcome="suppressed", reason=Suppression.PER_DAY)
    assert type(parse_decision(raw).reason) is str
