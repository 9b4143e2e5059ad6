"""What the HTTPS API does: accept a transactional email or a campaign, report status, unsubscribe.

A campaign's audience is inline (written to the bucket as JSONL) or an object already in the bucket
(``audience_object``, CSV or JSONL), whose header is checked here — a missing object or a CSV without
an ``email`` column is the caller's error (``UnusableAudience`` → 422), not a split that fails later.

Accepting is idempotent (the IETF draft "The Idempotency-Key HTTP Header Field"): with an
``Idempotency-Key`` the key is recorded first, in flight, with the request's hash and random ids
(``store.idempotency``); a concurrent request with the key is refused (``KeyInFlight``, 409), one with
another body too (``Conflict``, 422), a finished one replays the first response (``Accepted.replayed``),
and one whose first attempt crashed takes the key over and finishes the same work with the same ids
(every write of it is conditional). An expired key is new: new ids.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from massmailer import exports, recipients
from massmailer import unsubscribe as unsubscribe_pages
from massmailer.audiences import AudienceError, open_audience
from massmailer.blobs import Blobs, Uploads
from massmailer.lifecycle import MOVES, Action, Actor, TransitionNotAllowed, UnknownCampaign, check
from massmailer.models import (
    MAX_STORED_CONTENT_BYTES,
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
from massmailer.store import (
    Campaigns,
    CampaignSummary,
    Exports,
    IdempotencyKeys,
    Messages,
    StoredCampaign,
    StoreUnavailable,
    Suppressions,
)
from massmailer.unsubscribe import Unsubscriber

logger = logging.getLogger(__name__)


class Conflict(Exception):
    """An Idempotency-Key was reused with a different request (422)."""


class KeyInFlight(Exception):
    """A request with the same Idempotency-Key is being worked on (409, ``Retry-After`` seconds)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("a request with this Idempotency-Key is in progress; retry after it finishes")
        self.retry_after = retry_after


class ContentTooLarge(Exception):
    """The content cannot be stored in one table item (413 naming the limit)."""

    def __init__(self, size: int) -> None:
        super().__init__(
            f"subject, html, text and headers are {size} bytes as stored (UTF-8 JSON); "
            f"at most {MAX_STORED_CONTENT_BYTES}"
        )
        self.size = size


@dataclass(frozen=True)
class Accepted:
    """An accepted request's answer: its status code and body; ``replayed``: the first response to
    the same Idempotency-Key, returned again."""

    status_code: int
    body: dict[str, Any]
    replayed: bool = False


class NotFound(Exception):
    pass


class UnusableAudience(Exception):
    """``audience_object`` names an object the splitter could not read; the message says why."""


class InvalidQuery(Exception):
    """A query parameter that cannot be used (422 naming it)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


class NotExportable(Exception):
    """A campaign with nothing split yet (SCHEDULED) has no recipients to export (409)."""


class AcknowledgementRequired(Exception):
    """Resuming a campaign the guard paused needs ``{"acknowledge": <its cause>}`` (422, that field)."""


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
    exports: Exports | None = None  # recipient exports (massmailer.exports)
    uploads: Uploads | None = None  # the bucket, for their CSV objects' download links
    guard_defaults: dict[str, float | int] | None = None  # the stage's guard thresholds (Settings)


def _request_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _new_id(prefix: str) -> str:
    """A fresh id: random, also with an Idempotency-Key (the key record keeps it for retries)."""
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


# Refusals raised before the work writes anything: the key is forgotten, so the caller may fix the
# request and send it again with the same key.
_REFUSED_BEFORE_WRITING = (UnusableAudience, ContentTooLarge)


def _idempotent(
    ctx: IntakeContext,
    scope: str,
    key: str | None,
    body: dict[str, Any],
    ids: dict[str, str],
    work: Callable[[dict[str, str]], dict[str, Any]],
) -> Accepted:
    """Run ``work(ids)`` (202) once per Idempotency-Key: recorded first, in flight; see the module."""
    if not key:
        return Accepted(202, work(ids))
    name = f"{scope}:{key}"
    claim = ctx.idempotency.begin(name, _request_hash(body), ids)
    if claim.outcome == "mismatch":
        raise Conflict("Idempotency-Key was already used with a different request body")
    if claim.outcome == "in_flight":
        raise KeyInFlight(claim.retry_after)
    if claim.outcome == "finished":
        return Accepted(claim.status_code, claim.response or {}, replayed=True)
    try:
        response = work(claim.ids)
        ctx.idempotency.finish(name, claim.token, 202, response)
    except _REFUSED_BEFORE_WRITING:
        with suppress(StoreUnavailable):
            ctx.idempotency.forget(name, claim.token)
        raise
    except BaseException:
        # Failed half-way (store or queue unavailable): end the lease now, so a retry takes the key
        # over at once and finishes the same work with the same ids (otherwise it waits the lease).
        with suppress(StoreUnavailable):
            ctx.idempotency.release(name, claim.token)
        raise
    return Accepted(202, response)


def _check_stored_size(document: dict[str, Any]) -> None:
    """The content must fit one DynamoDB item (400 KB) with room for the record's own fields."""
    size = len(json.dumps(document, separators=(",", ":"), ensure_ascii=False, default=str).encode())
    if size > MAX_STORED_CONTENT_BYTES:
        raise ContentTooLarge(size)


def _content(request: Content) -> Content:
    """The template part of a request (subject, bodies, attachments), as stored with the message."""
    return Content.model_validate({name: getattr(request, name) for name in Content.model_fields})


def accept_message(ctx: IntakeContext, request: SendRequest, idempotency_key: str | None = None) -> Accepted:
    compile_content(request)  # a template that does not compile is the caller's error (TemplateError)
    payload = {
        "content": _content(request).model_dump(mode="json"),
        "from_address": request.from_address or ctx.from_address,
        "from_name": request.from_name,
        "reply_to": request.reply_to,
        "headers": request.headers,
    }
    _check_stored_size(payload)

    def work(ids: dict[str, str]) -> dict[str, Any]:
        message_id = ids["message_id"]
        record = MessageRecord(
            message_id=message_id,
            email=request.to,
            status=Status.QUEUED,
            lane=request.priority,
            created_at=datetime.now(UTC),
        )
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
        return {"message_id": message_id, "status": Status.QUEUED.value, "lane": request.priority.value}

    body = request.model_dump(mode="json", by_alias=True)
    return _idempotent(ctx, "message", idempotency_key, body, {"message_id": _new_id("msg")}, work)


def accept_campaign(
    ctx: IntakeContext,
    request: CampaignRequest,
    idempotency_key: str | None = None,
    tags: dict[str, str] | None = None,  # automation_id/run_id of the automation run that asks
) -> Accepted:
    compile_content(request)
    _check_stored_size(
        {
            "name": request.name,
            "content": _content(request).model_dump(mode="json"),
            "from_name": request.from_name,
            "headers": request.headers,
        }
    )

    def work(ids: dict[str, str]) -> dict[str, Any]:
        return _create_campaign(ctx, request, ids["campaign_id"], tags)

    body = request.model_dump(mode="json", by_alias=True)
    return _idempotent(ctx, "campaign", idempotency_key, body, {"campaign_id": _new_id("cmp")}, work)


def _create_campaign(
    ctx: IntakeContext, request: CampaignRequest, campaign_id: str, tags: dict[str, str] | None = None
) -> dict[str, Any]:
    """Every write here is conditional or repeats the same bytes, so a retry that took the key over
    finishes the same campaign: ``put_campaign`` never resets an existing one's counters or cursor,
    and the answer is the stored campaign's status."""
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
        guard={**(ctx.guard_defaults or {}), **(request.guard.model_dump(exclude_none=True) if request.guard else {})}
        or None,
        **(tags or {}),
    )
    status = campaign.status
    if not ctx.campaigns.put_campaign(campaign):  # conditional: a retry finds the campaign as it is now
        stored = ctx.campaigns.get_campaign(campaign_id)
        status = reported_status(stored) if stored is not None else status
        # Only a campaign still SCHEDULED, or SPLITTING from the start, may lack the split request
        # (the first try died before sending it); past that it went out, and a pause or cancel stands.
        if not (
            status == CampaignStatus.SCHEDULED
            or (status == CampaignStatus.SPLITTING and stored is not None and stored.split_cursor == 0)
        ):
            return _accepted_campaign(request, campaign_id, status)
    split = SplitRequest(campaign_id=campaign_id).model_dump_json()
    if scheduled and request.send_at is not None:
        if ctx.schedules is None:
            raise RuntimeError("scheduling is not configured")
        ctx.schedules.once(f"campaign-{campaign_id}", request.send_at, SPLIT_QUEUE.key, split)
    else:
        ctx.queue.send(SPLIT_QUEUE.key, [split])
    return _accepted_campaign(request, campaign_id, status)


def _accepted_campaign(request: CampaignRequest, campaign_id: str, status: CampaignStatus) -> dict[str, Any]:
    return {
        "campaign_id": campaign_id,
        "status": status.value,
        "recipients": len(request.audience) if request.audience is not None else None,  # object: see counts
        "lane": request.priority.value,
    }


def message_status(ctx: IntakeContext, message_id: str) -> dict[str, Any]:
    item = ctx.messages.get_message(message_id)
    if not item:
        raise NotFound(f"message {message_id} not found")
    fields = MessageRecord.model_fields
    record = {k: item.get(k, None if fields[k].is_required() else fields[k].default) for k in fields if k != "email"}
    record["lane"] = record.get("lane") or Lane.HIGH.value
    for name in recipients.TIME_FIELDS:
        record[name] = recipients.api_time(record.get(name))
    return record


def reported_status(stored: StoredCampaign | CampaignSummary) -> CampaignStatus:
    """The status as the API reports it: a SENDING campaign whose split is done and whose recipients
    are all settled is COMPLETED (``lifecycle``: COMPLETED is reported, not stored)."""
    status = stored.campaign.status if isinstance(stored, StoredCampaign) else stored.status
    if status == CampaignStatus.SENDING and stored.split_done and stored.counts.queued == 0:
        return CampaignStatus.COMPLETED
    return status


LIST_DEFAULT_LIMIT = 50
LIST_MAX_LIMIT = 500
_CURSOR_VERSION = 1


_utc = recipients.utc_text


def _encode_cursor(position: dict[str, Any]) -> str:
    raw = json.dumps({"v": _CURSOR_VERSION, **position}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, fields: dict[str, type]) -> dict[str, Any]:
    """The position a cursor this API returned holds (``fields``: its names and types), else 422."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        data = None
    if (
        not isinstance(data, dict)
        or data.get("v") != _CURSOR_VERSION
        or set(data) != {"v", *fields}
        or not all(type(data[name]) is kind for name, kind in fields.items())
    ):
        raise InvalidQuery("cursor", "is not a cursor this API returned")
    return data


def _limit(limit: str | None) -> int:
    try:
        size = LIST_DEFAULT_LIMIT if limit is None else int(limit)
    except ValueError:
        size = 0
    if not 1 <= size <= LIST_MAX_LIMIT:
        raise InvalidQuery("limit", f"must be an integer from 1 to {LIST_MAX_LIMIT}")
    return size


def _list_item(summary: CampaignSummary, now: datetime) -> dict[str, Any]:
    """One campaign in the list: progress is the fraction of the recipients split so far that are
    settled (sent, failed, suppressed or cancelled); ``eta`` only while SENDING, from the rate since
    sending started (``send_at`` or creation; a pause counts as sending time, so it errs late)."""
    counts = summary.counts
    status = reported_status(summary)
    settled = counts.total - counts.queued
    item: dict[str, Any] = {
        "campaign_id": summary.campaign_id,
        "name": summary.name,
        "status": status.value,
        "created_at": _utc(summary.created_at),
        "counts": counts.model_dump(),
        "progress": round(settled / counts.total, 4) if counts.total else float(status == CampaignStatus.COMPLETED),
        "eta": None,
    }
    started = max(summary.created_at, summary.send_at or summary.created_at)
    elapsed = (now - started).total_seconds()
    done = counts.sent + counts.failed + counts.cancelled  # what the senders got through (suppressed: at split)
    if status == CampaignStatus.SENDING and summary.split_done and counts.queued and done and elapsed > 0:
        item["eta"] = _utc(now + timedelta(seconds=counts.queued * elapsed / done))
    return item


def list_campaigns(
    ctx: IntakeContext,
    limit: str | None = None,
    cursor: str | None = None,
    status: str | None = None,
    name_prefix: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``GET /v1/campaigns``: newest first, ``limit`` (default 50, at most 500) per page, an opaque
    ``cursor`` to the next page (null at the end), filtered by reported ``status`` and ``name_prefix``.
    A page may hold fewer items than ``limit`` (even none) with a cursor: the store examines a
    bounded number of campaigns per request, so a rare filter never turns into a long read."""
    size = _limit(limit)
    wanted: CampaignStatus | None = None
    if status is not None:
        try:
            wanted = CampaignStatus(status.upper())
        except ValueError:
            raise InvalidQuery("status", f"must be one of {', '.join(s.value for s in CampaignStatus)}") from None
    after = str(_decode_cursor(cursor, {"after": str})["after"]) if cursor else None
    keep = None if wanted is None else (lambda s: reported_status(s) == wanted)
    page = ctx.campaigns.list_campaigns(size, after, name_prefix or None, keep)
    moment = now or datetime.now(UTC)
    return {
        "items": [_list_item(s, moment) for s in page.items],
        "next_cursor": _encode_cursor({"after": page.after}) if page.after is not None else None,
    }


RECIPIENTS_BUDGET = 1000  # recipients examined per request at most, however few match the filter


def recipient_status(status: str | None) -> Status | None:
    """A ``status`` filter on recipients (any case), else 422 naming it."""
    if status is None:
        return None
    try:
        return Status(status.upper())
    except ValueError:
        raise InvalidQuery("status", f"must be one of {', '.join(s.value for s in Status)}") from None


def campaign_recipients(
    ctx: IntakeContext,
    campaign_id: str,
    status: str | None = None,
    limit: str | None = None,
    cursor: str | None = None,
) -> dict[str, Any]:
    """``GET /v1/campaigns/{id}/recipients``: every recipient the split queued or suppressed, in
    audience order, with its record (``massmailer.recipients.walk``). At most ``RECIPIENTS_BUDGET``
    recipients are examined per request, so a page filtered by a rare status may be short (even
    empty) and still carry a cursor."""
    if ctx.campaigns.status_of(campaign_id) is None:
        raise NotFound(f"campaign {campaign_id} not found")
    size = _limit(limit)
    wanted = recipient_status(status)
    position = _decode_cursor(cursor, {"r": int, "i": int}) if cursor else {"r": 0, "i": 0}
    at = recipients.Position(int(position["r"]), int(position["i"]))
    items: list[dict[str, Any]] = []
    walked = recipients.walk(ctx.campaigns, ctx.messages, campaign_id, wanted, at, RECIPIENTS_BUDGET, size)
    for item, after in walked:
        at = after
        if item is not None:
            items.append(item)
            if len(items) == size:
                break
    else:  # the budget ran out, or the rosters did
        if not ctx.campaigns.rosters(campaign_id, at.roster, limit=1):
            return {"items": items, "next_cursor": None}
    return {"items": items, "next_cursor": _encode_cursor({"r": at.roster, "i": at.index})}


def export_recipients(ctx: IntakeContext, campaign_id: str, status: str | None = None) -> dict[str, Any]:
    """``POST /v1/campaigns/{id}/recipients/export``: a PENDING export the splitter function runs."""
    if ctx.exports is None:
        raise RuntimeError("recipient exports are not configured")
    wanted = recipient_status(status)
    current = ctx.campaigns.status_of(campaign_id)
    if current is None:
        raise NotFound(f"campaign {campaign_id} not found")
    if current == CampaignStatus.SCHEDULED:
        raise NotExportable(f"campaign {campaign_id} is SCHEDULED: no recipient is split before send_at")
    job = exports.new_export(ctx.campaigns, ctx.exports, ctx.queue, campaign_id, wanted, datetime.now(UTC).timestamp())
    return exports.view(job)


def export_status(ctx: IntakeContext, export_id: str) -> dict[str, Any]:
    """``GET /v1/exports/{id}``: status, rows; once DONE a presigned URL (``exports.URL_SECONDS``)."""
    job = ctx.exports.get(export_id) if ctx.exports is not None else None
    if job is None:
        raise NotFound(f"export {export_id} not found")
    return exports.view(job, ctx.uploads)


def campaign_status(ctx: IntakeContext, campaign_id: str) -> dict[str, Any]:
    stored = ctx.campaigns.get_campaign(campaign_id)
    if stored is None:
        raise NotFound(f"campaign {campaign_id} not found")
    c = stored.campaign
    status = reported_status(stored)
    view: dict[str, Any] = {
        "campaign_id": c.campaign_id,
        "name": c.name,
        "status": status.value,
        "lane": c.lane.value,
        "created_at": _utc(c.created_at),
        "send_at": _utc(c.send_at) if c.send_at else None,
        "last_error": c.last_error,
        "split_done": stored.split_done,
        "counts": stored.counts.model_dump(),
        "guard": c.guard or ctx.guard_defaults,  # the thresholds the bounce/complaint guard applies
    }
    if c.automation_id:  # made by an automation's run
        view["automation_id"], view["run_id"] = c.automation_id, c.run_id
    if status in (CampaignStatus.PAUSED, CampaignStatus.FAILED, CampaignStatus.CANCELLED):
        view["reason"] = c.last_error
    if status == CampaignStatus.PAUSED and stored.pause_cause:
        view["paused_by"] = "guard"
        view["pause_cause"] = stored.pause_cause
        view["pause_rates"] = stored.pause_rates
    elif status == CampaignStatus.PAUSED:
        view["paused_by"] = "operator"
    return view


def _operator_move(ctx: IntakeContext, campaign_id: str, action: Action) -> StoredCampaign:
    """The campaign, if the operator's ``action`` is allowed from its reported state (else 409/404)."""
    stored = ctx.campaigns.get_campaign(campaign_id)
    if stored is None:
        raise NotFound(f"campaign {campaign_id} not found")
    check(action, Actor.OPERATOR, reported_status(stored))
    return stored


def _transition(
    ctx: IntakeContext,
    campaign_id: str,
    action: Action,
    sets: dict[str, Any],
    expect: dict[str, Any] | None = None,
) -> CampaignStatus:
    try:
        return ctx.campaigns.transition(campaign_id, MOVES[action], sets, expect)
    except UnknownCampaign:
        raise NotFound(f"campaign {campaign_id} not found") from None


def release_parked(ctx: IntakeContext, campaign_id: str) -> int:
    """Re-enqueue every batch parked while the campaign was paused, deleting each once it is on its
    queue. A crash between the two enqueues it again later: harmless, the sender's claims dedupe."""
    released = 0
    for parked in ctx.campaigns.parked_batches(campaign_id):
        ctx.queue.send(parked.lane, [parked.body])
        ctx.campaigns.unpark(campaign_id, parked.key)
        released += 1
    if released:
        logger.info("parked batches released", extra={"campaign_id": campaign_id, "batches": released})
    return released


def pause_campaign(ctx: IntakeContext, campaign_id: str) -> dict[str, Any]:
    """PAUSE: once this returns, no sender hands a recipient of the campaign to a provider (each
    reads the status, strongly consistent, just before each send) and the splitter stops at its
    next checkpoint; batches arriving meanwhile are parked in the table."""
    _operator_move(ctx, campaign_id, Action.PAUSE)
    _transition(ctx, campaign_id, Action.PAUSE, {"last_error": "paused by operator"})
    return campaign_status(ctx, campaign_id)


def resume_campaign(ctx: IntakeContext, campaign_id: str, acknowledge: str | None = None) -> dict[str, Any]:
    """RESUME: back to SPLITTING (a new split request continues from the checkpoint) or SENDING,
    then the parked batches go back on their lanes. A campaign the guard paused needs the cause
    acknowledged; the guard then rates only what is sent after the resume."""
    stored = ctx.campaigns.get_campaign(campaign_id)
    if stored is None:
        raise NotFound(f"campaign {campaign_id} not found")
    try:
        check(Action.RESUME, Actor.OPERATOR, reported_status(stored))
    except TransitionNotAllowed:
        if stored.campaign.status in (CampaignStatus.SPLITTING, CampaignStatus.SENDING):
            release_parked(ctx, campaign_id)  # a resume that died after its status write: finish it
        raise
    if stored.pause_cause and acknowledge != stored.pause_cause:
        raise AcknowledgementRequired(
            f"the bounce/complaint guard paused this campaign ({stored.campaign.last_error}); "
            f'resume with {{"acknowledge": "{stored.pause_cause}"}}'
        )
    counts = stored.counts
    sets = {
        "last_error": None,
        "pause_cause": None,
        "pause_rates": None,
        "resumes": stored.resumes + 1,
        "guard_from": {"sent": counts.sent, "bounced": counts.bounced, "complained": counts.complained},
    }
    target = _transition(ctx, campaign_id, Action.RESUME, sets, expect={"resumes": stored.resumes})
    if target == CampaignStatus.SPLITTING:
        ctx.queue.send(SPLIT_QUEUE.key, [SplitRequest(campaign_id=campaign_id).model_dump_json()])
    release_parked(ctx, campaign_id)
    return campaign_status(ctx, campaign_id)


def cancel_campaign(ctx: IntakeContext, campaign_id: str) -> dict[str, Any]:
    """CANCEL (final): a scheduled campaign's schedule is deleted; the splitter stops at its next
    checkpoint; senders stop before the next send; batches still queued (and the parked ones,
    released) are dropped on arrival, their recipients recorded CANCELLED and counted."""
    stored = _operator_move(ctx, campaign_id, Action.CANCEL)
    _transition(ctx, campaign_id, Action.CANCEL, {"last_error": "cancelled by operator"})
    if stored.campaign.status == CampaignStatus.SCHEDULED and ctx.schedules is not None:
        ctx.schedules.delete(f"campaign-{campaign_id}")  # the splitter refuses START_SPLIT anyway
    release_parked(ctx, campaign_id)
    return campaign_status(ctx, campaign_id)


def unsubscribe_page(ctx: IntakeContext, token: str) -> unsubscribe_pages.Page:
    """GET of the unsubscribe link: a page with one button; changes nothing."""
    if ctx.unsubscriber is None:
        raise RuntimeError("unsubscribe signing key is not configured")
    return unsubscribe_pages.show(ctx.unsubscriber, ctx.messages, ctx.campaigns, token)


def unsubscribe(
    ctx: IntakeContext, token: str, body: str | bytes | None, content_type: str | None
) -> unsubscribe_pages.Page:
    """POST of the unsubscribe link (RFC 8058 one-click, or the page's button)."""
    if ctx.unsubscriber is None:
        raise RuntimeError("unsubscribe signing key is not configured")
    return unsubscribe_pages.confirm(
        ctx.unsubscriber, ctx.messages, ctx.campaigns, ctx.suppressions, token, body, content_type
    )
