"""Failure paths through the real handlers: duplicate delivery, SES down, bad input, API retries."""

from __future__ import annotations

import email
from email import policy
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from lambdas.sender import handler as sender_handler
from lambdas.splitter import handler as splitter_handler
from local.event_source import sqs_event
from massmailer import wiring
from tests.integration.conftest import Pipeline
from tests.integration.test_pipeline import _campaign
from tests.support import context


def _receive(pipeline: Pipeline, key: str) -> list[dict[str, Any]]:
    return pipeline.sqs.receive_message(
        QueueUrl=pipeline.resources["queues"][key], MaxNumberOfMessages=10, AttributeNames=["All"]
    ).get("Messages", [])


def test_the_same_sqs_batch_delivered_twice_sends_no_recipient_twice(pipeline: Pipeline) -> None:
    status, body = pipeline.api("POST", "/v1/campaigns", _campaign(120))
    assert status == 202
    pipeline.source("split", splitter_handler.handler).poll_once()
    messages = _receive(pipeline, "low")
    assert len(messages) == 3  # 50 + 50 + 20
    event = sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:massmailer-test-low")

    # When the same event is delivered twice (SQS at-least-once; a Lambda retry)
    first = sender_handler.handler(event, context("sender"))
    second = sender_handler.handler(event, context("sender"))

    # Then every recipient was sent exactly once, and the duplicate reported no failures
    assert first == {"batchItemFailures": []} and second == {"batchItemFailures": []}
    recipients = [email.message_from_string(m.raw_data)["To"] for m in pipeline.ses_sent()]
    assert len(recipients) == 120
    assert len(set(recipients)) == 120
    _, report = pipeline.api("GET", f"/v1/campaigns/{body['campaign_id']}")
    assert report["counts"]["sent"] == 120


def test_ses_failing_sends_the_campaign_through_the_smtp_relay(pipeline: Pipeline) -> None:
    # Given SES is unreachable (every SendEmail call fails at the connection)
    def unreachable(**_: Any) -> None:
        raise EndpointConnectionError(endpoint_url="https://email.us-east-1.amazonaws.com")

    wiring.ses_client().meta.events.register("before-call.sesv2.SendEmail", unreachable)
    status, body = pipeline.api("POST", "/v1/campaigns", _campaign(60))
    assert status == 202

    pipeline.run()

    # Then nothing went through SES, all 60 arrived at the SMTP relay, each once, rendered
    assert pipeline.ses_sent() == []
    received = [email.message_from_bytes(data, policy=policy.default) for _, _, data in pipeline.relay.messages]
    assert sorted(str(m["To"]) for m in received) == sorted(f"user{i}@example.com" for i in range(60))
    assert {str(m["Subject"]) for m in received} == {f"Hello Name{i}" for i in range(60)}
    _, report = pipeline.api("GET", f"/v1/campaigns/{body['campaign_id']}")
    assert report["counts"]["sent"] == 60
    mid = received[0]["X-MassMailer-Message"]
    _, record = pipeline.api("GET", f"/v1/messages/{mid}")
    assert record["status"] == "SENT" and record["provider"] == "smtp"


@pytest.mark.parametrize(
    ("path", "payload", "field"),
    [
        ("/v1/messages", {"subject": "Hi", "text": "x"}, "to"),
        ("/v1/messages", {"to": "not-an-address", "subject": "Hi", "text": "x"}, "to"),
        (
            "/v1/messages",
            {"to": "a@example.com", "subject": "Hi", "text": "x", "priority": "urgent"},
            "priority",
        ),
        (
            "/v1/messages",
            {"to": "a@example.com", "subject": "Hi\r\nBcc: victim@example.com", "text": "x"},
            "subject",
        ),
        ("/v1/messages", {"to": "a@example.com", "subject": "Hi"}, "body"),
        (
            "/v1/messages",
            {"to": "a@example.com", "subject": "Hi", "text": "x", "headers": {"X-A": "b\nc"}},
            "headers",
        ),
        ("/v1/campaigns", {"name": "n", "subject": "s", "text": "t", "audience": []}, "audience"),
        (
            "/v1/campaigns",
            {"name": "n", "subject": "s", "text": "t", "audience": [{"email": "x@"}]},
            "audience.0.email",
        ),
        (
            "/v1/campaigns",
            {
                "name": "n",
                "subject": "s",
                "text": "t",
                "audience": [{"email": "a@b.co"}],
                "send_at": "2026-12-01T09:00:00",
            },
            "send_at",
        ),
    ],
)
def test_malformed_requests_get_a_clear_4xx_and_enqueue_nothing(
    pipeline: Pipeline, path: str, payload: dict[str, Any], field: str
) -> None:
    status, body = pipeline.api("POST", path, payload)
    assert status in (400, 422), body
    assert body["error"]
    fields = [e["field"] for e in body.get("errors", [])]
    assert any(f == field or f.startswith(field) for f in fields), fields
    assert all(e["reason"] for e in body["errors"])
    assert pipeline.depth("high") == pipeline.depth("low") == pipeline.depth("split") == 0


def test_invalid_json_and_uncompilable_templates_are_rejected(pipeline: Pipeline) -> None:
    status, body = pipeline.api("POST", "/v1/messages", "{not json")
    assert status == 400 and "JSON" in body["error"]
    status, body = pipeline.api("POST", "/v1/messages", {"to": "a@example.com", "subject": "Hi {{ name", "text": "x"})
    assert status == 422 and "does not compile" in body["error"]
    assert pipeline.depth("high") == 0


def test_an_api_retry_with_the_same_idempotency_key_sends_once(pipeline: Pipeline) -> None:
    request = {"to": "jane@example.com", "subject": "Receipt", "text": "Thanks"}
    first = pipeline.api("POST", "/v1/messages", request, headers={"Idempotency-Key": "order-42"})
    again = pipeline.api("POST", "/v1/messages", request, headers={"idempotency-key": "order-42"})
    assert first == again and first[0] == 202
    conflict = pipeline.api(
        "POST", "/v1/messages", {**request, "text": "other"}, headers={"Idempotency-Key": "order-42"}
    )
    assert conflict[0] == 422 and conflict[1]["errors"][0]["field"] == "Idempotency-Key"

    pipeline.run()
    assert len(pipeline.ses_sent()) == 1


def test_unknown_ids_are_404(pipeline: Pipeline) -> None:
    assert pipeline.api("GET", "/v1/messages/msg-nope")[0] == 404
    assert pipeline.api("GET", "/v1/campaigns/cmp-nope")[0] == 404
