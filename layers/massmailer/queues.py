"""The queue port: put work on a lane (high/low), on the split queue, or back with a delay."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from massmailer.spec import SQS_MAX_DELAY_SECONDS

SQS_BATCH = 10


class QueueUnavailable(Exception):
    """A message could not be enqueued; nothing that was accepted may be dropped silently."""


class Queue(Protocol):
    def send(self, queue: str, bodies: Sequence[str], delay_seconds: int = 0) -> None: ...


class SqsQueue:
    """SQS adapter. ``urls`` maps a queue key from the spec (``high``, ``low``, ``split``) to its URL."""

    def __init__(self, client: Any, urls: Mapping[str, str]) -> None:
        self._client = client
        self._urls = dict(urls)

    def send(self, queue: str, bodies: Sequence[str], delay_seconds: int = 0) -> None:
        url = self._urls.get(queue)
        if not url:
            raise QueueUnavailable(f"no URL configured for queue {queue!r}")
        delay = max(0, min(int(delay_seconds), SQS_MAX_DELAY_SECONDS))
        for start in range(0, len(bodies), SQS_BATCH):
            entries = [
                {"Id": str(i), "MessageBody": body, **({"DelaySeconds": delay} if delay else {})}
                for i, body in enumerate(bodies[start : start + SQS_BATCH])
            ]
            for _ in range(3):  # retry the entries SQS reports as failed
                try:
                    result = self._client.send_message_batch(QueueUrl=url, Entries=entries)
                except Exception as exc:
                    raise QueueUnavailable(f"send to {queue}: {exc}") from exc
                failed_ids = {f["Id"] for f in result.get("Failed", [])}
                entries = [e for e in entries if e["Id"] in failed_ids]
                if not entries:
                    break
            if entries:
                raise QueueUnavailable(f"send to {queue}: {len(entries)} entries failed")
