"""A campaign's one-time schedule on EventBridge Scheduler (moto) dead-letters what it cannot deliver."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3

from local.scheduler_loop import SchedulerLoop
from massmailer import schedules
from tests.integration.conftest import Pipeline

SEND_AT = datetime(2031, 6, 1, 9, 0, tzinfo=UTC)


def _scheduled_campaign(pipeline: Pipeline) -> tuple[str, dict]:
    status, body = pipeline.api(
        "POST",
        "/v1/campaigns",
        {
            "name": "later",
            "subject": "s",
            "text": "t {{ unsubscribe_url }}",
            "audience": [{"email": "later@example.com"}],
            "send_at": SEND_AT.isoformat(),
        },
    )
    assert status == 202, body
    scheduler = boto3.client("scheduler")
    group = pipeline.resources["schedule_group"]
    (summary,) = [s for s in scheduler.list_schedules(GroupName=group)["Schedules"] if body["campaign_id"] in s["Name"]]
    return body["campaign_id"], scheduler.get_schedule(Name=summary["Name"], GroupName=group)


def _queue_arn(pipeline: Pipeline, url: str) -> str:
    return pipeline.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def test_a_campaigns_schedule_dead_letters_into_the_schedule_dlq_with_a_bounded_retry(pipeline: Pipeline) -> None:
    _, schedule = _scheduled_campaign(pipeline)

    target = schedule["Target"]
    assert target["Arn"] == _queue_arn(pipeline, pipeline.resources["queues"]["split"])
    assert target["DeadLetterConfig"] == {"Arn": _queue_arn(pipeline, pipeline.resources["schedule_dlq"])}
    assert target["RetryPolicy"] == {
        "MaximumRetryAttempts": schedules.RETRY_ATTEMPTS,
        "MaximumEventAgeInSeconds": schedules.RETRY_MAX_AGE_SECONDS,
    }


def test_a_schedule_whose_target_is_gone_lands_in_the_schedule_dlq(pipeline: Pipeline) -> None:
    # Given a scheduled campaign whose target queue then disappears
    campaign_id, _ = _scheduled_campaign(pipeline)
    pipeline.sqs.delete_queue(QueueUrl=pipeline.resources["queues"]["split"])
    now = [SEND_AT - timedelta(seconds=1)]
    loop = SchedulerLoop(boto3.client("scheduler"), pipeline.sqs, boto3.client("sns"), tick=1.0, clock=lambda: now[0])
    assert loop.run_once() == []  # not due yet

    # When Scheduler fires it past its retry window (the clock is injected: no waiting)
    now[0] = SEND_AT + timedelta(seconds=schedules.RETRY_MAX_AGE_SECONDS + 1)
    loop.run_once()

    # Then the invocation is in the schedule DLQ, with the campaign's split request
    (firing,) = loop.fired()
    assert not firing["ok"]
    received = pipeline.sqs.receive_message(
        QueueUrl=pipeline.resources["schedule_dlq"], MessageAttributeNames=["All"], WaitTimeSeconds=0
    )["Messages"]
    assert len(received) == 1
    assert json.loads(received[0]["Body"])["campaign_id"] == campaign_id
    assert received[0]["MessageAttributes"]["ERROR_CODE"]["StringValue"] == "TargetUnreachable"
