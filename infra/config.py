"""Per-stage settings of the CDK app: one typed, validated object per stage.

Every difference between stages (dev, prod, ...) lives here and reaches the constructs as typed
keyword arguments; constructs never ask "which stage is this?". The values come from the
``stages`` map in ``cdk.json`` context; names, keys and queue limits come from ``massmailer.spec``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from aws_cdk import RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from pydantic import BaseModel, ConfigDict, EmailStr, Field, HttpUrl, PositiveFloat, model_validator

from massmailer import spec
from massmailer.settings import ProviderName, Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
CDK_JSON = REPO_ROOT / "cdk.json"
DEFAULT_STAGE = "dev"
# CloudWatch namespace of the functions' custom metrics (Powertools POWERTOOLS_METRICS_NAMESPACE).
METRICS_NAMESPACE = "MassMailer"


# AWS bounds of an SQS event source mapping's maximum concurrency.
MIN_EVENT_SOURCE_CONCURRENCY = 2
MAX_EVENT_SOURCE_CONCURRENCY = 1000


def _require_lanes(field: str, per_lane: Mapping[str, object]) -> None:
    """A per-lane setting names exactly the lanes of ``spec.LANES``."""
    if set(per_lane) != set(spec.LANES):
        raise ValueError(f"{field} must have one value per lane {sorted(spec.LANES)}, got {sorted(per_lane)}")


def _retention_by_days() -> dict[int, logs.RetentionDays]:
    """Map CloudWatch retention periods in days to the CDK enum (INFINITE excluded)."""
    days = {
        "ONE_DAY": 1, "THREE_DAYS": 3, "FIVE_DAYS": 5, "ONE_WEEK": 7, "TWO_WEEKS": 14,
        "ONE_MONTH": 30, "TWO_MONTHS": 60, "THREE_MONTHS": 90, "FOUR_MONTHS": 120,
        "FIVE_MONTHS": 150, "SIX_MONTHS": 180, "ONE_YEAR": 365, "THIRTEEN_MONTHS": 400,
        "EIGHTEEN_MONTHS": 545, "TWO_YEARS": 731, "THREE_YEARS": 1096, "FIVE_YEARS": 1827,
        "SIX_YEARS": 2192, "SEVEN_YEARS": 2557, "EIGHT_YEARS": 2922, "NINE_YEARS": 3288,
        "TEN_YEARS": 3653,
    }  # fmt: skip
    return {n: logs.RetentionDays[member] for member, n in days.items()}


_RETENTION_BY_DAYS = _retention_by_days()


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SendingConfig(_Section):
    """Who mails are from, through which providers, how fast and how often retried.

    Ranges are those of ``massmailer.settings.Settings``: the functions would refuse at start what
    synth refuses here.
    """

    from_address: EmailStr
    ses_identity: str = Field(min_length=3, description="Verified SES identity: domain or address")
    providers: tuple[ProviderName, ...] = ("ses", "smtp")
    provider_send_rates: Mapping[ProviderName, PositiveFloat] = Field(
        default_factory=lambda: {"ses": 14.0, "smtp": 10.0},
        description="Emails per second each provider accepts from the whole stage (shared token bucket)",
    )
    high_lane_reserve: float = Field(default=0.2, ge=0, lt=1, description="Share of each rate kept for the high lane")
    sender_concurrency: int = Field(default=8, ge=1, le=64, description="Concurrent sends inside one invocation")
    split_dedupe_mib: int = Field(
        default=32, ge=1, le=512, description="Splitter's de-dupe table per pass (MiB, ≈64k addresses each)"
    )
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_starttls: bool = True
    max_attempts: int = Field(default=4, description="First try plus retries")
    maybe_sent_window: int = Field(
        default=900, description="Seconds an SES send whose answer was lost waits for its Send event before a resend"
    )
    throttle_budget_hours: float = Field(
        default=24.0, gt=0, description="A recipient throttled this long after its first attempt ends FAILED"
    )
    quota_recheck_minutes: float = Field(
        default=10.0, ge=1, description="How often a provider parked for its daily quota has its quota read again"
    )
    lane_max_concurrency: Mapping[str, int] = Field(
        default_factory=lambda: {key: lane.max_concurrency for key, lane in spec.LANES.items()}
    )
    unsubscribe_base_url: HttpUrl | None = Field(
        default=None, description="Public base URL of the API; default: the API Gateway stage URL"
    )
    track_deliveries: bool = Field(
        default=True,
        description="Publish SES Delivery events so records move to DELIVERED (~$1.6 per 1M emails more)",
    )
    guard_bounce_rate: float = Field(default=0.05, gt=0, le=1, description="Guard: pause at this bounce rate")
    guard_complaint_rate: float = Field(default=0.001, gt=0, le=1, description="Guard: pause at this complaint rate")
    guard_min_sent: int = Field(default=100, ge=1, description="Guard: rates ignored below this many sends")
    guard_min_events: int = Field(default=3, ge=1, description="Guard: bounces (complaints) behind a rate")
    index_provider_ids: bool = Field(
        default=False,
        description="Index SES message ids (+1 WRU per email); only for identity notifications without tags",
    )

    @model_validator(mode="after")
    def _check(self) -> SendingConfig:
        _require_lanes("lane_max_concurrency", self.lane_max_concurrency)
        for lane, concurrency in self.lane_max_concurrency.items():
            if not MIN_EVENT_SOURCE_CONCURRENCY <= concurrency <= MAX_EVENT_SOURCE_CONCURRENCY:
                raise ValueError(f"lane_max_concurrency[{lane}]={concurrency} is outside 2..1000")
        if "smtp" in self.providers and not self.smtp_host:
            raise ValueError("provider 'smtp' is enabled but smtp_host is not set")
        unrated = set(self.providers) - set(self.provider_send_rates)
        if unrated:
            # Without a rate the sender would ask SES for the account quota (ses:GetAccount, which
            # needs Resource "*") or send unthrottled through the relay.
            raise ValueError(f"provider_send_rates has no rate for {sorted(unrated)}")
        Settings.model_validate({"table_name": "synth-check", **self.runtime_values()})
        return self

    def runtime_values(self) -> dict[str, Any]:
        """These settings under the field names of ``massmailer.settings.Settings``."""
        values = {
            "from_address": self.from_address,
            "providers": self.providers,
            "ses_max_rate": self.provider_send_rates.get("ses"),
            "smtp_max_rate": self.provider_send_rates.get("smtp"),
            "high_lane_reserve": self.high_lane_reserve,
            "sender_concurrency": self.sender_concurrency,
            "split_dedupe_mib": self.split_dedupe_mib,
            "smtp_host": self.smtp_host,
            "smtp_port": self.smtp_port,
            "smtp_starttls": self.smtp_starttls,
            "max_attempts": self.max_attempts,
            "maybe_sent_window": self.maybe_sent_window,
            "throttle_budget_hours": self.throttle_budget_hours,
            "quota_recheck_minutes": self.quota_recheck_minutes,
            "index_provider_ids": self.index_provider_ids,
            "guard_bounce_rate": self.guard_bounce_rate,
            "guard_complaint_rate": self.guard_complaint_rate,
            "guard_min_sent": self.guard_min_sent,
            "guard_min_events": self.guard_min_events,
        }
        return {field: value for field, value in values.items() if value is not None}


class ApiConfig(_Section):
    """Stage-wide throttling of the HTTPS API (requests per second / burst)."""

    rate_limit: PositiveFloat = 100.0
    burst_limit: int = Field(default=200, ge=1)


class AlarmConfig(_Section):
    email: EmailStr | None = Field(default=None, description="Subscribed to the alarm topic")
    lane_age_seconds: Mapping[str, int] = Field(default_factory=lambda: {"high": 300, "low": 3600})
    bounce_rate_percent: PositiveFloat = 5.0
    complaint_rate_percent: PositiveFloat = 0.1
    rate_min_sends: int = Field(
        default=100, ge=1, description="Bounce/complaint rate alarms ignore periods with fewer sends"
    )

    @model_validator(mode="after")
    def _check(self) -> AlarmConfig:
        _require_lanes("lane_age_seconds", self.lane_age_seconds)
        return self


class StageConfig(_Section):
    """Everything that may differ between two deployments of MassMailer."""

    name: str = Field(pattern=r"^[a-z][a-z0-9]{1,11}$")
    account: str | None = Field(default=None, pattern=r"^\d{12}$")
    region: str | None = None
    sending: SendingConfig
    api: ApiConfig = Field(default_factory=ApiConfig)
    alarms: AlarmConfig = Field(default_factory=AlarmConfig)
    log_retention_days: int = 30
    removal_policy: Literal["destroy", "retain"] = "retain"
    architecture: Literal["arm64", "x86_64"] = "arm64"
    tags: Mapping[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> StageConfig:
        if self.log_retention_days not in _RETENTION_BY_DAYS:
            raise ValueError(
                f"log_retention_days={self.log_retention_days} is not a CloudWatch Logs retention; "
                f"use one of {sorted(_RETENTION_BY_DAYS)}"
            )
        return self

    # --- derived, CDK-typed views --------------------------------------------------------------
    @property
    def service_name(self) -> str:
        """Powertools service name; also the ``service`` dimension of the custom metrics."""
        return f"{spec.APP}-{self.name}"

    @property
    def cdk_removal_policy(self) -> RemovalPolicy:
        return RemovalPolicy.DESTROY if self.removal_policy == "destroy" else RemovalPolicy.RETAIN

    @property
    def lambda_architecture(self) -> lambda_.Architecture:
        return lambda_.Architecture.ARM_64 if self.architecture == "arm64" else lambda_.Architecture.X86_64

    @property
    def log_retention(self) -> logs.RetentionDays:
        return _RETENTION_BY_DAYS[self.log_retention_days]


def read_cdk_json_context(path: Path = CDK_JSON) -> dict[str, Any]:
    """The ``context`` block of cdk.json.

    The CDK CLI passes it to the app itself; ``python app.py`` (``make synth``) does not, so the
    app loads it as the lowest-priority defaults (``-c``/``CDK_CONTEXT_JSON`` still win).
    """
    return dict(json.loads(path.read_text())["context"])


def stage_config_from_context(stages: Mapping[str, Mapping[str, Any]], stage: str) -> StageConfig:
    """The validated settings of ``stage`` from the ``stages`` context map."""
    if stage not in stages:
        raise ValueError(f"unknown stage {stage!r}; cdk.json context 'stages' has {sorted(stages)}")
    return StageConfig.model_validate({"name": stage, **stages[stage]})


def context_flag(value: object) -> bool:
    """A boolean context value; ``-c key=true`` arrives as the string "true"."""
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)
