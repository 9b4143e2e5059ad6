"""The one specification of MassMailer's AWS resources.

The CDK stack (``infra/``), the local runtime (``local/``) and the tests all read the names, keys,
indexes, batch sizes, timeouts and redrive settings from here, so the deployed pipeline, the local
pipeline and the code that talks to them cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

APP = "massmailer"
METRICS_NAMESPACE = "MassMailer"  # CloudWatch namespace of the functions' EMF metrics

# Headers on every email that tie a notification (bounce, complaint, delivery) to our record.
MESSAGE_HEADER = "X-MassMailer-Message"
CAMPAIGN_HEADER = "X-MassMailer-Campaign"
MAX_RECIPIENTS_PER_BATCH = 50  # SES SendEmail's limit, and the size of one queue message
SQS_MAX_MESSAGE_BYTES = 256 * 1024  # the SQS default maximum message size
SQS_MAX_DELAY_SECONDS = 900
# A campaign batch the splitter checked against the suppression list less than this long ago is not
# batch-read again by the sender (half a read unit per email saved): the sender reads only the
# addresses suppressed since the split's check (one Query per batch, ``Suppressions.suppressed_since``),
# so an unsubscribe is honoured by every batch that starts after it, whenever that batch was split.
SUPPRESSION_RECHECK_SECONDS = 600
ATTACHMENT_PREFIX = "attachments/"  # bucket prefix where attachments are matched by file name
AUDIENCE_PREFIX = "audiences/"  # bucket prefix of campaign audiences
EXPORT_PREFIX = "exports/"  # bucket prefix of recipient exports (CSV), expired after EXPORT_RETENTION_DAYS
EXPORT_RETENTION_DAYS = 7
AUDIENCE_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}  # by the object key's extension
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024  # all attachments of one email together (SES allows 40 MB raw)


@dataclass(frozen=True)
class IndexSpec:
    name: str
    partition_key: str
    sort_key: str


@dataclass(frozen=True)
class TableSpec:
    suffix: str
    partition_key: str
    sort_key: str
    indexes: tuple[IndexSpec, ...]
    ttl_attribute: str


# The single job table: campaigns (with their split checkpoints), per-recipient message records,
# the suppression list, idempotency keys, processed-notification and counted-batch markers, and the
# providers' shared rate/breaker state. Key shapes live in one place in the store package.
JOB_TABLE = TableSpec(
    suffix="jobs",
    partition_key="PK",
    sort_key="SK",
    indexes=(
        # Provider message id -> message record (bounce/complaint correlation); and the campaigns'
        # cards under one partition key, newest first (GET /v1/campaigns).
        IndexSpec(name="GSI1", partition_key="GSI1PK", sort_key="GSI1SK"),
    ),
    ttl_attribute="expires_at",
)


@dataclass(frozen=True)
class FunctionSpec:
    name: str  # also the folder under lambdas/
    timeout_seconds: int
    memory_mb: int


@dataclass(frozen=True)
class QueueSpec:
    """A work queue with its redrive DLQ and the event source that drains it."""

    key: str
    consumer: str  # the FunctionSpec.name that consumes it
    visibility_timeout_seconds: int
    max_receive_count: int
    batch_size: int
    max_batching_window_seconds: int
    max_concurrency: int  # event source mapping's maximum concurrency (2..1000 on AWS)
    retention_days: int = 4
    dlq_retention_days: int = 14


INGEST = FunctionSpec(name="ingest", timeout_seconds=29, memory_mb=512)
SPLITTER = FunctionSpec(name="splitter", timeout_seconds=300, memory_mb=1024)
SENDER = FunctionSpec(name="sender", timeout_seconds=120, memory_mb=1024)
BOUNCE = FunctionSpec(name="bounce", timeout_seconds=60, memory_mb=512)
FUNCTIONS: tuple[FunctionSpec, ...] = (INGEST, SPLITTER, SENDER, BOUNCE)

# Visibility timeout is at least 6x the consumer's timeout (AWS guidance for SQS event sources);
# maxReceiveCount >= 5 because Lambda counts a throttled receive as a failure.
HIGH_LANE = QueueSpec(
    key="high",
    consumer=SENDER.name,
    visibility_timeout_seconds=6 * SENDER.timeout_seconds,
    max_receive_count=5,
    batch_size=10,
    max_batching_window_seconds=0,  # transactional: no batching delay
    max_concurrency=20,
)
LOW_LANE = QueueSpec(
    key="low",
    consumer=SENDER.name,
    visibility_timeout_seconds=6 * SENDER.timeout_seconds,
    max_receive_count=5,
    batch_size=10,
    max_batching_window_seconds=1,
    max_concurrency=50,
)
SPLIT_QUEUE = QueueSpec(
    key="split",
    consumer=SPLITTER.name,
    visibility_timeout_seconds=6 * SPLITTER.timeout_seconds,
    max_receive_count=5,
    batch_size=1,  # one campaign (or one continuation) per invocation
    max_batching_window_seconds=0,
    max_concurrency=10,
)
BOUNCE_QUEUE = QueueSpec(
    key="bounce",
    consumer=BOUNCE.name,
    visibility_timeout_seconds=6 * BOUNCE.timeout_seconds,
    max_receive_count=5,
    batch_size=10,
    max_batching_window_seconds=1,
    max_concurrency=5,
)
QUEUES: tuple[QueueSpec, ...] = (HIGH_LANE, LOW_LANE, SPLIT_QUEUE, BOUNCE_QUEUE)
LANES = {"high": HIGH_LANE, "low": LOW_LANE}

# What the configuration set publishes. SEND is what makes a crash between SES's acceptance and the
# sender's record harmless: the Send event settles the record SENT before the lease expires, so the
# redelivered batch does not send again (it is read, and written only in that rare case). DELIVERY
# is per stage (``sending.track_deliveries``): it moves records to DELIVERED, at about $1.6 per 1M
# emails (SNS + SQS + one write each) — more than the send path's own AWS bill.
SES_EVENT_TYPES = (
    "SEND",
    "REJECT",
    "BOUNCE",
    "COMPLAINT",
    "DELIVERY_DELAY",
    "RENDERING_FAILURE",
    "OPEN",
    "CLICK",
)
SES_DELIVERY_EVENT = "DELIVERY"


def ses_event_types(track_deliveries: bool) -> tuple[str, ...]:
    """The configuration set's event types for a stage."""
    return (*SES_EVENT_TYPES, SES_DELIVERY_EVENT) if track_deliveries else SES_EVENT_TYPES


def resource_name(stage: str, suffix: str) -> str:
    """Physical name of a resource, e.g. ``massmailer-dev-high``."""
    return f"{APP}-{stage}-{suffix}"


def table_name(stage: str) -> str:
    return resource_name(stage, JOB_TABLE.suffix)


def queue_name(stage: str, queue: QueueSpec) -> str:
    return resource_name(stage, queue.key)


def dlq_name(stage: str, queue: QueueSpec) -> str:
    return resource_name(stage, f"{queue.key}-dlq")


def topic_name(stage: str) -> str:
    return resource_name(stage, "ses-events")


def configuration_set_name(stage: str) -> str:
    return resource_name(stage, "configset")


def schedule_group_name(stage: str) -> str:
    return resource_name(stage, "schedules")


def schedule_dlq_name(stage: str) -> str:
    return resource_name(stage, "schedules-dlq")


def event_bus_name(stage: str) -> str:
    """The stage's EventBridge bus: events that trigger automations are put here."""
    return resource_name(stage, "events")


def event_rule_prefix(stage: str) -> str:
    """Every automation's rule on the bus is named with this prefix (what the ingest function may manage)."""
    return resource_name(stage, "auto-")


def smtp_secret_name(stage: str) -> str:
    return f"{APP}/{stage}/smtp-relay"


def signing_secret_name(stage: str) -> str:
    return f"{APP}/{stage}/signing-key"


@dataclass(frozen=True)
class EnvNames:
    """Environment variable names the functions read (see ``massmailer.settings``)."""

    table: str = "MM_TABLE_NAME"
    bucket: str = "MM_BUCKET_NAME"
    high_queue_url: str = "MM_HIGH_QUEUE_URL"
    low_queue_url: str = "MM_LOW_QUEUE_URL"
    split_queue_url: str = "MM_SPLIT_QUEUE_URL"
    configuration_set: str = "MM_SES_CONFIGURATION_SET"
    from_address: str = "MM_FROM_ADDRESS"
    providers: str = "MM_PROVIDERS"
    smtp_host: str = "MM_SMTP_HOST"
    smtp_port: str = "MM_SMTP_PORT"
    smtp_starttls: str = "MM_SMTP_STARTTLS"
    smtp_secret_arn: str = "MM_SMTP_SECRET_ARN"
    signing_secret_arn: str = "MM_SIGNING_SECRET_ARN"
    unsubscribe_base_url: str = "MM_UNSUBSCRIBE_BASE_URL"
    max_attempts: str = "MM_MAX_ATTEMPTS"
    maybe_sent_window: str = "MM_MAYBE_SENT_WINDOW"
    throttle_budget_hours: str = "MM_THROTTLE_BUDGET_HOURS"
    quota_recheck_minutes: str = "MM_QUOTA_RECHECK_MINUTES"
    ses_max_rate: str = "MM_SES_MAX_RATE"
    smtp_max_rate: str = "MM_SMTP_MAX_RATE"
    high_lane_reserve: str = "MM_HIGH_LANE_RESERVE"
    sender_concurrency: str = "MM_SENDER_CONCURRENCY"
    split_dedupe_mib: str = "MM_SPLIT_DEDUPE_MIB"
    index_provider_ids: str = "MM_INDEX_PROVIDER_IDS"
    schedule_group: str = "MM_SCHEDULE_GROUP"
    scheduler_role_arn: str = "MM_SCHEDULER_ROLE_ARN"
    schedule_dlq_arn: str = "MM_SCHEDULE_DLQ_ARN"
    event_bus: str = "MM_EVENT_BUS_NAME"
    stage: str = "MM_STAGE"
    guard_bounce_rate: str = "MM_GUARD_BOUNCE_RATE"
    guard_complaint_rate: str = "MM_GUARD_COMPLAINT_RATE"
    guard_min_sent: str = "MM_GUARD_MIN_SENT"
    guard_min_events: str = "MM_GUARD_MIN_EVENTS"


ENV = EnvNames()

ALL_QUEUE_KEYS = tuple(q.key for q in QUEUES)
