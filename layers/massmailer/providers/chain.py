"""``ProviderChain``: try providers in order; fail over on provider-level errors only.

Each provider is guarded by the shared circuit breaker (an open circuit is skipped without a call)
and its shared rate limit (a token is taken before the call; our own limit reached counts as
throttling). A provider out of its daily quota is parked for every sender (``ProviderParking``):
skipped without a call until its quota frees room, the next provider carrying the mail meanwhile.
Recipient-level errors — a bad address, a full mailbox — are the same whichever provider
is asked, so they are raised at once and never fail over.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from massmailer.errors import ProviderDown, Refused, SendError, Throttled
from massmailer.mime import OutgoingEmail
from massmailer.providers.base import Provider, SendReceipt
from massmailer.resilience import (
    CircuitBreaker,
    CircuitOpen,
    ProviderParked,
    ProviderParking,
    RateLimiter,
    is_quota_exhausted,
)


@dataclass
class ChainResult:
    receipt: SendReceipt
    fallbacks: int = 0  # how many providers failed or were skipped before this one succeeded
    errors: list[SendError] = field(default_factory=list)


class Pending:
    """A send in flight (see ``ProviderChain.submit``); ``result()`` may be called once."""

    def __init__(self, finish: Callable[[], ChainResult]) -> None:
        self._finish = finish

    def result(self) -> ChainResult:
        return self._finish()


class ProviderChain:
    def __init__(
        self,
        providers: Sequence[Provider],
        breaker: CircuitBreaker | None = None,
        limiter: RateLimiter | None = None,
        parking: ProviderParking | None = None,
    ) -> None:
        if not providers:
            raise ValueError("a provider chain needs at least one provider")
        self.providers = list(providers)
        self.breaker = breaker
        self.limiter = limiter
        self.parking = parking

    def parked_until(self) -> float:
        """0 when some provider may be tried now; else when the first park ends (epoch seconds).
        Reads the shared park state at most every few seconds; never writes."""
        if self.parking is None:
            return 0.0
        ends = [self.parking.parked_until(p.name) for p in self.providers]
        return min(ends)  # 0 (not parked) is the smallest

    def _skip(self, provider: Provider) -> SendError | None:
        """Why ``provider`` is skipped without a call (parked, or its circuit open), or None."""
        if self.parking is not None and not self.parking.usable(provider.name):
            return ProviderParked("parked: daily quota used up", provider=provider.name)
        if self.breaker is not None and not self.breaker.allow(provider.name):
            return CircuitOpen("circuit open", provider=provider.name)
        return None

    def _failed(self, provider: Provider, exc: SendError) -> None:
        if self.breaker is not None:
            self.breaker.record_failure(provider.name, exc)
        if self.parking is not None and is_quota_exhausted(exc):
            self.parking.park(provider.name, exc)

    def send(self, email: OutgoingEmail, lane: str = "low") -> ChainResult:
        return self._send_from(email, lane, 0, [], attempted=False)

    def submit(self, email: OutgoingEmail, lane: str = "low") -> Pending:
        """Start a send; ``result()`` of what it returns finishes it exactly as ``send`` would.

        When the first provider can pipeline (the SMTP provider's ``submit``), the message is put on
        its way now — behind the message before it on the same session — so a sender that prepares
        the next email before waiting for this one keeps one round trip per email. Otherwise
        nothing happens until ``result()``."""
        first = self.providers[0]
        pipeline = getattr(first, "submit", None)
        if pipeline is None:
            return Pending(lambda: self.send(email, lane))
        skip = self._skip(first)
        if skip is not None:
            skipped: list[SendError] = [skip]
            return Pending(lambda: self._send_from(email, lane, 1, skipped, attempted=False))
        try:
            if self.limiter is not None:
                self.limiter.acquire(first.name, lane)
            handle = pipeline(email)
        except SendError as exc:
            error = exc  # (``exc`` is unbound when the block ends)
            return Pending(lambda: self._failed_over(first, error, email, lane))
        return Pending(lambda: self._collect(first, handle, email, lane))

    def _collect(self, provider: Any, handle: Any, email: OutgoingEmail, lane: str) -> ChainResult:
        try:
            receipt = provider.result(handle)
        except SendError as exc:
            return self._failed_over(provider, exc, email, lane)
        if self.breaker is not None:
            self.breaker.record_success(provider.name)
        return ChainResult(receipt=receipt)

    def _failed_over(self, provider: Provider, exc: SendError, email: OutgoingEmail, lane: str) -> ChainResult:
        """The first provider failed: as ``send`` does, on to the next ones (or raise)."""
        self._failed(provider, exc)
        if not exc.fail_over:
            raise exc
        return self._send_from(email, lane, 1, [exc], attempted=True)

    def _send_from(
        self, email: OutgoingEmail, lane: str, start: int, errors: list[SendError], attempted: bool
    ) -> ChainResult:
        for provider in self.providers[start:]:
            skip = self._skip(provider)
            if skip is not None:
                errors.append(skip)
                continue
            try:
                if self.limiter is not None:
                    self.limiter.acquire(provider.name, lane)
                attempted = True
                receipt = provider.send(email)
            except SendError as exc:
                self._failed(provider, exc)
                if not exc.fail_over:
                    raise
                errors.append(exc)
                continue
            if self.breaker is not None:
                self.breaker.record_success(provider.name)
            return ChainResult(receipt=receipt, fallbacks=len(errors), errors=errors)
        if not errors:  # pragma: no cover - _send_from is only entered with providers left or errors
            raise ProviderDown("no provider", provider="chain")
        throttled = [e for e in errors if isinstance(e, Throttled)]
        if throttled:
            raise throttled[0]
        if not attempted:
            # Every circuit is open: nothing was tried, so no attempt is used; come back later.
            raise Throttled("every provider's circuit is open", provider=errors[-1].provider)
        asked = [e for e in errors if not isinstance(e, CircuitOpen)]  # a skipped provider refused nothing
        refused = [e for e in asked if isinstance(e, Refused)]
        others = [e for e in asked if not isinstance(e, Refused)]
        if refused and not others:  # every provider asked refused the message itself: it fails
            if len(refused) == 1:
                raise refused[0]
            raise Refused("every provider refused: " + "; ".join(e.describe() for e in refused), provider="chain")
        # A provider that refused is not the last word while another may take it later (its error retries).
        raise (others or errors)[-1]

    def close(self) -> None:
        for provider in self.providers:
            provider.close()
