"""In-memory adapters with the same contracts as the AWS ones: for unit tests and benchmarks.

The queue and blob store live here; the job table's in-memory twins live beside their DynamoDB
repositories in ``massmailer.store`` (``Stores.in_memory()`` builds them all).
"""

from __future__ import annotations

import hashlib
import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

from massmailer.blobs import MIN_PART, READ_SIZE, BlobHead, ObjectChanged, ObjectTooLarge, line_blocks


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
        self.uploads: dict[str, dict[int, bytes]] = {}  # upload id → its parts so far

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

    def start_upload(self, key: str, content_type: str) -> str:
        upload_id = f"upload-{len(self.uploads) + 1}"
        self.uploads[upload_id] = {}
        return upload_id

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        self.uploads[upload_id][number] = bytes(data)
        return '"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"'

    def complete_upload(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
        stored = self.uploads.pop(upload_id)
        numbers = [int(p["n"]) for p in parts]
        for number, data in stored.items():
            if number in numbers[:-1] and len(data) < MIN_PART:
                raise ValueError(f"part {number} is under S3's 5 MiB minimum")
        self.objects[key] = b"".join(stored[n] for n in numbers)

    def abort_upload(self, key: str, upload_id: str) -> None:
        self.uploads.pop(upload_id, None)

    def download_url(self, key: str, expires_seconds: int, filename: str) -> str:
        return f"memory://{key}?expires={expires_seconds}"

    def _check(self, key: str, if_match: str | None) -> None:
        if if_match and self.etag(key) != if_match:
            raise ObjectChanged(f"{key} was replaced (ETag is no longer {if_match})")
