"""SES v2 adapter (primary provider): ``send_email`` with the raw MIME message.

The client must be built with botocore's retries off (``massmailer.wiring.SES_CONFIG``): a retry
after a read timeout could send the email twice. An answer that never came after the request went
out (read timeout, connection reset or closed after writing) is ``UnknownOutcome``: SES may have
taken the message, and its Send event will say so (see ``massmailer.sending``). Errors before the
request went out (no connection) are ``ProviderDown`` and fail over.
"""

from __future__ import annotations

import re
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
)

from massmailer.errors import ProviderDown, Transient, UnknownOutcome
from massmailer.mime import OutgoingEmail
from massmailer.providers.base import SendReceipt
from massmailer.providers.replies import classify_ses_error

_TAG_VALUE = re.compile(r"[^A-Za-z0-9_\-.@]")


def _tag(value: str) -> str:
    """SES message tag values allow only ASCII letters, digits, ``_ - . @``, up to 256 chars."""
    return _TAG_VALUE.sub("_", value)[:256]


class SesProvider:
    name = "ses"

    def __init__(self, client: Any, configuration_set: str | None = None) -> None:
        self._client = client
        self._configuration_set = configuration_set

    def send(self, email: OutgoingEmail) -> SendReceipt:
        request: dict[str, Any] = {
            "FromEmailAddress": email.sender,
            "Destination": {"ToAddresses": [email.recipient]},
            "Content": {"Raw": {"Data": email.raw}},
            "EmailTags": [{"Name": _tag(k), "Value": _tag(v)} for k, v in email.tags.items()],
        }
        if self._configuration_set:
            request["ConfigurationSetName"] = self._configuration_set
        try:
            response = self._client.send_email(**request)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            raise classify_ses_error(error.get("Code", "Unknown"), error.get("Message", ""), status) from exc
        except (EndpointConnectionError, ConnectTimeoutError) as exc:
            raise ProviderDown(f"SES unreachable: {exc}", provider=self.name) from exc
        except HTTPClientError as exc:  # ReadTimeoutError, ConnectionClosedError, …: after the request went out
            raise UnknownOutcome(
                f"no answer from SES: {type(exc).__name__}", provider=self.name, confirmable=True
            ) from exc
        except BotoCoreError as exc:
            raise Transient(f"SES call failed: {exc}", provider=self.name) from exc
        return SendReceipt(provider=self.name, provider_message_id=response["MessageId"])

    def close(self) -> None:
        return None
