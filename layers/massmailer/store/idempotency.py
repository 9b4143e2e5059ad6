"""Idempotency keys: an API request's hash and stored response, so a retried request gets the same
answer (TTL 24 h)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, Protocol

from massmailer.store import keys
from massmailer.store.dynamo import Clock, DynamoRepository
from massmailer.store.memory import InMemoryRepository, Meter

IDEMPOTENCY_TTL_SECONDS = 24 * 3600


class IdempotencyKeys(Protocol):
    def recall_request(self, key: str) -> dict[str, Any] | None: ...
    def remember_request(self, key: str, request_hash: str, response: Mapping[str, Any]) -> dict[str, Any] | None: ...


class DynamoIdempotencyKeys(DynamoRepository):
    def recall_request(self, key: str) -> dict[str, Any] | None:
        item = self._call(self._table.get_item, Key=keys.idempotency_key(key), ConsistentRead=True).get("Item")
        if not item or int(item.get("expires_at", 0)) < self._clock():
            return None
        return {"request_hash": item["request_hash"], "response": json.loads(item["response"])}

    def remember_request(self, key: str, request_hash: str, response: Mapping[str, Any]) -> dict[str, Any] | None:
        """Store the response for an idempotency key. Returns the earlier entry if one exists."""
        now = self._clock()
        item = {
            **keys.idempotency_key(key),
            "request_hash": request_hash,
            "response": json.dumps(response),
            "expires_at": int(now + IDEMPOTENCY_TTL_SECONDS),
        }
        stored = self._conditional(
            self._table.put_item,
            Item=item,
            ConditionExpression="attribute_not_exists(PK) OR expires_at < :now",
            ExpressionAttributeValues={":now": int(now)},
        )
        return self.recall_request(key) if stored is None else None


class InMemoryIdempotencyKeys(InMemoryRepository):
    def __init__(self, clock: Clock = time.time, meter: Meter | None = None) -> None:
        super().__init__(clock, meter)
        self.by_key: dict[str, dict[str, Any]] = {}

    def recall_request(self, key: str) -> dict[str, Any] | None:
        entry = self.by_key.get(key)
        if not entry or entry["expires_at"] < self._clock():
            return None
        return {"request_hash": entry["request_hash"], "response": entry["response"]}

    def remember_request(self, key: str, request_hash: str, response: Mapping[str, Any]) -> dict[str, Any] | None:
        with self._lock:
            earlier = self.recall_request(key)
            if earlier is not None:
                return earlier
            self.by_key[key] = {
                "request_hash": request_hash,
                "response": dict(response),
                "expires_at": self._clock() + IDEMPOTENCY_TTL_SECONDS,
            }
            return None
