"""What every in-memory repository shares: a lock, the clock and the shared write ``Meter``."""

from __future__ import annotations

import threading
import time

from massmailer.store.dynamo import Clock


class Meter:
    """Counts what DynamoDB would bill as write requests, across all the in-memory twins of one
    bundle (benchmarks and tests read ``writes``)."""

    def __init__(self) -> None:
        self.writes = 0
        self._lock = threading.Lock()

    def write(self, n: int = 1) -> None:
        with self._lock:
            self.writes += n


class InMemoryRepository:
    def __init__(self, clock: Clock = time.time, meter: Meter | None = None) -> None:
        self._clock = clock
        self.meter = meter or Meter()
        self._lock = threading.Lock()
