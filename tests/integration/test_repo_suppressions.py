"""The suppression-list contract, against DynamoDB (moto) and the in-memory twin alike."""

from __future__ import annotations

import copy

import pytest

from massmailer.store import Stores, Suppressions
from massmailer.store.suppressions import CLOCK_SKEW_SECONDS, RECENT_TTL_SECONDS
from tests.integration.conftest import Clock


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


def test_suppressed_since_lists_what_was_added_from_then_on(suppressions: Suppressions, clock: Clock) -> None:
    """The sender's one Query per batch: the addresses suppressed since the splitter's check,
    across an hour's turn (the log's partitions), and nothing older."""
    clock.now = 1_700_002_790.0  # 10 s before 23:00:00 UTC
    suppressions.suppress("old@example.com", "bounce")
    clock.now += 5
    since = clock.now
    suppressions.suppress("Jane@Example.com", "unsubscribe")
    clock.now += 10  # the next hour
    suppressions.suppress("bob@example.com", "complaint")
    suppressions.suppress("bob@example.com", "unsubscribe")  # already listed: not logged twice
    clock.now += 1

    assert suppressions.suppressed_since(since) == {"jane@example.com", "bob@example.com"}
    assert suppressions.suppressed_since(clock.now + 1) == set()
    clock.now += RECENT_TTL_SECONDS + 60
    assert suppressions.suppressed_since(since) == set()  # the log keeps a day (TTL); the list stays
    assert suppressions.is_suppressed("old@example.com")


def test_suppressed_since_sees_a_writer_whose_clock_is_ahead_past_the_hour(
    suppressions: Suppressions, clock: Clock
) -> None:
    """The API (writer) runs 30 s ahead of the sender (reader): at the reader's 22:59:50 it logs an
    unsubscribe at its own 23:00:20, in the next hour's partition, which the reader must query too."""
    writer = copy.copy(suppressions)
    writer._clock = lambda: clock.now + CLOCK_SKEW_SECONDS / 2  # type: ignore[attr-defined]
    clock.now = 1_700_002_790.0  # 10 s before 23:00:00 UTC by the reader's clock
    since = clock.now - 20
    writer.suppress("Jane@Example.com", "unsubscribe")
    assert suppressions.suppressed_since(since - CLOCK_SKEW_SECONDS) == {"jane@example.com"}
