"""SES event notifications as SES publishes them (configuration-set event publishing format).

The shapes follow real captures (``tests/events/ses/``, a copy of the shared fixtures):
``eventType`` plus one detail object (``send``, ``delivery``, ``bounce``, ``complaint``) and the
``mail`` object, whose ``tags`` hold SES's own ``ses:*`` tags and the caller's ``EmailTags`` (each a
list of strings). Published messages end with a newline, as real ones do.

:func:`simulate` is the mailbox simulator: which events one accepted ``SendEmail`` produces.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.utils import getaddresses, parseaddr
from typing import Any

SIMULATOR_DOMAIN = "simulator.amazonses.com"
SIMULATOR_BOXES = ("success", "bounce", "ooto", "complaint", "suppressionlist")
LOCAL_ACCOUNT = "123456789012"
REPORTING_MTA = "a8-70.smtp-out.amazonses.com"
# Headers SES copies into mail.headers / mail.commonHeaders.
_COMMON = {"from": "from", "to": "to", "cc": "cc", "date": "date", "subject": "subject", "message-id": "messageId"}
_HEADER_NAMES = ("From", "Reply-To", "To", "Cc", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type")


def iso(ts: float | None = None) -> str:
    ts = time.time() if ts is None else ts
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


def ses_message_id() -> str:
    """An id shaped like SES's: ``0100018e77d94dc5-c421e265-...-000000``."""
    return f"{int(time.time() * 1000):016x}-{uuid.uuid4()}-000000"


def simulator_box(address: str) -> str | None:
    """``bounce`` for ``bounce@simulator.amazonses.com`` or ``bounce+label@...``; None otherwise."""
    local, _, domain = parseaddr(address)[1].lower().rpartition("@")
    if domain != SIMULATOR_DOMAIN:
        return None
    box = local.split("+", 1)[0]
    return box if box in SIMULATOR_BOXES else None


def bounce_event(ses_message_id: str, address: str, tags: dict[str, str]) -> dict[str, Any]:
    """The event SES would publish for a permanent bounce (configuration-set event format)."""
    now = iso()
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


@dataclass(frozen=True)
class AcceptedEmail:
    """What SES accepted: enough to write the ``mail`` object of its events."""

    message_id: str
    source: str
    destinations: list[str]
    tags: dict[str, str]  # the caller's EmailTags
    configuration_set: str | None
    headers: list[tuple[str, str]]
    accepted_at: float
    region: str = "us-east-1"
    account: str = LOCAL_ACCOUNT
    caller_ip: str = "127.0.0.1"

    @classmethod
    def from_send_email(
        cls, request: dict[str, Any], message_id: str, raw: bytes | None, *, region: str = "us-east-1"
    ) -> AcceptedEmail:
        """From a SES v2 ``SendEmail`` request body (JSON) and the message id SES returned."""
        destination = request.get("Destination") or {}
        headers: list[tuple[str, str]] = []
        if raw:
            parsed = BytesHeaderParser().parsebytes(raw)
            headers = [(k, str(v)) for k, v in parsed.items() if k.lower() in {n.lower() for n in _HEADER_NAMES}]
        addresses = [
            *destination.get("ToAddresses", []),
            *destination.get("CcAddresses", []),
            *destination.get("BccAddresses", []),
        ]
        if not addresses and headers:  # raw message without Destination: SES reads To/Cc
            addresses = [a for _, a in getaddresses([v for k, v in headers if k.lower() in ("to", "cc")]) if a]
        simple = (request.get("Content") or {}).get("Simple")
        if simple and not headers:
            headers = [("From", request.get("FromEmailAddress", "")), ("To", ", ".join(addresses))]
            headers.append(("Subject", ((simple.get("Subject") or {}).get("Data")) or ""))
        source = request.get("FromEmailAddress") or next((v for k, v in headers if k.lower() == "from"), "")
        tags = {t["Name"]: t["Value"] for t in request.get("EmailTags") or [] if "Name" in t and "Value" in t}
        return cls(
            message_id=message_id,
            source=source,
            destinations=addresses,
            tags=tags,
            configuration_set=request.get("ConfigurationSetName"),
            headers=headers,
            accepted_at=time.time(),
            region=region,
        )

    def mail(self) -> dict[str, Any]:
        bare_source = parseaddr(self.source)[1] or self.source
        domain = bare_source.rpartition("@")[2]
        common: dict[str, Any] = {}
        for name, value in self.headers:
            key = _COMMON.get(name.lower())
            if key in ("from", "to", "cc"):
                common.setdefault(key, []).extend(v.strip() for v in value.split(",") if v.strip())
            elif key:
                common[key] = value
        common["messageId"] = self.message_id  # what SES puts there for messages it assigns an id
        tags: dict[str, list[str]] = {
            "ses:operation": ["SendEmail"],
            "ses:source-ip": [self.caller_ip],
            "ses:from-domain": [domain],
            "ses:caller-identity": ["local"],
        }
        if self.configuration_set:
            tags["ses:configuration-set"] = [self.configuration_set]
        tags.update({k: [v] for k, v in self.tags.items()})
        return {
            "timestamp": iso(self.accepted_at),
            "source": self.source,
            "sourceArn": f"arn:aws:ses:{self.region}:{self.account}:identity/{domain}",
            "sendingAccountId": self.account,
            "messageId": self.message_id,
            "destination": list(self.destinations),
            "headersTruncated": False,
            "headers": [{"name": k, "value": v} for k, v in self.headers],
            "commonHeaders": common,
            "tags": tags,
        }


@dataclass(frozen=True)
class SimulatedEvent:
    event_type: str  # SES's name: Send, Delivery, Bounce, Complaint
    after_seconds: float  # how long after the send SES would publish it
    document: dict[str, Any]

    @property
    def kind(self) -> str:
        """The configuration set's MatchingEventTypes name (SEND, DELIVERY, BOUNCE, COMPLAINT)."""
        return self.event_type.upper()

    def message(self) -> str:
        return json.dumps(self.document, separators=(",", ":")) + "\n"


def _feedback_id() -> str:
    return ses_message_id()


def send_event(email: AcceptedEmail) -> dict[str, Any]:
    return {"eventType": "Send", "mail": email.mail(), "send": {}}


def delivery_event(email: AcceptedEmail, recipients: list[str], after: float) -> dict[str, Any]:
    return {
        "eventType": "Delivery",
        "mail": email.mail(),
        "delivery": {
            "timestamp": iso(email.accepted_at + after),
            "processingTimeMillis": int(after * 1000),
            "recipients": recipients,
            "smtpResponse": "250 2.6.0 Message received",
            "remoteMtaIp": "127.0.0.1",
            "reportingMTA": REPORTING_MTA,
        },
    }


def hard_bounce_event(email: AcceptedEmail, address: str, after: float, *, suppression_list: bool) -> dict[str, Any]:
    diagnostic = "smtp; 550 5.1.1 user unknown"
    if suppression_list:  # as the suppressionlist@ simulator reported it in 2022 (real capture)
        diagnostic += f" ( blacklisted address: {address} )"
    return {
        "eventType": "Bounce",
        "bounce": {
            "feedbackId": _feedback_id(),
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [
                {"emailAddress": address, "action": "failed", "status": "5.1.1", "diagnosticCode": diagnostic}
            ],
            "timestamp": iso(email.accepted_at + after),
            "reportingMTA": f"dsn; {REPORTING_MTA}",
        },
        "mail": email.mail(),
    }


def ooto_bounce_event(email: AcceptedEmail, address: str, after: float) -> dict[str, Any]:
    """The out-of-office auto-reply, reported as a transient bounce (real ooto@ capture)."""
    return {
        "eventType": "Bounce",
        "bounce": {
            "feedbackId": _feedback_id(),
            "bounceType": "Transient",
            "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": address}],
            "timestamp": iso(email.accepted_at + after),
        },
        "mail": email.mail(),
    }


def complaint_event(email: AcceptedEmail, address: str, after: float) -> dict[str, Any]:
    return {
        "eventType": "Complaint",
        "complaint": {
            "feedbackId": _feedback_id(),
            "complaintSubType": None,
            "complainedRecipients": [{"emailAddress": address}],
            "timestamp": iso(email.accepted_at + after),
            "userAgent": "Amazon SES Mailbox Simulator",
            "complaintFeedbackType": "abuse",
            "arrivalDate": iso(email.accepted_at + after),
        },
        "mail": email.mail(),
    }


# Seconds after the send at which each outcome is published (SES takes about this long).
DELAYS = {"send": 0.05, "delivery": 0.6, "bounce": 0.8, "complaint": 1.2, "ooto": 1.2}


def simulate(email: AcceptedEmail, scale: float = 1.0) -> list[SimulatedEvent]:
    """The events SES publishes for one accepted email, mailbox simulator included.

    * every address: ``Send`` (once per email);
    * ordinary addresses and ``success@``: ``Delivery``;
    * ``bounce@``: a permanent bounce (5.1.1 user unknown); ``suppressionlist@``: the same, as SES
      reports an address on its suppression list;
    * ``ooto@``: ``Delivery``, then the out-of-office reply as a transient bounce;
    * ``complaint@``: ``Delivery``, then an abuse complaint.
    ``+label`` forms (``bounce+campaign7@...``) behave as the bare box.
    """

    def at(kind: str) -> float:
        return DELAYS[kind] * scale

    events = [SimulatedEvent("Send", at("send"), send_event(email))]
    delivered = []
    later: list[SimulatedEvent] = []
    for address in email.destinations:
        box = simulator_box(address)
        if box in ("bounce", "suppressionlist"):
            document = hard_bounce_event(email, address, at("bounce"), suppression_list=box == "suppressionlist")
            later.append(SimulatedEvent("Bounce", at("bounce"), document))
            continue
        delivered.append(address)
        if box == "ooto":
            later.append(SimulatedEvent("Bounce", at("ooto"), ooto_bounce_event(email, address, at("ooto"))))
        elif box == "complaint":
            later.append(SimulatedEvent("Complaint", at("complaint"), complaint_event(email, address, at("complaint"))))
    if delivered:
        events.append(SimulatedEvent("Delivery", at("delivery"), delivery_event(email, delivered, at("delivery"))))
    return events + later
