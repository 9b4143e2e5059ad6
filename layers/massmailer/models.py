"""Domain models: the public API's requests and the internal contracts between the functions."""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    field_validator,
    model_serializer,
    model_validator,
)

from massmailer.addresses import normalize_address
from massmailer.spec import AUDIENCE_FORMATS, AUDIENCE_PREFIX, MAX_RECIPIENTS_PER_BATCH

_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 field name: printable ASCII except ':'
_RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "From",
        "To",
        "Cc",
        "Bcc",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
    )
)


def _no_crlf(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError("must not contain CR or LF characters (header injection)")
    return value


def _address(value: str) -> str:
    return normalize_address(value)


EmailAddress = Annotated[str, AfterValidator(_address)]
HeaderText = Annotated[str, StringConstraints(max_length=998), AfterValidator(_no_crlf)]
MAX_VARIABLES_BYTES = 4096  # per recipient: 50 recipients stay well under SQS's 256 KiB message limit
MAX_JSON_DEPTH = 32  # objects and arrays nested in a request body (the body itself is level 1)
# Subject, bodies and headers as stored (compact JSON, UTF-8): a message record or a campaign's
# CONTENT item is one DynamoDB item, at most 400 KB; the rest of the item stays well under 100 KB.
MAX_STORED_CONTENT_BYTES = 300_000
RESERVED_HEADER_PREFIX = "x-massmailer-"  # stamped by MassMailer (the bounce handler matches on them)

_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


class NestingTooDeep(ValueError):
    """A JSON document nests deeper than ``MAX_JSON_DEPTH``; ``field``: the top-level member."""

    def __init__(self, field: str) -> None:
        super().__init__(f"nests deeper than {MAX_JSON_DEPTH} levels of objects and arrays")
        self.field = field


def check_json_depth(raw: str) -> None:
    """Refuse a JSON text nested deeper than ``MAX_JSON_DEPTH`` *before* it is parsed (a parser
    recurses per level: 5,000 levels raise RecursionError). One regex pass over strings and brackets,
    no recursion; malformed text is left to the parser."""
    depth, member = 0, "body"
    last_string = ""
    for token in _JSON_TOKENS.finditer(raw):
        text = token.group()
        if text[0] == '"':
            last_string = text
        elif text in "[{":
            if depth == 1:
                member = _member_name(last_string)
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise NestingTooDeep(member)
        else:
            depth -= 1


def _member_name(quoted: str) -> str:
    try:
        name = json.loads(quoted) if quoted else "body"
    except ValueError:
        return "body"
    return name if isinstance(name, str) and name else "body"


def _plain_json(value: dict[str, Any]) -> dict[str, Any]:
    """Variables are plain JSON: finite numbers (no NaN or Infinity) and at most ``MAX_JSON_DEPTH``
    levels deep. Walked without recursion, so any depth is refused, never a RecursionError."""
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"{path or 'value'}: {item} is not a JSON number (NaN and Infinity are refused)")
        if isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"nests deeper than {MAX_JSON_DEPTH} levels of objects and arrays")
            children = item.items() if isinstance(item, dict) else enumerate(item)
            stack.extend((child, depth + 1, f"{path}.{name}" if path else str(name)) for name, child in children)
    return value


def variables_size(value: dict[str, Any]) -> int:
    """The size that ``MAX_VARIABLES_BYTES`` limits: compact JSON, non-ASCII escaped."""
    return len(json.dumps(value, separators=(",", ":"), default=str).encode())


def _small_variables(value: dict[str, Any]) -> dict[str, Any]:
    size = variables_size(value)
    if size > MAX_VARIABLES_BYTES:
        raise ValueError(f"variables are {size} bytes as JSON; at most {MAX_VARIABLES_BYTES} per recipient")
    return value


Variables = Annotated[dict[str, Any], AfterValidator(_plain_json), AfterValidator(_small_variables)]


class Lane(StrEnum):
    HIGH = "high"
    LOW = "low"


class Status(StrEnum):
    """Per-recipient status. Terminal states are left only by a later SES notification (bounce,
    complaint, delivery, reject) for the same email."""

    QUEUED = "QUEUED"
    SENDING = "SENDING"
    RETRY_WAIT = "RETRY_WAIT"
    SENT = "SENT"
    DELIVERED = "DELIVERED"
    SOFT_BOUNCED = "SOFT_BOUNCED"
    BOUNCED = "BOUNCED"
    COMPLAINED = "COMPLAINED"
    FAILED = "FAILED"
    SUPPRESSED = "SUPPRESSED"
    CANCELLED = "CANCELLED"  # its campaign was cancelled before it was sent


class CampaignStatus(StrEnum):
    SCHEDULED = "SCHEDULED"
    SPLITTING = "SPLITTING"
    SENDING = "SENDING"
    COMPLETED = "COMPLETED"  # reported, not stored: split done and no recipient left queued
    PAUSED = "PAUSED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class AttachmentRef(_Strict):
    """A file in the bucket under ``attachments/``, matched by name. The name is a template, so a
    per-recipient variable may pick the file: ``{"filename": "invoice-{{ invoice_no }}.pdf"}``."""

    filename: Annotated[str, StringConstraints(min_length=1, max_length=255), AfterValidator(_no_crlf)]
    content_type: Annotated[str, StringConstraints(pattern=r"^[\w.+-]+/[\w.+-]+$")] | None = None


AttachmentPolicy = Literal["skip_recipient", "send_without", "fail_campaign"]


class Content(_Strict):
    """A template: subject, HTML and text bodies, in Jinja2 (sandboxed) or legacy ``$(VAR)`` syntax,
    and the attachments to match by file name (with what to do when one is missing)."""

    subject: HeaderText = Field(min_length=1)
    html: str | None = Field(default=None, max_length=200_000)
    text: str | None = Field(default=None, max_length=200_000)
    attachments: list[AttachmentRef] = Field(default_factory=list, max_length=10)
    attachment_policy: AttachmentPolicy = "skip_recipient"

    @model_validator(mode="after")
    def _has_body(self) -> Content:
        if not self.html and not self.text:
            raise ValueError("at least one of 'html' or 'text' is required")
        return self


class Sender(_Strict):
    from_address: EmailAddress | None = Field(default=None, alias="from")
    from_name: HeaderText | None = None
    reply_to: EmailAddress | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _check_headers(headers: dict[str, str]) -> dict[str, str]:
    for name, value in headers.items():
        if not _HEADER_NAME.match(name):
            raise ValueError(f"header name {name!r} is not a valid RFC 5322 field name")
        if name.lower() in _RESERVED_HEADERS:
            raise ValueError(f"header {name!r} is set by MassMailer and cannot be overridden")
        if name.lower().startswith(RESERVED_HEADER_PREFIX):
            raise ValueError(f"header {name!r} is reserved: every X-MassMailer-* header is set by MassMailer")
        _no_crlf(value)
    return headers


CustomHeaders = Annotated[dict[str, str], AfterValidator(_check_headers)]


class SendRequest(Content):
    """``POST /v1/messages``: one transactional email."""

    to: EmailAddress
    variables: Variables = Field(default_factory=dict)
    priority: Lane = Lane.HIGH
    from_address: EmailAddress | None = Field(default=None, alias="from")
    from_name: HeaderText | None = None
    reply_to: EmailAddress | None = None
    headers: CustomHeaders = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class AudienceMember(_Strict):
    email: EmailAddress
    variables: Variables = Field(default_factory=dict)


def _audience_object_key(value: str) -> str:
    _no_crlf(value)
    if not value.startswith(AUDIENCE_PREFIX) or len(value) == len(AUDIENCE_PREFIX):
        raise ValueError(f"must be an object key under {AUDIENCE_PREFIX!r} in the bucket, e.g. 'audiences/list.csv'")
    if "." not in value.rpartition("/")[2] or "." + value.rpartition(".")[2].lower() not in AUDIENCE_FORMATS:
        raise ValueError(f"must end with one of {', '.join(sorted(AUDIENCE_FORMATS))} (the audience's format)")
    return value


AudienceObjectKey = Annotated[
    str, StringConstraints(min_length=1, max_length=1024), AfterValidator(_audience_object_key)
]


class CampaignRequest(Content):
    """``POST /v1/campaigns``: a template and an audience — inline (``audience``) or an object already
    uploaded to the bucket under ``audiences/`` (``audience_object``, CSV or JSONL); exactly one."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    audience: list[AudienceMember] | None = Field(default=None, min_length=1, max_length=100_000)
    audience_object: AudienceObjectKey | None = None
    priority: Lane = Lane.LOW
    guard: GuardThresholds | None = None  # the bounce/complaint guard, per campaign
    send_at: datetime | None = None
    from_address: EmailAddress | None = Field(default=None, alias="from")
    from_name: HeaderText | None = None
    reply_to: EmailAddress | None = None
    headers: CustomHeaders = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("send_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must include a time zone offset, e.g. 2026-12-01T09:00:00+01:00")
        return value

    @model_validator(mode="after")
    def _one_audience(self) -> CampaignRequest:
        if (self.audience is None) == (self.audience_object is None):
            raise ValueError("give exactly one of 'audience' (inline list) or 'audience_object' (key in the bucket)")
        return self


class GuardThresholds(_Strict):
    """A campaign's own bounce/complaint guard thresholds (any left out: the stage's default)."""

    bounce_rate: float | None = Field(default=None, gt=0, le=1)
    complaint_rate: float | None = Field(default=None, gt=0, le=1)
    min_sent: int | None = Field(default=None, ge=1)
    min_events: int | None = Field(default=None, ge=1)


class ResumeRequest(_Strict):
    """``POST /v1/campaigns/{id}/resume``: a campaign the bounce/complaint guard paused is resumed only
    with its cause acknowledged; an operator's own pause needs no body."""

    acknowledge: Literal["bounce_rate", "complaint_rate"] | None = None


class Campaign(BaseModel):
    """A campaign as stored: its template, sender and counters."""

    campaign_id: str
    name: str
    content: Content
    lane: Lane
    from_address: str
    from_name: str | None = None
    reply_to: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    status: CampaignStatus = CampaignStatus.SPLITTING
    audience_key: str  # object key of the audience in the bucket (CSV or JSONL, by its extension)
    audience_etag: str | None = None  # the ETag it had when the campaign was accepted (None: written by us)
    created_at: datetime
    send_at: datetime | None = None
    guard: dict[str, float | int] | None = None  # the guard's effective thresholds (stage defaults + request)
    last_error: str | None = None
    automation_id: str | None = None  # a run of this automation made the campaign (massmailer.automations)
    run_id: str | None = None


class CampaignCounts(BaseModel):
    total: int = 0  # recipients in the audience after de-duplication (invalid ones excluded)
    queued: int = 0
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    suppressed: int = 0
    cancelled: int = 0  # not sent because the campaign was cancelled
    bounced: int = 0
    soft_bounced: int = 0
    complained: int = 0
    invalid: int = 0
    duplicates: int = 0
    retried: int = 0
    maybe_sent: int = 0  # sends whose outcome was unknown (timeout, cut after the content): never failed over


class BatchRecipient(BaseModel):
    message_id: str
    email: str
    variables: Variables = Field(default_factory=dict)
    attempt: int = 0  # attempts already used (throttling never increments it)
    not_before: float | None = None  # epoch seconds: a retry delayed beyond SQS's 15 minutes waits in hops
    # The check of a "maybe sent" record, after the window: sent again only if no SES event settled it.
    maybe_sent: bool = False
    # Throttling's budget (``sending.RetryPolicy.throttle_budget``): when the sender first tried this
    # recipient (epoch seconds), and how many times in a row it was throttled (its next delay grows).
    first_attempt_at: float | None = None
    throttles: int = 0

    @model_serializer(mode="wrap")
    def _without_unset_flags(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A recipient that was never throttled nor "maybe sent" keeps the wire format the splitter
        writes by hand (``splitting._recipient_json``): these fields appear only once set."""
        data: dict[str, Any] = handler(self)
        for name, unset in (("maybe_sent", False), ("first_attempt_at", None), ("throttles", 0)):
            if data.get(name, unset) == unset:
                data.pop(name, None)
        return data


class BatchMessage(BaseModel):
    """One SQS message on a lane: up to 50 recipients of one campaign, or one transactional email.

    Versioned: a consumer rejects a version it does not know rather than guessing.
    """

    v: Literal[1] = 1
    kind: Literal["campaign", "transactional"]
    campaign_id: str | None = None
    lane: Lane
    recipients: list[BatchRecipient] = Field(min_length=1, max_length=MAX_RECIPIENTS_PER_BATCH)
    # When the splitter checked these recipients against the suppression list (epoch seconds): the
    # sender skips its own check while that is fresh (``spec.SUPPRESSION_RECHECK_SECONDS``).
    # Re-enqueued retries never carry it, so they are always checked again.
    suppression_checked_at: float | None = None

    @model_validator(mode="after")
    def _campaign_has_id(self) -> BatchMessage:
        if self.kind == "campaign" and not self.campaign_id:
            raise ValueError("campaign batches need campaign_id")
        return self


class SplitRequest(BaseModel):
    """A message on the split queue: split (or continue splitting) one campaign."""

    v: Literal[1] = 1
    campaign_id: str
    # Reserved for scheduled automation runs (the run key will be (automation, scheduled time)); unused today.
    scheduled_time: str | None = None


class MessageRecord(BaseModel):
    """Per-recipient status record."""

    message_id: str
    email: str
    status: Status
    campaign_id: str | None = None
    lane: Lane
    attempts: int = 0
    provider: str | None = None
    provider_message_id: str | None = None
    last_error: str | None = None
    event_detail: str | None = None  # the last provider notification (bounce diagnostic, delay, …)
    soft_bounces: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None
    sent_at: datetime | None = None
    # The provider's answer to a send was lost (timeout, cut after the content): it may have the email.
    # While the status is SENDING the record waits for SES's Send event (see ``massmailer.sending``).
    maybe_sent: bool = False
