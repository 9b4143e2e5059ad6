"""Template rendering: Jinja2 in a sandbox (templates come from users) and legacy ``$(VAR)``.

A template is compiled once (per campaign, per warm container) and rendered per recipient. A missing
variable fails that recipient with a clear reason; a template that does not compile fails the
campaign before anything is sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from massmailer.errors import RenderError, TemplateError
from massmailer.models import Content

_LEGACY = re.compile(r"\$\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)")


def _from_legacy(source: str) -> str:
    """``Hello $(NAME)`` -> ``Hello {{ NAME }}``."""
    return _LEGACY.sub(r"{{ \1 }}", source)


_TEXT_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
_HTML_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=True, keep_trailing_newline=True)


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str | None
    text: str | None


class CompiledTemplate:
    """Subject, HTML and text compiled once."""

    def __init__(self, content: Content) -> None:
        try:
            self._subject = _TEXT_ENV.from_string(_from_legacy(content.subject))
            self._html = _HTML_ENV.from_string(_from_legacy(content.html)) if content.html else None
            self._text = _TEXT_ENV.from_string(_from_legacy(content.text)) if content.text else None
        except TemplateSyntaxError as exc:
            raise TemplateError(f"template does not compile (line {exc.lineno}): {exc.message}") from None

    def render(self, variables: Mapping[str, Any]) -> Rendered:
        try:
            subject = self._subject.render(variables)
            html = self._html.render(variables) if self._html else None
            text = self._text.render(variables) if self._text else None
        except UndefinedError as exc:
            raise RenderError(f"template variable missing: {exc.message}") from None
        except SecurityError as exc:
            raise RenderError(f"template blocked by the sandbox: {exc}") from None
        except Exception as exc:  # a user template can fail in many ways; keep the reason
            raise RenderError(f"template failed to render: {type(exc).__name__}: {exc}") from None
        if "\r" in subject or "\n" in subject:
            subject = " ".join(subject.split())  # a variable must not inject header lines
        return Rendered(subject=subject, html=html, text=text)


def compile_content(content: Content) -> CompiledTemplate:
    return CompiledTemplate(content)


class TemplateCache:
    """Compiled templates by key (campaign id), kept for the life of a warm container."""

    def __init__(self, max_entries: int = 256) -> None:
        self._entries: dict[str, CompiledTemplate] = {}
        self._max = max_entries

    def get(self, key: str, content: Content) -> CompiledTemplate:
        compiled = self._entries.get(key)
        if compiled is None:
            if len(self._entries) >= self._max:
                self._entries.pop(next(iter(self._entries)))
            compiled = self._entries[key] = CompiledTemplate(content)
        return compiled
