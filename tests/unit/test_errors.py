"""The error taxonomy: every SES v2 code and SMTP reply lands in the class that decides its fate."""

from __future__ import annotations

import pytest

from massmailer.errors import (
    ConfigurationError,
    HardBounce,
    ProviderDown,
    SoftBounce,
    Throttled,
    Transient,
    classify_ses_error,
    classify_smtp_reply,
)


@pytest.mark.parametrize(
    ("code", "message", "status", "expected"),
    [
        ("ThrottlingException", "Rate exceeded", 400, Throttled),
        ("TooManyRequestsException", "slow down", 429, Throttled),
        ("LimitExceededException", "Daily message quota exceeded", 400, Throttled),
        ("SendingPausedException", "paused", 400, ProviderDown),
        ("AccountSuspendedException", "suspended", 400, ProviderDown),
        ("MailFromDomainNotVerifiedException", "x", 400, ConfigurationError),
        ("MessageRejected", "Email address is not verified.", 400, ConfigurationError),
        ("MessageRejected", "Illegal address", 400, HardBounce),
        ("InternalFailure", "oops", 500, Transient),
        ("SomethingNew", "?", 503, Transient),
    ],
)
def test_ses_errors(code: str, message: str, status: int, expected: type) -> None:
    assert type(classify_ses_error(code, message, status)) is expected


@pytest.mark.parametrize(
    ("code", "text", "expected"),
    [
        (421, "4.3.2 Service not available", Throttled),
        (450, "4.2.1 try later", Throttled),
        (451, "4.3.0 local error", Throttled),
        (454, "4.7.0 Throttling failure", Throttled),
        (452, "4.3.1 Insufficient system storage", Transient),
        (452, "4.2.2 Mailbox full", SoftBounce),
        (552, "5.2.2 Mailbox full", SoftBounce),
        (550, "5.1.1 User unknown", HardBounce),
        (553, "5.1.3 bad address syntax", HardBounce),
        (554, "5.7.1 rejected", HardBounce),
        (535, "5.7.8 auth failed", ConfigurationError),
    ],
)
def test_smtp_replies(code: int, text: str, expected: type) -> None:
    error = classify_smtp_reply(code, text)
    assert type(error) is expected
    assert error.fail_over == (expected not in (SoftBounce, HardBounce))
    assert error.uses_attempt == (expected is not Throttled)
