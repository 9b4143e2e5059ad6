"""Campaigns: META (status, counters, split cursor) and CONTENT (the campaign document).

``count_batch`` adds one queue message's counts exactly once: it writes the COUNTED marker
(``keys.counted_key``; read back by ``markers.was_counted``) and the counters in one transaction.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from massmailer.models import Campaign, CampaignCounts, CampaignStatus
from massmailer.store import keys
from massmailer.store.dynamo import Clock, DynamoRepository, plain
from massmailer.store.markers import InMemoryMarkers
from massmailer.store.memory import InMemoryRepository, Meter

COUNTED_TTL_SECONDS = 14 * 24 * 3600  # SQS keeps a message at most 14 days: no redelivery after that
COUNTER_FIELDS = tuple(CampaignCounts.model_fields)


@dataclass
class StoredCampaign:
    campaign: Campaign
    counts: CampaignCounts
    split_cursor: int = 0
    split_done: bool = False


class Campaigns(Protocol):
    def put_campaign(self, campaign: Campaign) -> None: ...
    def get_campaign(self, campaign_id: str) -> StoredCampaign | None: ...
    def set_campaign_status(self, campaign_id: str, status: CampaignStatus, error: str | None = None) -> None: ...
    def add_campaign_counts(self, campaign_id: str, deltas: Mapping[str, int]) -> None: ...
    def count_batch(self, campaign_id: str, delivery: str, deltas: Mapping[str, int]) -> bool: ...
    def advance_split(
        self, campaign_id: str, expected_cursor: int, new_cursor: int, deltas: Mapping[str, int], done: bool
    ) -> bool: ...


def campaign_from_item(item: Mapping[str, Any]) -> StoredCampaign:
    item = plain(dict(item))
    campaign = Campaign.model_validate_json(item["data"])
    campaign.status = CampaignStatus(item.get("status", campaign.status))
    campaign.last_error = item.get("last_error")
    counts = CampaignCounts(**{name: int(item.get(f"c_{name}", 0)) for name in COUNTER_FIELDS})
    # queued is derived, never stored: what is neither suppressed nor finished yet.
    counts.queued = max(counts.total - counts.suppressed - counts.sent - counts.failed, 0)
    return StoredCampaign(
        campaign=campaign,
        counts=counts,
        split_cursor=int(item.get("split_cursor", 0)),
        split_done=bool(item.get("split_done", False)),
    )


def _nonzero(deltas: Mapping[str, int]) -> dict[str, int]:
    return {k: v for k, v in deltas.items() if v}


def _counter_adds(deltas: Mapping[str, int]) -> tuple[str, dict[str, str], dict[str, int]]:
    """``ADD`` clause, names and values that add the non-zero ``deltas`` to the c_* counters."""
    deltas = _nonzero(deltas)
    names = {f"#c{i}": f"c_{k}" for i, k in enumerate(deltas)}
    values = {f":c{i}": v for i, v in enumerate(deltas.values())}
    clause = "ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(deltas))) if deltas else ""
    return clause, names, values


class DynamoCampaigns(DynamoRepository):
    def put_campaign(self, campaign: Campaign) -> None:
        # The content first: META is what makes the campaign exist (counters require it).
        content = {**keys.campaign_content_key(campaign.campaign_id), "data": campaign.model_dump_json()}
        self._call(self._table.put_item, Item=content)
        item = {
            **keys.campaign_key(campaign.campaign_id),
            "kind": "campaign",
            "status": campaign.status.value,
            "split_cursor": 0,
            "split_done": False,
            "created_at": campaign.created_at.isoformat(),
            **{f"c_{name}": 0 for name in COUNTER_FIELDS},
        }
        self._call(self._table.put_item, Item=item)

    def get_campaign(self, campaign_id: str) -> StoredCampaign | None:
        """META and CONTENT in one strongly consistent query of the campaign's partition."""
        result = self._call(
            self._table.query,
            KeyConditionExpression="#pk = :pk",
            ExpressionAttributeNames={"#pk": keys.PK},
            ExpressionAttributeValues={":pk": keys.campaign_partition(campaign_id)},
            ConsistentRead=True,
        )
        items = {item[keys.SK]: item for item in result.get("Items", [])}
        if keys.META not in items or keys.CONTENT not in items:
            return None
        return campaign_from_item({**items[keys.CONTENT], **items[keys.META]})

    def set_campaign_status(self, campaign_id: str, status: CampaignStatus, error: str | None = None) -> None:
        names = {"#s": "status"}
        values: dict[str, Any] = {":s": status.value}
        expr = "SET #s = :s"
        if error is not None:
            expr += ", last_error = :e"
            values[":e"] = error
        self._call(
            self._table.update_item,
            Key=keys.campaign_key(campaign_id),
            UpdateExpression=expr,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def add_campaign_counts(self, campaign_id: str, deltas: Mapping[str, int]) -> None:
        expr, names, values = _counter_adds(deltas)
        if not expr:
            return
        self._conditional(
            self._table.update_item,
            Key=keys.campaign_key(campaign_id),
            UpdateExpression=expr,
            ConditionExpression="attribute_exists(PK)",  # never create a stray counter-only item
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def count_batch(self, campaign_id: str, delivery: str, deltas: Mapping[str, int]) -> bool:
        """Add one queue message's counts exactly once, however often it is delivered: a marker for
        the message and the counters move in one transaction. False when it was counted before."""
        expr, names, values = _counter_adds(deltas)
        if not expr:
            return True
        # The table resource's client takes (and returns) plain Python values, as the resource does.
        marker = {**keys.counted_key(delivery), "expires_at": int(self._clock()) + COUNTED_TTL_SECONDS}
        items = [
            {"Put": {"TableName": self._table.name, "Item": marker, "ConditionExpression": "attribute_not_exists(PK)"}},
            {
                "Update": {
                    "TableName": self._table.name,
                    "Key": keys.campaign_key(campaign_id),
                    "UpdateExpression": expr,
                    "ConditionExpression": "attribute_exists(PK)",
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": values,
                }
            },
        ]
        # None: counted before (or the campaign is gone), nothing to add.
        return self._conditional(self._client.transact_write_items, TransactItems=items) is not None

    def advance_split(
        self, campaign_id: str, expected_cursor: int, new_cursor: int, deltas: Mapping[str, int], done: bool
    ) -> bool:
        """Move the split checkpoint and its counters in one conditional write (exactly once)."""
        adds, counter_names, counter_values = _counter_adds(deltas)
        names = {"#cur": "split_cursor", "#done": "split_done", **counter_names}
        values: dict[str, Any] = {":expected": expected_cursor, ":new": new_cursor, ":done": done, **counter_values}
        expr = f"SET #cur = :new, #done = :done {adds}".rstrip()
        return (
            self._conditional(
                self._table.update_item,
                Key=keys.campaign_key(campaign_id),
                UpdateExpression=expr,
                ConditionExpression="#cur = :expected",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
            is not None
        )


class InMemoryCampaigns(InMemoryRepository):
    """``markers``: the twin whose COUNTED markers ``count_batch`` writes (one transaction in DynamoDB)."""

    def __init__(self, markers: InMemoryMarkers, clock: Clock = time.time, meter: Meter | None = None) -> None:
        super().__init__(clock, meter)
        self._markers = markers
        self.by_id: dict[str, dict[str, Any]] = {}

    def put_campaign(self, campaign: Campaign) -> None:
        with self._lock:
            self.meter.write()
            self.by_id[campaign.campaign_id] = {
                "data": campaign.model_dump_json(),
                "status": campaign.status.value,
                "split_cursor": 0,
                "split_done": False,
                **{f"c_{name}": 0 for name in COUNTER_FIELDS},
            }

    def get_campaign(self, campaign_id: str) -> StoredCampaign | None:
        item = self.by_id.get(campaign_id)
        return campaign_from_item(item) if item else None

    def set_campaign_status(self, campaign_id: str, status: CampaignStatus, error: str | None = None) -> None:
        with self._lock:
            self.meter.write()
            item = self.by_id[campaign_id]
            item["status"] = status.value
            if error is not None:
                item["last_error"] = error

    def add_campaign_counts(self, campaign_id: str, deltas: Mapping[str, int]) -> None:
        deltas = _nonzero(deltas)
        if not deltas:
            return
        with self._lock:
            self.meter.write()
            item = self.by_id.get(campaign_id)
            if item is None:
                return
            _add(item, deltas)

    def count_batch(self, campaign_id: str, delivery: str, deltas: Mapping[str, int]) -> bool:
        deltas = _nonzero(deltas)
        if not deltas:
            return True
        with self._lock:
            item = self.by_id.get(campaign_id)
            if item is None or not self._markers.mark_counted(delivery):
                return False
            self.meter.write(2)  # the marker and the counters (one transaction)
            _add(item, deltas)
            return True

    def advance_split(
        self, campaign_id: str, expected_cursor: int, new_cursor: int, deltas: Mapping[str, int], done: bool
    ) -> bool:
        with self._lock:
            self.meter.write()
            item = self.by_id[campaign_id]
            if item["split_cursor"] != expected_cursor:
                return False
            item["split_cursor"] = new_cursor
            item["split_done"] = done
            _add(item, deltas)
            return True


def _add(item: dict[str, Any], deltas: Mapping[str, int]) -> None:
    for k, v in deltas.items():
        item[f"c_{k}"] = item.get(f"c_{k}", 0) + v
