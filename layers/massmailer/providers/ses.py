"""SES v2 adapter (primary provider): ``send_email`` with the raw MIME message."""

from __future__ import annotations

import re
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from massmailer.errors import ProviderDown, Transient, classify_ses_error
from massmailer.mime import OutgoingEmail
from massmailer.providers.base import SendReceipt

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
        except (ReadTimeoutError, BotoCoreError) as exc:
            raise Transient(f"SES call failed: {exc}", provider=self.name) from exc
        return SendReceipt(provider=self.name, provider_message_id=response["MessageId"])

    def close(self) -> None:
        return None
