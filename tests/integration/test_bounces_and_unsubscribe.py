"""Hard bounce → suppression → the next campaign skips the address; one-click unsubscribe."""

from __future__ import annotations

import email
import json
from urllib.parse import parse_qs, urlparse

import boto3

from lambdas.ingest import handler as ingest_handler
from lambdas.splitter import handler as splitter_handler
from local.event_source import drain
from local.ses_events import bounce_event
from massmailer import wiring
from massmailer.splitting import recipient_message_id
from tests.integration.conftest import Pipeline
from tests.support import api_event, context

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


def _page(
    method: str, token: str | None, body: str | None = None, content_type: str | None = None
) -> tuple[int, str, dict[str, str]]:
    """The unsubscribe route through the real ingest handler: status, HTML, headers."""
    headers = {"Content-Type": content_type} if content_type else {}
    event = api_event(method, "/v1/unsubscribe", body, headers, {"token": token} if token is not None else None)
    response = ingest_handler.handler(event, context("ingest"))
    flat = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    for name, values in (response.get("multiValueHeaders") or {}).items():
        flat.setdefault(name.lower(), values[0])
    return response["statusCode"], response["body"], flat


def _token_for(pipeline: Pipeline, address: str) -> tuple[str, str]:
    message = next(email.message_from_string(m.raw_data) for m in pipeline.ses_sent() if m.raw_data.count(address))
    url = message["List-Unsubscribe"].strip("<> ")
    return url, parse_qs(urlparse(url).query)["token"][0]


def test_get_shows_a_page_and_changes_nothing_post_one_click_unsubscribes(pipeline: Pipeline) -> None:
    _, first = pipeline.api("POST", "/v1/campaigns", {**CAMPAIGN, "name": "Spring <sale>"})
    pipeline.run()
    url, token = _token_for(pipeline, "cat@example.com")
    assert "cat" not in url and "example.com" not in url.split("?", 1)[1]  # opaque: no address in the URL

    # A scanner (or the person) GETs the link: a page with one button, nothing changes
    status, html, headers = _page("GET", token)
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert html.count("<button") == 1 and "Spring &lt;sale&gt;" in html and "c***@example.com" in html
    assert headers["cache-control"] == "no-store" and headers["referrer-policy"] == "no-referrer"
    assert not wiring.stores().suppressions.is_suppressed("cat@example.com")

    # A mail client POSTs List-Unsubscribe=One-Click to the URL (RFC 8058); the page's button does too
    status, html, headers = _page("POST", token, "List-Unsubscribe=One-Click", "application/x-www-form-urlencoded")
    assert status == 200 and headers["content-type"].startswith("text/html") and "unsubscribed" in html
    assert wiring.stores().suppressions.is_suppressed("cat@example.com")


def test_invalid_unsubscribe_links_get_a_400_page(pipeline: Pipeline) -> None:
    pipeline.api("POST", "/v1/campaigns", CAMPAIGN)
    pipeline.run()
    _, token = _token_for(pipeline, "ann@example.com")
    form = "application/x-www-form-urlencoded"

    for bad in (token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB"), "", None, "k9.bWVzc2FnZQ.c2ln"):
        for method in ("GET", "POST"):
            status, html, headers = _page(method, bad, "List-Unsubscribe=One-Click", form)
            assert status == 400 and "This unsubscribe link is not valid" in html, (method, bad)
            assert headers["content-type"].startswith("text/html")
    status, html, _ = _page("POST", token, None, form)  # a POST without the one-click field
    assert status == 400 and "List-Unsubscribe=One-Click" in html
    assert not wiring.stores().suppressions.is_suppressed("ann@example.com")


def test_an_unsubscribe_after_the_split_is_honoured_by_the_batches_already_queued(pipeline: Pipeline) -> None:
    """Split first (the splitter checks the list and stamps the batches), unsubscribe, then send."""
    pipeline.api("POST", "/v1/campaigns", {**CAMPAIGN, "audience": AUDIENCE[:1]})
    pipeline.run()
    _, token = _token_for(pipeline, "ann@example.com")  # ann got an earlier campaign
    sent_before = len(pipeline.ses_sent())

    _, second = pipeline.api("POST", "/v1/campaigns", CAMPAIGN)
    drain([pipeline.source("split", splitter_handler.handler)])  # queued, checked: nobody suppressed yet
    assert pipeline.depth("low") == 1
    status, _, _ = _page("POST", token, "List-Unsubscribe=One-Click", "application/x-www-form-urlencoded")
    assert status == 200
    pipeline.run()

    new = [email.message_from_string(m.raw_data)["To"] for m in pipeline.ses_sent()[sent_before:]]
    assert sorted(new) == ["bob@example.com", "cat@example.com"]
    _, report = pipeline.api("GET", f"/v1/campaigns/{second['campaign_id']}")
    assert report["counts"]["suppressed"] == 1 and report["counts"]["sent"] == 2 and report["counts"]["queued"] == 0
    ann = wiring.stores().messages.get_message(recipient_message_id(second["campaign_id"], "ann@example.com"))
    assert ann is not None and ann["status"] == "SUPPRESSED"
