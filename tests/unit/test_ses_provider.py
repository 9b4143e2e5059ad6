"""The SES v2 adapter: request shape and every error the API returns, mapped to the taxonomy."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ConnectionClosedError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError
from botocore.stub import Stubber

from massmailer.errors import (
    ConfigurationError,
    ProviderDown,
    Refused,
    SendError,
    Throttled,
    Transient,
    UnknownOutcome,
)
from massmailer.mime import OutgoingEmail
from massmailer.providers.replies import SES_RULES, SesRule
from massmailer.providers.ses import SesProvider

EMAIL = OutgoingEmail(
    message_id="cmp-1.abc",
    sender="news@example.com",
    recipient="jane@example.com",
    raw=b"Subject: hi\r\n\r\nbody",
    tags={"campaign_id": "cmp-1", "message_id": "cmp-1.abc"},
)


@pytest.fixture
def ses() -> boto3.client:
    return boto3.client("sesv2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def test_sends_the_raw_message_with_tags_and_configuration_set(ses) -> None:  # type: ignore[no-untyped-def]
    with Stubber(ses) as stub:
        stub.add_response(
            "send_email",
            {"MessageId": "0100-ses-id"},
            {
                "FromEmailAddress": "news@example.com",
                "Destination": {"ToAddresses": ["jane@example.com"]},
                "Content": {"Raw": {"Data": EMAIL.raw}},
                "EmailTags": [{"Name": "campaign_id", "Value": "cmp-1"}, {"Name": "message_id", "Value": "cmp-1.abc"}],
                "ConfigurationSetName": "massmailer-dev-configset",
            },
        )
        receipt = SesProvider(ses, "massmailer-dev-configset").send(EMAIL)
    assert (receipt.provider, receipt.provider_message_id) == ("ses", "0100-ses-id")


def _ses_case(rule: SesRule) -> tuple[str, int]:
    """The error code and HTTP status SES would answer for a row of the table."""
    if rule.code == "(other, HTTP 5xx)":
        return "SomethingNew", 503
    if rule.code == "(other, HTTP 4xx)":
        return "SomethingNew", 400
    return rule.code, 500 if rule.error is Transient else 400


@pytest.mark.parametrize("rule", SES_RULES, ids=[r.code for r in SES_RULES])
def test_every_row_of_the_ses_table_is_what_the_provider_raises(ses, rule: SesRule) -> None:  # type: ignore[no-untyped-def]
    code, status = _ses_case(rule)
    with Stubber(ses) as stub:
        stub.add_client_error("send_email", service_error_code=code, service_message="m", http_status_code=status)
        with pytest.raises(SendError) as raised:
            SesProvider(ses).send(EMAIL)
    assert type(raised.value) is rule.error
    assert raised.value.provider == "ses"


@pytest.mark.parametrize(
    ("code", "status", "message", "expected"),
    [
        ("LimitExceededException", 400, "Daily message quota exceeded.", Throttled),
        ("SendingPausedException", 400, "Sending is paused for this account.", ProviderDown),
        ("AccountSuspendedException", 400, "Account suspended.", ProviderDown),
        ("MailFromDomainNotVerifiedException", 400, "MAIL FROM domain not verified.", ProviderDown),
        # MessageRejected is about the message, whatever its text: never a hard bounce.
        ("MessageRejected", 400, "Email address is not verified.", Refused),
        ("MessageRejected", 400, "Illegal address", Refused),
        ("MessageRejected", 400, "Message content rejected", Refused),
        ("NotFoundException", 404, "Configuration set does not exist.", ConfigurationError),
        ("InternalFailure", 500, "Internal failure", Transient),
    ],
)
def test_every_ses_error_maps_to_its_class(ses, code: str, status: int, message: str, expected: type) -> None:  # type: ignore[no-untyped-def]
    with Stubber(ses) as stub:
        stub.add_client_error("send_email", service_error_code=code, service_message=message, http_status_code=status)
        with pytest.raises(expected) as raised:
            SesProvider(ses).send(EMAIL)
    assert raised.value.provider == "ses"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (EndpointConnectionError(endpoint_url="https://email.us-east-1.amazonaws.com"), ProviderDown),
        (ConnectTimeoutError(endpoint_url="https://email.us-east-1.amazonaws.com"), ProviderDown),
        # After the request went out: SES may have the message. Never failed over: "maybe sent".
        (ReadTimeoutError(endpoint_url="https://email.us-east-1.amazonaws.com"), UnknownOutcome),
        (ConnectionClosedError(endpoint_url="https://email.us-east-1.amazonaws.com"), UnknownOutcome),
    ],
)
def test_network_failures_map_to_their_class(ses, error: Exception, expected: type) -> None:  # type: ignore[no-untyped-def]
    def fail(**_: object) -> None:
        raise error

    ses.meta.events.register("before-call.sesv2.SendEmail", fail)
    with pytest.raises(expected) as raised:
        SesProvider(ses).send(EMAIL)
    assert raised.value.fail_over == (expected is not UnknownOutcome)
