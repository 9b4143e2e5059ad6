"""SES notifications → per-recipient status, the suppression list, soft-bounce counts, campaign counters.

What arrives (``tests/events/ses/EXPECT.md``, a copy of the shared fixtures, has a real or documented sample of each):

* identity notifications (``notificationType``: Bounce, Complaint, Delivery) and configuration-set
  events (``eventType``: also Send, Reject, Open, Click, ``Rendering Failure``, DeliveryDelay,
  Subscription) — the same JSON shapes under two type keys;
* inside an SNS notification: Lambda's ``Records[].Sns`` (SNS → Lambda) or an SQS body holding the
  SNS notification as a string (SNS → SQS → Lambda, so the SES JSON is decoded twice), or raw.

What each one does (``_OUTCOMES``):

==================  ================================  ============================  ===============
notification        record status (allowed from)      suppression                   counted
==================  ================================  ============================  ===============
Bounce Permanent    BOUNCED (SENDING, SENT,           bouncedRecipients, "bounce"   bounced
                    DELIVERED, SOFT_BOUNCED)
Bounce Transient,   SOFT_BOUNCED (SENDING, SENT)      none                          soft_bounced,
Undetermined                                                                        soft_bounces +1
Complaint           COMPLAINED (as BOUNCED)           complainedRecipients,         complained
                                                      "complaint"
Delivery            DELIVERED (SENDING, SENT,         none                          delivered
                    SOFT_BOUNCED)
Send                SENT (SENDING)                    none                          —
Reject, Rendering   FAILED (SENDING, SENT), for the   none: a message problem,      —
Failure             whole message ("*")               not an address problem
DeliveryDelay       unchanged; detail stored          none                          —
Open, Click         unchanged                         none                          opens/clicks +1
Subscription        unchanged (SES contact lists are  none                          —
                    not used; MassMailer's own
                    one-click unsubscribe is)
anything else       acknowledged and ignored          none                          —
==================  ================================  ============================  ===============

Only the recipients a bounce or complaint names are affected, never ``mail.destination``. A
transient bounce after DELIVERED does not downgrade the record (it is an auto-reply such as an
out-of-office, or a late deferral) but is still counted on the record's ``soft_bounces``.

Correlation: the sender tags every SES message with ``message_id`` (our record id) and
``campaign_id``; SES echoes them in ``mail.tags``. The tag is preferred — it also finds records
the sender could not mark SENT — and SES's ``mail.messageId`` (the provider-id index) is the
fallback. With no matching record the addresses are still suppressed (a hard bounce is a fact about
an address) and the report says which status would have been set.

Replays (SNS and SQS deliver at least once) are harmless:

* suppressions and status transitions are idempotent by themselves (``suppress`` is a conditional
  put; no transition's target is among its own ``allowed_from``), and campaign counters move only
  when a transition happened, so a replay cannot count twice;
* the one non-idempotent effect — the record's soft-bounce/open/click counter — and the metrics are
  gated by ``remember_event`` on a digest of the whole SES JSON plus the recipient, written *after*
  the idempotent effects so that a store failure half-way makes the retry redo them, not skip them.
  (Digests of messageId/feedbackId alone would collide: AWS's samples share both across types.)

Malformed notifications of a known type (e.g. ``bouncedRecipients`` not a list) raise
:class:`MalformedNotification`: they are poison messages, and the DLQ keeps them for an operator
instead of silently losing a bounce. Unknown types and text that is not a JSON object are
acknowledged and reported as ignored.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Annotated, Any, Protocol

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from massmailer.addresses import address_key, mask_address
from massmailer.lifecycle import MOVES, Action, TransitionNotAllowed
from massmailer.models import CampaignCounts, Status
from massmailer.spec import MESSAGE_HEADER
from massmailer.store import SENT_LIKE, Campaigns, Markers, Messages, StoredCampaign, Suppressions


class NotificationStores(Protocol):
    """The repositories a notification touches (``massmailer.store.Stores`` has them all)."""

    @property
    def campaigns(self) -> Campaigns: ...
    @property
    def messages(self) -> Messages: ...
    @property
    def suppressions(self) -> Suppressions: ...
    @property
    def markers(self) -> Markers: ...


logger = logging.getLogger(__name__)

WHOLE_MESSAGE = "*"  # the "address" of message-level outcomes (Reject, Rendering Failure)
DETAIL_MAX_CHARS = 500

# --------------------------------------------------------------------------------------------------
# The SES notification, as published. Tolerant: unknown fields are kept, every field is optional,
# JSON null is accepted wherever a list is expected.
# --------------------------------------------------------------------------------------------------


def _null_as_empty(value: Any) -> Any:
    return [] if value is None else value


class _SesModel(BaseModel):
    model_config = ConfigDict(extra="allow", alias_generator=to_camel)


class SesRecipient(_SesModel):
    """A recipient of a bounce, complaint or delivery delay."""

    email_address: str | None = None
    action: str | None = None
    status: str | None = None
    diagnostic_code: str | None = None


Recipients = Annotated[list[SesRecipient], BeforeValidator(_null_as_empty)]


class SesMail(_SesModel):
    message_id: str | None = None  # SES's id: the correlation key (commonHeaders.messageId is not)
    timestamp: str | None = None
    source: str | None = None
    source_arn: str | None = None
    sending_account_id: str | None = None
    destination: Annotated[list[str], BeforeValidator(_null_as_empty)] = []
    tags: dict[str, Any] | None = None  # values are lists of strings: {"message_id": ["cmp-1.ab12"]}
    headers_truncated: bool | None = None
    headers: list[dict[str, Any]] | None = None
    common_headers: dict[str, Any] | None = None

    def tag(self, name: str) -> str | None:
        value = (self.tags or {}).get(name)
        if isinstance(value, list):
            value = value[0] if value else None
        return value if isinstance(value, str) and value else None

    def header(self, name: str) -> str | None:
        """The first original header called ``name`` (SES includes them in event publishing, and in
        identity notifications when "include original headers" is on)."""
        wanted = name.lower()
        for entry in self.headers or []:
            if isinstance(entry, dict) and str(entry.get("name", "")).lower() == wanted:
                value = entry.get("value")
                return value.strip() if isinstance(value, str) and value.strip() else None
        return None


class SesBounce(_SesModel):
    bounce_type: str | None = None  # Permanent | Transient | Undetermined
    bounce_sub_type: str | None = None
    bounced_recipients: Recipients = []
    timestamp: str | None = None
    feedback_id: str | None = None
    reporting_mta: str | None = Field(default=None, alias="reportingMTA")
    remote_mta_ip: str | None = None


class SesComplaint(_SesModel):
    complained_recipients: Recipients = []
    complaint_feedback_type: str | None = None  # absent when there is no feedback report
    complaint_sub_type: str | None = None
    user_agent: str | None = None
    arrival_date: str | None = None
    timestamp: str | None = None
    feedback_id: str | None = None


class SesDelivery(_SesModel):
    recipients: Annotated[list[str], BeforeValidator(_null_as_empty)] = []
    timestamp: str | None = None
    processing_time_millis: int | None = None
    smtp_response: str | None = None
    reporting_mta: str | None = Field(default=None, alias="reportingMTA")
    remote_mta_ip: str | None = None


class SesDeliveryDelay(_SesModel):
    delay_type: str | None = None
    delayed_recipients: Recipients = []
    expiration_time: str | None = None
    timestamp: str | None = None
    reporting_mta: str | None = Field(default=None, alias="reportingMTA")


class SesOpen(_SesModel):
    ip_address: str | None = None
    timestamp: str | None = None
    user_agent: str | None = None


class SesClick(SesOpen):
    link: str | None = None
    link_tags: dict[str, Any] | None = None


class SesReject(_SesModel):
    reason: str | None = None


class SesRenderingFailure(_SesModel):
    error_message: str | None = None
    template_name: str | None = None


class SesNotification(_SesModel):
    notification_type: str | None = None  # identity notifications
    event_type: str | None = None  # configuration-set event publishing
    mail: SesMail | None = None
    bounce: SesBounce | None = None
    complaint: SesComplaint | None = None
    delivery: SesDelivery | None = None
    send: dict[str, Any] | None = None
    reject: SesReject | None = None
    open: SesOpen | None = None
    click: SesClick | None = None
    failure: SesRenderingFailure | None = None
    delivery_delay: SesDeliveryDelay | None = None
    subscription: dict[str, Any] | None = None

    @property
    def kind(self) -> str | None:
        return self.event_type or self.notification_type


class MalformedNotification(ValueError):
    """A notification of a known type whose fields have the wrong shape: a poison message."""


# --------------------------------------------------------------------------------------------------
# The report: what one notification did (for logs, metrics and tests).
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusChange:
    provider_message_id: str | None
    address: str  # lower-cased; WHOLE_MESSAGE for message-level outcomes
    status: Status  # what the notification means for this recipient
    message_id: str | None = None  # our record, when one matched
    applied: bool = False  # the record moved to ``status`` now


@dataclass(frozen=True)
class Suppression:
    address: str
    reason: str  # "bounce" | "complaint"
    details: dict[str, Any]
    added: bool  # False: the address was suppressed already


@dataclass(frozen=True)
class Engagement:
    kind: str  # "open" | "click"
    provider_message_id: str | None
    recipient: str | None
    timestamp: str | None
    ip_address: str | None = None
    user_agent: str | None = None
    link: str | None = None
    link_tags: dict[str, Any] | None = None


@dataclass
class NotificationReport:
    kind: str | None = None
    provider_message_id: str | None = None
    message_id: str | None = None  # our record id, when correlated
    campaign_id: str | None = None
    ignored: str | None = None  # why the input was acknowledged without effect
    statuses: list[StatusChange] = field(default_factory=list)
    suppressions: list[Suppression] = field(default_factory=list)
    soft_bounces: list[str] = field(default_factory=list)  # counted now (replays are not)
    delayed: list[str] = field(default_factory=list)
    engagements: list[Engagement] = field(default_factory=list)
    campaign_counts: Counter[str] = field(default_factory=Counter)
    campaign_paused: str | None = None  # the reason, when this notification paused the campaign
    events: Counter[str] = field(default_factory=Counter)  # metric name -> first-time events
    duplicates: int = 0  # recipient outcomes that had been processed before

    @property
    def duplicate(self) -> bool:
        """Every outcome of this notification had been processed before (a replay)."""
        return self.duplicates > 0 and not self.events and not self.engagements and not self.soft_bounces

    def status_of(self, provider_message_id: str | None, address: str) -> Status | None:
        key = address if address == WHOLE_MESSAGE else address_key(address)
        for change in self.statuses:
            if change.provider_message_id == provider_message_id and change.address == key:
                return change.status
        return None

    @property
    def suppressed_addresses(self) -> set[str]:
        return {s.address for s in self.suppressions}

    @property
    def noteworthy(self) -> bool:
        """Worth an INFO log line: anything but routine sends, deliveries and engagement."""
        failed = any(c.status is Status.FAILED for c in self.statuses)
        return bool(self.ignored or self.suppressions or self.soft_bounces or failed or self.campaign_paused)

    def log_fields(self) -> dict[str, Any]:
        """A summary without full addresses (they are masked)."""
        return {
            "kind": self.kind,
            "provider_message_id": self.provider_message_id,
            "message_id": self.message_id,
            "campaign_id": self.campaign_id,
            "ignored": self.ignored,
            "statuses": [
                f"{_mask(c.address)}={c.status.value}{'' if c.applied else ' (not applied)'}" for c in self.statuses
            ],
            "suppressed": [_mask(s.address) for s in self.suppressions if s.added],
            "soft_bounces": len(self.soft_bounces),
            "engagements": [e.kind for e in self.engagements],
            "campaign_counts": dict(self.campaign_counts),
            "campaign_paused": self.campaign_paused,
            "duplicates": self.duplicates,
        }


def _mask(address: str) -> str:
    return address if address == WHOLE_MESSAGE else mask_address(address)


# --------------------------------------------------------------------------------------------------
# What a notification means for each affected recipient.
# --------------------------------------------------------------------------------------------------

_SENT_LIKE = SENT_LIKE  # SENDING, SENT, DELIVERED, SOFT_BOUNCED
_NOT_YET_DELIVERED = (Status.SENDING.value, Status.SENT.value)


@dataclass(frozen=True)
class RecipientOutcome:
    address: str  # lower-cased, or WHOLE_MESSAGE
    detail: str  # short text kept on the record (event_detail)
    status: Status | None = None
    allowed_from: tuple[str, ...] = ()
    counter: str | None = None  # campaign counter moved when the status changes
    suppression: str | None = None  # suppression reason
    details: dict[str, Any] = field(default_factory=dict)  # kept with the suppression
    increment: str | None = None  # record attribute counted once per notification
    metric: str | None = None  # metric counted once per notification
    engagement: Engagement | None = None


def _mailbox(raw: str | None) -> str | None:
    """The bare address, lower-cased; tolerates ``Name <addr>``. None when there is none."""
    if not raw:
        return None
    _, address = parseaddr(raw)
    address = (address or raw).strip()
    return address_key(address) if "@" in address else None


def _addresses(raws: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for raw in raws:
        address = _mailbox(raw)
        if address:
            seen.setdefault(address)
    return list(seen)


def _detail(*parts: str | None) -> str:
    return " ".join(p.strip() for p in parts if p and p.strip())[:DETAIL_MAX_CHARS]


def _compact(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _bounce_outcomes(n: SesNotification) -> list[RecipientOutcome]:
    bounce = n.bounce or SesBounce()
    hard = bounce.bounce_type == "Permanent"  # any subtype: General, NoEmail, Suppressed, OnAccount…
    outcomes = []
    for recipient in bounce.bounced_recipients:
        address = _mailbox(recipient.email_address)
        if not address:
            continue
        details = _compact(
            {
                "bounceType": bounce.bounce_type,
                "bounceSubType": bounce.bounce_sub_type,
                "action": recipient.action,
                "status": recipient.status,
                "diagnosticCode": recipient.diagnostic_code,
                "reportingMTA": bounce.reporting_mta,
                "feedbackId": bounce.feedback_id,
                "timestamp": bounce.timestamp,
                "providerMessageId": n.mail.message_id if n.mail else None,
            }
        )
        detail = _detail(
            "bounce",
            f"{bounce.bounce_type}/{bounce.bounce_sub_type}",
            recipient.status,
            recipient.diagnostic_code,
        )
        if hard:
            outcomes.append(
                RecipientOutcome(
                    address,
                    detail,
                    Status.BOUNCED,
                    _SENT_LIKE,
                    "bounced",
                    "bounce",
                    details,
                    metric="Bounces",
                )
            )
        else:  # Transient or Undetermined: never suppress on one soft bounce
            outcomes.append(
                RecipientOutcome(
                    address,
                    detail,
                    Status.SOFT_BOUNCED,
                    _NOT_YET_DELIVERED,
                    "soft_bounced",
                    increment="soft_bounces",
                    metric="SoftBounces",
                )
            )
    return outcomes


def _complaint_outcomes(n: SesNotification) -> list[RecipientOutcome]:
    complaint = n.complaint or SesComplaint()
    details = {
        "complaintFeedbackType": complaint.complaint_feedback_type,  # None: no feedback report
        **_compact(
            {
                "complaintSubType": complaint.complaint_sub_type,
                "userAgent": complaint.user_agent,
                "arrivalDate": complaint.arrival_date,
                "feedbackId": complaint.feedback_id,
                "timestamp": complaint.timestamp,
                "providerMessageId": n.mail.message_id if n.mail else None,
            }
        ),
    }
    detail = _detail("complaint", complaint.complaint_feedback_type)
    return [
        RecipientOutcome(
            address,
            detail,
            Status.COMPLAINED,
            _SENT_LIKE,
            "complained",
            "complaint",
            details,
            metric="Complaints",
        )
        for address in _addresses([r.email_address or "" for r in complaint.complained_recipients])
    ]


def _delivery_outcomes(n: SesNotification) -> list[RecipientOutcome]:
    delivery = n.delivery or SesDelivery()
    detail = _detail("delivered", delivery.smtp_response)
    allowed = (*_NOT_YET_DELIVERED, Status.SOFT_BOUNCED.value)
    return [
        RecipientOutcome(address, detail, Status.DELIVERED, allowed, "delivered", metric="Deliveries")
        for address in _addresses(delivery.recipients)
    ]


def _send_outcomes(n: SesNotification) -> list[RecipientOutcome]:
    # SES accepted the message: settles a record the sender could not mark SENT.
    destination = n.mail.destination if n.mail else []
    return [
        RecipientOutcome(address, "accepted by SES", Status.SENT, (Status.SENDING.value,))
        for address in _addresses(destination)
    ]


def _reject_outcomes(n: SesNotification) -> list[RecipientOutcome]:
    reason = n.reject.reason if n.reject else None
    return [RecipientOutcome(WHOLE_MESSAGE, _detail("rejected by SES:", reason), Status.FAILED, _NOT_YET_DELIVERED)]


def _rendering_failure_outcomes(n: SesNotification) -> list[RecipientOutcome]:
    failure = n.failure or SesRenderingFailure()
    detail = _detail("rendering failed:", failure.template_name, failure.error_message)
    return [RecipientOutcome(WHOLE_MESSAGE, detail, Status.FAILED, _NOT_YET_DELIVERED)]


def _delay_outcomes(n: SesNotification) -> list[RecipientOutcome]:
    delay = n.delivery_delay or SesDeliveryDelay()
    outcomes = []
    for recipient in delay.delayed_recipients:
        address = _mailbox(recipient.email_address)
        if address:
            detail = _detail("delivery delayed:", delay.delay_type, recipient.status, recipient.diagnostic_code)
            outcomes.append(RecipientOutcome(address, detail, None, _NOT_YET_DELIVERED))
    return outcomes


def _engagement_outcomes(n: SesNotification) -> list[RecipientOutcome]:
    kind = "click" if _type_key(n.kind or "") == "click" else "open"
    activity: SesOpen = (n.click if kind == "click" else n.open) or SesOpen()
    click = activity if isinstance(activity, SesClick) else None
    destination = _addresses(n.mail.destination if n.mail else [])
    engagement = Engagement(
        kind=kind,
        provider_message_id=n.mail.message_id if n.mail else None,
        recipient=destination[0] if len(destination) == 1 else None,
        timestamp=activity.timestamp,
        ip_address=activity.ip_address,
        user_agent=activity.user_agent,
        link=click.link if click else None,
        link_tags=click.link_tags if click else None,
    )
    detail = _detail(kind, activity.timestamp)
    return [RecipientOutcome(WHOLE_MESSAGE, detail, increment=f"{kind}s", engagement=engagement)]


def _no_outcomes(n: SesNotification) -> list[RecipientOutcome]:
    # Subscription: SES contact-list management, which MassMailer does not use (it has its own
    # one-click unsubscribe); acknowledged without effect, and never a bounce or complaint.
    return []


def _type_key(kind: str) -> str:
    return kind.replace(" ", "").replace("_", "").lower()


_OUTCOMES: dict[str, Callable[[SesNotification], list[RecipientOutcome]]] = {
    "bounce": _bounce_outcomes,
    "complaint": _complaint_outcomes,
    "delivery": _delivery_outcomes,
    "send": _send_outcomes,
    "reject": _reject_outcomes,
    "renderingfailure": _rendering_failure_outcomes,  # published as "Rendering Failure"
    "deliverydelay": _delay_outcomes,
    "open": _engagement_outcomes,
    "click": _engagement_outcomes,
    "subscription": _no_outcomes,
}

# --------------------------------------------------------------------------------------------------
# Correlation with our records, and the campaign's bounce/complaint guard.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MailRecord:
    """The message record a notification is about (None when it is not ours or not found)."""

    provider_message_id: str | None
    record: dict[str, Any] | None
    campaign_id: str | None
    consistent: bool = False  # the record was read strongly consistently (by our id, not the index)

    def already_past(self, allowed_from: tuple[str, ...]) -> bool:
        """The record, as just read, is in none of ``allowed_from``: the conditional status write
        would fail, so it is not made (a failed conditional write is still billed a write unit;
        statuses never move back into an earlier state, so the read cannot mislead)."""
        return self.consistent and self.record is not None and str(self.record.get("status")) not in allowed_from

    @property
    def message_id(self) -> str | None:
        return self.record.get("message_id") if self.record else None

    def owned_by(self, address: str, affected: list[str]) -> bool:
        """Does the record belong to this affected recipient?

        Our sends have one recipient each, so the record's address decides; when no affected address
        matches it (a spelling difference, e.g. an internationalized domain), the first one does.
        """
        if self.record is None:
            return False
        if address == WHOLE_MESSAGE:
            return True
        email = address_key(str(self.record.get("email") or ""))
        if email in affected:
            return address == email
        return address == affected[0]


def find_mail_record(messages: Messages, mail: SesMail | None) -> MailRecord:
    """Our record for an SES message: by the ``message_id`` tag, else by the ``X-MassMailer-Message``
    header, else by SES's message id (the provider-id index, when the store writes it)."""
    if mail is None:
        return MailRecord(None, None, None)
    record = None
    for ours in dict.fromkeys(filter(None, (mail.tag("message_id"), mail.header(MESSAGE_HEADER)))):
        record = messages.get_message(ours)
        if record is not None:
            break
    consistent = record is not None
    if record is None and mail.message_id:
        record = messages.find_by_provider_id(mail.message_id)
    campaign_id = (record or {}).get("campaign_id") or mail.tag("campaign_id")
    return MailRecord(mail.message_id, record, campaign_id, consistent)


@dataclass(frozen=True)
class RateGuard:
    """Pause a campaign whose bounce or complaint rate crosses a threshold (SES reviews accounts at
    5 % bounces and 0.1 % complaints). Rates are ignored below ``min_sent`` sends, and a rate needs
    at least ``min_events`` bounces (or complaints) behind it: one complaint in a hundred sends is
    noise, not a 1 % complaint rate."""

    bounce_rate: float = 0.05
    complaint_rate: float = 0.001
    min_sent: int = 100
    min_events: int = 3

    def breach(self, counts: CampaignCounts) -> str | None:
        found = self.cause(counts)
        return found[1] if found else None

    def cause(self, counts: CampaignCounts) -> tuple[str, str] | None:
        """("bounce_rate" | "complaint_rate", the reason in words), or None below the thresholds."""
        if counts.sent < self.min_sent:
            return None
        if counts.bounced >= self.min_events and counts.bounced / counts.sent >= self.bounce_rate:
            return "bounce_rate", f"bounce rate {counts.bounced}/{counts.sent} reached {self.bounce_rate:.2%}"
        if counts.complained >= self.min_events and counts.complained / counts.sent >= self.complaint_rate:
            rate = f"complaint rate {counts.complained}/{counts.sent} reached {self.complaint_rate:.2%}"
            return "complaint_rate", rate
        return None


DEFAULT_GUARD = RateGuard()
_GUARDED_COUNTERS = frozenset({"bounced", "complained"})
GUARD_COUNTERS = ("sent", "bounced", "complained")


def guarded_counts(stored: StoredCampaign) -> CampaignCounts:
    """The counts the guard rates: those since the last resume (an operator who resumed an
    auto-paused campaign acknowledged what came before; the guard judges what comes after)."""
    since = stored.guard_from or {}
    return CampaignCounts(**{name: getattr(stored.counts, name) - int(since.get(name, 0)) for name in GUARD_COUNTERS})


def pause_campaign_over_threshold(campaigns: Campaigns, campaign_id: str, guard: RateGuard) -> str | None:
    """AUTO_PAUSE a running campaign over a threshold, recording the cause and the rates then.

    The move is conditioned on the number of resumes the guard read, so a guard that read the
    campaign before an operator's resume cannot pause it again with what the operator acknowledged."""
    stored = campaigns.get_campaign(campaign_id)
    move = MOVES[Action.AUTO_PAUSE]
    if stored is None or stored.campaign.status not in move.sources:
        return None
    if stored.campaign.guard:  # the campaign's own thresholds (its request's, over the stage's then)
        guard = RateGuard(**{**guard.__dict__, **stored.campaign.guard})
    counts = guarded_counts(stored)
    found = guard.cause(counts)
    if found is None:
        return None
    cause, reason = found
    rates = {
        "sent": counts.sent,
        "bounced": counts.bounced,
        "complained": counts.complained,
        "bounce_rate": round(counts.bounced / counts.sent, 6),
        "complaint_rate": round(counts.complained / counts.sent, 6),
    }
    try:
        campaigns.transition(
            campaign_id,
            move,
            {"last_error": f"paused: {reason}", "pause_cause": cause, "pause_rates": rates},
            expect={"resumes": stored.resumes},
        )
    except TransitionNotAllowed as refused:  # paused, resumed, cancelled or finished meanwhile
        logger.info("guard pause refused", extra={"campaign_id": campaign_id, "reason": str(refused)})
        return None
    logger.warning("campaign paused", extra={"campaign_id": campaign_id, "reason": reason})
    return reason


# --------------------------------------------------------------------------------------------------
# Processing.
# --------------------------------------------------------------------------------------------------


def _json_object(message: str | bytes | Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if isinstance(message, Mapping):
        return message
    if not isinstance(message, str | bytes) or not message:
        return None
    try:
        document = json.loads(message)
    except ValueError:  # e.g. "Successfully validated SNS topic for Amazon SES event publishing."
        return None
    return document if isinstance(document, Mapping) else None


def _raw_kind(document: Mapping[str, Any]) -> str | None:
    kind = document.get("eventType") or document.get("notificationType")
    return kind if isinstance(kind, str) else None


def parse_notification(document: Mapping[str, Any]) -> SesNotification:
    try:
        return SesNotification.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        raise MalformedNotification(f"{_raw_kind(document)} notification is malformed: {problems}") from None


class _Digests:
    """sha256 over the canonical JSON of the whole SES notification plus one recipient."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
        self._base = hashlib.sha256(canonical.encode())

    def of(self, address: str) -> str:
        digest = self._base.copy()
        digest.update(b"\x00" + address.encode())
        return digest.hexdigest()


def process_notification(
    stores: NotificationStores, message: str | bytes | Mapping[str, Any] | None, guard: RateGuard = DEFAULT_GUARD
) -> NotificationReport:
    """Apply one SES notification (the SNS ``Message``: a JSON string or the decoded object)."""
    document = _json_object(message)
    if document is None:
        return NotificationReport(ignored="not a JSON object (e.g. the SES topic-validation text)")
    kind = _raw_kind(document)
    outcomes_of = _OUTCOMES.get(_type_key(kind)) if kind else None
    if outcomes_of is None:
        return NotificationReport(kind=kind, ignored=f"unknown notification type {kind!r}")
    notification = parse_notification(document)
    mail = find_mail_record(stores.messages, notification.mail)
    report = NotificationReport(
        kind=kind,
        provider_message_id=mail.provider_message_id,
        message_id=mail.message_id,
        campaign_id=mail.campaign_id,
    )
    outcomes = outcomes_of(notification)
    affected = [o.address for o in outcomes]
    digests = _Digests(document)
    for outcome in outcomes:
        record_id = mail.message_id if mail.owned_by(outcome.address, affected) else None
        _settle(stores, mail, record_id, outcome, digests.of(outcome.address), report)
    if _GUARDED_COUNTERS & set(report.campaign_counts) and mail.campaign_id:
        report.campaign_paused = pause_campaign_over_threshold(stores.campaigns, mail.campaign_id, guard)
    return report


def _settle(
    stores: NotificationStores,
    mail: MailRecord,
    record_id: str | None,
    outcome: RecipientOutcome,
    digest: str,
    report: NotificationReport,
) -> None:
    # 1. Idempotent effects first: a store failure part-way leaves the retry something to redo.
    if outcome.suppression:
        added = stores.suppressions.suppress(outcome.address, outcome.suppression, outcome.details)
        report.suppressions.append(Suppression(outcome.address, outcome.suppression, outcome.details, added))
    applied = False
    if record_id and (outcome.status is not None or outcome.allowed_from):
        if outcome.status is not None and outcome.allowed_from and mail.already_past(outcome.allowed_from):
            applied = False  # e.g. the Send event of a message the sender recorded SENT: no write
        else:
            applied = stores.messages.apply_notification(
                record_id, outcome.status, outcome.detail, outcome.allowed_from
            )
        if applied and outcome.status is not None and outcome.counter and mail.campaign_id:
            stores.campaigns.add_campaign_counts(mail.campaign_id, {outcome.counter: 1})
            report.campaign_counts[outcome.counter] += 1
    if outcome.status is not None:
        report.statuses.append(
            StatusChange(mail.provider_message_id, outcome.address, outcome.status, record_id, applied)
        )
    elif outcome.allowed_from:
        report.delayed.append(outcome.address)
    # 2. Then what must happen once per notification: counts on the record, metrics. A status change
    # on a record is its own proof of novelty (a replay finds the transition done), so only the rest —
    # counters, engagement, notifications with no record — pay for a remember_event write.
    gated = bool(outcome.increment or outcome.engagement) or record_id is None or outcome.status is None
    if gated and not stores.markers.remember_event(digest):
        report.duplicates += 1
        return
    if not gated and not applied:
        report.duplicates += 1  # a replay, or an event overtaken by a later one (Send after Delivery)
        return
    if outcome.increment and record_id:
        stores.messages.apply_notification(record_id, None, outcome.detail, (), increment=outcome.increment)
    if outcome.increment == "soft_bounces":
        report.soft_bounces.append(outcome.address)
    if outcome.metric:
        report.events[outcome.metric] += 1
    if outcome.engagement:
        recipient = outcome.engagement.recipient
        if mail.record and mail.record.get("email"):
            recipient = address_key(str(mail.record["email"]))
        report.engagements.append(_with_recipient(outcome.engagement, recipient))


def _with_recipient(engagement: Engagement, recipient: str | None) -> Engagement:
    if engagement.recipient == recipient:
        return engagement
    return Engagement(**{**engagement.__dict__, "recipient": recipient})


# --------------------------------------------------------------------------------------------------
# Envelopes: SNS → Lambda, SNS → SQS → Lambda, or the SES JSON itself.
# --------------------------------------------------------------------------------------------------


def _is_sns_notification(document: Mapping[str, Any]) -> bool:
    return "Message" in document and ("TopicArn" in document or "Type" in document)


def process_sns_payload(
    stores: NotificationStores, payload: str | bytes | Mapping[str, Any] | None, guard: RateGuard = DEFAULT_GUARD
) -> NotificationReport:
    """Apply the SES notification inside one SNS notification.

    ``payload`` is Lambda's ``Records[i].Sns`` object, or an SQS body (the SNS notification as a JSON
    string, whose ``Message`` is again a JSON string). A body that is the SES JSON itself (SNS raw
    message delivery) is accepted too.
    """
    envelope = _json_object(payload)
    if envelope is None:
        return NotificationReport(ignored="SNS payload is not a JSON object")
    if not _is_sns_notification(envelope):
        return process_notification(stores, envelope, guard)
    sns_type = envelope.get("Type", "Notification")
    if sns_type != "Notification":
        return NotificationReport(ignored=f"SNS {sns_type} message")
    return process_notification(stores, envelope.get("Message"), guard)


def sns_payload_of(record: Mapping[str, Any]) -> Any:
    """The SNS notification carried by one Lambda event record (SNS or SQS)."""
    return record["Sns"] if "Sns" in record else record.get("body")


def is_sns_event(event: Mapping[str, Any]) -> bool:
    records = event.get("Records") or []
    return bool(records) and all(isinstance(r, Mapping) and "Sns" in r for r in records)


def process_lambda_event(
    stores: NotificationStores, event: Mapping[str, Any], guard: RateGuard = DEFAULT_GUARD
) -> list[NotificationReport]:
    """Every notification of a Lambda event (SNS or SQS records), or a bare SES notification."""
    if "Records" not in event:
        return [process_sns_payload(stores, event, guard)]
    return [process_sns_payload(stores, sns_payload_of(record), guard) for record in event["Records"]]
