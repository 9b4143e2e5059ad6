"""The object-storage port: audiences (JSONL/CSV) and attachments in the bucket."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from massmailer.store import StoreUnavailable


class ObjectTooLarge(ValueError):
    pass


class Blobs(Protocol):
    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...
    def get(self, key: str, max_bytes: int) -> bytes | None: ...
    def lines(self, key: str, start: int = 0) -> Iterator[tuple[bytes, int]]: ...


class S3Blobs:
    """S3 adapter; ``lines`` streams an object from a byte offset (ranged GET), never loading it whole."""

    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        try:
            self._client.put_object(Bucket=self._bucket, Key=key, Body=data, ContentType=content_type)
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable(f"put {key}: {exc}") from exc

    def get(self, key: str, max_bytes: int) -> bytes | None:
        """The object's bytes; None when it does not exist; ``ObjectTooLarge`` over ``max_bytes``."""
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise StoreUnavailable(f"get {key}: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"get {key}: {exc}") from exc
        if int(response.get("ContentLength", 0)) > max_bytes:
            response["Body"].close()
            raise ObjectTooLarge(f"{key} is {response['ContentLength']} bytes, over the {max_bytes}-byte limit")
        return bytes(response["Body"].read())

    def lines(self, key: str, start: int = 0) -> Iterator[tuple[bytes, int]]:
        """Yield (line without its newline, byte offset just after it) from ``start`` on."""
        try:
            kwargs: dict[str, Any] = {"Bucket": self._bucket, "Key": key}
            if start:
                kwargs["Range"] = f"bytes={start}-"
            body = self._client.get_object(**kwargs)["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return
            raise StoreUnavailable(f"get {key}: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"get {key}: {exc}") from exc
        yield from split_lines(body.iter_chunks(chunk_size=1 << 20), start)


def split_lines(chunks: Iterable[bytes], start: int = 0) -> Iterator[tuple[bytes, int]]:
    """Lines of a byte stream read in chunks: (line without its newline, offset just after it)."""
    offset = start
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            offset += len(line) + 1
            yield line, offset
    if pending:
        offset += len(pending)
        yield pending, offset
