"""The message-records contract (claims, outcomes, notifications, provider index), against DynamoDB
(moto) and the in-memory twin alike."""

from __future__ import annotations

import pytest

from massmailer.models import Lane, MessageRecord, Status
from massmailer.store import Claim, Messages, Stores
from tests.integration.conftest import Clock, open_stores


@pytest.fixture
def messages(stores: Stores) -> Messages:
    return stores.messages


def _claim(messages: Messages, mid: str = "m1", attempt: int = 0) -> Claim:
    return messages.claim_recipient(
        mid, email="a@example.com", campaign_id="c1", lane="low", attempt=attempt, lease_seconds=60
    )


@pytest.mark.parametrize("kind", ["dynamodb", "memory"])
def test_provider_ids_are_not_indexed_unless_asked(kind: str, aws_env: None) -> None:
    """The default repository writes no provider-id index entry (one write unit less per email)."""
    with open_stores(kind, Clock(), index_provider_ids=False) as stores:
        messages = stores.messages
        claim = _claim(messages)
        messages.record_sent("m1", claim.token, "ses", "ses-123")
        record = messages.get_message("m1")
        assert record is not None
        assert record["status"] == "SENT" and record["provider_message_id"] == "ses-123"
        assert "GSI1PK" not in record
        assert messages.find_by_provider_id("ses-123") is None


def test_claim_is_exclusive_until_the_lease_expires(messages: Messages, clock: Clock) -> None:
    first = _claim(messages)
    assert first.claimed and first.record["status"] == "SENDING" and first.record["attempts"] == 1
    second = _claim(messages)
    assert not second.claimed and second.status == "SENDING"
    clock.now += 61
    third = _claim(messages)
    assert third.claimed and third.token != first.token


def test_a_claim_keeps_its_queue_message_on_the_record(messages: Messages) -> None:
    claim = messages.claim_recipient(
        "m1", email="a@example.com", campaign_id="c1", lane="low", attempt=0, lease_seconds=60, delivery="sqs-1"
    )
    assert claim.claimed and claim.record["delivery"] == "sqs-1" and claim.record["campaign_id"] == "c1"


def test_a_sent_recipient_is_never_claimed_again(messages: Messages, clock: Clock) -> None:
    claim = _claim(messages)
    messages.record_sent("m1", claim.token, "ses", "ses-123")
    clock.now += 10_000
    again = _claim(messages)
    assert not again.claimed and again.status == "SENT"
    found = messages.find_by_provider_id("ses-123")
    assert found is not None and found["message_id"] == "m1"


def test_a_recipient_waiting_for_retry_can_be_claimed_again(messages: Messages) -> None:
    claim = _claim(messages)
    messages.record_retry("m1", claim.token, "transient: 503")
    retry = _claim(messages, attempt=1)
    assert retry.claimed and retry.record["attempts"] == 2


def test_a_stale_token_cannot_move_a_reclaimed_record(messages: Messages, clock: Clock) -> None:
    old = _claim(messages)
    clock.now += 61
    _claim(messages)
    messages.record_retry("m1", old.token, "late")
    record = messages.get_message("m1")
    assert record is not None and record["status"] == "SENDING"


def test_a_failure_is_recorded_with_its_details_and_ends_the_claim(messages: Messages) -> None:
    _claim(messages)
    messages.record_failed("m1", Status.FAILED, "550 no such user", smtp_code=550)
    record = messages.get_message("m1")
    assert record is not None
    assert (record["status"], record["last_error"], record["smtp_code"]) == ("FAILED", "550 no such user", 550)
    assert "claim_token" not in record and "lease_until" not in record


def test_a_message_is_created_once(messages: Messages) -> None:
    record = MessageRecord(message_id="t1", email="a@example.com", status=Status.QUEUED, lane=Lane.HIGH)
    assert messages.create_message(record, {"subject": "hi"}) is True
    assert messages.create_message(record, {"subject": "again"}) is False
    stored = messages.get_message("t1")
    assert stored is not None and stored["status"] == "QUEUED" and '"hi"' in stored["payload"]
    assert messages.get_message("nope") is None


def test_notifications_only_move_records_from_allowed_states(messages: Messages) -> None:
    messages.create_message(
        MessageRecord(message_id="t1", email="a@example.com", status=Status.QUEUED, lane=Lane.HIGH), {}
    )
    assert messages.apply_notification("t1", Status.BOUNCED, "x", ["SENT"]) is False
    claim = _claim(messages, "t1")
    messages.record_sent("t1", claim.token, "ses", "p1")
    assert messages.apply_notification("t1", Status.SOFT_BOUNCED, "full", ["SENT"], increment="soft_bounces") is True
    record = messages.get_message("t1")
    assert record is not None and record["soft_bounces"] == 1
    assert messages.apply_notification("nope", Status.BOUNCED, "x", []) is False


def test_a_delivery_recorded_before_the_send_is_not_undone(messages: Messages) -> None:
    claim = _claim(messages)
    # SES's Delivery notification, carried by the message_id tag, is processed before the sender records
    assert messages.apply_notification("m1", Status.DELIVERED, "delivered", ["SENDING", "SENT"]) is True
    messages.record_sent("m1", claim.token, "ses", "ses-9")
    record = messages.get_message("m1")
    assert record is not None and record["status"] == "DELIVERED" and record["provider"] == "ses"
    found = messages.find_by_provider_id("ses-9")
    assert found is not None and found["message_id"] == "m1"


def test_records_are_batch_read_without_their_payload_and_missing_ones_left_out(messages: Messages) -> None:
    for i in range(150):  # two BatchGetItem calls
        record = MessageRecord(message_id=f"m{i}", email=f"a{i}@example.com", status=Status.QUEUED, lane=Lane.LOW)
        assert messages.create_message(record, {"subject": "hi"})
    found = messages.get_messages([f"m{i}" for i in range(150)] + ["missing", "m3"])
    assert sorted(found) == sorted(f"m{i}" for i in range(150))
    assert found["m149"]["email"] == "a149@example.com" and found["m149"]["status"] == "QUEUED"
    assert all("payload" not in r for r in found.values())
    assert messages.get_messages([]) == {}
