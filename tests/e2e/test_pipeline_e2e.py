"""The pipeline through the local runtime: API → queues → sender → SES (simulator) → SNS → bounce."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from local.runtime import LocalRuntime
from massmailer import spec
from tests.e2e.conftest import HeldClock, campaign, counts, message, store_of, suppression_reason, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
SIM = "simulator.amazonses.com"


def test_simulator_campaign_ends_with_the_right_statuses_and_suppressions(rt: LocalRuntime, token: str) -> None:
    # Given a campaign to every mailbox-simulator box (labelled, so this test owns the addresses)
    boxes = {
        "success": f"success+{token}@{SIM}",
        "bounce": f"bounce+{token}@{SIM}",
        "ooto": f"ooto+{token}@{SIM}",
        "complaint": f"complaint+{token}@{SIM}",
        "suppressionlist": f"suppressionlist+{token}@{SIM}",
    }
    people = [f"sim-{token}-{i}@example.com" for i in range(3)]
    audience = [
        {"email": a, "variables": {"first_name": "Box", "n": i}} for i, a in enumerate([*boxes.values(), *people])
    ]
    campaign_id = campaign(rt, audience)

    # When it has gone out and SES's events have come back through SNS → SQS → bounce
    expected = {
        boxes["success"]: "DELIVERED",
        boxes["bounce"]: "BOUNCED",
        boxes["ooto"]: "DELIVERED",
        boxes["complaint"]: "COMPLAINED",
        boxes["suppressionlist"]: "BOUNCED",
        **{p: "DELIVERED" for p in people},
    }
    store = store_of(rt)

    def settled() -> bool:
        statuses = {a: message(rt, campaign_id, a).get("status") for a in expected}
        ooto = store.messages.get_message(message(rt, campaign_id, boxes["ooto"]).get("message_id") or "") or {}
        return statuses == expected and int(ooto.get("soft_bounces") or 0) == 1

    wait_for(settled, timeout=120, interval=0.5, what="simulator outcomes")

    # Then each recipient went out once through SES, with the status SES's events imply
    for address in expected:
        record = message(rt, campaign_id, address)
        assert record["provider"] == "ses" and record["attempts"] == 1, record
    report = counts(rt, campaign_id)
    assert report["sent"] == len(expected)
    assert report["bounced"] == 2 and report["complained"] == 1 and report["delivered"] >= 5
    # And hard bounces and complaints are suppressed — the out-of-office reply and deliveries are not
    assert suppression_reason(rt, boxes["bounce"]) == "bounce"
    assert suppression_reason(rt, boxes["suppressionlist"]) == "bounce"
    assert suppression_reason(rt, boxes["complaint"]) == "complaint"
    for address in (boxes["success"], boxes["ooto"], *people):
        assert suppression_reason(rt, address) is None

    # And the next campaign to the same people skips the suppressed three
    again = campaign(rt, audience)
    wait_for(
        lambda: counts(rt, again)["split_done"] and counts(rt, again)["sent"] == 5, timeout=120, what="2nd campaign"
    )
    assert counts(rt, again)["suppressed"] == 3


def test_transactional_email_through_the_http_front(rt: LocalRuntime, token: str) -> None:
    # Given a transactional email accepted by the local API Gateway, with an Idempotency-Key
    body = {
        "to": f"receipt-{token}@example.com",
        "subject": "Receipt {{ order }}",
        "text": "Order {{ order }}",
        "variables": {"order": "A-1"},
    }
    status, first = rt.api("POST", "/v1/messages", body, headers={"Idempotency-Key": f"order-{token}"})
    assert status == 202, first
    status, retry = rt.api("POST", "/v1/messages", body, headers={"Idempotency-Key": f"order-{token}"})
    assert status == 202 and retry["message_id"] == first["message_id"]

    # When the high lane's event source has run the sender and SES's Delivery event came back
    record = wait_for(
        lambda: (r := rt.api("GET", f"/v1/messages/{first['message_id']}")[1]).get("status") == "DELIVERED" and r,
        timeout=120,
        what="DELIVERED",
    )

    # Then it was sent once, through SES, on the high lane; and the front behaves like API Gateway
    assert record["provider"] == "ses" and record["lane"] == "high" and record["attempts"] == 1
    assert sum(1 for m in rt.ses_record() if f"receipt-{token}@example.com" in m["destinations"]) == 1
    assert rt.api("GET", "/health") == (403, {"message": "Missing Authentication Token"})
    status, invalid = rt.api("POST", "/v1/messages", {"to": "not an address", "subject": "x", "text": "x"})
    assert status == 422 and any(e["field"] == "to" for e in invalid["errors"])


def test_poison_batch_lands_in_the_dlq_after_max_receive_count(rt: LocalRuntime, token: str) -> None:
    # Given a message on the high lane that the sender cannot parse (a poison message)
    sqs = rt.client("sqs")
    before = rt.depth("high", dlq=True)
    poison = json.dumps({"v": 1, "kind": "campaign", "note": f"poison-{token}"})
    sqs.send_message(QueueUrl=rt.resources["queues"]["high"], MessageBody=poison)

    # When the event source has delivered it maxReceiveCount times, each time reported as failed
    wait_for(lambda: rt.depth("high", dlq=True) > before, timeout=120, interval=0.5, what="the DLQ")

    # Then SQS's redrive policy moved it to the lane's DLQ, and the lane itself is empty again
    received = sqs.receive_message(
        QueueUrl=rt.resources["dlqs"]["high"], MaxNumberOfMessages=10, AttributeNames=["ApproximateReceiveCount"]
    )["Messages"]
    mine = [m for m in received if m["Body"] == poison]
    assert len(mine) == 1
    assert int(mine[0]["Attributes"]["ApproximateReceiveCount"]) >= spec.HIGH_LANE.max_receive_count
    assert rt.depth("high") == 0
    sqs.delete_message(QueueUrl=rt.resources["dlqs"]["high"], ReceiptHandle=mine[0]["ReceiptHandle"])


def test_schedule_created_through_the_api_fires_on_time(rt: LocalRuntime, token: str, held_clock: HeldClock) -> None:
    # Given a campaign for an hour from now, stated in another time zone (UTC+02:00) — the API sees it
    # in the future however slow the machine, and the scheduler loop's clock is the test's to move
    paris_summer = timezone(timedelta(hours=2))
    send_at = (held_clock.now.astimezone(paris_summer) + timedelta(hours=1)).replace(microsecond=0)
    audience = [
        {"email": f"later-{token}-{i}@example.com", "variables": {"first_name": "Later", "n": i}} for i in range(3)
    ]
    campaign_id = campaign(rt, audience, send_at=send_at.isoformat())

    # Then the ingest function created a one-time schedule on EventBridge Scheduler, and nothing is sent yet
    assert counts(rt, campaign_id)["status"] == "SCHEDULED"
    scheduler = rt.client("scheduler")
    group = rt.resources["schedule_group"]
    names = [s["Name"] for s in scheduler.list_schedules(GroupName=group)["Schedules"]]
    name = next(n for n in names if campaign_id in n)
    schedule = scheduler.get_schedule(Name=name, GroupName=group)
    assert schedule["ScheduleExpression"] == f"at({send_at.astimezone(UTC).replace(tzinfo=None).isoformat()})"
    assert schedule["ActionAfterCompletion"] == "DELETE"

    # When the scheduler loop has run a whole tick a second before its time, nothing fires
    held_clock.set(send_at.astimezone(UTC) - timedelta(seconds=1))
    held_clock.wait_for_a_whole_tick()
    assert rt.scheduler is not None
    assert [f for f in rt.scheduler.fired() if f["name"] == name] == []
    assert counts(rt, campaign_id)["status"] == "SCHEDULED"

    # When its time comes
    held_clock.set(send_at.astimezone(UTC))
    wait_for(lambda: counts(rt, campaign_id)["sent"] == 3, timeout=120, what="the scheduled campaign to go out")

    # Then the scheduler fired it once, at its time (the first tick at its time, not before), and
    # deleted the completed one-time schedule
    firings = [f for f in rt.scheduler.fired() if f["name"] == name]
    assert len(firings) == 1 and firings[0]["ok"] and firings[0]["deleted"]
    assert datetime.fromisoformat(firings[0]["fired_at"]) == send_at
    assert name not in [s["Name"] for s in scheduler.list_schedules(GroupName=group)["Schedules"]]
    for member in audience:
        assert message(rt, campaign_id, member["email"])["status"] in ("SENT", "DELIVERED")
