"""Rendering (sandboxed Jinja2, legacy $(VAR)), MIME assembly, unsubscribe tokens."""

from __future__ import annotations

import email
from email import policy

import pytest

from massmailer.errors import RenderError, TemplateError
from massmailer.mime import Attachment, build_message
from massmailer.models import Content
from massmailer.rendering import CompiledTemplate, TemplateCache


def test_jinja_and_legacy_placeholders_render_and_html_is_escaped() -> None:
    t = CompiledTemplate(Content(subject="Hi $(NAME)", html="<p>{{ NAME }}</p>", text="Hello $( NAME )!"))
    r = t.render({"NAME": "<Ann>"})
    assert (r.subject, r.html, r.text) == ("Hi <Ann>", "<p>&lt;Ann&gt;</p>", "Hello <Ann>!")


def test_missing_variable_is_a_clear_render_error() -> None:
    with pytest.raises(RenderError, match="'first' is undefined"):
        CompiledTemplate(Content(subject="s", text="{{ first }}")).render({})


def test_the_sandbox_blocks_unsafe_attribute_access() -> None:
    t = CompiledTemplate(Content(subject="s", text="{{ ''.__class__.__mro__[1].__subclasses__() }}"))
    with pytest.raises(RenderError, match="sandbox|unsafe|render"):
        t.render({})


def test_a_template_that_does_not_compile_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="does not compile"):
        CompiledTemplate(Content(subject="{% if %}", text="x"))


def test_a_variable_cannot_inject_header_lines_through_the_subject() -> None:
    r = CompiledTemplate(Content(subject="Hi {{ n }}", text="x")).render({"n": "a\r\nBcc: evil@example.com"})
    assert "\r" not in r.subject and "\n" not in r.subject


def test_templates_are_compiled_once_per_key() -> None:
    cache = TemplateCache()
    content = Content(subject="s", text="t")
    assert cache.get("c1", content) is cache.get("c1", content)


def test_mime_message_parses_with_the_stdlib_and_keeps_every_part() -> None:
    raw = build_message(
        message_id="cmp.1",
        from_address="news@example.com",
        from_name="Café Newsletter",
        to="jane@example.com",
        subject="Grüße, Jane",
        html="<p>Hällo " + "x" * 200 + "</p>",
        text="Hällo Jane\nline two",
        reply_to="help@example.com",
        headers={"List-Unsubscribe": "<https://u.example/x>", "X-Campaign": "c1"},
        attachments=[Attachment("invoice.pdf", b"%PDF-1.4 " + bytes(range(256)), "application/pdf")],
    )
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    m = email.message_from_bytes(raw, policy=policy.default)
    assert m["Subject"] == "Grüße, Jane"
    assert m["From"].addresses[0].display_name == "Café Newsletter"
    assert m["Message-ID"] == "<cmp.1@example.com>"
    assert m.get_body(("plain",)).get_content().replace("\r\n", "\n") == "Hällo Jane\nline two"
    assert m.get_body(("html",)).get_content().startswith("<p>Hällo xxx")
    (attachment,) = list(m.iter_attachments())
    assert attachment.get_filename() == "invoice.pdf"
    assert attachment.get_content() == b"%PDF-1.4 " + bytes(range(256))


def test_header_values_with_crlf_are_refused() -> None:
    with pytest.raises(ValueError, match="CR/LF"):
        build_message(
            message_id="m",
            from_address="a@example.com",
            to="b@example.com",
            subject="s",
            html=None,
            text="t",
            headers={"X-A": "1\r\nBcc: x@example.com"},
        )


@pytest.mark.parametrize(
    "subject",
    ["Grüße aus Zürich", "Kraków " * 20, "日本語の件名とても長い" * 8, "emoji 🎉🎉🎉 " * 10, "a" * 60 + "é"],
)
def test_non_ascii_headers_are_encoded_words_that_decode_back(subject: str) -> None:
    raw = build_message(
        message_id="m",
        from_address="a@example.com",
        from_name="Zoë Ångström",
        to="b@example.com",
        subject=subject,
        html=None,
        text="t",
    )
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    subject_lines = head.split("\r\nSubject: ", 1)[1].split("\r\nDate:", 1)[0].split("\r\n")
    assert all(len(line) <= 78 - len("Subject: ") for line in subject_lines)  # folded to RFC 5322's 78
    m = email.message_from_bytes(raw, policy=policy.default)
    assert m["Subject"] == subject
    assert m["From"].addresses[0].display_name == "Zoë Ångström"
