"""The local runtime's Scheduler emulation and event bus, over its control URL and moto in server mode.

Each test targets a scratch queue of its own, so the pipeline's queues are left as they were.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from typing import Any

from local.runtime import LocalRuntime
from massmailer import spec
from massmailer.event_rules import EventRules, automation_event_input
from tests.e2e.conftest import wait_for


def _control(rt: LocalRuntime, method: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(  # noqa: S310 - loopback URL of the runtime under test
        f"{rt.control_url}/faults",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _scratch_queue(rt: LocalRuntime) -> tuple[str, str]:
    sqs = rt.client("sqs")
    url = sqs.create_queue(QueueName=f"e2e-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def _bodies(rt: LocalRuntime, url: str) -> list[dict[str, Any]]:
    messages = rt.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    for m in messages:
        rt.client("sqs").delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return [json.loads(m["Body"]) for m in messages]


def test_the_scheduler_double_fault_fires_a_recurring_schedule_twice(rt: LocalRuntime) -> None:
    status, answer = _control(rt, "POST", {"scheduler": "twice"})
    assert status == 400 and "scheduler fault must be one of double" in answer["message"]

    status, answer = _control(rt, "POST", {"scheduler": "double"})
    assert status == 200 and answer["scheduler"] == "double"
    url, arn = _scratch_queue(rt)
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    scheduler = rt.client("scheduler")
    scheduler.create_schedule(  # a rate without StartDate fires at once, then every hour
        Name=name,
        GroupName=rt.resources["schedule_group"],
        ScheduleExpression="rate(1 hour)",
        ScheduleExpressionTimezone="Europe/Berlin",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={
            "Arn": arn,
            "RoleArn": rt.resources["env"][spec.ENV.scheduler_role_arn],
            "Input": json.dumps({"kind": "automation", "scheduled_time": "<aws.scheduler.scheduled-time>"}),
        },
    )
    try:
        received: list[dict[str, Any]] = []

        def both() -> bool:
            received.extend(_bodies(rt, url))
            return len(received) >= 2

        wait_for(both, timeout=30, what="the schedule's two deliveries")
    finally:
        scheduler.delete_schedule(Name=name, GroupName=rt.resources["schedule_group"])
    assert len(received) == 2
    assert received[0] == received[1]  # the same invocation (scheduled time) twice
    assert received[0]["scheduled_time"].endswith("Z")

    status, answer = _control(rt, "DELETE")
    assert status == 200 and answer["scheduler"] is None


def test_the_stage_bus_delivers_a_matching_event_transformed_and_not_another(rt: LocalRuntime) -> None:
    url, arn = _scratch_queue(rt)
    bus = rt.resources["event_bus"]
    rules = EventRules(rt.client("events"), bus, spec.event_rule_prefix(rt.config.stage))
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    rules.put(name, {"detail-type": [f"{name}.signed_up"]}, arn, automation_event_input(name))
    try:
        for detail_type in (f"{name}.deleted", f"{name}.signed_up"):
            answer = rt.client("events").put_events(
                Entries=[
                    {"EventBusName": bus, "Source": "e2e", "DetailType": detail_type, "Detail": '{"email": "x@y.test"}'}
                ]
            )
            assert answer["FailedEntryCount"] == 0
        received = wait_for(lambda: _bodies(rt, url), timeout=10, what="the event on the queue")
    finally:
        rules.delete(name)
    assert received == [{"kind": "automation_event", "automation_id": name, "detail": {"email": "x@y.test"}}]
    assert _bodies(rt, url) == []
