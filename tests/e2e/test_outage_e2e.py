"""An SES outage in the middle of a campaign: failover to the SMTP relay loses and duplicates nothing.

This test opens the sender's circuit breaker (shared state in the job table), so it gets a runtime of
its own instead of the shared one.
"""

from __future__ import annotations

import email
import threading
from collections.abc import Iterator
from email import policy
from pathlib import Path

import pytest

from local.runtime import LocalRuntime
from tests.e2e.conftest import campaign, counts, message, start_runtime, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
RECIPIENTS = 300
SES_BEFORE_THE_OUTAGE = 60
RELAY_BEFORE_SES_COMES_BACK = 90


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


def _outage_switched_by_the_providers(rt: LocalRuntime, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The outage's phases, switched from inside the providers as each send is answered, not by
    polling the campaign's counters (a drain faster than the polling would outrun them): SES goes
    down once it has accepted ``SES_BEFORE_THE_OUTAGE`` and the relay refuses at that moment too (both
    providers fail: the sender re-enqueues with a delay) — for exactly one recipient; SES comes back
    once the relay has taken ``RELAY_BEFORE_SES_COMES_BACK``. Returns the phases as they happen."""
    assert rt.ses is not None and rt.relay is not None
    ses, relay, handler = rt.ses, rt.relay, rt.relay.handler
    phases: list[str] = []
    taken = {"ses": 0, "relay": 0}
    lock = threading.Lock()
    ses_accepted, relay_rcpt = ses._accepted, handler.handle_RCPT

    def accepted(send_request: dict[str, object], message_id: str) -> None:
        ses_accepted(send_request, message_id)
        with lock:
            taken["ses"] += 1
            if taken["ses"] == SES_BEFORE_THE_OUTAGE:
                ses.set_faults(mode="down")
                relay.fault = "throttle"
                phases.append("SES down, relay refusing")

    async def rcpt(server: object, session: object, envelope: object, address: str, options: list[str]) -> str:
        reply = await relay_rcpt(server, session, envelope, address, options)
        with lock:
            if not reply.startswith("250"):
                if relay.fault is not None:
                    relay.fault = None
                    phases.append("relay back")
            else:
                taken["relay"] += 1
                if taken["relay"] == RELAY_BEFORE_SES_COMES_BACK:
                    ses.reset_faults()
                    phases.append("SES back")
        return reply

    # sessions bind the handler's hooks when they open: these are in place before the campaign, and
    # the relay, the failover provider, has no session before SES fails
    monkeypatch.setattr(ses, "_accepted", accepted)
    monkeypatch.setattr(handler, "handle_RCPT", rcpt)
    return phases


def test_provider_outage_mid_campaign_loses_and_duplicates_nothing(
    outage_runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = outage_runtime
    audience = [
        {"email": f"outage-{i:03d}@example.com", "variables": {"first_name": "Out", "n": i}} for i in range(RECIPIENTS)
    ]
    addresses = {m["email"] for m in audience}
    phases = _outage_switched_by_the_providers(rt, monkeypatch)

    # Given a campaign going out through SES
    # When SES goes down part-way, the relay also refuses for a moment (both providers fail: the
    # sender re-enqueues with a delay), and then everything comes back
    campaign_id = campaign(rt, audience)
    report = wait_for(
        lambda: (r := counts(rt, campaign_id))["sent"] + r["failed"] >= RECIPIENTS and r,
        timeout=120,
        what="every recipient settled",
    )
    assert phases == ["SES down, relay refusing", "relay back", "SES back"]

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
