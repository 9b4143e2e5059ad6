"""The local runtime's own parts, without starting it: what they emulate must match AWS's behaviour.

(No network, no processes: these could live in tests/unit; they sit with the tier they serve.)
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from local.http_front import _response_parts, proxy_event
from local.pollers import _failed_ids
from local.scheduler_loop import StoredSchedule, UnsupportedSchedule
from local.ses_events import AcceptedEmail, simulate, simulator_box
from local.ses_proxy import SesFaults
from massmailer.notifications import process_sns_payload
from massmailer.store import Stores


def _schedule(expression: str, tz: str = "UTC", **extra: object) -> StoredSchedule:
    return StoredSchedule.from_api(
        {
            "Name": "s",
            "GroupName": "g",
            "ScheduleExpression": expression,
            "ScheduleExpressionTimezone": tz,
            "Target": {"Arn": "arn:aws:sqs:us-east-1:123456789012:q", "Input": "{}"},
            "CreationDate": datetime(2026, 3, 1, tzinfo=UTC),
            **extra,
        }
    )


def test_at_schedule_fires_once_at_its_local_time() -> None:
    schedule = _schedule("at(2026-07-01T09:00:00)", "Europe/Paris")  # 07:00 UTC in summer
    at = datetime(2026, 7, 1, 7, 0, tzinfo=UTC)
    assert schedule.due(at - timedelta(seconds=2), at - timedelta(seconds=1)) == []
    assert schedule.due(at - timedelta(seconds=1), at) == [at]


def test_cron_schedule_follows_the_time_zone_across_dst() -> None:
    # Every day at 09:00 Paris time: 08:00 UTC in winter, 07:00 UTC in summer (DST starts 2026-03-29).
    schedule = _schedule("cron(0 9 * * ? *)", "Europe/Paris")
    fired = schedule.due(datetime(2026, 3, 27, 0, 0, tzinfo=UTC), datetime(2026, 3, 31, 0, 0, tzinfo=UTC))
    assert [t.strftime("%m-%d %H:%M") for t in fired] == ["03-27 08:00", "03-28 08:00", "03-29 07:00", "03-30 07:00"]
    assert all(t.astimezone(ZoneInfo("Europe/Paris")).hour == 9 for t in fired)


def test_cron_weekday_names_last_day_and_nth_weekday() -> None:
    weekdays = _schedule("cron(30 8 ? * MON-FRI *)")
    week = weekdays.due(datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 8, tzinfo=UTC))  # Mon 1 .. Mon 8
    assert [t.day for t in week] == [1, 2, 3, 4, 5]
    last = _schedule("cron(0 12 L * ? *)").due(datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC))
    assert [t.date().isoformat() for t in last] == ["2026-02-28"]
    second_tuesday = _schedule("cron(0 10 ? * 3#2 *)").due(
        datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC)
    )
    assert [t.day for t in second_tuesday] == [9]
    # W, which the loop once refused, now fires as on Scheduler (massmailer.recurrence): the 15th of
    # August 2026 is a Saturday, so 15W is Friday the 14th.
    nearest_weekday = _schedule("cron(0 10 15W * ? *)").due(
        datetime(2026, 8, 1, tzinfo=UTC), datetime(2026, 9, 1, tzinfo=UTC)
    )
    assert [t.day for t in nearest_weekday] == [14]
    with pytest.raises(UnsupportedSchedule):
        _schedule("cron(0 10 * * * *)")  # neither day field is '?'


def test_rate_schedule_counts_from_its_start() -> None:
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    schedule = _schedule("rate(5 minutes)", StartDate=start)
    fired = schedule.due(start, start + timedelta(minutes=16))
    assert fired == [start + timedelta(minutes=m) for m in (5, 10, 15)]


def test_partial_batch_response_semantics_match_lambda() -> None:
    ids = {"a", "b", "c"}
    assert _failed_ids({"batchItemFailures": []}, ids) == set()
    assert _failed_ids(None, ids) == set()
    assert _failed_ids({"batchItemFailures": [{"itemIdentifier": "b"}]}, ids) == {"b"}
    # An identifier that is empty or not in the batch fails the whole batch, as on Lambda.
    assert _failed_ids({"batchItemFailures": [{"itemIdentifier": ""}]}, ids) == ids
    assert _failed_ids({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, ids) == ids


def test_api_front_builds_rest_proxy_events_like_api_gateway() -> None:
    event = proxy_event(
        "POST",
        "/v1/unsubscribe?token=abc&x=1&x=2",
        [("Content-Type", "application/json"), ("X-Tag", "one"), ("X-Tag", "two")],
        b"",
        stage="local",
    )
    assert event is not None
    assert event["resource"] == "/v1/unsubscribe" and event["pathParameters"] is None
    assert event["queryStringParameters"] == {"token": "abc", "x": "2"}
    assert event["multiValueQueryStringParameters"]["x"] == ["1", "2"]
    assert event["headers"]["X-Tag"] == "two" and event["multiValueHeaders"]["X-Tag"] == ["one", "two"]
    assert event["requestContext"]["path"] == "/local/v1/unsubscribe"
    proxied = proxy_event("GET", "/v1/campaigns/cmp-1", [], b"\xff\xfe", stage="local")
    assert proxied is not None and proxied["resource"] == "/v1/{proxy+}"
    assert proxied["pathParameters"] == {"proxy": "campaigns/cmp-1"} and proxied["isBase64Encoded"]
    assert proxy_event("GET", "/health", [], b"", stage="local") is None  # → 403 Missing Authentication Token
    status, headers, raw = _response_parts(
        {"statusCode": 201, "headers": {"A": "1"}, "body": base64.b64encode(b"hi").decode(), "isBase64Encoded": True}
    )
    assert (status, headers, raw) == (201, [("A", "1")], b"hi")
    with pytest.raises(ValueError):
        _response_parts({"body": "no status"})


def test_fault_switches_validate() -> None:
    assert SesFaults.parse({"mode": "down", "delay_ms": "250"}) == SesFaults(mode="down", delay_ms=250)
    assert SesFaults.parse({"rate": "none"}, SesFaults(rate=5)).rate is None
    with pytest.raises(ValueError):
        SesFaults.parse({"mode": "exploded"})


def _accepted(to: str, tags: dict[str, str]) -> AcceptedEmail:
    raw = f"From: news@massmailer.test\r\nTo: {to}\r\nSubject: Hi\r\nMessage-ID: <m1@massmailer>\r\n\r\nbody".encode()
    request = {
        "FromEmailAddress": "news@massmailer.test",
        "Destination": {"ToAddresses": [to]},
        "Content": {"Raw": {"Data": base64.b64encode(raw).decode()}},
        "ConfigurationSetName": "massmailer-local-configset",
        "EmailTags": [{"Name": k, "Value": v} for k, v in tags.items()],
    }
    return AcceptedEmail.from_send_email(request, "0100018e-sim-000000", raw)


def _sns_envelope(message: str) -> str:
    """What moto's SNS → SQS delivery puts in the bounce queue (pretty-printed, as SNS does)."""
    return json.dumps({"Type": "Notification", "MessageId": "m", "TopicArn": "arn:t", "Message": message}, indent=2)


@pytest.mark.parametrize(
    ("box", "kinds", "status", "suppressed", "soft_bounces"),
    [
        ("success", ["Send", "Delivery"], "DELIVERED", None, 0),
        ("bounce", ["Send", "Bounce"], "BOUNCED", "bounce", 0),
        ("suppressionlist", ["Send", "Bounce"], "BOUNCED", "bounce", 0),
        ("ooto", ["Send", "Delivery", "Bounce"], "DELIVERED", None, 1),
        ("complaint", ["Send", "Delivery", "Complaint"], "COMPLAINED", "complaint", 0),
        (None, ["Send", "Delivery"], "DELIVERED", None, 0),
    ],
)
def test_mailbox_simulator_events_drive_the_bounce_function_as_ses_would(
    box: str | None, kinds: list[str], status: str, suppressed: str | None, soft_bounces: int
) -> None:
    # Given a message our sender recorded SENT, addressed to a simulator box (with a +label)
    to = f"{box}+label@simulator.amazonses.com" if box else "jane@example.com"
    assert simulator_box(to) == box
    store = Stores.in_memory()
    claim = store.messages.claim_recipient(
        "cmp-1.abc", email=to, campaign_id="cmp-1", lane="low", attempt=0, lease_seconds=60
    )
    store.messages.record_sent("cmp-1.abc", claim.token, "ses", "0100018e-sim-000000")

    # When SES's events for it arrive in order, through SNS → SQS, in SES's own JSON
    events = simulate(_accepted(to, {"message_id": "cmp-1.abc", "campaign_id": "cmp-1"}))
    assert [e.event_type for e in sorted(events, key=lambda e: e.after_seconds)] == kinds
    for event in sorted(events, key=lambda e: e.after_seconds):
        document = json.loads(event.message())
        assert event.message().endswith("\n") and document["eventType"] == event.event_type
        assert document["mail"]["tags"]["message_id"] == ["cmp-1.abc"]
        assert document["mail"]["tags"]["ses:configuration-set"] == ["massmailer-local-configset"]
        process_sns_payload(store, _sns_envelope(event.message()))

    # Then the record and the suppression list end as the real simulator's notifications make them
    record = store.messages.get_message("cmp-1.abc") or {}
    assert record["status"] == status
    assert int(record.get("soft_bounces") or 0) == soft_bounces
    assert (store.suppressions.by_address.get(to.lower()) or {}).get("reason") == suppressed


def test_the_fault_command_checks_the_scheduler_switch_before_calling_the_runtime() -> None:
    from local.__main__ import main

    # The URL is never called: a wrong value stops the command first.
    with pytest.raises(SystemExit, match="scheduler fault must be one of double"):
        main(["fault", "scheduler=triple", "--url", "http://127.0.0.1:9/_local"])
