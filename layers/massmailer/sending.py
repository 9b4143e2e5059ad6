"""The send path: claim -> render -> send through the provider chain -> record, per recipient.

``send_batch`` handles one queue message (≤50 recipients of one campaign, or one transactional
email). Its guarantees:

* a recipient is sent only after a conditional claim, so a duplicate delivery of the same batch, or
  two senders racing, sends it once;
* a recipient recorded SENT is never claimed again; if recording fails after the provider accepted
  the message, the recipient is *not* re-enqueued (the record is retried, then left SENDING, and the
  SES Send event or an operator settles it) — sending twice is worse than a stale status;
* provider-level failures fail over along the chain; what every provider refused is re-enqueued with
  a delay per the retry policy (throttling never uses an attempt); hard bounces fail at once and
  suppress the address; a refusal of the message by every provider (``Refused``) fails it without
  suppressing; a send whose outcome is unknown is never failed over (``_maybe_sent``); nothing the
  retry policy can retry is left to reach the DLQ (only a store or queue outage outlasting the
  queue's ``maxReceiveCount`` visibility timeouts, about an hour, does).

Pause, resume, cancel (``massmailer.lifecycle``):

* just before handing a claimed recipient to a provider, the sender reads the campaign's status,
  strongly consistent (``Campaigns.status_of``: one read of META's status, 1 RCU per email); once
  a pause or cancel has committed, no new send starts. A recipient stopped there is released
  (RETRY_WAIT) and re-enqueued, to be parked or dropped on arrival like any other batch;
* a batch arriving while the campaign is PAUSED is parked in the table (``Campaigns.park_batch``,
  conditioned on PAUSED in the same transaction); the resume re-enqueues it. No polling while
  paused, and a resume gets the batches going at once;
* a batch of a CANCELLED (or FAILED) campaign is dropped on arrival: each recipient not yet
  finished is claimed and recorded CANCELLED (or FAILED with the campaign's reason), and counted
  once with the batch (``count_batch``), so ``queued`` reaches 0.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from massmailer.addresses import address_key, mask_address
from massmailer.attachments import AttachmentResolver, MissingAttachment
from massmailer.errors import HardBounce, Refused, RenderError, SendError, SoftBounce, Throttled, UnknownOutcome
from massmailer.lifecycle import MOVES, Action, TransitionNotAllowed
from massmailer.mime import Attachment, OutgoingEmail, build_message
from massmailer.models import BatchMessage, BatchRecipient, CampaignStatus, Content, Status
from massmailer.providers.chain import Pending, ProviderChain
from massmailer.queues import Queue
from massmailer.rendering import CompiledTemplate, TemplateCache
from massmailer.spec import CAMPAIGN_HEADER, MESSAGE_HEADER, SQS_MAX_DELAY_SECONDS, SUPPRESSION_RECHECK_SECONDS
from massmailer.store import Campaigns, Markers, Messages, StoredCampaign, StoreUnavailable, Suppressions
from massmailer.store.suppressions import CLOCK_SKEW_SECONDS as SUPPRESSION_CLOCK_SKEW
from massmailer.unsubscribe import Unsubscriber

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4  # the first attempt + 3 retries
    base_delay: float = 30.0  # transient: base * 2**(attempt-1), equal jitter
    max_delay: float = 3600.0
    soft_bounce_interval: float = 900.0  # fixed interval for mailbox-full
    throttle_delay: float = 10.0  # throttled: delay doubling per throttle in a row, jittered, no attempt used
    throttle_max_delay: float = float(SQS_MAX_DELAY_SECONDS)  # ... up to one SQS delay (no hop)
    throttle_budget: float = 24 * 3600.0  # throttled this long after the first attempt: FAILED
    record_retries: int = 3  # tries to record SENT after a successful send
    maybe_sent_window: float = 900.0  # how long a "maybe sent" SES email waits for its Send event

    def delay_for(self, error: SendError, attempt: int, rng: random.Random, throttles: int = 0) -> float:
        if isinstance(error, Throttled):
            ceiling = self.throttle_delay * 2 ** min(max(throttles, 0), 30)
            return min(self.throttle_max_delay, ceiling * (1 + rng.random()))
        if isinstance(error, SoftBounce):
            return self.soft_bounce_interval
        ceiling = min(self.max_delay, self.base_delay * 2 ** max(attempt - 1, 0))
        return max(1.0, rng.uniform(ceiling / 2, ceiling))  # "equal jitter": never zero


@dataclass
class BatchReport:
    """What happened to the recipients of one batch (for counters, metrics and tests)."""

    outcomes: Counter[str] = field(default_factory=Counter)
    providers: Counter[str] = field(default_factory=Counter)
    fallbacks: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def merge(self, other: BatchReport) -> None:
        self.outcomes.update(other.outcomes)
        self.providers.update(other.providers)
        self.fallbacks += other.fallbacks
        self.errors.update(other.errors)


@dataclass
class SenderContext:
    campaigns: Campaigns
    messages: Messages
    suppressions: Suppressions
    markers: Markers
    queue: Queue
    chain: ProviderChain
    from_address: str
    unsubscriber: Unsubscriber
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    templates: TemplateCache = field(default_factory=TemplateCache)
    attachments: AttachmentResolver | None = None
    concurrency: int = 8
    lease_seconds: int = 300
    time_margin: float = 10.0  # stop starting sends when less than this is left in the invocation
    campaign_ttl: float = 30.0
    clock: Callable[[], float] = time.time
    rng: random.Random = field(default_factory=random.Random)
    _campaigns: dict[str, tuple[float, StoredCampaign]] = field(default_factory=dict)

    def forget_campaign(self, campaign_id: str) -> None:
        self._campaigns.pop(campaign_id, None)

    def campaign(self, campaign_id: str) -> StoredCampaign | None:
        """The campaign, cached briefly so a batch costs no read but a pause is seen within seconds."""
        cached = self._campaigns.get(campaign_id)
        now = self.clock()
        if cached and now - cached[0] < self.campaign_ttl:
            return cached[1]
        stored = self.campaigns.get_campaign(campaign_id)
        if stored is not None:
            self._campaigns[campaign_id] = (now, stored)
        return stored


@dataclass
class _Job:
    """What one recipient needs to be sent: the compiled template and the sender fields."""

    template: CompiledTemplate
    from_address: str
    from_name: str | None
    reply_to: str | None
    headers: dict[str, str]
    bulk: bool
    content: Content


@dataclass
class _Result:
    recipient: BatchRecipient
    # sent | failed | suppressed | skipped | retry | retry_throttled | retry_store | busy | deferred
    # | maybe_sent (waits for SES's event) | sent_unconfirmed (SMTP, cut after the content)
    outcome: str
    provider: str | None = None
    fallbacks: int = 0
    error: SendError | None = None
    delay: float = 0.0


# A record's final state → the outcome it is counted as (see ``send_batch``'s ``delivery``).
_FINISHED_AS: dict[str, str] = {
    Status.SENT: "sent",
    Status.DELIVERED: "sent",
    Status.SOFT_BOUNCED: "sent",
    Status.BOUNCED: "sent",
    Status.COMPLAINED: "sent",
    Status.FAILED: "failed",
    Status.SUPPRESSED: "suppressed",
    Status.CANCELLED: "cancelled",
}
_RUNNING = frozenset({CampaignStatus.SPLITTING, CampaignStatus.SENDING})
_SETTLED_AS = {
    CampaignStatus.CANCELLED: (Status.CANCELLED, "cancelled"),
    CampaignStatus.FAILED: (Status.FAILED, "failed"),
}


def send_batch(
    ctx: SenderContext,
    batch: BatchMessage,
    time_left: Callable[[], float] | None = None,
    delivery: str | None = None,
    redelivered: bool = False,
) -> BatchReport:
    """Send one queue message. Raises ``StoreUnavailable``/``QueueUnavailable`` to have it redelivered.

    ``time_left`` (seconds left in this invocation): recipients not started when it runs low are
    re-enqueued untouched, so a Lambda timeout never lands between a send and its record.

    ``delivery`` (the queue message's id, the same on every redelivery): the campaign's counters
    move once per batch, at the end; when an attempt dies before that, the redelivery finds the
    recipients it had finished — claimed for this same message — and counts them, so a crash leaves
    the counters neither short nor doubled. A ``redelivered`` message that was counted had been
    processed to the end (its retries re-enqueued before the count): it is acknowledged untouched.
    (The lease, 300 s, is shorter than the lanes' visibility timeout, so a redelivery never finds its
    own dead attempt's lease still live.)
    """
    report = BatchReport()
    if delivery and redelivered and ctx.markers.was_counted(delivery):
        report.outcomes["already_done"] += len(batch.recipients)
        return report
    now = ctx.clock()
    delays = [(r, r.not_before - now) for r in batch.recipients if r.not_before and r.not_before > now + 1]
    waiting = [r for r, _ in delays]
    if waiting:  # a long retry delay, chained through SQS's 15-minute maximum
        for r, delay in delays:
            _requeue(ctx, batch, [r], delay)
        report.outcomes["waiting"] += len(waiting)
        batch = batch.model_copy(update={"recipients": [r for r in batch.recipients if r not in waiting]})
        if not batch.recipients:
            return report
    campaign: StoredCampaign | None = None
    settle: CampaignStatus | None = None
    if batch.kind == "campaign":
        campaign = ctx.campaign(batch.campaign_id or "")
        if campaign is None:
            logger.error("batch for unknown campaign dropped", extra={"campaign_id": batch.campaign_id})
            report.outcomes["dropped"] += len(batch.recipients)
            return report
        status = _park_while_paused(ctx, batch, delivery)
        if status is None:
            report.outcomes["parked"] += len(batch.recipients)
            return report
        if status in _SETTLED_AS:
            settle = status
            if status == CampaignStatus.FAILED:
                campaign = ctx.campaigns.get_campaign(batch.campaign_id or "") or campaign  # its reason

    if settle is not None and campaign is not None:
        reason = campaign.campaign.last_error or f"campaign {settle.value.lower()}"
        settled = settle

        def drop(recipient: BatchRecipient) -> _Result:
            return _settle_unsent(ctx, batch, recipient, settled, reason, delivery)

        results = [_guarded(ctx, r, partial(drop, r)) for r in batch.recipients]
        return _account(ctx, batch, results, report, delivery)

    parked = _wait_while_parked(ctx, batch, now, report, delivery)
    if parked is not None:
        return parked

    checked = batch.suppression_checked_at
    if batch.kind == "campaign" and checked is not None and 0 <= now - checked < SUPPRESSION_RECHECK_SECONDS:
        # The splitter checked them moments ago: only what was suppressed since can apply (one Query).
        suppressed = ctx.suppressions.suppressed_since(checked - SUPPRESSION_CLOCK_SKEW)
    else:
        suppressed = ctx.suppressions.suppressed_among(r.email for r in batch.recipients)

    def prepare(recipient: BatchRecipient) -> _Result | _Prepared:
        if time_left is not None and time_left() < ctx.time_margin:
            return _Result(recipient, "deferred")
        parked = _wait_for_park(ctx, recipient)  # parked by an earlier recipient of this batch
        if parked is not None:
            return parked
        return _guarded(ctx, recipient, lambda: _prepare(ctx, batch, campaign, recipient, suppressed, delivery))

    def one(recipient: BatchRecipient) -> _Result:
        step = prepare(recipient)
        return step if isinstance(step, _Result) else _complete(ctx, step)

    if ctx.concurrency > 1 and len(batch.recipients) > 1:
        with ThreadPoolExecutor(max_workers=min(ctx.concurrency, len(batch.recipients))) as pool:
            results = list(pool.map(one, batch.recipients))
    else:
        # One at a time, one ahead: the next email is claimed, rendered and handed to the provider
        # before this one's answer is awaited, so a pipelining provider (SMTP) sends its MAIL/RCPT/
        # DATA along with this one's content. At most one recipient is claimed and not yet settled.
        results = []
        in_flight: _Prepared | None = None
        for recipient in batch.recipients:
            step = prepare(recipient)
            if in_flight is not None:
                results.append(_complete(ctx, in_flight))
                in_flight = None
            if isinstance(step, _Prepared):
                in_flight = step
            else:
                results.append(step)
        if in_flight is not None:
            results.append(_complete(ctx, in_flight))
    return _account(ctx, batch, results, report, delivery)


def _account(
    ctx: SenderContext, batch: BatchMessage, results: list[_Result], report: BatchReport, delivery: str | None
) -> BatchReport:
    """Re-enqueue what is to be retried, then count the batch's outcomes on its campaign (once)."""
    # One re-enqueued message per kind of retry (not per recipient): the group waits for its longest delay.
    retries: dict[str, tuple[float, list[BatchRecipient]]] = {}
    for result in results:
        report.outcomes[result.outcome] += 1
        if result.provider:
            report.providers[result.provider] += 1
        report.fallbacks += result.fallbacks
        if result.error is not None:
            report.errors[result.error.reason] += 1
        if result.outcome in (
            "retry",
            "retry_throttled",
            "retry_store",
            "busy",
            "deferred",
            "halted",
            "waiting_parked",
            "maybe_sent",
        ):
            delay, group = retries.get(result.outcome, (0.0, []))
            group.append(result.recipient)
            retries[result.outcome] = (max(delay, result.delay), group)
    for delay, group in retries.values():
        _requeue(ctx, batch, group, delay)

    if batch.campaign_id:
        deltas = {
            "sent": report.outcomes["sent"] + report.outcomes["sent_unconfirmed"],
            "maybe_sent": report.outcomes["maybe_sent"] + report.outcomes["sent_unconfirmed"],
            "failed": report.outcomes["failed"],
            "suppressed": report.outcomes["suppressed"],
            "cancelled": report.outcomes["cancelled"],
            "retried": report.outcomes["retry"] + report.outcomes["retry_throttled"],
        }
        if delivery:
            ctx.campaigns.count_batch(batch.campaign_id, delivery, deltas)  # once per queue message
        else:
            ctx.campaigns.add_campaign_counts(batch.campaign_id, deltas)
    return report


def _park_while_paused(ctx: SenderContext, batch: BatchMessage, delivery: str | None) -> CampaignStatus | None:
    """The campaign's status now (strongly consistent); None when the batch was parked because the
    campaign is PAUSED. A park refused (resumed or cancelled meanwhile) reads the status again."""
    campaign_id = batch.campaign_id or ""
    for _ in range(3):
        status = ctx.campaigns.status_of(campaign_id)
        if status != CampaignStatus.PAUSED:
            return status or CampaignStatus.CANCELLED
        key = delivery or uuid.uuid4().hex
        if ctx.campaigns.park_batch(campaign_id, key, batch.lane.value, batch.model_dump_json()):
            logger.info("batch parked: campaign paused", extra={"campaign_id": campaign_id, "key": key})
            return None
    # Paused, resumed and paused again under our feet, three times: wait on the queue instead.
    _requeue(ctx, batch, batch.recipients, SQS_MAX_DELAY_SECONDS)
    return None


def _settle_unsent(
    ctx: SenderContext,
    batch: BatchMessage,
    recipient: BatchRecipient,
    campaign_status: CampaignStatus,
    reason: str,
    delivery: str | None,
) -> _Result:
    """A recipient of a cancelled (or failed) campaign: recorded CANCELLED (or FAILED) unless finished."""
    status, outcome = _SETTLED_AS[campaign_status]
    return _claim_and_settle(ctx, batch, recipient, status, outcome, reason, delivery)


def _claim_and_settle(
    ctx: SenderContext,
    batch: BatchMessage,
    recipient: BatchRecipient,
    status: Status,
    outcome: str,
    reason: str,
    delivery: str | None,
) -> _Result:
    """Claim a recipient not to send it but to record it ``status`` (unless finished or in flight)."""
    claim = ctx.messages.claim_recipient(
        recipient.message_id,
        email=recipient.email,
        campaign_id=batch.campaign_id,
        lane=batch.lane.value,
        attempt=recipient.attempt,
        lease_seconds=ctx.lease_seconds,
        delivery=delivery,
    )
    if not claim.claimed:
        if claim.status == Status.SENDING.value:  # a send in flight elsewhere; if it died, settle later
            remaining = float(claim.record.get("lease_until", 0)) - ctx.clock()
            return _Result(recipient, "busy", delay=max(remaining, 0) + 1)
        if recipient.maybe_sent and claim.status in _FINISHED_AS:  # a check: SES's event settled it
            return _Result(recipient, _FINISHED_AS[claim.status])
        if delivery and claim.record.get("delivery") == delivery and claim.status in _FINISHED_AS:
            return _Result(recipient, _FINISHED_AS[claim.status])
        return _Result(recipient, "skipped")
    ctx.messages.record_failed(recipient.message_id, status, reason)
    return _Result(recipient, outcome)


THROTTLED_PAST_BUDGET = "throttled past budget"


def _past_budget(ctx: SenderContext, recipient: BatchRecipient, now: float) -> bool:
    first = recipient.first_attempt_at
    return first is not None and now - first >= ctx.policy.throttle_budget


def _wait_for_park(ctx: SenderContext, recipient: BatchRecipient) -> _Result | None:
    """The recipient waits (unclaimed) for the first park to end, when every provider is parked
    and its budget is not spent; None otherwise. Reads the chain's cached view only."""
    now = ctx.clock()
    until = ctx.chain.parked_until()
    if until <= now or _past_budget(ctx, recipient, now):
        return None
    delay = min(until - now + ctx.rng.uniform(0, ctx.policy.throttle_delay), ctx.policy.throttle_max_delay)
    waiting = recipient.model_copy(update={"first_attempt_at": recipient.first_attempt_at or now})
    return _Result(waiting, "waiting_parked", delay=delay)


def _wait_while_parked(
    ctx: SenderContext, batch: BatchMessage, now: float, report: BatchReport, delivery: str | None
) -> BatchReport | None:
    """When every provider is parked (daily quota used up), the batch waits on the queue until the
    first park ends (≤ 15 minutes a hop): no claim, no record write. Recipients past the throttling
    budget are recorded FAILED instead. None when some provider may be tried now."""
    if ctx.chain.parked_until() <= now:
        return None
    waiting = [w for w in (_wait_for_park(ctx, r) for r in batch.recipients) if w is not None]
    expired = [r for r in batch.recipients if _past_budget(ctx, r, now)]
    if waiting:
        _requeue(ctx, batch, [w.recipient for w in waiting], max(w.delay for w in waiting))
        report.outcomes["waiting_parked"] += len(waiting)
    if not expired:
        return report
    reason = f"{THROTTLED_PAST_BUDGET} ({ctx.policy.throttle_budget / 3600:g} h): every provider parked"
    results = [
        _guarded(ctx, r, partial(_claim_and_settle, ctx, batch, r, Status.FAILED, "failed", reason, delivery))
        for r in expired
    ]
    return _account(ctx, batch, results, report, delivery)


def _requeue(ctx: SenderContext, batch: BatchMessage, recipients: list[BatchRecipient], delay: float) -> None:
    """Put recipients back on their lane after ``delay`` seconds (hops of ≤15 minutes beyond that)."""
    if delay > SQS_MAX_DELAY_SECONDS:
        due = ctx.clock() + delay
        recipients = [r.model_copy(update={"not_before": due}) for r in recipients]
    message = BatchMessage(kind=batch.kind, campaign_id=batch.campaign_id, lane=batch.lane, recipients=recipients)
    ctx.queue.send(
        batch.lane.value, [message.model_dump_json()], delay_seconds=int(min(max(delay, 0), SQS_MAX_DELAY_SECONDS))
    )


def _job_for(ctx: SenderContext, campaign: StoredCampaign | None, record: dict[str, Any]) -> _Job:
    if campaign is not None:
        c = campaign.campaign
        return _Job(
            template=ctx.templates.get(c.campaign_id, c.content),
            from_address=c.from_address,
            from_name=c.from_name,
            reply_to=c.reply_to,
            headers=c.headers,
            bulk=True,
            content=c.content,
        )
    payload = json.loads(record.get("payload") or "{}")
    content = Content.model_validate(payload["content"])
    return _Job(
        template=CompiledTemplate(content),
        content=content,
        from_address=payload.get("from_address") or ctx.from_address,
        from_name=payload.get("from_name"),
        reply_to=payload.get("reply_to"),
        headers=payload.get("headers") or {},
        bulk=False,
    )


def _guarded(ctx: SenderContext, recipient: BatchRecipient, step: Callable[[], Any]) -> Any:
    """Never raises for one recipient's trouble: a store outage before the provider accepted the
    message re-enqueues the recipient (nothing was sent, so a retry is safe); after it, the outcome
    is logged and the recipient is not retried (see ``_record_sent``)."""
    try:
        return step()
    except StoreUnavailable as exc:
        logger.error(
            "store unavailable; recipient re-enqueued",
            extra={"message_id": recipient.message_id, "error": str(exc)},
        )
        return _Result(recipient, "retry_store", delay=ctx.policy.throttle_delay * (1 + ctx.rng.random()))


@dataclass
class _Prepared:
    """A claimed recipient whose email is on its way (``pending``)."""

    recipient: BatchRecipient
    token: str
    pending: Pending


def _prepare(
    ctx: SenderContext,
    batch: BatchMessage,
    campaign: StoredCampaign | None,
    recipient: BatchRecipient,
    suppressed: set[str],
    delivery: str | None = None,
) -> _Result | _Prepared:
    """Claim, check, render and build the recipient's email, and hand it to the provider chain;
    or the final result when there is nothing to send (taken, finished, suppressed, unrenderable)."""
    messages = ctx.messages
    claim = messages.claim_recipient(
        recipient.message_id,
        email=recipient.email,
        campaign_id=batch.campaign_id,
        lane=batch.lane.value,
        attempt=recipient.attempt,
        lease_seconds=ctx.lease_seconds,
        delivery=delivery,
    )
    if not claim.claimed:
        if claim.status == Status.SENDING.value:
            # Someone else holds a live lease: come back when it has expired, in case they died.
            remaining = float(claim.record.get("lease_until", 0)) - ctx.clock()
            return _Result(recipient, "busy", delay=max(remaining, 0) + 1)
        if recipient.maybe_sent and claim.status in _FINISHED_AS:
            # The check of a "maybe sent" email: SES's event settled it within the window; count that.
            return _Result(recipient, _FINISHED_AS[claim.status])
        if delivery and claim.record.get("delivery") == delivery and claim.status in _FINISHED_AS:
            # Finished by an earlier attempt at this same queue message, which died before counting.
            return _Result(recipient, _FINISHED_AS[claim.status])
        return _Result(recipient, "skipped")  # already sent or finished: a duplicate delivery

    if address_key(recipient.email) in suppressed:
        messages.record_failed(recipient.message_id, Status.SUPPRESSED, "address is on the suppression list")
        return _Result(recipient, "suppressed")

    try:
        job = _job_for(ctx, campaign, claim.record)
        variables = {"email": recipient.email, **recipient.variables}
        headers = dict(job.headers)
        headers[MESSAGE_HEADER] = recipient.message_id
        if job.bulk:
            token = ctx.unsubscriber.token(recipient.message_id)  # opaque: the address is not in it
            variables.setdefault("unsubscribe_url", ctx.unsubscriber.url(recipient.message_id, token))
            headers[CAMPAIGN_HEADER] = batch.campaign_id or ""
            headers.update(ctx.unsubscriber.headers(recipient.message_id, token))
        rendered = job.template.render(variables)
        attachments = _attachments_for(ctx, job, variables, batch.campaign_id)
        raw = build_message(
            message_id=recipient.message_id,
            from_address=job.from_address,
            from_name=job.from_name,
            reply_to=job.reply_to,
            to=recipient.email,
            subject=rendered.subject,
            html=rendered.html,
            text=rendered.text,
            headers=headers,
            attachments=attachments,
        )
    except (RenderError, ValueError, MissingAttachment) as exc:
        messages.record_failed(recipient.message_id, Status.FAILED, str(exc))
        return _Result(recipient, "failed")

    if batch.kind == "campaign" and ctx.campaigns.status_of(batch.campaign_id or "") not in _RUNNING:
        # Paused or cancelled since the batch arrived: no new send starts once that has committed.
        messages.record_retry(recipient.message_id, claim.token, "campaign not running")
        return _Result(recipient, "halted")
    tags = {"message_id": recipient.message_id}
    if batch.campaign_id:
        tags["campaign_id"] = batch.campaign_id
    email = OutgoingEmail(
        message_id=recipient.message_id,
        sender=job.from_address,
        recipient=recipient.email,
        raw=raw,
        tags=tags,
    )
    return _Prepared(recipient, claim.token, ctx.chain.submit(email, lane=batch.lane.value))


def _complete(ctx: SenderContext, prepared: _Prepared) -> _Result:
    """Wait for the provider's answer; record the send, or handle the error."""
    return _guarded(ctx, prepared.recipient, lambda: _settle(ctx, prepared))


def _settle(ctx: SenderContext, prepared: _Prepared) -> _Result:
    recipient = prepared.recipient
    try:
        sent = prepared.pending.result()
    except SendError as exc:
        return _handle_send_error(ctx, recipient, prepared.token, exc)
    _record_sent(ctx, recipient, prepared.token, sent.receipt.provider, sent.receipt.provider_message_id)
    return _Result(recipient, "sent", provider=sent.receipt.provider, fallbacks=sent.fallbacks)


def _maybe_sent(ctx: SenderContext, recipient: BatchRecipient, token: str, exc: UnknownOutcome) -> _Result:
    """The provider may have taken the email: never failed over, never resent at once.

    SES (``confirmable``): the record stays SENDING, flagged ``maybe_sent``, its lease held for the
    window; SES's Send/Delivery/Bounce event settles it meanwhile as for any send. A check is
    re-enqueued for the end of the window: it finds the record settled (and counts it), or claims it
    (the lease has run out, no event came) and sends again.
    SMTP: a relay sends no event to wait for, and a resend after a cut following the content is a
    likely duplicate, so the email is recorded SENT, flagged ``maybe_sent``, and not resent."""
    provider = exc.provider or "unknown"
    if not exc.confirmable:
        _record_sent(ctx, recipient, token, provider, recipient.message_id, maybe_sent=True)
        return _Result(recipient, "sent_unconfirmed", provider=provider, error=exc)
    window = ctx.policy.maybe_sent_window
    until = ctx.clock() + window
    if not ctx.messages.record_maybe_sent(recipient.message_id, token, provider, exc.describe(), until):
        return _Result(recipient, "skipped", error=exc)  # our claim was lost: its new holder settles it
    check = recipient.model_copy(update={"maybe_sent": True, "attempt": recipient.attempt + 1})
    return _Result(check, "maybe_sent", provider=provider, error=exc, delay=window)


def _attachments_for(
    ctx: SenderContext, job: _Job, variables: dict[str, Any], campaign_id: str | None
) -> list[Attachment]:
    """Resolve attachments by name; a missing one is handled by the template's policy."""
    refs = job.content.attachments
    if not refs:
        return []
    if ctx.attachments is None:
        raise MissingAttachment("attachments are not configured for this sender (no bucket)")
    policy = job.content.attachment_policy
    try:
        return ctx.attachments.resolve(refs, variables, skip_missing=policy == "send_without")
    except MissingAttachment as exc:
        if policy == "fail_campaign" and campaign_id:
            try:
                ctx.campaigns.transition(campaign_id, MOVES[Action.FAIL], {"last_error": f"stopped: {exc}"})
            except TransitionNotAllowed:  # failed by another recipient already, or cancelled: that stands
                pass
            ctx.forget_campaign(campaign_id)
        raise


def _record_sent(
    ctx: SenderContext, recipient: BatchRecipient, token: str, provider: str, pmid: str, maybe_sent: bool = False
) -> None:
    for attempt in range(1, ctx.policy.record_retries + 1):
        try:
            if maybe_sent:
                ctx.messages.record_sent(recipient.message_id, token, provider, pmid, maybe_sent=True)
            else:
                ctx.messages.record_sent(recipient.message_id, token, provider, pmid)
            return
        except StoreUnavailable as exc:
            if attempt == ctx.policy.record_retries:
                # The provider accepted the message: never send it again. No retry is enqueued for
                # this recipient and the batch is acknowledged; the record stays SENDING until the
                # provider's Send/Delivery notification settles it.
                logger.error(
                    "sent but could not record; not retrying the send",
                    extra={"message_id": recipient.message_id, "error": str(exc)},
                )
                return
            time.sleep(0.05 * attempt)


_ADDRESS = re.compile(r"[^\s<>@:;,\"']+@[^\s<>@:;,\"']+")


def _handle_send_error(ctx: SenderContext, recipient: BatchRecipient, token: str, exc: SendError) -> _Result:
    messages = ctx.messages
    logger.warning(
        "send failed",
        extra={
            "message_id": recipient.message_id,
            "to": mask_address(recipient.email),
            "error": _ADDRESS.sub(lambda m: mask_address(m.group()), exc.describe()),  # relays echo addresses
        },
    )
    if isinstance(exc, UnknownOutcome):
        return _maybe_sent(ctx, recipient, token, exc)
    if isinstance(exc, Refused):  # every provider refused the message: FAILED, the address untouched
        messages.record_failed(recipient.message_id, Status.FAILED, exc.describe())
        return _Result(recipient, "failed", error=exc)
    if isinstance(exc, HardBounce):
        messages.record_failed(recipient.message_id, Status.FAILED, exc.describe())
        ctx.suppressions.suppress(recipient.email, "bounce", {"bounceType": "Permanent", "error": exc.describe()})
        return _Result(recipient, "failed", error=exc)
    now = ctx.clock()
    first = recipient.first_attempt_at or now
    throttled = isinstance(exc, Throttled)
    if throttled and now - first >= ctx.policy.throttle_budget:
        reason = f"{THROTTLED_PAST_BUDGET} ({ctx.policy.throttle_budget / 3600:g} h): {exc.describe()}"
        messages.record_failed(recipient.message_id, Status.FAILED, reason)
        return _Result(recipient, "failed", error=exc)
    attempts_used = recipient.attempt + (1 if exc.uses_attempt else 0)
    if exc.uses_attempt and attempts_used >= ctx.policy.max_attempts:
        messages.record_failed(
            recipient.message_id, Status.FAILED, f"gave up after {attempts_used} attempts: {exc.describe()}"
        )
        return _Result(recipient, "failed", error=exc)
    messages.record_retry(recipient.message_id, token, exc.describe())
    delay = ctx.policy.delay_for(exc, attempts_used, ctx.rng, throttles=recipient.throttles)
    if throttled:  # back by the end of the budget, for the verdict
        delay = min(delay, max(1.0, first + ctx.policy.throttle_budget - now))
    retry = BatchRecipient(
        message_id=recipient.message_id,
        email=recipient.email,
        variables=recipient.variables,
        attempt=attempts_used,
        first_attempt_at=first,
        throttles=recipient.throttles + 1 if throttled else 0,
    )
    return _Result(retry, "retry" if exc.uses_attempt else "retry_throttled", error=exc, delay=delay)
