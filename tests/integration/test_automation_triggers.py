"""Real-time automations on moto + a real SMTP relay: ``POST /v1/automations/{id}/trigger``."""

from __future__ import annotations

import email
from email import policy
from typing import Any

import pytest

from massmailer import automations
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
