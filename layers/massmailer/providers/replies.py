"""Provider answers -> error classes: ONE table per provider, the only place the mapping lives.

SMTP replies are classified by the stage of the exchange at which they came (connect, EHLO, AUTH,
MAIL, RCPT, DATA, after DATA — the reply to the final dot), the reply code and the RFC 3463
enhanced status code (``class.subject.detail``; ``x`` stands for any digit). The rows are tried in
order and the first that matches decides. SES v2 errors are classified by their error code.

The rule behind both tables: only proof that an *address* is bad (5.1.x at RCPT; SES's own
asynchronous hard bounces, see ``massmailer.notifications``) suppresses an address. A refusal of the
message or of the sender by the provider (policy 5.7.x, mail system 5.3.x, protocol 5.5.x, any 5xx
at MAIL FROM, DATA or after DATA, SES ``MessageRejected``) is :class:`Refused`: nothing is
suppressed, the next provider is tried, and the recipient ends FAILED with the reason only when
every provider refused; each refusal counts against the provider's circuit breaker, so a provider
that refuses everything is cut off.

The README's "Provider answers" section is :func:`markdown` verbatim (a test keeps them equal);
``python -m massmailer.providers.replies`` prints it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from massmailer.errors import (
    ConfigurationError,
    HardBounce,
    ProviderDown,
    Refused,
    SendError,
    SoftBounce,
    Throttled,
    Transient,
)


class Stage(StrEnum):
    CONNECT = "connect"
    EHLO = "EHLO"  # also STARTTLS and the EHLO after it
    AUTH = "AUTH"
    MAIL = "MAIL"
    RCPT = "RCPT"
    DATA = "DATA"  # the reply to the DATA command itself (354 expected)
    AFTER_DATA = "after DATA"  # the reply to the message content's final dot


ANY_STAGE: tuple[Stage, ...] = tuple(Stage)
_ENHANCED = re.compile(r"(?:^|\s)([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$|[.,;:])")


@dataclass(frozen=True)
class ReplyRule:
    stages: tuple[Stage, ...]
    codes: str  # "421 450" (exact codes), "4xx", "5xx"
    status: str  # enhanced status pattern: "*" any or none, "none", "5.1.x", "x.2.2", ...
    error: type[SendError]
    meaning: str

    def matches(self, stage: Stage, code: int, enhanced: str | None) -> bool:
        if stage not in self.stages or not _code_matches(self.codes, code):
            return False
        if self.status == "*":
            return True
        if self.status == "none":
            return enhanced is None
        return enhanced is not None and _status_matches(self.status, enhanced)


def _code_matches(pattern: str, code: int) -> bool:
    for part in pattern.split():
        if part.endswith("xx") and str(code)[:1] == part[0]:
            return True
        if part == str(code):
            return True
    return False


def _status_matches(pattern: str, enhanced: str) -> bool:
    return all(p == "x" or p == e for p, e in zip(pattern.split("."), enhanced.split("."), strict=True))


_DATA_END = (Stage.RCPT, Stage.AFTER_DATA)

SMTP_RULES: tuple[ReplyRule, ...] = (
    ReplyRule(_DATA_END, "4xx 5xx", "x.2.2", SoftBounce, "mailbox full: retried at a fixed interval, no failover"),
    ReplyRule((Stage.RCPT,), "552", "none", SoftBounce, "storage allocation exceeded (RFC 5321): as mailbox full"),
    ReplyRule(ANY_STAGE, "421 450 451 454", "*", Throttled, "busy, greylisting, rate limit: later, no attempt used"),
    ReplyRule(ANY_STAGE, "4xx", "*", Transient, "temporary failure: next provider, else backoff"),
    ReplyRule((Stage.CONNECT, Stage.EHLO), "5xx", "*", ProviderDown, "no service from this relay: next provider"),
    ReplyRule((Stage.AUTH,), "5xx", "*", ConfigurationError, "our credentials refused: next provider"),
    ReplyRule((Stage.RCPT,), "5xx", "5.1.x", HardBounce, "bad mailbox or address: FAILED, address suppressed"),
    ReplyRule(ANY_STAGE, "5xx", "5.7.x", Refused, "policy, authentication, content: refusal, never suppress"),
    ReplyRule(ANY_STAGE, "5xx", "5.3.x", Refused, "mail system (e.g. message too big): refusal"),
    ReplyRule(ANY_STAGE, "5xx", "5.5.x", Refused, "protocol: refusal"),
    ReplyRule((Stage.MAIL,), "5xx", "*", Refused, "the sender is refused: refusal"),
    ReplyRule((Stage.DATA, Stage.AFTER_DATA), "5xx", "*", Refused, "the message is refused: refusal"),
    ReplyRule((Stage.RCPT,), "5xx", "*", Refused, "no 5.1.x: not proof that the address is bad; refusal"),
    ReplyRule(ANY_STAGE, "1xx 2xx 3xx", "*", Transient, "an unexpected reply: next provider, else backoff"),
)


def enhanced_status(text: str) -> str | None:
    """The RFC 3463 enhanced status code at the start of a reply's text (any line), if any."""
    for line in text.splitlines() or [text]:
        found = _ENHANCED.match(line.strip())
        if found:
            return ".".join(found.groups())
    return None


def smtp_rule(stage: Stage, code: int, text: str) -> ReplyRule:
    enhanced = enhanced_status(text)
    for rule in SMTP_RULES:
        if rule.matches(stage, code, enhanced):
            return rule
    return SMTP_RULES[-1]  # pragma: no cover - the last row matches every stage and code class


def classify_smtp_reply(code: int, text: str, stage: Stage, provider: str = "smtp") -> SendError:
    """Map an SMTP reply at ``stage`` (code + text with its enhanced status) to the taxonomy."""
    error = smtp_rule(stage, code, text).error(f"{code} {text} (at {stage.value})".strip(), provider=provider)
    error.stage = stage.value
    return error


# --- SES v2 --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SesRule:
    code: str
    error: type[SendError]
    meaning: str


SES_RULES: tuple[SesRule, ...] = (
    SesRule("ThrottlingException", Throttled, "rate exceeded: later, no attempt used"),
    SesRule("TooManyRequestsException", Throttled, "rate exceeded: later, no attempt used"),
    SesRule("Throttling", Throttled, "rate exceeded: later, no attempt used"),
    SesRule("LimitExceededException", Throttled, "daily quota or max send rate: later, not failed"),
    SesRule("MessageRejected", Refused, "about the message, not the address: next provider, never suppress"),
    SesRule("BadRequestException", Refused, "the request is refused: next provider, never suppress"),
    SesRule("MailFromDomainNotVerifiedException", ProviderDown, "SES cannot send for us: next provider"),
    SesRule("AccountSuspendedException", ProviderDown, "SES cannot send for us: next provider"),
    SesRule("SendingPausedException", ProviderDown, "SES cannot send for us: next provider"),
    SesRule("NotFoundException", ConfigurationError, "configuration set missing: next provider"),
    SesRule("AccessDeniedException", ConfigurationError, "our IAM permissions: next provider"),
    SesRule("InternalFailure", Transient, "SES-side failure: next provider, else backoff"),
    SesRule("ServiceUnavailable", Transient, "SES-side failure: next provider, else backoff"),
    SesRule("InternalServerError", Transient, "SES-side failure: next provider, else backoff"),
    SesRule("(other, HTTP 5xx)", Transient, "next provider, else backoff"),
    SesRule("(other, HTTP 4xx)", ConfigurationError, "next provider"),
)
_SES_BY_CODE = {rule.code: rule.error for rule in SES_RULES if not rule.code.startswith("(")}


def classify_ses_error(code: str, message: str, http_status: int | None = None) -> SendError:
    """Map an SES v2 error code (from ``ClientError``) to the taxonomy."""
    cls = _SES_BY_CODE.get(code)
    if cls is None:
        cls = Transient if http_status is None or http_status >= 500 else ConfigurationError
    return cls(f"{code}: {message}", provider="ses")


# --- the README's rendering ----------------------------------------------------------------------


def _stages(stages: tuple[Stage, ...]) -> str:
    return "any" if stages == ANY_STAGE else ", ".join(s.value for s in stages)


def markdown() -> str:
    """Both tables as the README shows them."""
    lines = [
        "| # | SMTP stage | reply | enhanced status | class | what happens |",
        "|---|---|---|---|---|---|",
    ]
    for i, rule in enumerate(SMTP_RULES, 1):
        cls = rule.error.__name__
        lines.append(f"| {i} | {_stages(rule.stages)} | {rule.codes} | {rule.status} | `{cls}` | {rule.meaning} |")
    lines += ["", "| SES error code | class | what happens |", "|---|---|---|"]
    lines += [f"| `{rule.code}` | `{rule.error.__name__}` | {rule.meaning} |" for rule in SES_RULES]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(markdown(), end="")
