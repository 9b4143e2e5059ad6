"""SES out of its daily quota on the local runtime: SES is parked in the job table for every sender
process and the SMTP relay carries the campaign; nobody is lost, nobody is sent twice.

The park outlives the test (at least a minute), so this test gets a runtime of its own.
"""

from __future__ import annotations

import email
from collections.abc import Iterator
from email import policy
from pathlib import Path

import pytest

from local.runtime import LocalRuntime
from tests.e2e.conftest import E2E_ENVIRONMENTS, campaign, counts, start_runtime, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
RECIPIENTS = 200


@pytest.fixture(scope="module")
def quota_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    runtime = start_runtime(tmp_path_factory.mktemp("quota"))
    yield runtime
    runtime.stop()


def _relayed(outbox: list[Path]) -> list[str]:
    return [str(email.message_from_bytes(p.read_bytes(), policy=policy.default)["To"]).lower() for p in outbox]


def test_a_daily_quota_error_parks_ses_and_the_relay_carries_the_campaign(quota_runtime: LocalRuntime) -> None:
    rt = quota_runtime
    assert rt.ses is not None
    # Given SES answers every send with its daily quota error (and GetAccount says the quota is used up)
    rt.set_faults(mode="quota")
    audience = [
        {"email": f"quota-{i:03d}@example.com", "variables": {"first_name": "Q", "n": i}} for i in range(RECIPIENTS)
    ]
    addresses = {m["email"] for m in audience}

    # When a campaign is sent
    campaign_id = campaign(rt, audience)
    report = wait_for(
        lambda: (r := counts(rt, campaign_id))["sent"] + r["failed"] >= RECIPIENTS and r,
        timeout=120,
        what="every recipient settled",
    )

    # Then every recipient went out once, through the relay, and SES was asked only until the park
    # was seen by each sender (not once per email)
    relayed = [a for a in _relayed(rt.outbox()) if a in addresses]
    assert sorted(relayed) == sorted(addresses)
    assert report["sent"] == RECIPIENTS and report["failed"] == 0
    # At most each sender thread's first send, asked once (SES's client has botocore retries off),
    # before the park reaches it: not one per email.
    threads = (E2E_ENVIRONMENTS["high"] + E2E_ENVIRONMENTS["low"]) * 8  # MM_SENDER_CONCURRENCY default
    refused = rt.ses.snapshot()["stats"].get("refused:LimitExceededException", 0)
    assert 1 <= refused <= threads < RECIPIENTS, refused
    assert rt.ses.snapshot()["stats"].get("accepted", 0) == 0
