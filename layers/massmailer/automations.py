"""Automations: a campaign definition that EventBridge Scheduler fires on a schedule, each firing a run.

An automation holds inline content (as a campaign's), a ``schedule`` (``massmailer.recurrence``), a
``target`` (an object key template under ``audiences/``, filled with the run's scheduled time on the
wall clock of the schedule's time zone: ``audiences/{scheduled:%Y-%m-%d}/customers.csv``), its lane,
an ``overlap`` policy (``skip``, the default, or ``queue``), ``max_lateness_seconds`` (default 900),
attachments with their policy and the bounce/complaint guard thresholds. Status ACTIVE or PAUSED.

One EventBridge Scheduler schedule per automation (``schedules.RecurringSchedules``) puts
``{"kind": "automation", "automation_id": ..., "scheduled_time": <aws.scheduler.scheduled-time>}``
on the split queue; the splitter function runs it (:func:`fire`):

* the run's id is its scheduled time (UTC), created conditionally: a double fire makes one run;
* a PAUSED automation's firing records nothing and sends nothing (a schedule is disabled on pause;
  this catches a firing already on its way);
* fired more than ``max_lateness_seconds`` after its scheduled time: SKIPPED_LATE, recorded;
* the overlap lock (on the automation's item, with a lease of ``LOCK_LEASE_SECONDS`` so a run that
  died cannot hold it for ever): while another run holds it, the new run ends SKIPPED_OVERLAP, or,
  with ``queue``, waits (at most one waiting run; it checks again every ``WAIT_RECHECK_SECONDS``);
* RUNNING: the target key is filled and a campaign created through intake's ``accept_campaign``
  (``audience_object`` = the key, tagged with the automation and run ids, idempotent on the run id,
  so a crash mid-run resumes exactly once); a missing or unusable target fails the run with the
  reason, nothing sent.

A run follows its campaign: DONE when the campaign is COMPLETED, FAIL when it FAILED or was
CANCELLED. Like the campaign's COMPLETED this is noticed, not pushed: on any read of the run or its
automation, and by the next firing of the automation, whichever comes first; then the run is written
final (a conditional write from RUNNING), its log completed and the lock released. The run log holds
the notable events: target missing, invalid rows, template variables missing (a count, per variable,
with masked example recipients), attachments missing, provider failures.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from massmailer import intake, recipients
from massmailer.addresses import mask_address
from massmailer.errors import TemplateError
from massmailer.event_rules import EventRules, automation_event_input, validate_pattern
from massmailer.models import (
    AudienceMember,
    AudienceObjectKey,
    CampaignRequest,
    CampaignStatus,
    Content,
    CustomHeaders,
    EmailAddress,
    GuardThresholds,
    HeaderText,
    Lane,
    Status,
)
from massmailer.recurrence import Schedule, next_runs
from massmailer.rendering import compile_content
from massmailer.schedules import RecurringSchedules
from massmailer.spec import SPLIT_QUEUE
from massmailer.store.automations import (
    FINAL_RUN,
    RUN_MOVES,
    AutomationRun,
    Automations,
    AutomationStatus,
    RunMove,
    RunStatus,
    StoredAutomation,
    run_id_of,
)

logger = logging.getLogger(__name__)

LOCK_LEASE_SECONDS = 6 * 3600  # a run's hold on the overlap lock, at most (a crashed run's ends here)
WAIT_RECHECK_SECONDS = 60  # a waiting run (overlap "queue") looks at the lock again this often
NEXT_RUNS = 5
LOG_EXAMPLES = 3  # example recipients per log event (masked)
SCAN_BUDGET = 10_000  # failed recipients examined when a run settles, for its log
_TARGET_FIELD = re.compile(r"\{scheduled(?::([^{}]*))?\}")
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
_SAMPLE_TIME = datetime(2031, 12, 31, 23, 59, 58, tzinfo=UTC)


class AutomationConflict(Exception):
    """The move is not allowed from the automation's state, or it changed meanwhile (409)."""


class UnknownAutomation(intake.NotFound):
    """No automation (or run) has this id (404)."""


def fill_target(template: str, scheduled: datetime) -> str:
    """The target key for a run: each ``{scheduled:<strftime format>}`` (``{scheduled}``: the ISO
    date) replaced by the scheduled time as given (on its time zone's wall clock)."""
    if any(c in _TARGET_FIELD.sub("", template) for c in "{}"):
        raise ValueError("only {scheduled} or {scheduled:<strftime format>} may appear in braces")
    return _TARGET_FIELD.sub(
        lambda m: scheduled.strftime(m.group(1)) if m.group(1) else scheduled.date().isoformat(), template
    )


_AUDIENCE_KEY: TypeAdapter[str] = TypeAdapter(AudienceObjectKey)


class AutomationSpec(Content):
    """``POST /v1/automations`` (and what PATCH merges into): everything but the status."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1, max_length=200)
    # Recurring: a schedule and its target. Real-time: neither (POST …/trigger), and optionally an
    # event pattern on the stage's bus with where the event's detail holds the recipient/variables.
    schedule: Schedule | None = None
    target: str | None = Field(default=None, min_length=1, max_length=1024)
    event_pattern: dict[str, Any] | None = None
    recipient_path: str = Field(default="email", min_length=1, max_length=256, pattern=r"^[^.]+(\.[^.]+)*$")
    variables_path: str | None = Field(default=None, min_length=1, max_length=256, pattern=r"^[^.]+(\.[^.]+)*$")
    priority: Lane = Lane.LOW
    overlap: Literal["skip", "queue"] = "skip"
    max_lateness_seconds: int = Field(default=900, ge=0, le=86_400)
    guard: GuardThresholds | None = None
    from_address: EmailAddress | None = Field(default=None, alias="from")
    from_name: HeaderText | None = None
    reply_to: EmailAddress | None = None
    headers: CustomHeaders = Field(default_factory=dict)

    @field_validator("target")
    @classmethod
    def _target_template(cls, value: str | None) -> str | None:
        if value is None:
            return value
        filled = fill_target(value, _SAMPLE_TIME)
        try:
            _AUDIENCE_KEY.validate_python(filled)
        except ValidationError as exc:
            raise ValueError(f"filled, {filled!r} {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None
        return value

    @field_validator("event_pattern")
    @classmethod
    def _pattern(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            validate_pattern(value)  # InvalidEventPattern (a ValueError): 422 on event_pattern
        return value

    @model_validator(mode="after")
    def _kind(self) -> AutomationSpec:
        if (self.schedule is None) != (self.target is None):
            raise ValueError("'schedule' and 'target' go together (a recurring automation needs both)")
        if self.schedule is not None and self.event_pattern is not None:
            raise ValueError("give 'schedule' (recurring) or 'event_pattern' (event-triggered), not both")
        return self

    def scheduled_local(self, scheduled: datetime) -> datetime:
        return scheduled.astimezone(ZoneInfo(self.schedule.time_zone if self.schedule else "UTC"))


class AutomationFire(BaseModel):
    """The split-queue message that fires (or re-checks) a run."""

    kind: Literal["automation"] = "automation"
    automation_id: str
    scheduled_time: datetime
    trigger: Literal["schedule", "run-now"] = "schedule"

    @field_validator("scheduled_time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass
class AutomationContext:
    automations: Automations
    intake: intake.IntakeContext  # campaigns, queue, blobs, idempotency: a run's campaign is accepted there
    schedules: RecurringSchedules | None  # None in the splitter (it never manages schedules)
    rules: EventRules | None = None  # the stage bus's rules (event-triggered automations); ingest only
    split_queue_arn: str | None = None  # what the rules target


def schedule_name(automation_id: str) -> str:
    return f"automation-{automation_id}"


def _now() -> datetime:
    return datetime.now(UTC)


def _ts(moment: float | None) -> str | None:
    return recipients.api_time(moment)


def _spec(stored: StoredAutomation) -> AutomationSpec:
    return AutomationSpec.model_validate(stored.spec)


def _fire_body(automation_id: str) -> str:
    # Scheduler fills the placeholder in when it fires (AutomationFire parses the result)
    return json.dumps({"kind": "automation", "automation_id": automation_id, "scheduled_time": SCHEDULED_TIME})


def _sync_rule(ctx: AutomationContext, stored: StoredAutomation, spec: AutomationSpec) -> None:
    """An ACTIVE automation with an event pattern has its rule; otherwise it has none (pause deletes
    it: moto delivers to DISABLED rules)."""
    active = spec.event_pattern is not None and stored.status == AutomationStatus.ACTIVE
    if ctx.rules is None or ctx.split_queue_arn is None:
        if active:
            raise RuntimeError("event-triggered automations are not configured (no event bus)")
        return
    if active and spec.event_pattern is not None:
        input_template = automation_event_input(stored.automation_id)
        ctx.rules.put(stored.automation_id, spec.event_pattern, ctx.split_queue_arn, input_template, event_id=True)
    else:
        ctx.rules.delete(stored.automation_id)


def _sync_schedule(ctx: AutomationContext, stored: StoredAutomation, spec: AutomationSpec, *, update: bool) -> None:
    _sync_rule(ctx, stored, spec)
    if ctx.schedules is None:
        raise RuntimeError("scheduling is not configured")
    if spec.schedule is None:  # real-time: no schedule (one left by a PATCH that removed it goes)
        if update:
            ctx.schedules.delete(schedule_name(stored.automation_id))
        return
    expression, time_zone = spec.schedule.scheduler_expression()
    ctx.schedules.recurring(
        schedule_name(stored.automation_id),
        expression,
        time_zone,
        SPLIT_QUEUE.key,
        _fire_body(stored.automation_id),
        enabled=stored.status == AutomationStatus.ACTIVE,
        update=update,
    )


# -- the API ----------------------------------------------------------------------------------------


def create(ctx: AutomationContext, spec: AutomationSpec, idempotency_key: str | None = None) -> dict[str, Any]:
    """``POST /v1/automations``: the automation, then its schedule (a retry with the same
    Idempotency-Key finishes a create that died between the two)."""
    compile_content(spec)  # a template that does not compile is the caller's error (422)
    if idempotency_key:
        automation_id = f"aut-{hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]}"
    else:
        automation_id = f"aut-{uuid.uuid4().hex[:24]}"
    now = _now().timestamp()
    stored = StoredAutomation(
        automation_id=automation_id,
        name=spec.name,
        status=AutomationStatus.ACTIVE,
        spec=spec.model_dump(mode="json", by_alias=True),
        created_at=now,
        updated_at=now,
    )
    if not ctx.automations.create(stored):
        earlier = ctx.automations.get(automation_id)
        if earlier is None or earlier.spec != stored.spec:
            raise intake.Conflict("Idempotency-Key was already used with a different request body")
        stored = earlier
    _sync_schedule(ctx, stored, spec, update=False)
    return view(ctx, automation_id)


def _get(ctx: AutomationContext, automation_id: str) -> StoredAutomation:
    stored = ctx.automations.get(automation_id)
    if stored is None:
        raise UnknownAutomation(f"automation {automation_id} not found")
    return stored


def view(ctx: AutomationContext, automation_id: str, stored: StoredAutomation | None = None) -> dict[str, Any]:
    """``GET /v1/automations/{id}``: the definition, status, next five runs (none while PAUSED) and
    the last run (settled first if its campaign has)."""
    stored = stored or _get(ctx, automation_id)
    spec = _spec(stored)
    last = None
    if stored.last_run_id:
        run = ctx.automations.get_run(automation_id, stored.last_run_id)
        last = run_view(ctx, settle(ctx, stored, run)) if run else None
    upcoming: list[datetime] = []
    if stored.status == AutomationStatus.ACTIVE and spec.schedule is not None:
        start = datetime.fromtimestamp(stored.created_at, UTC)
        upcoming = next_runs(spec.schedule, _now(), NEXT_RUNS, start=start)
    return {
        "automation_id": stored.automation_id,
        "status": stored.status.value,
        **spec.model_dump(mode="json", by_alias=True),
        "schedule_expression": spec.schedule.scheduler_expression()._asdict() if spec.schedule else None,
        "created_at": _ts(stored.created_at),
        "updated_at": _ts(stored.updated_at),
        "next_run": intake._utc(upcoming[0]) if upcoming else None,
        "next_runs": [intake._utc(t) for t in upcoming],
        "last_run": last,
    }


def list_automations(ctx: AutomationContext, limit: str | None = None, cursor: str | None = None) -> dict[str, Any]:
    """``GET /v1/automations``: newest first, paginated like the campaigns (``limit``, ``cursor``)."""
    size = intake._limit(limit)
    after = str(intake._decode_cursor(cursor, {"after": str})["after"]) if cursor else None
    page = ctx.automations.list(size, after)
    items = [
        {
            "automation_id": a.automation_id,
            "name": a.name,
            "status": a.status.value,
            "schedule": a.spec.get("schedule"),
            "created_at": _ts(a.created_at),
            "last_run_id": a.last_run_id,
        }
        for a in page.items
    ]
    return {"items": items, "next_cursor": intake._encode_cursor({"after": page.after}) if page.after else None}


def patch(ctx: AutomationContext, automation_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    """``PATCH``: the fields given replace the stored ones (validated as a whole, 422 naming the
    field), then ``UpdateSchedule``. Status changes go through pause/resume."""
    stored = _get(ctx, automation_id)
    spec = AutomationSpec.model_validate({**stored.spec, **changes})  # ValidationError → 422
    compile_content(spec)
    data = spec.model_dump(mode="json", by_alias=True)
    sets = {"spec": data, "name": spec.name, "updated_at": _now().timestamp()}
    if not ctx.automations.update(automation_id, stored.version, sets):
        raise AutomationConflict(f"automation {automation_id} changed meanwhile: read it again and retry")
    stored.spec, stored.name, stored.version = data, spec.name, stored.version + 1
    _sync_schedule(ctx, stored, spec, update=True)
    return view(ctx, automation_id)


def delete(ctx: AutomationContext, automation_id: str) -> None:
    """``DELETE``: the automation and its runs, then its schedule (a firing on its way finds no
    automation and does nothing)."""
    stored = _get(ctx, automation_id)
    if not ctx.automations.delete(automation_id, stored.version):
        raise AutomationConflict(f"automation {automation_id} changed meanwhile: read it again and retry")
    if ctx.schedules is None:
        raise RuntimeError("scheduling is not configured")
    ctx.schedules.delete(schedule_name(automation_id))
    if ctx.rules is not None:
        ctx.rules.delete(automation_id)


def _set_status(ctx: AutomationContext, automation_id: str, target: AutomationStatus) -> dict[str, Any]:
    source = AutomationStatus.PAUSED if target == AutomationStatus.ACTIVE else AutomationStatus.ACTIVE
    stored = _get(ctx, automation_id)
    if stored.status == target:
        _sync_schedule(ctx, stored, _spec(stored), update=True)  # finish a move that died before its schedule
        verb = "pause" if target == AutomationStatus.PAUSED else "resume"
        raise AutomationConflict(f"cannot {verb} a {stored.status.value} automation")
    sets = {"status": target, "updated_at": _now().timestamp()}
    if not ctx.automations.update(automation_id, stored.version, sets, from_status=source):
        raise AutomationConflict(f"automation {automation_id} changed meanwhile: read it again and retry")
    stored.status, stored.version = target, stored.version + 1
    _sync_schedule(ctx, stored, _spec(stored), update=True)
    return view(ctx, automation_id)


def pause(ctx: AutomationContext, automation_id: str) -> dict[str, Any]:
    """PAUSE: ACTIVE → PAUSED, the schedule DISABLED. A run in progress carries on (its campaign can
    be paused by itself)."""
    return _set_status(ctx, automation_id, AutomationStatus.PAUSED)


def resume(ctx: AutomationContext, automation_id: str) -> dict[str, Any]:
    return _set_status(ctx, automation_id, AutomationStatus.ACTIVE)


def run_now(ctx: AutomationContext, automation_id: str) -> dict[str, Any]:
    """``POST …/run-now``: a firing for now (to the second), through the split queue like Scheduler's.
    A PAUSED automation does not run (409)."""
    stored = _get(ctx, automation_id)
    if stored.status != AutomationStatus.ACTIVE:
        raise AutomationConflict(f"automation {automation_id} is {stored.status.value}: resume it to run it")
    if stored.spec.get("target") is None:
        raise AutomationConflict(f"automation {automation_id} has no schedule and target: trigger it instead")
    scheduled = _now().replace(microsecond=0)
    message = AutomationFire(automation_id=automation_id, scheduled_time=scheduled, trigger="run-now")
    ctx.intake.queue.send(SPLIT_QUEUE.key, [message.model_dump_json()])
    return {"automation_id": automation_id, "run_id": run_id_of(scheduled), "scheduled_time": intake._utc(scheduled)}


def list_runs(
    ctx: AutomationContext, automation_id: str, limit: str | None = None, cursor: str | None = None
) -> dict[str, Any]:
    """``GET …/runs``: newest first (by scheduled time), paginated; without the logs."""
    stored = _get(ctx, automation_id)
    size = intake._limit(limit)
    after = str(intake._decode_cursor(cursor, {"after": str})["after"]) if cursor else None
    page = ctx.automations.list_runs(automation_id, size, after)
    items = []
    for run in page.items:
        shown = run_view(ctx, settle(ctx, stored, run))
        shown.pop("log")
        items.append(shown)
    return {"items": items, "next_cursor": intake._encode_cursor({"after": page.after}) if page.after else None}


def get_run(ctx: AutomationContext, automation_id: str, run_id: str) -> dict[str, Any]:
    """``GET …/runs/{run_id}``: the run, with its counts and its log."""
    stored = _get(ctx, automation_id)
    run = ctx.automations.get_run(automation_id, run_id)
    if run is None:
        raise UnknownAutomation(f"run {run_id} of automation {automation_id} not found")
    return run_view(ctx, settle(ctx, stored, run))


def run_view(ctx: AutomationContext, run: AutomationRun) -> dict[str, Any]:
    counts = run.counts
    if run.status == RunStatus.RUNNING and run.campaign_id:
        found = ctx.intake.campaigns.get_campaign(run.campaign_id)
        counts = found.counts.model_dump() if found else counts
    return {
        "run_id": run.run_id,
        "automation_id": run.automation_id,
        "status": run.status.value,
        "trigger": run.trigger,
        "scheduled_time": _ts(run.scheduled_time),
        "fired_at": _ts(run.fired_at),
        "started_at": _ts(run.started_at),
        "ended_at": _ts(run.ended_at),
        "campaign_id": run.campaign_id,
        "reason": run.reason,
        "counts": counts,
        "warnings": sum(int(e.get("count", 0)) for e in run.log if e.get("level") == "warning"),
        "log": run.log,
    }


# -- real-time: triggers ---------------------------------------------------------------------------

MAX_TRIGGER_RECIPIENTS = 1000


class TriggerRequest(BaseModel):
    """``POST /v1/automations/{id}/trigger``: 1 to 1,000 recipients, each with its variables."""

    model_config = ConfigDict(extra="forbid")

    recipients: list[AudienceMember] = Field(min_length=1, max_length=MAX_TRIGGER_RECIPIENTS)


def _campaign_request(spec: AutomationSpec, name: str, **audience: Any) -> CampaignRequest:
    """The automation's content, lane, guard and sender as a campaign with the audience given."""
    content = {field: getattr(spec, field) for field in Content.model_fields}
    return CampaignRequest.model_validate(
        {
            **content,
            "name": name[:200],
            **audience,
            "priority": spec.priority,
            "guard": spec.guard,
            "from": spec.from_address,
            "from_name": spec.from_name,
            "reply_to": spec.reply_to,
            "headers": spec.headers,
        }
    )


def trigger(
    ctx: AutomationContext, automation_id: str, request: TriggerRequest, idempotency_key: str | None = None
) -> intake.Accepted:
    """``POST …/trigger``: the recipients get the automation's content now, on its lane.

    A trigger is a campaign (inline audience) tagged with the automation and a run id ``trg-…``, so
    it has what a campaign has: counts, pause/cancel, the guard, unsubscribe links, exactly-once per
    recipient. It is not a scheduled run (no overlap lock, no lateness, not in ``…/runs``): triggers
    of one automation may overlap. The Idempotency-Key is the trigger's (scope ``automation-trigger``,
    the automation id and the recipients hashed): a retry gets the first answer, the same campaign."""
    stored = _get(ctx, automation_id)
    if stored.status != AutomationStatus.ACTIVE:
        raise AutomationConflict(f"automation {automation_id} is {stored.status.value}: resume it to trigger it")
    spec = _spec(stored)
    compile_content(spec)
    body = {"automation_id": automation_id, **request.model_dump(mode="json")}
    ids = {"campaign_id": intake._new_id("cmp"), "run_id": f"trg-{uuid.uuid4().hex[:24]}"}

    def work(ids: dict[str, str]) -> dict[str, Any]:
        campaign = _campaign_request(spec, f"{spec.name} {ids['run_id']}", audience=request.recipients)
        tags = {"automation_id": automation_id, "run_id": ids["run_id"]}
        answer = intake._create_campaign(ctx.intake, campaign, ids["campaign_id"], tags)
        logger.info(
            "automation triggered",
            extra={"automation_id": automation_id, "run_id": ids["run_id"], "recipients": len(request.recipients)},
        )
        return {"automation_id": automation_id, "run_id": ids["run_id"], **answer}

    return intake._idempotent(ctx.intake, "automation-trigger", idempotency_key, body, ids, work)


class AutomationEvent(BaseModel):
    """The split-queue message a matching bus event becomes (``event_rules.input_transformer``)."""

    kind: Literal["automation_event"] = "automation_event"
    automation_id: str
    detail: Any = None
    event_id: str | None = None


def _at_path(detail: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(detail, dict) or part not in detail:
            return None
        detail = detail[part]
    return detail


def on_event(ctx: AutomationContext, event: AutomationEvent) -> str:
    """A bus event that matched an automation's rule: a one-recipient trigger, idempotent on the
    event's id (EventBridge delivers at least once). An event whose detail has no usable recipient
    is logged (masked, no detail) and dropped: retrying it cannot make it usable."""
    stored = ctx.automations.get(event.automation_id)
    if stored is None:
        return "unknown"
    if stored.status != AutomationStatus.ACTIVE:
        return "paused"  # its rule is gone; this one was on its way
    spec = _spec(stored)
    if spec.event_pattern is None:
        return "not_event_triggered"
    recipient = _at_path(event.detail, spec.recipient_path)
    variables = _at_path(event.detail, spec.variables_path) if spec.variables_path else None
    try:
        request = TriggerRequest.model_validate(
            {"recipients": [{"email": recipient, "variables": {} if variables is None else variables}]}
        )
    except ValidationError as exc:
        fields = sorted({".".join(map(str, e["loc"][2:])) or "recipient" for e in exc.errors()})
        logger.warning(
            "automation event without a usable recipient",
            extra={"automation_id": event.automation_id, "event_id": event.event_id, "fields": fields},
        )
        return "invalid_event"
    key = f"event:{event.event_id}" if event.event_id else None
    answer = trigger(ctx, event.automation_id, request, key)
    return "replayed" if answer.replayed else "triggered"


# -- a run ------------------------------------------------------------------------------------------


def _event(event: str, message: str, level: str = "info", **detail: Any) -> dict[str, Any]:
    return {"at": _ts(_now().timestamp()), "event": event, "level": level, "message": message, **detail}


def _move(ctx: AutomationContext, run: AutomationRun, move: RunMove, sets: dict[str, Any]) -> bool:
    """One of the run's moves (``RUN_MOVES``): a conditional write from its sources; False when the
    run was not in one of them (another worker moved it first)."""
    sources, target = RUN_MOVES[move]
    return ctx.automations.update_run(
        run.automation_id, run.run_id, {**sets, **({"status": target} if target else {})}, sources
    )


def _end(
    ctx: AutomationContext, run: AutomationRun, move: RunMove, reason: str | None, events: list[dict[str, Any]]
) -> bool:
    """End the run by ``move`` with its reason and log events; False when another worker moved it first."""
    log = [*run.log, *events]
    ended = _move(ctx, run, move, {"reason": reason, "ended_at": _now().timestamp(), "log": log})
    if ended:
        run.reason, run.log = reason, log
    return ended


def _release(ctx: AutomationContext, run: AutomationRun) -> None:
    """Release the run's lock; a waiting run is fired again at once to take it."""
    waiting = ctx.automations.unlock(run.automation_id, run.run_id)
    if isinstance(waiting, str):
        stored_time = _run_time(waiting)
        message = AutomationFire(automation_id=run.automation_id, scheduled_time=stored_time)
        ctx.intake.queue.send(SPLIT_QUEUE.key, [message.model_dump_json()])


def _run_time(run_id: str) -> datetime:
    return datetime.strptime(run_id, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def _failure_events(ctx: AutomationContext, campaign_id: str) -> list[dict[str, Any]]:
    """The run log's summary of the recipients that failed: template variables missing (per
    variable), attachments missing, provider failures; each with a count and masked examples."""
    kinds: dict[str, Counter[str]] = {"template": Counter(), "attachment": Counter(), "provider": Counter()}
    examples: dict[str, list[str]] = {k: [] for k in kinds}
    walked = recipients.walk(ctx.intake.campaigns, ctx.intake.messages, campaign_id, Status.FAILED, budget=SCAN_BUDGET)
    for item, _ in walked:
        if item is None:
            continue
        error = str(item.get("last_error") or "")
        if error.startswith("template variable missing"):
            kind, detail = "template", _variable_name(error)
        elif "attachment" in error.lower():
            kind, detail = "attachment", error
        else:
            kind, detail = "provider", error.split(":")[0]
        kinds[kind][detail] += 1
        if len(examples[kind]) < LOG_EXAMPLES:
            examples[kind].append(mask_address(str(item.get("email", ""))))
    events = []
    if kinds["template"]:
        total = sum(kinds["template"].values())
        names = ", ".join(sorted(kinds["template"]))
        events.append(
            _event(
                "template_variable_missing",
                f"{total} recipient(s) failed: template variable missing ({names})",
                "warning",
                count=total,
                variables=dict(kinds["template"]),
                examples=examples["template"],
            )
        )
    if kinds["attachment"]:
        total = sum(kinds["attachment"].values())
        events.append(
            _event(
                "attachment_missing",
                f"{total} recipient(s) failed on attachments",
                "warning",
                count=total,
                examples=examples["attachment"],
            )
        )
    if kinds["provider"]:
        total = sum(kinds["provider"].values())
        events.append(
            _event(
                "provider_failures",
                f"{total} recipient(s) failed at the provider",
                "warning",
                count=total,
                reasons=dict(kinds["provider"]),
                examples=examples["provider"],
            )
        )
    return events


def _variable_name(error: str) -> str:
    found = re.search(r"'([^']+)' is undefined", error)
    return found.group(1) if found else error.removeprefix("template variable missing: ")


def settle(ctx: AutomationContext, stored: StoredAutomation, run: AutomationRun) -> AutomationRun:
    """A RUNNING run whose campaign has ended is written DONE (COMPLETED) or FAIL (FAILED,
    CANCELLED), with its counts and log, and its lock released. Else the run as it is."""
    if run.status != RunStatus.RUNNING or not run.campaign_id:
        return run
    found = ctx.intake.campaigns.get_campaign(run.campaign_id)
    if found is None:
        return run
    status = intake.reported_status(found)
    if status not in (CampaignStatus.COMPLETED, CampaignStatus.FAILED, CampaignStatus.CANCELLED):
        return run
    counts = found.counts.model_dump()
    events = []
    if found.counts.invalid:
        events.append(
            _event(
                "invalid_rows",
                f"{found.counts.invalid} row(s) without a valid address",
                "warning",
                count=found.counts.invalid,
            )
        )
    if found.counts.failed:
        events.extend(_failure_events(ctx, run.campaign_id))
    final = RunStatus.DONE if status == CampaignStatus.COMPLETED else RunStatus.FAIL
    reason = None if final == RunStatus.DONE else f"campaign {status.value}: {found.campaign.last_error}"
    events.append(_event("ended", f"campaign {status.value}; run {final.value}"))
    sets = {"reason": reason, "counts": counts, "ended_at": _now().timestamp(), "log": [*run.log, *events]}
    if _move(ctx, run, RunMove.FINISH if final == RunStatus.DONE else RunMove.FINISH_FAILED, sets):
        _release(ctx, run)
    return ctx.automations.get_run(run.automation_id, run.run_id) or run


def fire(ctx: AutomationContext, message: AutomationFire, now: datetime | None = None) -> str:
    """Run (or resume, or re-check) one firing; returns what became of it (for the log)."""
    moment = now or _now()
    automation_id = message.automation_id
    stored = ctx.automations.get(automation_id)
    if stored is None:
        logger.info("automation fired after its deletion", extra={"automation_id": automation_id})
        return "unknown"
    spec = _spec(stored)
    if spec.target is None:
        logger.info("a real-time automation fired on a schedule", extra={"automation_id": automation_id})
        return "no_schedule"
    scheduled = message.scheduled_time
    run_id = run_id_of(scheduled)
    run = ctx.automations.get_run(automation_id, run_id)
    if run is None:
        if stored.status == AutomationStatus.PAUSED:
            return "paused"  # not recorded: a paused automation has no runs
        late = (moment - scheduled).total_seconds() - spec.max_lateness_seconds
        fresh = AutomationRun(
            automation_id=automation_id,
            run_id=run_id,
            scheduled_time=scheduled.timestamp(),
            status=RunStatus.WAITING,
            fired_at=moment.timestamp(),
            trigger=message.trigger,
        )
        if message.trigger == "schedule" and late > 0:
            fresh.status, fresh.ended_at = RunStatus.SKIPPED_LATE, moment.timestamp()
            fresh.reason = (
                f"fired {int(late + spec.max_lateness_seconds)} s after its scheduled time "
                f"(max lateness {spec.max_lateness_seconds} s)"
            )
            fresh.log = [_event("late", fresh.reason, "warning")]
        created = ctx.automations.create_run(fresh)
        # a double fire: the first made the run
        run = fresh if created else (ctx.automations.get_run(automation_id, run_id) or fresh)
    if run.status in FINAL_RUN:
        return run.status.value.lower()
    if run.status == RunStatus.RUNNING and run.campaign_id:
        settle(ctx, stored, run)
        return "running"
    if not _take_lock(ctx, stored, run_id):
        return _overlapping(ctx, stored, spec, run)
    return _start(ctx, spec, run, scheduled)


def _take_lock(ctx: AutomationContext, stored: StoredAutomation, run_id: str) -> bool:
    if ctx.automations.lock(stored.automation_id, run_id, LOCK_LEASE_SECONDS):
        return True
    current = ctx.automations.get(stored.automation_id)
    holder = current.lock_run if current else None
    if holder and holder != run_id:  # the holder's campaign may have ended unnoticed: settle it
        held = ctx.automations.get_run(stored.automation_id, holder)
        if held is not None and settle(ctx, stored, held).status in FINAL_RUN:
            ctx.automations.unlock(stored.automation_id, holder)  # its own release died half-way, or ran just now
            return ctx.automations.lock(stored.automation_id, run_id, LOCK_LEASE_SECONDS)
    return False


def _overlapping(ctx: AutomationContext, stored: StoredAutomation, spec: AutomationSpec, run: AutomationRun) -> str:
    current = ctx.automations.get(stored.automation_id)
    holder = current.lock_run if current else None
    if spec.overlap == "queue" and ctx.automations.wait(stored.automation_id, run.run_id):
        if not any(e.get("event") == "waiting" for e in run.log):
            waiting = _event("waiting", f"run {holder} is RUNNING: waiting for it to end")
            _move(ctx, run, RunMove.NOTE, {"log": [*run.log, waiting]})
        recheck = AutomationFire(automation_id=run.automation_id, scheduled_time=_run_time(run.run_id))
        ctx.intake.queue.send(SPLIT_QUEUE.key, [recheck.model_dump_json()], delay_seconds=WAIT_RECHECK_SECONDS)
        return "waiting"
    reason = f"run {holder} of this automation was RUNNING (overlap {spec.overlap})"
    _end(ctx, run, RunMove.SKIP_OVERLAP, reason, [_event("overlap", reason, "warning")])
    return "skipped_overlap"


def _start(ctx: AutomationContext, spec: AutomationSpec, run: AutomationRun, scheduled: datetime) -> str:
    """RUNNING: fill the target, accept the campaign (idempotent on the run), record it."""
    automation_id, run_id = run.automation_id, run.run_id
    if run.status == RunStatus.WAITING:
        if not _move(ctx, run, RunMove.START, {"started_at": _now().timestamp()}):
            return "held"
        run.status = RunStatus.RUNNING
    key = fill_target(spec.target or "", spec.scheduled_local(scheduled))
    request = _campaign_request(spec, f"{spec.name} {run_id}", audience_object=key)
    try:
        accepted = intake.accept_campaign(
            ctx.intake,
            request,
            idempotency_key=f"automation-run:{automation_id}:{run_id}",
            tags={"automation_id": automation_id, "run_id": run_id},
        )
    except (intake.UnusableAudience, TemplateError) as exc:
        event = "target_missing" if isinstance(exc, intake.UnusableAudience) else "template_error"
        reason = f"target unusable: {exc}" if event == "target_missing" else str(exc)
        if _end(ctx, run, RunMove.FAIL, reason, [_event(event, reason, "error", target=key)]):
            _release(ctx, run)
        logger.info("automation run failed", extra={"automation_id": automation_id, "run_id": run_id, "why": event})
        return "fail"
    campaign_id = str(accepted.body["campaign_id"])
    started = _event("campaign", f"campaign {campaign_id} created from {key}", target=key, campaign_id=campaign_id)
    _move(ctx, run, RunMove.NOTE, {"campaign_id": campaign_id, "log": [*run.log, started]})
    logger.info("automation run started", extra={"automation_id": automation_id, "run_id": run_id})
    return "running"
