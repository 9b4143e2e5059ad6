"""The error taxonomy of sending, in one place.

Every provider failure becomes one of six classes, and the classes alone decide what happens next:

=================  =============================================  ==========================================
class              examples                                       what the sender does
=================  =============================================  ==========================================
Throttled          SES ThrottlingException, SMTP 421/450/451/454  re-enqueue with delay; no attempt used;
                                                                  try the next provider first
Transient          timeouts, 5xx from the API, SMTP 452           try the next provider; else retry with
                                                                  exponential backoff + jitter
SoftBounce         mailbox full (SMTP 452 4.2.2 / 5.2.2)          fixed-interval retry; never fails over
HardBounce         invalid/unknown recipient (SMTP 550/553)       FAILED at once, address suppressed
ProviderDown       connection refused, sending paused, suspended  fail over to the next provider
ConfigurationError unverified identity, bad credentials           fail over; retry later
=================  =============================================  ==========================================

Recipient-level errors (SoftBounce, HardBounce) are the same whichever provider is asked, so they
never fail over.
"""

from __future__ import annotations


class SendError(Exception):
    """Base class: a provider could not send one message."""

    retryable = True
    recipient_level = False
    uses_attempt = True
    fail_over = True
    reason = "error"

    def __init__(self, message: str, *, provider: str | None = None) -> None:
        super().__init__(message)
        self.provider = provider

    def describe(self) -> str:
        who = f"{self.provider}: " if self.provider else ""
        return f"{self.reason}: {who}{self}"


class Throttled(SendError):
    reason = "throttled"
    uses_attempt = False


class Transient(SendError):
    reason = "transient"


class ProviderDown(SendError):
    reason = "provider_down"


class ConfigurationError(SendError):
    reason = "configuration"


class SoftBounce(SendError):
    reason = "soft_bounce"
    recipient_level = True
    fail_over = False


class HardBounce(SendError):
    reason = "hard_bounce"
    retryable = False
    recipient_level = True
    fail_over = False


class RenderError(Exception):
    """A template could not be rendered for one recipient (e.g. a missing variable)."""


class TemplateError(ValueError):
    """A template does not compile; the whole campaign cannot be sent."""


# --- SES v2 ------------------------------------------------------------------------------------

_SES_CODES: dict[str, type[SendError]] = {
    "ThrottlingException": Throttled,
    "TooManyRequestsException": Throttled,
    "Throttling": Throttled,
    "LimitExceededException": Throttled,  # daily quota or max send rate: "later", not "failed"
    "SendingPausedException": ProviderDown,
    "AccountSuspendedException": ProviderDown,
    "MailFromDomainNotVerifiedException": ConfigurationError,
    "NotFoundException": ConfigurationError,  # configuration set missing
    "AccessDeniedException": ConfigurationError,
    "BadRequestException": HardBounce,
    "MessageRejected": HardBounce,
    "InternalFailure": Transient,
    "ServiceUnavailable": Transient,
    "InternalServerError": Transient,
}


def classify_ses_error(code: str, message: str, http_status: int | None = None) -> SendError:
    """Map an SES v2 error code (from ``ClientError``) to the taxonomy."""
    lowered = message.lower()
    if code == "MessageRejected":
        # Unverified sender identity in the sandbox is configuration, not the recipient's fault.
        if "not verified" in lowered or "not authorized" in lowered:
            return ConfigurationError(f"{code}: {message}", provider="ses")
        return HardBounce(f"{code}: {message}", provider="ses")
    if code == "BadRequestException" and "address" not in lowered:
        return ConfigurationError(f"{code}: {message}", provider="ses")
    cls = _SES_CODES.get(code)
    if cls is None:
        cls = Transient if http_status is None or http_status >= 500 else ConfigurationError
    return cls(f"{code}: {message}", provider="ses")


# --- SMTP --------------------------------------------------------------------------------------


def classify_smtp_reply(code: int, text: str, provider: str = "smtp") -> SendError:
    """Map an SMTP reply (code + enhanced status text) to the taxonomy."""
    detail = f"{code} {text}".strip()
    if " 4.2.2" in f" {text}" or " 5.2.2" in f" {text}":  # mailbox full (either class)
        return SoftBounce(detail, provider=provider)
    if code in (421, 450, 451, 454):
        return Throttled(detail, provider=provider)
    if code == 452:  # insufficient system storage / too many recipients this session
        return Transient(detail, provider=provider)
    if 400 <= code < 500:
        return Transient(detail, provider=provider)
    if code in (530, 535, 538):  # authentication required / failed
        return ConfigurationError(detail, provider=provider)
    if code in (550, 551, 553, 501):
        return HardBounce(detail, provider=provider)
    if code in (552, 554):
        # 552 = exceeded storage allocation (soft); 554 = transaction failed (treat as hard)
        return SoftBounce(detail, provider=provider) if code == 552 else HardBounce(detail, provider=provider)
    return Transient(detail, provider=provider)
