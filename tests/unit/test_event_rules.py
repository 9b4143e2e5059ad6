"""The event rules port without AWS: pattern checks, the input transformer, and AWS's refusals."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber

from massmailer.event_rules import (
    EventRules,
    InvalidEventPattern,
    automation_event_input,
    input_transformer,
    validate_pattern,
)
from massmailer.store import StoreUnavailable

QUEUE = "arn:aws:sqs:us-east-1:123456789012:massmailer-dev-split"


def test_a_valid_pattern_becomes_compact_json() -> None:
    pattern = {
        "detail-type": ["user.signed_up"],
        "detail": {"plan": [{"prefix": "pro"}], "age": [{"numeric": [">", 1]}]},
    }
    assert json.loads(validate_pattern(pattern)) == pattern


@pytest.mark.parametrize(
    ("pattern", "field", "reason"),
    [
        ("detail-type", "event_pattern", "must be an object"),
        ({}, "event_pattern", "must not be empty"),
        ({"detail-type": "x"}, "event_pattern.detail-type", "must be an object or an array"),
        ({"detail-type": []}, "event_pattern.detail-type", "at least one value"),
        ({"detail": {"plan": [{"startswith": "p"}]}}, "event_pattern.detail.plan", "is not a matcher"),
        ({"detail": {"plan": [["a"]]}}, "event_pattern.detail.plan", "values are strings"),
        ({"detail": {}}, "event_pattern.detail", "must not be empty"),
        ({"$or": ["x"]}, "event_pattern.$or[0]", "alternative must be an object"),
        ({"detail": {"k": ["x" * 5000]}}, "event_pattern", "at most 4096"),
    ],
)
def test_a_wrong_pattern_names_the_field_and_the_reason(pattern: object, field: str, reason: str) -> None:
    with pytest.raises(InvalidEventPattern) as caught:
        validate_pattern(pattern)
    assert caught.value.field == field
    assert reason in caught.value.reason


def test_the_input_transformer_adds_the_events_detail_to_the_constants() -> None:
    plain = input_transformer(automation_event_input("a1"))
    assert plain["InputPathsMap"] == {"detail": "$.detail"}
    assert json.loads(plain["InputTemplate"].replace("<detail>", "{}")) == {
        "kind": "automation_event",
        "automation_id": "a1",
        "detail": {},
    }
    transformer = input_transformer(automation_event_input("a1"), event_id=True)
    assert transformer["InputPathsMap"] == {"detail": "$.detail", "event_id": "$.id"}
    filled = transformer["InputTemplate"].replace("<detail>", '{"email": "x@example.com"}')
    filled = filled.replace("<event_id>", "e-1")
    assert json.loads(filled) == {
        "kind": "automation_event",
        "automation_id": "a1",
        "detail": {"email": "x@example.com"},
        "event_id": "e-1",
    }
    with pytest.raises(ValueError, match="'<' or '>'"):
        input_transformer({"automation_id": "<x>"})
    with pytest.raises(ValueError, match="must not set 'detail'"):
        input_transformer({"detail": 1})
    with pytest.raises(ValueError, match="must not set 'detail' or 'event_id'"):
        input_transformer({"event_id": 1})


def _stubbed() -> tuple[EventRules, Stubber]:
    client = boto3.client("events", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    return EventRules(client, "massmailer-dev-events", "massmailer-dev-auto-"), Stubber(client)


def test_aws_refusing_the_pattern_is_an_invalid_event_pattern() -> None:
    rules, stub = _stubbed()
    stub.add_client_error(
        "put_rule", service_error_code="InvalidEventPatternException", service_message="Event pattern is not valid."
    )
    with stub, pytest.raises(InvalidEventPattern) as caught:
        rules.put("a1", {"detail-type": ["x"]}, QUEUE, automation_event_input("a1"))
    assert caught.value.field == "event_pattern"
    assert caught.value.reason == "Event pattern is not valid."


def test_a_refused_target_or_an_outage_is_store_unavailable() -> None:
    rules, stub = _stubbed()
    stub.add_response("put_rule", {"RuleArn": "arn:aws:events:us-east-1:123456789012:rule/b/r"})
    stub.add_response(
        "put_targets",
        {"FailedEntryCount": 1, "FailedEntries": [{"TargetId": "split", "ErrorMessage": "not allowed"}]},
    )
    stub.add_client_error("put_rule", service_error_code="InternalException", http_status_code=500)
    with stub:
        with pytest.raises(StoreUnavailable, match="not allowed"):
            rules.put("a1", {"detail-type": ["x"]}, QUEUE, automation_event_input("a1"))
        with pytest.raises(StoreUnavailable, match="put rule massmailer-dev-auto-a1"):
            rules.put("a1", {"detail-type": ["x"]}, QUEUE, automation_event_input("a1"))


def test_a_rule_name_out_of_eventbridges_alphabet_is_refused() -> None:
    rules, _ = _stubbed()
    with pytest.raises(ValueError, match="rule name"):
        rules.rule_name("a b")
    with pytest.raises(ValueError, match="rule name"):
        rules.rule_name("x" * 60)
