"""De-duplication in a fixed budget: the digest table, multi-pass splits, checkpoints and resumes."""

from __future__ import annotations

import json
import random
from collections.abc import Callable

import pytest

from massmailer.audiences import Audience
from massmailer.dedupe import DigestSet, partition, plan_passes
from massmailer.memory import InMemoryBlobs, InMemoryQueue
from massmailer.models import BatchMessage, CampaignStatus, SplitRequest
from massmailer.splitting import Checkpoint, SplitReport, SplitterContext, split_campaign
from massmailer.store import Stores
from tests.support import make_campaign


def test_checkpoints_encode_pass_and_offset_in_one_growing_number() -> None:
    assert Checkpoint(1, 0, 12345).encode() == 12345  # single pass: the plain byte offset, as before
    assert Checkpoint.decode(12345) == Checkpoint(1, 0, 12345)
    values = [Checkpoint(7, p, o).encode() for p in range(7) for o in (0, 1, 5 * 10**12)]
    assert values == sorted(values) and len(set(values)) == len(values)
    for value in values:
        assert Checkpoint.decode(value).encode() == value


def test_digest_set_is_exact_keeps_zero_and_grows_past_its_budget_when_it_must() -> None:
    rng = random.Random(7)
    digests = [rng.getrandbits(64) for _ in range(5000)] + [0]
    seen = DigestSet(budget_bytes=1024)  # 128 slots: it must grow several times
    assert all(seen.add(d) for d in digests)
    assert not any(seen.add(d) for d in digests)
    assert len(seen) == len(digests) and all(d in seen for d in digests)
    assert rng.getrandbits(64) not in seen
    seen.close()


def test_passes_are_planned_from_the_estimated_rows_and_the_budget() -> None:
    assert plan_passes(1_000_000, 32 << 20) == 1
    assert plan_passes(10_000_000, 32 << 20) == 5
    assert plan_passes(1000, 1024) == 16  # 128 slots, half full per pass
    counts = [0] * 5
    for d in range(0, 2**64, 2**64 // 10_000 + 12345):
        counts[partition(d, 5)] += 1
    assert min(counts) > 0.9 * max(counts)


def test_the_row_estimate_extrapolates_the_first_mib() -> None:
    head = b"email\n" + b"a@example.com\n" * 1000 + b"partial"
    audience = Audience("k.csv", "csv", 6 + 14 * 100_000, None, 6, None, head)
    assert audience.estimated_rows() == 100_000
    small = Audience("k.csv", "csv", 6 + 14 * 3 + 2, None, 6, None, b"email\n" + b"a@example.com\n" * 3 + b"x@")
    assert small.estimated_rows() == 4


def _audience(n: int = 1500, seed: int = 3) -> tuple[bytes, list[str]]:
    """CSV rows with duplicates in other letter cases, invalid rows, blank lines and quoted fields."""
    rng = random.Random(seed)
    lines, suppressed = ["Email,name,city"], []
    for i in range(n):
        roll = rng.random()
        if roll < 0.05:
            lines.append(f"broken{i}@@example..com,B{i},x")
        elif roll < 0.12 and i:
            j = rng.randrange(i)
            lines.append(f"USER{j}@EXAMPLE.COM,dup of {j},x")
        elif roll < 0.13:
            lines.append("")
        elif roll < 0.135:  # a quote that never closes: this line is invalid, the next ones are rows
            lines.append(f'user{i}@example.com,"unterminated {i},x')
        else:
            lines.append(f'user{i}@example.com,"N{i}, the {i}th",Zürich')
        if i % 97 == 5:
            suppressed.append(f"user{i}@example.com")
    return ("\r\n".join(lines) + "\r\n").encode(), suppressed


def _context(
    data: bytes, suppressed: list[str], budget: int, read_size: int = 1 << 20, key: str = "audiences/a.csv"
) -> SplitterContext:
    store, queue, blobs = Stores.in_memory(), InMemoryQueue(), InMemoryBlobs(read_size=read_size)
    blobs.put(key, data)
    campaign = make_campaign("c1", status=CampaignStatus.SPLITTING)
    campaign.audience_key = key
    store.campaigns.put_campaign(campaign)
    for address in suppressed:
        store.suppressions.suppress(address, "bounce")
    return SplitterContext(
        campaigns=store.campaigns, suppressions=store.suppressions, queue=queue, blobs=blobs, dedupe_bytes=budget
    )


def _outcome(ctx: SplitterContext) -> tuple[dict[str, tuple[str, dict[str, object]]], tuple[int, ...]]:
    recipients: dict[str, tuple[str, dict[str, object]]] = {}
    for body, _ in ctx.queue.sent["low"]:  # type: ignore[attr-defined]
        for r in BatchMessage.model_validate_json(body).recipients:
            assert recipients.setdefault(r.message_id, (r.email, r.variables)) == (r.email, r.variables)
    c = ctx.campaigns.get_campaign("c1").counts  # type: ignore[union-attr]
    return recipients, (c.total, c.duplicates, c.invalid, c.suppressed, c.queued)


def _run_to_completion(ctx: SplitterContext, step: Callable[[], SplitReport]) -> list[SplitReport]:
    reports: list[SplitReport] = []
    for _ in range(10_000):
        try:
            reports.append(step())
        except RuntimeError:
            continue  # the "Lambda" died: the split request is delivered again
        if reports[-1].done:
            return reports
        split = ctx.queue.sent["split"]  # type: ignore[attr-defined]
        assert split, "a split stopped early must leave a continuation"
        split.clear()
    raise AssertionError("split never finished")


@pytest.fixture(scope="module")
def single_pass() -> tuple[dict[str, tuple[str, dict[str, object]]], tuple[int, ...]]:
    data, suppressed = _audience()
    ctx = _context(data, suppressed, budget=32 << 20)
    report = split_campaign(ctx, SplitRequest(campaign_id="c1"))
    assert report.done and report.passes == 1
    recipients, counts = _outcome(ctx)
    assert counts[0] == len(recipients) + counts[3] and counts[1] > 50 and counts[2] > 50 and counts[3] > 5
    return recipients, counts


def test_a_multi_pass_split_yields_exactly_the_recipients_and_counters_of_one_pass(single_pass) -> None:  # type: ignore[no-untyped-def]
    data, suppressed = _audience()
    ctx = _context(data, suppressed, budget=2048)  # 256 slots: 128 addresses per pass

    report = split_campaign(ctx, SplitRequest(campaign_id="c1"))

    assert report.done and report.passes > 5
    assert _outcome(ctx) == single_pass


def test_a_multi_pass_split_that_crashes_and_times_out_everywhere_still_matches_one_pass(single_pass) -> None:  # type: ignore[no-untyped-def]
    data, suppressed = _audience()
    ctx = _context(data, suppressed, budget=4096, read_size=700)
    rng = random.Random(11)
    ctx.time_left = lambda: 0.0 if rng.random() < 0.2 else 1e9  # continuations at random checkpoints
    real_send = ctx.queue.send

    def flaky(queue: str, bodies, delay_seconds: int = 0) -> None:  # type: ignore[no-untyped-def]
        if queue == "low" and rng.random() < 0.15:
            raise RuntimeError("Lambda died before enqueueing this chunk")
        real_send(queue, bodies, delay_seconds)
        if queue == "low" and rng.random() < 0.15:
            raise RuntimeError("Lambda died after enqueueing, before its checkpoint")

    ctx.queue.send = flaky  # type: ignore[method-assign]

    reports = _run_to_completion(ctx, lambda: split_campaign(ctx, SplitRequest(campaign_id="c1")))

    assert len(reports) > 10 and reports[-1].passes > 1
    assert _outcome(ctx) == single_pass  # re-enqueued chunks repeat message ids, never counters


@pytest.mark.parametrize("read_size", [333, 1 << 20])
def test_a_single_pass_split_with_resumes_matches_too(single_pass, read_size: int) -> None:  # type: ignore[no-untyped-def]
    data, suppressed = _audience()
    ctx = _context(data, suppressed, budget=32 << 20, read_size=read_size)
    ctx.batch_size = 7  # many small checkpoints
    flips = iter([1e9, 0.0] * 1000)
    ctx.time_left = lambda: next(flips, 1e9)
    reports = _run_to_completion(ctx, lambda: split_campaign(ctx, SplitRequest(campaign_id="c1")))
    assert len(reports) > 5 and all(r.passes == 1 for r in reports[:1])
    assert _outcome(ctx) == single_pass


def test_an_under_planned_table_grows_rather_than_losing_exactness(single_pass, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import massmailer.splitting

    monkeypatch.setattr(massmailer.splitting, "plan_passes", lambda rows, budget: 1)  # as if rows were misjudged
    data, suppressed = _audience()
    ctx = _context(data, suppressed, budget=1024)
    assert split_campaign(ctx, SplitRequest(campaign_id="c1")).passes == 1
    assert _outcome(ctx) == single_pass


def test_a_huge_oversized_line_is_one_invalid_row_and_costs_no_memory() -> None:
    data = b"email,name\na@example.com,A\n" + b"x" * (3 << 20) + b"\nb@example.com,B\n"
    ctx = _context(data, [], budget=1 << 20, read_size=1 << 16)
    split_campaign(ctx, SplitRequest(campaign_id="c1"))
    recipients, counts = _outcome(ctx)
    assert sorted(email for email, _ in recipients.values()) == ["a@example.com", "b@example.com"]
    assert counts[:3] == (2, 0, 1)


def test_jsonl_multi_pass_matches_single_pass() -> None:
    rows = [json.dumps({"email": f"u{i % 700}@example.com", "variables": {"i": i % 700}}) for i in range(1000)]
    data = ("\n".join(rows + ["{bad json", '{"email": "nope"}']) + "\n").encode()
    outcomes = []
    for budget in (32 << 20, 1024):
        ctx = _context(data, [], budget, key="audiences/a.jsonl")
        assert split_campaign(ctx, SplitRequest(campaign_id="c1")).done
        outcomes.append(_outcome(ctx))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][1][:3] == (700, 300, 2)


def test_a_checkpoint_just_after_an_unterminated_quote_resumes_without_repeating_rows() -> None:
    lines = ["email,name", *(f"a{i}@example.com,A{i}" for i in range(10)), 'bad@example.com,"open quote']
    lines += [f"b{i}@example.com,B{i}" for i in range(300)]  # within the unterminated record's reach
    data = ("\n".join(lines) + "\n").encode()
    ctx = _context(data, [], budget=32 << 20)  # one read: the resume's replay ends mid-block
    ctx.batch_size = 5
    flips = iter([1e9, 0.0] * 1000)
    ctx.time_left = lambda: next(flips, 1e9)

    _run_to_completion(ctx, lambda: split_campaign(ctx, SplitRequest(campaign_id="c1")))

    recipients, counts = _outcome(ctx)
    assert len(recipients) == 310 and counts[:3] == (310, 0, 1)
