"""Markers: processed SES events (EVT#) and counted queue messages (COUNTED#).

``remember_event`` de-duplicates notifications; ``was_counted`` tells a redelivered queue message
that its counts were already added. The COUNTED marker itself is written by
``campaigns.count_batch``, in the same transaction as the counters it guards.
"""

from __future__ import annotations

import time
from typing import Protocol

from massmailer.store import keys
from massmailer.store.dynamo import Clock, DynamoRepository
from massmailer.store.memory import InMemoryRepository, Meter

EVENT_TTL_SECONDS = 30 * 24 * 3600


class Markers(Protocol):
    def remember_event(self, digest: str) -> bool: ...
    def was_counted(self, delivery: str) -> bool: ...


class DynamoMarkers(DynamoRepository):
    def remember_event(self, digest: str) -> bool:
        """Record a processed notification; False when it had been processed already."""
        now = self._clock()
        return (
            self._conditional(
                self._table.put_item,
                Item={**keys.event_key(digest), "expires_at": int(now + EVENT_TTL_SECONDS)},
                ConditionExpression="attribute_not_exists(PK)",
            )
            is not None
        )

    def was_counted(self, delivery: str) -> bool:
        """Has this queue message been counted (so it was processed to the end)?"""
        return "Item" in self._call(
            self._table.get_item, Key=keys.counted_key(delivery), ConsistentRead=True, ProjectionExpression="PK"
        )


class InMemoryMarkers(InMemoryRepository):
    def __init__(self, clock: Clock = time.time, meter: Meter | None = None) -> None:
        super().__init__(clock, meter)
        self.events: set[str] = set()
        self.counted: set[str] = set()  # queue messages whose counts were added (count_batch)

    def remember_event(self, digest: str) -> bool:
        with self._lock:
            self.meter.write()
            if digest in self.events:
                return False
            self.events.add(digest)
            return True

    def was_counted(self, delivery: str) -> bool:
        with self._lock:
            return delivery in self.counted

    def mark_counted(self, delivery: str) -> bool:
        """For ``InMemoryCampaigns.count_batch`` (which meters the write): False if marked before."""
        with self._lock:
            if delivery in self.counted:
                return False
            self.counted.add(delivery)
            return True
