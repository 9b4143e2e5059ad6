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
# Every suppression is also written to the "suppressed since" log (``keys.recent_suppression_key``:
# one partition per UTC hour, sorted by time) for a day: a sender that trusts the splitter's recent
# check reads only what was suppressed since, with one Query per batch instead of one read per email.
RECENT_TTL_SECONDS = 86_400
# The splitter's clock and the API's clock may disagree by this much: the sender asks for
# suppressions since (the split's check - this), so an unsubscribe is never missed by skew.
CLOCK_SKEW_SECONDS = 60.0


class Suppressions(Protocol):
    def suppressed_among(self, addresses: Iterable[str]) -> set[str]: ...
    def suppress(self, address: str, reason: str, details: Mapping[str, Any] | None = None) -> bool: ...
    def is_suppressed(self, address: str) -> bool: ...
    def suppressed_since(self, since: float) -> set[str]: ...


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
        """Add the address; False when it was on the list already (the first reason stands).

        One transaction puts the suppression (conditional: absent) and its entry in the "suppressed
        since" log, so a sender never sees one without the other."""
        now = self._clock()
        item = {
            **keys.suppression_key(address),
            "kind": "suppression",
            "reason": reason,
            "details": json.dumps(dict(details or {}), default=str),
            "created_at": now_iso(now),
        }
        recent = {**keys.recent_suppression_key(now, address), "expires_at": int(now + RECENT_TTL_SECONDS)}
        items = [
            {"Put": {"TableName": self._table.name, "Item": item, "ConditionExpression": "attribute_not_exists(PK)"}},
            {"Put": {"TableName": self._table.name, "Item": recent}},
        ]
        return self._conditional(self._client.transact_write_items, TransactItems=items) is not None

    def suppressed_since(self, since: float) -> set[str]:
        """The address keys suppressed at or after ``since`` (within ``RECENT_TTL_SECONDS``): one
        strongly consistent Query per UTC hour touched (one, or two across an hour's turn). The hours
        run to our clock + ``CLOCK_SKEW_SECONDS``: a writer ahead of us may already log in the next."""
        found: set[str] = set()
        now = self._clock()
        since = max(since, now - RECENT_TTL_SECONDS)
        for partition in keys.recent_suppression_partitions(since, now + CLOCK_SKEW_SECONDS):
            request: dict[str, Any] = {
                "KeyConditionExpression": "#pk = :pk AND #sk >= :since",
                "ExpressionAttributeNames": {"#pk": keys.PK, "#sk": keys.SK},
                "ExpressionAttributeValues": {":pk": partition, ":since": keys.recent_suppression_sort(since)},
                "ProjectionExpression": "#sk",
                "ConsistentRead": True,
            }
            while True:
                result = self._call(self._table.query, **request)
                found.update(keys.recent_suppression_address(item[keys.SK]) for item in result.get("Items", []))
                if not result.get("LastEvaluatedKey"):
                    break
                request["ExclusiveStartKey"] = result["LastEvaluatedKey"]
        return found


class InMemorySuppressions(InMemoryRepository):
    def __init__(self, clock: Clock = time.time, meter: Meter | None = None) -> None:
        super().__init__(clock, meter)
        self.by_address: dict[str, dict[str, Any]] = {}  # address key → reason, details
        self.recent: list[tuple[float, str]] = []  # (when, address key): the "suppressed since" log
        self.since_queries = 0  # what DynamoDB would bill as one Query (per hour partition)

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
            self.recent.append((self._clock(), key))
            return True

    def suppressed_since(self, since: float) -> set[str]:
        with self._lock:
            self.since_queries += 1
            horizon = self._clock() - RECENT_TTL_SECONDS
            return {key for when, key in self.recent if when >= since and when >= horizon}
