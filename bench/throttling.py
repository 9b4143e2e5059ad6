"""What waiting costs: DynamoDB requests per throttled email per hour (a row of the AWS bench).

One batch of recipients (a splitter's 50) is sent through the real send path (``send_batch``) over
the real DynamoDB repositories — moto, in process — with the real circuit breaker and provider
parking on the table's shared state, and a provider that never lets anything through. The clock is
virtual: each re-enqueued queue message is delivered when its delay is up, so a day of waiting runs
in seconds. Every DynamoDB call is counted through botocore events (``RequestCounter``, as for
``aws.ddb_writes_per_email``), reads and writes alike, failed conditional writes included, until
every recipient has ended FAILED "throttled past budget". Scenarios:

* ``throttled``: the provider throttles (SES ``ThrottlingException``, an SMTP 421 storm alike);
* ``parked``: the provider's daily quota is used up (SES ``LimitExceededException``): it is parked
  and the batch waits on the queue without claims; the quota reader always says "full";
* ``fixed_delay``: ``throttled`` with the delay held at 10–20 s, the cadence before the budget
  existed, for one hour only (the comparison).
"""

from __future__ import annotations

import heapq
import itertools
import os
import random
import uuid
from datetime import UTC, datetime
from typing import Any

from bench.workload import FROM_ADDRESS

HOUR = 3600.0


class _VirtualQueue:
    """SQS with a virtual clock: a message becomes visible when its delay is up."""

    def __init__(self, clock: _Clock) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self.requests = 0

    def send(self, queue: str, bodies: Any, delay_seconds: int = 0) -> None:
        self.requests += 1
        for body in bodies:
            heapq.heappush(self._heap, (self._clock.now + delay_seconds, next(self._seq), body))

    def next(self) -> tuple[float, str] | None:
        if not self._heap:
            return None
        due, _, body = heapq.heappop(self._heap)
        return due, body


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class _Refusing:
    """A provider that refuses every send with one error."""

    def __init__(self, name: str, error: Any) -> None:
        self.name = name
        self._error = error
        self.calls = 0

    def send(self, email: Any) -> Any:
        self.calls += 1
        raise self._error

    def close(self) -> None:
        return None


def simulate(scenario: str, recipients: int = 50, budget_hours: float = 24.0) -> dict[str, Any]:
    """Run one scenario under moto; returns the counts and the requests per email per hour."""
    os.environ.pop("AWS_ENDPOINT_URL", None)
    os.environ.pop("AWS_PROFILE", None)
    import boto3
    from moto import mock_aws

    from bench.aws_requests import AWS_ENV, RequestCounter, _environment
    from local.provision import create_job_table
    from massmailer.errors import Throttled
    from massmailer.models import BatchMessage, BatchRecipient, Campaign, CampaignStatus, Content, Lane
    from massmailer.providers.chain import ProviderChain
    from massmailer.resilience import CircuitBreaker, ParkingPolicy, ProviderParking
    from massmailer.sending import RetryPolicy, SenderContext, send_batch
    from massmailer.store import Stores
    from massmailer.unsubscribe import SigningKey, Unsubscriber

    clock = _Clock(1_800_000_000.0)
    counter = RequestCounter()
    with _environment(AWS_ENV), mock_aws():
        counter.install()
        try:
            create_job_table(boto3.client("dynamodb"), "bench-throttle")
            stores = Stores.dynamo(boto3.resource("dynamodb").Table("bench-throttle"), clock=clock)
            campaign_id = "cmp-throttle"
            stores.campaigns.put_campaign(
                Campaign(
                    campaign_id=campaign_id,
                    name="throttled",
                    content=Content(subject="Hello", text="Hello {{ email }}"),
                    lane=Lane.LOW,
                    from_address=FROM_ADDRESS,
                    status=CampaignStatus.SENDING,
                    audience_key=f"audiences/{campaign_id}.jsonl",
                    created_at=datetime.now(UTC),
                )
            )
            if scenario == "parked":
                error = Throttled("LimitExceededException: Daily message quota exceeded.", provider="ses")
            else:
                error = Throttled("ThrottlingException: Maximum sending rate exceeded.", provider="ses")
            provider = _Refusing("ses", error)
            shared = stores.shared_state
            chain = ProviderChain(
                [provider],
                breaker=CircuitBreaker(shared, clock=clock),
                parking=ProviderParking(shared, {"ses": lambda: (50_000.0, 50_000.0)}, ParkingPolicy(), clock=clock),
            )
            policy = RetryPolicy(throttle_budget=budget_hours * HOUR)
            if scenario == "fixed_delay":
                policy = RetryPolicy(throttle_budget=budget_hours * HOUR, throttle_max_delay=20.0)
            queue = _VirtualQueue(clock)
            ctx = SenderContext(
                campaigns=stores.campaigns,
                messages=stores.messages,
                suppressions=stores.suppressions,
                markers=stores.markers,
                queue=queue,
                chain=chain,
                from_address=FROM_ADDRESS,
                unsubscriber=Unsubscriber(
                    keys=(SigningKey("k1", b"bench" * 4),), base_url="https://mail.massmailer.test"
                ),
                policy=policy,
                concurrency=1,
                clock=clock,
                rng=random.Random(5),
            )
            batch = BatchMessage(
                kind="campaign",
                campaign_id=campaign_id,
                lane=Lane.LOW,
                recipients=[
                    BatchRecipient(message_id=f"{campaign_id}-{i}", email=f"user{i}@example.com")
                    for i in range(recipients)
                ],
            )
            start = clock.now
            deliveries = 0
            with counter.counting("wait") as count:
                assert count is not None
                queue.send("low", [batch.model_dump_json()])
                while (item := queue.next()) is not None:
                    clock.now = max(clock.now, item[0])
                    deliveries += 1
                    send_batch(ctx, BatchMessage.model_validate_json(item[1]), delivery=uuid.uuid4().hex)
            elapsed = clock.now - start
            statuses = {
                r["status"] for r in stores.messages.get_messages([r.message_id for r in batch.recipients]).values()
            }
        finally:
            counter.uninstall()
    ddb = sum(n for (service, _), n in count.calls.items() if service == "dynamodb")
    writes = sum(w.factor for w in count.writes)
    hours = elapsed / HOUR
    return {
        "scenario": scenario,
        "recipients": recipients,
        "budget_hours": budget_hours,
        "simulated_hours": round(hours, 3),
        "statuses": sorted(statuses),
        "queue_deliveries": deliveries,
        "provider_calls": provider.calls,
        "ddb_requests": ddb,
        "ddb_write_units_of_requests": writes,
        "ddb_requests_by_op": {op: n for (service, op), n in count.calls.items() if service == "dynamodb"},
        "sqs_sends": queue.requests,
        "ddb_requests_per_email_hour": ddb / recipients / hours,
    }
