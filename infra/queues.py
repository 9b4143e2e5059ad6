"""Work queues: one SQS queue + redrive DLQ per ``spec.QUEUES`` entry (high, low, split, bounce)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from massmailer import spec

# AWS guidance for SQS event sources: visibility timeout >= 6x the consumer function's timeout.
VISIBILITY_TO_TIMEOUT_RATIO = 6


def encrypted_queue(
    scope: Construct,
    construct_id: str,
    *,
    queue_name: str,
    retention_days: int,
    visibility_timeout_seconds: int | None = None,
    dead_letter_queue: sqs.DeadLetterQueue | None = None,
) -> sqs.Queue:
    """A queue with SQS-managed encryption at rest and a policy that refuses non-TLS requests."""
    return sqs.Queue(
        scope,
        construct_id,
        queue_name=queue_name,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=Duration.days(retention_days),
        visibility_timeout=(
            Duration.seconds(visibility_timeout_seconds) if visibility_timeout_seconds is not None else None
        ),
        dead_letter_queue=dead_letter_queue,
    )


def check_visibility(queue: spec.QueueSpec) -> None:
    """Refuse a spec whose visibility timeout could expire while its consumer still runs."""
    consumer = next((f for f in spec.FUNCTIONS if f.name == queue.consumer), None)
    if consumer is None:
        raise ValueError(f"queue {queue.key!r}: consumer {queue.consumer!r} is not in spec.FUNCTIONS")
    minimum = VISIBILITY_TO_TIMEOUT_RATIO * consumer.timeout_seconds
    if queue.visibility_timeout_seconds < minimum:
        raise ValueError(
            f"queue {queue.key!r}: visibility timeout {queue.visibility_timeout_seconds}s < "
            f"{VISIBILITY_TO_TIMEOUT_RATIO} x {consumer.name} timeout ({minimum}s)"
        )


@dataclass(frozen=True)
class WorkQueue:
    queue_spec: spec.QueueSpec
    queue: sqs.Queue
    dead_letter_queue: sqs.Queue


class WorkQueues(Construct):
    """Every queue of the pipeline with its DLQ, named and tuned by ``massmailer.spec``."""

    def __init__(self, scope: Construct, construct_id: str, *, stage: str) -> None:
        super().__init__(scope, construct_id)
        self._queues: dict[str, WorkQueue] = {}
        for queue_spec in spec.QUEUES:
            check_visibility(queue_spec)
            dlq = encrypted_queue(
                self,
                f"{queue_spec.key.title()}Dlq",
                queue_name=spec.dlq_name(stage, queue_spec),
                retention_days=queue_spec.dlq_retention_days,
            )
            queue = encrypted_queue(
                self,
                f"{queue_spec.key.title()}Queue",
                queue_name=spec.queue_name(stage, queue_spec),
                retention_days=queue_spec.retention_days,
                visibility_timeout_seconds=queue_spec.visibility_timeout_seconds,
                dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=queue_spec.max_receive_count),
            )
            self._queues[queue_spec.key] = WorkQueue(queue_spec=queue_spec, queue=queue, dead_letter_queue=dlq)

    def __getitem__(self, key: str) -> WorkQueue:
        return self._queues[key]

    def __iter__(self) -> Iterator[WorkQueue]:
        return iter(self._queues.values())

    @property
    def high(self) -> sqs.Queue:
        return self[spec.HIGH_LANE.key].queue

    @property
    def low(self) -> sqs.Queue:
        return self[spec.LOW_LANE.key].queue

    @property
    def split(self) -> sqs.Queue:
        return self[spec.SPLIT_QUEUE.key].queue

    @property
    def bounce(self) -> sqs.Queue:
        return self[spec.BOUNCE_QUEUE.key].queue
