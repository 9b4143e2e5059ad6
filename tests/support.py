"""Test helpers shared by the tiers: API Gateway events, a Lambda context, fixture loading."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from local.apigw import api_event
from local.lambda_context import LambdaContext
from massmailer.memory import InMemoryQueue
from massmailer.models import Campaign, CampaignStatus, Content, Lane
from massmailer.providers.chain import ProviderChain
from massmailer.sending import SenderContext
from massmailer.store import InMemoryStores
from massmailer.unsubscribe import SigningKey, Unsubscriber

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


TEST_UNSUBSCRIBER = Unsubscriber(keys=(SigningKey("k1", b"k" * 16),), base_url="https://u.example")


def sender_context(store: InMemoryStores, chain: ProviderChain, **fields: Any) -> SenderContext:
    """A sender over in-memory stores and an in-memory queue, signing with a test key; ``fields``
    set or override any other ``SenderContext`` field (policy, clock, rng, concurrency, …)."""
    return SenderContext(
        **{
            "campaigns": store.campaigns,
            "messages": store.messages,
            "suppressions": store.suppressions,
            "markers": store.markers,
            "queue": InMemoryQueue(),
            "chain": chain,
            "from_address": "noreply@example.com",
            "unsubscriber": TEST_UNSUBSCRIBER,
            **fields,
        }
    )
