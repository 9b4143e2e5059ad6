"""Shared provider state for ``massmailer.resilience``: rate-limit windows (W#<n>) and circuit
breaker state (STATE, optimistically locked by a version)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Protocol

from massmailer.store import keys
from massmailer.store.dynamo import Clock, DynamoRepository, plain
from massmailer.store.memory import InMemoryRepository, Meter


class SharedState(Protocol):
    def take_tokens(self, key: str, window: int, amount: int, limit: int, ttl: int) -> bool: ...
    def add_window_count(self, key: str, window: int, ttl: int) -> int: ...
    def get_state(self, key: str) -> dict[str, Any]: ...
    def put_state(self, key: str, values: Mapping[str, Any], expect: Mapping[str, Any] | None = None) -> bool: ...


class DynamoSharedState(DynamoRepository):
    def take_tokens(self, key: str, window: int, amount: int, limit: int, ttl: int) -> bool:
        """Add ``amount`` to the window's use if it stays within ``limit``; one conditional write."""
        if amount > limit:
            return False
        return (
            self._conditional(
                self._table.update_item,
                Key=keys.window_key(key, window),
                UpdateExpression="ADD used :k SET expires_at = :ttl",
                ConditionExpression="attribute_not_exists(used) OR used <= :max",
                ExpressionAttributeValues={":k": amount, ":max": limit - amount, ":ttl": window + ttl},
            )
            is not None
        )

    def add_window_count(self, key: str, window: int, ttl: int) -> int:
        result = self._call(
            self._table.update_item,
            Key=keys.window_key(key, window),
            UpdateExpression="ADD n :one SET expires_at = :ttl",
            ExpressionAttributeValues={":one": 1, ":ttl": int(self._clock()) + ttl},
            ReturnValues="UPDATED_NEW",
        )
        return int(result["Attributes"]["n"])

    def get_state(self, key: str) -> dict[str, Any]:
        item = self._call(self._table.get_item, Key=keys.state_key(key), ConsistentRead=True).get("Item")
        if not item:
            return {}
        return {k: v for k, v in plain(item).items() if k not in (keys.PK, keys.SK)}

    def put_state(self, key: str, values: Mapping[str, Any], expect: Mapping[str, Any] | None = None) -> bool:
        """Replace a state item if its version is still ``expect["version"]`` (optimistic locking)."""
        version = int((expect or {}).get("version", 0))
        item = {
            **keys.state_key(key),
            **{k: (Decimal(str(v)) if isinstance(v, float) else v) for k, v in values.items() if k != "version"},
            "version": version + 1,
        }
        condition = "attribute_not_exists(PK) OR version = :v" if version == 0 else "version = :v"
        return (
            self._conditional(
                self._table.put_item,
                Item=item,
                ConditionExpression=condition,
                ExpressionAttributeValues={":v": version},
            )
            is not None
        )


class InMemorySharedState(InMemoryRepository):
    def __init__(self, clock: Clock = time.time, meter: Meter | None = None) -> None:
        super().__init__(clock, meter)
        self.windows: dict[tuple[str, int], int] = {}
        self.states: dict[str, dict[str, Any]] = {}

    def take_tokens(self, key: str, window: int, amount: int, limit: int, ttl: int) -> bool:
        with self._lock:
            self.meter.write()
            used = self.windows.get((key, window), 0)
            if used + amount > limit:
                return False
            self.windows[(key, window)] = used + amount
            return True

    def add_window_count(self, key: str, window: int, ttl: int) -> int:
        with self._lock:
            self.meter.write()
            self.windows[(key, window)] = self.windows.get((key, window), 0) + 1
            return self.windows[(key, window)]

    def get_state(self, key: str) -> dict[str, Any]:
        return dict(self.states.get(key, {}))

    def put_state(self, key: str, values: Mapping[str, Any], expect: Mapping[str, Any] | None = None) -> bool:
        with self._lock:
            self.meter.write()
            version = int((expect or {}).get("version", 0))
            if int(self.states.get(key, {}).get("version", 0)) != version:
                return False
            self.states[key] = {**{k: v for k, v in values.items() if k != "version"}, "version": version + 1}
            return True
