"""A recurring automation on the local runtime, over HTTP: created, fired by the emulated EventBridge
Scheduler at its time (the scheduler loop's clock is the test's to move: no sleeping for the verdict),
its run DONE with each recipient sent once, paused (the schedule DISABLED, a firing time passes and
nothing runs), deleted (its schedule gone from the emulated Scheduler)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from local.runtime import LocalRuntime
from massmailer import automations
from tests.e2e.conftest import HeldClock, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

TIME_ZONE = "Europe/Berlin"


def _automation(rt: LocalRuntime, automation_id: str) -> dict[str, Any]:
    status, body = rt.api("GET", f"/v1/automations/{automation_id}")
    assert status == 200, body
    return dict(body)


def _runs(rt: LocalRuntime, automation_id: str) -> list[dict[str, Any]]:
    status, body = rt.api("GET", f"/v1/automations/{automation_id}/runs")
    assert status == 200, body
    return list(body["items"])


def _provider_copies(rt: LocalRuntime, campaign_id: str) -> list[str]:
    """The recipients of the campaign's emails as SES accepted them plus as the relay received them."""
    assert rt.ses is not None and rt.relay is not None
    accepted = [a for a in list(rt.ses.accepted) if a["tags"].get("campaign_id") == campaign_id]
    copies = [d for a in accepted for d in a["destinations"]]
    marker = f"X-MassMailer-Campaign: {campaign_id}".encode()
    copies += [r for _, rcpts, data in list(rt.relay.messages) if marker in data for r in rcpts]
    return copies


def _firings(rt: LocalRuntime, name: str) -> list[dict[str, Any]]:
    assert rt.scheduler is not None
    return [f for f in rt.scheduler.fired() if f["name"] == name]


def test_a_recurring_automation_runs_on_its_schedule_then_pauses_and_is_deleted(
    rt: LocalRuntime, token: str, held_clock: HeldClock
) -> None:
    # Given a daily automation created through the API, on a time zone with daylight saving
    target = f"audiences/e2e-{token}/{{scheduled:%Y-%m-%d}}/customers.csv"
    status, created = rt.api(
        "POST",
        "/v1/automations",
        {
            "name": f"daily digest {token}",
            "subject": "Hello {{ first_name }}",
            "text": "Hi {{ first_name }}. Unsubscribe: {{ unsubscribe_url }}",
            "schedule": {"preset": "daily", "time": "09:30", "time_zone": TIME_ZONE},
            "target": target,
        },
    )
    assert status == 201, created
    automation_id = created["automation_id"]
    name = automations.schedule_name(automation_id)
    scheduler, group = rt.client("scheduler"), rt.resources["schedule_group"]
    schedule = scheduler.get_schedule(Name=name, GroupName=group)
    assert schedule["State"] == "ENABLED"
    assert schedule["ScheduleExpressionTimezone"] == TIME_ZONE
    next_runs = [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in _automation(rt, automation_id)["next_runs"]]
    first, second = next_runs[0], next_runs[1]
    assert first > held_clock.now and second - first in (timedelta(hours=23), timedelta(hours=24), timedelta(hours=25))

    # And its target object for the first firing's date (on the automation's wall clock) in the bucket
    addresses = [f"auto-{token}-{i}@example.com" for i in range(3)]
    key = automations.fill_target(target, first.astimezone(ZoneInfo(TIME_ZONE)))
    csv = "email,first_name\n" + "".join(f"{a},Reader{i}\n" for i, a in enumerate(addresses))
    rt.client("s3").put_object(Bucket=rt.resources["bucket"], Key=key, Body=csv.encode())

    # When the scheduler loop has run a whole tick a second before its time, nothing fires
    held_clock.set(first - timedelta(seconds=1))
    held_clock.wait_for_a_whole_tick()
    assert _firings(rt, name) == []
    assert _runs(rt, automation_id) == []

    # When its time comes, the emulated Scheduler fires it once, and its run ends DONE
    held_clock.set(first)

    def done() -> dict[str, Any] | None:
        last = _automation(rt, automation_id)["last_run"]
        return last if last and last["status"] == "DONE" else None

    run = wait_for(done, timeout=120, what="the automation's run to end DONE")
    firings = _firings(rt, name)
    assert len(firings) == 1 and firings[0]["ok"], firings
    assert datetime.fromisoformat(firings[0]["scheduled_time"]) == first
    assert datetime.fromisoformat(run["scheduled_time"].replace("Z", "+00:00")) == first
    assert run["counts"]["sent"] == len(addresses) and run["counts"]["failed"] == 0, run
    # Then each recipient got exactly one email (SES record + relay outbox), from the run's campaign
    status, campaign = rt.api("GET", f"/v1/campaigns/{run['campaign_id']}")
    assert status == 200 and campaign["status"] == "COMPLETED", campaign
    assert sorted(_provider_copies(rt, run["campaign_id"])) == sorted(addresses)

    # When it is paused, its schedule is DISABLED
    status, paused = rt.api("POST", f"/v1/automations/{automation_id}/pause")
    assert status == 200 and paused["status"] == "PAUSED", paused
    assert scheduler.get_schedule(Name=name, GroupName=group)["State"] == "DISABLED"
    # And its next firing time passes (the loop ticks through it) with nothing fired and no run
    held_clock.set(second)
    held_clock.wait_for_a_whole_tick()
    assert len(_firings(rt, name)) == 1
    assert [r["run_id"] for r in _runs(rt, automation_id)] == [run["run_id"]]

    # When it is deleted, its schedule is gone from the emulated Scheduler, and so is the automation
    status, body = rt.api("DELETE", f"/v1/automations/{automation_id}")
    assert status == 204, body
    with pytest.raises(scheduler.exceptions.ResourceNotFoundException):
        scheduler.get_schedule(Name=name, GroupName=group)
    assert name not in [s["Name"] for s in scheduler.list_schedules(GroupName=group)["Schedules"]]
    status, body = rt.api("GET", f"/v1/automations/{automation_id}")
    assert status == 404, body
    held_clock.set(second + timedelta(days=1))
    held_clock.wait_for_a_whole_tick()
    assert len(_firings(rt, name)) == 1
