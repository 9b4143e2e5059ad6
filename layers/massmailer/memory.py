"""In-memory adapters with the same contracts as the AWS ones: for unit tests and benchmarks.

They keep the semantics that matter (conditional claims, leases, idempotent suppression, split
checkpoints), so a test against them fails for the same reasons one against DynamoDB would.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from massmailer.addresses import address_key
from massmailer.blobs import READ_SIZE, BlobHead, ObjectChanged, ObjectTooLarge, line_blocks
from massmailer.models import Campaign, CampaignStatus, MessageRecord, Status
from massmailer.store import (
    CLAIMABLE,
    COUNTER_FIELDS,
    IDEMPOTENCY_TTL_SECONDS,
    Claim,
    StoredCampaign,
    campaign_from_item,
)


class InMemoryStore:
    def __init__(self, clock: Any = time.time, *, index_provider_ids: bool = False) -> None:
        self._clock = clock
        self._index_provider_ids = index_provider_ids  # as DynamoStore: GSI1 written only when on
        self.provider_index: dict[str, str] = {}  # SES message id → our message id (GSI1)
        self._lock = threading.Lock()
        self.campaigns: dict[str, dict[str, Any]] = {}
        self.messages: dict[str, dict[str, Any]] = {}
        self.suppressions: dict[str, dict[str, Any]] = {}
        self.events: set[str] = set()
        self.counted: set[str] = set()  # queue messages whose counts were added (count_batch)
        self.requests: dict[str, dict[str, Any]] = {}
        self.windows: dict[tuple[str, int], int] = {}
        self.states: dict[str, dict[str, Any]] = {}
        self.writes = 0  # for benchmarks: what DynamoDB would bill as writes
        self._tokens = 0

    # campaigns
    def put_campaign(self, campaign: Campaign) -> None:
        with self._lock:
            self.writes += 1
            self.campaigns[campaign.campaign_id] = {
                "data": campaign.model_dump_json(),
                "status": campaign.status.value,
                "split_cursor": 0,
                "split_done": False,
                **{f"c_{name}": 0 for name in COUNTER_FIELDS},
            }

    def get_campaign(self, campaign_id: str) -> StoredCampaign | None:
        item = self.campaigns.get(campaign_id)
        return campaign_from_item(item) if item else None

    def set_campaign_status(self, campaign_id: str, status: CampaignStatus, error: str | None = None) -> None:
        with self._lock:
            self.writes += 1
            item = self.campaigns[campaign_id]
            item["status"] = status.value
            if error is not None:
                item["last_error"] = error

    def add_campaign_counts(self, campaign_id: str, deltas: Mapping[str, int]) -> None:
        deltas = {k: v for k, v in deltas.items() if v}
        if not deltas:
            return
        with self._lock:
            self.writes += 1
            item = self.campaigns.get(campaign_id)
            if item is None:
                return
            for k, v in deltas.items():
                item[f"c_{k}"] = item.get(f"c_{k}", 0) + v

    def was_counted(self, delivery: str) -> bool:
        with self._lock:
            return delivery in self.counted

    def count_batch(self, campaign_id: str, delivery: str, deltas: Mapping[str, int]) -> bool:
        deltas = {k: v for k, v in deltas.items() if v}
        if not deltas:
            return True
        with self._lock:
            item = self.campaigns.get(campaign_id)
            if delivery in self.counted or item is None:
                return False
            self.writes += 2  # the marker and the counters (one transaction)
            self.counted.add(delivery)
            for k, v in deltas.items():
                item[f"c_{k}"] = item.get(f"c_{k}", 0) + v
            return True

    def advance_split(
        self, campaign_id: str, expected_cursor: int, new_cursor: int, deltas: Mapping[str, int], done: bool
    ) -> bool:
        with self._lock:
            self.writes += 1
            item = self.campaigns[campaign_id]
            if item["split_cursor"] != expected_cursor:
                return False
            item["split_cursor"] = new_cursor
            item["split_done"] = done
            for k, v in deltas.items():
                item[f"c_{k}"] = item.get(f"c_{k}", 0) + v
            return True

    # message records
    def create_message(self, record: MessageRecord, payload: Mapping[str, Any]) -> bool:
        with self._lock:
            self.writes += 1
            if record.message_id in self.messages:
                return False
            self.messages[record.message_id] = {
                **{k: v for k, v in record.model_dump(mode="json").items() if v is not None},
                "payload": json.dumps(payload),
            }
            return True

    def get_message(self, message_id: str) -> dict[str, Any] | None:
        item = self.messages.get(message_id)
        return dict(item) if item else None

    def claim_recipient(
        self,
        message_id: str,
        *,
        email: str,
        campaign_id: str | None,
        lane: str,
        attempt: int,
        lease_seconds: int,
        delivery: str | None = None,
    ) -> Claim:
        now = self._clock()
        with self._lock:
            self.writes += 1
            item = self.messages.get(message_id)
            if item is not None:
                status = item.get("status")
                expired = status == Status.SENDING.value and item.get("lease_until", 0) < now
                if status not in CLAIMABLE and not expired:
                    return Claim(claimed=False, record=dict(item))
            else:
                item = self.messages[message_id] = {"message_id": message_id, "created_at": now}
            self._tokens += 1
            token = f"t{self._tokens}"
            item.update(
                status=Status.SENDING.value,
                lease_until=now + lease_seconds,
                claim_token=token,
                attempts=attempt + 1,
                email=email,
                lane=lane,
                updated_at=now,
            )
            if campaign_id:
                item["campaign_id"] = campaign_id
            if delivery:
                item["delivery"] = delivery
            return Claim(claimed=True, record=dict(item), token=token)

    def record_sent(self, message_id: str, token: str, provider: str, provider_message_id: str) -> None:
        with self._lock:
            self.writes += 1
            item = self.messages[message_id]
            if item.get("status") == Status.SENDING.value:  # a notification that got there first stands
                item.update(status=Status.SENT.value, last_error=None)
            item.update(provider=provider, provider_message_id=provider_message_id, sent_at=self._clock())
            if self._index_provider_ids:
                self.provider_index[provider_message_id] = message_id
            item.pop("lease_until", None)
            item.pop("claim_token", None)

    def record_retry(self, message_id: str, token: str, error: str) -> None:
        with self._lock:
            self.writes += 1
            item = self.messages[message_id]
            if item.get("claim_token") != token:
                return
            item.update(status=Status.RETRY_WAIT.value, last_error=error)
            item.pop("lease_until", None)
            item.pop("claim_token", None)

    def record_failed(self, message_id: str, status: Status, error: str, **details: Any) -> None:
        with self._lock:
            self.writes += 1
            item = self.messages.setdefault(message_id, {"message_id": message_id})
            item.update(status=status.value, last_error=error, **details)
            item.pop("lease_until", None)
            item.pop("claim_token", None)

    def find_by_provider_id(self, provider_message_id: str) -> dict[str, Any] | None:
        message_id = self.provider_index.get(provider_message_id)
        return self.get_message(message_id) if message_id else None

    def apply_notification(
        self,
        message_id: str,
        status: Status | None,
        detail: str,
        allowed_from: Iterable[str],
        increment: str | None = None,
    ) -> bool:
        allowed = list(allowed_from)
        with self._lock:
            self.writes += 1
            item = self.messages.get(message_id)
            if item is None or (allowed and item.get("status") not in allowed):
                return False
            if status is not None:
                item["status"] = status.value
            item["event_detail"] = detail
            if increment:
                item[increment] = item.get(increment, 0) + 1
            return True

    # suppression list
    def suppressed_among(self, addresses: Iterable[str]) -> set[str]:
        return {key for key in (address_key(a) for a in addresses) if key in self.suppressions}

    def is_suppressed(self, address: str) -> bool:
        return address_key(address) in self.suppressions

    def suppress(self, address: str, reason: str, details: Mapping[str, Any] | None = None) -> bool:
        with self._lock:
            self.writes += 1
            key = address_key(address)
            if key in self.suppressions:
                return False
            self.suppressions[key] = {"reason": reason, "details": dict(details or {})}
            return True

    # shared state (rate limits, circuit breakers)
    def take_tokens(self, key: str, window: int, amount: int, limit: int, ttl: int) -> bool:
        with self._lock:
            self.writes += 1
            used = self.windows.get((key, window), 0)
            if used + amount > limit:
                return False
            self.windows[(key, window)] = used + amount
            return True

    def add_window_count(self, key: str, window: int, ttl: int) -> int:
        with self._lock:
            self.writes += 1
            self.windows[(key, window)] = self.windows.get((key, window), 0) + 1
            return self.windows[(key, window)]

    def get_state(self, key: str) -> dict[str, Any]:
        return dict(self.states.get(key, {}))

    def put_state(self, key: str, values: Mapping[str, Any], expect: Mapping[str, Any] | None = None) -> bool:
        with self._lock:
            self.writes += 1
            version = int((expect or {}).get("version", 0))
            if int(self.states.get(key, {}).get("version", 0)) != version:
                return False
            self.states[key] = {**{k: v for k, v in values.items() if k != "version"}, "version": version + 1}
            return True

    # de-duplication
    def remember_event(self, digest: str) -> bool:
        with self._lock:
            self.writes += 1
            if digest in self.events:
                return False
            self.events.add(digest)
            return True

    def recall_request(self, key: str) -> dict[str, Any] | None:
        entry = self.requests.get(key)
        if not entry or entry["expires_at"] < self._clock():
            return None
        return {"request_hash": entry["request_hash"], "response": entry["response"]}

    def remember_request(self, key: str, request_hash: str, response: Mapping[str, Any]) -> dict[str, Any] | None:
        with self._lock:
            earlier = self.recall_request(key)
            if earlier is not None:
                return earlier
            self.requests[key] = {
                "request_hash": request_hash,
                "response": dict(response),
                "expires_at": self._clock() + IDEMPOTENCY_TTL_SECONDS,
            }
            return None


class InMemoryQueue:
    """Collects what would be sent to SQS, per queue key, with the requested delay."""

    def __init__(self) -> None:
        self.sent: dict[str, list[tuple[str, int]]] = defaultdict(list)
        self.requests = 0
        self._lock = threading.Lock()

    def send(self, queue: str, bodies: Sequence[str], delay_seconds: int = 0) -> None:
        with self._lock:
            self.requests += (len(bodies) + 9) // 10
            self.sent[queue].extend((body, delay_seconds) for body in bodies)

    def drain(self, queue: str) -> list[tuple[str, int]]:
        with self._lock:
            items, self.sent[queue] = self.sent[queue], []
            return items


class InMemoryBlobs:
    """The Blobs port in memory. ``read_size`` is the size of each simulated read (S3 streams 1 MiB
    chunks); tests make it tiny so lines, CSV records and the BOM straddle read boundaries."""

    def __init__(self, read_size: int = READ_SIZE) -> None:
        self.objects: dict[str, bytes] = {}
        self.read_size = read_size

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.objects[key] = data

    def get(self, key: str, max_bytes: int) -> bytes | None:
        data = self.objects.get(key)
        if data is not None and len(data) > max_bytes:
            raise ObjectTooLarge(f"{key} is {len(data)} bytes, over the {max_bytes}-byte limit")
        return data

    def etag(self, key: str) -> str:
        return '"' + hashlib.md5(self.objects[key], usedforsecurity=False).hexdigest() + '"'

    def head(self, key: str, max_bytes: int, if_match: str | None = None) -> BlobHead | None:
        if key not in self.objects:
            return None
        self._check(key, if_match)
        data = self.objects[key]
        return BlobHead(data[:max_bytes], len(data), self.etag(key))

    def blocks(self, key: str, start: int = 0, if_match: str | None = None) -> Iterator[tuple[bytes, int]]:
        self._check(key, if_match)
        data, size = self.objects[key], self.read_size
        yield from line_blocks((data[i : i + size] for i in range(start, len(data), size)), start)

    def _check(self, key: str, if_match: str | None) -> None:
        if if_match and self.etag(key) != if_match:
            raise ObjectChanged(f"{key} was replaced (ETag is no longer {if_match})")
