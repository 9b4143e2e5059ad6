"""``ProviderChain``: try providers in order; fail over on provider-level errors only.

Each provider is guarded by the shared circuit breaker (an open circuit is skipped without a call)
and its shared rate limit (a token is taken before the call; our own limit reached counts as
throttling). Recipient-level errors — a bad address, a full mailbox — are the same whichever provider
is asked, so they are raised at once and never fail over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from massmailer.errors import ProviderDown, SendError, Throttled
from massmailer.mime import OutgoingEmail
from massmailer.providers.base import Provider, SendReceipt
from massmailer.resilience import CircuitBreaker, RateLimiter


@dataclass
class ChainResult:
    receipt: SendReceipt
    fallbacks: int = 0  # how many providers failed or were skipped before this one succeeded
    errors: list[SendError] = field(default_factory=list)


class ProviderChain:
    def __init__(
        self,
        providers: Sequence[Provider],
        breaker: CircuitBreaker | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        if not providers:
            raise ValueError("a provider chain needs at least one provider")
        self.providers = list(providers)
        self.breaker = breaker
        self.limiter = limiter

    def send(self, email: OutgoingEmail, lane: str = "low") -> ChainResult:
        errors: list[SendError] = []
        attempted = False
        for provider in self.providers:
            if self.breaker is not None and not self.breaker.allow(provider.name):
                errors.append(ProviderDown("circuit open", provider=provider.name))
                continue
            try:
                if self.limiter is not None:
                    self.limiter.acquire(provider.name, lane)
                attempted = True
                receipt = provider.send(email)
            except SendError as exc:
                if self.breaker is not None:
                    self.breaker.record_failure(provider.name, exc)
                if not exc.fail_over:
                    raise
                errors.append(exc)
                continue
            if self.breaker is not None:
                self.breaker.record_success(provider.name)
            return ChainResult(receipt=receipt, fallbacks=len(errors), errors=errors)
        throttled = [e for e in errors if isinstance(e, Throttled)]
        if throttled:
            raise throttled[0]
        if not attempted:
            # Every circuit is open: nothing was tried, so no attempt is used; come back later.
            raise Throttled("every provider's circuit is open", provider=errors[-1].provider)
        raise errors[-1]

    def close(self) -> None:
        for provider in self.providers:
            provider.close()
