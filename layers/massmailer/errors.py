"""The error taxonomy of sending, in one place.

Every provider failure becomes one of these classes, and the classes alone decide what happens next.
Which provider answer becomes which class is one table per provider, in
``massmailer.providers.replies`` (rendered in the README).

=================  =============================================  ==========================================
class              examples                                       what the sender does
=================  =============================================  ==========================================
Throttled          SES ThrottlingException, SMTP 421/450/451/454  re-enqueue with delay; no attempt used;
                                                                  try the next provider first
Transient          timeouts before sending, 5xx from the API      try the next provider; else retry with
                                                                  exponential backoff + jitter
SoftBounce         mailbox full (SMTP 4.2.2 / 5.2.2)              fixed-interval retry; never fails over
HardBounce         bad mailbox or address (SMTP 5.1.x at RCPT)    FAILED at once, address suppressed
Refused            SMTP 5.7.x/5.3.x/5.5.x, 5xx at MAIL or after   try the next provider; FAILED with the
                   DATA; SES MessageRejected                      reason when every provider refused; never
                                                                  suppresses
ProviderDown       connection refused, sending paused, suspended  fail over to the next provider
ConfigurationError bad credentials, missing configuration set     fail over; retry later
UnknownOutcome     SES read timeout or reset after the request    never fails over: the record is "maybe
                   went out; SMTP cut after the content           sent" (see ``massmailer.sending``)
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
        self.stage: str | None = None  # SMTP: the stage of the exchange the reply came at

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


class Refused(SendError):
    """The provider refused the message or the sender (policy, content, protocol), not the address:
    never suppresses; the next provider is tried; FAILED when every provider refused."""

    reason = "refused"
    retryable = False


class UnknownOutcome(SendError):
    """The request or the content went out and no answer came: the provider may have taken it.
    Never failed over (that could send it twice): the record becomes "maybe sent".
    ``confirmable``: the provider reports sends by event (SES), so the record can wait for it."""

    reason = "maybe_sent"
    fail_over = False
    retryable = False

    def __init__(self, message: str, *, provider: str | None = None, confirmable: bool = False) -> None:
        super().__init__(message, provider=provider)
        self.confirmable = confirmable


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
