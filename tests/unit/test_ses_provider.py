"""The SES v2 adapter: request shape and every error the API returns, mapped to the taxonomy."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from botocore.stub import Stubber

from massmailer.errors import ConfigurationError, HardBounce, ProviderDown, Throttled, Transient
from massmailer.mime import OutgoingEmail
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


@pytest.mark.parametrize(
    ("code", "status", "message", "expected"),
    [
        ("ThrottlingException", 400, "Rate exceeded", Throttled),
        ("TooManyRequestsException", 429, "Maximum sending rate exceeded.", Throttled),
        ("LimitExceededException", 400, "Daily message quota exceeded.", Throttled),
        ("SendingPausedException", 400, "Sending is paused for this account.", ProviderDown),
        ("AccountSuspendedException", 400, "Account suspended.", ProviderDown),
        ("MailFromDomainNotVerifiedException", 400, "MAIL FROM domain not verified.", ConfigurationError),
        ("MessageRejected", 400, "Email address is not verified.", ConfigurationError),
        ("MessageRejected", 400, "Illegal address", HardBounce),
        ("NotFoundException", 404, "Configuration set does not exist.", ConfigurationError),
        ("InternalFailure", 500, "Internal failure", Transient),
        ("ServiceUnavailable", 503, "Service unavailable", Transient),
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
        (ReadTimeoutError(endpoint_url="https://email.us-east-1.amazonaws.com"), Transient),
    ],
)
def test_network_failures_map_to_their_class(ses, error: Exception, expected: type) -> None:  # type: ignore[no-untyped-def]
    def fail(**_: object) -> None:
        raise error

    ses.meta.events.register("before-call.sesv2.SendEmail", fail)
    with pytest.raises(expected):
        SesProvider(ses).send(EMAIL)
