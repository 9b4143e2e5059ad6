"""The suppression-list contract, against DynamoDB (moto) and the in-memory twin alike."""

from __future__ import annotations

import pytest

from massmailer.store import Stores, Suppressions


@pytest.fixture
def suppressions(stores: Stores) -> Suppressions:
    return stores.suppressions


def test_suppression_is_case_insensitive_and_idempotent(suppressions: Suppressions) -> None:
    assert suppressions.suppress("Jane@Example.com", "bounce") is True
    assert suppressions.suppress("jane@example.com", "complaint") is False
    assert suppressions.suppressed_among(["JANE@example.com", "bob@example.com"]) == {"jane@example.com"}
    assert suppressions.is_suppressed("JANE@EXAMPLE.COM") and not suppressions.is_suppressed("bob@example.com")


def test_a_lookup_of_more_addresses_than_one_batch_read_finds_them_all(suppressions: Suppressions) -> None:
    many = [f"u{i}@example.com" for i in range(250)]  # three BatchGetItem pages in DynamoDB
    for address in many[::50]:
        suppressions.suppress(address, "bounce", {"campaign_id": "c1"})
    assert suppressions.suppressed_among(many) == set(many[::50])
    assert suppressions.suppressed_among([]) == set()
