"""An SES outage in the middle of a campaign: failover to the SMTP relay loses and duplicates nothing.

This test opens the sender's circuit breaker (shared state in the job table), so it gets a runtime of
its own instead of the shared one.
"""

from __future__ import annotations

import email
import time
from collections.abc import Iterator
from email import policy
from pathlib import Path

import pytest

from local.runtime import LocalRuntime
from tests.e2e.conftest import campaign, counts, message, start_runtime, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
RECIPIENTS = 300


@pytest.fixture(scope="module")
def outage_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    runtime = start_runtime(tmp_path_factory.mktemp("outage"))
    yield runtime
    runtime.stop()


def _outbox_recipients(outbox: list[Path]) -> list[str]:
    recipients = []
    for path in outbox:
        parsed = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        recipients.append(str(parsed["To"]).lower())
    return recipients


def test_provider_outage_mid_campaign_loses_and_duplicates_nothing(outage_runtime: LocalRuntime) -> None:
    rt = outage_runtime
    audience = [
        {"email": f"outage-{i:03d}@example.com", "variables": {"first_name": "Out", "n": i}} for i in range(RECIPIENTS)
    ]
    addresses = {m["email"] for m in audience}

    # Given a campaign going out through SES
    campaign_id = campaign(rt, audience)

    # When SES goes down part-way, the relay also refuses for a moment (both providers fail: the
    # sender re-enqueues with a delay), and then everything comes back
    phase = "ses"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        report = counts(rt, campaign_id)
        if phase == "ses" and report["sent"] >= 60:
            rt.set_faults(mode="down")
            phase = "down"
        elif phase == "down" and report["sent"] >= 150:
            rt.set_faults(smtp="throttle")
            time.sleep(0.8)
            rt.set_faults(smtp=None)
            phase = "hiccup"
        elif phase == "hiccup" and report["sent"] >= 220:
            rt.reset_faults()
            phase = "restored"
        if report["sent"] + report["failed"] >= RECIPIENTS:
            break
        time.sleep(0.2)
    rt.reset_faults()
    report = wait_for(
        lambda: (r := counts(rt, campaign_id))["sent"] == RECIPIENTS and r, timeout=60, what="every recipient SENT"
    )

    # Then every recipient was sent exactly once: either SES recorded it or the relay's outbox has it
    via_ses = [d for m in rt.ses_record() for d in {a.lower() for a in m["destinations"]} if d in addresses]
    via_relay = [r for r in _outbox_recipients(rt.outbox()) if r in addresses]
    assert len(via_ses) == len(set(via_ses)), "SES sent someone twice"
    assert len(via_relay) == len(set(via_relay)), "the relay got someone twice"
    assert not set(via_ses) & set(via_relay), "someone went out through both providers"
    assert set(via_ses) | set(via_relay) == addresses, "someone was lost"
    assert via_ses and via_relay, "the outage should have split the campaign between the providers"
    assert report["failed"] == 0 and report["sent"] == RECIPIENTS
    # And each record names the provider that really sent it
    relay_set = set(via_relay)
    for address in sorted(addresses)[::25]:
        record = message(rt, campaign_id, address)
        assert record["provider"] == ("smtp" if address in relay_set else "ses"), record
