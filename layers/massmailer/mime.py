"""MIME assembly without the slow paths of the stdlib ``email`` package.

Building a message with ``email.message.EmailMessage`` costs ~100 µs in policy objects and header
folding; the layout MassMailer sends is always the same (multipart/alternative text + HTML, maybe
inside multipart/mixed with attachments), so it is written out directly: C-level quoted-printable and
base64 from ``binascii``, RFC 2047 only for headers that need it, CRLF line endings throughout.
"""

from __future__ import annotations

import binascii
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import formataddr, formatdate

CRLF = b"\r\n"


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    content_type: str = "application/octet-stream"


@dataclass
class OutgoingEmail:
    """A rendered message ready for a provider: envelope, raw MIME bytes and correlation tags."""

    message_id: str
    sender: str  # envelope sender (From address)
    recipient: str
    raw: bytes
    tags: dict[str, str] = field(default_factory=dict)


_WORD_BYTES = 39  # -> 52 base64 characters, a 64-character word: "Subject: " + word fits 78 (RFC 2047, 5322)


def _encoded_words(value: str) -> str:
    """RFC 2047 "B" encoded words, split on character boundaries and folded onto continuation lines."""
    words: list[str] = []
    chunk: list[str] = []
    size = 0
    for char in value:
        width = len(char.encode("utf-8"))
        if size + width > _WORD_BYTES:
            words.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(char)
        size += width
    words.append("".join(chunk))
    return "\r\n ".join(
        "=?utf-8?b?" + binascii.b2a_base64(word.encode("utf-8"), newline=False).decode("ascii") + "?=" for word in words
    )


def _header_value(value: str) -> str:
    return value if value.isascii() else _encoded_words(value)


def _address(address: str, name: str | None) -> str:
    if not name:
        return address
    if name.isascii():
        return formataddr((name, address))
    return f"{_encoded_words(name)} <{address}>"


def _qp(text: str) -> bytes:
    data = text.replace("\r\n", "\n").encode("utf-8")
    return binascii.b2a_qp(data, istext=True).replace(b"\n", CRLF)


def _b64(data: bytes) -> bytes:
    out = bytearray()
    for start in range(0, len(data), 57):  # 57 bytes -> 76 characters per line
        out += binascii.b2a_base64(data[start : start + 57], newline=False) + CRLF
    return bytes(out)


_date_cache: tuple[int, str] = (0, "")


def _date() -> str:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


def _boundary(message_id: str, part: str) -> str:
    return f"=_mm_{part}_{message_id.replace('.', '_')}"


def build_message(
    *,
    message_id: str,
    from_address: str,
    to: str,
    subject: str,
    html: str | None,
    text: str | None,
    from_name: str | None = None,
    reply_to: str | None = None,
    headers: Mapping[str, str] | None = None,
    attachments: Sequence[Attachment] = (),
) -> bytes:
    """Return the message as RFC 5322 bytes with CRLF line endings."""
    domain = from_address.rpartition("@")[2] or "massmailer.local"
    lines = [
        f"From: {_address(from_address, from_name)}",
        f"To: {to}",
        f"Subject: {_header_value(subject)}",
        f"Date: {_date()}",
        f"Message-ID: <{message_id}@{domain}>",
        "MIME-Version: 1.0",
    ]
    if reply_to:
        lines.append(f"Reply-To: {reply_to}")
    for name, value in (headers or {}).items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            raise ValueError(f"header {name!r} contains CR/LF or ':'")
        lines.append(f"{name}: {_header_value(value)}")

    parts: list[tuple[bytes, bytes]] = []  # (part headers, encoded body)
    if text is not None:
        parts.append(
            (
                b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable",
                _qp(text),
            )
        )
    if html is not None:
        parts.append(
            (
                b"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable",
                _qp(html),
            )
        )

    head = ("\r\n".join(lines) + "\r\n").encode("utf-8")
    if len(parts) == 1 and not attachments:
        part_head, body = parts[0]
        return head + part_head + CRLF + CRLF + body

    alt = _boundary(message_id, "alt").encode()
    alternative = bytearray(b'Content-Type: multipart/alternative; boundary="' + alt + b'"\r\n\r\n')
    for part_head, body in parts:
        alternative += b"--" + alt + CRLF + part_head + CRLF + CRLF + body + CRLF
    alternative += b"--" + alt + b"--" + CRLF
    if not attachments:
        return head + bytes(alternative)

    mixed = _boundary(message_id, "mix").encode()
    out = bytearray(head + b'Content-Type: multipart/mixed; boundary="' + mixed + b'"\r\n\r\n')
    out += b"--" + mixed + CRLF + alternative
    for attachment in attachments:
        name = attachment.filename.replace('"', "").replace("\r", "").replace("\n", "")
        out += (
            b"--"
            + mixed
            + CRLF
            + f'Content-Type: {attachment.content_type}; name="{name}"\r\n'.encode()
            + b"Content-Transfer-Encoding: base64\r\n"
            + f'Content-Disposition: attachment; filename="{name}"\r\n\r\n'.encode()
            + _b64(attachment.content)
        )
    out += b"--" + mixed + b"--" + CRLF
    return bytes(out)
