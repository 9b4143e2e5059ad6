"""The idempotency-keys contract (recorded first, in flight; finished; expired; a stale lease taken
over), against DynamoDB (moto) and the in-memory twin alike."""

from __future__ import annotations

import pytest

from massmailer.store import IdempotencyKeys, Stores
from massmailer.store.idempotency import IDEMPOTENCY_LEASE_SECONDS, IDEMPOTENCY_TTL_SECONDS
from tests.integration.conftest import Clock


@pytest.fixture
def idempotency(stores: Stores) -> IdempotencyKeys:
    return stores.idempotency


def test_the_first_request_claims_the_key_with_its_ids(idempotency: IdempotencyKeys) -> None:
    claim = idempotency.begin("k", "h1", {"message_id": "msg-1"})
    assert claim.outcome == "claimed" and claim.ids == {"message_id": "msg-1"} and claim.token


def test_while_in_flight_the_same_request_waits_and_another_is_a_mismatch(
    idempotency: IdempotencyKeys, clock: Clock
) -> None:
    idempotency.begin("k", "h1", {"message_id": "msg-1"})
    clock.now += 10
    waiting = idempotency.begin("k", "h1", {"message_id": "msg-2"})
    assert waiting.outcome == "in_flight" and waiting.retry_after == IDEMPOTENCY_LEASE_SECONDS - 10
    assert not waiting.mine and waiting.ids == {}
    assert idempotency.begin("k", "h2", {"message_id": "msg-3"}).outcome == "mismatch"


def test_a_finished_key_replays_its_response_and_status(idempotency: IdempotencyKeys, clock: Clock) -> None:
    claim = idempotency.begin("k", "h1", {"message_id": "msg-1"})
    assert idempotency.finish("k", claim.token, 202, {"message_id": "msg-1", "n": 2})
    clock.now += IDEMPOTENCY_TTL_SECONDS - 1
    again = idempotency.begin("k", "h1", {"message_id": "msg-2"})
    assert (again.outcome, again.status_code, again.response) == ("finished", 202, {"message_id": "msg-1", "n": 2})
    assert idempotency.begin("k", "h2", {"message_id": "msg-3"}).outcome == "mismatch"


def test_an_expired_key_is_new_with_new_ids_even_while_the_item_lingers(
    idempotency: IdempotencyKeys, clock: Clock
) -> None:
    # DynamoDB's TTL deletes lazily: the item is still there, the condition compares expires_at.
    first = idempotency.begin("k", "h1", {"message_id": "msg-1"})
    idempotency.finish("k", first.token, 202, {"message_id": "msg-1"})
    clock.now += IDEMPOTENCY_TTL_SECONDS
    again = idempotency.begin("k", "h2", {"message_id": "msg-2"})
    assert again.outcome == "claimed" and again.ids == {"message_id": "msg-2"}


def test_a_crashed_request_does_not_wedge_the_key_its_retry_takes_over_with_the_same_ids(
    idempotency: IdempotencyKeys, clock: Clock
) -> None:
    crashed = idempotency.begin("k", "h1", {"message_id": "msg-1"})
    clock.now += IDEMPOTENCY_LEASE_SECONDS + 1
    retry = idempotency.begin("k", "h1", {"message_id": "msg-2"})
    assert retry.outcome == "taken_over" and retry.ids == {"message_id": "msg-1"}
    assert idempotency.begin("k", "h1", {"message_id": "msg-3"}).outcome == "in_flight"  # the new lease
    assert not idempotency.finish("k", crashed.token, 202, {"late": True})  # the old lease is void
    assert idempotency.finish("k", retry.token, 202, {"message_id": "msg-1"})
    assert idempotency.begin("k", "h1", {}).response == {"message_id": "msg-1"}


def test_a_stale_lease_on_another_request_is_still_a_mismatch(idempotency: IdempotencyKeys, clock: Clock) -> None:
    idempotency.begin("k", "h1", {"message_id": "msg-1"})
    clock.now += IDEMPOTENCY_LEASE_SECONDS + 1
    assert idempotency.begin("k", "h2", {"message_id": "msg-2"}).outcome == "mismatch"


def test_a_released_lease_is_taken_over_at_once(idempotency: IdempotencyKeys) -> None:
    failed = idempotency.begin("k", "h1", {"campaign_id": "cmp-1"})
    idempotency.release("k", failed.token)
    retry = idempotency.begin("k", "h1", {"campaign_id": "cmp-2"})
    assert retry.outcome == "taken_over" and retry.ids == {"campaign_id": "cmp-1"}


def test_a_forgotten_key_is_free_and_only_its_holder_can_forget_it(idempotency: IdempotencyKeys) -> None:
    refused = idempotency.begin("k", "h1", {"message_id": "msg-1"})
    idempotency.forget("k", "not-the-token")
    assert idempotency.begin("k", "h2", {}).outcome == "mismatch"
    idempotency.forget("k", refused.token)
    fixed = idempotency.begin("k", "h2", {"message_id": "msg-2"})
    assert fixed.outcome == "claimed" and fixed.ids == {"message_id": "msg-2"}
