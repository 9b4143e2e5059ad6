"""The object-storage port: audiences (CSV/JSONL) and attachments in the bucket.

Audiences are read in *blocks of whole lines* (``blocks``), never whole: the splitter parses a block
with a few C-level calls (decode, split) instead of one generator step per line, and its checkpoint
is a byte offset, so a resumed split starts with a ranged GET. ``head`` reads the start of an object
(the CSV header, a sample for sizing) together with its size and ETag; passing that ETag back as
``if_match`` makes every later read fail with :class:`ObjectChanged` if the object was replaced.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from massmailer.store import StoreUnavailable

READ_SIZE = 1 << 20  # bytes per read: one S3 streaming chunk
MAX_LINE = 1 << 20  # a longer line is not held: it is skipped and reported as OVERSIZED_LINE


class ObjectTooLarge(ValueError):
    pass


class ObjectChanged(Exception):
    """The object no longer has the ETag it was read with (it was replaced)."""


class _Oversized(bytes):
    """The type of OVERSIZED_LINE (a distinct object, compared by identity)."""


OVERSIZED_LINE: Final[bytes] = _Oversized(b"")
"""Yielded by ``blocks`` in place of a line longer than ``MAX_LINE``; its offset is the line's end."""


@dataclass(frozen=True)
class BlobHead:
    data: bytes  # the first bytes of the object (at most the requested number)
    size: int  # the whole object's size in bytes
    etag: str | None = None


class Blobs(Protocol):
    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...
    def get(self, key: str, max_bytes: int) -> bytes | None: ...
    def head(self, key: str, max_bytes: int, if_match: str | None = None) -> BlobHead | None: ...
    def blocks(self, key: str, start: int = 0, if_match: str | None = None) -> Iterator[tuple[bytes, int]]: ...


class Uploads(Protocol):
    """Writing a large object in parts (S3 multipart upload: every part but the last ≥ 5 MiB), so the
    writer holds one part at a time; and a time-limited GET link to an object (a presigned URL)."""

    def start_upload(self, key: str, content_type: str) -> str: ...
    def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> str: ...
    def complete_upload(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> None: ...
    def abort_upload(self, key: str, upload_id: str) -> None: ...
    def download_url(self, key: str, expires_seconds: int, filename: str) -> str: ...


MIN_PART = 5 << 20  # S3's smallest part but the last


class S3Blobs:
    """S3 adapter: ``head`` is one ranged GET, ``blocks`` streams a ranged GET from a byte offset."""

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
            if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise StoreUnavailable(f"get {key}: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"get {key}: {exc}") from exc
        if int(response.get("ContentLength", 0)) > max_bytes:
            response["Body"].close()
            raise ObjectTooLarge(f"{key} is {response['ContentLength']} bytes, over the {max_bytes}-byte limit")
        return bytes(response["Body"].read())

    def head(self, key: str, max_bytes: int, if_match: str | None = None) -> BlobHead | None:
        """The first ``max_bytes`` bytes, the size and the ETag; None when the object does not exist."""
        response = self._get(key, f"bytes=0-{max_bytes - 1}", if_match)
        if response is None:
            return BlobHead(b"", 0)  # an empty object: S3 refuses any range of it
        if response is False:
            return None
        data = bytes(response["Body"].read())
        content_range = response.get("ContentRange") or ""  # "bytes 0-1023/123456"
        size = int(content_range.rpartition("/")[2]) if "/" in content_range else len(data)
        return BlobHead(data, size, response.get("ETag"))

    def blocks(self, key: str, start: int = 0, if_match: str | None = None) -> Iterator[tuple[bytes, int]]:
        response = self._get(key, f"bytes={start}-" if start else None, if_match)
        if response is None:
            return  # at or past the end
        if response is False:
            raise StoreUnavailable(f"get {key}: the object does not exist")
        yield from line_blocks(response["Body"].iter_chunks(chunk_size=READ_SIZE), start)

    def start_upload(self, key: str, content_type: str) -> str:
        try:
            response = self._client.create_multipart_upload(Bucket=self._bucket, Key=key, ContentType=content_type)
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable(f"start upload {key}: {exc}") from exc
        return str(response["UploadId"])

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        """The part's ETag (what ``complete_upload`` names it by)."""
        try:
            response = self._client.upload_part(
                Bucket=self._bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable(f"upload part {number} of {key}: {exc}") from exc
        return str(response["ETag"])

    def complete_upload(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
        """``parts``: ``[{"n": number, "etag": …}]`` in order."""
        try:
            self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": int(p["n"]), "ETag": str(p["etag"])} for p in parts]},
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable(f"complete upload {key}: {exc}") from exc

    def abort_upload(self, key: str, upload_id: str) -> None:
        try:
            self._client.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable(f"abort upload {key}: {exc}") from exc

    def download_url(self, key: str, expires_seconds: int, filename: str) -> str:
        """A presigned GET of ``key``, valid ``expires_seconds`` (signed locally: no request made)."""
        return str(
            self._client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self._bucket,
                    "Key": key,
                    "ResponseContentDisposition": f'attachment; filename="{filename}"',
                },
                ExpiresIn=expires_seconds,
            )
        )

    def _get(self, key: str, byte_range: str | None, if_match: str | None) -> Any:
        """GetObject; None for an unsatisfiable range, False for a missing object."""
        kwargs: dict[str, Any] = {"Bucket": self._bucket, "Key": key}
        if byte_range:
            kwargs["Range"] = byte_range
        if if_match:
            kwargs["IfMatch"] = if_match
        try:
            return self._client.get_object(**kwargs)
        except ClientError as exc:
            code = _code(exc)
            if code == "InvalidRange":
                return None
            if code in ("NoSuchKey", "404", "NotFound"):
                return False
            if code in ("PreconditionFailed", "412"):
                raise ObjectChanged(f"{key} was replaced (ETag is no longer {if_match})") from exc
            raise StoreUnavailable(f"get {key}: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"get {key}: {exc}") from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def line_blocks(chunks: Iterable[bytes], start: int = 0, max_line: int = MAX_LINE) -> Iterator[tuple[bytes, int]]:
    """Re-cut a byte stream into blocks of whole lines: (block, offset just after it).

    Every block but the last ends with a newline; the last may end without one (the object's final
    line). A line that runs on across reads is not accumulated beyond ``max_line``: it is yielded as
    ``OVERSIZED_LINE`` with the offset just after it, so the reader counts it as one bad row, the
    offsets stay exact and memory stays bounded whatever the object holds.
    """
    offset = start  # the stream offset of pending[0]
    pending: list[bytes] = []  # bytes of a line that is still incomplete
    pending_size = 0
    skipping = False  # inside an oversized line: drop bytes until its newline
    for chunk in chunks:
        if skipping:
            newline = chunk.find(b"\n")
            if newline < 0:
                offset += len(chunk)
                continue
            offset += newline + 1
            chunk = chunk[newline + 1 :]
            skipping = False
            yield OVERSIZED_LINE, offset
        last = chunk.rfind(b"\n")
        if last < 0:
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size > max_line:
                offset += pending_size
                pending, pending_size, skipping = [], 0, True
            continue
        if pending:
            first = chunk.find(b"\n")
            if pending_size + first > max_line:  # the pending line ends in this chunk, too long
                offset += pending_size + first + 1
                yield OVERSIZED_LINE, offset
                chunk, last = chunk[first + 1 :], last - first - 1
                pending, pending_size = [], 0
                if last < 0:
                    pending, pending_size = ([chunk], len(chunk)) if chunk else ([], 0)
                    continue
        block = b"".join((*pending, chunk[: last + 1])) if pending else chunk[: last + 1]
        offset += len(block)
        yield block, offset
        rest = chunk[last + 1 :]
        pending, pending_size = ([rest], len(rest)) if rest else ([], 0)
    if skipping:
        yield OVERSIZED_LINE, offset
    elif pending:
        block = b"".join(pending)
        if len(block) > max_line:
            yield OVERSIZED_LINE, offset + len(block)
        else:
            yield block, offset + len(block)
