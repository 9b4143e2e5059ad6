"""The secondary provider locally: a real SMTP server (aiosmtpd) on loopback writing an outbox.

Each message it accepts is written as one ``.eml`` file a person can open; tests read the same files
(or ``messages``) to count what arrived.
"""

from __future__ import annotations

import itertools
import socket
import threading
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _OutboxHandler:
    def __init__(self, outbox: Path | None) -> None:
        self.outbox = outbox
        self.messages: list[tuple[str, list[str], bytes]] = []
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd API
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode()
        with self._lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), data))
            n = next(self._seq)
        if self.outbox is not None:
            (self.outbox / f"{n:07d}.eml").write_bytes(data)
        return "250 OK queued"


class SmtpRelay:
    """``with SmtpRelay(outbox) as relay: ...`` — listens on 127.0.0.1:<free port>."""

    def __init__(self, outbox: Path | None = None, port: int | None = None) -> None:
        if outbox is not None:
            outbox.mkdir(parents=True, exist_ok=True)
        self.handler = _OutboxHandler(outbox)
        self.port = port or free_port()
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self) -> list[tuple[str, list[str], bytes]]:
        return self.handler.messages

    def start(self) -> SmtpRelay:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpRelay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
