"""splitter λ: one campaign (or one continuation) per split-queue message → batches of ≤50 on its lane;
the recipients exports (``{"kind": "export"}`` messages on the same queue → a CSV in the bucket); and
the automations' runs (``{"kind": "automation"}``, from EventBridge Scheduler or run-now → a campaign);
and bus events that matched an automation's rule (``{"kind": "automation_event"}`` → a one-recipient
trigger, idempotent on the event id).

The audience is the campaign's object in the bucket — CSV or JSONL by its extension — streamed from
the campaign's checkpoint (a byte offset; a CSV header is re-read first). Near the time limit the
split checkpoints and puts a continuation on the split queue; an audience that is missing, replaced
or has no ``email`` column fails the campaign with the reason (``last_error``), it is not retried.
See ``massmailer.splitting``.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from massmailer import wiring
from massmailer.automations import AutomationContext, AutomationEvent, AutomationFire, fire, on_event
from massmailer.exports import ExportContext, ExportRequest, run_export
from massmailer.models import SplitRequest
from massmailer.splitting import SplitterContext, split_campaign

logger = Logger()
processor = BatchProcessor(event_type=EventType.SQS)


@logger.inject_lambda_context(clear_state=True)
def handler(
    event: dict[str, Any],
    context: Any,
    ctx: SplitterContext | None = None,
    exporter: ExportContext | None = None,
    automations: AutomationContext | None = None,
) -> PartialItemFailureResponse:
    def time_left() -> float:
        return float(context.get_remaining_time_in_millis()) / 1000

    splitter = ctx or wiring.splitter_context(time_left=time_left)

    def record_handler(record: SQSRecord) -> None:
        if record.json_body.get("kind") == "export":  # a recipients export (massmailer.exports)
            request = ExportRequest.model_validate_json(record.body)
            result = run_export(exporter or wiring.export_context(time_left), request.export_id)
            logger.info("export", extra={"export_id": request.export_id, **result.__dict__})
            return
        if record.json_body.get("kind") == "automation":  # a run (massmailer.automations)
            firing = AutomationFire.model_validate_json(record.body)
            outcome = fire(automations or wiring.automation_run_context(), firing)
            logger.info("automation", extra={"automation_id": firing.automation_id, "outcome": outcome})
            return
        if record.json_body.get("kind") == "automation_event":  # a bus event matched an automation's rule
            event = AutomationEvent.model_validate_json(record.body)
            outcome = on_event(automations or wiring.automation_run_context(), event)
            logger.info("automation event", extra={"automation_id": event.automation_id, "outcome": outcome})
            return
        report = split_campaign(splitter, SplitRequest.model_validate_json(record.body))
        logger.info("split", extra={"campaign_id": record.json_body.get("campaign_id"), **report.counts})

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
