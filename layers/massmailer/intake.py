"""What the HTTPS API does: accept a transactional email or a campaign, report status, unsubscribe.

A campaign's audience is inline (written to the bucket as JSONL) or an object already in the bucket
(``audience_object``, CSV or JSONL), whose header is checked here — a missing object or a CSV without
an ``email`` column is the caller's error (``UnusableAudience`` → 422), not a split that fails later.

Accepting is idempotent: with an ``Idempotency-Key`` the ids are derived from the key, so a retried
request that crashed half-way finishes the same work instead of doing it twice, and a retried request
that had succeeded gets the first response back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from massmailer.audiences import AudienceError, open_audience
from massmailer.blobs import Blobs
from massmailer.models import (
    BatchMessage,
    BatchRecipient,
    Campaign,
    CampaignRequest,
    CampaignStatus,
    Content,
    Lane,
    MessageRecord,
    SendRequest,
    SplitRequest,
    Status,
)
from massmailer.queues import Queue
from massmailer.rendering import compile_content
from massmailer.schedules import Schedules
from massmailer.spec import AUDIENCE_PREFIX, SPLIT_QUEUE
from massmailer.splitting import audience_jsonl
from massmailer.store import Campaigns, IdempotencyKeys, Messages, Suppressions
from massmailer.unsubscribe import InvalidToken, Unsubscriber

logger = logging.getLogger(__name__)


class Conflict(Exception):
    """An Idempotency-Key was reused with a different request."""


class NotFound(Exception):
    pass


class UnusableAudience(Exception):
    """``audience_object`` names an object the splitter could not read; the message says why."""


@dataclass
class IntakeContext:
    campaigns: Campaigns
    messages: Messages
    suppressions: Suppressions
    idempotency: IdempotencyKeys
    queue: Queue
    blobs: Blobs
    schedules: Schedules | None
    from_address: str
    unsubscriber: Unsubscriber | None = None


def _request_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _new_id(prefix: str, idempotency_key: str | None) -> str:
    if idempotency_key:
        return f"{prefix}-{hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]}"
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def _replayed(ctx: IntakeContext, scope: str, key: str | None, body: dict[str, Any]) -> dict[str, Any] | None:
    if not key:
        return None
    earlier = ctx.idempotency.recall_request(f"{scope}:{key}")
    if earlier is None:
        return None
    if earlier["request_hash"] != _request_hash(body):
        raise Conflict("Idempotency-Key was already used with a different request body")
    return earlier["response"]


def _remember(ctx: IntakeContext, scope: str, key: str | None, body: dict[str, Any], response: dict[str, Any]) -> None:
    if key:
        ctx.idempotency.remember_request(f"{scope}:{key}", _request_hash(body), response)


def _content(request: Content) -> Content:
    """The template part of a request (subject, bodies, attachments), as stored with the message."""
    return Content.model_validate({name: getattr(request, name) for name in Content.model_fields})


def accept_message(ctx: IntakeContext, request: SendRequest, idempotency_key: str | None = None) -> dict[str, Any]:
    body = request.model_dump(mode="json", by_alias=True)
    replay = _replayed(ctx, "message", idempotency_key, body)
    if replay is not None:
        return replay
    compile_content(request)  # a template that does not compile is the caller's error (TemplateError)
    message_id = _new_id("msg", idempotency_key)
    now = datetime.now(UTC)
    record = MessageRecord(
        message_id=message_id, email=request.to, status=Status.QUEUED, lane=request.priority, created_at=now
    )
    payload = {
        "content": _content(request).model_dump(mode="json"),
        "from_address": request.from_address or ctx.from_address,
        "from_name": request.from_name,
        "reply_to": request.reply_to,
        "headers": request.headers,
    }
    created = ctx.messages.create_message(record, payload)
    existing = None if created else ctx.messages.get_message(message_id)
    if created or (existing and existing.get("status") == Status.QUEUED.value):
        # (Re-)enqueue; a duplicate queue message is harmless, the sender's claim dedupes it.
        batch = BatchMessage(
            kind="transactional",
            lane=request.priority,
            recipients=[BatchRecipient(message_id=message_id, email=request.to, variables=request.variables)],
        )
        ctx.queue.send(request.priority.value, [batch.model_dump_json()])
    response = {"message_id": message_id, "status": Status.QUEUED.value, "lane": request.priority.value}
    _remember(ctx, "message", idempotency_key, body, response)
    return response


def accept_campaign(ctx: IntakeContext, request: CampaignRequest, idempotency_key: str | None = None) -> dict[str, Any]:
    body = request.model_dump(mode="json", by_alias=True)
    replay = _replayed(ctx, "campaign", idempotency_key, body)
    if replay is not None:
        return replay
    compile_content(request)
    campaign_id = _new_id("cmp", idempotency_key)
    now = datetime.now(UTC)
    scheduled = request.send_at is not None and request.send_at > now
    audience_etag = None
    if request.audience_object is not None:
        # Referenced, not copied: read its header now (a clear 422 rather than a failed split later)
        # and pin its ETag, since the splitter's checkpoints are byte offsets into this very object.
        audience_key = request.audience_object
        try:
            audience = open_audience(ctx.blobs, audience_key)
        except AudienceError as exc:
            raise UnusableAudience(str(exc)) from None
        if audience.size <= audience.data_start:
            raise UnusableAudience(f"audience object {audience_key!r} has no rows")
        audience_etag = audience.etag
    else:
        audience_key = f"{AUDIENCE_PREFIX}{campaign_id}.jsonl"
        ctx.blobs.put(
            audience_key,
            audience_jsonl((m.email, m.variables) for m in request.audience or ()),
            content_type="application/x-ndjson",
        )
    campaign = Campaign(
        campaign_id=campaign_id,
        name=request.name,
        content=_content(request),
        lane=request.priority,
        from_address=request.from_address or ctx.from_address,
        from_name=request.from_name,
        reply_to=request.reply_to,
        headers=request.headers,
        status=CampaignStatus.SCHEDULED if scheduled else CampaignStatus.SPLITTING,
        audience_key=audience_key,
        audience_etag=audience_etag,
        created_at=now,
        send_at=request.send_at,
    )
    if ctx.campaigns.get_campaign(campaign_id) is None:
        ctx.campaigns.put_campaign(campaign)
    split = SplitRequest(campaign_id=campaign_id).model_dump_json()
    if scheduled and request.send_at is not None:
        if ctx.schedules is None:
            raise RuntimeError("scheduling is not configured")
        ctx.schedules.once(f"campaign-{campaign_id}", request.send_at, SPLIT_QUEUE.key, split)
    else:
        ctx.queue.send(SPLIT_QUEUE.key, [split])
    response = {
        "campaign_id": campaign_id,
        "status": campaign.status.value,
        "recipients": len(request.audience) if request.audience is not None else None,  # object: see counts
        "lane": request.priority.value,
    }
    _remember(ctx, "campaign", idempotency_key, body, response)
    return response


def message_status(ctx: IntakeContext, message_id: str) -> dict[str, Any]:
    item = ctx.messages.get_message(message_id)
    if not item:
        raise NotFound(f"message {message_id} not found")
    fields = MessageRecord.model_fields
    record = {k: item.get(k, None if fields[k].is_required() else fields[k].default) for k in fields if k != "email"}
    record["lane"] = record.get("lane") or Lane.HIGH.value
    return record


def campaign_status(ctx: IntakeContext, campaign_id: str) -> dict[str, Any]:
    stored = ctx.campaigns.get_campaign(campaign_id)
    if stored is None:
        raise NotFound(f"campaign {campaign_id} not found")
    c = stored.campaign
    status = c.status
    if status == CampaignStatus.SENDING and stored.split_done and stored.counts.queued == 0:
        status = CampaignStatus.COMPLETED
    return {
        "campaign_id": c.campaign_id,
        "name": c.name,
        "status": status.value,
        "lane": c.lane.value,
        "created_at": c.created_at.isoformat(),
        "send_at": c.send_at.isoformat() if c.send_at else None,
        "last_error": c.last_error,
        "split_done": stored.split_done,
        "counts": stored.counts.model_dump(),
    }


def unsubscribe(ctx: IntakeContext, token: str) -> dict[str, Any]:
    if ctx.unsubscriber is None:
        raise RuntimeError("unsubscribe signing key is not configured")
    try:
        email, campaign_id = ctx.unsubscriber.verify(token)
    except InvalidToken as exc:
        raise ValueError(str(exc)) from exc
    ctx.suppressions.suppress(email, "unsubscribe", {"campaign_id": campaign_id})
    return {"unsubscribed": True}
