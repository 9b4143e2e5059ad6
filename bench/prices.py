"""AWS list prices used to turn counted requests into a cost per 1M emails — the one table of them.

us-east-1, on-demand, beyond the free tiers, as the issue lists them (with the AWS pricing page of
each in ``source``). Checked 2026-11 against public summaries of AWS's announcements: DynamoDB
on-demand WRU $0.625/M and RRU $0.125/M are the prices after the 50% cut of 1 Nov 2024; SQS bills
each 64 KiB of a request's payload as one request. Update ``CHECKED`` with the figures.
"""

from __future__ import annotations

from dataclasses import dataclass

CHECKED = "2026-11 (us-east-1 list prices; DynamoDB after the 2024-11-01 on-demand price cut)"


@dataclass(frozen=True)
class Price:
    usd: float
    per: str
    source: str


PRICES: dict[str, Price] = {
    "sqs_request": Price(
        0.40 / 1e6,
        "request (standard queue; each 64 KiB of payload is one request)",
        "https://aws.amazon.com/sqs/pricing/",
    ),
    "dynamodb_wru": Price(
        0.625 / 1e6,
        "write request unit (1 KiB; GSI writes billed too)",
        "https://aws.amazon.com/dynamodb/pricing/on-demand/",
    ),
    "dynamodb_rru": Price(
        0.125 / 1e6,
        "read request unit (4 KiB strongly consistent, or 2 eventually consistent)",
        "https://aws.amazon.com/dynamodb/pricing/on-demand/",
    ),
    "lambda_gb_s_x86": Price(0.0000166667, "GB-second (x86_64)", "https://aws.amazon.com/lambda/pricing/"),
    "lambda_gb_s_arm": Price(0.0000133334, "GB-second (arm64)", "https://aws.amazon.com/lambda/pricing/"),
    "lambda_request": Price(0.20 / 1e6, "invocation", "https://aws.amazon.com/lambda/pricing/"),
    "sns_publish": Price(
        0.50 / 1e6, "publish (64 KiB chunks; SNS→SQS deliveries free)", "https://aws.amazon.com/sns/pricing/"
    ),
    "scheduler_invocation": Price(
        1.00 / 1e6,
        "EventBridge Scheduler invocation (after 14M/month free)",
        "https://aws.amazon.com/eventbridge/pricing/",
    ),
    "s3_put": Price(0.005 / 1000, "PUT/COPY/POST/LIST request (S3 Standard)", "https://aws.amazon.com/s3/pricing/"),
    "s3_get": Price(0.0004 / 1000, "GET/SELECT request (S3 Standard)", "https://aws.amazon.com/s3/pricing/"),
    "apigw_request": Price(
        3.50 / 1e6, "REST API request (first 333M/month)", "https://aws.amazon.com/api-gateway/pricing/"
    ),
    "ses_email": Price(
        0.10 / 1000, "outbound email (shown apart; attachments/data extra)", "https://aws.amazon.com/ses/pricing/"
    ),
}

# Lambda allocates CPU in proportion to memory: one full vCPU at 1,769 MB.
LAMBDA_MB_PER_VCPU = 1769


def lambda_seconds(cpu_seconds: float, memory_mb: int) -> float:
    """Billed duration for CPU-bound work at ``memory_mb`` (below 1,769 MB a function gets a fraction
    of a vCPU, so the same CPU takes longer). I/O waits are not in it: see the README's caveat."""
    share = min(1.0, memory_mb / LAMBDA_MB_PER_VCPU)
    return cpu_seconds / share


def table() -> list[dict[str, str | float]]:
    return [{"item": k, "usd": v.usd, "per": v.per, "source": v.source} for k, v in PRICES.items()]
