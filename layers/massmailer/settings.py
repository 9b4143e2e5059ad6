"""Runtime settings: one pydantic model, read from the environment once at handler entry.

Domain code never reads ``os.environ``; handlers build a :class:`Settings` and pass it down.
Secrets (SMTP credentials, the unsubscribe signing key) come from the environment for local use or
from Secrets Manager by ARN in AWS; they are never in code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from massmailer.spec import ENV

ProviderName = Literal["ses", "smtp"]


class Settings(BaseModel):
    stage: str = "local"
    table_name: str
    bucket_name: str = ""
    high_queue_url: str = ""
    low_queue_url: str = ""
    split_queue_url: str = ""
    configuration_set: str | None = None
    from_address: str = "noreply@example.com"
    providers: tuple[ProviderName, ...] = ("ses", "smtp")
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_username: str | None = Field(default=None, repr=False)
    smtp_password: str | None = Field(default=None, repr=False)
    smtp_secret_arn: str | None = None
    signing_keys: str | None = Field(default=None, repr=False)  # "kid1:secret1,kid2:secret2", first signs
    signing_secret_arn: str | None = None
    unsubscribe_base_url: str = "https://example.com"
    max_attempts: int = Field(default=4, ge=1, le=20)  # first try + 3 retries
    # How long a "maybe sent" SES email waits for its Send event before it is sent again (seconds).
    maybe_sent_window: int = Field(default=900, ge=60, le=86400)
    # A recipient still throttled (or waiting on parked providers) this long after its first attempt
    # is FAILED "throttled past budget".
    throttle_budget_hours: float = Field(default=24.0, gt=0, le=24 * 14)
    # A provider parked for its daily quota has its quota (SES GetAccount) read again at most this often.
    quota_recheck_minutes: float = Field(default=10.0, ge=1, le=24 * 60)
    ses_max_rate: float | None = Field(default=None, gt=0)  # emails/s; None: SES's own account quota
    smtp_max_rate: float | None = Field(default=None, gt=0)  # emails/s; None: no limit of ours
    high_lane_reserve: float = Field(default=0.2, ge=0, lt=1)  # share of each provider's rate kept for high
    sender_concurrency: int = Field(default=8, ge=1, le=64)  # concurrent sends inside one invocation
    split_dedupe_mib: int = Field(default=32, ge=1, le=512)  # splitter's de-dupe table per pass (MiB)
    # Write SES's message id to the provider-id index when a send is recorded: +1 WRU per email; only
    # needed for SES identity notifications without our tag or header (see store.messages.DynamoMessages).
    index_provider_ids: bool = False
    schedule_group: str | None = None
    scheduler_role_arn: str | None = None
    schedule_dlq_arn: str | None = None  # where Scheduler puts a schedule it could not deliver
    event_bus_name: str | None = None  # the stage's EventBridge bus (event-triggered automations)
    # The bounce/complaint guard's stage defaults (a campaign's request may set its own):
    guard_bounce_rate: float = Field(default=0.05, gt=0, le=1)
    guard_complaint_rate: float = Field(default=0.001, gt=0, le=1)
    guard_min_sent: int = Field(default=100, ge=1)
    guard_min_events: int = Field(default=3, ge=1)

    @field_validator("providers", mode="before")
    @classmethod
    def _split_providers(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(p.strip() for p in value.split(",") if p.strip())
        return value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        mapping = {
            "stage": ENV.stage,
            "table_name": ENV.table,
            "bucket_name": ENV.bucket,
            "high_queue_url": ENV.high_queue_url,
            "low_queue_url": ENV.low_queue_url,
            "split_queue_url": ENV.split_queue_url,
            "configuration_set": ENV.configuration_set,
            "from_address": ENV.from_address,
            "providers": ENV.providers,
            "smtp_host": ENV.smtp_host,
            "smtp_port": ENV.smtp_port,
            "smtp_starttls": ENV.smtp_starttls,
            "smtp_username": "MM_SMTP_USERNAME",
            "smtp_password": "MM_SMTP_PASSWORD",
            "smtp_secret_arn": ENV.smtp_secret_arn,
            "signing_keys": "MM_SIGNING_KEYS",
            "signing_secret_arn": ENV.signing_secret_arn,
            "unsubscribe_base_url": ENV.unsubscribe_base_url,
            "max_attempts": ENV.max_attempts,
            "maybe_sent_window": ENV.maybe_sent_window,
            "throttle_budget_hours": ENV.throttle_budget_hours,
            "quota_recheck_minutes": ENV.quota_recheck_minutes,
            "ses_max_rate": ENV.ses_max_rate,
            "smtp_max_rate": ENV.smtp_max_rate,
            "high_lane_reserve": ENV.high_lane_reserve,
            "sender_concurrency": ENV.sender_concurrency,
            "split_dedupe_mib": ENV.split_dedupe_mib,
            "index_provider_ids": ENV.index_provider_ids,
            "schedule_group": ENV.schedule_group,
            "scheduler_role_arn": ENV.scheduler_role_arn,
            "schedule_dlq_arn": ENV.schedule_dlq_arn,
            "event_bus_name": ENV.event_bus,
            "guard_bounce_rate": ENV.guard_bounce_rate,
            "guard_complaint_rate": ENV.guard_complaint_rate,
            "guard_min_sent": ENV.guard_min_sent,
            "guard_min_events": ENV.guard_min_events,
        }
        values = {field: env[name] for field, name in mapping.items() if env.get(name)}
        return cls.model_validate(values)

    def guard_defaults(self) -> dict[str, float | int]:
        """The stage's guard thresholds, named as in a campaign request's ``guard``."""
        return {
            "bounce_rate": self.guard_bounce_rate,
            "complaint_rate": self.guard_complaint_rate,
            "min_sent": self.guard_min_sent,
            "min_events": self.guard_min_events,
        }

    def lane_url(self, lane: str) -> str:
        return self.high_queue_url if lane == "high" else self.low_queue_url
