"""``GET /v1/campaigns/{id}/recipients`` over the HTTP API through the real handlers on moto and a real
SMTP relay: every recipient in audience order with its record, paged, filtered by status."""

from __future__ import annotations

from typing import Any

import pytest

from lambdas.splitter import handler as splitter_handler
from massmailer import wiring
from tests.integration.conftest import Pipeline


@pytest.fixture
def smtp_pipeline(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    monkeypatch.setenv("MM_PROVIDERS", "smtp")
    wiring.reset()
    return pipeline


def _all(pipeline: Pipeline, campaign_id: str, **query: str) -> tuple[list[dict[str, Any]], int]:
    items, cursor, pages = [], None, 0
    while True:
        status, page = pipeline.api(
            "GET", f"/v1/campaigns/{campaign_id}/recipients", query={**query, **({"cursor": cursor} if cursor else {})}
        )
        assert status == 200, page
        items += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            return items, pages


def test_every_recipient_in_audience_order_with_its_status_paged_and_filtered(
    smtp_pipeline: Pipeline, small_chunks: int
) -> None:
    pipeline, n = smtp_pipeline, 450  # three split chunks: 200, 200, 50
    assert small_chunks == 200
    wiring.stores().suppressions.suppress("user7@example.com", "bounce")
    audience = [{"email": f"user{i}@example.com"} for i in range(n)] + [{"email": "USER3@example.com"}]
    status, accepted = pipeline.api(
        "POST", "/v1/campaigns", {"name": "roster", "subject": "s", "text": "t", "audience": audience}
    )
    assert status == 202, accepted
    campaign_id = accepted["campaign_id"]
    assert pipeline.source("split", splitter_handler.handler).poll_once() == 1  # split, nothing sent yet

    queued, _ = _all(pipeline, campaign_id, limit="200")
    assert [r["email"] for r in queued] == [f"user{i}@example.com" for i in range(n)]  # the duplicate once
    assert {r["status"] for r in queued if r["email"] != "user7@example.com"} == {"QUEUED"}
    assert [r["status"] for r in queued if r["email"] == "user7@example.com"] == ["SUPPRESSED"]

    pipeline.run()
    sent, pages = _all(pipeline, campaign_id, limit="120")
    assert pages >= 4 and [r["email"] for r in sent] == [f"user{i}@example.com" for i in range(n)]
    assert len({r["message_id"] for r in sent}) == n
    by_email = {r["email"]: r for r in sent}
    assert by_email["user0@example.com"]["status"] == "SENT" and by_email["user0@example.com"]["provider"] == "smtp"
    assert sum(r["status"] == "SENT" for r in sent) == n - 1
    suppressed, _ = _all(pipeline, campaign_id, status="suppressed")
    assert [r["email"] for r in suppressed] == ["user7@example.com"]
    assert _all(pipeline, campaign_id, status="BOUNCED")[0] == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"status": "LOST"}, "status"),
        ({"cursor": "%%%"}, "cursor"),
        ({"cursor": "eyJ2IjoxLCJhZnRlciI6IngifQ"}, "cursor"),  # a campaign-list cursor is not a recipients one
    ],
)
def test_bad_recipient_list_parameters_are_422_and_an_unknown_campaign_404(
    pipeline: Pipeline, query: dict[str, str], field: str
) -> None:
    status, accepted = pipeline.api(
        "POST", "/v1/campaigns", {"name": "x", "subject": "s", "text": "t", "audience": [{"email": "a@example.com"}]}
    )
    status, body = pipeline.api("GET", f"/v1/campaigns/{accepted['campaign_id']}/recipients", query=query)
    assert status == 422 and body["errors"][0]["field"] == field, body
    assert pipeline.api("GET", "/v1/campaigns/cmp-missing/recipients")[0] == 404
