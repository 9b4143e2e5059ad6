"""The ``Provider`` port: send one rendered message or raise a ``massmailer.errors.SendError``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from massmailer.mime import OutgoingEmail


@dataclass(frozen=True)
class SendReceipt:
    provider: str
    provider_message_id: str


class Provider(Protocol):
    name: str

    def send(self, email: OutgoingEmail) -> SendReceipt: ...

    def close(self) -> None: ...
