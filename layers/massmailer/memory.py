"""In-memory adapters with the same contracts as the AWS ones: for unit tests and benchmarks.

The queue and blob store live here; the job table's in-memory twins live beside their DynamoDB
repositories in ``massmailer.store`` (``Stores.in_memory()`` builds them all).
"""

from __future__ import annotations

import hashlib
import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence

from massmailer.blobs import READ_SIZE, BlobHead, ObjectChanged, ObjectTooLarge, line_blocks


class InMemoryQueue:
    """Collects what would be sent to SQS, per queue key, with the requested delay."""

    def __init__(self) -> None:
        self.sent: dict[str, list[tuple[str, int]]] = defaultdict(list)
        self.requests = 0
        self._lock = threading.Lock()

    def send(self, queue: str, bodies: Sequence[str], delay_seconds: int = 0) -> None:
        with self._lock:
            self.requests += (len(bodies) + 9) // 10
            self.sent[queue].extend((body, delay_seconds) for body in bodies)

    def drain(self, queue: str) -> list[tuple[str, int]]:
        with self._lock:
            items, self.sent[queue] = self.sent[queue], []
            return items


class InMemoryBlobs:
    """The Blobs port in memory. ``read_size`` is the size of each simulated read (S3 streams 1 MiB
    chunks); tests make it tiny so lines, CSV records and the BOM straddle read boundaries."""

    def __init__(self, read_size: int = READ_SIZE) -> None:
        self.objects: dict[str, bytes] = {}
        self.read_size = read_size

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.objects[key] = data

    def get(self, key: str, max_bytes: int) -> bytes | None:
        data = self.objects.get(key)
        if data is not None and len(data) > max_bytes:
            raise ObjectTooLarge(f"{key} is {len(data)} bytes, over the {max_bytes}-byte limit")
        return data

    def etag(self, key: str) -> str:
        return '"' + hashlib.md5(self.objects[key], usedforsecurity=False).hexdigest() + '"'

    def head(self, key: str, max_bytes: int, if_match: str | None = None) -> BlobHead | None:
        if key not in self.objects:
            return None
        self._check(key, if_match)
        data = self.objects[key]
        return BlobHead(data[:max_bytes], len(data), self.etag(key))

    def blocks(self, key: str, start: int = 0, if_match: str | None = None) -> Iterator[tuple[bytes, int]]:
        self._check(key, if_match)
        data, size = self.objects[key], self.read_size
        yield from line_blocks((data[i : i + size] for i in range(start, len(data), size)), start)

    def _check(self, key: str, if_match: str | None) -> None:
        if if_match and self.etag(key) != if_match:
            raise ObjectChanged(f"{key} was replaced (ETag is no longer {if_match})")
