"""The recipients export over HTTP on the local runtime: the ingest function queues it, the splitter
function streams the CSV into the bucket (moto), and the presigned URL downloads it from the local
moto server — the rows are the paginated API's."""

from __future__ import annotations

import csv
import io
import urllib.request
from typing import Any

import pytest

from local.runtime import LocalRuntime
from massmailer import exports
from tests.e2e.conftest import campaign, counts, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
N = 40


def _api_items(rt: LocalRuntime, campaign_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        status, page = rt.api(
            "GET", f"/v1/campaigns/{campaign_id}/recipients?limit=15" + (f"&cursor={cursor}" if cursor else "")
        )
        assert status == 200, page
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def test_export_a_campaigns_recipients_and_download_the_csv_by_its_presigned_url(rt: LocalRuntime, token: str) -> None:
    audience = [{"email": f"exp-{token}-{i}@example.com"} for i in range(N)] + [
        {"email": "bounce@simulator.amazonses.com"}
    ]
    campaign_id = campaign(rt, audience, name=f"{token} export")
    wait_for(lambda: counts(rt, campaign_id)["status"] == "COMPLETED", timeout=180, what="the campaign")

    status, accepted = rt.api("POST", f"/v1/campaigns/{campaign_id}/recipients/export")
    assert status == 202 and accepted["status"] == "PENDING", accepted
    done = wait_for(
        lambda: (e := rt.api("GET", f"/v1/exports/{accepted['export_id']}")[1])["status"] == "DONE" and e,
        timeout=120,
        what="the export",
    )
    assert done["rows"] == N + 1 and done["url"].startswith("http://127.0.0.1:"), done
    with urllib.request.urlopen(done["url"], timeout=30) as response:  # noqa: S310 - the local moto server
        assert response.status == 200
        body = response.read().decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    expected = [{c: exports.csv_cell(i.get(c)) for c in exports.COLUMNS} for i in _api_items(rt, campaign_id)]
    assert rows == expected and len(rows) == N + 1
