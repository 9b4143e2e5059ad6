"""``ProviderChain``: try providers in order; fail over on provider-level errors only."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from massmailer.errors import SendError, Throttled
from massmailer.mime import OutgoingEmail
from massmailer.providers.base import Provider, SendReceipt


@dataclass
class ChainResult:
    receipt: SendReceipt
    fallbacks: int = 0  # how many providers failed before this one succeeded
    errors: list[SendError] = field(default_factory=list)


class ProviderChain:
    """Ordered providers. A recipient-level error (bad address, mailbox full) is the same everywhere,
    so it is raised at once; any other error moves on to the next provider. When every provider
    failed, the error raised is the most hopeful one: throttled if any provider throttled."""

    def __init__(self, providers: Sequence[Provider], on_fallback: Callable[[SendError], None] | None = None) -> None:
        if not providers:
            raise ValueError("a provider chain needs at least one provider")
        self.providers = list(providers)
        self._on_fallback = on_fallback

    def send(self, email: OutgoingEmail) -> ChainResult:
        errors: list[SendError] = []
        for provider in self.providers:
            try:
                receipt = provider.send(email)
            except SendError as exc:
                if not exc.fail_over:
                    raise
                errors.append(exc)
                if self._on_fallback:
                    self._on_fallback(exc)
                continue
            return ChainResult(receipt=receipt, fallbacks=len(errors), errors=errors)
        throttled = [e for e in errors if isinstance(e, Throttled)]
        raise (throttled[0] if throttled else errors[-1])

    def close(self) -> None:
        for provider in self.providers:
            provider.close()
