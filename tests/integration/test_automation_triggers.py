"""Real-time automations on moto + a real SMTP relay: ``POST /v1/automations/{id}/trigger``."""

from __future__ import annotations

import email
import json
from email import policy
from typing import Any

import boto3
import pytest

from massmailer import automations, spec
from tests.integration.conftest import Pipeline

DAILY = {"preset": "daily", "time": "09:00", "time_zone": "UTC"}


def _create(pipeline: Pipeline, **changes: Any) -> str:
    body = {
        "name": "welcome",
        "subject": "Welcome {{ first_name }}",
        "text": "Hi {{ first_name }} {{ unsubscribe_url }}",
        "schedule": DAILY,
        "target": "audiences/{scheduled:%Y-%m-%d}/customers.csv",
        "priority": "high",
        **changes,
    }
    status, answer = pipeline.api("POST", "/v1/automations", body)
    assert status == 201, answer
    return str(answer["automation_id"])


def _recipients(n: int) -> list[dict[str, Any]]:
    return [{"email": f"user{i}@example.com", "variables": {"first_name": f"User{i}"}} for i in range(n)]


def _sent(pipeline: Pipeline) -> list[tuple[str, str]]:
    parsed = [email.message_from_string(m.raw_data, policy=policy.default) for m in pipeline.ses_sent()]
    return sorted((str(m["To"]), str(m["Subject"])) for m in parsed)


def test_a_trigger_sends_the_automation_content_to_each_recipient_on_its_lane(pipeline: Pipeline) -> None:
    automation_id = _create(pipeline)

    status, answer = pipeline.api("POST", f"/v1/automations/{automation_id}/trigger", {"recipients": _recipients(3)})
    assert status == 202, answer
    assert answer["automation_id"] == automation_id and answer["run_id"].startswith("trg-")
    assert (answer["recipients"], answer["lane"]) == (3, "high")
    pipeline.run()

    assert _sent(pipeline) == [(f"user{i}@example.com", f"Welcome User{i}") for i in range(3)]
    status, campaign = pipeline.api("GET", f"/v1/campaigns/{answer['campaign_id']}")
    assert status == 200 and campaign["status"] == "COMPLETED"
    assert (campaign["automation_id"], campaign["run_id"]) == (automation_id, answer["run_id"])


def test_a_trigger_repeated_with_its_idempotency_key_sends_once(pipeline: Pipeline) -> None:
    automation_id = _create(pipeline)
    path, body = f"/v1/automations/{automation_id}/trigger", {"recipients": _recipients(2)}

    status, first = pipeline.api("POST", path, body, headers={"Idempotency-Key": "signup-42"})
    again, second = pipeline.api("POST", path, body, headers={"Idempotency-Key": "signup-42"})
    pipeline.run()

    assert (status, again) == (202, 202)
    assert (second["campaign_id"], second["run_id"]) == (first["campaign_id"], first["run_id"])
    assert len(pipeline.ses_sent()) == 2
    other = {"recipients": _recipients(1)}
    status, refused = pipeline.api("POST", path, other, headers={"Idempotency-Key": "signup-42"})
    assert status == 422 and refused["errors"][0]["field"] == "Idempotency-Key"


@pytest.mark.parametrize(
    ("recipients", "field"),
    [
        ([], "recipients"),
        (_recipients(automations.MAX_TRIGGER_RECIPIENTS + 1), "recipients"),
        ([{"email": "not-an-address"}], "recipients.0.email"),
        ([{"email": "a@example.com"}, {"email": "b@example.com", "name": "B"}], "recipients.1.name"),
    ],
)
def test_bad_recipients_are_422_naming_the_field(
    pipeline: Pipeline, recipients: list[dict[str, Any]], field: str
) -> None:
    automation_id = _create(pipeline)

    status, answer = pipeline.api("POST", f"/v1/automations/{automation_id}/trigger", {"recipients": recipients})

    assert status == 422, answer
    assert field in [e["field"] for e in answer["errors"]]
    pipeline.run()
    assert pipeline.ses_sent() == []


def test_an_unknown_automation_is_404_and_a_paused_one_409(pipeline: Pipeline) -> None:
    body = {"recipients": _recipients(1)}
    status, _ = pipeline.api("POST", "/v1/automations/aut-nope/trigger", body)
    assert status == 404

    automation_id = _create(pipeline)
    assert pipeline.api("POST", f"/v1/automations/{automation_id}/pause")[0] == 200
    status, answer = pipeline.api("POST", f"/v1/automations/{automation_id}/trigger", body)
    assert status == 409 and "PAUSED" in answer["error"]
    pipeline.run()
    assert pipeline.ses_sent() == []


# -- event-triggered ---------------------------------------------------------------------------------

SIGNED_UP = {"source": ["shop"], "detail-type": ["user.signed_up"]}


def _event_automation(pipeline: Pipeline, **changes: Any) -> str:
    body = {
        "name": "welcome on signup",
        "subject": "Welcome {{ first_name }}",
        "text": "Hi {{ first_name }} {{ unsubscribe_url }}",
        "event_pattern": SIGNED_UP,
        "recipient_path": "user.email",
        "variables_path": "vars",
        **changes,
    }
    status, answer = pipeline.api("POST", "/v1/automations", body)
    assert status == 201, answer
    assert (answer["event_pattern"], answer["schedule"], answer["next_runs"]) == (SIGNED_UP, None, [])
    return str(answer["automation_id"])


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


def _rule_names(pipeline: Pipeline) -> list[str]:
    rules = boto3.client("events").list_rules(EventBusName=pipeline.resources["event_bus"])["Rules"]
    return [r["Name"] for r in rules]


SIGNUP = {"user": {"email": "new@example.com"}, "vars": {"first_name": "Ada"}}


def test_a_matching_event_sends_one_email_and_a_non_matching_one_nothing(pipeline: Pipeline) -> None:
    automation_id = _event_automation(pipeline)
    assert _rule_names(pipeline) == [spec.event_rule_prefix("test") + automation_id]

    _put_event(pipeline, "user.signed_up", SIGNUP)
    _put_event(pipeline, "user.deleted", {"user": {"email": "old@example.com"}})
    pipeline.run()

    assert _sent(pipeline) == [("new@example.com", "Welcome Ada")]


def test_the_same_event_delivered_twice_sends_once(pipeline: Pipeline) -> None:
    automation_id = _event_automation(pipeline)
    message = {"kind": "automation_event", "automation_id": automation_id, "detail": SIGNUP, "event_id": "ev-1"}
    for _ in range(2):  # EventBridge delivers at least once
        pipeline.sqs.send_message(QueueUrl=pipeline.resources["queues"]["split"], MessageBody=json.dumps(message))
    pipeline.run()

    assert _sent(pipeline) == [("new@example.com", "Welcome Ada")]


def test_an_event_without_a_usable_recipient_sends_nothing_and_is_not_retried(pipeline: Pipeline) -> None:
    _event_automation(pipeline)
    _put_event(pipeline, "user.signed_up", {"user": {"email": "not-an-address"}})
    _put_event(pipeline, "user.signed_up", {"vars": {"first_name": "Ada"}})
    pipeline.run()

    assert pipeline.ses_sent() == []
    assert pipeline.depth("split", dlq=True) == 0


def test_pause_removes_the_rule_and_resume_puts_it_back(pipeline: Pipeline) -> None:
    automation_id = _event_automation(pipeline)
    assert pipeline.api("POST", f"/v1/automations/{automation_id}/pause")[0] == 200
    assert _rule_names(pipeline) == []

    _put_event(pipeline, "user.signed_up", SIGNUP)
    pipeline.run()
    assert pipeline.ses_sent() == []

    assert pipeline.api("POST", f"/v1/automations/{automation_id}/resume")[0] == 200
    _put_event(pipeline, "user.signed_up", SIGNUP)
    pipeline.run()
    assert _sent(pipeline) == [("new@example.com", "Welcome Ada")]

    assert pipeline.api("DELETE", f"/v1/automations/{automation_id}")[0] == 204
    assert _rule_names(pipeline) == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"event_pattern": {"detail-type": "user.signed_up"}}, "event_pattern"),
        ({"event_pattern": ["user.signed_up"]}, "event_pattern"),
        ({"schedule": DAILY}, "body"),
        ({"recipient_path": "user..email"}, "recipient_path"),
    ],
)
def test_a_bad_event_definition_is_422_naming_the_field(
    pipeline: Pipeline, changes: dict[str, Any], field: str
) -> None:
    body = {"name": "n", "subject": "s", "text": "t", "event_pattern": SIGNED_UP, **changes}
    status, answer = pipeline.api("POST", "/v1/automations", body)

    assert status == 422, answer
    assert field in [e["field"] for e in answer["errors"]], answer
    assert _rule_names(pipeline) == []


def test_a_patch_that_adds_a_pattern_puts_the_rule(pipeline: Pipeline) -> None:
    automation_id = _create(pipeline, schedule=None, target=None)
    assert _rule_names(pipeline) == []
    status, answer = pipeline.api("PATCH", f"/v1/automations/{automation_id}", {"event_pattern": SIGNED_UP})
    assert status == 200, answer
    assert _rule_names(pipeline) == [spec.event_rule_prefix("test") + automation_id]
    status, answer = pipeline.api("PATCH", f"/v1/automations/{automation_id}", {"event_pattern": {"x": 1}})
    assert status == 422 and "event_pattern.x" in answer["errors"][0]["reason"], answer
    status, answer = pipeline.api("POST", f"/v1/automations/{automation_id}/run-now")
    assert status == 409 and "trigger it instead" in answer["error"]
