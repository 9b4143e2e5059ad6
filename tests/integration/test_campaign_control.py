"""Pause, resume and cancel over the HTTP API, through the real handlers, on moto and a real SMTP
relay: every recipient exactly once across a pause; nothing starts after a cancel's response."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from massmailer import wiring
from massmailer.providers.chain import ProviderChain
from massmailer.store.campaigns import DynamoCampaigns
from tests.integration.conftest import Pipeline


@pytest.fixture
def smtp_pipeline(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    monkeypatch.setenv("MM_PROVIDERS", "smtp")  # every email through the real relay
    wiring.reset()
    return pipeline


def _start(pipeline: Pipeline, n: int) -> str:
    body = {
        "name": "control",
        "subject": "Hello {{ n }}",
        "text": "Hi {{ n }}",
        "audience": [{"email": f"user{i}@example.com", "variables": {"n": str(i)}} for i in range(n)],
    }
    status, answer = pipeline.api("POST", "/v1/campaigns", body)
    assert status == 202, answer
    return str(answer["campaign_id"])


def _recipients(pipeline: Pipeline) -> list[str]:
    return [rcpt for _, rcpts, _ in pipeline.relay.messages for rcpt in rcpts]


def _post(pipeline: Pipeline, campaign_id: str, verb: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    return pipeline.api("POST", f"/v1/campaigns/{campaign_id}/{verb}", body)


def test_pause_during_sending_then_resume_sends_everyone_exactly_once(
    smtp_pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline, n = smtp_pipeline, 150
    campaign_id = _start(pipeline, n)
    submits, lock = [0], threading.Lock()
    real = ProviderChain.submit

    def submit(self: ProviderChain, email: Any, lane: str = "low") -> Any:
        with lock:
            submits[0] += 1
            if submits[0] == 30:
                assert _post(pipeline, campaign_id, "pause")[0] == 200
        return real(self, email, lane)

    monkeypatch.setattr(ProviderChain, "submit", submit)
    pipeline.run()

    status, view = pipeline.api("GET", f"/v1/campaigns/{campaign_id}")
    sent_while_running = _recipients(pipeline)
    assert view["status"] == "PAUSED" and view["paused_by"] == "operator" and view["reason"] == "paused by operator"
    assert 30 <= len(sent_while_running) < n and pipeline.depth("low") == 0  # the rest is parked, not polling
    assert _post(pipeline, campaign_id, "pause")[0] == 409

    status, resumed = _post(pipeline, campaign_id, "resume")
    assert status == 200 and resumed["status"] == "SENDING"
    pipeline.run()

    everyone = _recipients(pipeline)
    assert sorted(everyone) == sorted(f"user{i}@example.com" for i in range(n))  # once each, none lost
    status, done = pipeline.api("GET", f"/v1/campaigns/{campaign_id}")
    assert done["status"] == "COMPLETED" and done["counts"]["sent"] == n and done["counts"]["queued"] == 0
    status, again = _post(pipeline, campaign_id, "resume")
    assert status == 409 and "from COMPLETED to SPLITTING/SENDING" in again["error"]


def test_pause_during_the_split_stops_it_and_resume_continues_it_exactly_once(
    smtp_pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, small_chunks: int
) -> None:
    pipeline, n = smtp_pipeline, 480  # three checkpoints of ≤200
    campaign_id = _start(pipeline, n)
    real = DynamoCampaigns.advance_split
    calls = [0]

    def advance_split(self: DynamoCampaigns, *args: Any, **kwargs: Any) -> bool:
        calls[0] += 1
        if calls[0] == 1:
            assert _post(pipeline, campaign_id, "pause")[0] == 200
        return real(self, *args, **kwargs)

    monkeypatch.setattr(DynamoCampaigns, "advance_split", advance_split)
    pipeline.run()

    status, view = pipeline.api("GET", f"/v1/campaigns/{campaign_id}")
    assert view["status"] == "PAUSED" and view["split_done"] is False and calls[0] == 1
    assert _recipients(pipeline) == [] and view["counts"]["total"] == small_chunks  # one chunk split, all parked

    assert _post(pipeline, campaign_id, "resume")[1]["status"] == "SPLITTING"
    pipeline.run()

    assert sorted(_recipients(pipeline)) == sorted(f"user{i}@example.com" for i in range(n))
    status, done = pipeline.api("GET", f"/v1/campaigns/{campaign_id}")
    assert done["status"] == "COMPLETED" and done["counts"]["total"] == n == done["counts"]["sent"]


def test_cancel_part_way_no_send_starts_after_its_response_and_the_counts_add_up(
    smtp_pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline, n = smtp_pipeline, 150
    campaign_id = _start(pipeline, n)
    lock, local = threading.Lock(), threading.local()
    state = {"submits": 0, "cancelled": False, "in_flight": 0, "late": 0}
    real_submit, real_status = ProviderChain.submit, DynamoCampaigns.status_of

    def status_of(self: DynamoCampaigns, cid: str) -> Any:
        local.checked_after_cancel = state["cancelled"]  # this thread's last check: before or after?
        return real_status(self, cid)

    def submit(self: ProviderChain, email: Any, lane: str = "low") -> Any:
        with lock:
            if state["cancelled"]:
                # Started after the cancel's response: in flight if its status check came before.
                state["late" if local.checked_after_cancel else "in_flight"] += 1
            state["submits"] += 1
            if state["submits"] == 40:
                status, answer = _post(pipeline, campaign_id, "cancel")
                assert status == 200 and answer["status"] == "CANCELLED"
                state["cancelled"] = True
        return real_submit(self, email, lane)

    monkeypatch.setattr(ProviderChain, "submit", submit)
    monkeypatch.setattr(DynamoCampaigns, "status_of", status_of)
    pipeline.run()

    assert state["late"] == 0
    sent = _recipients(pipeline)
    assert len(sent) == len(set(sent)) == 40 + state["in_flight"] == state["submits"]
    status, view = pipeline.api("GET", f"/v1/campaigns/{campaign_id}")
    counts = view["counts"]
    assert view["status"] == "CANCELLED" and view["reason"] == "cancelled by operator"
    assert counts["sent"] == len(sent) and counts["cancelled"] == n - len(sent) and counts["queued"] == 0
    assert (_post(pipeline, campaign_id, "resume")[0], _post(pipeline, campaign_id, "cancel")[0]) == (409, 409)
    assert _post(pipeline, "cmp-missing", "cancel")[0] == 404
