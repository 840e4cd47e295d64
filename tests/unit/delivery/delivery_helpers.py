"""Invitations for the delivery hub's tests (and the metrics tests that count what it does)."""

from __future__ import annotations

from schemas.invitations import Invitation, parse_instant

T0 = parse_instant("2026-12-01T09:00:00.000Z")


def invitation(
    n: int = 1, visitor: str = "v1", expires: str = "2026-12-01T09:01:00.000Z"
) -> Invitation:
    return Invitation(
        invitation_id=f"inv-{n}",
        visitor_id=visitor,
        session_id="s1",
        site_id="shop",
        rule_id="pricing-hesitation",
        url="https://shop.example/pricing",
        triggered_at=f"2026-12-01T09:00:0{n}.000Z",
        priority=10,
        queue="sales",
        message="Any questions about our plans?",
        expires_at=expires,
        context={"dwell_ms": 30000},
    )
