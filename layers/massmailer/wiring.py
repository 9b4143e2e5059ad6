"""Builds the real adapters from :class:`Settings`, once per process (per warm Lambda container).

Handlers call these factories; tests pass their own contexts instead. AWS endpoints come only from
the standard settings (``AWS_ENDPOINT_URL``, region, credentials), so the same code runs against AWS
and against the local runtime's moto server.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

from massmailer import spec
from massmailer.attachments import AttachmentResolver
from massmailer.automations import AutomationContext
from massmailer.blobs import S3Blobs
from massmailer.event_rules import EventRules
from massmailer.exports import ExportContext
from massmailer.intake import IntakeContext
from massmailer.notifications import RateGuard
from massmailer.providers.chain import ProviderChain
from massmailer.providers.ses import SesProvider
from massmailer.providers.smtp import SmtpConfig, SmtpProvider
from massmailer.queues import SqsQueue
from massmailer.resilience import CircuitBreaker, ParkingPolicy, ProviderParking, RateLimit, RateLimiter
from massmailer.schedules import EventBridgeSchedules
from massmailer.sending import RetryPolicy, SenderContext
from massmailer.settings import Settings
from massmailer.spec import ENV
from massmailer.splitting import SplitterContext
from massmailer.store import Stores
from massmailer.unsubscribe import Unsubscriber, parse_signing_keys

_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    max_pool_connections=32,
    connect_timeout=5,
    read_timeout=15,
)
# SES SendEmail must never be resent by botocore: a retry after a read timeout can send twice. The
# sender decides instead (``UnknownOutcome``: the record waits for SES's Send event).
SES_CONFIG = _CONFIG.merge(Config(retries={"mode": "standard", "total_max_attempts": 1}))
_lock = threading.Lock()
logger = logging.getLogger(__name__)


@cache
def settings() -> Settings:
    return Settings.from_env()


@cache
def client(service: str) -> Any:
    with _lock:
        return boto3.session.Session().client(service, config=_CONFIG)


@cache
def ses_client() -> Any:
    """The SES v2 client, with retries off (``SES_CONFIG``)."""
    with _lock:
        return boto3.session.Session().client("sesv2", config=SES_CONFIG)


@cache
def stores() -> Stores:
    """The job table's repositories, over one ``Table`` resource."""
    table = boto3.session.Session().resource("dynamodb", config=_CONFIG).Table(settings().table_name)
    return Stores.dynamo(table, index_provider_ids=settings().index_provider_ids)


def _queue() -> SqsQueue:
    s = settings()
    return SqsQueue(client("sqs"), {"high": s.high_queue_url, "low": s.low_queue_url, "split": s.split_queue_url})


@cache
def _secret(arn: str) -> str:
    return str(client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"])


def unsubscriber() -> Unsubscriber:
    """The unsubscribe signing keys, ``kid:secret`` pairs (or a JSON object), the first signing:
    from ``MM_SIGNING_KEYS`` locally, from the Secrets Manager secret in AWS (README, "Unsubscribe")."""
    s = settings()
    keys = s.signing_keys or (_secret(s.signing_secret_arn) if s.signing_secret_arn else None)
    if not keys:
        raise RuntimeError("no unsubscribe signing keys: set MM_SIGNING_KEYS or MM_SIGNING_SECRET_ARN")
    return Unsubscriber(keys=parse_signing_keys(keys), base_url=s.unsubscribe_base_url)


def _smtp_config(s: Settings) -> SmtpConfig:
    username, password = s.smtp_username, s.smtp_password
    if s.smtp_secret_arn:
        secret = json.loads(_secret(s.smtp_secret_arn))
        username, password = secret.get("username"), secret.get("password")
    if not s.smtp_host:
        raise RuntimeError("the smtp provider needs MM_SMTP_HOST")
    return SmtpConfig(
        host=s.smtp_host,
        port=s.smtp_port,
        starttls=s.smtp_starttls,
        username=username,
        password=password,
        connections=s.sender_concurrency,  # picked round-robin; senders sharing one pipeline through it
    )


def _ses_rate(s: Settings) -> float:
    """The configured SES rate, else the account's own maximum send rate (read once per container)."""
    if s.ses_max_rate:
        return s.ses_max_rate
    try:
        return float(client("sesv2").get_account()["SendQuota"]["MaxSendRate"])
    except Exception:  # noqa: BLE001 - no quota readable (e.g. an emulator): SES's sandbox rate is the safe floor
        return 1.0


def _ses_quota() -> tuple[float, float]:
    """SES's daily quota now: (SentLast24Hours, Max24HourSend); read while SES is parked."""
    quota = client("sesv2").get_account()["SendQuota"]
    return float(quota["SentLast24Hours"]), float(quota["Max24HourSend"])


@cache
def provider_chain() -> ProviderChain:
    s = settings()
    providers: list[Any] = []
    limits: dict[str, RateLimit] = {}
    for name in s.providers:
        if name == "ses":
            providers.append(SesProvider(ses_client(), s.configuration_set))
            limits["ses"] = RateLimit(per_second=_ses_rate(s), high_reserve=s.high_lane_reserve)
        elif name == "smtp":
            providers.append(SmtpProvider(_smtp_config(s)))
            if s.smtp_max_rate:
                limits["smtp"] = RateLimit(per_second=s.smtp_max_rate, high_reserve=s.high_lane_reserve)
    parking = ProviderParking(
        stores().shared_state,
        {"ses": _ses_quota},
        ParkingPolicy(recheck_seconds=s.quota_recheck_minutes * 60),
    )
    return ProviderChain(
        providers,
        breaker=CircuitBreaker(stores().shared_state),
        limiter=RateLimiter(stores().shared_state, limits),
        parking=parking,
    )


@cache
def sender_context() -> SenderContext:
    s = settings()
    repos = stores()
    return SenderContext(
        campaigns=repos.campaigns,
        messages=repos.messages,
        suppressions=repos.suppressions,
        markers=repos.markers,
        queue=_queue(),
        chain=provider_chain(),
        from_address=s.from_address,
        unsubscriber=unsubscriber(),
        policy=RetryPolicy(
            max_attempts=s.max_attempts,
            maybe_sent_window=float(s.maybe_sent_window),
            throttle_budget=s.throttle_budget_hours * 3600,
        ),
        concurrency=s.sender_concurrency,
        attachments=AttachmentResolver(S3Blobs(client("s3"), s.bucket_name)) if s.bucket_name else None,
    )


@cache
def rate_guard() -> RateGuard:
    """The bounce/complaint guard with the stage's thresholds (a campaign's own prevail)."""
    s = settings()
    return RateGuard(s.guard_bounce_rate, s.guard_complaint_rate, s.guard_min_sent, s.guard_min_events)


def splitter_context(time_left: Callable[[], float]) -> SplitterContext:
    s = settings()
    repos = stores()
    return SplitterContext(
        campaigns=repos.campaigns,
        suppressions=repos.suppressions,
        queue=_queue(),
        blobs=S3Blobs(client("s3"), s.bucket_name),
        time_left=time_left,
        dedupe_bytes=s.split_dedupe_mib << 20,
    )


def _schedules() -> EventBridgeSchedules | None:
    """The stage's schedule group on EventBridge Scheduler, if configured (else None, and a warning)."""
    s = settings()
    schedules = None
    missing = [
        name
        for name, value in (
            (ENV.schedule_group, s.schedule_group),
            (ENV.scheduler_role_arn, s.scheduler_role_arn),
            (ENV.schedule_dlq_arn, s.schedule_dlq_arn),
        )
        if not value
    ]
    if missing:  # campaigns with a send_at are refused until it is configured
        logger.warning("scheduling is off: %s not set", ", ".join(missing))
    if s.schedule_group and s.scheduler_role_arn and s.schedule_dlq_arn:
        split_arn = client("sqs").get_queue_attributes(QueueUrl=s.split_queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        schedules = EventBridgeSchedules(
            client("scheduler"), s.schedule_group, s.scheduler_role_arn, {"split": split_arn}, s.schedule_dlq_arn
        )
    return schedules


@cache
def intake_context() -> IntakeContext:
    s = settings()
    schedules = _schedules()
    repos = stores()
    return IntakeContext(
        campaigns=repos.campaigns,
        messages=repos.messages,
        suppressions=repos.suppressions,
        idempotency=repos.idempotency,
        queue=_queue(),
        blobs=S3Blobs(client("s3"), s.bucket_name),
        schedules=schedules,
        from_address=s.from_address,
        unsubscriber=unsubscriber(),
        exports=repos.exports,
        uploads=S3Blobs(client("s3"), s.bucket_name),
        guard_defaults=s.guard_defaults(),
    )


@cache
def automation_context() -> AutomationContext:
    """The ingest function's: automations over the intake context and the schedule group."""
    s = settings()
    rules = split_arn = None
    if s.event_bus_name:  # event-triggered automations: rules on the stage's bus, aimed at the split queue
        rules = EventRules(client("events"), s.event_bus_name, spec.event_rule_prefix(s.stage))
        split_arn = client("sqs").get_queue_attributes(QueueUrl=s.split_queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
    return AutomationContext(
        automations=stores().automations,
        intake=intake_context(),
        schedules=_schedules(),
        rules=rules,
        split_queue_arn=split_arn,
    )


@cache
def automation_run_context() -> AutomationContext:
    """The splitter's: a run's campaign is accepted as intake would (no schedules, no unsubscribe keys)."""
    s = settings()
    repos = stores()
    intake = IntakeContext(
        campaigns=repos.campaigns,
        messages=repos.messages,
        suppressions=repos.suppressions,
        idempotency=repos.idempotency,
        queue=_queue(),
        blobs=S3Blobs(client("s3"), s.bucket_name),
        schedules=None,
        from_address=s.from_address,
        guard_defaults=s.guard_defaults(),
    )
    return AutomationContext(automations=repos.automations, intake=intake, schedules=None)


def export_context(time_left: Callable[[], float]) -> ExportContext:
    s = settings()
    repos = stores()
    return ExportContext(
        campaigns=repos.campaigns,
        messages=repos.messages,
        exports=repos.exports,
        queue=_queue(),
        blobs=S3Blobs(client("s3"), s.bucket_name),
        time_left=time_left,
    )


def reset() -> None:
    """Forget every cached adapter (tests and the local runtime change the environment)."""
    for fn in (
        settings,
        client,
        ses_client,
        stores,
        _secret,
        provider_chain,
        sender_context,
        intake_context,
        automation_context,
        automation_run_context,
        rate_guard,
    ):
        fn.cache_clear()
