"""Recipient exports: one item per export (``EXPORT#<id>`` / ``EXPORT``), the job that streams a
campaign's recipients to a CSV object in the bucket (``massmailer.exports``).

Every state change is a conditional write. ``create`` writes only a new id; ``acquire`` takes a
PENDING or RUNNING export whose lease is free (absent, expired, or already this worker's): a duplicate
queue delivery finds the lease held and leaves the work to its holder, a worker that died leaves a
lease that expires. ``update`` — a checkpoint after each uploaded part, the hand-over to a
continuation, the end (DONE or FAILED) — holds only while the export is RUNNING under the caller's
lease and, for a checkpoint, still at the part it read, so two workers can never both move it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from massmailer.store import keys
from massmailer.store.dynamo import Clock, DynamoRepository, plain
from massmailer.store.memory import InMemoryRepository, Meter

EXPORT_TTL_SECONDS = 7 * 24 * 3600  # the item goes when the object does (the bucket's exports/ rule)


class ExportStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"


# What ``update`` may set (None removes the attribute).
EXPORT_FIELDS = (
    "status",
    "updated_at",
    "completed_at",
    "key",
    "upload_id",
    "parts",
    "part_count",
    "rows",
    "cursor_r",
    "cursor_i",
    "lease_until",
    "error",
    "carry",
)


@dataclass
class ExportJob:
    export_id: str
    campaign_id: str
    status: ExportStatus
    created_at: float
    status_filter: str | None = None  # a recipient status, or None: every recipient
    updated_at: float | None = None
    completed_at: float | None = None
    key: str | None = None  # the object in the bucket
    upload_id: str | None = None  # the multipart upload in progress
    parts: list[dict[str, Any]] = field(default_factory=list)  # [{"n": part number, "etag": …}]
    part_count: int = 0
    rows: int = 0  # recipients written so far (the uploaded parts and the carry)
    cursor_r: int = 0  # where the next part starts (recipients.Position)
    cursor_i: int = 0
    lease_token: str | None = None
    lease_until: float = 0.0
    error: str | None = None
    carry: str | None = None  # CSV rows written after the last part, handed to a continuation


def job_from_item(item: Mapping[str, Any]) -> ExportJob:
    data = plain(dict(item))
    known = set(ExportJob.__dataclass_fields__)
    values = {k: v for k, v in data.items() if k in known}
    values["status"] = ExportStatus(values["status"])
    return ExportJob(**values)


class Exports(Protocol):
    def create(self, job: ExportJob) -> bool: ...
    def get(self, export_id: str) -> ExportJob | None: ...
    def acquire(self, export_id: str, token: str, lease_seconds: float) -> ExportJob | None: ...
    def update(
        self, export_id: str, token: str, sets: Mapping[str, Any], expected_parts: int | None = None
    ) -> bool: ...


def _check_fields(sets: Mapping[str, Any]) -> None:
    unknown = set(sets) - set(EXPORT_FIELDS)
    if unknown:
        raise ValueError(f"not an export field: {sorted(unknown)}")


class DynamoExports(DynamoRepository):
    def create(self, job: ExportJob) -> bool:
        """Write a new export; False (nothing written) when the id exists."""
        item = {
            **keys.export_key(job.export_id),
            **{k: _decimal(v) for k, v in job.__dict__.items() if v is not None and k not in ("parts", "lease_until")},
            "status": job.status.value,
            "created_at": _decimal(job.created_at),
            "ttl": int(job.created_at) + EXPORT_TTL_SECONDS,
        }
        return self._put_new(item)

    def get(self, export_id: str) -> ExportJob | None:
        item = self._call(self._table.get_item, Key=keys.export_key(export_id), ConsistentRead=True).get("Item")
        return job_from_item(item) if item else None

    def acquire(self, export_id: str, token: str, lease_seconds: float) -> ExportJob | None:
        """The export, RUNNING under ``token``'s lease until now + ``lease_seconds``; None when it is
        finished, unknown, or leased to another worker."""
        now = self._clock()
        result = self._conditional(
            self._table.update_item,
            Key=keys.export_key(export_id),
            UpdateExpression="SET #s = :running, lease_token = :t, lease_until = :until, updated_at = :now",
            ConditionExpression=(
                "#s IN (:pending, :running) AND "
                "(attribute_not_exists(lease_until) OR lease_until < :now OR lease_token = :t)"
            ),
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":running": ExportStatus.RUNNING.value,
                ":pending": ExportStatus.PENDING.value,
                ":t": token,
                ":until": _decimal(now + lease_seconds),
                ":now": _decimal(now),
            },
            ReturnValues="ALL_NEW",
        )
        return job_from_item(result["Attributes"]) if result else None

    def update(self, export_id: str, token: str, sets: Mapping[str, Any], expected_parts: int | None = None) -> bool:
        """Set ``sets`` if the export is RUNNING under ``token`` (and at ``expected_parts``)."""
        _check_fields(sets)
        names = {"#s": "status", "#t": "lease_token"}
        values: dict[str, Any] = {":running": ExportStatus.RUNNING.value, ":t": token}
        set_parts, remove_parts = [], []
        for i, (name, value) in enumerate(sets.items()):
            names[f"#f{i}"] = name
            if value is None:
                remove_parts.append(f"#f{i}")
            else:
                values[f":v{i}"] = _decimal(value)
                set_parts.append(f"#f{i} = :v{i}")
        expression = ("SET " + ", ".join(set_parts) if set_parts else "") + (
            " REMOVE " + ", ".join(remove_parts) if remove_parts else ""
        )
        condition = "#s = :running AND #t = :t"
        if expected_parts is not None:
            names["#pc"] = "part_count"
            values[":pc"] = expected_parts
            condition += " AND #pc = :pc"
        result = self._conditional(
            self._table.update_item,
            Key=keys.export_key(export_id),
            UpdateExpression=expression.strip(),
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
        return result is not None


def _decimal(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, list):
        return [_decimal(v) for v in value]
    if isinstance(value, dict):
        return {k: _decimal(v) for k, v in value.items()}
    return value


class InMemoryExports(InMemoryRepository):
    def __init__(self, clock: Clock = time.time, meter: Meter | None = None) -> None:
        super().__init__(clock, meter)
        self.by_id: dict[str, ExportJob] = {}

    def create(self, job: ExportJob) -> bool:
        with self._lock:
            self.meter.write()
            if job.export_id in self.by_id:
                return False
            self.by_id[job.export_id] = ExportJob(**job.__dict__)
            return True

    def get(self, export_id: str) -> ExportJob | None:
        with self._lock:
            job = self.by_id.get(export_id)
            return ExportJob(**{**job.__dict__, "parts": list(job.parts)}) if job else None

    def acquire(self, export_id: str, token: str, lease_seconds: float) -> ExportJob | None:
        with self._lock:
            self.meter.write()
            job = self.by_id.get(export_id)
            now = self._clock()
            if job is None or job.status not in (ExportStatus.PENDING, ExportStatus.RUNNING):
                return None
            if job.lease_until >= now and job.lease_token not in (None, token):
                return None
            job.status, job.lease_token, job.lease_until, job.updated_at = (
                ExportStatus.RUNNING,
                token,
                now + lease_seconds,
                now,
            )
            return self.get(export_id)

    def update(self, export_id: str, token: str, sets: Mapping[str, Any], expected_parts: int | None = None) -> bool:
        _check_fields(sets)
        with self._lock:
            self.meter.write()
            job = self.by_id.get(export_id)
            if job is None or job.status != ExportStatus.RUNNING or job.lease_token != token:
                return False
            if expected_parts is not None and job.part_count != expected_parts:
                return False
            defaults = ExportJob(export_id="", campaign_id="", status=ExportStatus.PENDING, created_at=0)
            for name, value in sets.items():
                if name == "status":
                    value = ExportStatus(value)
                setattr(job, name, getattr(defaults, name) if value is None else value)
            return True
