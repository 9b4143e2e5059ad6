"""The Store contract, checked against DynamoDB (moto) and the in-memory twin alike."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import boto3
import pytest
from moto import mock_aws

from local.provision import provision
from massmailer.memory import InMemoryStore
from massmailer.models import CampaignStatus, Lane, MessageRecord, Status
from massmailer.store import DynamoStore
from tests.support import make_campaign


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@contextmanager
def _open_store(kind: str, clock: Clock, index_provider_ids: bool) -> Iterator[object]:
    if kind == "memory":
        yield InMemoryStore(clock=clock, index_provider_ids=index_provider_ids)
        return
    with mock_aws():
        resources = provision("contract")
        table = boto3.resource("dynamodb").Table(resources["table"])
        yield DynamoStore(table, clock=clock, index_provider_ids=index_provider_ids)


@pytest.fixture(params=["dynamodb", "memory"])
def store_and_clock(request: pytest.FixtureRequest, aws_env: None) -> Iterator[tuple[object, Clock]]:
    """A store that indexes provider message ids (the opt-in), so every lookup can be checked."""
    clock = Clock()
    with _open_store(request.param, clock, index_provider_ids=True) as store:
        yield store, clock


@pytest.mark.parametrize("kind", ["dynamodb", "memory"])
def test_provider_ids_are_not_indexed_unless_asked(kind: str, aws_env: None) -> None:
    """The default store writes no provider-id index entry (one write unit less per email)."""
    with _open_store(kind, Clock(), index_provider_ids=False) as store:
        claim = _claim(store)
        store.record_sent("m1", claim.token, "ses", "ses-123")
        record = store.get_message("m1")
        assert record["status"] == "SENT" and record["provider_message_id"] == "ses-123"
        assert "GSI1PK" not in record
        assert store.find_by_provider_id("ses-123") is None


def _claim(store, mid: str = "m1", attempt: int = 0):  # type: ignore[no-untyped-def]
    return store.claim_recipient(
        mid, email="a@example.com", campaign_id="c1", lane="low", attempt=attempt, lease_seconds=60
    )


def test_claim_is_exclusive_until_the_lease_expires(store_and_clock) -> None:  # type: ignore[no-untyped-def]
    store, clock = store_and_clock
    first = _claim(store)
    assert first.claimed and first.record["status"] == "SENDING" and first.record["attempts"] == 1
    second = _claim(store)
    assert not second.claimed and second.status == "SENDING"
    clock.now += 61
    third = _claim(store)
    assert third.claimed and third.token != first.token


def test_a_sent_recipient_is_never_claimed_again(store_and_clock) -> None:  # type: ignore[no-untyped-def]
    store, clock = store_and_clock
    claim = _claim(store)
    store.record_sent("m1", claim.token, "ses", "ses-123")
    clock.now += 10_000
    again = _claim(store)
    assert not again.claimed and again.status == "SENT"
    assert store.find_by_provider_id("ses-123")["message_id"] == "m1"


def test_a_recipient_waiting_for_retry_can_be_claimed_again(store_and_clock) -> None:  # type: ignore[no-untyped-def]
    store, _ = store_and_clock
    claim = _claim(store)
    store.record_retry("m1", claim.token, "transient: 503")
    retry = _claim(store, attempt=1)
    assert retry.claimed and retry.record["attempts"] == 2


def test_a_stale_token_cannot_move_a_reclaimed_record(store_and_clock) -> None:  # type: ignore[no-untyped-def]
    store, clock = store_and_clock
    old = _claim(store)
    clock.now += 61
    _claim(store)
    store.record_retry("m1", old.token, "late")
    assert store.get_message("m1")["status"] == "SENDING"


def test_suppression_is_case_insensitive_and_idempotent(store_and_clock) -> None:  # type: ignore[no-untyped-def]
    store, _ = store_and_clock
    assert store.suppress("Jane@Example.com", "bounce") is True
    assert store.suppress("jane@example.com", "complaint") is False
    assert store.suppressed_among(["JANE@example.com", "bob@example.com"]) == {"jane@example.com"}
    many = [f"u{i}@example.com" for i in range(250)]
    for address in many[::50]:
        store.suppress(address, "bounce")
    assert store.suppressed_among(many) == set(many[::50])


def test_split_checkpoint_moves_once(store_and_clock) -> None:  # type: ignore[no-untyped-def]
    store, _ = store_and_clock
    store.put_campaign(make_campaign("c1", status=CampaignStatus.SPLITTING))
    assert store.advance_split("c1", 0, 100, {"total": 5}, False) is True
    assert store.advance_split("c1", 0, 100, {"total": 5}, False) is False
    stored = store.get_campaign("c1")
    assert stored.split_cursor == 100 and stored.counts.total == 5 and stored.counts.queued == 5


def test_events_and_requests_are_remembered_once(store_and_clock) -> None:  # type: ignore[no-untyped-def]
    store, clock = store_and_clock
    assert store.remember_event("d1") is True and store.remember_event("d1") is False
    assert store.remember_request("k", "h1", {"id": 1}) is None
    assert store.remember_request("k", "h2", {"id": 2}) == {"request_hash": "h1", "response": {"id": 1}}
    clock.now += 25 * 3600
    assert store.recall_request("k") is None


def test_notifications_only_move_records_from_allowed_states(store_and_clock) -> None:  # type: ignore[no-untyped-def]
    store, _ = store_and_clock
    store.create_message(
        MessageRecord(message_id="t1", email="a@example.com", status=Status.QUEUED, lane=Lane.HIGH), {}
    )
    assert store.apply_notification("t1", Status.BOUNCED, "x", ["SENT"]) is False
    claim = _claim(store, "t1")
    store.record_sent("t1", claim.token, "ses", "p1")
    assert store.apply_notification("t1", Status.SOFT_BOUNCED, "full", ["SENT"], increment="soft_bounces") is True
    assert store.get_message("t1")["soft_bounces"] == 1
    assert store.apply_notification("nope", Status.BOUNCED, "x", []) is False


def test_token_windows_never_exceed_their_limit(store_and_clock) -> None:  # type: ignore[no-untyped-def]
    store, _ = store_and_clock
    assert store.take_tokens("RATE#ses", 7, 60, 100, ttl=60) is True
    assert store.take_tokens("RATE#ses", 7, 60, 100, ttl=60) is False
    assert store.take_tokens("RATE#ses", 7, 40, 100, ttl=60) is True
    assert store.take_tokens("RATE#ses", 7, 1, 100, ttl=60) is False
    assert store.take_tokens("RATE#ses", 8, 1, 100, ttl=60) is True
    assert [store.add_window_count("FAIL#ses", 3, ttl=60) for _ in range(3)] == [1, 2, 3]


def test_state_items_use_optimistic_locking(store_and_clock) -> None:  # type: ignore[no-untyped-def]
    store, _ = store_and_clock
    assert store.get_state("BREAKER#ses") == {}
    assert store.put_state("BREAKER#ses", {"state": "open", "opened_at": 12.5}, expect={"version": 0}) is True
    assert store.put_state("BREAKER#ses", {"state": "closed"}, expect={"version": 0}) is False
    state = store.get_state("BREAKER#ses")
    assert state["state"] == "open" and state["opened_at"] == 12.5 and state["version"] == 1
    assert store.put_state("BREAKER#ses", {"state": "closed"}, expect=state) is True
    assert store.get_state("BREAKER#ses")["state"] == "closed"


def test_a_delivery_recorded_before_the_send_is_not_undone(store_and_clock) -> None:  # type: ignore[no-untyped-def]
    store, _ = store_and_clock
    claim = _claim(store)
    # SES's Delivery notification, carried by the message_id tag, is processed before the sender records
    assert store.apply_notification("m1", Status.DELIVERED, "delivered", ["SENDING", "SENT"]) is True
    store.record_sent("m1", claim.token, "ses", "ses-9")
    record = store.get_message("m1")
    assert record["status"] == "DELIVERED" and record["provider"] == "ses"
    assert store.find_by_provider_id("ses-9")["message_id"] == "m1"


def test_a_queue_messages_counts_are_added_once_however_often_it_comes(store_and_clock) -> None:  # type: ignore[no-untyped-def]
    store, _ = store_and_clock
    store.put_campaign(make_campaign("c1"))
    assert store.count_batch("c1", "sqs-1", {"sent": 3, "failed": 1}) is True
    assert store.count_batch("c1", "sqs-1", {"sent": 3, "failed": 1}) is False  # the same message again
    assert store.count_batch("c1", "sqs-2", {"sent": 2}) is True
    assert store.count_batch("missing", "sqs-3", {"sent": 2}) is False
    counts = store.get_campaign("c1").counts
    assert (counts.sent, counts.failed) == (5, 1)


def test_counting_retries_a_transaction_conflict_on_the_campaign_item(aws_env: None) -> None:
    from botocore.exceptions import ClientError

    class Client:
        calls = 0

        def transact_write_items(self, **_: object) -> None:
            Client.calls += 1
            if Client.calls <= 2:  # another sender's transaction on the same counters
                raise ClientError(
                    {
                        "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                        "CancellationReasons": [{"Code": "None"}, {"Code": "TransactionConflict"}],
                    },
                    "TransactWriteItems",
                )

    class Table:
        name = "t"
        meta = type("Meta", (), {"client": Client()})()

    store = DynamoStore(Table())
    assert store.count_batch("c1", "sqs-1", {"sent": 1}) is True
    assert Client.calls == 3


def test_a_plain_write_refused_by_a_transaction_on_its_item_is_tried_again(aws_env: None) -> None:
    from botocore.exceptions import ClientError

    class Table:
        name = "t"
        meta = type("Meta", (), {"client": object()})()
        calls = 0

        def update_item(self, **_: object) -> None:
            Table.calls += 1
            if Table.calls <= 2:  # a sender's count_batch transaction holds the campaign item
                raise ClientError(
                    {"Error": {"Code": "TransactionConflictException", "Message": "conflict"}}, "UpdateItem"
                )

    DynamoStore(Table()).add_campaign_counts("c1", {"delivered": 1})
    assert Table.calls == 3
