"""Operators' control of a campaign over HTTP on the local runtime: list, pause, resume, cancel.

SES answers each send after a fixed delay (the runtime's ``delay_ms`` fault switch), so the campaign
is still sending when the pause arrives however fast the machine: the test waits on states, never on
durations."""

from __future__ import annotations

from typing import Any

import pytest

from local.runtime import LocalRuntime
from tests.e2e.conftest import campaign, counts, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
SLOW_SEND_MS = 1000
N = 30  # ≥ 15 s of sending on the e2e runtime's two low-lane environments


def _ses_ids(rt: LocalRuntime, campaign_id: str) -> list[str]:
    assert rt.ses is not None
    return [
        a["tags"].get("message_id", "") for a in list(rt.ses.accepted) if a["tags"].get("campaign_id") == campaign_id
    ]


def _post(rt: LocalRuntime, campaign_id: str, verb: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    return rt.api("POST", f"/v1/campaigns/{campaign_id}/{verb}", body)


def test_list_pause_resume_and_cancel_over_http(rt: LocalRuntime, token: str) -> None:
    rt.set_faults(delay_ms=SLOW_SEND_MS)
    audience = [{"email": f"ctl-{token}-{i}@example.com", "variables": {"first_name": "C", "n": i}} for i in range(N)]
    paused_id = campaign(rt, audience, name=f"{token} paused")

    # Pause while it is splitting or sending: 200, PAUSED, and the sends already started finish
    status, paused = _post(rt, paused_id, "pause")
    assert status == 200 and paused["status"] == "PAUSED" and paused["paused_by"] == "operator", paused
    assert _post(rt, paused_id, "pause")[0] == 409

    # Listed, newest first, by the name prefix this test owns
    cancelled_id = campaign(rt, audience, name=f"{token} cancelled")
    status, listed = rt.api("GET", f"/v1/campaigns?name_prefix={token}")
    assert status == 200 and [i["campaign_id"] for i in listed["items"]] == [cancelled_id, paused_id], listed
    assert listed["items"][1]["status"] == "PAUSED" and listed["items"][1]["eta"] is None

    # Cancel the second: final; its recipients end sent (in flight) or CANCELLED, none left queued
    status, answer = _post(rt, cancelled_id, "cancel")
    assert status == 200 and answer["status"] == "CANCELLED", answer
    assert _post(rt, cancelled_id, "resume")[0] == 409

    # Resume the first: it goes on where it stopped and everyone gets it exactly once
    rt.reset_faults()
    status, resumed = _post(rt, paused_id, "resume")
    assert status == 200 and resumed["status"] in ("SPLITTING", "SENDING"), resumed
    done = wait_for(
        lambda: (c := counts(rt, paused_id))["status"] == "COMPLETED" and c, timeout=180, what="the resumed campaign"
    )
    ids = _ses_ids(rt, paused_id)
    assert done["sent"] == N == len(ids) == len(set(ids)) and done["queued"] == 0

    settled = wait_for(
        lambda: (c := counts(rt, cancelled_id))["queued"] == 0 and c, timeout=180, what="the cancelled recipients"
    )
    assert settled["status"] == "CANCELLED"
    assert settled["sent"] + settled["cancelled"] == settled["total"] and settled["sent"] == len(
        _ses_ids(rt, cancelled_id)
    )

    status, completed = rt.api("GET", f"/v1/campaigns?name_prefix={token}&status=COMPLETED")
    assert [i["campaign_id"] for i in completed["items"]] == [paused_id] and completed["items"][0]["progress"] == 1.0
