"""The secondary provider locally: a real SMTP server (aiosmtpd) on loopback writing an outbox.

Each message it accepts is written as one ``.eml`` file a person can open; tests read the same files
(or ``messages``) to count what arrived. ``fault`` makes it refuse recipients for a while, as a
relay under pressure does: ``"throttle"`` answers ``451 4.3.2`` (try again later), ``"down"``
answers ``421 4.3.0`` (service not available); ``None`` accepts again.
"""

from __future__ import annotations

import itertools
import socket
import threading
from collections import deque
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_FAULT_REPLIES = {
    "throttle": "451 4.3.2 System busy, try again later",
    "down": "421 4.3.0 Service not available",
}


class _OutboxHandler:
    def __init__(self, outbox: Path | None, keep: int | None = None) -> None:
        self.outbox = outbox
        # Every message received, or the last ``keep`` of them (a long-running relay writes them all
        # to the outbox anyway).
        self.messages: list[tuple[str, list[str], bytes]] | deque[tuple[str, list[str], bytes]] = (
            [] if keep is None else deque(maxlen=keep)
        )
        self.received = 0
        self.refused = 0
        self.fault: str | None = None
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    async def handle_RCPT(  # noqa: N802 - aiosmtpd API
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        fault = self.fault
        if fault in _FAULT_REPLIES:
            with self._lock:
                self.refused += 1
            return _FAULT_REPLIES[fault]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd API
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode()
        with self._lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), data))
            self.received += 1
            n = next(self._seq)
        if self.outbox is not None:
            (self.outbox / f"{n:07d}.eml").write_bytes(data)
        return "250 OK queued"


class SmtpRelay:
    """``with SmtpRelay(outbox) as relay: ...`` — listens on 127.0.0.1:<free port>."""

    def __init__(self, outbox: Path | None = None, port: int | None = None, keep: int | None = None) -> None:
        if outbox is not None:
            outbox.mkdir(parents=True, exist_ok=True)
        self.handler = _OutboxHandler(outbox, keep)
        self.port = port or free_port()
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self) -> list[tuple[str, list[str], bytes]] | deque[tuple[str, list[str], bytes]]:
        return self.handler.messages

    @property
    def fault(self) -> str | None:
        return self.handler.fault

    @fault.setter
    def fault(self, value: str | None) -> None:
        if value not in (None, *_FAULT_REPLIES):
            raise ValueError(f"SMTP relay fault must be one of {', '.join(_FAULT_REPLIES)} or None")
        self.handler.fault = value

    def start(self) -> SmtpRelay:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpRelay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
