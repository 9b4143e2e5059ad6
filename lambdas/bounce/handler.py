"""bounce λ: SES notifications (SNS → SQS, or SNS direct) → status, suppression, counters, metrics."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from massmailer import wiring
from massmailer.notifications import (
    DEFAULT_GUARD,
    NotificationReport,
    NotificationStores,
    RateGuard,
    is_sns_event,
    process_sns_payload,
)

logger = Logger()
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "MassMailer"))
# A batch whose every record failed is reported record by record too, like a partial failure.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def _record(report: NotificationReport) -> None:
    (logger.info if report.noteworthy else logger.debug)("ses notification", extra=report.log_fields())
    for name, value in report.events.items():  # Bounces, SoftBounces, Complaints, Deliveries
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(
    event: dict[str, Any], context: Any, stores: NotificationStores | None = None, guard: RateGuard | None = None
) -> PartialItemFailureResponse:
    repos = stores or wiring.stores()
    # The stage's guard (tests passing their stores get the built-in one); a campaign's own prevail.
    guard = guard or (DEFAULT_GUARD if stores is not None else wiring.rate_guard())
    if is_sns_event(event) or "Records" not in event:
        # SNS → Lambda is an asynchronous invoke: an error (store unavailable) raises, so Lambda retries.
        for record in event.get("Records") or [{"Sns": event}]:
            _record(process_sns_payload(repos, record["Sns"], guard))
        return {"batchItemFailures": []}

    def record_handler(record: SQSRecord) -> None:
        # Unknown or non-JSON input is acknowledged; StoreUnavailable (retried) and MalformedNotification
        # (poison, kept in the DLQ) fail the record.
        _record(process_sns_payload(repos, record.body, guard))

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
