"""The markers contract (processed SES events, counted queue messages), against DynamoDB (moto) and
the in-memory twin alike."""

from __future__ import annotations

import pytest

from massmailer.store import Markers, Stores
from tests.support import make_campaign


@pytest.fixture
def markers(stores: Stores) -> Markers:
    return stores.markers


def test_an_event_is_remembered_once(markers: Markers) -> None:
    assert markers.remember_event("d1") is True
    assert markers.remember_event("d1") is False
    assert markers.remember_event("d2") is True


def test_a_queue_message_is_counted_when_its_batch_counts_are_added(stores: Stores, markers: Markers) -> None:
    stores.campaigns.put_campaign(make_campaign("c1"))
    assert markers.was_counted("sqs-1") is False
    stores.campaigns.count_batch("c1", "sqs-1", {"sent": 1})
    assert markers.was_counted("sqs-1") is True
    stores.campaigns.count_batch("missing", "sqs-2", {"sent": 1})  # no campaign: nothing counted
    assert markers.was_counted("sqs-2") is False
