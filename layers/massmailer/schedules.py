"""The schedules port: one-time schedules (a campaign's ``send_at``) on EventBridge Scheduler.

A schedule's target is the split queue (Scheduler's universal SQS target), so a scheduled campaign
enters the pipeline exactly as an immediate one does. Scheduler delivers at least once; the split
checkpoint makes a second delivery harmless.

A target Scheduler cannot reach (the queue deleted, its key or the role's permission revoked) is
retried for at most ``RETRY_MAX_AGE_SECONDS``; after that the invocation goes to the stage's
schedule dead-letter queue (``DeadLetterConfig``), whose depth alarm tells an operator that a
campaign did not start. A campaign an hour late is an operator's decision, not Scheduler's.

Recurring schedules (automations, ``massmailer.automations``): one per automation, in the same group,
``cron(...)``/``rate(...)`` with its ``ScheduleExpressionTimezone``, the same target, retry policy and
dead-letter queue, ``FlexibleTimeWindow`` OFF; the Input carries the firing's scheduled time
(``<aws.scheduler.scheduled-time>``, which Scheduler fills in). Pause is ``State: DISABLED``, resume
``ENABLED``; a change is ``UpdateSchedule`` (which replaces the whole definition), removal
``DeleteSchedule``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from massmailer.store import StoreUnavailable

RETRY_ATTEMPTS = 10  # Scheduler's own retries of an undeliverable target (its default is 185)
RETRY_MAX_AGE_SECONDS = 3600  # then the invocation is dead-lettered (its default is 24 h)


class Schedules(Protocol):
    def once(self, name: str, at: datetime, queue: str, body: str) -> None: ...
    def delete(self, name: str) -> None: ...


class RecurringSchedules(Protocol):
    def recurring(
        self, name: str, expression: str, time_zone: str, queue: str, body: str, *, enabled: bool, update: bool
    ) -> None: ...
    def delete(self, name: str) -> None: ...


class EventBridgeSchedules:
    def __init__(
        self, client: Any, group: str, role_arn: str, queue_arns: dict[str, str], dead_letter_arn: str
    ) -> None:
        self._client = client
        self._group = group
        self._role_arn = role_arn
        self._queue_arns = queue_arns
        self._dead_letter_arn = dead_letter_arn

    def once(self, name: str, at: datetime, queue: str, body: str) -> None:
        when = at.astimezone(UTC).replace(tzinfo=None, microsecond=0).isoformat()
        try:
            self._client.create_schedule(
                Name=name[:64],
                GroupName=self._group,
                ScheduleExpression=f"at({when})",
                ScheduleExpressionTimezone="UTC",
                FlexibleTimeWindow={"Mode": "OFF"},
                ActionAfterCompletion="DELETE",
                Target=self._target(queue, body),
            )
        except self._client.exceptions.ConflictException:
            return  # already scheduled by an earlier try of the same request
        except Exception as exc:
            raise StoreUnavailable(f"create schedule {name}: {exc}") from exc

    def _target(self, queue: str, body: str) -> dict[str, Any]:
        return {
            "Arn": self._queue_arns[queue],
            "RoleArn": self._role_arn,
            "Input": body,
            "DeadLetterConfig": {"Arn": self._dead_letter_arn},
            "RetryPolicy": {
                "MaximumRetryAttempts": RETRY_ATTEMPTS,
                "MaximumEventAgeInSeconds": RETRY_MAX_AGE_SECONDS,
            },
        }

    def recurring(
        self, name: str, expression: str, time_zone: str, queue: str, body: str, *, enabled: bool, update: bool
    ) -> None:
        """Create (``update`` False) or replace (True) a recurring schedule; a create that finds the
        schedule (an earlier try of the same request) replaces it, an update that does not finds it
        gone and creates it."""
        definition = {
            "Name": name[:64],
            "GroupName": self._group,
            "ScheduleExpression": expression,
            "ScheduleExpressionTimezone": time_zone,
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "State": "ENABLED" if enabled else "DISABLED",
            "Target": self._target(queue, body),
        }
        first, second = (
            (self._client.update_schedule, self._client.create_schedule)
            if update
            else (self._client.create_schedule, self._client.update_schedule)
        )
        try:
            try:
                first(**definition)
            except (self._client.exceptions.ConflictException, self._client.exceptions.ResourceNotFoundException):
                second(**definition)
        except Exception as exc:
            raise StoreUnavailable(f"{'update' if update else 'create'} schedule {name}: {exc}") from exc

    def delete(self, name: str) -> None:
        """Delete a schedule; one already gone (fired, or deleted before) is fine."""
        try:
            self._client.delete_schedule(Name=name[:64], GroupName=self._group)
        except self._client.exceptions.ResourceNotFoundException:
            return
        except Exception as exc:
            raise StoreUnavailable(f"delete schedule {name}: {exc}") from exc
