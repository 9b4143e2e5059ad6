"""What every in-memory repository shares: the clock and the ``Meter``, whose one lock all the twins
of a bundle take (as a DynamoDB transaction is atomic across items, ``count_batch``'s marker and
counters change together under it)."""

from __future__ import annotations

import threading
import time

from massmailer.store.dynamo import Clock


class Meter:
    """Counts what DynamoDB would bill as write requests, across all the in-memory twins of one
    bundle (benchmarks and tests read ``writes``)."""

    def __init__(self) -> None:
        self.writes = 0
        self.lock = threading.RLock()

    def write(self, n: int = 1) -> None:
        with self.lock:
            self.writes += n


class InMemoryRepository:
    def __init__(self, clock: Clock = time.time, meter: Meter | None = None) -> None:
        self._clock = clock
        self.meter = meter or Meter()
        self._lock = self.meter.lock
