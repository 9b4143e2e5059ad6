"""Recipient exports: a campaign's recipients (optionally one status) as a CSV object in the bucket,
handed out as a presigned URL.

``POST /v1/campaigns/{id}/recipients/export`` records a PENDING export and puts an export request on
the split queue; the splitter function runs it (``run_export``): it walks the recipients in audience
order exactly as the paginated API does (``massmailer.recipients.walk``) and streams the rows into an
S3 multipart upload, one part (≥ 5 MiB) at a time, so memory stays bounded whatever the campaign's
size. After each part it checkpoints — the part's ETag, the rows so far and the walk's position — in
one conditional write under its lease; near the time limit it hands over to a continuation message
(rows not yet making a part ride along in the item). A crash resumes from the last checkpoint when
the queue redelivers; a duplicate delivery finds the lease held and leaves it. ``GET /v1/exports/{id}``
reports the status and, once DONE, a presigned GET URL valid ``URL_SECONDS``.

The CSV: a header row, then one row per recipient with the fields of the API's items (``COLUMNS``),
timestamps as the API writes them; a cell that a spreadsheet would read as a formula (``=``, ``+``,
``-``, ``@``, tab, CR first) is prefixed with ``'`` (OWASP's CSV-injection advice).
"""

from __future__ import annotations

import csv
import io
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from massmailer import recipients
from massmailer.blobs import MIN_PART, Uploads
from massmailer.models import Status
from massmailer.queues import Queue
from massmailer.spec import EXPORT_PREFIX, SPLIT_QUEUE, SPLITTER
from massmailer.store import Campaigns, Messages, StoreUnavailable
from massmailer.store.exports import ExportJob, Exports, ExportStatus

logger = logging.getLogger(__name__)

COLUMNS = (
    "email",
    "message_id",
    "status",
    "provider",
    "provider_message_id",
    "attempts",
    "soft_bounces",
    "last_error",
    "event_detail",
    "created_at",
    "updated_at",
    "sent_at",
    "lane",
    "campaign_id",
)
PART_SIZE = MIN_PART  # bytes of CSV per uploaded part (S3: ≥ 5 MiB but the last)
CARRY_MAX = 256 << 10  # UTF-8 bytes of rows short of a part handed over in the item (DynamoDB: 400 KB an item)
# Hand over to a continuation when the invocation has less left than this: enough to read up to a
# part's worth of records (≈ 35k, ≈ 350 BatchGetItem calls) and upload it, if the rows since the last
# part are too many to ride in the item.
HAND_OVER_SECONDS = 30.0
LEASE_SECONDS = SPLITTER.timeout_seconds + 30  # a worker's hold on an export: its invocation, at most
URL_SECONDS = 3600  # a download link's validity (sooner if the signing credentials expire first)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class ExportRecipientsRequest(BaseModel):
    """``POST /v1/campaigns/{id}/recipients/export``'s optional body: one recipient status, any case."""

    model_config = ConfigDict(extra="forbid")
    status: str | None = None


class ExportRequest(BaseModel):
    """The split-queue message that runs (or continues) an export."""

    kind: Literal["export"] = "export"
    export_id: str


@dataclass
class ExportContext:
    campaigns: Campaigns
    messages: Messages
    exports: Exports
    queue: Queue
    blobs: Uploads
    time_left: Callable[[], float] = lambda: float("inf")


@dataclass(frozen=True)
class ExportReport:
    outcome: str  # "done" | "continued" | "held" (another worker has it, or it is finished) | "failed"
    rows: int = 0
    parts: int = 0


def csv_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_row(item: dict[str, Any]) -> list[str]:
    return [csv_cell(item.get(name)) for name in COLUMNS]


def new_export(
    campaigns: Campaigns, exports: Exports, queue: Queue, campaign_id: str, status: Status | None, now: float
) -> ExportJob:
    """Record a PENDING export of ``campaign_id``'s recipients and queue its run."""
    job = ExportJob(
        export_id=f"exp-{uuid.uuid4().hex[:24]}",
        campaign_id=campaign_id,
        status=ExportStatus.PENDING,
        created_at=now,
        updated_at=now,
        status_filter=status.value if status else None,
    )
    if not exports.create(job):  # pragma: no cover - 96 random bits
        raise RuntimeError(f"export id {job.export_id} already exists")
    queue.send(SPLIT_QUEUE.key, [ExportRequest(export_id=job.export_id).model_dump_json()])
    return job


def view(job: ExportJob, blobs: Uploads | None = None) -> dict[str, Any]:
    """An export as ``GET /v1/exports/{id}`` shows it: a fresh download URL once DONE."""
    answer: dict[str, Any] = {
        "export_id": job.export_id,
        "campaign_id": job.campaign_id,
        "status": job.status.value,
        "status_filter": job.status_filter,
        "rows": job.rows,
        "created_at": recipients.api_time(job.created_at),
        "updated_at": recipients.api_time(job.updated_at),
        "completed_at": recipients.api_time(job.completed_at),
        "error": job.error,
        "url": None,
        "url_expires_at": None,
    }
    if job.status == ExportStatus.DONE and job.key and blobs is not None:
        filename = f"{job.campaign_id}-recipients{('-' + job.status_filter.lower()) if job.status_filter else ''}.csv"
        answer["url"] = blobs.download_url(job.key, URL_SECONDS, filename)
        answer["url_expires_at"] = recipients.api_time(datetime.now(UTC).timestamp() + URL_SECONDS)
    return answer


def run_export(ctx: ExportContext, export_id: str, now: Callable[[], float] | None = None) -> ExportReport:
    """Run (or continue) one export under a lease; see the module's docstring."""
    clock = now or (lambda: datetime.now(UTC).timestamp())
    token = uuid.uuid4().hex
    job = ctx.exports.acquire(export_id, token, LEASE_SECONDS)
    if job is None:
        logger.info("export held elsewhere or finished", extra={"export_id": export_id})
        return ExportReport("held")
    try:
        return _stream(ctx, job, token, clock)
    except StoreUnavailable:
        raise  # the queue redelivers; the next run resumes from the last checkpoint
    except Exception as exc:  # noqa: BLE001 - anything else will not get better by retrying: FAILED, with why
        logger.exception("export failed", extra={"export_id": export_id})
        if job.upload_id and job.key:
            try:
                ctx.blobs.abort_upload(job.key, job.upload_id)
            except StoreUnavailable:
                logger.warning("abort failed; the bucket's rule removes the upload", extra={"export_id": export_id})
        sets = {"status": ExportStatus.FAILED.value, "error": f"{type(exc).__name__}: {exc}", "updated_at": clock()}
        ctx.exports.update(export_id, token, {**sets, "upload_id": None, "carry": None, "lease_until": 0})
        return ExportReport("failed", job.rows, job.part_count)


def _stream(ctx: ExportContext, job: ExportJob, token: str, clock: Callable[[], float]) -> ExportReport:
    export_id = job.export_id
    if job.upload_id is None:
        key = f"{EXPORT_PREFIX}{job.campaign_id}/{export_id}.csv"
        upload_id = ctx.blobs.start_upload(key, "text/csv; charset=utf-8")
        if not ctx.exports.update(export_id, token, {"key": key, "upload_id": upload_id}, expected_parts=0):
            ctx.blobs.abort_upload(key, upload_id)
            return ExportReport("held")
        job.key, job.upload_id = key, upload_id
    assert job.key is not None and job.upload_id is not None
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    if job.part_count == 0 and not job.carry:
        writer.writerow(COLUMNS)
    text.write(job.carry or "")
    rows, pending = job.rows, 0
    position = recipients.Position(job.cursor_r, job.cursor_i)
    wanted = Status(job.status_filter) if job.status_filter else None

    def checkpoint() -> bool:
        """Upload the buffer as the next part (≥ PART_SIZE but the last) and record it."""
        nonlocal rows, pending
        data = text.getvalue().encode()
        number = job.part_count + 1
        etag = ctx.blobs.upload_part(job.key or "", job.upload_id or "", number, data)
        part = {"n": number, "etag": etag}
        sets = {
            "parts": [*job.parts, part],
            "part_count": number,
            "rows": rows + pending,
            "cursor_r": position.roster,
            "cursor_i": position.index,
            "carry": None,
            "updated_at": clock(),
        }
        if not ctx.exports.update(export_id, token, sets, expected_parts=job.part_count):
            return False
        job.parts.append(part)
        job.part_count, rows, pending = number, rows + pending, 0
        text.seek(0)
        text.truncate()
        return True

    for item, after in recipients.walk(ctx.campaigns, ctx.messages, job.campaign_id, wanted, position):
        position = after
        if item is not None:
            writer.writerow(csv_row(item))
            pending += 1
        if text.tell() >= PART_SIZE and not checkpoint():
            return ExportReport("held", rows, job.part_count)
        if ctx.time_left() < HAND_OVER_SECONDS and text.tell() <= CARRY_MAX:  # characters ≤ bytes: cheap first
            carry = text.getvalue()
            if len(carry.encode()) <= CARRY_MAX:  # the item's limit is in bytes (UTF-8)
                return _hand_over(ctx, job, token, carry, rows + pending, position, clock)
    if (text.tell() or job.part_count == 0) and not checkpoint():
        return ExportReport("held", rows, job.part_count)
    ctx.blobs.complete_upload(job.key, job.upload_id, job.parts)
    done = {
        "status": ExportStatus.DONE.value,
        "completed_at": clock(),
        "updated_at": clock(),
        "upload_id": None,
        "lease_until": 0,
    }
    if not ctx.exports.update(export_id, token, done):
        return ExportReport("held", rows, job.part_count)
    logger.info("export done", extra={"export_id": export_id, "rows": rows, "parts": job.part_count})
    return ExportReport("done", rows, job.part_count)


def _hand_over(
    ctx: ExportContext,
    job: ExportJob,
    token: str,
    carry: str,
    rows: int,
    position: recipients.Position,
    clock: Callable[[], float],
) -> ExportReport:
    """Near the time limit: the rows short of a part go into the item with the position, the lease is
    released and a continuation is queued (a crash between the two: the queue redelivers this message
    after the lease expired, and that run continues from here)."""
    sets = {
        "carry": carry or None,
        "rows": rows,
        "cursor_r": position.roster,
        "cursor_i": position.index,
        "lease_until": 0,
        "updated_at": clock(),
    }
    if not ctx.exports.update(job.export_id, token, sets, expected_parts=job.part_count):
        return ExportReport("held", job.rows, job.part_count)
    ctx.queue.send(SPLIT_QUEUE.key, [ExportRequest(export_id=job.export_id).model_dump_json()])
    logger.info("export continues", extra={"export_id": job.export_id, "rows": rows})
    return ExportReport("continued", rows, job.part_count)
