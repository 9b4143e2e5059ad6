"""The suppression list: addresses never to send to again (hard bounces, complaints, unsubscribes)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from massmailer.addresses import address_key
from massmailer.store import keys
from massmailer.store.dynamo import Clock, DynamoRepository, now_iso
from massmailer.store.memory import InMemoryRepository, Meter

BATCH_GET_KEYS = 100  # DynamoDB's limit per BatchGetItem


class Suppressions(Protocol):
    def suppressed_among(self, addresses: Iterable[str]) -> set[str]: ...
    def suppress(self, address: str, reason: str, details: Mapping[str, Any] | None = None) -> bool: ...
    def is_suppressed(self, address: str) -> bool: ...


class DynamoSuppressions(DynamoRepository):
    def suppressed_among(self, addresses: Iterable[str]) -> set[str]:
        """The address keys (``addresses.address_key``) of those suppressed, batch-read."""
        wanted = {address_key(a) for a in addresses}
        found: set[str] = set()
        batch = [keys.suppression_key(a) for a in wanted]
        for start in range(0, len(batch), BATCH_GET_KEYS):
            request: dict[str, Any] = {
                self._table.name: {"Keys": batch[start : start + BATCH_GET_KEYS], "ProjectionExpression": keys.PK}
            }
            while request:
                result = self._call(self._client.batch_get_item, RequestItems=request)
                for item in result.get("Responses", {}).get(self._table.name, []):
                    pk = item[keys.PK]["S"] if isinstance(item[keys.PK], dict) else item[keys.PK]
                    found.add(pk.removeprefix(keys.SUPPRESSION_PREFIX))
                request = result.get("UnprocessedKeys") or {}
        return found

    def is_suppressed(self, address: str) -> bool:
        return bool(self.suppressed_among([address]))

    def suppress(self, address: str, reason: str, details: Mapping[str, Any] | None = None) -> bool:
        """Add the address; False when it was on the list already (the first reason stands)."""
        item = {
            **keys.suppression_key(address),
            "kind": "suppression",
            "reason": reason,
            "details": json.dumps(dict(details or {}), default=str),
            "created_at": now_iso(self._clock()),
        }
        return (
            self._conditional(self._table.put_item, Item=item, ConditionExpression="attribute_not_exists(PK)")
            is not None
        )


class InMemorySuppressions(InMemoryRepository):
    def __init__(self, clock: Clock = time.time, meter: Meter | None = None) -> None:
        super().__init__(clock, meter)
        self.by_address: dict[str, dict[str, Any]] = {}  # address key → reason, details

    def suppressed_among(self, addresses: Iterable[str]) -> set[str]:
        return {key for key in (address_key(a) for a in addresses) if key in self.by_address}

    def is_suppressed(self, address: str) -> bool:
        return address_key(address) in self.by_address

    def suppress(self, address: str, reason: str, details: Mapping[str, Any] | None = None) -> bool:
        with self._lock:
            self.meter.write()
            key = address_key(address)
            if key in self.by_address:
                return False
            self.by_address[key] = {"reason": reason, "details": dict(details or {})}
            return True
