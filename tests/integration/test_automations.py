"""Automations on moto + a real SMTP relay: the schedule on EventBridge Scheduler, the API, and runs
fired through the split queue as Scheduler fires them."""

from __future__ import annotations

import email
import json
from datetime import UTC, datetime, timedelta
from email import policy
from typing import Any

import boto3
import pytest

from massmailer import automations, intake, wiring
from massmailer.automations import AutomationFire
from tests.integration.conftest import Pipeline

TARGET = "audiences/{scheduled:%Y-%m-%d}/customers.csv"
DAILY = {"preset": "daily", "time": "09:00", "time_zone": "UTC"}


def _create(pipeline: Pipeline, **changes: Any) -> dict[str, Any]:
    body = {
        "name": "daily digest",
        "subject": "Hello {{ first_name }}",
        "text": "Hi {{ first_name }} {{ unsubscribe_url }}",
        "schedule": DAILY,
        "target": TARGET,
        **changes,
    }
    status, answer = pipeline.api("POST", "/v1/automations", body)
    assert status == 201, answer
    return answer


def _audience(pipeline: Pipeline, scheduled: datetime, rows: list[str], key: str | None = None) -> str:
    key = key or automations.fill_target(TARGET, scheduled)
    body = "email,first_name\n" + "".join(f"{row}\n" for row in rows)
    boto3.client("s3").put_object(Bucket=pipeline.resources["bucket"], Key=key, Body=body.encode())
    return key


def _fire(pipeline: Pipeline, automation_id: str, scheduled: datetime) -> None:
    """What EventBridge Scheduler puts on the split queue (its Input, the time filled in)."""
    body = {
        "kind": "automation",
        "automation_id": automation_id,
        "scheduled_time": scheduled.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    pipeline.sqs.send_message(QueueUrl=pipeline.resources["queues"]["split"], MessageBody=json.dumps(body))


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)


def _recipients_sent(pipeline: Pipeline) -> list[str]:
    return [str(email.message_from_string(m.raw_data, policy=policy.default)["To"]) for m in pipeline.ses_sent()]


def _runs(pipeline: Pipeline, automation_id: str) -> list[dict[str, Any]]:
    status, answer = pipeline.api("GET", f"/v1/automations/{automation_id}/runs")
    assert status == 200, answer
    return list(answer["items"])


def _run(pipeline: Pipeline, automation_id: str, run_id: str) -> dict[str, Any]:
    status, answer = pipeline.api("GET", f"/v1/automations/{automation_id}/runs/{run_id}")
    assert status == 200, answer
    return answer


def _rows(n: int) -> list[str]:
    return [f"user{i}@example.com,User{i}" for i in range(n)]


def test_a_double_fire_makes_one_run_and_one_email_per_recipient(pipeline: Pipeline) -> None:
    automation = _create(pipeline)
    scheduled = _now()
    _audience(pipeline, scheduled, _rows(12))

    _fire(pipeline, automation["automation_id"], scheduled)
    _fire(pipeline, automation["automation_id"], scheduled)  # Scheduler delivers at least once
    pipeline.run()

    (run,) = _runs(pipeline, automation["automation_id"])
    assert run["status"] == "DONE"
    assert run["counts"]["sent"] == 12
    assert sorted(_recipients_sent(pipeline)) == sorted(f"user{i}@example.com" for i in range(12))
    status, campaign = pipeline.api("GET", f"/v1/campaigns/{run['campaign_id']}")
    assert (campaign["automation_id"], campaign["run_id"]) == (automation["automation_id"], run["run_id"])
    status, shown = pipeline.api("GET", f"/v1/automations/{automation['automation_id']}")
    assert shown["last_run"]["run_id"] == run["run_id"] and shown["last_run"]["status"] == "DONE"
    assert len(shown["next_runs"]) == 5 and shown["next_run"] == shown["next_runs"][0]


def test_a_run_while_another_is_running_ends_skipped_overlap(pipeline: Pipeline) -> None:
    automation_id = _create(pipeline)["automation_id"]
    first, second = _now() - timedelta(seconds=60), _now()
    _audience(pipeline, first, _rows(3))
    ctx = wiring.automation_run_context()

    # The first run has its campaign, not sent yet (its split request waits on the queue)
    assert automations.fire(ctx, AutomationFire(automation_id=automation_id, scheduled_time=first)) == "running"
    assert (
        automations.fire(ctx, AutomationFire(automation_id=automation_id, scheduled_time=second)) == "skipped_overlap"
    )

    skipped = _run(pipeline, automation_id, automations.run_id_of(second))
    assert skipped["status"] == "SKIPPED_OVERLAP"
    assert automations.run_id_of(first) in skipped["reason"]
    assert [e["event"] for e in skipped["log"]] == ["overlap"]
    pipeline.run()
    assert _run(pipeline, automation_id, automations.run_id_of(first))["status"] == "DONE"
    assert len(pipeline.ses_sent()) == 3


def test_a_fire_later_than_the_maximum_lateness_is_skipped_late(pipeline: Pipeline) -> None:
    automation_id = _create(pipeline, max_lateness_seconds=600)["automation_id"]
    scheduled = _now() - timedelta(seconds=601)
    _audience(pipeline, scheduled, _rows(2))

    _fire(pipeline, automation_id, scheduled)
    pipeline.run()

    (run,) = _runs(pipeline, automation_id)
    assert run["status"] == "SKIPPED_LATE"
    assert "max lateness 600 s" in run["reason"]
    assert pipeline.ses_sent() == []


def test_a_paused_automation_does_not_run(pipeline: Pipeline) -> None:
    automation_id = _create(pipeline)["automation_id"]
    scheduled = _now()
    _audience(pipeline, scheduled, _rows(2))
    status, paused = pipeline.api("POST", f"/v1/automations/{automation_id}/pause")
    assert (status, paused["status"], paused["next_runs"]) == (200, "PAUSED", [])

    _fire(pipeline, automation_id, scheduled)  # a firing already on its way when it was paused
    pipeline.run()

    assert _runs(pipeline, automation_id) == []
    assert pipeline.ses_sent() == []
    status, answer = pipeline.api("POST", f"/v1/automations/{automation_id}/run-now")
    assert status == 409, answer


def test_a_missing_target_fails_the_run_with_the_reason_and_sends_nothing(pipeline: Pipeline) -> None:
    automation_id = _create(pipeline)["automation_id"]
    scheduled = _now()

    _fire(pipeline, automation_id, scheduled)
    pipeline.run()

    (run,) = _runs(pipeline, automation_id)
    key = automations.fill_target(TARGET, scheduled)
    assert run["status"] == "FAIL"
    assert key in run["reason"] and "does not exist" in run["reason"]
    assert _run(pipeline, automation_id, run["run_id"])["log"][0]["event"] == "target_missing"
    assert run["campaign_id"] is None
    assert pipeline.ses_sent() == []
    assert pipeline.depth("split") == 0


def test_a_missing_template_variable_fails_those_recipients_and_the_run_ends_done_with_warnings(
    pipeline: Pipeline,
) -> None:
    automation_id = _create(pipeline)["automation_id"]
    scheduled = _now()
    key = automations.fill_target(TARGET, scheduled).replace(".csv", ".jsonl")
    pipeline.api("PATCH", f"/v1/automations/{automation_id}", {"target": TARGET.replace(".csv", ".jsonl")})
    rows = [{"email": f"ok{i}@example.com", "variables": {"first_name": f"Ok{i}"}} for i in range(4)]
    rows += [{"email": f"bare{i}@example.com", "variables": {}} for i in range(3)]
    body = "".join(json.dumps(r) + "\n" for r in rows)
    boto3.client("s3").put_object(Bucket=pipeline.resources["bucket"], Key=key, Body=body.encode())

    _fire(pipeline, automation_id, scheduled)
    pipeline.run()

    (listed,) = _runs(pipeline, automation_id)
    run = _run(pipeline, automation_id, listed["run_id"])
    assert run["status"] == "DONE"
    assert (run["counts"]["sent"], run["counts"]["failed"], run["warnings"]) == (4, 3, 3)
    (event,) = [e for e in run["log"] if e["event"] == "template_variable_missing"]
    assert event["variables"] == {"first_name": 3}
    assert len(event["examples"]) == 3 and all("bare" not in e for e in event["examples"])  # masked
    status, failed = pipeline.api("GET", f"/v1/campaigns/{run['campaign_id']}/recipients", query={"status": "FAILED"})
    assert {i["email"] for i in failed["items"]} == {f"bare{i}@example.com" for i in range(3)}
    assert all("first_name" in i["last_error"] for i in failed["items"])
    assert sorted(_recipients_sent(pipeline)) == sorted(f"ok{i}@example.com" for i in range(4))


def test_a_run_that_crashes_after_creating_its_campaign_resumes_exactly_once(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    automation_id = _create(pipeline)["automation_id"]
    scheduled = _now()
    _audience(pipeline, scheduled, _rows(8))
    real = intake.accept_campaign
    crashes = []

    def crash_once(*args: Any, **kwargs: Any) -> intake.Accepted:
        answer = real(*args, **kwargs)
        if not crashes:
            crashes.append(answer.body["campaign_id"])
            raise RuntimeError("the function died after the campaign was accepted")
        return answer

    monkeypatch.setattr(intake, "accept_campaign", crash_once)
    _fire(pipeline, automation_id, scheduled)
    pipeline.run()  # the failed record comes back (visibility 0) and the run resumes

    (run,) = _runs(pipeline, automation_id)
    assert crashes == [run["campaign_id"]]
    assert run["status"] == "DONE"
    assert sorted(_recipients_sent(pipeline)) == sorted(f"user{i}@example.com" for i in range(8))
    status, listed = pipeline.api("GET", "/v1/campaigns")
    assert [c["campaign_id"] for c in listed["items"]] == [run["campaign_id"]]


def test_run_now_fires_through_the_split_queue(pipeline: Pipeline) -> None:
    automation_id = _create(pipeline)["automation_id"]
    status, answer = pipeline.api("POST", f"/v1/automations/{automation_id}/run-now")
    assert status == 202, answer
    _audience(pipeline, datetime.fromisoformat(answer["scheduled_time"]), _rows(2))
    pipeline.run()
    run = _run(pipeline, automation_id, answer["run_id"])
    assert (run["status"], run["trigger"], run["counts"]["sent"]) == ("DONE", "run-now", 2)


def _schedule(pipeline: Pipeline, automation_id: str) -> dict[str, Any]:
    return dict(
        boto3.client("scheduler").get_schedule(
            Name=automations.schedule_name(automation_id), GroupName=pipeline.resources["schedule_group"]
        )
    )


def _queue_arn(pipeline: Pipeline, url: str) -> str:
    return pipeline.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def test_the_schedule_is_created_disabled_updated_enabled_and_deleted_on_scheduler(pipeline: Pipeline) -> None:
    automation_id = _create(
        pipeline, schedule={"preset": "weekly", "weekdays": ["MON"], "time": "08:15", "time_zone": "Europe/Berlin"}
    )["automation_id"]
    created = _schedule(pipeline, automation_id)
    assert (created["ScheduleExpression"], created["ScheduleExpressionTimezone"]) == (
        "cron(15 8 ? * MON *)",
        "Europe/Berlin",
    )
    assert created["State"] == "ENABLED"
    assert created["FlexibleTimeWindow"] == {"Mode": "OFF"}
    target = created["Target"]
    assert target["Arn"] == _queue_arn(pipeline, pipeline.resources["queues"]["split"])
    assert target["DeadLetterConfig"] == {"Arn": _queue_arn(pipeline, pipeline.resources["schedule_dlq"])}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
    assert json.loads(target["Input"]) == {
        "kind": "automation",
        "automation_id": automation_id,
        "scheduled_time": "<aws.scheduler.scheduled-time>",
    }

    assert pipeline.api("POST", f"/v1/automations/{automation_id}/pause")[0] == 200
    assert _schedule(pipeline, automation_id)["State"] == "DISABLED"
    status, _ = pipeline.api(
        "PATCH", f"/v1/automations/{automation_id}", {"schedule": {"expression": "rate(2 hours)", "time_zone": "UTC"}}
    )
    assert status == 200
    updated = _schedule(pipeline, automation_id)
    assert (updated["ScheduleExpression"], updated["State"]) == ("rate(2 hours)", "DISABLED")
    assert pipeline.api("POST", f"/v1/automations/{automation_id}/resume")[0] == 200
    assert _schedule(pipeline, automation_id)["State"] == "ENABLED"

    assert pipeline.api("DELETE", f"/v1/automations/{automation_id}")[0] == 204
    scheduler = boto3.client("scheduler")
    with pytest.raises(scheduler.exceptions.ResourceNotFoundException):
        _schedule(pipeline, automation_id)
    assert pipeline.api("GET", f"/v1/automations/{automation_id}")[0] == 404


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"schedule": {"preset": "daily", "time": "25:00", "time_zone": "UTC"}}, "schedule.time", "HH:MM"),
        ({"schedule": {"expression": "cron(0 9 * * * *)", "time_zone": "UTC"}}, "schedule.expression", "'?'"),
        ({"schedule": {"preset": "daily", "time": "09:00", "time_zone": "Mars/Base"}}, "schedule.time_zone", "IANA"),
        ({"target": "exports/{scheduled:%Y}.csv"}, "target", "audiences/"),
        ({"target": "audiences/{when}.csv"}, "target", "{scheduled"),
        ({"overlap": "parallel"}, "overlap", "skip"),
    ],
)
def test_invalid_definitions_are_422s_naming_the_field(
    pipeline: Pipeline, changes: dict[str, Any], field: str, reason: str
) -> None:
    body = {"name": "n", "subject": "s", "text": "t", "schedule": DAILY, "target": TARGET, **changes}
    status, answer = pipeline.api("POST", "/v1/automations", body)
    assert status == 422, answer
    (error,) = [e for e in answer["errors"] if e["field"] == field]
    assert reason in error["reason"]

    automation_id = _create(pipeline)["automation_id"]
    status, answer = pipeline.api("PATCH", f"/v1/automations/{automation_id}", changes)
    assert status == 422, answer
    assert field in [e["field"] for e in answer["errors"]]


@pytest.mark.parametrize(
    ("body", "status"), [(None, 422), ("[1]", 422), ("{not json", 400), ('{"status": "PAUSED"}', 422)]
)
def test_a_patch_body_that_is_not_a_json_object_of_fields_is_refused(
    pipeline: Pipeline, body: str | None, status: int
) -> None:
    from lambdas.ingest import handler as ingest_handler
    from tests.support import api_event, context

    automation_id = _create(pipeline)["automation_id"]
    event = api_event("PATCH", f"/v1/automations/{automation_id}", None)
    event["body"] = body
    response = ingest_handler.handler(event, context("ingest"))
    assert response["statusCode"] == status, response["body"]


def test_unknown_ids_are_404_and_repeated_moves_409(pipeline: Pipeline) -> None:
    assert pipeline.api("GET", "/v1/automations/aut-nope")[0] == 404
    assert pipeline.api("POST", "/v1/automations/aut-nope/pause")[0] == 404
    automation_id = _create(pipeline)["automation_id"]
    assert pipeline.api("GET", f"/v1/automations/{automation_id}/runs/20310101T000000Z")[0] == 404
    assert pipeline.api("POST", f"/v1/automations/{automation_id}/resume")[0] == 409
    assert pipeline.api("POST", f"/v1/automations/{automation_id}/pause")[0] == 200
    assert pipeline.api("POST", f"/v1/automations/{automation_id}/pause")[0] == 409
    status, listed = pipeline.api("GET", "/v1/automations", query={"limit": "1"})
    assert status == 200 and [a["automation_id"] for a in listed["items"]] == [automation_id]
    assert pipeline.api("GET", "/v1/automations", query={"limit": "0"})[0] == 422


def test_overlap_queue_keeps_one_waiting_run_that_starts_when_the_running_one_ends(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(automations, "WAIT_RECHECK_SECONDS", 0)  # look again at once (no waiting in tests)
    per_run = "audiences/{scheduled:%Y%m%dT%H%M%S}.csv"
    automation_id = _create(pipeline, overlap="queue", target=per_run)["automation_id"]
    first, second, third = (_now() - timedelta(seconds=s) for s in (120, 60, 0))
    _audience(pipeline, first, _rows(3), automations.fill_target(per_run, first))
    _audience(
        pipeline, second, ["late0@example.com,L0", "late1@example.com,L1"], automations.fill_target(per_run, second)
    )
    ctx = wiring.automation_run_context()

    assert automations.fire(ctx, AutomationFire(automation_id=automation_id, scheduled_time=first)) == "running"
    assert automations.fire(ctx, AutomationFire(automation_id=automation_id, scheduled_time=second)) == "waiting"
    assert automations.fire(ctx, AutomationFire(automation_id=automation_id, scheduled_time=third)) == "skipped_overlap"
    waiting = _run(pipeline, automation_id, automations.run_id_of(second))
    assert waiting["status"] == "WAITING" and [e["event"] for e in waiting["log"]] == ["waiting"]

    pipeline.run()

    statuses = {r["run_id"]: r["status"] for r in _runs(pipeline, automation_id)}
    assert statuses == {
        automations.run_id_of(first): "DONE",
        automations.run_id_of(second): "DONE",
        automations.run_id_of(third): "SKIPPED_OVERLAP",
    }
    assert len(pipeline.ses_sent()) == 5


def test_the_schedule_fired_by_the_local_scheduler_loop_runs_the_automation(pipeline: Pipeline) -> None:
    from local.scheduler_loop import SchedulerLoop

    minute = datetime.now(UTC).replace(second=0, microsecond=0)  # fired within max lateness of real time
    schedule = {"expression": f"cron({minute.minute} {minute.hour} * * ? *)", "time_zone": "UTC"}
    automation_id = _create(pipeline, schedule=schedule)["automation_id"]
    _audience(pipeline, minute, _rows(4))
    now = [minute - timedelta(seconds=1)]
    loop = SchedulerLoop(boto3.client("scheduler"), pipeline.sqs, boto3.client("sns"), tick=1.0, clock=lambda: now[0])
    assert loop.run_once() == []

    now[0] = minute + timedelta(seconds=1)
    (firing,) = loop.run_once()
    assert firing.ok
    pipeline.run()

    run = _run(pipeline, automation_id, automations.run_id_of(minute))
    assert (run["status"], run["trigger"], run["counts"]["sent"]) == ("DONE", "schedule", 4)


def test_a_lock_left_by_a_run_that_ended_does_not_block_the_next_run(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    automation_id = _create(pipeline)["automation_id"]
    first, second = _now() - timedelta(seconds=60), _now()
    ctx = wiring.automation_run_context()
    with monkeypatch.context() as patch:
        patch.setattr(automations, "_release", lambda *_: None)  # the first run dies before releasing its lock
        assert automations.fire(ctx, AutomationFire(automation_id=automation_id, scheduled_time=first)) == "fail"
    _audience(pipeline, second, _rows(2))

    assert automations.fire(ctx, AutomationFire(automation_id=automation_id, scheduled_time=second)) == "running"
    pipeline.run()
    assert _run(pipeline, automation_id, automations.run_id_of(second))["status"] == "DONE"
    assert len(pipeline.ses_sent()) == 2
