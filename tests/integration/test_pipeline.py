"""The spine end to end: API → queues → sender → providers → status, through the real handlers."""

from __future__ import annotations

import email
from email import policy

from tests.integration.conftest import Pipeline


def _campaign(n: int, **extra: object) -> dict[str, object]:
    return {
        "name": "November news",
        "subject": "Hello {{ first_name }}",
        "text": "Hi {{ first_name }}, your code is {{ code }}. Unsubscribe: {{ unsubscribe_url }}",
        "html": "<p>Hi {{ first_name }}, your code is <b>{{ code }}</b></p>",
        "audience": [
            {"email": f"user{i}@example.com", "variables": {"first_name": f"Name{i}", "code": f"C{i:04d}"}}
            for i in range(n)
        ],
        **extra,
    }


def test_transactional_email_goes_through_the_high_lane_and_reads_sent(pipeline: Pipeline) -> None:
    # Given a transactional send accepted by the API
    status, body = pipeline.api(
        "POST",
        "/v1/messages",
        {
            "to": "jane@example.com",
            "subject": "Your code {{ code }}",
            "text": "Code: {{ code }}",
            "variables": {"code": "12345"},
        },
    )
    assert status == 202, body
    message_id = body["message_id"]
    assert pipeline.depth("high") == 1 and pipeline.depth("low") == 0

    # When the high lane is drained by the sender
    pipeline.run()

    # Then SES got exactly one message, rendered, and the status reads SENT via SES
    sent = pipeline.ses_sent()
    assert len(sent) == 1
    parsed = email.message_from_string(sent[0].raw_data, policy=policy.default)
    assert parsed["Subject"] == "Your code 12345"
    assert parsed["To"] == "jane@example.com"
    assert "List-Unsubscribe" not in parsed  # transactional mail is not bulk
    status, record = pipeline.api("GET", f"/v1/messages/{message_id}")
    assert status == 200
    assert record["status"] == "SENT"
    assert record["provider"] == "ses"
    assert record["provider_message_id"] == sent[0].id
    assert record["attempts"] == 1


def test_campaign_of_500_sends_each_recipient_once_with_their_own_variables(pipeline: Pipeline) -> None:
    status, body = pipeline.api("POST", "/v1/campaigns", _campaign(500))
    assert status == 202, body
    campaign_id = body["campaign_id"]

    pipeline.run()

    sent = pipeline.ses_sent()
    assert len(sent) == 500
    by_recipient: dict[str, email.message.EmailMessage] = {}
    for message in sent:
        parsed = email.message_from_string(message.raw_data, policy=policy.default)
        to = str(parsed["To"])
        assert to not in by_recipient, f"{to} sent twice"
        by_recipient[to] = parsed
    assert set(by_recipient) == {f"user{i}@example.com" for i in range(500)}
    for i in (0, 137, 499):
        parsed = by_recipient[f"user{i}@example.com"]
        assert parsed["Subject"] == f"Hello Name{i}"
        text = parsed.get_body(("plain",)).get_content()
        assert f"your code is C{i:04d}" in text
        assert "https://mail.example.test/v1/unsubscribe?token=" in text
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert parsed["List-Unsubscribe"].startswith("<https://mail.example.test/v1/unsubscribe?token=")
        assert "mailto:" not in parsed["List-Unsubscribe"]  # https only (README, "Unsubscribe")
        assert parsed["X-MassMailer-Campaign"] == campaign_id

    status, report = pipeline.api("GET", f"/v1/campaigns/{campaign_id}")
    assert status == 200
    counts = report["counts"]
    assert counts["total"] == 500 and counts["sent"] == 500
    assert counts["queued"] == 0 and counts["failed"] == 0 and counts["suppressed"] == 0
    assert report["split_done"] is True
    assert report["status"] == "COMPLETED"


def test_a_campaign_attachment_is_matched_by_name_in_the_bucket(pipeline: Pipeline) -> None:
    import boto3

    boto3.client("s3").put_object(
        Bucket=pipeline.resources["bucket"], Key="attachments/guide-en.pdf", Body=b"%PDF-1.7 guide"
    )
    request = _campaign(3, attachments=[{"filename": "guide-{{ lang }}.pdf"}])
    for member in request["audience"]:  # type: ignore[union-attr]
        member["variables"]["lang"] = "en"  # type: ignore[index]
    status, body = pipeline.api("POST", "/v1/campaigns", request)
    assert status == 202, body

    pipeline.run()

    sent = pipeline.ses_sent()
    assert len(sent) == 3
    parsed = email.message_from_string(sent[0].raw_data, policy=policy.default)
    (attachment,) = list(parsed.iter_attachments())
    assert attachment.get_filename() == "guide-en.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == b"%PDF-1.7 guide"
