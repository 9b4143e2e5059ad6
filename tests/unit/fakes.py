"""In-memory providers that fail on demand (unit tier: no network)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from massmailer.errors import SendError
from massmailer.mime import OutgoingEmail
from massmailer.providers.base import SendReceipt


@dataclass
class FakeProvider:
    name: str
    fail: Callable[[OutgoingEmail], SendError | None] | None = None
    sent: list[OutgoingEmail] = field(default_factory=list)
    calls: int = 0

    def send(self, email: OutgoingEmail) -> SendReceipt:
        self.calls += 1
        error = self.fail(email) if self.fail else None
        if error is not None:
            raise error
        self.sent.append(email)
        return SendReceipt(provider=self.name, provider_message_id=f"{self.name}-{len(self.sent)}")

    def close(self) -> None:
        return None
