"""``ProviderChain``: try providers in order; fail over on provider-level errors only.

Each provider is guarded by the shared circuit breaker (an open circuit is skipped without a call)
and its shared rate limit (a token is taken before the call; our own limit reached counts as
throttling). Recipient-level errors — a bad address, a full mailbox — are the same whichever provider
is asked, so they are raised at once and never fail over.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from massmailer.errors import ProviderDown, Refused, SendError, Throttled
from massmailer.mime import OutgoingEmail
from massmailer.providers.base import Provider, SendReceipt
from massmailer.resilience import CircuitBreaker, RateLimiter


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
    ) -> None:
        if not providers:
            raise ValueError("a provider chain needs at least one provider")
        self.providers = list(providers)
        self.breaker = breaker
        self.limiter = limiter

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
        if self.breaker is not None and not self.breaker.allow(first.name):
            skipped: list[SendError] = [ProviderDown("circuit open", provider=first.name)]
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
        if self.breaker is not None:
            self.breaker.record_failure(provider.name, exc)
        if not exc.fail_over:
            raise exc
        return self._send_from(email, lane, 1, [exc], attempted=True)

    def _send_from(
        self, email: OutgoingEmail, lane: str, start: int, errors: list[SendError], attempted: bool
    ) -> ChainResult:
        for provider in self.providers[start:]:
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
        if not errors:  # pragma: no cover - _send_from is only entered with providers left or errors
            raise ProviderDown("no provider", provider="chain")
        throttled = [e for e in errors if isinstance(e, Throttled)]
        if throttled:
            raise throttled[0]
        if not attempted:
            # Every circuit is open: nothing was tried, so no attempt is used; come back later.
            raise Throttled("every provider's circuit is open", provider=errors[-1].provider)
        refused = [e for e in errors if isinstance(e, Refused)]
        others = [e for e in errors if not isinstance(e, Refused)]
        if refused and not others:  # every provider refused the message itself: it fails
            if len(refused) == 1:
                raise refused[0]
            raise Refused("every provider refused: " + "; ".join(e.describe() for e in refused), provider="chain")
        # A provider that refused is not the last word while another may take it later (its error retries).
        raise (others or errors)[-1]

    def close(self) -> None:
        for provider in self.providers:
            provider.close()
