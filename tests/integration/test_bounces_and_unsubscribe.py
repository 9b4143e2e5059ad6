"""Hard bounce → suppression → the next campaign skips the address; one-click unsubscribe."""

from __future__ import annotations

import email
import json
from urllib.parse import parse_qs, urlparse

import boto3

from local.ses_events import bounce_event
from massmailer import wiring
from massmailer.splitting import recipient_message_id
from tests.integration.conftest import Pipeline

AUDIENCE = [{"email": f"{n}@example.com", "variables": {"n": n}} for n in ("ann", "bob", "cat")]
CAMPAIGN = {"name": "c", "subject": "Hi {{ n }}", "text": "Hello {{ n }}", "audience": AUDIENCE}


def test_a_hard_bounce_suppresses_the_address_and_the_next_campaign_skips_and_counts_it(
    pipeline: Pipeline,
) -> None:
    # Given a campaign that went out through SES
    _, first = pipeline.api("POST", "/v1/campaigns", CAMPAIGN)
    pipeline.run()
    bob = wiring.stores().messages.get_message(recipient_message_id(first["campaign_id"], "bob@example.com"))
    assert bob is not None and bob["status"] == "SENT"

    # When SES publishes a permanent bounce for bob (configuration set → SNS → SQS → bounce λ)
    notification = bounce_event(
        bob["provider_message_id"],
        "bob@example.com",
        {"message_id": bob["message_id"], "campaign_id": first["campaign_id"]},
    )
    boto_sns = boto3.client("sns")
    boto_sns.publish(TopicArn=pipeline.resources["topic_arn"], Message=json.dumps(notification))
    pipeline.run(bounces=True)

    # Then bob is BOUNCED and suppressed, and the campaign counts the bounce
    assert wiring.stores().messages.get_message(bob["message_id"])["status"] == "BOUNCED"  # type: ignore[index]
    assert wiring.stores().suppressions.is_suppressed("Bob@Example.com")
    _, report = pipeline.api("GET", f"/v1/campaigns/{first['campaign_id']}")
    assert report["counts"]["bounced"] == 1

    # And the next campaign to the same audience skips bob and counts him as suppressed
    sent_before = len(pipeline.ses_sent())
    _, second = pipeline.api("POST", "/v1/campaigns", CAMPAIGN)
    pipeline.run()
    new = [email.message_from_string(m.raw_data)["To"] for m in pipeline.ses_sent()[sent_before:]]
    assert sorted(new) == ["ann@example.com", "cat@example.com"]
    _, report = pipeline.api("GET", f"/v1/campaigns/{second['campaign_id']}")
    assert report["counts"]["suppressed"] == 1 and report["counts"]["sent"] == 2 and report["counts"]["queued"] == 0


def test_one_click_unsubscribe_suppresses_the_recipient(pipeline: Pipeline) -> None:
    _, first = pipeline.api("POST", "/v1/campaigns", CAMPAIGN)
    pipeline.run()
    message = next(
        email.message_from_string(m.raw_data) for m in pipeline.ses_sent() if m.raw_data.count("cat@example.com")
    )
    url = message["List-Unsubscribe"].split(",")[0].strip("<> ")
    token = parse_qs(urlparse(url).query)["token"][0]

    # A mail client POSTs List-Unsubscribe=One-Click to the URL (RFC 8058)
    status, body = pipeline.api("POST", "/v1/unsubscribe", "List-Unsubscribe=One-Click", query={"token": token})
    assert status == 200 and body == {"unsubscribed": True}
    assert wiring.stores().suppressions.is_suppressed("cat@example.com")

    tampered = pipeline.api(
        "POST", "/v1/unsubscribe", "List-Unsubscribe=One-Click", query={"token": token[:-3] + "AAA"}
    )
    assert tampered[0] == 400
    assert pipeline.api("POST", "/v1/unsubscribe", None)[0] == 400
