"""The bounce/complaint guard and an operator racing over one campaign, on DynamoDB (moto) and the
in-memory twin: whatever the interleaving, one consistent state, and nothing undoes the operator."""

from __future__ import annotations

from typing import Any

import pytest

from massmailer import intake
from massmailer.lifecycle import TransitionNotAllowed
from massmailer.memory import InMemoryBlobs, InMemoryQueue
from massmailer.models import CampaignStatus
from massmailer.notifications import RateGuard, pause_campaign_over_threshold
from massmailer.store import Stores
from tests.support import make_campaign

GUARD = RateGuard(min_sent=100, min_events=3, bounce_rate=0.05)


def _intake(stores: Stores) -> intake.IntakeContext:
    return intake.IntakeContext(
        campaigns=stores.campaigns,
        messages=stores.messages,
        suppressions=stores.suppressions,
        idempotency=stores.idempotency,
        queue=InMemoryQueue(),
        blobs=InMemoryBlobs(),
        schedules=None,
        from_address="news@example.com",
    )


class ReadHook:
    """The campaigns repository, running ``after_read`` once, right after the guard's read."""

    def __init__(self, inner: Any, after_read: Any) -> None:
        self._inner, self._after_read = inner, after_read

    def get_campaign(self, campaign_id: str) -> Any:
        stored = self._inner.get_campaign(campaign_id)
        hook, self._after_read = self._after_read, None
        if hook:
            hook()
        return stored

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _over_threshold(stores: Stores) -> intake.IntakeContext:
    stores.campaigns.put_campaign(make_campaign("c1"))
    stores.campaigns.advance_split("c1", 0, 1, {"total": 1000}, True)
    stores.campaigns.add_campaign_counts("c1", {"sent": 100, "bounced": 6})
    return _intake(stores)


def test_a_guard_that_read_before_the_operators_resume_cannot_pause_again(stores: Stores) -> None:
    ctx = _over_threshold(stores)
    assert pause_campaign_over_threshold(stores.campaigns, "c1", GUARD) is not None  # guard A pauses
    paused = intake.campaign_status(ctx, "c1")
    assert paused["status"] == "PAUSED" and paused["pause_cause"] == "bounce_rate"
    assert paused["pause_rates"]["bounced"] == 6 and paused["pause_rates"]["bounce_rate"] == 0.06
    with pytest.raises(intake.AcknowledgementRequired, match="bounce_rate"):
        intake.resume_campaign(ctx, "c1")
    with pytest.raises(intake.AcknowledgementRequired):
        intake.resume_campaign(ctx, "c1", acknowledge="complaint_rate")

    # Guard B read the campaign while it was PAUSED… then the operator resumed, and B moves on.
    hooked = ReadHook(stores.campaigns, lambda: intake.resume_campaign(ctx, "c1", acknowledge="bounce_rate"))
    assert pause_campaign_over_threshold(hooked, "c1", GUARD) is None
    assert intake.campaign_status(ctx, "c1")["status"] == "SENDING"
    # A later bounce: the guard rates what came after the resume (7/100 before it, nothing since).
    stores.campaigns.add_campaign_counts("c1", {"bounced": 1})
    assert pause_campaign_over_threshold(stores.campaigns, "c1", GUARD) is None
    view = intake.campaign_status(ctx, "c1")
    assert view["status"] == "SENDING" and "reason" not in view and view["last_error"] is None


def test_a_guard_that_read_before_an_earlier_resume_is_refused_by_the_resume_count(stores: Stores) -> None:
    ctx = _over_threshold(stores)

    def operator() -> None:  # between guard B's read (SENDING, 0 resumes) and its write
        pause_campaign_over_threshold(stores.campaigns, "c1", GUARD)  # guard A
        intake.resume_campaign(ctx, "c1", acknowledge="bounce_rate")

    assert pause_campaign_over_threshold(ReadHook(stores.campaigns, operator), "c1", GUARD) is None
    stored = stores.campaigns.get_campaign("c1")
    assert stored is not None and stored.campaign.status == CampaignStatus.SENDING and stored.resumes == 1
    assert stored.pause_cause is None and stored.campaign.last_error is None


def test_an_operator_pause_and_a_guard_pause_racing_leave_one_pause_by_whoever_came_first(stores: Stores) -> None:
    ctx = _over_threshold(stores)
    hooked = ReadHook(stores.campaigns, lambda: intake.pause_campaign(ctx, "c1"))
    assert pause_campaign_over_threshold(hooked, "c1", GUARD) is None  # refused: already PAUSED
    view = intake.campaign_status(ctx, "c1")
    assert view["status"] == "PAUSED" and view["paused_by"] == "operator" and view["reason"] == "paused by operator"
    with pytest.raises(TransitionNotAllowed, match="from PAUSED to PAUSED"):
        intake.pause_campaign(ctx, "c1")
    intake.resume_campaign(ctx, "c1")  # an operator's own pause needs no acknowledgement
    assert intake.campaign_status(ctx, "c1")["status"] == "SENDING"
