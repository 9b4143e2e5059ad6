"""The bounce/complaint guard's thresholds per campaign: validated in the request (422 naming the
field), stored merged over the stage's defaults, shown by GET and applied by the guard."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lambdas.ingest import handler as ingest_handler
from massmailer import intake
from massmailer.memory import InMemoryBlobs, InMemoryQueue
from massmailer.models import CampaignRequest
from massmailer.notifications import DEFAULT_GUARD, pause_campaign_over_threshold
from massmailer.settings import Settings
from massmailer.store import InMemoryStores, Stores
from tests.support import api_event, context

STAGE = Settings(table_name="t", guard_min_sent=50).guard_defaults()


def _ctx(stores: InMemoryStores) -> intake.IntakeContext:
    return intake.IntakeContext(
        stores.campaigns,
        stores.messages,
        stores.suppressions,
        stores.idempotency,
        InMemoryQueue(),
        InMemoryBlobs(),
        None,
        "from@example.com",
        guard_defaults=STAGE,
    )


def _request(**extra: Any) -> CampaignRequest:
    return CampaignRequest.model_validate(
        {"name": "g", "subject": "s", "text": "t", "audience": [{"email": "a@example.com"}], **extra}
    )


@pytest.mark.parametrize(
    ("guard", "field"),
    [
        ({"bounce_rate": 0}, "guard.bounce_rate"),
        ({"bounce_rate": 1.5}, "guard.bounce_rate"),
        ({"complaint_rate": -0.1}, "guard.complaint_rate"),
        ({"min_sent": 0}, "guard.min_sent"),
        ({"min_events": 0}, "guard.min_events"),
        ({"bounce": 0.1}, "guard.bounce"),
    ],
)
def test_bad_thresholds_are_422_naming_the_field(guard: dict[str, Any], field: str) -> None:
    body = {"name": "g", "subject": "s", "text": "t", "audience": [{"email": "a@example.com"}], "guard": guard}
    response = ingest_handler.handler(api_event("POST", "/v1/campaigns", body), context("ingest"))
    assert response["statusCode"] == 422, response
    assert [e["field"] for e in json.loads(response["body"])["errors"]] == [field]


def test_a_campaigns_thresholds_are_stored_over_the_stage_defaults_and_shown() -> None:
    stores = Stores.in_memory()
    ctx = _ctx(stores)
    own = intake.accept_campaign(ctx, _request(guard={"bounce_rate": 0.5, "min_events": 1})).body["campaign_id"]
    plain = intake.accept_campaign(ctx, _request()).body["campaign_id"]
    assert intake.campaign_status(ctx, own)["guard"] == {**STAGE, "bounce_rate": 0.5, "min_events": 1}
    assert (
        intake.campaign_status(ctx, plain)["guard"]
        == STAGE
        == {
            "bounce_rate": 0.05,
            "complaint_rate": 0.001,
            "min_sent": 50,
            "min_events": 3,
        }
    )


def test_the_guard_applies_the_campaigns_own_thresholds() -> None:
    stores = Stores.in_memory()
    ctx = _ctx(stores)
    strict = intake.accept_campaign(ctx, _request(guard={"bounce_rate": 0.01, "min_sent": 10, "min_events": 1})).body
    lenient = intake.accept_campaign(ctx, _request(guard={"bounce_rate": 0.9})).body
    for accepted in (strict, lenient):
        stores.campaigns.add_campaign_counts(accepted["campaign_id"], {"sent": 200, "bounced": 20})  # 10 %
    # The default guard (5 %) would pause both; each campaign's own thresholds decide.
    assert pause_campaign_over_threshold(stores.campaigns, strict["campaign_id"], DEFAULT_GUARD) is not None
    assert pause_campaign_over_threshold(stores.campaigns, lenient["campaign_id"], DEFAULT_GUARD) is None
    assert intake.campaign_status(ctx, strict["campaign_id"])["pause_cause"] == "bounce_rate"
