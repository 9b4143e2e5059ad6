"""The idempotency-keys contract, against DynamoDB (moto) and the in-memory twin alike."""

from __future__ import annotations

import pytest

from massmailer.store import IdempotencyKeys, Stores
from tests.integration.conftest import Clock


@pytest.fixture
def idempotency(stores: Stores) -> IdempotencyKeys:
    return stores.idempotency


def test_the_first_response_stands_until_it_expires(idempotency: IdempotencyKeys, clock: Clock) -> None:
    assert idempotency.recall_request("k") is None
    assert idempotency.remember_request("k", "h1", {"id": 1}) is None
    assert idempotency.remember_request("k", "h2", {"id": 2}) == {"request_hash": "h1", "response": {"id": 1}}
    assert idempotency.recall_request("k") == {"request_hash": "h1", "response": {"id": 1}}
    clock.now += 25 * 3600
    assert idempotency.recall_request("k") is None


def test_an_expired_key_can_be_used_again(idempotency: IdempotencyKeys, clock: Clock) -> None:
    idempotency.remember_request("k", "h1", {"id": 1})
    clock.now += 25 * 3600
    assert idempotency.remember_request("k", "h2", {"id": 2}) is None
    assert idempotency.recall_request("k") == {"request_hash": "h2", "response": {"id": 2}}
