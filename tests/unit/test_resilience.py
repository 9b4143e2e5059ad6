"""Shared rate limits and circuit breakers (in-memory shared state, fake clock)."""

from __future__ import annotations

import pytest

from massmailer.errors import HardBounce, ProviderDown, Refused, SoftBounce, Throttled, Transient
from massmailer.mime import OutgoingEmail
from massmailer.providers.chain import ProviderChain
from massmailer.resilience import BreakerPolicy, CircuitBreaker, RateLimit, RateLimiter
from massmailer.store.provider_state import InMemorySharedState
from tests.unit.fakes import FakeProvider


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _email(to: str = "a@example.com") -> OutgoingEmail:
    return OutgoingEmail(message_id="m", sender="f@example.com", recipient=to, raw=b"x")


def test_the_bucket_is_shared_by_all_senders_and_taken_in_chunks() -> None:
    state, clock = InMemorySharedState(), Clock()
    limits = {"ses": RateLimit(per_second=100, high_reserve=0.0, chunk=10)}
    senders = [RateLimiter(state, limits, clock=clock, sleep=clock.sleep, max_wait=0) for _ in range(3)]
    taken = 0
    for _ in range(200):
        for limiter in senders:
            try:
                limiter.acquire("ses", "high")
                taken += 1
            except Throttled:
                pass
    assert taken == 100  # three senders together never exceed the provider's rate in one second
    # one shared write per chunk of 10, plus each sender finding the window full once (chunks 10, 5, 2, 1)
    assert state.meter.writes == 10 + 3 * 4
    clock.now += 1
    senders[0].acquire("ses", "high")  # the next window refills


def test_the_low_lane_cannot_take_the_share_reserved_for_the_high_lane() -> None:
    state, clock = InMemorySharedState(), Clock()
    limits = {"ses": RateLimit(per_second=100, high_reserve=0.2, chunk=5)}
    low = RateLimiter(state, limits, clock=clock, sleep=clock.sleep, max_wait=0)
    high = RateLimiter(state, limits, clock=clock, sleep=clock.sleep, max_wait=0)
    sent_low = 0
    with pytest.raises(Throttled):
        while True:
            low.acquire("ses", "low")
            sent_low += 1
    assert sent_low == 80
    for _ in range(20):
        high.acquire("ses", "high")  # the reserved fifth is still there for transactional mail


def test_a_sender_waits_for_the_next_window_rather_than_failing() -> None:
    state, clock = InMemorySharedState(), Clock(1000.5)
    limiter = RateLimiter(state, {"ses": RateLimit(per_second=2, high_reserve=0)}, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        limiter.acquire("ses", "high")
    assert 1001 <= clock.now < 1002  # the third token came from the next one-second window


def test_provider_failures_open_the_circuit_for_every_sender_then_one_probe_closes_it() -> None:
    state, clock = InMemorySharedState(), Clock()
    policy = BreakerPolicy(failure_threshold=3, cooldown_seconds=30, refresh_seconds=0)
    a, b = CircuitBreaker(state, policy, clock), CircuitBreaker(state, policy, clock)
    for _ in range(3):
        a.record_failure("ses", ProviderDown("refused", provider="ses"))
    assert not a.allow("ses") and not b.allow("ses")  # shared: b never saw a failure itself
    clock.now += 31
    assert b.allow("ses")  # b wins the half-open probe...
    assert not a.allow("ses")  # ...so a keeps failing over meanwhile
    b.record_success("ses")
    assert a.allow("ses") and a.status("ses") == "closed"


def test_a_failed_probe_reopens_the_circuit() -> None:
    state, clock = InMemorySharedState(), Clock()
    breaker = CircuitBreaker(state, BreakerPolicy(failure_threshold=1, cooldown_seconds=10, refresh_seconds=0), clock)
    breaker.record_failure("ses", Transient("503", provider="ses"))
    clock.now += 11
    assert breaker.allow("ses")
    breaker.record_failure("ses", Transient("503", provider="ses"))
    assert not breaker.allow("ses")
    clock.now += 11
    assert breaker.allow("ses")


@pytest.mark.parametrize("error", [HardBounce("550"), SoftBounce("452 4.2.2"), Throttled("slow")])
def test_recipient_errors_and_throttling_never_trip_the_breaker(error: Exception) -> None:
    state, clock = InMemorySharedState(), Clock()
    breaker = CircuitBreaker(state, BreakerPolicy(failure_threshold=1, refresh_seconds=0), clock)
    for _ in range(10):
        breaker.record_failure("ses", error)  # type: ignore[arg-type]
    assert breaker.allow("ses")


def test_the_chain_skips_an_open_circuit_without_calling_the_provider() -> None:
    state, clock = InMemorySharedState(), Clock()
    breaker = CircuitBreaker(state, BreakerPolicy(failure_threshold=2, refresh_seconds=0), clock)
    ses = FakeProvider("ses", fail=lambda e: ProviderDown("refused", provider="ses"))
    smtp = FakeProvider("smtp")
    chain = ProviderChain([ses, smtp], breaker=breaker)
    for i in range(10):
        result = chain.send(_email(f"u{i}@example.com"))
        assert result.receipt.provider == "smtp"
    assert ses.calls == 2  # after the threshold SES is no longer called at all
    assert len(smtp.sent) == 10


def test_every_circuit_open_is_a_later_not_a_failed_attempt() -> None:
    state, clock = InMemorySharedState(), Clock()
    breaker = CircuitBreaker(state, BreakerPolicy(failure_threshold=1, refresh_seconds=0), clock)
    for name in ("ses", "smtp"):
        breaker.record_failure(name, ProviderDown("x", provider=name))
    chain = ProviderChain([FakeProvider("ses"), FakeProvider("smtp")], breaker=breaker)
    with pytest.raises(Throttled):
        chain.send(_email())


def test_a_skipped_provider_with_its_circuit_open_does_not_hide_a_real_refusal() -> None:
    # SES refuses the message; the relay's circuit is open (skipped, never asked): the refusal stands.
    state, clock = InMemorySharedState(), Clock()
    breaker = CircuitBreaker(state, BreakerPolicy(failure_threshold=1, refresh_seconds=0), clock)
    breaker.record_failure("smtp", ProviderDown("x", provider="smtp"))
    ses = FakeProvider("ses", fail=lambda e: Refused("MessageRejected: Email address is not verified", provider="ses"))
    smtp = FakeProvider("smtp")
    chain = ProviderChain([ses, smtp], breaker=breaker)
    with pytest.raises(Refused) as raised:
        chain.send(_email())
    assert raised.value.provider == "ses" and "Email address is not verified" in str(raised.value)
    assert ses.calls == 1 and smtp.calls == 0
    # A provider that was asked and is down still keeps the message retryable (not a refusal).
    breaker2 = CircuitBreaker(InMemorySharedState(), BreakerPolicy(failure_threshold=3, refresh_seconds=0), clock)
    down = FakeProvider("smtp", fail=lambda e: ProviderDown("connection lost", provider="smtp"))
    with pytest.raises(ProviderDown):
        ProviderChain([ses, down], breaker=breaker2).send(_email())


def test_the_chain_fails_over_when_our_own_rate_limit_is_reached() -> None:
    state, clock = InMemorySharedState(), Clock()
    limiter = RateLimiter(
        state, {"ses": RateLimit(per_second=2, high_reserve=0)}, clock=clock, sleep=clock.sleep, max_wait=0
    )
    ses, smtp = FakeProvider("ses"), FakeProvider("smtp")
    chain = ProviderChain([ses, smtp], limiter=limiter)
    providers = [chain.send(_email()).receipt.provider for _ in range(4)]
    assert providers == ["ses", "ses", "smtp", "smtp"]
