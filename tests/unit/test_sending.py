"""The send path with in-memory fakes: claims, failover, retry policy, suppression, rendering errors."""

from __future__ import annotations

import dataclasses
import json
import random

import pytest

from massmailer.errors import ConfigurationError, HardBounce, ProviderDown, SoftBounce, Throttled, Transient
from massmailer.lifecycle import MOVES, Action
from massmailer.models import BatchMessage, BatchRecipient, CampaignStatus, Content, Lane
from massmailer.providers.chain import ProviderChain
from massmailer.sending import RetryPolicy, SenderContext, send_batch
from massmailer.store import InMemoryStores, Stores, StoreUnavailable
from massmailer.store.suppressions import InMemorySuppressions
from tests.support import make_campaign, sender_context
from tests.unit.fakes import FakeProvider

CAMPAIGN = "cmp-1"


def _ctx(*providers: FakeProvider, store: InMemoryStores | None = None, clock=None) -> SenderContext:
    store = store or Stores.in_memory(**({"clock": clock} if clock else {}))
    if CAMPAIGN not in store.campaigns.by_id:
        store.campaigns.put_campaign(
            make_campaign(CAMPAIGN, content=Content(subject="Hi {{ name }}", text="Hello {{ name }}"))
        )
    return sender_context(
        store,
        ProviderChain(list(providers)),
        policy=RetryPolicy(max_attempts=4),
        rng=random.Random(7),
        **({"clock": clock} if clock else {}),
    )


def _batch(n: int = 3, attempt: int = 0) -> BatchMessage:
    return BatchMessage(
        kind="campaign",
        campaign_id=CAMPAIGN,
        lane=Lane.LOW,
        recipients=[
            BatchRecipient(message_id=f"m{i}", email=f"u{i}@example.com", variables={"name": f"N{i}"}, attempt=attempt)
            for i in range(n)
        ],
    )


def _requeued(ctx: SenderContext) -> list[tuple[BatchMessage, int]]:
    return [(BatchMessage.model_validate_json(body), delay) for body, delay in ctx.queue.sent["low"]]  # type: ignore[attr-defined]


def test_each_recipient_is_rendered_and_sent_once_and_counted() -> None:
    ses = FakeProvider("ses")
    ctx = _ctx(ses)
    report = send_batch(ctx, _batch(3))
    assert report.outcomes["sent"] == 3
    assert sorted(e.recipient for e in ses.sent) == ["u0@example.com", "u1@example.com", "u2@example.com"]
    raw = next(e.raw for e in ses.sent if e.recipient == "u1@example.com")
    assert b"Subject: Hi N1\r\n" in raw and b"Hello N1" in raw
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in raw
    assert ctx.campaigns.get_campaign(CAMPAIGN).counts.sent == 3  # type: ignore[union-attr]
    assert ctx.messages.get_message("m1")["status"] == "SENT"  # type: ignore[index]


def test_a_redelivered_batch_sends_nobody_twice() -> None:
    ses = FakeProvider("ses")
    ctx = _ctx(ses)
    send_batch(ctx, _batch(3))
    again = send_batch(ctx, _batch(3))
    assert len(ses.sent) == 3
    assert again.outcomes["skipped"] == 3
    assert ctx.campaigns.get_campaign(CAMPAIGN).counts.sent == 3  # type: ignore[union-attr]


def test_provider_down_fails_over_to_the_secondary() -> None:
    ses = FakeProvider("ses", fail=lambda e: ProviderDown("down", provider="ses"))
    smtp = FakeProvider("smtp")
    ctx = _ctx(ses, smtp)
    report = send_batch(ctx, _batch(3))
    assert len(smtp.sent) == 3 and report.fallbacks == 3
    assert ctx.messages.get_message("m0")["provider"] == "smtp"  # type: ignore[index]


@pytest.mark.parametrize("error", [HardBounce("550 5.1.1 no such user"), SoftBounce("452 4.2.2 mailbox full")])
def test_recipient_level_errors_never_fail_over(error: Exception) -> None:
    ses = FakeProvider("ses", fail=lambda e: error)  # type: ignore[arg-type,return-value]
    smtp = FakeProvider("smtp")
    send_batch(_ctx(ses, smtp), _batch(1))
    assert smtp.calls == 0


def test_a_hard_bounce_fails_at_once_and_suppresses_the_address() -> None:
    ses = FakeProvider(
        "ses",
        fail=lambda e: HardBounce("550 5.1.1 user unknown") if e.recipient == "u1@example.com" else None,
    )
    ctx = _ctx(ses)
    report = send_batch(ctx, _batch(3))
    assert report.outcomes == {"sent": 2, "failed": 1}
    assert ctx.messages.get_message("m1")["status"] == "FAILED"  # type: ignore[index]
    assert ctx.suppressions.is_suppressed("U1@example.com")
    assert _requeued(ctx) == []


def test_throttling_requeues_without_using_an_attempt_and_is_not_a_failure() -> None:
    ses = FakeProvider("ses", fail=lambda e: Throttled("ThrottlingException", provider="ses"))
    smtp = FakeProvider("smtp", fail=lambda e: Throttled("454 4.7.0 try later", provider="smtp"))
    ctx = _ctx(ses, smtp)
    report = send_batch(ctx, _batch(2, attempt=2))
    assert report.outcomes == {"retry_throttled": 2}
    ((retry, delay),) = _requeued(ctx)
    assert [r.attempt for r in retry.recipients] == [2, 2]  # no attempt consumed
    assert 10 <= delay <= 20
    assert ctx.messages.get_message("m0")["status"] == "RETRY_WAIT"  # type: ignore[index]
    assert ctx.campaigns.get_campaign(CAMPAIGN).counts.failed == 0  # type: ignore[union-attr]


def test_transient_errors_back_off_exponentially_then_fail_after_max_attempts() -> None:
    ses = FakeProvider("ses", fail=lambda e: Transient("503", provider="ses"))
    ctx = _ctx(ses)
    delays = []
    batch = _batch(1)
    for expected_attempt in (1, 2, 3):
        send_batch(ctx, batch)
        ((batch, delay),) = _requeued(ctx)
        ctx.queue.sent["low"].clear()  # type: ignore[attr-defined]
        assert batch.recipients[0].attempt == expected_attempt
        delays.append(delay)
    assert delays[0] < delays[1] < delays[2]  # 30·2^n with equal jitter: strictly growing ranges
    report = send_batch(ctx, batch)  # the 4th attempt fails too → FAILED, not requeued
    assert report.outcomes == {"failed": 1}
    assert _requeued(ctx) == []
    record = ctx.messages.get_message("m0")
    assert record["status"] == "FAILED" and "gave up after 4 attempts" in record["last_error"]  # type: ignore[index]


def test_soft_bounces_retry_at_a_fixed_interval() -> None:
    ses = FakeProvider("ses", fail=lambda e: SoftBounce("452 4.2.2 mailbox full"))
    ctx = _ctx(ses)
    send_batch(ctx, _batch(1))
    ((_, delay),) = _requeued(ctx)
    assert delay == 900


def test_configuration_errors_fail_over_and_retry() -> None:
    ses = FakeProvider("ses", fail=lambda e: ConfigurationError("not verified"))
    smtp = FakeProvider("smtp")
    send_batch(_ctx(ses, smtp), _batch(1))
    assert len(smtp.sent) == 1


def test_a_missing_template_variable_fails_that_recipient_with_the_reason() -> None:
    ses = FakeProvider("ses")
    ctx = _ctx(ses)
    batch = _batch(2)
    batch.recipients[1].variables = {}
    report = send_batch(ctx, batch)
    assert report.outcomes == {"sent": 1, "failed": 1}
    assert "template variable missing" in ctx.messages.get_message("m1")["last_error"]  # type: ignore[index]
    assert "'name' is undefined" in ctx.messages.get_message("m1")["last_error"]  # type: ignore[index]


def test_a_suppressed_address_is_not_sent_at_send_time() -> None:
    ses = FakeProvider("ses")
    ctx = _ctx(ses)
    ctx.suppressions.suppress("u2@EXAMPLE.com", "unsubscribe")
    report = send_batch(ctx, _batch(3))
    assert report.outcomes == {"sent": 2, "suppressed": 1}
    assert ctx.messages.get_message("m2")["status"] == "SUPPRESSED"  # type: ignore[index]


class CountingLookups(InMemorySuppressions):
    def __init__(self, clock=None) -> None:  # type: ignore[no-untyped-def]
        super().__init__(**({"clock": clock} if clock else {}))
        self.lookups = 0

    def suppressed_among(self, addresses):  # type: ignore[no-untyped-def]
        self.lookups += 1
        return super().suppressed_among(addresses)


def _with(suppressions: InMemorySuppressions, clock) -> InMemoryStores:  # type: ignore[no-untyped-def]
    """In-memory stores whose suppression list is ``suppressions``."""
    return dataclasses.replace(Stores.in_memory(clock=clock), suppressions=suppressions)


def test_a_batch_the_splitter_just_checked_is_not_looked_up_again() -> None:
    now = [10_000.0]
    lookups = CountingLookups(clock=lambda: now[0])
    ctx = _ctx(FakeProvider("ses"), store=_with(lookups, lambda: now[0]), clock=lambda: now[0])
    fresh = _batch(3).model_copy(update={"suppression_checked_at": now[0] - 5})

    report = send_batch(ctx, fresh)

    assert report.outcomes == {"sent": 3} and lookups.lookups == 0
    assert lookups.since_queries == 1  # only "suppressed since the split's check": one Query per batch


@pytest.mark.parametrize("unsubscribed_after_check", [1.0, 290.0, -30.0])  # -30: the API's clock runs behind
def test_an_unsubscribe_after_the_split_is_honoured_by_the_batch_split_before_it(
    unsubscribed_after_check: float,
) -> None:
    """Given a batch the splitter checked (and so is not batch-read again), when the address
    unsubscribes after that check and before the batch is sent, then it is not sent: suppressed."""
    now = [10_000.0]
    lookups = CountingLookups(clock=lambda: now[0])
    ses = FakeProvider("ses")
    ctx = _ctx(ses, store=_with(lookups, lambda: now[0]), clock=lambda: now[0])
    checked = now[0]
    batch = _batch(3).model_copy(update={"suppression_checked_at": checked})
    now[0] = checked + unsubscribed_after_check
    lookups.suppress("U1@example.com", "unsubscribe")  # the one-click POST's response has gone out
    now[0] = checked + 300  # the batch starts within the splitter's recheck window

    report = send_batch(ctx, batch)

    assert report.outcomes == {"sent": 2, "suppressed": 1}
    assert "u1@example.com" not in {e.recipient for e in ses.sent}
    assert ctx.messages.get_message("m1")["status"] == "SUPPRESSED"  # type: ignore[index]
    assert ctx.campaigns.get_campaign(CAMPAIGN).counts.suppressed == 1  # type: ignore[union-attr]
    assert lookups.lookups == 0  # no read per email


@pytest.mark.parametrize("checked_at", [None, 10_000.0 - 601, 10_000.0 + 60])  # unchecked, stale, from the future
def test_a_batch_without_a_fresh_check_is_checked_at_send_time(checked_at: float | None) -> None:
    now = [10_000.0]
    lookups = CountingLookups(clock=lambda: now[0])
    ctx = _ctx(FakeProvider("ses"), store=_with(lookups, lambda: now[0]), clock=lambda: now[0])
    lookups.suppress("u1@example.com", "unsubscribe")

    report = send_batch(ctx, _batch(3).model_copy(update={"suppression_checked_at": checked_at}))

    assert report.outcomes == {"sent": 2, "suppressed": 1} and lookups.lookups == 1


def test_a_retried_recipient_is_checked_again_whatever_its_first_batch_said() -> None:
    now = [10_000.0]
    failures = iter([Transient("451 try later")])
    ses = FakeProvider("ses", fail=lambda _email: next(failures, None))
    lookups = CountingLookups(clock=lambda: now[0])
    ctx = _ctx(ses, store=_with(lookups, lambda: now[0]), clock=lambda: now[0])
    send_batch(ctx, _batch(1).model_copy(update={"suppression_checked_at": now[0]}))
    [(retry, _)] = _requeued(ctx)
    assert retry.suppression_checked_at is None
    lookups.suppress("u0@example.com", "unsubscribe")  # e.g. a one-click unsubscribe meanwhile

    report = send_batch(ctx, retry)

    assert report.outcomes == {"suppressed": 1} and lookups.lookups == 1


def test_a_recipient_leased_by_another_sender_is_requeued_after_the_lease_not_dropped() -> None:
    now = [1000.0]
    ses = FakeProvider("ses")
    ctx = _ctx(ses, clock=lambda: now[0])
    ctx.messages.claim_recipient(
        "m0", email="u0@example.com", campaign_id=CAMPAIGN, lane="low", attempt=0, lease_seconds=300
    )
    report = send_batch(ctx, _batch(1))
    assert report.outcomes == {"busy": 1} and ses.sent == []
    ((_, delay),) = _requeued(ctx)
    assert delay == 301
    now[0] += 301  # the other sender died: its lease expired
    send_batch(ctx, _batch(1))
    assert len(ses.sent) == 1


def test_a_failure_to_record_after_a_successful_send_never_causes_a_second_send(monkeypatch) -> None:
    ses = FakeProvider("ses")
    ctx = _ctx(ses)
    calls = []

    def broken(*args, **kwargs):
        calls.append(args)
        raise StoreUnavailable("DynamoDB unreachable")

    monkeypatch.setattr(ctx.messages, "record_sent", broken)
    monkeypatch.setattr("massmailer.sending.time.sleep", lambda s: None)
    report = send_batch(ctx, _batch(1))
    assert len(ses.sent) == 1 and len(calls) == 3  # recorded 3 times, then given up
    assert report.outcomes == {"sent": 1}
    assert _requeued(ctx) == []  # not re-enqueued: sending twice is worse than a stale status


def test_store_outage_before_sending_requeues_the_recipient() -> None:
    ses = FakeProvider("ses")
    ctx = _ctx(ses)

    def down(*a, **k):
        raise StoreUnavailable("timeout")

    ctx.messages.claim_recipient = down  # type: ignore[method-assign]
    report = send_batch(ctx, _batch(2))
    assert report.outcomes == {"retry_store": 2} and ses.sent == []
    ((retry, _),) = _requeued(ctx)
    assert [r.message_id for r in retry.recipients] == ["m0", "m1"]


def test_a_paused_campaign_sends_nothing_and_keeps_its_recipients() -> None:
    ses = FakeProvider("ses")
    ctx = _ctx(ses)
    ctx.campaigns.transition(CAMPAIGN, MOVES[Action.PAUSE])
    report = send_batch(ctx, _batch(3), delivery="sqs-1")
    assert ses.sent == [] and report.outcomes == {"parked": 3}
    assert ctx.queue.sent.get("low") is None  # type: ignore[attr-defined]  # parked, not polling the queue
    [parked] = ctx.campaigns.parked_batches(CAMPAIGN)
    assert parked.key == "sqs-1" and len(BatchMessage.model_validate_json(parked.body).recipients) == 3


def test_a_pause_committed_mid_batch_stops_the_next_send_and_releases_the_rest() -> None:
    ses = FakeProvider("ses")
    ctx = dataclasses.replace(_ctx(ses), concurrency=1)
    real = ctx.campaigns.status_of
    reads: list[str] = []

    def status_of(campaign_id: str) -> CampaignStatus | None:
        status = real(campaign_id)
        reads.append(str(status))
        if len(reads) == 2:  # the batch's arrival read, then the first send's: pause right after it
            ctx.campaigns.transition(CAMPAIGN, MOVES[Action.PAUSE])
        return status

    ctx.campaigns.status_of = status_of  # type: ignore[method-assign]
    report = send_batch(ctx, _batch(3), delivery="sqs-1")
    assert [e.recipient for e in ses.sent] == ["u0@example.com"]  # it had passed its check: in flight
    assert report.outcomes == {"sent": 1, "halted": 2}
    ((again, delay),) = _requeued(ctx)
    assert [r.message_id for r in again.recipients] == ["m1", "m2"] and delay == 0
    assert {ctx.messages.get_message(m)["status"] for m in ("m1", "m2")} == {"RETRY_WAIT"}  # type: ignore[index]
    assert send_batch(ctx, again, delivery="sqs-2").outcomes == {"parked": 2}


def test_batches_of_a_cancelled_campaign_are_settled_cancelled_and_counted_once() -> None:
    ses = FakeProvider("ses")
    ctx = _ctx(ses)
    ctx.campaigns.advance_split(CAMPAIGN, 0, 1, {"total": 3}, True)
    send_batch(ctx, _batch(1), delivery="sqs-0")  # m0 sent before the cancel
    ctx.campaigns.transition(CAMPAIGN, MOVES[Action.CANCEL])
    report = send_batch(ctx, _batch(3), delivery="sqs-1")
    again = send_batch(ctx, _batch(3), delivery="sqs-1")  # a redelivery of the same message
    assert report.outcomes == {"skipped": 1, "cancelled": 2} and len(ses.sent) == 1
    assert again.outcomes == {"skipped": 1, "cancelled": 2}  # found finished by this message: not recounted
    counts = ctx.campaigns.get_campaign(CAMPAIGN).counts  # type: ignore[union-attr]
    assert (counts.sent, counts.cancelled, counts.queued) == (1, 2, 0)
    assert ctx.messages.get_message("m2")["status"] == "CANCELLED"  # type: ignore[index]


def test_transactional_mail_uses_its_own_stored_content_and_has_no_unsubscribe_header() -> None:
    from massmailer.models import MessageRecord, Status

    ses = FakeProvider("ses")
    ctx = _ctx(ses)
    ctx.messages.create_message(
        MessageRecord(message_id="t1", email="a@example.com", status=Status.QUEUED, lane=Lane.HIGH),
        {
            "content": {"subject": "Code {{ c }}", "text": "c={{ c }}", "html": None},
            "from_address": "x@example.com",
            "headers": {"X-Order": "42"},
        },
    )
    batch = BatchMessage(
        kind="transactional",
        lane=Lane.HIGH,
        recipients=[BatchRecipient(message_id="t1", email="a@example.com", variables={"c": "9"})],
    )
    send_batch(ctx, batch)
    raw = ses.sent[0].raw
    assert b"Subject: Code 9\r\n" in raw and b"X-Order: 42\r\n" in raw and b"From: x@example.com\r\n" in raw
    assert b"List-Unsubscribe" not in raw
    assert json.loads(ctx.messages.by_id["t1"]["payload"])["content"]["subject"] == "Code {{ c }}"


def test_a_counted_message_that_comes_back_is_acknowledged_untouched() -> None:
    # The first delivery sends u0, and u1 is throttled: re-enqueued (a new message), then counted.
    throttled = iter([Throttled("454 slow down")])
    ses = FakeProvider("ses", fail=lambda e: next(throttled, None) if e.recipient == "u1@example.com" else None)
    ctx = _ctx(ses)
    first = send_batch(ctx, _batch(2), delivery="sqs-1")
    assert first.outcomes == {"sent": 1, "retry_throttled": 1}
    [(retry, _)] = _requeued(ctx)

    # When SQS delivers sqs-1 again (the delete was lost), before the retry is due
    again = send_batch(ctx, _batch(2), delivery="sqs-1", redelivered=True)

    # Then nothing is claimed, sent or counted for it; the retry message still does its job
    assert again.outcomes == {"already_done": 2} and len(ses.sent) == 1
    send_batch(ctx, retry, delivery="sqs-2")
    assert [e.recipient for e in ses.sent] == ["u0@example.com", "u1@example.com"]
    counts = ctx.campaigns.get_campaign(CAMPAIGN).counts  # type: ignore[union-attr]
    assert (counts.sent, counts.retried) == (2, 1)


class PipeliningProvider(FakeProvider):
    """A provider that can pipeline (like the SMTP one): ``submit`` now, ``result`` later."""

    def __init__(self, name: str, fail=None) -> None:  # type: ignore[no-untyped-def]
        super().__init__(name, fail=fail)
        self.log: list[str] = []

    def submit(self, email):  # type: ignore[no-untyped-def]
        self.log.append(f"submit {email.recipient}")
        return email

    def result(self, email):  # type: ignore[no-untyped-def]
        self.log.append(f"result {email.recipient}")
        return self.send(email)


def test_one_at_a_time_the_next_email_is_handed_over_before_this_ones_answer_is_awaited() -> None:
    smtp = PipeliningProvider("smtp")
    ctx = _ctx(smtp)
    ctx.concurrency = 1

    report = send_batch(ctx, _batch(3))

    assert report.outcomes == {"sent": 3}
    assert smtp.log == [
        "submit u0@example.com",
        "submit u1@example.com",
        "result u0@example.com",
        "submit u2@example.com",
        "result u1@example.com",
        "result u2@example.com",
    ]
    assert all(ctx.messages.get_message(f"m{i}")["status"] == "SENT" for i in range(3))  # type: ignore[index]


def test_a_pipelined_send_that_fails_falls_over_to_the_next_provider_and_the_rest_go_on() -> None:
    smtp = PipeliningProvider(
        "smtp", fail=lambda e: ProviderDown("relay gone") if e.recipient == "u1@example.com" else None
    )
    ses = FakeProvider("ses")
    ctx = _ctx(smtp, ses)
    ctx.concurrency = 1

    report = send_batch(ctx, _batch(3))

    assert report.outcomes == {"sent": 3} and report.providers == {"smtp": 2, "ses": 1}
    assert [e.recipient for e in ses.sent] == ["u1@example.com"]
