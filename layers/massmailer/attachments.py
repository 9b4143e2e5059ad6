"""Attachments matched by file name in the bucket (``attachments/<name>``), fetched once per container.

The name is a template rendered with the recipient's variables, so ``invoice-{{ invoice_no }}.pdf``
picks each recipient's own file. A rendered name must be a plain file name (no path), and all of one
email's attachments together must fit ``MAX_ATTACHMENT_BYTES``.
"""

from __future__ import annotations

import mimetypes
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from massmailer.blobs import Blobs, ObjectTooLarge
from massmailer.errors import RenderError
from massmailer.mime import Attachment
from massmailer.models import AttachmentRef
from massmailer.spec import ATTACHMENT_PREFIX, MAX_ATTACHMENT_BYTES

_NAME = re.compile(r"^[\w][\w .()+-]{0,254}$")
_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


class MissingAttachment(LookupError):
    pass


class AttachmentTooLarge(ValueError):
    pass


class AttachmentResolver:
    def __init__(self, blobs: Blobs, max_bytes: int = MAX_ATTACHMENT_BYTES, cache_bytes: int = 64 * 1024 * 1024):
        self._blobs = blobs
        self._max = max_bytes
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cache_limit = cache_bytes
        self._cached = 0
        self._names: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _name(self, template: str, variables: Mapping[str, Any]) -> str:
        compiled = self._names.get(template)
        if compiled is None:
            compiled = self._names[template] = _ENV.from_string(template)
        try:
            name = compiled.render(variables).strip()
        except Exception as exc:  # noqa: BLE001 - a user template: keep the reason
            raise RenderError(f"attachment name {template!r} does not render: {exc}") from None
        if not _NAME.match(name) or ".." in name:
            raise RenderError(f"attachment name {name!r} is not a plain file name")
        return name

    def _fetch(self, key: str, budget: int) -> bytes | None:
        with self._lock:
            data = self._cache.get(key)
            if data is not None:
                self._cache.move_to_end(key)
                return data
        try:
            data = self._blobs.get(key, budget)
        except ObjectTooLarge as exc:
            raise AttachmentTooLarge(str(exc)) from None
        if data is not None and len(data) <= self._cache_limit // 4:
            with self._lock:
                self._cache[key] = data
                self._cached += len(data)
                while self._cached > self._cache_limit:
                    _, evicted = self._cache.popitem(last=False)
                    self._cached -= len(evicted)
        return data

    def resolve(
        self, refs: Sequence[AttachmentRef], variables: Mapping[str, Any], *, skip_missing: bool = False
    ) -> list[Attachment]:
        """The recipient's attachments; ``MissingAttachment`` names the first one not found."""
        found: list[Attachment] = []
        total = 0
        for ref in refs:
            name = self._name(ref.filename, variables)
            data = self._fetch(ATTACHMENT_PREFIX + name, self._max - total)
            if data is None:
                if skip_missing:
                    continue
                raise MissingAttachment(f"attachment {name!r} not found under {ATTACHMENT_PREFIX}")
            total += len(data)
            if total > self._max:
                raise AttachmentTooLarge(f"attachments exceed {self._max} bytes")
            content_type = ref.content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
            found.append(Attachment(filename=name, content=data, content_type=content_type))
        return found
