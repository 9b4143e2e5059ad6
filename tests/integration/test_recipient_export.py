"""Recipients export on moto through the real handlers: ``POST /v1/campaigns/{id}/recipients/export``
→ the splitter function streams a CSV into the bucket by multipart upload → ``GET /v1/exports/{id}``
gives a presigned URL; the CSV's rows are the paginated API's."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from massmailer import exports, wiring
from tests.integration.conftest import Pipeline


@pytest.fixture
def smtp_pipeline(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    monkeypatch.setenv("MM_PROVIDERS", "smtp")
    wiring.reset()
    return pipeline


def _api_items(pipeline: Pipeline, campaign_id: str, **query: str) -> list[dict[str, Any]]:
    items, cursor = [], None
    while True:
        status, page = pipeline.api(
            "GET",
            f"/v1/campaigns/{campaign_id}/recipients",
            query={"limit": "500", **query, **({"cursor": cursor} if cursor else {})},
        )
        assert status == 200, page
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def _csv_rows(pipeline: Pipeline, url: str) -> list[dict[str, str]]:
    # The presigned URL, fetched as a client would: the signed GET (moto in process answers it).
    import requests

    response = requests.get(url, timeout=30)
    assert response.status_code == 200, response.text[:200]
    assert response.headers["Content-Disposition"].startswith("attachment;")
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def _expected(items: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{name: exports.csv_cell(item.get(name)) for name in exports.COLUMNS} for item in items]


def _export(pipeline: Pipeline, campaign_id: str, body: Any = None) -> dict[str, Any]:
    status, accepted = pipeline.api("POST", f"/v1/campaigns/{campaign_id}/recipients/export", body)
    assert status == 202, accepted
    assert accepted["status"] == "PENDING" and accepted["url"] is None
    pipeline.run()  # the export request goes through the split queue to the splitter function
    status, done = pipeline.api("GET", f"/v1/exports/{accepted['export_id']}")
    assert status == 200, done
    assert done["status"] == "DONE", done
    return done


def test_the_csv_export_holds_the_paginated_apis_rows_in_several_parts(
    smtp_pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline, n = smtp_pipeline, 600
    wiring.stores().suppressions.suppress("user11@example.com", "bounce")
    audience = [{"email": f"user{i}@example.com"} for i in range(n)]
    status, accepted = pipeline.api(
        "POST", "/v1/campaigns", {"name": "export", "subject": "s", "text": "t", "audience": audience}
    )
    assert status == 202, accepted
    campaign_id = accepted["campaign_id"]
    pipeline.run()
    # Parts scaled down with moto's minimum, which moto still enforces on every part but the last.
    import moto.s3.models

    monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", 16 << 10)
    monkeypatch.setattr(exports, "PART_SIZE", 16 << 10)

    done = _export(pipeline, campaign_id)
    rows = _csv_rows(pipeline, done["url"])
    assert rows == _expected(_api_items(pipeline, campaign_id))
    assert len(rows) == n == done["rows"]
    assert done["url_expires_at"].endswith("Z") and done["completed_at"].endswith("Z")
    job = wiring.stores().exports.get(done["export_id"])
    assert job is not None and job.part_count >= 3 and job.key == f"exports/{campaign_id}/{done['export_id']}.csv"

    failed_only = _export(pipeline, campaign_id, {"status": "suppressed"})
    assert [r["email"] for r in _csv_rows(pipeline, failed_only["url"])] == ["user11@example.com"]
    assert failed_only["rows"] == 1 and failed_only["status_filter"] == "SUPPRESSED"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [({"status": "LOST"}, 422, "status"), ({"statuses": ["SENT"]}, 422, "statuses"), ("{", 400, None)],
)
def test_bad_export_requests_are_4xx_naming_the_field(
    pipeline: Pipeline, body: Any, status: int, field: str | None
) -> None:
    _, accepted = pipeline.api(
        "POST", "/v1/campaigns", {"name": "x", "subject": "s", "text": "t", "audience": [{"email": "a@example.com"}]}
    )
    code, answer = pipeline.api("POST", f"/v1/campaigns/{accepted['campaign_id']}/recipients/export", body)
    assert code == status, answer
    if field:
        assert [e["field"] for e in answer["errors"]] == [field]


def test_unknown_campaign_or_export_is_404_and_a_scheduled_campaign_409(pipeline: Pipeline) -> None:
    assert pipeline.api("POST", "/v1/campaigns/cmp-nope/recipients/export")[0] == 404
    assert pipeline.api("GET", "/v1/exports/exp-nope")[0] == 404
    _, accepted = pipeline.api(
        "POST",
        "/v1/campaigns",
        {
            "name": "later",
            "subject": "s",
            "text": "t",
            "audience": [{"email": "a@example.com"}],
            "send_at": "2099-01-01T00:00:00Z",
        },
    )
    code, answer = pipeline.api("POST", f"/v1/campaigns/{accepted['campaign_id']}/recipients/export")
    assert code == 409 and "SCHEDULED" in answer["error"]
