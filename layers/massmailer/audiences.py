"""Audience objects in the bucket: their format, the CSV header, and a size estimate.

An audience is CSV or JSONL, chosen by the object key's extension (``spec.AUDIENCE_FORMATS``):

- **JSONL** (``.jsonl``, ``.ndjson``): one ``{"email": "...", "variables": {...}}`` per line.
- **CSV** (``.csv``): UTF-8 (an optional BOM is skipped), RFC 4180 — comma-separated, fields may be
  quoted with ``"`` (a quote inside is doubled; a quoted field may hold commas and line breaks),
  LF or CRLF line ends. The first record is the header: one column named ``email`` (any letter
  case, surrounding spaces ignored) holds the address; every other named column becomes a string
  variable of that name (an empty cell is an empty string; a column with an empty name is ignored).

Both the intake (to refuse a bad object with a clear 422 before accepting the campaign) and the
splitter (on every invocation, to find where the rows start) read the object's first MiB through
:func:`open_audience`.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from dataclasses import dataclass

from massmailer.blobs import BlobHead, Blobs
from massmailer.spec import AUDIENCE_FORMATS

HEAD_BYTES = 1 << 20  # the header must end within the first MiB; the rest is the sizing sample
BOM = b"\xef\xbb\xbf"


class AudienceError(ValueError):
    """The audience object cannot be used (missing, unsupported, no email column, …); the message
    says why, in words meant for the API caller."""


@dataclass(frozen=True)
class CsvHeader:
    columns: tuple[str, ...]  # the header's names, spaces around them stripped
    email_index: int

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(n for i, n in enumerate(self.columns) if i != self.email_index and n)


@dataclass(frozen=True)
class Audience:
    key: str
    format: str  # "csv" | "jsonl"
    size: int
    etag: str | None
    data_start: int  # byte offset of the first row (after the BOM and the CSV header)
    header: CsvHeader | None
    head: bytes  # the object's first bytes (at most HEAD_BYTES)

    def estimated_rows(self) -> int:
        """Rows in the object: exact when it fits in ``head``, else extrapolated from its lines."""
        sample = self.head[self.data_start :]
        if self.size <= len(self.head):
            return sample.count(b"\n") + (1 if sample and not sample.endswith(b"\n") else 0)
        whole = sample.rfind(b"\n") + 1
        if whole == 0:
            return 1
        return math.ceil((self.size - self.data_start) * sample.count(b"\n", 0, whole) / whole)


def audience_format(key: str) -> str:
    dot = key.rfind(".")
    fmt = AUDIENCE_FORMATS.get(key[dot:].lower()) if dot > key.rfind("/") else None
    if fmt is None:
        raise AudienceError(f"unsupported audience format: the key must end with {', '.join(sorted(AUDIENCE_FORMATS))}")
    return fmt


def open_audience(blobs: Blobs, key: str, etag: str | None = None) -> Audience:
    """Read the start of an audience object: its format, size, header and where the rows start.

    Raises ``AudienceError`` (missing, unsupported, bad header) and, with ``etag``, ``ObjectChanged``.
    """
    fmt = audience_format(key)
    head: BlobHead | None = blobs.head(key, HEAD_BYTES, if_match=etag)
    if head is None:
        raise AudienceError(f"audience object {key!r} does not exist in the bucket")
    start = len(BOM) if head.data.startswith(BOM) else 0
    header = None
    if fmt == "csv":
        header, start = read_csv_header(head.data, start, complete=head.size <= len(head.data))
    return Audience(key, fmt, head.size, head.etag or etag, start, header, head.data)


def read_csv_header(data: bytes, start: int, complete: bool) -> tuple[CsvHeader, int]:
    """The header record at ``data[start:]`` and the offset just after it."""
    end, quotes = start, 0
    while True:  # a quoted name may span lines: the record ends where its quotes balance
        newline = data.find(b"\n", end)
        stop = len(data) if newline < 0 else newline + 1
        quotes += data.count(b'"', end, stop)
        end = stop
        if newline < 0 or quotes % 2 == 0:
            break
    if newline < 0 and not complete:
        raise AudienceError(f"the CSV header row does not end within the first {HEAD_BYTES // 1024} KiB")
    try:
        text = data[start:end].decode("utf-8").replace("\r\n", "\n").removesuffix("\n")
    except UnicodeDecodeError:
        raise AudienceError("the CSV header row is not UTF-8 text") from None
    if not text.strip():
        raise AudienceError("the CSV audience has no header row: the first line must name the columns, one 'email'")
    try:
        names = [name.strip() for name in next(csv.reader([text], strict=True))]
    except csv.Error as exc:
        raise AudienceError(f"the CSV header row is malformed: {exc}") from None
    emails = [i for i, name in enumerate(names) if name.lower() == "email"]
    if not emails:
        shown = ", ".join(repr(n) for n in names[:10]) + (", …" if len(names) > 10 else "")
        raise AudienceError(f"the CSV header has no 'email' column (its columns: {shown})")
    if len(emails) > 1:
        raise AudienceError("the CSV header has more than one 'email' column")
    variables = [n for i, n in enumerate(names) if i != emails[0] and n]
    repeated = sorted(n for n, times in Counter(variables).items() if times > 1)
    if repeated:
        raise AudienceError(f"the CSV header names a column more than once: {', '.join(map(repr, repeated))}")
    return CsvHeader(tuple(names), emails[0]), end
