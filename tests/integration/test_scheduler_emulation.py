"""The local scheduler loop runs RECURRING schedules created with boto3 the way EventBridge Scheduler does.

Schedules live in moto (in process); the loop's clock is injected and stepped, so nothing sleeps and
no test depends on how fast the machine is.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.scheduler_loop import DOUBLE, SchedulerLoop, parse_fault

ROLE = "arn:aws:iam::123456789012:role/scheduler"
INPUT = json.dumps({"kind": "automation", "automation_id": "a1", "scheduled_time": "<aws.scheduler.scheduled-time>"})


@dataclass
class Env:
    scheduler: Any
    sqs: Any
    queue_url: str
    queue_arn: str
    loop: SchedulerLoop
    now: list[datetime]

    def create(self, name: str, expression: str, tz: str = "UTC", **extra: Any) -> None:
        self.scheduler.create_schedule(**self._request(name, expression, tz, **extra))

    def update(self, name: str, expression: str, tz: str = "UTC", **extra: Any) -> None:
        self.scheduler.update_schedule(**self._request(name, expression, tz, **extra))

    def _request(self, name: str, expression: str, tz: str, **extra: Any) -> dict[str, Any]:
        target = {"Arn": extra.pop("target_arn", self.queue_arn), "RoleArn": ROLE, "Input": INPUT}
        target.update(extra.pop("target", {}))
        return {
            "Name": name,
            "ScheduleExpression": expression,
            "ScheduleExpressionTimezone": tz,
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "Target": target,
            **extra,
        }

    def start_at(self, when: datetime) -> None:
        self.now[0] = when
        self.loop.run_once()

    def run_until(self, end: datetime, step: timedelta = timedelta(minutes=30)) -> None:
        """Tick the loop from its clock's time to ``end`` in steps (what a running loop does, faster)."""
        while self.now[0] < end:
            self.now[0] = min(self.now[0] + step, end)
            self.loop.run_once()

    def received(self) -> list[str]:
        """The scheduled times of the messages on the target queue (drained)."""
        times: list[str] = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return sorted(times)
            for message in messages:
                times.append(json.loads(message["Body"])["scheduled_time"])
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def env(aws_env: None) -> Iterator[Env]:
    with mock_aws():
        sqs = boto3.client("sqs")
        url = sqs.create_queue(QueueName="split")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        scheduler = boto3.client("scheduler")
        now = [datetime(2026, 3, 27, 0, 0, tzinfo=UTC)]
        loop = SchedulerLoop(scheduler, sqs, boto3.client("sns"), tick=1.0, clock=lambda: now[0])
        loop.run_once()  # the loop starts at the clock's time
        yield Env(scheduler, sqs, url, arn, loop, now)


def test_a_recurring_cron_fires_on_its_wall_clock_across_spring_forward(env: Env) -> None:
    # Daily at 02:30 Berlin time: 02:30 does not exist on Sunday 29 March 2026, so that day is skipped.
    env.create("berlin", "cron(30 2 * * ? *)", "Europe/Berlin")

    env.run_until(datetime(2026, 3, 31, 0, 0, tzinfo=UTC))

    assert env.received() == ["2026-03-27T01:30:00Z", "2026-03-28T01:30:00Z", "2026-03-30T00:30:00Z"]


def test_a_recurring_cron_fires_once_when_fall_back_repeats_its_time(env: Env) -> None:
    # Daily at 01:30 New York time: on 1 November 2026 01:30 happens twice (EDT, then EST); it fires once.
    env.start_at(datetime(2026, 10, 31, 0, 0, tzinfo=UTC))
    env.create("newyork", "cron(30 1 * * ? *)", "America/New_York")

    env.run_until(datetime(2026, 11, 3, 0, 0, tzinfo=UTC), step=timedelta(minutes=20))

    assert env.received() == ["2026-10-31T05:30:00Z", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]


def test_a_disabled_schedule_does_not_fire_and_fires_again_once_enabled_without_catching_up(env: Env) -> None:
    env.create("daily", "cron(0 9 * * ? *)", State="DISABLED")
    env.run_until(datetime(2026, 3, 27, 12, 0, tzinfo=UTC))  # past 09:00 while DISABLED
    assert env.received() == []

    env.update("daily", "cron(0 9 * * ? *)", State="ENABLED")
    env.run_until(datetime(2026, 3, 28, 12, 0, tzinfo=UTC))

    # The 27th's run, missed while disabled, is not caught up; the 28th's fires.
    assert env.received() == ["2026-03-28T09:00:00Z"]
    assert [f["name"] for f in env.loop.fired()] == ["daily"]


def test_start_and_end_dates_bound_a_recurring_schedule(env: Env) -> None:
    # (moto, like Scheduler, refuses a StartDate in the past: these dates are years ahead.)
    env.start_at(datetime(2031, 3, 27, 0, 0, tzinfo=UTC))
    env.create(
        "hourly",
        "cron(0 * * * ? *)",
        StartDate=datetime(2031, 3, 27, 10, 0, tzinfo=UTC),
        EndDate=datetime(2031, 3, 27, 12, 0, tzinfo=UTC),
    )

    env.run_until(datetime(2031, 3, 27, 15, 0, tzinfo=UTC))

    assert env.received() == ["2031-03-27T10:00:00Z", "2031-03-27T11:00:00Z", "2031-03-27T12:00:00Z"]


def test_an_updated_schedule_is_picked_up_on_the_next_tick(env: Env) -> None:
    env.create("daily", "cron(0 9 * * ? *)")
    env.run_until(datetime(2026, 3, 27, 6, 0, tzinfo=UTC))  # the loop has read (and cached) it

    env.update("daily", "cron(0 10 * * ? *)")  # UpdateSchedule: 10:00 instead of 09:00
    env.run_until(datetime(2026, 3, 27, 12, 0, tzinfo=UTC))

    assert env.received() == ["2026-03-27T10:00:00Z"]


def test_a_deleted_recurring_schedule_stops_firing(env: Env) -> None:
    env.create("hourly", "cron(0 * * * ? *)")
    env.run_until(datetime(2026, 3, 27, 1, 30, tzinfo=UTC))
    env.scheduler.delete_schedule(Name="hourly")
    env.run_until(datetime(2026, 3, 27, 5, 0, tzinfo=UTC))

    assert env.received() == ["2026-03-27T01:00:00Z"]


def test_the_double_fault_delivers_every_invocation_twice(env: Env) -> None:
    env.start_at(datetime(2031, 3, 27, 0, 0, tzinfo=UTC))
    env.loop.fault = parse_fault("double")
    env.create("rate", "rate(1 hour)", StartDate=datetime(2031, 3, 27, 1, 0, tzinfo=UTC))

    env.run_until(datetime(2031, 3, 27, 2, 30, tzinfo=UTC))

    times = ["2031-03-27T01:00:00Z", "2031-03-27T02:00:00Z"]
    assert env.received() == sorted(times * 2)
    assert [f["copy"] for f in env.loop.fired()] == [1, 2, 1, 2]

    env.loop.fault = parse_fault("ok")  # switched off: once again
    env.run_until(datetime(2031, 3, 27, 3, 30, tzinfo=UTC))
    assert env.received() == ["2031-03-27T03:00:00Z"]


def test_the_scheduler_fault_switch_refuses_an_unknown_value() -> None:
    assert parse_fault("DOUBLE") == DOUBLE
    assert parse_fault(None) is None
    with pytest.raises(ValueError, match="scheduler fault must be one of double"):
        parse_fault("triple")


def test_an_unreachable_target_is_retried_by_the_loops_clock_then_delivered(env: Env) -> None:
    missing_arn = env.queue_arn.rsplit(":", 1)[0] + ":later"
    env.create(
        "retry",
        "cron(0 9 * * ? *)",
        target_arn=missing_arn,
        target={
            "Input": json.dumps(
                {"attempt": "<aws.scheduler.attempt-number>", "scheduled_time": "<aws.scheduler.scheduled-time>"}
            ),
            "RetryPolicy": {"MaximumRetryAttempts": 5, "MaximumEventAgeInSeconds": 3600},
        },
    )
    env.run_until(datetime(2026, 3, 27, 9, 0, tzinfo=UTC))
    (first,) = env.loop.fired()
    assert not first["ok"]

    # The queue appears; the retry waits for its back-off on the loop's clock (2 s), not the wall clock.
    later_url = env.sqs.create_queue(QueueName="later")["QueueUrl"]
    env.run_until(datetime(2026, 3, 27, 9, 0, 1, tzinfo=UTC), step=timedelta(seconds=1))
    assert len(env.loop.fired()) == 1
    env.run_until(datetime(2026, 3, 27, 9, 0, 3, tzinfo=UTC), step=timedelta(seconds=1))

    assert [(f["ok"], f["attempts"]) for f in env.loop.fired()] == [(False, 1), (True, 2)]
    (message,) = env.sqs.receive_message(QueueUrl=later_url)["Messages"]
    assert json.loads(message["Body"]) == {"attempt": "2", "scheduled_time": "2026-03-27T09:00:00Z"}
