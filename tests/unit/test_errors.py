"""The error taxonomy: every SES v2 code and SMTP reply (at its stage) lands in the class that decides its fate."""

from __future__ import annotations

import pytest

from massmailer.errors import (
    ConfigurationError,
    HardBounce,
    ProviderDown,
    Refused,
    SoftBounce,
    Throttled,
    Transient,
    UnknownOutcome,
)
from massmailer.providers.replies import Stage, classify_ses_error, classify_smtp_reply, enhanced_status


@pytest.mark.parametrize(
    ("code", "message", "status", "expected"),
    [
        ("ThrottlingException", "Rate exceeded", 400, Throttled),
        ("TooManyRequestsException", "slow down", 429, Throttled),
        ("LimitExceededException", "Daily message quota exceeded", 400, Throttled),
        ("SendingPausedException", "paused", 400, ProviderDown),
        ("AccountSuspendedException", "suspended", 400, ProviderDown),
        ("MailFromDomainNotVerifiedException", "x", 400, ProviderDown),
        ("MessageRejected", "Email address is not verified.", 400, Refused),
        ("MessageRejected", "Illegal address", 400, Refused),
        ("BadRequestException", "Illegal address", 400, Refused),
        ("InternalFailure", "oops", 500, Transient),
        ("SomethingNew", "?", 503, Transient),
        ("SomethingNew", "?", 400, ConfigurationError),
    ],
)
def test_ses_errors(code: str, message: str, status: int, expected: type) -> None:
    assert type(classify_ses_error(code, message, status)) is expected


@pytest.mark.parametrize(
    ("stage", "code", "text", "expected"),
    [
        (Stage.CONNECT, 421, "4.3.2 Service not available", Throttled),
        (Stage.RCPT, 450, "4.2.1 try later", Throttled),
        (Stage.AFTER_DATA, 451, "4.3.0 local error", Throttled),
        (Stage.MAIL, 454, "4.7.0 Throttling failure", Throttled),
        (Stage.RCPT, 452, "4.3.1 Insufficient system storage", Transient),
        (Stage.RCPT, 452, "4.2.2 Mailbox full", SoftBounce),
        (Stage.AFTER_DATA, 552, "5.2.2 Mailbox full", SoftBounce),
        (Stage.RCPT, 550, "5.1.1 User unknown", HardBounce),
        (Stage.RCPT, 553, "5.1.3 bad address syntax", HardBounce),
        # Not proof that the address is bad: a refusal, never a hard bounce.
        (Stage.RCPT, 550, "5.7.1 Relaying denied: sender not verified", Refused),
        (Stage.RCPT, 550, "User unknown", Refused),
        (Stage.RCPT, 554, "5.7.1 rejected", Refused),
        (Stage.MAIL, 553, "5.1.8 Sender address rejected", Refused),
        (Stage.AFTER_DATA, 550, "5.1.1 user unknown", Refused),
        (Stage.AFTER_DATA, 552, "5.3.4 Message too big", Refused),
        (Stage.AUTH, 535, "5.7.8 auth failed", ConfigurationError),
        (Stage.CONNECT, 554, "5.7.1 no service for you", ProviderDown),
    ],
)
def test_smtp_replies(stage: Stage, code: int, text: str, expected: type) -> None:
    error = classify_smtp_reply(code, text, stage)
    assert type(error) is expected
    assert error.stage == stage.value
    assert error.fail_over == (expected not in (SoftBounce, HardBounce))
    assert error.uses_attempt == (expected is not Throttled)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5.1.1 <a@example.com>: User unknown", "5.1.1"),
        ("mx.example.com\n5.7.1 Relay denied", "5.7.1"),
        ("Requested action aborted", None),
        ("version 5.1.1", None),
    ],
)
def test_the_enhanced_status_is_read_from_the_start_of_a_reply_line(text: str, expected: str | None) -> None:
    assert enhanced_status(text) == expected


def test_an_unknown_outcome_never_fails_over() -> None:
    error = UnknownOutcome("timeout", provider="ses", confirmable=True)
    assert (error.fail_over, error.recipient_level, error.confirmable) == (False, False, True)
    assert error.describe() == "maybe_sent: ses: timeout"
