"""``GET /v1/campaigns`` over the HTTP API through the real handlers on moto: newest first, paged by
an opaque cursor, filtered by reported status and by name prefix; bad parameters are 422."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from massmailer import intake
from massmailer.models import CampaignCounts, CampaignStatus
from massmailer.store import CampaignSummary
from tests.integration.conftest import Pipeline


def _start(pipeline: Pipeline, name: str, n: int = 2, send_at: datetime | None = None) -> str:
    body = {
        "name": name,
        "subject": "s",
        "text": "t",
        "audience": [{"email": f"{name.replace(' ', '')}{i}@example.com"} for i in range(n)],
        **({"send_at": send_at.isoformat()} if send_at else {}),
    }
    status, answer = pipeline.api("POST", "/v1/campaigns", body)
    assert status == 202, answer
    return str(answer["campaign_id"])


def _list(pipeline: Pipeline, **query: str) -> dict:
    status, body = pipeline.api("GET", "/v1/campaigns", query=query or None)
    assert status == 200, body
    return body


def test_the_list_is_newest_first_paged_and_filtered(pipeline: Pipeline) -> None:
    done = _start(pipeline, "spring news", 3)
    pipeline.run()  # the first one completes
    later = _start(pipeline, "spring later", 1, send_at=datetime.now(UTC) + timedelta(days=30))
    running = _start(pipeline, "autumn news", 4)  # split requested, not yet drained: SPLITTING

    everything = _list(pipeline)
    assert [i["campaign_id"] for i in everything["items"]] == [running, later, done]
    assert everything["next_cursor"] is None
    first = everything["items"][2]
    assert (first["name"], first["status"], first["progress"], first["eta"]) == ("spring news", "COMPLETED", 1.0, None)
    assert first["counts"]["sent"] == 3 and first["created_at"].endswith("Z")
    assert [i["status"] for i in everything["items"][:2]] == ["SPLITTING", "SCHEDULED"]

    seen, cursor, pages = [], None, 0
    while True:
        page = _list(pipeline, limit="1", **({"cursor": cursor} if cursor else {}))
        seen += [i["campaign_id"] for i in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [running, later, done] and pages >= 3

    assert [i["campaign_id"] for i in _list(pipeline, status="COMPLETED")["items"]] == [done]
    assert [i["campaign_id"] for i in _list(pipeline, status="scheduled")["items"]] == [later]
    assert [i["campaign_id"] for i in _list(pipeline, name_prefix="spring")["items"]] == [later, done]
    assert _list(pipeline, name_prefix="winter") == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "eyJ2IjoyfQ"}, "cursor"),  # valid base64 JSON, not ours
        ({"status": "RUNNING"}, "status"),
    ],
)
def test_bad_list_parameters_are_422_naming_the_parameter(pipeline: Pipeline, query: dict, field: str) -> None:
    status, body = pipeline.api("GET", "/v1/campaigns", query=query)
    assert status == 422 and body["errors"][0]["field"] == field, body


def test_eta_only_while_sending_from_the_rate_so_far() -> None:
    created = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    counts = CampaignCounts(total=1000, sent=250, queued=750)
    sending = CampaignSummary("c1", "n", created, None, CampaignStatus.SENDING, True, counts)
    item = intake._list_item(sending, now=created + timedelta(minutes=10))  # 250 in 10 min: 750 more in 30
    assert item["eta"] == "2026-03-01T12:40:00.000Z" and item["progress"] == 0.25
    paused = CampaignSummary("c1", "n", created, None, CampaignStatus.PAUSED, True, counts)
    assert intake._list_item(paused, now=created + timedelta(minutes=10))["eta"] is None
    scheduled = CampaignSummary("c2", "n", created, created + timedelta(hours=1), CampaignStatus.SENDING, True, counts)
    later = intake._list_item(scheduled, now=created + timedelta(hours=1, minutes=5))  # sending began at send_at
    assert later["eta"] == "2026-03-01T13:20:00.000Z"
