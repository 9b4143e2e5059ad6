"""EventBridge Scheduler, locally: fires the schedules stored in moto's Scheduler when they are due.

moto stores schedules but never runs them. :class:`SchedulerLoop` reads them through the Scheduler
API every ``tick`` seconds and, for each ENABLED schedule whose time has come, does what the service
does with a templated target:

* **SQS target** (``arn:aws:sqs:...``): sends the target's ``Input`` as the message body (with
  ``SqsParameters.MessageGroupId`` for FIFO queues); **SNS target**: publishes it;
* context attributes in ``Input`` are replaced: ``<aws.scheduler.schedule-arn>``,
  ``<aws.scheduler.scheduled-time>``, ``<aws.scheduler.execution-id>``, ``<aws.scheduler.attempt-number>``;
* ``at(...)``, ``rate(...)`` and ``cron(...)`` expressions, evaluated in ``ScheduleExpressionTimezone``
  within ``StartDate``/``EndDate`` by :mod:`massmailer.recurrence` (the project's one parser of
  them: cron with ``L``, ``W`` and ``#``; Scheduler's daylight-saving rules, a wall time that does
  not exist skipped, one that happens twice fired once); a rate counts from ``StartDate``, else
  from the schedule's creation;
* ``ActionAfterCompletion: DELETE`` deletes a one-time schedule once it has fired;
* a target that cannot be reached is retried on later ticks (backing off by the loop's clock) until
  the target's ``RetryPolicy`` gives up, then the event goes to ``DeadLetterConfig.Arn`` if there is one;
* ``State: DISABLED`` fires nothing; a schedule ENABLED again fires from then on (the runs it missed
  while disabled are not caught up, as on Scheduler); ``UpdateSchedule`` is picked up on the next
  tick (a changed ``LastModificationDate`` makes the loop read the schedule again);
* at least once: the fault switch ``scheduler=double`` (:attr:`SchedulerLoop.fault`) delivers every
  invocation twice (same scheduled time, another execution id), the duplicate Scheduler's
  documentation allows, so consumers can be shown to make one run of it.

Time is the loop's ``clock`` (injectable): the tests drive ``run_once`` with a fake one, no sleeping.

Local simplifications: a ``FLEXIBLE`` time window fires at its start; one-time schedules whose time
passed while the runtime was down fire when it starts (moto forgets everything on restart anyway).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from massmailer.recurrence import At, InvalidExpression, Rate, Recurrence, parse_expression

logger = logging.getLogger(__name__)


class UnsupportedSchedule(ValueError):
    pass


DOUBLE = "double"
FAULTS = (DOUBLE,)


def parse_fault(value: Any) -> str | None:
    """The ``scheduler`` fault switch: ``double`` (every invocation delivered twice), or off."""
    if value is None or str(value).strip().lower() in ("", "ok", "none", "off", "null"):
        return None
    if str(value).strip().lower() in FAULTS:
        return str(value).strip().lower()
    raise ValueError(f"scheduler fault must be one of {', '.join(FAULTS)} or ok, not {value!r}")


def _aware(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), tz=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


@dataclass
class StoredSchedule:
    """One schedule as ``GetSchedule`` returns it, with its expression parsed."""

    group: str
    name: str
    arn: str
    expression: str
    timezone: ZoneInfo
    state: str
    target: dict[str, Any]
    action_after_completion: str | None
    start: datetime | None
    end: datetime | None
    created: datetime
    modified: Any
    recurrence: Recurrence | None = None

    @classmethod
    def from_api(cls, item: dict[str, Any]) -> StoredSchedule:
        try:
            tz = ZoneInfo(item.get("ScheduleExpressionTimezone") or "UTC")
        except ZoneInfoNotFoundError as exc:
            raise UnsupportedSchedule(f"unknown time zone {item.get('ScheduleExpressionTimezone')!r}") from exc
        schedule = cls(
            group=item.get("GroupName") or "default",
            name=item["Name"],
            arn=item.get("Arn", ""),
            expression=item["ScheduleExpression"].strip(),
            timezone=tz,
            state=item.get("State") or "ENABLED",
            target=item.get("Target") or {},
            action_after_completion=item.get("ActionAfterCompletion"),
            start=_aware(item.get("StartDate")),
            end=_aware(item.get("EndDate")),
            created=_aware(item.get("CreationDate")) or datetime.now(UTC),
            modified=item.get("LastModificationDate"),
        )
        try:
            expression = parse_expression(schedule.expression)
        except InvalidExpression as exc:
            raise UnsupportedSchedule(f"cannot read schedule expression {schedule.expression!r}: {exc}") from exc
        # A rate counts from StartDate, else from the schedule's creation (Scheduler starts it at once).
        first = schedule.start or (schedule.created if isinstance(expression, Rate) else None)
        schedule.recurrence = Recurrence(expression, tz, start=first, end=schedule.end)
        return schedule

    @property
    def one_time(self) -> bool:
        return self.recurrence is not None and isinstance(self.recurrence.expression, At)

    def due(self, since: datetime, until: datetime) -> list[datetime]:
        """Scheduled times in ``(since, until]`` (UTC), within the schedule's start and end dates.

        Recurring ones come from :mod:`massmailer.recurrence` (the project's one parser, with
        Scheduler's daylight-saving rules); a one-time schedule fires once, even if late.
        """
        recurrence = self.recurrence
        if recurrence is None:
            return []
        expression = recurrence.expression
        if isinstance(expression, At):
            at = expression.wall.replace(tzinfo=recurrence.time_zone).astimezone(UTC)
            return [at] if at <= until and (self.end is None or at <= self.end) else []
        times: list[datetime] = []
        for t in recurrence.firings(since):
            if t > until:
                break
            times.append(t)
        return times


# --------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------


@dataclass
class Firing:
    group: str
    name: str
    scheduled_time: str  # ISO 8601, UTC
    fired_at: str
    target: str
    ok: bool
    attempts: int = 1
    error: str | None = None
    deleted: bool = False
    copy: int = 1  # 2: the duplicate delivery of the ``scheduler=double`` fault


@dataclass
class _Retry:
    schedule: StoredSchedule
    scheduled: datetime
    attempts: int
    next_try: datetime


@dataclass
class SchedulerLoop:
    scheduler: Any  # boto3 "scheduler" client
    sqs: Any
    sns: Any
    tick: float = 0.5
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    fault: str | None = None  # "double": every invocation is delivered twice (at least once)
    history: list[Firing] = field(default_factory=list)
    _cache: dict[tuple[str, str], StoredSchedule] = field(default_factory=dict)
    _fired: set[tuple[str, str, str]] = field(default_factory=set)
    _retries: list[_Retry] = field(default_factory=list)
    _queue_urls: dict[str, str] = field(default_factory=dict)
    _last: datetime | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- reading schedules ----------------------------------------------------------------------
    def schedules(self) -> list[StoredSchedule]:
        """Every schedule of every group (ListSchedules without a group filter), parsed once per change."""
        found: list[StoredSchedule] = []
        seen: set[tuple[str, str]] = set()
        kwargs: dict[str, Any] = {}
        while True:
            page = self.scheduler.list_schedules(**kwargs)
            for summary in page.get("Schedules", []):
                group = summary.get("GroupName") or "default"
                key = (group, summary["Name"])
                seen.add(key)
                cached = self._cache.get(key)
                if cached is None or cached.modified != summary.get("LastModificationDate"):
                    try:
                        item = self.scheduler.get_schedule(Name=summary["Name"], GroupName=group)
                        self._cache[key] = StoredSchedule.from_api(item)
                    except UnsupportedSchedule as exc:
                        logger.warning("schedule %s/%s ignored: %s", group, summary["Name"], exc)
                        continue
                    except self.scheduler.exceptions.ResourceNotFoundException:
                        continue
                found.append(self._cache[key])
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
        for key in set(self._cache) - seen:
            del self._cache[key]
        return found

    # -- firing ---------------------------------------------------------------------------------
    def run_once(self) -> list[Firing]:
        now = self.clock()
        since = self._last or now - timedelta(seconds=self.tick)
        self._last = now
        fired: list[Firing] = []
        for schedule in self.schedules():
            if schedule.state != "ENABLED":
                continue
            for scheduled in schedule.due(since, now):
                key = (schedule.group, schedule.name, scheduled.isoformat())
                if key in self._fired:
                    continue
                self._fired.add(key)
                fired.append(self._fire(schedule, scheduled, attempt=1))
                if self.fault == DOUBLE:
                    fired.append(self._fire(schedule, scheduled, attempt=1, copy=2))
        fired += self._run_retries()
        with self._lock:
            self.history.extend(fired)
        return fired

    def _input(self, schedule: StoredSchedule, scheduled: datetime, attempt: int) -> str:
        text = schedule.target.get("Input")
        if text is None:
            text = "{}"
        replacements = {
            "<aws.scheduler.schedule-arn>": schedule.arn,
            "<aws.scheduler.scheduled-time>": scheduled.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "<aws.scheduler.execution-id>": str(uuid.uuid4()),
            "<aws.scheduler.attempt-number>": str(attempt),
        }
        for placeholder, value in replacements.items():
            text = text.replace(placeholder, value)
        return text

    def _queue_url(self, arn: str) -> str:
        if arn not in self._queue_urls:
            parts = arn.split(":")
            self._queue_urls[arn] = self.sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])[
                "QueueUrl"
            ]
        return self._queue_urls[arn]

    def _deliver(self, target: dict[str, Any], body: str) -> None:
        arn = target.get("Arn", "")
        if arn.startswith("arn:aws:sqs:"):
            extra = {}
            group_id = (target.get("SqsParameters") or {}).get("MessageGroupId")
            if group_id:
                extra["MessageGroupId"] = group_id
            self.sqs.send_message(QueueUrl=self._queue_url(arn), MessageBody=body, **extra)
        elif arn.startswith("arn:aws:sns:"):
            self.sns.publish(TopicArn=arn, Message=body)
        else:
            raise UnsupportedSchedule(f"target {arn!r} is not supported locally (SQS and SNS are)")

    def _fire(self, schedule: StoredSchedule, scheduled: datetime, attempt: int, copy: int = 1) -> Firing:
        firing = Firing(
            group=schedule.group,
            name=schedule.name,
            scheduled_time=scheduled.isoformat(),
            fired_at=self.clock().isoformat(),
            target=schedule.target.get("Arn", ""),
            ok=True,
            attempts=attempt,
            copy=copy,
        )
        try:
            self._deliver(schedule.target, self._input(schedule, scheduled, attempt))
        except Exception as exc:
            firing.ok, firing.error = False, f"{type(exc).__name__}: {exc}"
            self._retry_or_dead_letter(schedule, scheduled, attempt, firing.error)
            logger.warning("schedule %s/%s: target failed: %s", schedule.group, schedule.name, firing.error)
            return firing
        logger.info("schedule %s/%s fired for %s", schedule.group, schedule.name, firing.scheduled_time)
        if schedule.one_time and schedule.action_after_completion == "DELETE":
            try:
                self.scheduler.delete_schedule(Name=schedule.name, GroupName=schedule.group)
                firing.deleted = True
            except self.scheduler.exceptions.ResourceNotFoundException:
                firing.deleted = True  # the first of a double delivery deleted it
            except Exception:
                logger.exception("could not delete completed schedule %s/%s", schedule.group, schedule.name)
        return firing

    def _retry_or_dead_letter(self, schedule: StoredSchedule, scheduled: datetime, attempt: int, error: str) -> None:
        policy = schedule.target.get("RetryPolicy") or {}
        max_retries = int(policy.get("MaximumRetryAttempts", 185))
        max_age = float(policy.get("MaximumEventAgeInSeconds", 86400))
        age = (self.clock() - scheduled).total_seconds()
        if attempt <= max_retries and age < max_age:
            delay = min(60.0, 2.0 ** min(attempt, 6))
            self._retries.append(_Retry(schedule, scheduled, attempt + 1, self.clock() + timedelta(seconds=delay)))
            return
        dlq = (schedule.target.get("DeadLetterConfig") or {}).get("Arn")
        if not dlq:
            return
        try:
            self.sqs.send_message(
                QueueUrl=self._queue_url(dlq),
                MessageBody=self._input(schedule, scheduled, attempt),
                MessageAttributes={
                    "ERROR_CODE": {"DataType": "String", "StringValue": "TargetUnreachable"},
                    "ERROR_MESSAGE": {"DataType": "String", "StringValue": error[:256]},
                    "RETRY_ATTEMPTS": {"DataType": "Number", "StringValue": str(attempt - 1)},
                    "EXECUTION_ID": {"DataType": "String", "StringValue": str(uuid.uuid4())},
                    "SCHEDULE_ARN": {"DataType": "String", "StringValue": schedule.arn or schedule.name},
                },
            )
        except Exception:
            logger.exception("could not dead-letter schedule %s/%s", schedule.group, schedule.name)

    def _run_retries(self) -> list[Firing]:
        now = self.clock()
        due = [r for r in self._retries if r.next_try <= now]
        self._retries = [r for r in self._retries if r.next_try > now]
        return [self._fire(r.schedule, r.scheduled, r.attempts) for r in due]

    # -- lifecycle ------------------------------------------------------------------------------
    def fired(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(json.dumps(f.__dict__)) for f in self.history]

    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            try:
                self.run_once()
            except Exception:
                logger.exception("scheduler loop error")

    def start(self) -> SchedulerLoop:
        self._thread = threading.Thread(target=self._run, name="scheduler-loop", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
