"""SES notifications: every fixture of ``shared/fixtures/ses-events`` against its expectation (expect.json),
each against fresh state (EXPECT.md rule 7), through the domain function and through the bounce λ.

The fixtures are kept in ``tests/events/ses`` (a copy, so the repository is self-contained);
``test_fixture_copy_matches_shared`` notices when the shared originals change.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lambdas.bounce import handler as bounce_handler
from massmailer.models import CampaignStatus, Status
from massmailer.notifications import (
    MalformedNotification,
    NotificationReport,
    RateGuard,
    process_lambda_event,
    process_notification,
    process_sns_payload,
)
from massmailer.store import InMemoryStores, Meter, Stores, StoreUnavailable
from massmailer.store.messages import InMemoryMessages
from massmailer.store.suppressions import InMemorySuppressions
from tests.support import make_campaign

# Notifications without a metric (Send, Open, ignored input) make Powertools warn about empty metrics.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

REPO = Path(__file__).resolve().parents[2]
OWN_EVENTS = REPO / "tests" / "events" / "ses"
SHARED_EVENTS = REPO.parent / "shared" / "fixtures" / "ses-events"


def _store() -> InMemoryStores:
    """The fixtures are SES's own samples: no ``message_id`` tag, so records are found by SES's id."""
    return Stores.in_memory(index_provider_ids=True)


def events_dir() -> Path:
    """Our copy of the SES fixtures, else the shared originals beside the repository."""
    for directory in (OWN_EVENTS, SHARED_EVENTS):
        if (directory / "expect.json").is_file():
            return directory
    raise FileNotFoundError(f"SES fixtures not found in {OWN_EVENTS} or {SHARED_EVENTS}")


def load_text(name: str) -> str:
    return (events_dir() / name).read_text(encoding="utf-8")


def load_event(name: str) -> Any:
    return json.loads(load_text(name))


CASES: list[dict[str, Any]] = load_event("expect.json")["files"]
BY_FILE = {case["file"]: case for case in CASES}
ENVELOPES = [case["file"] for case in CASES if case["file"].startswith("envelope-")]
WITH_STATUS = [case["file"] for case in CASES if case["status"]]

# MassMailer has no REJECTED status: a rejected message is FAILED with the reason in its detail.
STATUS_ALIASES = {"REJECTED": {"FAILED"}}
COUNTER_OF = {
    "BOUNCED": "bounced",
    "COMPLAINED": "complained",
    "SOFT_BOUNCED": "soft_bounced",
    "DELIVERED": "delivered",
}
CAMPAIGN = "cmp-spring"


@dataclass
class LambdaContext:
    function_name: str = "massmailer-test-bounce"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:massmailer-test-bounce"
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345678"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


# -- helpers: givens and readings --------------------------------------------------------------------


def process_file(store: InMemoryStores, name: str) -> list[NotificationReport]:
    """Feed a fixture as it arrives: a whole Lambda event, or the SNS ``Message`` string."""
    if name.startswith("envelope-"):
        return process_lambda_event(store, load_event(name))
    return [process_notification(store, load_text(name))]


def accepted(expected: str) -> tuple[set[str], bool]:
    """Accepted statuses and whether "unchanged" is fine.

    ``"SENT (or unchanged)"`` -> ({"SENT"}, True); ``"REJECTED (...)"`` -> ({"REJECTED", "FAILED"}, False).
    """
    name = expected.split()[0]
    return {name, *STATUS_ALIASES.get(name, set())}, "unchanged" in expected


def reported_status(reports: list[NotificationReport], provider_message_id: str, address: str) -> str | None:
    for report in reports:
        status = report.status_of(provider_message_id, address)
        if status is not None:
            return status.value
    return None


def given_campaign(store: InMemoryStores, campaign_id: str = CAMPAIGN, sent: int = 0) -> None:
    store.campaigns.put_campaign(make_campaign(campaign_id))
    if sent:
        store.campaigns.add_campaign_counts(campaign_id, {"sent": sent})


def given_sent(
    store: InMemoryStores,
    message_id: str,
    email: str,
    provider_message_id: str | None,
    campaign_id: str | None = CAMPAIGN,
) -> None:
    """A record the sender claimed and (with a provider message id) recorded SENT."""
    claim = store.messages.claim_recipient(
        message_id, email=email, campaign_id=campaign_id, lane="low", attempt=0, lease_seconds=300
    )
    assert claim.claimed
    if provider_message_id:
        store.messages.record_sent(message_id, claim.token, "ses", provider_message_id)


def record_owner(case: dict[str, Any], provider_message_id: str) -> str:
    addresses = [a for a in case["status"][provider_message_id] if a != "*"]
    return addresses[0] if addresses else "recipient@example.com"


def given_records_for(store: InMemoryStores, case: dict[str, Any]) -> dict[str, str]:
    """One SENT record per SES message id of the case (our sends have one recipient each)."""
    given_campaign(store)
    ids = {}
    for i, provider_message_id in enumerate(case["status"]):
        ids[provider_message_id] = f"{CAMPAIGN}.rec{i}"
        given_sent(store, ids[provider_message_id], record_owner(case, provider_message_id), provider_message_id)
    return ids


def counts(store: InMemoryStores, campaign_id: str = CAMPAIGN) -> dict[str, int]:
    stored = store.campaigns.get_campaign(campaign_id)
    assert stored is not None
    return {name: getattr(stored.counts, name) for name in COUNTER_OF.values()}


def snapshot(store: InMemoryStores) -> dict[str, Any]:
    return copy.deepcopy(
        {
            "messages": store.messages.by_id,
            "suppressions": store.suppressions.by_address,
            "campaigns": store.campaigns.by_id,
            "events": store.markers.events,
        }
    )


def notification(name: str, **mail: Any) -> dict[str, Any]:
    """A fixture's SES JSON with ``mail`` fields replaced (e.g. messageId, tags)."""
    document = load_event(name)
    document["mail"].update(mail)
    return document


def bounce_for(address: str, provider_message_id: str, bounce_type: str = "Permanent", **mail: Any) -> dict[str, Any]:
    document = notification("event-bounce.json", messageId=provider_message_id, destination=[address], **mail)
    document["bounce"]["bounceType"] = bounce_type
    document["bounce"]["bouncedRecipients"][0]["emailAddress"] = address
    return document


def sqs_event(*bodies: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"sqs-{i}",
                "receiptHandle": "rh",
                "body": body,
                "eventSource": "aws:sqs",
                "attributes": {},
            }
            for i, body in enumerate(bodies)
        ]
    }


def sns_body(message: str | dict[str, Any]) -> str:
    text = message if isinstance(message, str) else json.dumps(message)
    return json.dumps({"Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:aws:sns:x:1:t", "Message": text})


# -- the fixtures, each against fresh state ---------------------------------------------------------


def test_fixture_copy_matches_shared() -> None:
    if not (SHARED_EVENTS / "expect.json").is_file():
        pytest.skip("shared fixtures are not beside the repository")
    shared = {p.name: p.read_bytes() for p in SHARED_EVENTS.iterdir() if p.is_file()}
    ours = {p.name: p.read_bytes() for p in OWN_EVENTS.iterdir() if p.is_file()}
    assert ours == shared


def test_every_fixture_file_has_an_expectation() -> None:
    files = {p.name for p in events_dir().glob("*.json")} - {"expect.json"}
    assert files == set(BY_FILE)
    assert len(CASES) == len(BY_FILE) == 31


@pytest.mark.parametrize("name", list(BY_FILE))
def test_fixture_suppresses_exactly_the_named_addresses(name: str) -> None:
    case, store = BY_FILE[name], _store()

    reports = process_file(store, name)

    expected = {s["address"]: s for s in case["suppress"]}
    assert set(store.suppressions.by_address) == set(expected)
    assert set().union(*(r.suppressed_addresses for r in reports)) == set(expected)
    for address, want in expected.items():
        got = store.suppressions.by_address[address]
        assert got["reason"] == want["reason"]
        for key in ("bounceType", "bounceSubType", "complaintFeedbackType"):
            if key in want:
                assert got["details"].get(key) == want[key], key
    for address in case["not_suppress"]:
        assert not store.suppressions.is_suppressed(address)


@pytest.mark.parametrize("name", list(BY_FILE))
def test_fixture_reports_the_expected_statuses(name: str) -> None:
    case = BY_FILE[name]

    reports = process_file(_store(), name)

    for provider_message_id, by_address in case["status"].items():
        for address, expected in by_address.items():
            names, unchanged_ok = accepted(expected)
            status = reported_status(reports, provider_message_id, address)
            assert status in names or (status is None and unchanged_ok), (address, status, expected)
    # Nothing beyond the expectation is bounced, complained, soft-bounced or delivered.
    reported = {
        (c.provider_message_id, c.address, c.status.value)
        for r in reports
        for c in r.statuses
        if c.status in COUNTER_OF
    }
    wanted = {
        (pmid, address, text.split()[0])
        for pmid, by_address in case["status"].items()
        for address, text in by_address.items()
        if text.split()[0] in COUNTER_OF
    }
    assert reported == wanted
    for address in case["not_suppress"]:
        assert all(
            c.status not in (Status.BOUNCED, Status.COMPLAINED)
            for r in reports
            for c in r.statuses
            if c.address == address
        )


@pytest.mark.parametrize("name", list(BY_FILE))
def test_fixture_counts_soft_bounces_and_engagement_and_ignores(name: str) -> None:
    case, store = BY_FILE[name], _store()

    reports = process_file(store, name)

    assert sorted(a for r in reports for a in r.soft_bounces) == sorted(case["soft_bounce"])
    engagements = [e for r in reports for e in r.engagements]
    if case["engagement"]:
        want = case["engagement"]
        assert len(engagements) == 1
        got = engagements[0]
        assert (got.kind, got.provider_message_id, got.recipient, got.timestamp) == (
            want["type"],
            want["messageId"],
            want["recipient"],
            want["timestamp"],
        )
        assert got.ip_address == want.get("ipAddress", got.ip_address)
        assert got.link == want.get("link")
    else:
        assert engagements == []
    assert all(r.ignored for r in reports) is case["ignore"]
    if case["ignore"]:
        assert store.writes == 0
        assert not (
            store.messages.by_id or store.suppressions.by_address or store.markers.events or store.campaigns.by_id
        )


@pytest.mark.parametrize("name", WITH_STATUS)
def test_fixture_moves_our_records_and_campaign_counters(name: str) -> None:
    case, store = BY_FILE[name], _store()
    records = given_records_for(store, case)

    process_file(store, name)

    expected_counts = dict.fromkeys(COUNTER_OF.values(), 0)
    for provider_message_id, by_address in case["status"].items():
        owner = record_owner(case, provider_message_id)
        expected = by_address.get(owner) or by_address["*"]
        names, unchanged_ok = accepted(expected)
        record = store.messages.get_message(records[provider_message_id])
        assert record is not None
        assert record["status"] in names or (unchanged_ok and record["status"] == Status.SENT), (
            owner,
            record,
        )
        if record["status"] in COUNTER_OF:
            expected_counts[COUNTER_OF[record["status"]]] += 1
        assert record.get("soft_bounces", 0) == (1 if names == {"SOFT_BOUNCED"} else 0)
    assert counts(store) == expected_counts


@pytest.mark.parametrize("name", ENVELOPES)
def test_envelope_through_the_handler_acknowledges_every_record(name: str) -> None:
    case, store = BY_FILE[name], _store()

    response = bounce_handler.handler(load_event(name), LambdaContext(), stores=store)

    assert response == {"batchItemFailures": []}
    assert set(store.suppressions.by_address) == {s["address"] for s in case["suppress"]}
    for address in case["not_suppress"]:
        assert not store.suppressions.is_suppressed(address)


@pytest.mark.parametrize("name", list(BY_FILE))
def test_replaying_a_fixture_changes_nothing(name: str) -> None:
    case, store = BY_FILE[name], _store()
    if case["status"]:
        given_records_for(store, case)
    process_file(store, name)
    before = snapshot(store)

    replay = process_file(store, name)

    assert snapshot(store) == before  # no double count, no second suppression row, no new digest
    assert [a for r in replay for a in r.soft_bounces] == []
    assert all(not r.events and not r.engagements and not r.campaign_counts for r in replay)
    assert all(not s.added for r in replay for s in r.suppressions)
    assert all(not c.applied for r in replay for c in r.statuses)


def test_files_sharing_message_and_feedback_ids_are_not_mistaken_for_replays() -> None:
    # event-bounce.json and event-complaint.json share mail.messageId AND feedbackId (rule 7).
    store = _store()

    bounce = process_notification(store, load_text("event-bounce.json"))
    complaint = process_notification(store, load_text("event-complaint.json"))

    assert bounce.events["Bounces"] == 1
    assert complaint.events["Complaints"] == 1
    assert complaint.duplicates == 0


def test_the_same_notification_via_sns_and_via_sqs_is_one_event() -> None:
    store = _store()
    given_campaign(store)
    given_sent(store, "m1", "jane@example.com", "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000")

    first = process_lambda_event(store, load_event("envelope-sns-lambda-identity-bounce.json"))
    second = process_lambda_event(store, load_event("envelope-sqs-sns-identity-bounce.json"))

    assert first[0].events["Bounces"] == 1
    assert second[0].duplicate
    assert counts(store)["bounced"] == 1


# -- correlation ---------------------------------------------------------------------------------------


def test_send_event_settles_a_record_the_sender_could_not_mark_sent_through_its_tag() -> None:
    store = _store()
    given_sent(store, "msg-42", "recipient@example.com", provider_message_id=None, campaign_id=None)
    tags = {**load_event("event-send.json")["mail"]["tags"], "message_id": ["msg-42"]}

    report = process_notification(store, notification("event-send.json", tags=tags))

    assert store.messages.get_message("msg-42")["status"] == Status.SENT
    assert report.message_id == "msg-42"
    assert report.statuses[0].applied


def test_without_tag_or_provider_id_the_record_is_not_found_and_left_alone() -> None:
    store = _store()
    given_sent(store, "msg-42", "recipient@example.com", provider_message_id=None, campaign_id=None)

    report = process_notification(store, load_text("event-send.json"))

    assert store.messages.get_message("msg-42")["status"] == Status.SENDING
    assert report.message_id is None
    assert report.status_of(report.provider_message_id, "recipient@example.com") == Status.SENT  # would set


def test_tag_is_preferred_to_the_provider_id_and_carries_the_campaign() -> None:
    store = _store()
    given_campaign(store)
    given_sent(store, "cmp-spring.a1", "bounce@simulator.amazonses.com", "pmid-1")
    given_sent(store, "cmp-spring.b2", "other@example.com", "pmid-tagged-elsewhere")
    tags = {"message_id": ["cmp-spring.a1"], "campaign_id": [CAMPAIGN]}

    report = process_notification(
        store, bounce_for("bounce@simulator.amazonses.com", "pmid-tagged-elsewhere", tags=tags)
    )

    assert store.messages.get_message("cmp-spring.a1")["status"] == Status.BOUNCED
    assert store.messages.get_message("cmp-spring.b2")["status"] == Status.SENT
    assert report.campaign_id == CAMPAIGN
    assert counts(store)["bounced"] == 1


def test_without_a_tag_the_massmailer_header_finds_the_record_when_ids_are_not_indexed() -> None:
    store = Stores.in_memory()  # the default store: no provider-id index
    given_campaign(store)
    given_sent(store, "cmp-spring.a1", "bounce@simulator.amazonses.com", "pmid-1")
    headers = [{"name": "From", "value": "x@example.com"}, {"name": "x-massmailer-message", "value": " cmp-spring.a1 "}]

    with_header = bounce_for("bounce@simulator.amazonses.com", "pmid-1", headers=headers)
    report = process_notification(store, with_header)

    assert report.message_id == "cmp-spring.a1"
    assert store.messages.get_message("cmp-spring.a1")["status"] == Status.BOUNCED
    assert counts(store)["bounced"] == 1


def test_without_tag_header_or_index_the_address_is_still_suppressed() -> None:
    store = Stores.in_memory()
    given_sent(store, "m-9", "bounce@simulator.amazonses.com", "pmid-9")

    report = process_notification(store, bounce_for("bounce@simulator.amazonses.com", "pmid-9", headers=[]))

    assert report.message_id is None
    assert store.messages.get_message("m-9")["status"] == Status.SENT
    assert store.suppressions.is_suppressed("bounce@simulator.amazonses.com")


def test_the_send_event_of_a_recorded_send_costs_no_write_and_settles_an_unrecorded_one() -> None:
    store = Stores.in_memory()
    given_campaign(store)
    given_sent(store, "cmp-spring.a1", "a@example.com", "pmid-a")  # the sender recorded it
    given_sent(store, "cmp-spring.b2", "b@example.com", provider_message_id=None)  # it crashed first
    tags = {"message_id": ["cmp-spring.a1"], "campaign_id": [CAMPAIGN]}
    writes = store.writes

    report = process_notification(store, notification("event-send.json", messageId="pmid-a", tags=tags))

    assert store.writes == writes and report.duplicates == 1
    assert store.messages.get_message("cmp-spring.a1")["status"] == Status.SENT
    tags = {"message_id": ["cmp-spring.b2"], "campaign_id": [CAMPAIGN]}
    process_notification(store, notification("event-send.json", messageId="pmid-b", tags=tags))
    assert store.messages.get_message("cmp-spring.b2")["status"] == Status.SENT and store.writes == writes + 1


def test_addresses_are_compared_case_insensitively() -> None:
    store = _store()
    given_campaign(store)
    given_sent(store, "m1", "Jane@Example.com", "pmid-1")
    store.suppressions.suppress("JANE@example.com", "unsubscribe")

    report = process_notification(store, bounce_for("jane@EXAMPLE.COM", "pmid-1"))

    assert store.messages.get_message("m1")["status"] == Status.BOUNCED
    assert set(store.suppressions.by_address) == {"jane@example.com"}
    assert report.suppressions[0].added is False  # already suppressed, not a second row
    assert report.status_of("pmid-1", "Jane@Example.COM") == Status.BOUNCED


def test_named_recipients_with_display_names_are_understood() -> None:
    store = _store()
    document = bounce_for("x@example.com", "pmid-1")
    document["bounce"]["bouncedRecipients"][0]["emailAddress"] = '"Jane Doe" <Jane@Example.com>'

    process_notification(store, document)

    assert set(store.suppressions.by_address) == {"jane@example.com"}


# -- order of events -----------------------------------------------------------------------------------


def given_one_sent_record(store: InMemoryStores) -> None:
    given_campaign(store)
    given_sent(store, "m1", "recipient@example.com", "pmid-1")


def event_for_m1(name: str) -> dict[str, Any]:
    return notification(name, messageId="pmid-1")


def test_open_after_delivery_counts_the_open_and_keeps_delivered() -> None:
    store = _store()
    given_one_sent_record(store)

    process_notification(store, event_for_m1("event-delivery.json"))
    report = process_notification(store, event_for_m1("event-open.json"))
    process_notification(store, event_for_m1("event-click.json"))

    record = store.messages.get_message("m1")
    assert record["status"] == Status.DELIVERED
    assert (record["opens"], record["clicks"]) == (1, 1)
    assert report.engagements[0].recipient == "recipient@example.com"
    assert counts(store)["delivered"] == 1


def test_late_delivery_never_undoes_a_bounce() -> None:
    store = _store()
    given_one_sent_record(store)

    process_notification(store, event_for_m1("event-bounce.json"))
    process_notification(store, event_for_m1("event-delivery.json"))

    assert store.messages.get_message("m1")["status"] == Status.BOUNCED
    assert counts(store) == {"bounced": 1, "complained": 0, "soft_bounced": 0, "delivered": 0}


def test_transient_bounce_after_delivery_is_counted_but_does_not_downgrade() -> None:
    store = _store()
    given_one_sent_record(store)
    ooto = bounce_for("recipient@example.com", "pmid-1", bounce_type="Transient")

    process_notification(store, event_for_m1("event-delivery.json"))
    report = process_notification(store, ooto)

    record = store.messages.get_message("m1")
    assert record["status"] == Status.DELIVERED
    assert record["soft_bounces"] == 1
    assert report.soft_bounces == ["recipient@example.com"]
    assert not store.suppressions.by_address
    assert counts(store)["soft_bounced"] == 0


def test_delivery_after_a_soft_bounce_settles_as_delivered() -> None:
    store = _store()
    given_one_sent_record(store)

    process_notification(store, bounce_for("recipient@example.com", "pmid-1", bounce_type="Transient"))
    process_notification(store, event_for_m1("event-delivery.json"))

    assert store.messages.get_message("m1")["status"] == Status.DELIVERED
    assert counts(store) == {"bounced": 0, "complained": 0, "soft_bounced": 1, "delivered": 1}


def test_two_different_soft_bounces_count_twice_on_the_record() -> None:
    store = _store()
    given_one_sent_record(store)
    second = bounce_for("recipient@example.com", "pmid-1", bounce_type="Transient")
    second["bounce"]["feedbackId"] = "another-feedback-id"

    process_notification(store, bounce_for("recipient@example.com", "pmid-1", bounce_type="Transient"))
    process_notification(store, second)

    assert store.messages.get_message("m1")["soft_bounces"] == 2
    assert counts(store)["soft_bounced"] == 1  # one recipient soft-bounced


def test_complaint_after_delivery_suppresses_and_counts() -> None:
    store = _store()
    given_one_sent_record(store)

    process_notification(store, event_for_m1("event-delivery.json"))
    process_notification(store, event_for_m1("event-complaint.json"))

    assert store.messages.get_message("m1")["status"] == Status.COMPLAINED
    assert store.suppressions.by_address["recipient@example.com"]["reason"] == "complaint"
    assert counts(store) == {"bounced": 0, "complained": 1, "soft_bounced": 0, "delivered": 1}


def test_reject_fails_the_message_without_suppressing_anyone() -> None:
    store = _store()
    given_one_sent_record(store)

    report = process_notification(store, event_for_m1("event-reject.json"))

    record = store.messages.get_message("m1")
    assert record["status"] == Status.FAILED
    assert "Bad content" in record["event_detail"]
    assert report.status_of("pmid-1", "*") == Status.FAILED
    assert not store.suppressions.by_address


def test_delivery_delay_keeps_the_status_and_notes_the_delay() -> None:
    store = _store()
    given_one_sent_record(store)

    report = process_notification(store, event_for_m1("event-deliverydelay.json"))

    record = store.messages.get_message("m1")
    assert record["status"] == Status.SENT
    assert "TransientCommunicationFailure" in record["event_detail"]
    assert report.delayed == ["recipient@example.com"]


@pytest.mark.parametrize("type_key", ["eventType", "notificationType"])
@pytest.mark.parametrize("kind", ["Rendering Failure", "RenderingFailure"])
def test_both_type_keys_and_both_spellings_of_rendering_failure(type_key: str, kind: str) -> None:
    store = _store()
    given_one_sent_record(store)
    document = event_for_m1("event-rendering-failure.json")
    del document["eventType"]
    document[type_key] = kind

    report = process_notification(store, document)

    assert report.ignored is None
    assert store.messages.get_message("m1")["status"] == Status.FAILED


# -- the campaign's bounce and complaint guard ---------------------------------------------------------


def test_campaign_pauses_when_its_bounce_rate_reaches_the_threshold() -> None:
    store = _store()
    given_campaign(store, sent=100)
    for i in range(5):
        given_sent(store, f"m{i}", f"user{i}@example.com", f"pmid-{i}")

    reports = [process_notification(store, bounce_for(f"user{i}@example.com", f"pmid-{i}")) for i in range(5)]

    assert [r.campaign_paused is not None for r in reports] == [False, False, False, False, True]
    stored = store.campaigns.get_campaign(CAMPAIGN)
    assert stored.campaign.status == CampaignStatus.PAUSED
    assert "bounce rate 5/100" in (stored.campaign.last_error or "")


def test_one_complaint_in_a_hundred_is_noise_and_does_not_pause() -> None:
    store = _store()
    given_campaign(store, sent=100)
    given_sent(store, "m1", "recipient@example.com", "pmid-1")

    process_notification(store, event_for_m1("event-complaint.json"))

    assert store.campaigns.get_campaign(CAMPAIGN).campaign.status == CampaignStatus.SENDING


def test_campaign_pauses_on_three_complaints_in_a_thousand() -> None:
    store = _store()
    given_campaign(store, sent=1000)
    store.campaigns.add_campaign_counts(CAMPAIGN, {"complained": 2})  # two earlier complaints
    given_sent(store, "m1", "recipient@example.com", "pmid-1")

    process_notification(store, event_for_m1("event-complaint.json"))

    stored = store.campaigns.get_campaign(CAMPAIGN)
    assert stored.campaign.status == CampaignStatus.PAUSED
    assert "complaint rate 3/1000" in (stored.campaign.last_error or "")


def test_small_samples_do_not_pause_a_campaign() -> None:
    store = _store()
    given_campaign(store, sent=10)
    for i in range(5):
        given_sent(store, f"m{i}", f"user{i}@example.com", f"pmid-{i}")
        process_notification(store, bounce_for(f"user{i}@example.com", f"pmid-{i}"), guard=RateGuard(min_sent=100))

    assert store.campaigns.get_campaign(CAMPAIGN).campaign.status == CampaignStatus.SENDING


# -- input that is not an SES notification -------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        None,
        "",
        "Successfully validated SNS topic for Amazon SES event publishing.",
        "[1, 2]",
        '"a string"',
        {"foo": "bar"},
        {"eventType": "SomethingNew", "mail": {"messageId": "x"}},
        {"notificationType": 5},
    ],
)
def test_unknown_input_is_acknowledged_without_state_change(message: Any) -> None:
    store = _store()

    report = process_notification(store, message)

    assert report.ignored
    assert store.writes == 0


@pytest.mark.parametrize("sns_type", ["SubscriptionConfirmation", "UnsubscribeConfirmation"])
def test_sns_control_messages_are_ignored(sns_type: str) -> None:
    body = json.dumps({"Type": sns_type, "TopicArn": "arn:aws:sns:x:1:t", "Message": "You have chosen to subscribe"})
    store = _store()

    assert process_sns_payload(store, body).ignored == f"SNS {sns_type} message"
    assert store.writes == 0


def test_raw_message_delivery_bodies_are_processed_too() -> None:
    store = _store()

    report = process_sns_payload(store, load_text("identity-complaint-abuse-simulator.json"))

    assert report.suppressed_addresses == {"complaint@simulator.amazonses.com"}


def test_unknown_and_null_fields_are_tolerated() -> None:
    document = load_event("identity-bounce-permanent-general-dsn.json")
    document["bounce"]["somethingNew"] = {"nested": [1, None]}
    document["bounce"]["reportingMTA"] = None
    document["bounce"]["bouncedRecipients"][0]["diagnosticCode"] = None
    document["mail"]["headers"] = None
    document["mail"]["tags"] = None
    store = _store()

    report = process_notification(store, document)

    assert report.suppressed_addresses == {"jane@example.com"}


def test_a_known_type_with_the_wrong_shape_is_a_poison_message() -> None:
    document = load_event("identity-bounce-permanent-general-dsn.json")
    document["bounce"]["bouncedRecipients"] = "jane@example.com"

    with pytest.raises(MalformedNotification, match="bouncedRecipients"):
        process_notification(_store(), document)

    response = bounce_handler.handler(sqs_event(sns_body(document)), LambdaContext(), stores=_store())
    assert response == {"batchItemFailures": [{"itemIdentifier": "sqs-0"}]}


# -- failures of the store ------------------------------------------------------------------------------


class SuppressionsDownFor(InMemorySuppressions):
    """Unavailable for one address's suppression."""

    def __init__(self, address: str | None, meter: Meter) -> None:
        super().__init__(meter=meter)
        self.down_for = address

    def suppress(self, address: str, reason: str, details: Any = None) -> bool:
        if address == self.down_for:
            raise StoreUnavailable("update_item: ProvisionedThroughputExceededException")
        return super().suppress(address, reason, details)


class MessagesDownFor(InMemoryMessages):
    """Unavailable for the next ``apply_failures`` status updates."""

    def __init__(self, apply_failures: int, meter: Meter) -> None:
        super().__init__(meter=meter, index_provider_ids=True)
        self.apply_failures = apply_failures

    def apply_notification(self, *args: Any, **kwargs: Any) -> bool:
        if self.apply_failures:
            self.apply_failures -= 1
            raise StoreUnavailable("update_item: endpoint unreachable")
        return super().apply_notification(*args, **kwargs)


def store_down_for(address: str | None = None, apply_failures: int = 0) -> InMemoryStores:
    """Stores unavailable for one address's suppression, or for the next ``apply_failures`` status updates."""
    stores = _store()
    return dataclasses.replace(
        stores,
        suppressions=SuppressionsDownFor(address, stores.meter),
        messages=MessagesDownFor(apply_failures, stores.meter),
    )


def test_store_unavailable_fails_only_that_record_of_the_batch() -> None:
    store = store_down_for("richard@example.com")
    event = load_event("envelope-sqs-sns-batch-mixed.json")
    failing = event["Records"][0]["messageId"]  # richard's complaint

    response = bounce_handler.handler(event, LambdaContext(), stores=store)

    assert response == {"batchItemFailures": [{"itemIdentifier": failing}]}
    assert not store.suppressions.by_address
    assert len(store.markers.events) == 2  # jane's soft bounce and jane's delivery were processed

    store.suppressions.down_for = None  # SQS redelivers the failed record
    retry = bounce_handler.handler({"Records": [event["Records"][0]]}, LambdaContext(), stores=store)

    assert retry == {"batchItemFailures": []}
    assert set(store.suppressions.by_address) == {"richard@example.com"}


def test_a_batch_whose_only_record_fails_reports_it_instead_of_raising() -> None:
    event = load_event("envelope-sqs-sns-identity-bounce.json")

    response = bounce_handler.handler(event, LambdaContext(), stores=store_down_for("jane@example.com"))

    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}


def test_sns_direct_invocation_raises_so_lambda_retries() -> None:
    with pytest.raises(StoreUnavailable):
        bounce_handler.handler(
            load_event("envelope-sns-lambda-identity-bounce.json"),
            LambdaContext(),
            stores=store_down_for("jane@example.com"),
        )


def test_a_failure_half_way_is_redone_by_the_retry_and_counted_once() -> None:
    store = store_down_for(apply_failures=1)
    given_campaign(store)
    given_sent(store, "m1", "recipient@example.com", "pmid-1")

    with pytest.raises(StoreUnavailable):  # suppressed, then the status update failed
        process_notification(store, event_for_m1("event-bounce.json"))
    process_notification(store, event_for_m1("event-bounce.json"))  # the redelivery
    process_notification(store, event_for_m1("event-bounce.json"))  # and a duplicate

    assert store.messages.get_message("m1")["status"] == Status.BOUNCED
    assert set(store.suppressions.by_address) == {"recipient@example.com"}
    assert counts(store)["bounced"] == 1


# -- the handler's outputs: metrics, logs ---------------------------------------------------------------


def test_handler_publishes_metrics_and_never_logs_full_addresses(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    logs = io.StringIO()
    powertools_handler = bounce_handler.logger.registered_handler
    original = powertools_handler.setStream(logs)
    caplog.set_level(logging.DEBUG)
    try:
        bounce_handler.handler(load_event("envelope-sqs-sns-batch-mixed.json"), LambdaContext(), stores=_store())
    finally:
        powertools_handler.setStream(original)

    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    metrics: dict[str, float] = {}
    for blob in emitted:
        assert blob["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "MassMailer"
        for definition in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
            value = blob[definition["Name"]]
            metrics[definition["Name"]] = sum(value) if isinstance(value, list) else value
    assert metrics == {"Complaints": 1, "SoftBounces": 1, "Deliveries": 1}
    written = logs.getvalue() + caplog.text
    assert "ses notification" in written
    assert "r***@example.com" in written
    for address in ("richard@example.com", "jane@example.com", "mary@example.com"):
        assert address not in written
