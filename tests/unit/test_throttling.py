"""Throttling has a budget; a provider out of its daily quota is parked; waiting costs no writes.

Fake clock throughout (nothing sleeps): a queue message's delay is "waited" by moving the clock.
"""

from __future__ import annotations

import random

import pytest

from massmailer.errors import SendError, Throttled, Transient
from massmailer.mime import OutgoingEmail
from massmailer.models import BatchMessage, BatchRecipient, Content, Lane
from massmailer.providers.chain import ProviderChain
from massmailer.providers.replies import classify_ses_error
from massmailer.resilience import ParkingPolicy, ProviderParking, QuotaReader, is_quota_exhausted
from massmailer.sending import RetryPolicy, SenderContext, send_batch
from massmailer.settings import Settings
from massmailer.spec import ENV, SQS_MAX_DELAY_SECONDS
from massmailer.store import InMemoryStores, Stores
from massmailer.store.provider_state import InMemorySharedState
from tests.support import make_campaign, sender_context
from tests.unit.fakes import FakeProvider

CAMPAIGN = "cmp-t"
HOUR = 3600.0
QUOTA = "LimitExceededException: Daily message quota exceeded."


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _quota_error(email: OutgoingEmail) -> SendError:
    return Throttled(QUOTA, provider="ses")


def _ctx(
    chain: ProviderChain, clock: Clock, store: InMemoryStores | None = None, policy: RetryPolicy | None = None
) -> SenderContext:
    store = store or Stores.in_memory(clock=clock)
    if CAMPAIGN not in store.campaigns.by_id:
        store.campaigns.put_campaign(make_campaign(CAMPAIGN, content=Content(subject="Hi", text="Hello")))
    return sender_context(
        store,
        chain,
        policy=policy or RetryPolicy(max_attempts=4),
        rng=random.Random(3),
        clock=clock,
    )


def _batch(n: int = 2) -> BatchMessage:
    return BatchMessage(
        kind="campaign",
        campaign_id=CAMPAIGN,
        lane=Lane.LOW,
        recipients=[BatchRecipient(message_id=f"m{i}", email=f"u{i}@example.com") for i in range(n)],
    )


def _take(ctx: SenderContext) -> list[tuple[BatchMessage, int]]:
    """The messages re-enqueued since the last call (and forget them)."""
    sent = ctx.queue.sent["low"]  # type: ignore[attr-defined]
    taken = [(BatchMessage.model_validate_json(body), delay) for body, delay in sent]
    sent.clear()
    return taken


def _run_until_settled(ctx: SenderContext, clock: Clock, batch: BatchMessage, limit: int = 10_000) -> list[int]:
    """Deliver the batch and every re-enqueued message after its delay, until nothing is left.
    Returns the delays, in order."""
    delays: list[int] = []
    pending = [batch]
    for _ in range(limit):
        if not pending:
            return delays
        send_batch(ctx, pending.pop(0))
        for message, delay in _take(ctx):
            delays.append(delay)
            clock.now += delay
            pending.append(message)
    raise AssertionError("never settled")


# --- the budget -------------------------------------------------------------------------------------


def test_a_recipient_throttled_past_the_budget_ends_failed_and_waiting_grows_to_the_sqs_maximum() -> None:
    clock = Clock()
    start = clock.now
    ses = FakeProvider("ses", fail=lambda e: Throttled("ThrottlingException: Maximum sending rate exceeded"))
    ctx = _ctx(ProviderChain([ses]), clock)
    delays = _run_until_settled(ctx, clock, _batch(2))
    for mid in ("m0", "m1"):
        record = ctx.messages.get_message(mid)
        assert record is not None and record["status"] == "FAILED"
        assert record["last_error"].startswith("throttled past budget (24 h)")
    assert 24 * HOUR <= clock.now - start <= 24 * HOUR + SQS_MAX_DELAY_SECONDS
    # The delay doubles per throttle in a row and stops at SQS's maximum: about 4 tries an hour, not 240.
    assert delays[:3] == sorted(delays[:3]) and delays[0] <= 20
    assert max(delays) == SQS_MAX_DELAY_SECONDS
    assert len(delays) < 24 * 4 + 12
    assert ctx.campaigns.get_campaign(CAMPAIGN).counts.failed == 2  # type: ignore[union-attr]


def test_the_budget_runs_from_the_first_attempt_carried_by_the_queued_work() -> None:
    clock = Clock()
    ses = FakeProvider("ses", fail=lambda e: Throttled("ThrottlingException"))
    ctx = _ctx(ProviderChain([ses]), clock, policy=RetryPolicy(throttle_budget=HOUR))
    first = clock.now
    send_batch(ctx, _batch(1))
    ((message, _),) = _take(ctx)
    assert message.recipients[0].first_attempt_at == first and message.recipients[0].throttles == 1
    clock.now = first + HOUR - 1  # within the budget: waits again, same first attempt
    send_batch(ctx, message)
    ((again, delay),) = _take(ctx)
    assert again.recipients[0].first_attempt_at == first and again.recipients[0].throttles == 2
    assert delay <= 1  # back by the end of the budget for the verdict
    clock.now = first + HOUR
    report = send_batch(ctx, again)
    assert report.outcomes == {"failed": 1} and _take(ctx) == []
    assert ctx.messages.get_message("m0")["last_error"].startswith("throttled past budget (1 h)")  # type: ignore[index]


def test_another_error_keeps_the_first_attempt_and_resets_the_throttle_count() -> None:
    clock = Clock()
    errors = iter([Throttled("ThrottlingException"), Transient("503")])
    ses = FakeProvider("ses", fail=lambda e: next(errors, None))
    ctx = _ctx(ProviderChain([ses]), clock)
    first = clock.now
    send_batch(ctx, _batch(1))
    ((message, delay),) = _take(ctx)
    clock.now += delay
    send_batch(ctx, message)
    ((retry, _),) = _take(ctx)
    assert retry.recipients[0].first_attempt_at == first
    assert retry.recipients[0].throttles == 0 and retry.recipients[0].attempt == 1


def test_the_budget_is_a_setting_read_from_the_environment() -> None:
    settings = Settings.from_env({ENV.table: "t", ENV.throttle_budget_hours: "6", ENV.quota_recheck_minutes: "5"})
    assert settings.throttle_budget_hours == 6 and settings.quota_recheck_minutes == 5
    assert Settings(table_name="t").throttle_budget_hours == 24


# --- parking a provider out of its daily quota ------------------------------------------------------


def test_only_the_daily_quota_error_parks() -> None:
    assert is_quota_exhausted(Throttled(QUOTA, provider="ses"))
    assert not is_quota_exhausted(Throttled("ThrottlingException: Maximum sending rate exceeded", provider="ses"))
    assert not is_quota_exhausted(Transient("LimitExceededException", provider="ses"))


def test_a_rate_type_limit_exceeded_is_plain_throttling_and_the_daily_quota_parks_whatever_its_code() -> None:
    # SES answers the max send RATE with LimitExceededException too: no stage-wide park for that.
    rate = classify_ses_error("LimitExceededException", "Maximum sending rate exceeded.", 400)
    assert isinstance(rate, Throttled) and not is_quota_exhausted(rate)
    daily = classify_ses_error("LimitExceededException", "Daily message quota exceeded.", 400)
    assert isinstance(daily, Throttled) and is_quota_exhausted(daily)
    assert is_quota_exhausted(classify_ses_error("ThrottlingException", "Daily message quota exceeded", 400))
    assert is_quota_exhausted(Throttled("454 Throttling failure: Daily message quota exceeded", provider="ses-smtp"))


def _parked_chain(
    state: InMemorySharedState, clock: Clock, ses: FakeProvider, relay: FakeProvider, quota: QuotaReader
) -> ProviderChain:
    parking = ProviderParking(state, {"ses": quota}, ParkingPolicy(recheck_seconds=600), clock=clock)
    return ProviderChain([ses, relay], parking=parking)


def _email(n: int) -> OutgoingEmail:
    return OutgoingEmail(message_id=f"m{n}", sender="f@example.com", recipient=f"u{n}@example.com", raw=b"x")


def test_a_quota_error_parks_ses_for_every_sender_and_the_relay_carries_the_mail_until_the_quota_frees() -> None:
    clock, state = Clock(), InMemorySharedState()
    full = {"value": True}
    reads: list[float] = []

    def quota() -> tuple[float, float]:
        reads.append(clock.now)
        return (50_000.0 if full["value"] else 42_000.0), 50_000.0

    ses = FakeProvider("ses", fail=lambda e: _quota_error(e) if full["value"] else None)
    relay = FakeProvider("smtp")
    one = _parked_chain(state, clock, ses, relay, quota)
    other = _parked_chain(state, clock, ses, relay, quota)  # another sender, same shared state

    assert one.send(_email(0)).receipt.provider == "smtp"  # the quota error fails over at once
    assert ses.calls == 1
    for n in range(1, 6):
        assert (one if n % 2 else other).send(_email(n)).receipt.provider == "smtp"
    assert ses.calls == 1  # later emails go to the relay without calling SES
    assert one.parking and other.parking
    assert one.parking.parked_until("ses") == other.parking.parked_until("ses") == clock.now + 600
    assert one.parked_until() == 0  # the relay is not parked: the sender claims and sends as usual

    clock.now += 601  # the park ends; the quota is still full: parked again, one quota read stage-wide
    for n in range(6, 9):
        assert (one if n % 2 else other).send(_email(n)).receipt.provider == "smtp"
    assert ses.calls == 1 and len(reads) == 1

    full["value"] = False  # sends from 24 h ago have rolled out of the window
    clock.now += 601
    assert one.send(_email(9)).receipt.provider == "ses"
    clock.now += 6  # the other sender's view refreshes
    assert other.send(_email(10)).receipt.provider == "ses"
    assert len(reads) == 2 and one.parking.parked_until("ses") == 0


def test_an_unreadable_quota_unparks_and_the_next_quota_error_parks_again() -> None:
    clock, state = Clock(), InMemorySharedState()

    def quota() -> tuple[float, float]:
        raise RuntimeError("AccessDenied")

    ses = FakeProvider("ses", fail=_quota_error)
    relay = FakeProvider("smtp")
    chain = _parked_chain(state, clock, ses, relay, quota)
    chain.send(_email(0))
    clock.now += 601
    chain.send(_email(1))  # tried again (one call), refused again: parked again
    chain.send(_email(2))
    assert ses.calls == 2 and len(relay.sent) == 3


def test_while_every_provider_is_parked_a_batch_waits_on_the_queue_with_no_claim_and_no_record_write() -> None:
    clock = Clock()
    store = Stores.in_memory(clock=clock)
    ses = FakeProvider("ses", fail=_quota_error)
    chain = ProviderChain(
        [ses], parking=ProviderParking(store.shared_state, {}, ParkingPolicy(recheck_seconds=3600), clock=clock)
    )
    ctx = _ctx(chain, clock, store=store)
    send_batch(ctx, _batch(2))  # the first send finds the quota used up: parked for an hour
    requeued = [r for message, _ in _take(ctx) for r in message.recipients]
    assert ses.calls == 1 and sorted(r.message_id for r in requeued) == ["m0", "m1"]
    message = _batch(2).model_copy(update={"recipients": requeued})
    writes = store.meter.writes
    before = {m: ctx.messages.get_message(m) for m in ("m0", "m1")}
    report = send_batch(ctx, message)
    assert report.outcomes == {"waiting_parked": 2}
    assert store.meter.writes == writes  # no claim, no record write, no counter
    assert {m: ctx.messages.get_message(m) for m in ("m0", "m1")} == before
    ((waiting, delay),) = _take(ctx)
    assert delay == SQS_MAX_DELAY_SECONDS and ses.calls == 1
    assert waiting.recipients[0].first_attempt_at == message.recipients[0].first_attempt_at


def test_a_recipient_waiting_on_parked_providers_past_the_budget_ends_failed() -> None:
    clock = Clock()
    store = Stores.in_memory(clock=clock)
    ses = FakeProvider("ses", fail=_quota_error)
    parking = ProviderParking(store.shared_state, {"ses": lambda: (10.0, 10.0)}, clock=clock)
    ctx = _ctx(ProviderChain([ses], parking=parking), clock, store=store)
    start = clock.now
    _run_until_settled(ctx, clock, _batch(2))
    assert 24 * HOUR <= clock.now - start <= 24 * HOUR + SQS_MAX_DELAY_SECONDS + 30
    for mid in ("m0", "m1"):
        record = ctx.messages.get_message(mid)
        assert record is not None and record["status"] == "FAILED"
        assert record["last_error"].startswith("throttled past budget")
    assert ses.calls == 1  # SES was asked once; its quota was read every 10 minutes meanwhile


@pytest.mark.parametrize("parked_first", [True, False])
def test_a_parked_provider_is_skipped_with_a_throttle_not_a_failure(parked_first: bool) -> None:
    clock, state = Clock(), InMemorySharedState()
    parking = ProviderParking(state, {}, clock=clock)
    parking.park("ses", Throttled(QUOTA, provider="ses"))
    ses, relay = FakeProvider("ses"), FakeProvider("smtp", fail=lambda e: Throttled("421 4.7.0 later"))
    chain = ProviderChain([ses, relay] if parked_first else [relay, ses], parking=parking)
    with pytest.raises(Throttled):
        chain.send(_email(0))
    assert ses.calls == 0 and relay.calls == 1
