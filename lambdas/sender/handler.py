"""sender λ: consumes both lanes; per recipient claim → render → send via the provider chain → record."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from massmailer import wiring
from massmailer.models import BatchMessage
from massmailer.sending import BatchReport, SenderContext, send_batch
from massmailer.spec import METRICS_NAMESPACE

logger = Logger()
metrics = Metrics(namespace=METRICS_NAMESPACE)
processor = BatchProcessor(event_type=EventType.SQS)

_METRICS = {
    "sent": "EmailsSent",
    "failed": "EmailsFailed",
    "retry": "EmailsRetried",
    "retry_throttled": "Throttles",
}


def _emit(report: BatchReport) -> None:
    for outcome, name in _METRICS.items():
        if report.outcomes[outcome]:
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=report.outcomes[outcome])
    for provider, count in report.providers.items():
        metrics.add_metric(name=f"SentVia{provider.capitalize()}", unit=MetricUnit.Count, value=count)
    if report.fallbacks:
        metrics.add_metric(name="ProviderFallbacks", unit=MetricUnit.Count, value=report.fallbacks)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any, ctx: SenderContext | None = None) -> PartialItemFailureResponse:
    sender = ctx or wiring.sender_context()

    def record_handler(record: SQSRecord) -> None:
        batch = BatchMessage.model_validate_json(record.body)  # a malformed message fails → DLQ after redrive
        report = send_batch(
            sender,
            batch,
            time_left=lambda: context.get_remaining_time_in_millis() / 1000,
            delivery=record.message_id,  # the same on every redelivery of this message
            redelivered=int(record.attributes.get("ApproximateReceiveCount") or 1) > 1,
        )
        logger.info("batch done", extra={"outcomes": dict(report.outcomes), "campaign_id": batch.campaign_id})
        _emit(report)

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
