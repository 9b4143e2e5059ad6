"""Recipient exports on the in-memory twins: parts, hand-over to a continuation, a held lease, a crash
resumed from the last checkpoint, and a failure recorded as FAILED."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from massmailer import exports, recipients
from massmailer.memory import InMemoryBlobs, InMemoryQueue
from massmailer.models import Lane, MessageRecord, Status
from massmailer.store import InMemoryStores, Stores
from massmailer.store.exports import ExportStatus

CAMPAIGN = "cmp-1"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def _setup(n: int, clock: Clock) -> tuple[InMemoryStores, InMemoryQueue, InMemoryBlobs]:
    stores, queue, blobs = Stores.in_memory(clock), InMemoryQueue(), InMemoryBlobs()
    identities = [f"user{i}@example.com" for i in range(n)]
    for start in range(0, n, 500):
        stores.campaigns.put_roster(CAMPAIGN, start, identities[start : start + 500], {"user3@example.com"})
    for identity in identities[::2]:
        message_id = f"{CAMPAIGN}.{recipients.identity_digest(identity)}"
        record = MessageRecord(message_id=message_id, email=identity, status=Status.SENT, lane=Lane.LOW)
        stores.messages.create_message(record, {})
    return stores, queue, blobs


def _context(stores: InMemoryStores, queue: InMemoryQueue, blobs: InMemoryBlobs, **kw: Any) -> exports.ExportContext:
    return exports.ExportContext(stores.campaigns, stores.messages, stores.exports, queue, blobs, **kw)


def _expected(stores: InMemoryStores) -> list[dict[str, str]]:
    items = [item for item, _ in recipients.walk(stores.campaigns, stores.messages, CAMPAIGN) if item]
    return [{c: exports.csv_cell(item.get(c)) for c in exports.COLUMNS} for item in items]


def _rows(blobs: InMemoryBlobs, key: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(blobs.objects[key].decode())))


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exports, "PART_SIZE", 8 << 10)
    monkeypatch.setattr("massmailer.memory.MIN_PART", 8 << 10)


def test_a_export_hands_over_near_the_time_limit_and_continues_where_it_stopped(small_parts: None) -> None:
    clock = Clock()
    stores, queue, blobs = _setup(1200, clock)
    job = exports.new_export(stores.campaigns, stores.exports, queue, CAMPAIGN, None, clock())
    calls = {"n": 0}

    def time_left() -> float:  # plenty of time, then short every 250 rows
        calls["n"] += 1
        return 10.0 if calls["n"] % 250 == 0 else 1000.0

    ctx = _context(stores, queue, blobs, time_left=time_left)
    outcomes = []
    while pending := queue.drain("split"):
        for body, _ in pending:
            outcomes.append(exports.run_export(ctx, json.loads(body)["export_id"], clock).outcome)
    assert outcomes.count("continued") >= 4 and outcomes[-1] == "done"
    done = stores.exports.get(job.export_id)
    assert done is not None and done.status == ExportStatus.DONE and done.rows == 1200 and done.part_count >= 2
    assert done.key is not None and _rows(blobs, done.key) == _expected(stores)


def test_the_rows_carried_in_the_item_are_limited_in_utf8_bytes_not_characters(
    small_parts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DynamoDB's item limit is bytes: non-ASCII rows (3 bytes a character) must not ride in the item
    beyond CARRY_MAX bytes, even when their characters are fewer."""
    monkeypatch.setattr(exports, "CARRY_MAX", 2 << 10)
    clock = Clock()
    stores, queue, blobs = Stores.in_memory(clock), InMemoryQueue(), InMemoryBlobs()
    identities = [f"受信者{i}さん@例え.日本" for i in range(300)]
    stores.campaigns.put_roster(CAMPAIGN, 0, identities, set())
    job = exports.new_export(stores.campaigns, stores.exports, queue, CAMPAIGN, None, clock())
    ctx = _context(stores, queue, blobs, time_left=lambda: 10.0)  # always short: hand over when it may
    carried = []
    while pending := queue.drain("split"):
        for body, _ in pending:
            exports.run_export(ctx, json.loads(body)["export_id"], clock)
            stored = stores.exports.get(job.export_id)
            assert stored is not None
            carried.append(len((stored.carry or "").encode()))
    assert exports.CARRY_MAX - 200 < max(carried) <= exports.CARRY_MAX  # it did carry, up to the limit
    done = stores.exports.get(job.export_id)
    assert done is not None and done.status == ExportStatus.DONE and done.rows == 300
    assert done.key is not None and _rows(blobs, done.key) == _expected(stores)


def test_a_duplicate_delivery_leaves_a_held_export_to_its_holder_and_a_crash_resumes_from_the_checkpoint(
    small_parts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    stores, queue, blobs = _setup(1000, clock)
    job = exports.new_export(stores.campaigns, stores.exports, queue, CAMPAIGN, None, clock())
    ctx = _context(stores, queue, blobs)
    real_complete = blobs.complete_upload

    def crash(*args: Any) -> None:
        raise exports.StoreUnavailable("S3 unreachable")

    monkeypatch.setattr(blobs, "complete_upload", crash)
    with pytest.raises(exports.StoreUnavailable):
        exports.run_export(ctx, job.export_id, clock)  # dies after its parts, before the end
    crashed = stores.exports.get(job.export_id)
    assert crashed is not None and crashed.status == ExportStatus.RUNNING and crashed.part_count >= 2
    assert exports.run_export(ctx, job.export_id, clock).outcome == "held"  # its lease still stands
    monkeypatch.setattr(blobs, "complete_upload", real_complete)
    clock.now += exports.LEASE_SECONDS + 1
    uploaded = dict(blobs.uploads)
    report = exports.run_export(ctx, job.export_id, clock)
    assert report.outcome == "done" and report.parts == crashed.part_count  # no part uploaded again
    assert uploaded  # the same upload was completed
    done = stores.exports.get(job.export_id)
    assert done is not None and done.key is not None and _rows(blobs, done.key) == _expected(stores)
    assert exports.run_export(ctx, job.export_id, clock).outcome == "held"  # finished: a replay does nothing


def test_an_export_that_cannot_complete_is_failed_with_the_reason_and_its_upload_aborted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    stores, queue, blobs = _setup(10, clock)
    job = exports.new_export(stores.campaigns, stores.exports, queue, CAMPAIGN, Status.SENT, clock())

    def refuse(*args: Any) -> None:
        raise ValueError("InvalidPart: one or more of the specified parts could not be found")

    monkeypatch.setattr(blobs, "complete_upload", refuse)
    report = exports.run_export(_context(stores, queue, blobs), job.export_id, clock)
    failed = stores.exports.get(job.export_id)
    assert report.outcome == "failed" and failed is not None and failed.status == ExportStatus.FAILED
    assert failed.error is not None and "InvalidPart" in failed.error
    assert blobs.uploads == {}  # aborted
    view = exports.view(failed, blobs)
    assert view["status"] == "FAILED" and view["url"] is None


def test_cells_a_spreadsheet_would_run_as_formulas_are_quoted() -> None:
    assert [exports.csv_cell(v) for v in ("=1+1", "+x", "-2", "@a", "ok", None, 3)] == [
        "'=1+1",
        "'+x",
        "'-2",
        "'@a",
        "ok",
        "",
        "3",
    ]


def test_timestamps_are_rfc3339_utc_with_z_whatever_was_stored() -> None:
    assert recipients.api_time("2026-12-01T09:00:00+01:00") == "2026-12-01T08:00:00.000Z"
    assert recipients.api_time(1_700_000_000.5) == "2023-11-14T22:13:20.500Z"
    assert recipients.api_time("2026-12-01T08:00:00.123456+00:00") == "2026-12-01T08:00:00.123Z"
    assert recipients.api_time(None) is None


def test_get_campaign_and_get_message_write_their_times_as_the_list_does() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    from massmailer import intake
    from massmailer.models import Campaign, CampaignStatus, Content

    stores, queue, blobs = _setup(2, Clock())
    created = datetime(2026, 12, 1, 8, 0, 0, 123456, tzinfo=UTC)
    stores.campaigns.put_campaign(
        Campaign(
            campaign_id=CAMPAIGN,
            name="n",
            content=Content(subject="s", text="t"),
            lane=Lane.LOW,
            from_address="from@example.com",
            status=CampaignStatus.SCHEDULED,
            audience_key="audiences/x.jsonl",
            created_at=created,
            send_at=datetime(2026, 12, 1, 10, 0, tzinfo=timezone(timedelta(hours=1))),
        )
    )
    ctx = intake.IntakeContext(
        stores.campaigns, stores.messages, stores.suppressions, stores.idempotency, queue, blobs, None, "f@example.com"
    )
    view = intake.campaign_status(ctx, CAMPAIGN)
    assert (view["created_at"], view["send_at"]) == ("2026-12-01T08:00:00.123Z", "2026-12-01T09:00:00.000Z")
    [listed] = intake.list_campaigns(ctx)["items"]
    assert listed["created_at"] == view["created_at"]
    message_id = f"{CAMPAIGN}.{recipients.identity_digest('user0@example.com')}"
    stores.messages.by_id[message_id]["updated_at"] = "2026-12-01T08:00:01.5+00:00"
    assert intake.message_status(ctx, message_id)["updated_at"] == "2026-12-01T08:00:01.500Z"
