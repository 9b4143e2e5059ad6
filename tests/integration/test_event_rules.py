"""Event-triggered automations: rules on the stage's EventBridge bus deliver to the split queue (moto)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from massmailer import spec
from massmailer.event_rules import EventRules, InvalidEventPattern, automation_event_input
from tests.integration.conftest import Pipeline

PATTERN = {"source": ["shop"], "detail-type": ["user.signed_up"]}


def _rules(pipeline: Pipeline) -> EventRules:
    return EventRules(boto3.client("events"), pipeline.resources["event_bus"], spec.event_rule_prefix("test"))


def _split_arn(pipeline: Pipeline) -> str:
    url = pipeline.resources["queues"]["split"]
    return pipeline.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def _put_event(pipeline: Pipeline, detail_type: str, detail: dict[str, Any]) -> None:
    answer = boto3.client("events").put_events(
        Entries=[
            {
                "EventBusName": pipeline.resources["event_bus"],
                "Source": "shop",
                "DetailType": detail_type,
                "Detail": json.dumps(detail),
            }
        ]
    )
    assert answer["FailedEntryCount"] == 0


def _split_messages(pipeline: Pipeline) -> list[dict[str, Any]]:
    url = pipeline.resources["queues"]["split"]
    messages = pipeline.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_a_matching_event_lands_on_the_split_queue_as_an_automation_event(pipeline: Pipeline) -> None:
    rules = _rules(pipeline)
    arn = rules.put("a1", PATTERN, _split_arn(pipeline), automation_event_input("a1"))
    assert arn.endswith(f"rule/{pipeline.resources['event_bus']}/{spec.event_rule_prefix('test')}a1")

    _put_event(pipeline, "user.signed_up", {"email": "new@example.com", "vars": {"plan": "pro"}})
    _put_event(pipeline, "user.deleted", {"email": "old@example.com"})  # does not match

    assert _split_messages(pipeline) == [
        {
            "kind": "automation_event",
            "automation_id": "a1",
            "detail": {"email": "new@example.com", "vars": {"plan": "pro"}},
        }
    ]


def test_a_deleted_rule_delivers_nothing(pipeline: Pipeline) -> None:
    rules = _rules(pipeline)
    rules.put("a2", PATTERN, _split_arn(pipeline), automation_event_input("a2"))
    rules.delete("a2")
    rules.delete("a2")  # already gone: fine
    _put_event(pipeline, "user.signed_up", {"email": "new@example.com"})

    assert _split_messages(pipeline) == []
    assert boto3.client("events").list_rules(EventBusName=pipeline.resources["event_bus"])["Rules"] == []


def test_a_pattern_eventbridge_refuses_names_event_pattern(pipeline: Pipeline) -> None:
    rules = _rules(pipeline)
    with pytest.raises(InvalidEventPattern) as caught:
        rules.put("a3", {"detail-type": "user.signed_up"}, _split_arn(pipeline), automation_event_input("a3"))
    assert caught.value.field == "event_pattern.detail-type"
    assert "array" in caught.value.reason
    assert boto3.client("events").list_rules(EventBusName=pipeline.resources["event_bus"])["Rules"] == []
