"""Test helpers shared by the tiers: API Gateway events, a Lambda context, fixture loading."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from local.apigw import api_event
from local.lambda_context import LambdaContext
from massmailer.models import Campaign, CampaignStatus, Content, Lane

__all__ = ["EVENTS", "ROOT", "api_event", "context", "load_event", "make_campaign"]

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "tests" / "events"


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def context(name: str = "test") -> LambdaContext:
    return LambdaContext(function_name=name)


def make_campaign(
    campaign_id: str = "c1",
    *,
    content: Content | None = None,
    lane: Lane = Lane.LOW,
    status: CampaignStatus = CampaignStatus.SENDING,
    from_address: str = "news@example.com",
) -> Campaign:
    """A stored campaign as ingest would create it (template, sender, audience key)."""
    from datetime import UTC, datetime

    return Campaign(
        campaign_id=campaign_id,
        name=f"campaign {campaign_id}",
        content=content or Content(subject="Hello", text="Hello"),
        lane=lane,
        from_address=from_address,
        status=status,
        audience_key=f"audiences/{campaign_id}.jsonl",
        created_at=datetime.now(UTC),
    )
