"""Content size against DynamoDB's 400 KB item (moto): what fits the stated limit is stored and sent,
what does not is a 413 naming the limit — never the 503 that no retry could fix."""

from __future__ import annotations

from massmailer.models import MAX_STORED_CONTENT_BYTES
from tests.integration.conftest import Pipeline

NEAR_LIMIT = "中" * 90_000  # 270,000 bytes in UTF-8 (540,000 if stored \\u-escaped: over the item limit)


def test_non_ascii_content_within_the_limit_is_stored_and_sent(pipeline: Pipeline) -> None:
    message = {"to": "jane@example.com", "subject": "大", "html": f"<p>{NEAR_LIMIT}</p>", "text": "short"}
    status, body = pipeline.api("POST", "/v1/messages", message)
    assert status == 202, body
    campaign = {"name": "big", "subject": "大", "html": NEAR_LIMIT, "audience": [{"email": "a@example.com"}]}
    status, body = pipeline.api("POST", "/v1/campaigns", campaign)
    assert status == 202, body

    pipeline.run()

    assert len(pipeline.ses_sent()) == 2


def test_content_over_the_limit_is_413_and_nothing_is_queued(pipeline: Pipeline) -> None:
    message = {"to": "jane@example.com", "subject": "s", "html": "é" * 200_000, "text": "中" * 200_000}
    status, body = pipeline.api("POST", "/v1/messages", message, headers={"Idempotency-Key": "big-1"})
    assert status == 413 and str(MAX_STORED_CONTENT_BYTES) in body["error"]
    assert body["errors"][0]["field"] == "html/text"
    assert pipeline.depth("high") == pipeline.depth("split") == 0


def test_a_5000_deep_value_is_422_not_a_recursion_error(pipeline: Pipeline) -> None:
    raw = '{"to": "jane@example.com", "subject": "s", "text": "t", "variables": {"v": %s}}' % ("[" * 5000 + "]" * 5000)
    status, body = pipeline.api("POST", "/v1/messages", raw)
    assert status == 422 and body["errors"][0]["field"] == "variables"
