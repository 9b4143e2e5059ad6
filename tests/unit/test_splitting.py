"""Splitting: validation, case-insensitive de-duplication, suppression, batches ≤50, resumable."""

from __future__ import annotations

import json

import pytest

from massmailer.memory import InMemoryBlobs, InMemoryQueue
from massmailer.models import BatchMessage, CampaignStatus, Lane, SplitRequest
from massmailer.queues import QueueUnavailable
from massmailer.splitting import SplitterContext, recipient_message_id, split_campaign
from massmailer.store import Stores
from tests.support import make_campaign


def _setup(lines: list[object], lane: Lane = Lane.LOW) -> SplitterContext:
    store, queue, blobs = Stores.in_memory(), InMemoryQueue(), InMemoryBlobs()
    blobs.put(
        "audiences/c1.jsonl", b"".join((json.dumps(x) if not isinstance(x, str) else x).encode() + b"\n" for x in lines)
    )
    store.campaigns.put_campaign(make_campaign("c1", lane=lane, status=CampaignStatus.SPLITTING))
    return SplitterContext(campaigns=store.campaigns, suppressions=store.suppressions, queue=queue, blobs=blobs)


def _batches(ctx: SplitterContext, lane: str = "low") -> list[BatchMessage]:
    return [BatchMessage.model_validate_json(b) for b, _ in ctx.queue.sent[lane]]  # type: ignore[attr-defined]


def test_audience_is_validated_deduplicated_suppressed_and_cut_into_batches_of_50() -> None:
    rows: list[object] = [{"email": f"user{i}@example.com", "variables": {"i": i}} for i in range(120)]
    rows += [{"email": "USER7@Example.com"}, {"email": "not an address"}, "{broken json", {"nope": 1}]
    ctx = _setup(rows)
    ctx.suppressions.suppress("user3@example.com", "bounce")

    report = split_campaign(ctx, SplitRequest(campaign_id="c1"))

    batches = _batches(ctx)
    assert [len(b.recipients) for b in batches] == [50, 50, 19]
    emails = [r.email for b in batches for r in b.recipients]
    assert len(emails) == len(set(emails)) == 119
    assert "user3@example.com" not in emails
    assert report.done
    counts = ctx.campaigns.get_campaign("c1").counts  # type: ignore[union-attr]
    assert (counts.total, counts.suppressed, counts.duplicates, counts.invalid) == (120, 1, 1, 3)
    assert counts.queued == 119
    assert ctx.campaigns.get_campaign("c1").campaign.status == CampaignStatus.SENDING  # type: ignore[union-attr]
    assert {r.email: r.variables for b in batches for r in b.recipients}["user5@example.com"] == {"i": 5}
    assert batches[0].recipients[0].message_id == recipient_message_id("c1", "user0@example.com")


def test_transactional_priority_campaign_goes_to_the_high_lane() -> None:
    ctx = _setup([{"email": "a@example.com"}], lane=Lane.HIGH)
    split_campaign(ctx, SplitRequest(campaign_id="c1"))
    assert len(_batches(ctx, "high")) == 1 and not ctx.queue.sent["low"]  # type: ignore[attr-defined]


def test_a_crash_mid_split_resumes_from_the_checkpoint_without_skipping_or_double_counting() -> None:
    ctx = _setup([{"email": f"u{i}@example.com"} for i in range(1234)])
    real_send, calls = ctx.queue.send, [0]

    def flaky(queue: str, bodies, delay_seconds: int = 0) -> None:
        calls[0] += 1
        if calls[0] == 2:
            raise QueueUnavailable("SQS down")
        real_send(queue, bodies, delay_seconds)

    ctx.queue.send = flaky  # type: ignore[method-assign]
    with pytest.raises(QueueUnavailable):
        split_campaign(ctx, SplitRequest(campaign_id="c1"))
    assert ctx.campaigns.get_campaign("c1").split_cursor > 0  # type: ignore[union-attr]

    split_campaign(ctx, SplitRequest(campaign_id="c1"))  # the redelivered split request

    emails = [r.email for b in _batches(ctx) for r in b.recipients]
    assert sorted(set(emails)) == sorted(f"u{i}@example.com" for i in range(1234))
    assert len(emails) == 1234  # the failed chunk was never enqueued, so nothing is duplicated here
    assert ctx.campaigns.get_campaign("c1").counts.total == 1234  # type: ignore[union-attr]


def test_duplicates_across_a_resume_are_still_dropped() -> None:
    rows = [{"email": f"u{i}@example.com"} for i in range(600)] + [{"email": "U1@example.com"}]
    ctx = _setup(rows)
    left = iter([0.0])
    ctx.time_left = lambda: next(left, 100.0)
    first = split_campaign(ctx, SplitRequest(campaign_id="c1"))
    assert first.continued and ctx.queue.sent["split"]  # type: ignore[attr-defined]
    split_campaign(ctx, SplitRequest(campaign_id="c1"))
    counts = ctx.campaigns.get_campaign("c1").counts  # type: ignore[union-attr]
    assert (counts.total, counts.duplicates) == (600, 1)


def test_a_finished_split_delivered_again_enqueues_nothing() -> None:
    ctx = _setup([{"email": "a@example.com"}])
    split_campaign(ctx, SplitRequest(campaign_id="c1"))
    split_campaign(ctx, SplitRequest(campaign_id="c1"))
    assert len(_batches(ctx)) == 1


def test_a_full_batch_of_the_largest_allowed_variables_fits_an_sqs_message() -> None:
    from massmailer.models import MAX_VARIABLES_BYTES, AudienceMember
    from massmailer.spec import MAX_RECIPIENTS_PER_BATCH, SQS_MAX_MESSAGE_BYTES

    big = {"blob": "x" * (MAX_VARIABLES_BYTES - 20)}
    AudienceMember(email="a@example.com", variables=big)  # accepted
    with pytest.raises(ValueError, match="at most 4096"):
        AudienceMember(email="a@example.com", variables={"blob": "x" * MAX_VARIABLES_BYTES})
    batch = BatchMessage(
        kind="campaign",
        campaign_id="cmp-" + "f" * 24,
        lane=Lane.LOW,
        recipients=[
            {"message_id": f"cmp-{'f' * 24}.{i:016x}", "email": f"someone.long.name{i}@example.com", "variables": big}
            for i in range(MAX_RECIPIENTS_PER_BATCH)
        ],
    )
    assert len(batch.model_dump_json().encode()) < SQS_MAX_MESSAGE_BYTES


# -- pause and cancel during the split ---------------------------------------------------------------


def test_a_split_that_finishes_after_a_pause_leaves_the_campaign_paused_and_resume_sends() -> None:
    from massmailer.lifecycle import MOVES, Action

    ctx = _setup([{"email": f"user{i}@example.com"} for i in range(30)])
    real = ctx.campaigns.advance_split

    def pause_then_checkpoint(*args: object, **kwargs: object) -> bool:
        ctx.campaigns.transition("c1", MOVES[Action.PAUSE])  # the operator, just before the last checkpoint
        return real(*args, **kwargs)  # type: ignore[arg-type]

    ctx.campaigns.advance_split = pause_then_checkpoint  # type: ignore[method-assign]
    report = split_campaign(ctx, SplitRequest(campaign_id="c1"))

    stored = ctx.campaigns.get_campaign("c1")
    assert stored is not None and report.done and stored.split_done
    assert stored.campaign.status == CampaignStatus.PAUSED and report.halted == "PAUSED"
    assert ctx.campaigns.transition("c1", MOVES[Action.RESUME]) == CampaignStatus.SENDING


@pytest.mark.parametrize("action", ["pause", "cancel"])
def test_a_pause_or_cancel_stops_the_split_at_the_next_checkpoint_and_resume_continues_it(action: str) -> None:
    from massmailer.lifecycle import MOVES, Action

    ctx = _setup([{"email": f"user{i}@example.com"} for i in range(1200)])  # three chunks of ≤500
    real = ctx.campaigns.advance_split
    calls = []

    def checkpoint(*args: object, **kwargs: object) -> bool:
        calls.append(1)
        if len(calls) == 1:
            ctx.campaigns.transition("c1", MOVES[Action(action)])
        return real(*args, **kwargs)  # type: ignore[arg-type]

    ctx.campaigns.advance_split = checkpoint  # type: ignore[method-assign]
    report = split_campaign(ctx, SplitRequest(campaign_id="c1"))

    assert len(calls) == 1 and not report.done and not report.continued
    assert report.halted == ("PAUSED" if action == "pause" else "CANCELLED")
    assert len({r.email for b in _batches(ctx) for r in b.recipients}) == 500
    assert ctx.queue.sent.get("split") is None  # type: ignore[attr-defined]  # no continuation
    if action == "pause":
        ctx.campaigns.transition("c1", MOVES[Action.RESUME])
        again = split_campaign(ctx, SplitRequest(campaign_id="c1"))
        assert again.done and len({r.email for b in _batches(ctx) for r in b.recipients}) == 1200
        assert ctx.campaigns.get_campaign("c1").campaign.status == CampaignStatus.SENDING  # type: ignore[union-attr]
    else:
        assert split_campaign(ctx, SplitRequest(campaign_id="c1")).halted == "CANCELLED"
