"""How a campaign ends besides completing, through the real handlers on moto and a real SMTP relay:
a cancelled scheduled campaign sends nothing at its time; a campaign that fails part-way settles
every recipient it had queued (the counts add up and ``queued`` reaches 0)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from lambdas.sender import handler as sender_handler
from lambdas.splitter import handler as splitter_handler
from local.event_source import SqsEventSource
from local.scheduler_loop import SchedulerLoop
from massmailer import splitting, wiring
from massmailer.models import SplitRequest
from massmailer.spec import LOW_LANE
from massmailer.splitting import SplitterContext, recipient_message_id
from tests.integration.conftest import Pipeline

SEND_AT = datetime(2031, 6, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def smtp_pipeline(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    monkeypatch.setenv("MM_PROVIDERS", "smtp")  # every email through the real relay
    wiring.reset()
    return pipeline


def _recipients(pipeline: Pipeline) -> list[str]:
    return [rcpt for _, rcpts, _ in pipeline.relay.messages for rcpt in rcpts]


def _schedule_names(group: str) -> list[str]:
    return [s["Name"] for s in boto3.client("scheduler").list_schedules(GroupName=group)["Schedules"]]


def test_cancel_a_scheduled_campaign_deletes_its_schedule_and_nothing_is_sent_at_send_at(
    smtp_pipeline: Pipeline,
) -> None:
    pipeline = smtp_pipeline
    status, accepted = pipeline.api(
        "POST",
        "/v1/campaigns",
        {
            "name": "later",
            "subject": "s",
            "text": "t",
            "audience": [{"email": f"later{i}@example.com"} for i in range(3)],
            "send_at": SEND_AT.isoformat(),
        },
    )
    assert status == 202 and accepted["status"] == "SCHEDULED", accepted
    campaign_id = accepted["campaign_id"]
    group = pipeline.resources["schedule_group"]
    assert [n for n in _schedule_names(group) if campaign_id in n] != []  # the schedule exists before
    now = [SEND_AT - timedelta(minutes=1)]
    loop = SchedulerLoop(boto3.client("scheduler"), pipeline.sqs, boto3.client("sns"), tick=1.0, clock=lambda: now[0])
    assert loop.run_once() == []  # read once while it existed: not due yet

    # When the operator cancels it before its time
    status, cancelled = pipeline.api("POST", f"/v1/campaigns/{campaign_id}/cancel")
    assert status == 200 and cancelled["status"] == "CANCELLED" and cancelled["reason"] == "cancelled by operator"

    # Then its schedule is gone, and the scheduler fires nothing at send_at
    assert [n for n in _schedule_names(group) if campaign_id in n] == []
    now[0] = SEND_AT + timedelta(seconds=1)
    assert loop.run_once() == [] and loop.fired() == []
    assert pipeline.depth("split") == 0

    # And a split request that arrives anyway (a firing already in flight) is refused by the splitter
    pipeline.sqs.send_message(
        QueueUrl=pipeline.resources["queues"]["split"],
        MessageBody=SplitRequest(campaign_id=campaign_id).model_dump_json(),
    )
    pipeline.run()
    status, view = pipeline.api("GET", f"/v1/campaigns/{campaign_id}")
    assert _recipients(pipeline) == [] and pipeline.depth("low") == 0 and pipeline.depth("split", dlq=True) == 0
    assert view["status"] == "CANCELLED" and view["split_done"] is False and view["counts"]["total"] == 0
    assert pipeline.api("POST", f"/v1/campaigns/{campaign_id}/resume")[0] == 409


def test_a_campaign_failing_part_way_settles_its_queued_recipients_and_the_counts_add_up(
    smtp_pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, small_chunks: int
) -> None:
    pipeline, n = smtp_pipeline, 480  # the split checkpoints every 200
    s3 = boto3.client("s3")
    bucket = pipeline.resources["bucket"]
    rows = "email,n\n" + "".join(f"user{i}@example.com,{i}\n" for i in range(n))
    s3.put_object(Bucket=bucket, Key="audiences/list.csv", Body=rows.encode())
    status, accepted = pipeline.api(
        "POST",
        "/v1/campaigns",
        {"name": "fails", "subject": "Hi {{ n }}", "text": "t {{ n }}", "audience_object": "audiences/list.csv"},
    )
    assert status == 202, accepted
    campaign_id = accepted["campaign_id"]

    # The first split invocation runs out of time after its first checkpoint (200 recipients queued);
    # the audience object is replaced before the continuation reads it (its pinned ETag no longer matches).
    real_context: Callable[..., SplitterContext] = wiring.splitter_context
    invocations = [0]

    def splitter_context(time_left: Callable[[], float]) -> SplitterContext:
        ctx = real_context(time_left)
        invocations[0] += 1
        if invocations[0] == 1:

            def short() -> float:
                s3.put_object(Bucket=bucket, Key="audiences/list.csv", Body=b"email\nsomeone@example.com\n")
                return 0.0

            ctx.time_left = short
        return ctx

    monkeypatch.setattr(wiring, "splitter_context", splitter_context)
    assert pipeline.source("split", splitter_handler.handler).poll_once() == 1  # 200 queued, then continued
    two_batches = SqsEventSource(
        pipeline.sqs, pipeline.resources["queues"]["low"], replace(LOW_LANE, batch_size=2), sender_handler.handler
    )
    assert two_batches.poll_once() == 2  # some recipients are sent before the campaign fails
    pipeline.run()  # the continuation fails the campaign; the batches still queued are settled FAILED

    status, view = pipeline.api("GET", f"/v1/campaigns/{campaign_id}")
    counts: dict[str, Any] = view["counts"]
    assert invocations[0] == 2 and splitting.CHUNK_BATCHES * 50 == counts["total"] == small_chunks
    assert view["status"] == "FAILED" and "audiences/list.csv" in view["reason"] and view["split_done"] is False
    assert counts["queued"] == 0 and counts["sent"] == 100 and counts["failed"] == small_chunks - 100
    assert counts["total"] == counts["sent"] + counts["failed"] + counts["suppressed"] + counts["cancelled"]
    sent = _recipients(pipeline)
    assert len(sent) == len(set(sent)) == counts["sent"]
    assert pipeline.depth("low") == 0 and pipeline.depth("low", dlq=True) == 0
    assert pipeline.api("POST", f"/v1/campaigns/{campaign_id}/resume")[0] == 409
    unsent = {f"user{i}@example.com" for i in range(small_chunks)} - set(sent)
    records = [
        pipeline.api("GET", f"/v1/messages/{recipient_message_id(campaign_id, a)}")[1] for a in sorted(unsent)[:50]
    ]
    assert {(r["status"], r["last_error"]) for r in records} == {("FAILED", view["reason"])}
