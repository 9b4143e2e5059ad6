"""The sending engine under faults, through the real sender handler against moto and SMTP on loopback."""

from __future__ import annotations

import email
import json
import threading
import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from lambdas.sender import handler as sender_handler
from lambdas.splitter import handler as splitter_handler
from local.event_source import sqs_event
from massmailer import wiring
from massmailer.models import BatchMessage, BatchRecipient, Lane
from massmailer.sending import send_batch
from massmailer.splitting import recipient_message_id
from tests.integration.conftest import Pipeline
from tests.integration.test_pipeline import _campaign
from tests.support import context, make_campaign


class Crash(BaseException):
    """A sender dying (OOM, runtime killed): not an Exception, so nothing catches it on the way out."""


def _ses_throttles(times: int) -> dict[str, int]:
    calls = {"n": 0}

    def throttled(**_: Any) -> None:
        calls["n"] += 1
        if calls["n"] <= times:
            raise ClientError(
                {
                    "Error": {"Code": "TooManyRequestsException", "Message": "Maximum sending rate exceeded."},
                    "ResponseMetadata": {"HTTPStatusCode": 429},
                },
                "SendEmail",
            )

    wiring.ses_client().meta.events.register("before-call.sesv2.SendEmail", throttled)
    return calls


def _recipients(pipeline: Pipeline) -> list[str]:
    return [email.message_from_string(m.raw_data)["To"] for m in pipeline.ses_sent()]


def test_a_throttling_storm_uses_no_attempt_fills_no_dlq_and_sends_everything_once(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given SES is the only provider and throttles the first 150 calls
    monkeypatch.setenv("MM_PROVIDERS", "ses")
    wiring.reset()
    ctx = wiring.sender_context()
    ctx.policy = type(ctx.policy)(max_attempts=2, throttle_delay=0.5)
    calls = _ses_throttles(150)
    _, body = pipeline.api("POST", "/v1/campaigns", _campaign(100))

    # When the lanes are drained until the storm has passed (throttled recipients come back after
    # their delay; the wait is for the queue to be empty, the deadline only a hang guard)
    deadline = time.monotonic() + 300  # 41 s measured on two loaded cores
    while True:
        pipeline.run()
        if pipeline.depth("low") == 0:
            break
        assert time.monotonic() < deadline, f"the low lane still holds {pipeline.depth('low')} messages after 300 s"
        time.sleep(0.5)

    # Then every recipient was sent exactly once, none FAILED although the storm outlasted 2 attempts
    assert calls["n"] > 150
    sent = _recipients(pipeline)
    assert len(sent) == 100 and len(set(sent)) == 100
    _, report = pipeline.api("GET", f"/v1/campaigns/{body['campaign_id']}")
    assert report["counts"]["sent"] == 100 and report["counts"]["failed"] == 0
    assert report["counts"]["retried"] >= 1
    assert pipeline.depth("low", dlq=True) == 0
    record = wiring.stores().messages.get_message(recipient_message_id(body["campaign_id"], "user0@example.com"))
    assert record["attempts"] == 1  # type: ignore[index]


def _one_batch(pipeline: Pipeline, n: int) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """A campaign of ``n`` split onto the low lane and received once, with a sender that has one
    thread and a 1-second lease: (API response, received messages, the Lambda event for them)."""
    ctx = wiring.sender_context()
    ctx.concurrency, ctx.lease_seconds = 1, 1
    _, body = pipeline.api("POST", "/v1/campaigns", _campaign(n))
    pipeline.source("split", splitter_handler.handler).poll_once()
    messages = pipeline.sqs.receive_message(
        QueueUrl=pipeline.resources["queues"]["low"], MaxNumberOfMessages=10, AttributeNames=["All"]
    )["Messages"]
    return body, messages, sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:massmailer-test-low")


def _redeliver_after_lease(pipeline: Pipeline, messages: list[dict[str, Any]]) -> None:
    """The crashed sender's lease expires, then SQS redelivers the batch (its visibility timeout ended)."""
    time.sleep(1.1)
    for message in messages:
        pipeline.sqs.change_message_visibility(
            QueueUrl=pipeline.resources["queues"]["low"], ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    pipeline.run()


def _ses_send_event(record: dict[str, Any], campaign_id: str) -> str:
    return json.dumps(
        {
            "eventType": "Send",
            "mail": {
                "timestamp": "2026-11-22T10:00:00.000Z",
                "source": "noreply@massmailer.test",
                "messageId": record["provider_message_id"],
                "destination": [record["email"]],
                "tags": {"message_id": [record["message_id"]], "campaign_id": [campaign_id]},
            },
            "send": {},
        }
    )


def test_a_crash_between_send_and_record_does_not_send_twice(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    body, messages, event = _one_batch(pipeline, 3)
    ctx = wiring.sender_context()
    second = recipient_message_id(body["campaign_id"], "user1@example.com")
    real_record_sent = type(ctx.messages).record_sent
    crashed: dict[str, str] = {}

    def record_then_crash(self, message_id, token, provider, pmid):  # type: ignore[no-untyped-def]
        if message_id == second and not crashed:
            crashed["pmid"] = pmid  # SES accepted it; the sender dies before recording
            raise Crash
        return real_record_sent(self, message_id, token, provider, pmid)

    monkeypatch.setattr(type(ctx.messages), "record_sent", record_then_crash)
    with pytest.raises(Crash):
        sender_handler.handler(event, context("sender"))
    assert len(pipeline.ses_sent()) == 2

    # SES publishes its Send event (configuration set → SNS → SQS → bounce λ), which settles the record
    record = {**wiring.stores().messages.get_message(second), "provider_message_id": crashed["pmid"]}  # type: ignore[dict-item]
    boto3.client("sns").publish(
        TopicArn=pipeline.resources["topic_arn"], Message=_ses_send_event(record, body["campaign_id"])
    )
    pipeline.run(bounces=True)

    # When SQS redelivers the batch after the lease and its visibility timeout
    _redeliver_after_lease(pipeline, messages)

    # Then user1 was not sent again, and user2 (never reached before the crash) was sent once
    assert sorted(_recipients(pipeline)) == ["user0@example.com", "user1@example.com", "user2@example.com"]
    assert wiring.stores().messages.get_message(second)["status"] == "SENT"  # type: ignore[index]
    # and the campaign counts each of them once: the crashed attempt never counted user0 and user1
    _assert_counted(pipeline, body["campaign_id"], sent=3)


def _assert_counted(pipeline: Pipeline, campaign_id: str, sent: int) -> None:
    _, report = pipeline.api("GET", f"/v1/campaigns/{campaign_id}")
    assert report["counts"]["sent"] == sent and report["counts"]["queued"] == 0, report["counts"]


def test_a_crash_before_the_provider_call_is_retried_after_the_lease(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    body, messages, event = _one_batch(pipeline, 3)
    ctx = wiring.sender_context()
    real_send = type(ctx.chain).send
    state = {"crashed": False}

    def crash_on_second(self, email_, lane="low"):  # type: ignore[no-untyped-def]
        if email_.recipient == "user1@example.com" and not state["crashed"]:
            state["crashed"] = True
            raise Crash  # dies after claiming user1, before SES saw anything
        return real_send(self, email_, lane)

    monkeypatch.setattr(type(ctx.chain), "send", crash_on_second)
    with pytest.raises(Crash):
        sender_handler.handler(event, context("sender"))
    _redeliver_after_lease(pipeline, messages)
    assert sorted(_recipients(pipeline)) == ["user0@example.com", "user1@example.com", "user2@example.com"]
    _assert_counted(pipeline, body["campaign_id"], sent=3)  # user0, sent before the crash, counted once


def test_a_duplicate_queue_message_for_the_same_recipients_counts_nothing_twice(
    pipeline: Pipeline,
) -> None:
    body, messages, event = _one_batch(pipeline, 3)
    sender_handler.handler(event, context("sender"))  # sent and counted
    _assert_counted(pipeline, body["campaign_id"], sent=3)
    # the same recipients in another queue message (e.g. a splitter that re-enqueued its last chunk)
    [message] = messages
    again = sqs_event(
        [{**message, "MessageId": "another-message"}], "arn:aws:sqs:us-east-1:123456789012:massmailer-test-low"
    )
    sender_handler.handler(again, context("sender"))
    assert len(_recipients(pipeline)) == 3
    _assert_counted(pipeline, body["campaign_id"], sent=3)


@pytest.fixture
def atomic_moto_dynamodb(monkeypatch: pytest.MonkeyPatch) -> None:
    """DynamoDB applies a conditional write atomically; moto's in-process backend does not lock, so
    concurrent requests are serialized here to give it the semantics the real service has."""
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.Lock()
    real = DynamoHandler.call_action

    def serialized(self):  # type: ignore[no-untyped-def]
        with lock:
            return real(self)

    monkeypatch.setattr(DynamoHandler, "call_action", serialized)


def test_two_senders_racing_on_one_recipient_send_it_once(pipeline: Pipeline, atomic_moto_dynamodb: None) -> None:
    ctx = wiring.sender_context()
    batch = BatchMessage(
        kind="campaign",
        campaign_id="race",
        lane=Lane.LOW,
        recipients=[BatchRecipient(message_id=f"race.{i}", email=f"r{i}@example.com") for i in range(20)],
    )

    wiring.stores().campaigns.put_campaign(make_campaign("race", from_address="noreply@massmailer.test"))
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def sender() -> None:
        start.wait()
        try:
            send_batch(ctx, batch)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a sender thread did not finish within 120 s"
    assert not errors
    sent = _recipients(pipeline)
    assert sorted(sent) == sorted(f"r{i}@example.com" for i in range(20))
