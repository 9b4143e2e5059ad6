"""Automations and their runs: one item per automation (``AUTOMATION#<id>`` / ``AUTOMATION``, listed
through GSI1 under ``AUTOMATIONS``) and one per run in the same partition (``RUN#<run id>``; a run id
is the scheduled time as fixed-width UTC text, so the runs sort by time and a second fire of the same
scheduled time finds the first run).

Every state change is a conditional write:

* ``create``/``create_run`` write only a new id (a double fire makes one run);
* ``update`` holds only at the ``version`` the caller read (PATCH, pause, resume, delete: two racing
  operators cannot both win) and, for pause/resume, from the status the move starts from;
* ``update_run`` holds only from the run statuses the move starts from;
* the overlap lock (``lock``/``unlock``) lives on the automation's item: it is taken when no run
  holds it, its lease has expired, or the caller's run already holds it (a redelivered fire resumes
  its own run); ``wait``/``unlock`` keep at most one waiting run (overlap ``queue``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from massmailer.store import keys
from massmailer.store.dynamo import Clock, DynamoRepository, plain
from massmailer.store.keys import AUTOMATION_LIST, RUN_PREFIX, automation_key, automation_list_sort, run_key
from massmailer.store.keys import automation_partition as partition
from massmailer.store.memory import InMemoryRepository, Meter


class AutomationStatus(StrEnum):
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"


class RunStatus(StrEnum):
    WAITING = "WAITING"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAIL = "FAIL"
    SKIPPED_OVERLAP = "SKIPPED_OVERLAP"
    SKIPPED_LATE = "SKIPPED_LATE"


FINAL_RUN = frozenset({RunStatus.DONE, RunStatus.FAIL, RunStatus.SKIPPED_OVERLAP, RunStatus.SKIPPED_LATE})


class RunMove(StrEnum):
    """A run's moves; each is one conditional write whose condition is its sources (``RUN_MOVES``).
    A run is created WAITING, or SKIPPED_LATE (fired too late); the rest follows from here."""

    START = "start"  # it holds the overlap lock
    NOTE = "note"  # a log entry (and the campaign id) while it waits or runs
    SKIP_OVERLAP = "skip_overlap"  # another run holds the lock
    FAIL = "fail"  # target missing or unusable, template does not compile
    FINISH = "finish"  # its campaign COMPLETED
    FINISH_FAILED = "finish_failed"  # its campaign FAILED or was CANCELLED


W, R = RunStatus.WAITING, RunStatus.RUNNING
RUN_MOVES: dict[RunMove, tuple[frozenset[RunStatus], RunStatus | None]] = {
    RunMove.START: (frozenset({W}), R),
    RunMove.NOTE: (frozenset({W, R}), None),  # None: the status stays
    RunMove.SKIP_OVERLAP: (frozenset({W}), RunStatus.SKIPPED_OVERLAP),
    RunMove.FAIL: (frozenset({W, R}), RunStatus.FAIL),
    RunMove.FINISH: (frozenset({R}), RunStatus.DONE),
    RunMove.FINISH_FAILED: (frozenset({R}), RunStatus.FAIL),
}


@dataclass
class StoredAutomation:
    automation_id: str
    name: str
    status: AutomationStatus
    spec: dict[str, Any]  # the automation's definition (massmailer.automations.AutomationSpec, as JSON data)
    created_at: float
    updated_at: float
    version: int = 1
    lock_run: str | None = None  # the run holding the overlap lock
    lock_until: float = 0.0  # its lease
    waiting_run: str | None = None  # overlap "queue": the one run waiting for the lock
    last_run_id: str | None = None


@dataclass
class AutomationRun:
    automation_id: str
    run_id: str
    scheduled_time: float
    status: RunStatus
    fired_at: float
    trigger: str = "schedule"  # "schedule" | "run-now"
    started_at: float | None = None
    ended_at: float | None = None
    campaign_id: str | None = None
    reason: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Page:
    items: list[Any]
    after: str | None  # where the next page starts (None: this was the last)


# What ``update`` and ``update_run`` may set (None removes the attribute).
AUTOMATION_FIELDS = ("name", "status", "spec", "updated_at", "last_run_id")
RUN_FIELDS = ("status", "started_at", "ended_at", "campaign_id", "reason", "counts", "log")
_JSON_FIELDS = ("spec", "counts", "log")


def run_id_of(scheduled: datetime) -> str:
    """A run's id: its scheduled time, fixed-width UTC to the second (sorts as it reads)."""
    return scheduled.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


class Automations(Protocol):
    def create(self, automation: StoredAutomation) -> bool: ...
    def get(self, automation_id: str) -> StoredAutomation | None: ...
    def list(self, limit: int, after: str | None = None) -> Page: ...
    def update(
        self, automation_id: str, version: int, sets: Mapping[str, Any], from_status: AutomationStatus | None = None
    ) -> bool: ...
    def delete(self, automation_id: str, version: int) -> bool: ...
    def lock(self, automation_id: str, run_id: str, lease_seconds: float) -> bool: ...
    def wait(self, automation_id: str, run_id: str) -> bool: ...
    def unlock(self, automation_id: str, run_id: str) -> str | None | bool: ...
    def create_run(self, run: AutomationRun) -> bool: ...
    def get_run(self, automation_id: str, run_id: str) -> AutomationRun | None: ...
    def list_runs(self, automation_id: str, limit: int, after: str | None = None) -> Page: ...
    def update_run(
        self, automation_id: str, run_id: str, sets: Mapping[str, Any], from_statuses: frozenset[RunStatus]
    ) -> bool: ...


def _check(sets: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = set(sets) - set(allowed)
    if unknown:
        raise ValueError(f"not a settable field: {sorted(unknown)}")


def _stored(value: Any, name: str) -> Any:
    if name in _JSON_FIELDS:
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, float):
        return Decimal(str(value))
    return value


def _automation_from(item: Mapping[str, Any]) -> StoredAutomation:
    data = plain(dict(item))
    return StoredAutomation(
        automation_id=data["automation_id"],
        name=data["name"],
        status=AutomationStatus(data["status"]),
        spec=json.loads(data["spec"]),
        created_at=float(data["created_at"]),
        updated_at=float(data["updated_at"]),
        version=int(data["version"]),
        lock_run=data.get("lock_run"),
        lock_until=float(data.get("lock_until", 0)),
        waiting_run=data.get("waiting_run"),
        last_run_id=data.get("last_run_id"),
    )


def _run_from(item: Mapping[str, Any]) -> AutomationRun:
    data = plain(dict(item))
    return AutomationRun(
        automation_id=data["automation_id"],
        run_id=data["run_id"],
        scheduled_time=float(data["scheduled_time"]),
        status=RunStatus(data["status"]),
        fired_at=float(data["fired_at"]),
        trigger=data.get("trigger", "schedule"),
        started_at=data.get("started_at"),
        ended_at=data.get("ended_at"),
        campaign_id=data.get("campaign_id"),
        reason=data.get("reason"),
        counts=json.loads(data["counts"]) if data.get("counts") else {},
        log=json.loads(data["log"]) if data.get("log") else [],
    )


def _item(record: StoredAutomation | AutomationRun) -> dict[str, Any]:
    return {name: _stored(value, name) for name, value in record.__dict__.items() if value is not None}


def _update_expression(sets: Mapping[str, Any], *extra: str) -> tuple[str, dict[str, str], dict[str, Any]]:
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    set_parts, remove_parts = list(extra), []
    for i, (name, value) in enumerate(sets.items()):
        names[f"#f{i}"] = name
        if value is None:
            remove_parts.append(f"#f{i}")
        else:
            values[f":f{i}"] = _stored(value, name)
            set_parts.append(f"#f{i} = :f{i}")
    expression = ("SET " + ", ".join(set_parts) if set_parts else "") + (
        " REMOVE " + ", ".join(remove_parts) if remove_parts else ""
    )
    return expression.strip(), names, values


class DynamoAutomations(DynamoRepository):
    def create(self, automation: StoredAutomation) -> bool:
        index = keys.PROVIDER_INDEX
        item = {
            **automation_key(automation.automation_id),
            **_item(automation),
            index.partition_key: AUTOMATION_LIST,
            index.sort_key: automation_list_sort(automation.created_at, automation.automation_id),
        }
        return self._put_new(item)

    def get(self, automation_id: str) -> StoredAutomation | None:
        item = self._call(self._table.get_item, Key=automation_key(automation_id), ConsistentRead=True).get("Item")
        return _automation_from(item) if item else None

    def list(self, limit: int, after: str | None = None) -> Page:
        """Newest first, from GSI1 (eventually consistent, like the campaigns' list)."""
        index = keys.PROVIDER_INDEX
        names = {"#pk": index.partition_key}
        values: dict[str, Any] = {":pk": AUTOMATION_LIST}
        condition = "#pk = :pk"
        if after is not None:
            names["#sk"] = index.sort_key
            values[":after"] = after
            condition += " AND #sk < :after"
        result = self._call(
            self._table.query,
            IndexName=index.name,
            KeyConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ScanIndexForward=False,
            Limit=limit,
        )
        items = result.get("Items", [])
        last = result.get("LastEvaluatedKey")
        return Page([_automation_from(i) for i in items], str(items[-1][index.sort_key]) if last and items else None)

    def update(
        self, automation_id: str, version: int, sets: Mapping[str, Any], from_status: AutomationStatus | None = None
    ) -> bool:
        """Set ``sets`` (and the next version) if the automation is at ``version`` (and ``from_status``)."""
        _check(sets, AUTOMATION_FIELDS)
        expression, names, values = _update_expression(sets, "#v = :next")
        names["#v"] = "version"
        values[":v"], values[":next"] = version, version + 1
        condition = "#v = :v"
        if from_status is not None:
            names["#s"] = "status"
            values[":from"] = from_status.value
            condition += " AND #s = :from"
        return (
            self._conditional(
                self._table.update_item,
                Key=automation_key(automation_id),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
            is not None
        )

    def delete(self, automation_id: str, version: int) -> bool:
        """Delete the automation at ``version``, then its runs (history goes with it)."""
        deleted = self._conditional(
            self._table.delete_item,
            Key=automation_key(automation_id),
            ConditionExpression="#v = :v",
            ExpressionAttributeNames={"#v": "version"},
            ExpressionAttributeValues={":v": version},
        )
        if deleted is None:
            return False
        after: str | None = None
        while True:
            page = self.list_runs(automation_id, 100, after)
            with self._table.batch_writer() as batch:
                for run in page.items:
                    batch.delete_item(Key=run_key(automation_id, run.run_id))
            if page.after is None:
                return True
            after = page.after

    def lock(self, automation_id: str, run_id: str, lease_seconds: float) -> bool:
        now = self._clock()
        return (
            self._conditional(
                self._table.update_item,
                Key=automation_key(automation_id),
                UpdateExpression="SET lock_run = :r, lock_until = :until REMOVE waiting_run",
                ConditionExpression=(
                    "attribute_exists(#pk) AND (attribute_not_exists(lock_run) OR lock_until < :now OR lock_run = :r)"
                    " AND (attribute_not_exists(waiting_run) OR waiting_run = :r OR lock_run = :r)"
                ),
                ExpressionAttributeNames={"#pk": keys.PK},
                ExpressionAttributeValues={
                    ":r": run_id,
                    ":until": Decimal(str(now + lease_seconds)),
                    ":now": Decimal(str(now)),
                },
            )
            is not None
        )

    def wait(self, automation_id: str, run_id: str) -> bool:
        """Make ``run_id`` the one waiting run; False when another run already waits."""
        return (
            self._conditional(
                self._table.update_item,
                Key=automation_key(automation_id),
                UpdateExpression="SET waiting_run = :r",
                ConditionExpression="attribute_exists(#pk) AND (attribute_not_exists(waiting_run) OR waiting_run = :r)",
                ExpressionAttributeNames={"#pk": keys.PK},
                ExpressionAttributeValues={":r": run_id},
            )
            is not None
        )

    def unlock(self, automation_id: str, run_id: str) -> str | None | bool:
        """Release ``run_id``'s lock: the waiting run's id (or None) when released, False when it did
        not hold the lock."""
        result = self._conditional(
            self._table.update_item,
            Key=automation_key(automation_id),
            UpdateExpression="REMOVE lock_run, lock_until",
            ConditionExpression="lock_run = :r",
            ExpressionAttributeValues={":r": run_id},
            ReturnValues="ALL_NEW",
        )
        if result is None:
            return False
        return plain(result.get("Attributes", {})).get("waiting_run")

    def create_run(self, run: AutomationRun) -> bool:
        item = {**run_key(run.automation_id, run.run_id), **_item(run)}
        if not self._put_new(item):
            return False
        self._conditional(  # the automation's last run: the latest scheduled time wins
            self._table.update_item,
            Key=automation_key(run.automation_id),
            UpdateExpression="SET last_run_id = :r",
            ConditionExpression="attribute_exists(#pk) AND (attribute_not_exists(last_run_id) OR last_run_id < :r)",
            ExpressionAttributeNames={"#pk": keys.PK},
            ExpressionAttributeValues={":r": run.run_id},
        )
        return True

    def get_run(self, automation_id: str, run_id: str) -> AutomationRun | None:
        item = self._call(self._table.get_item, Key=run_key(automation_id, run_id), ConsistentRead=True).get("Item")
        return _run_from(item) if item else None

    def list_runs(self, automation_id: str, limit: int, after: str | None = None) -> Page:
        """Newest first."""
        values: dict[str, Any] = {":pk": partition(automation_id), ":run": RUN_PREFIX}
        condition = "#pk = :pk AND begins_with(#sk, :run)"
        if after is not None:
            condition = "#pk = :pk AND #sk BETWEEN :run AND :after"
            values[":after"] = f"{RUN_PREFIX}{after}"
        result = self._call(
            self._table.query,
            KeyConditionExpression=condition,
            ExpressionAttributeNames={"#pk": keys.PK, "#sk": keys.SK},
            ExpressionAttributeValues=values,
            ScanIndexForward=False,
            ConsistentRead=True,
            Limit=limit + (1 if after is not None else 0),
        )
        items = [_run_from(i) for i in result.get("Items", [])]
        if after is not None:
            items = [r for r in items if r.run_id < after]
        items = items[:limit]
        more = bool(result.get("LastEvaluatedKey")) and bool(items)
        return Page(items, items[-1].run_id if more else None)

    def update_run(
        self, automation_id: str, run_id: str, sets: Mapping[str, Any], from_statuses: frozenset[RunStatus]
    ) -> bool:
        _check(sets, RUN_FIELDS)
        expression, names, values = _update_expression(sets)
        names["#s"] = "status"
        allowed = []
        for i, status in enumerate(sorted(from_statuses)):
            values[f":from{i}"] = status.value
            allowed.append(f":from{i}")
        return (
            self._conditional(
                self._table.update_item,
                Key=run_key(automation_id, run_id),
                UpdateExpression=expression,
                ConditionExpression=f"#s IN ({', '.join(allowed)})",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
            is not None
        )


class InMemoryAutomations(InMemoryRepository):
    def __init__(self, clock: Clock = time.time, meter: Meter | None = None) -> None:
        super().__init__(clock, meter)
        self.by_id: dict[str, StoredAutomation] = {}
        self.runs: dict[tuple[str, str], AutomationRun] = {}

    @staticmethod
    def _copy_automation(a: StoredAutomation) -> StoredAutomation:
        return replace(a, spec=json.loads(json.dumps(a.spec)))

    @staticmethod
    def _copy_run(r: AutomationRun) -> AutomationRun:
        return replace(r, counts=dict(r.counts), log=json.loads(json.dumps(r.log)))

    def create(self, automation: StoredAutomation) -> bool:
        with self._lock:
            self.meter.write()
            if automation.automation_id in self.by_id:
                return False
            self.by_id[automation.automation_id] = self._copy_automation(automation)
            return True

    def get(self, automation_id: str) -> StoredAutomation | None:
        with self._lock:
            found = self.by_id.get(automation_id)
            return self._copy_automation(found) if found else None

    def list(self, limit: int, after: str | None = None) -> Page:
        with self._lock:
            ordered = sorted(
                self.by_id.values(), key=lambda a: automation_list_sort(a.created_at, a.automation_id), reverse=True
            )
            if after is not None:
                ordered = [a for a in ordered if automation_list_sort(a.created_at, a.automation_id) < after]
            page = ordered[:limit]
            more = len(ordered) > limit
            last = page[-1] if page else None
            return Page(
                [self._copy_automation(a) for a in page],
                automation_list_sort(last.created_at, last.automation_id) if more and last else None,
            )

    def update(
        self, automation_id: str, version: int, sets: Mapping[str, Any], from_status: AutomationStatus | None = None
    ) -> bool:
        _check(sets, AUTOMATION_FIELDS)
        with self._lock:
            self.meter.write()
            found = self.by_id.get(automation_id)
            if found is None or found.version != version or (from_status is not None and found.status != from_status):
                return False
            for name, value in sets.items():
                if name == "status":
                    value = AutomationStatus(value)
                setattr(found, name, json.loads(json.dumps(value)) if name == "spec" else value)
            found.version += 1
            return True

    def delete(self, automation_id: str, version: int) -> bool:
        with self._lock:
            self.meter.write()
            found = self.by_id.get(automation_id)
            if found is None or found.version != version:
                return False
            del self.by_id[automation_id]
            for key in [k for k in self.runs if k[0] == automation_id]:
                del self.runs[key]
            return True

    def lock(self, automation_id: str, run_id: str, lease_seconds: float) -> bool:
        with self._lock:
            self.meter.write()
            found = self.by_id.get(automation_id)
            now = self._clock()
            if found is None:
                return False
            if found.lock_run not in (None, run_id) and found.lock_until >= now:
                return False
            if found.waiting_run not in (None, run_id) and found.lock_run != run_id:
                return False
            found.lock_run, found.lock_until, found.waiting_run = run_id, now + lease_seconds, None
            return True

    def wait(self, automation_id: str, run_id: str) -> bool:
        with self._lock:
            self.meter.write()
            found = self.by_id.get(automation_id)
            if found is None or found.waiting_run not in (None, run_id):
                return False
            found.waiting_run = run_id
            return True

    def unlock(self, automation_id: str, run_id: str) -> str | None | bool:
        with self._lock:
            self.meter.write()
            found = self.by_id.get(automation_id)
            if found is None or found.lock_run != run_id:
                return False
            found.lock_run, found.lock_until = None, 0.0
            return found.waiting_run

    def create_run(self, run: AutomationRun) -> bool:
        with self._lock:
            self.meter.write()
            key = (run.automation_id, run.run_id)
            if key in self.runs:
                return False
            self.runs[key] = self._copy_run(run)
            found = self.by_id.get(run.automation_id)
            if found is not None and (found.last_run_id is None or found.last_run_id < run.run_id):
                found.last_run_id = run.run_id
            return True

    def get_run(self, automation_id: str, run_id: str) -> AutomationRun | None:
        with self._lock:
            found = self.runs.get((automation_id, run_id))
            return self._copy_run(found) if found else None

    def list_runs(self, automation_id: str, limit: int, after: str | None = None) -> Page:
        with self._lock:
            ordered = sorted((r for (a, _), r in self.runs.items() if a == automation_id), key=lambda r: r.run_id)
            ordered.reverse()
            if after is not None:
                ordered = [r for r in ordered if r.run_id < after]
            page = ordered[:limit]
            return Page([self._copy_run(r) for r in page], page[-1].run_id if len(ordered) > limit else None)

    def update_run(
        self, automation_id: str, run_id: str, sets: Mapping[str, Any], from_statuses: frozenset[RunStatus]
    ) -> bool:
        _check(sets, RUN_FIELDS)
        with self._lock:
            self.meter.write()
            found = self.runs.get((automation_id, run_id))
            if found is None or found.status not in from_statuses:
                return False
            for name, value in sets.items():
                if name == "status":
                    value = RunStatus(value)
                elif name in _JSON_FIELDS:
                    value = json.loads(json.dumps(value)) if value is not None else ([] if name == "log" else {})
                setattr(found, name, value)
            return True
