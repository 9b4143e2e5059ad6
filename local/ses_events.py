"""SES event notifications as SES publishes them (configuration-set event publishing format)."""

from __future__ import annotations

import time
from typing import Any


def bounce_event(ses_message_id: str, address: str, tags: dict[str, str]) -> dict[str, Any]:
    """The event SES would publish for a permanent bounce (configuration-set event format)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return {
        "eventType": "Bounce",
        "bounce": {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": address,
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
            ],
            "timestamp": now,
            "feedbackId": f"demo-{ses_message_id}",
            "reportingMTA": "dsn; demo.example",
        },
        "mail": {
            "timestamp": now,
            "source": "news@massmailer.test",
            "messageId": ses_message_id,
            "destination": [address],
            "tags": {k: [v] for k, v in tags.items()},
        },
    }
