"""Campaigns: META (status, counters, split cursor) and CONTENT (the campaign document), and the
batches parked while a campaign is paused (PARKED#<queue message id>).

``transition`` is the only way a campaign's status changes: one conditional write whose condition is
the move's sources (``massmailer.lifecycle``); a refusal raises ``TransitionNotAllowed`` naming the
state found (``ReturnValuesOnConditionCheckFailure=ALL_OLD``, so no second read).

``count_batch`` adds one queue message's counts exactly once: it writes the COUNTED marker
(``keys.counted_key``; read back by ``markers.was_counted``) and the counters in one transaction.

``park_batch`` keeps a batch that arrived while the campaign is PAUSED, in one transaction with a
check that the campaign *is* PAUSED: a park racing a resume either commits before the resume's
status write (and the resume, which lists the parked batches after it, re-enqueues it) or is
refused (and the sender sends the batch).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from massmailer.lifecycle import Move, TransitionNotAllowed, UnknownCampaign, resume_target
from massmailer.models import Campaign, CampaignCounts, CampaignStatus
from massmailer.store import keys
from massmailer.store.dynamo import Clock, DynamoRepository, conditional_failed, plain
from massmailer.store.markers import InMemoryMarkers
from massmailer.store.memory import InMemoryRepository, Meter

COUNTED_TTL_SECONDS = 14 * 24 * 3600  # SQS keeps a message at most 14 days: no redelivery after that
COUNTER_FIELDS = tuple(CampaignCounts.model_fields)


# What a transition may set besides the status (None removes the attribute).
STATE_FIELDS = ("last_error", "pause_cause", "pause_rates", "resumes", "guard_from")


@dataclass
class StoredCampaign:
    campaign: Campaign
    counts: CampaignCounts
    split_cursor: int = 0
    split_done: bool = False
    pause_cause: str | None = None  # "bounce_rate" | "complaint_rate": the guard paused it
    pause_rates: dict[str, Any] | None = None  # the counts and rates when the guard paused it
    resumes: int = 0  # how often it was resumed (the guard's pause is conditioned on it)
    guard_from: dict[str, int] | None = None  # the counts at the last resume: the guard rates what came after


@dataclass(frozen=True)
class ParkedBatch:
    key: str  # the queue message id it arrived as
    lane: str
    body: str


@dataclass(frozen=True)
class Roster:
    """One split chunk's recipients, in audience order: their identities (``address_key``) and
    which of them were suppressed at the split (never queued)."""

    start: int  # the split checkpoint the chunk began at (its sort key)
    identities: list[str]
    suppressed: frozenset[str]


@dataclass(frozen=True)
class CampaignSummary:
    """A campaign as the list shows it: its card (name, times) and META (status, counters)."""

    campaign_id: str
    name: str
    created_at: datetime
    send_at: datetime | None
    status: CampaignStatus  # as stored (COMPLETED is reported: see intake.reported_status)
    split_done: bool
    counts: CampaignCounts


@dataclass(frozen=True)
class CampaignPage:
    items: list[CampaignSummary]
    after: str | None  # where the next page starts (the last card examined); None: no more


LIST_BUDGET = 1000  # cards examined per list call at most, however few match the filters


def created_sort(created_at: datetime) -> str:
    """Fixed-width UTC text that sorts as the time does (the card's GSI1SK prefix)."""
    return created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Campaigns(Protocol):
    def put_campaign(self, campaign: Campaign) -> bool: ...
    def get_campaign(self, campaign_id: str) -> StoredCampaign | None: ...
    def status_of(self, campaign_id: str) -> CampaignStatus | None: ...
    def transition(
        self,
        campaign_id: str,
        move: Move,
        sets: Mapping[str, Any] | None = None,
        expect: Mapping[str, Any] | None = None,
    ) -> CampaignStatus: ...
    def park_batch(self, campaign_id: str, key: str, lane: str, body: str) -> bool: ...
    def parked_batches(self, campaign_id: str) -> list[ParkedBatch]: ...
    def unpark(self, campaign_id: str, key: str) -> None: ...
    def add_campaign_counts(self, campaign_id: str, deltas: Mapping[str, int]) -> None: ...
    def put_roster(self, campaign_id: str, start: int, identities: list[str], suppressed: set[str]) -> None: ...
    def rosters(self, campaign_id: str, start: int = 0, limit: int = 1) -> list[Roster]: ...
    def list_campaigns(
        self,
        limit: int,
        after: str | None = None,
        name_prefix: str | None = None,
        keep: Callable[[CampaignSummary], bool] | None = None,
    ) -> CampaignPage: ...
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
    counts.queued = max(counts.total - counts.suppressed - counts.sent - counts.failed - counts.cancelled, 0)
    return StoredCampaign(
        campaign=campaign,
        counts=counts,
        split_cursor=int(item.get("split_cursor", 0)),
        split_done=bool(item.get("split_done", False)),
        pause_cause=item.get("pause_cause"),
        pause_rates=item.get("pause_rates"),
        resumes=int(item.get("resumes", 0)),
        guard_from=item.get("guard_from"),
    )


def _card(campaign: Campaign) -> dict[str, Any]:
    return {
        **keys.campaign_card_key(campaign.campaign_id),
        **keys.campaign_list_key(created_sort(campaign.created_at), campaign.campaign_id),
        "kind": "campaign_card",
        "campaign_id": campaign.campaign_id,
        "name": campaign.name,
        "created_at": campaign.created_at.isoformat(),
        **({"send_at": campaign.send_at.isoformat()} if campaign.send_at else {}),
    }


def _summary(card: Mapping[str, Any], meta: Mapping[str, Any]) -> CampaignSummary:
    meta = plain(dict(meta))
    counts = CampaignCounts(**{name: int(meta.get(f"c_{name}", 0)) for name in COUNTER_FIELDS})
    counts.queued = max(counts.total - counts.suppressed - counts.sent - counts.failed - counts.cancelled, 0)
    return CampaignSummary(
        campaign_id=str(card["campaign_id"]),
        name=str(card["name"]),
        created_at=datetime.fromisoformat(str(card["created_at"])),
        send_at=datetime.fromisoformat(str(card["send_at"])) if card.get("send_at") else None,
        status=CampaignStatus(meta["status"]),
        split_done=bool(meta.get("split_done", False)),
        counts=counts,
    )


def _roster(item: Mapping[str, Any]) -> Roster:
    ids = str(item.get("ids") or "")
    suppressed = str(item.get("suppressed") or "")
    return Roster(
        start=int(str(item[keys.SK]).removeprefix(keys.ROSTER_PREFIX)),
        identities=ids.split("\n") if ids else [],
        suppressed=frozenset(suppressed.split("\n")) if suppressed else frozenset(),
    )


def _target(move: Move, split_done: bool) -> CampaignStatus:
    return move.target if move.target is not None else resume_target(split_done)


def _refused(move: Move, old: Mapping[str, Any] | None) -> Exception:
    if not old or "status" not in old:
        return UnknownCampaign("campaign not found")
    current = CampaignStatus(old["status"])
    return TransitionNotAllowed(move.action, current, move.target)


_DESERIALIZE = TypeDeserializer().deserialize


def _old_item(exc: ClientError) -> dict[str, Any] | None:
    """The item a refused conditional write returned (ALL_OLD), in plain Python values."""
    item = exc.response.get("Item")
    if not item:
        return None
    if all(isinstance(v, dict) and len(v) == 1 and next(iter(v)) in _TYPES for v in item.values()):
        item = {k: _DESERIALIZE(v) for k, v in item.items()}
    return dict(plain(item))


def _decimals(value: Any) -> Any:
    """Floats as DynamoDB takes them (Decimal), in nested maps and lists too."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _decimals(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decimals(v) for v in value]
    return value


_TYPES = frozenset({"S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"})


def _nonzero(deltas: Mapping[str, int]) -> dict[str, int]:
    return {k: v for k, v in deltas.items() if v}


def _counter_adds(deltas: Mapping[str, int]) -> tuple[str, dict[str, str], dict[str, int]]:
    """``ADD`` clause, names and values that add the non-zero ``deltas`` to the c_* counters."""
    deltas = _nonzero(deltas)
    names = {f"#c{i}": f"c_{k}" for i, k in enumerate(deltas)}
    values = {f":c{i}": v for i, v in enumerate(deltas.values())}
    clause = "ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(deltas))) if deltas else ""
    return clause, names, values


_ABSENT = f"attribute_not_exists({keys.PK})"


class DynamoCampaigns(DynamoRepository):
    def put_campaign(self, campaign: Campaign) -> bool:
        """Create the campaign; False (and nothing changed) if it exists. Every write is conditional
        (``attribute_not_exists``): a concurrent or late retry of the creating request can never
        reset a campaign's status, counters or split cursor, nor replace its document."""
        # The content first: META is what makes the campaign exist (counters require it).
        content = {**keys.campaign_content_key(campaign.campaign_id), "data": campaign.model_dump_json()}
        self._conditional(self._table.put_item, Item=content, ConditionExpression=_ABSENT)
        # The card next (one small write, once): a card without META is skipped by the list.
        self._conditional(self._table.put_item, Item=_card(campaign), ConditionExpression=_ABSENT)
        item = {
            **keys.campaign_key(campaign.campaign_id),
            "kind": "campaign",
            "status": campaign.status.value,
            "split_cursor": 0,
            "split_done": False,
            "resumes": 0,
            "created_at": campaign.created_at.isoformat(),
            **{f"c_{name}": 0 for name in COUNTER_FIELDS},
        }
        return self._conditional(self._table.put_item, Item=item, ConditionExpression=_ABSENT) is not None

    def get_campaign(self, campaign_id: str) -> StoredCampaign | None:
        """META and CONTENT in one strongly consistent query of the campaign's partition (the sort
        keys between them, so parked batches, which sort after META, are not read)."""
        result = self._call(
            self._table.query,
            KeyConditionExpression="#pk = :pk AND #sk BETWEEN :content AND :meta",
            ExpressionAttributeNames={"#pk": keys.PK, "#sk": keys.SK},
            ExpressionAttributeValues={
                ":pk": keys.campaign_partition(campaign_id),
                ":content": keys.CONTENT,
                ":meta": keys.META,
            },
            ConsistentRead=True,
        )
        items = {item[keys.SK]: item for item in result.get("Items", [])}
        if keys.META not in items or keys.CONTENT not in items:
            return None
        return campaign_from_item({**items[keys.CONTENT], **items[keys.META]})

    def status_of(self, campaign_id: str) -> CampaignStatus | None:
        """The stored status, strongly consistent (one read of META's status only: 1 RCU)."""
        result = self._call(
            self._table.get_item,
            Key=keys.campaign_key(campaign_id),
            ProjectionExpression="#s",
            ExpressionAttributeNames={"#s": "status"},
            ConsistentRead=True,
        )
        item = result.get("Item")
        return CampaignStatus(item["status"]) if item and "status" in item else None

    def transition(
        self,
        campaign_id: str,
        move: Move,
        sets: Mapping[str, Any] | None = None,
        expect: Mapping[str, Any] | None = None,
    ) -> CampaignStatus:
        """Move the campaign's status, if it is in one of ``move.sources`` (and ``expect``'s attributes
        have those values; None: absent); set ``sets`` in the same write. Returns the new status;
        raises ``TransitionNotAllowed`` (naming the current state) or ``UnknownCampaign``."""
        split_done: bool | None = None
        for _ in range(3):  # RESUME: tried again if split_done flipped between the read and the write
            if move.target is None and split_done is None:
                found = self._call(self._table.get_item, Key=keys.campaign_key(campaign_id), ConsistentRead=True).get(
                    "Item"
                )
                if not found or CampaignStatus(found["status"]) not in move.sources:
                    raise _refused(move, found)
                split_done = bool(found.get("split_done", False))
            target = _target(move, bool(split_done))
            names: dict[str, str] = {"#s": "status"}
            values: dict[str, Any] = {":t": target.value}
            sources = sorted(s.value for s in move.sources)
            values.update({f":src{i}": v for i, v in enumerate(sources)})
            condition = f"#s IN ({', '.join(f':src{i}' for i in range(len(sources)))})"
            if split_done is not None:
                names["#done"] = "split_done"
                values[":done"] = split_done
                condition += " AND #done = :done"
            for i, (name, value) in enumerate((expect or {}).items()):
                names[f"#e{i}"] = name
                if value is None:
                    condition += f" AND attribute_not_exists(#e{i})"
                else:
                    values[f":e{i}"] = value
                    condition += f" AND #e{i} = :e{i}"
            set_parts, remove_parts = ["#s = :t"], []
            for i, (name, value) in enumerate((sets or {}).items()):
                if name not in STATE_FIELDS:
                    raise ValueError(f"a transition may not set {name!r}")
                names[f"#x{i}"] = name
                if value is None:
                    remove_parts.append(f"#x{i}")
                else:
                    values[f":x{i}"] = _decimals(value)
                    set_parts.append(f"#x{i} = :x{i}")
            update = "SET " + ", ".join(set_parts) + (" REMOVE " + ", ".join(remove_parts) if remove_parts else "")
            try:
                self._call(
                    self._table.update_item,
                    Key=keys.campaign_key(campaign_id),
                    UpdateExpression=update,
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
                return target
            except ClientError as exc:
                if not conditional_failed(exc):
                    raise
                old = _old_item(exc)
                if old is None:  # not returned (an older DynamoDB emulator): read it
                    old = self._call(self._table.get_item, Key=keys.campaign_key(campaign_id), ConsistentRead=True).get(
                        "Item"
                    )
                    old = plain(old) if old else None
            if not old or "status" not in old or CampaignStatus(old["status"]) not in move.sources:
                raise _refused(move, old)
            current = CampaignStatus(old["status"])
            if split_done is not None and bool(old.get("split_done", False)) != split_done:
                split_done = bool(old.get("split_done", False))
                continue
            # In a source state, yet refused: an ``expect`` did not hold (e.g. the guard's resumes).
            raise TransitionNotAllowed(move.action, current, move.target)
        raise TransitionNotAllowed(move.action, CampaignStatus.PAUSED, move.target)  # pragma: no cover

    def park_batch(self, campaign_id: str, key: str, lane: str, body: str) -> bool:
        """Keep a batch while the campaign is PAUSED; False (nothing written) when it is not."""
        items = [
            {
                "ConditionCheck": {
                    "TableName": self._table.name,
                    "Key": keys.campaign_key(campaign_id),
                    "ConditionExpression": "#s = :paused",
                    "ExpressionAttributeNames": {"#s": "status"},
                    "ExpressionAttributeValues": {":paused": CampaignStatus.PAUSED.value},
                }
            },
            {
                "Put": {
                    "TableName": self._table.name,
                    "Item": {**keys.parked_key(campaign_id, key), "lane": lane, "body": body},
                }
            },
        ]
        return self._conditional(self._client.transact_write_items, TransactItems=items) is not None

    def parked_batches(self, campaign_id: str) -> list[ParkedBatch]:
        parked: list[ParkedBatch] = []
        start: dict[str, Any] | None = None
        while True:
            kwargs: dict[str, Any] = {
                "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :parked)",
                "ExpressionAttributeNames": {"#pk": keys.PK, "#sk": keys.SK},
                "ExpressionAttributeValues": {
                    ":pk": keys.campaign_partition(campaign_id),
                    ":parked": keys.PARKED_PREFIX,
                },
                "ConsistentRead": True,
            }
            if start:
                kwargs["ExclusiveStartKey"] = start
            result = self._call(self._table.query, **kwargs)
            parked += [
                ParkedBatch(str(i[keys.SK]).removeprefix(keys.PARKED_PREFIX), str(i["lane"]), str(i["body"]))
                for i in result.get("Items", [])
            ]
            start = result.get("LastEvaluatedKey")
            if not start:
                return parked

    def unpark(self, campaign_id: str, key: str) -> None:
        self._call(self._table.delete_item, Key=keys.parked_key(campaign_id, key))

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

    def put_roster(self, campaign_id: str, start: int, identities: list[str], suppressed: set[str]) -> None:
        """Keep a split chunk's recipients (one write of ~30 bytes per recipient; the same chunk
        written again, by a replayed split, is the same item)."""
        item = {
            **keys.roster_key(campaign_id, start),
            "ids": "\n".join(identities),
            **({"suppressed": "\n".join(sorted(suppressed))} if suppressed else {}),
        }
        self._call(self._table.put_item, Item=item)

    def rosters(self, campaign_id: str, start: int = 0, limit: int = 1) -> list[Roster]:
        """Up to ``limit`` rosters from the one that began at ``start`` on, in audience order."""
        result = self._call(
            self._table.query,
            KeyConditionExpression="#pk = :pk AND #sk BETWEEN :from AND :to",
            ExpressionAttributeNames={"#pk": keys.PK, "#sk": keys.SK},
            ExpressionAttributeValues={
                ":pk": keys.campaign_partition(campaign_id),
                ":from": keys.roster_sort_key(start),
                ":to": keys.ROSTER_LAST,
            },
            Limit=limit,
        )
        return [_roster(plain(dict(i))) for i in result.get("Items", [])]

    def list_campaigns(
        self,
        limit: int,
        after: str | None = None,
        name_prefix: str | None = None,
        keep: Callable[[CampaignSummary], bool] | None = None,
    ) -> CampaignPage:
        """Newest first: the cards from GSI1 (one partition, ``name_prefix`` a filter there), then
        their META by BatchGetItem; ``keep`` filters on status/counts. At most ``LIST_BUDGET`` cards
        are examined per call, so a page may hold fewer than ``limit`` with ``after`` still set."""
        index = keys.PROVIDER_INDEX
        found: list[CampaignSummary] = []
        examined = 0
        while len(found) < limit and examined < LIST_BUDGET:
            want = min(limit - len(found), LIST_BUDGET - examined)
            names = {"#pk": index.partition_key}
            values: dict[str, Any] = {":pk": keys.CAMPAIGN_LIST}
            condition = "#pk = :pk"
            if after is not None:
                names["#sk"] = index.sort_key
                values[":after"] = after
                condition += " AND #sk < :after"
            kwargs: dict[str, Any] = {
                "IndexName": index.name,
                "KeyConditionExpression": condition,
                "ScanIndexForward": False,
                "Limit": want,
            }
            if name_prefix:
                names["#name"] = "name"
                values[":prefix"] = name_prefix
                kwargs["FilterExpression"] = "begins_with(#name, :prefix)"
            result = self._call(
                self._table.query, ExpressionAttributeNames=names, ExpressionAttributeValues=values, **kwargs
            )
            examined += want
            cards = [plain(dict(i)) for i in result.get("Items", [])]
            metas = self._metas([str(c["campaign_id"]) for c in cards])
            for card in cards:
                meta = metas.get(str(card["campaign_id"]))
                if meta is None:  # the creation stopped between the card and META: not a campaign
                    continue
                summary = _summary(card, meta)
                if keep is None or keep(summary):
                    found.append(summary)
            last = result.get("LastEvaluatedKey")
            if not last:
                return CampaignPage(found, None)
            after = str(last[index.sort_key])
        return CampaignPage(found, after)

    def _metas(self, campaign_ids: list[str]) -> dict[str, dict[str, Any]]:
        """META of each campaign, by BatchGetItem (100 keys a call), eventually consistent."""
        metas: dict[str, dict[str, Any]] = {}
        for start in range(0, len(campaign_ids), 100):
            wanted = [keys.campaign_key(cid) for cid in campaign_ids[start : start + 100]]
            request: dict[str, Any] = {self._table.name: {"Keys": wanted}}
            while request:
                result = self._call(self._client.batch_get_item, RequestItems=request)
                for item in result.get("Responses", {}).get(self._table.name, []):
                    item = plain(dict(item))
                    metas[str(item[keys.PK]).removeprefix(keys.CAMPAIGN_PREFIX)] = item
                request = result.get("UnprocessedKeys") or {}
        return metas

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
        self.parked: dict[str, dict[str, ParkedBatch]] = {}
        self.roster_by_id: dict[str, dict[int, Roster]] = {}

    def put_campaign(self, campaign: Campaign) -> bool:
        with self._lock:
            self.meter.write()
            if campaign.campaign_id in self.by_id:
                return False
            self.by_id[campaign.campaign_id] = {
                "data": campaign.model_dump_json(),
                "card": _card(campaign),
                "status": campaign.status.value,
                "split_cursor": 0,
                "split_done": False,
                "resumes": 0,
                **{f"c_{name}": 0 for name in COUNTER_FIELDS},
            }
            return True

    def get_campaign(self, campaign_id: str) -> StoredCampaign | None:
        item = self.by_id.get(campaign_id)
        return campaign_from_item(item) if item else None

    def status_of(self, campaign_id: str) -> CampaignStatus | None:
        item = self.by_id.get(campaign_id)
        return CampaignStatus(item["status"]) if item else None

    def transition(
        self,
        campaign_id: str,
        move: Move,
        sets: Mapping[str, Any] | None = None,
        expect: Mapping[str, Any] | None = None,
    ) -> CampaignStatus:
        with self._lock:
            item = self.by_id.get(campaign_id)
            if item is None:
                raise UnknownCampaign(f"campaign {campaign_id} not found")
            current = CampaignStatus(item["status"])
            if current not in move.sources:
                raise _refused(move, item)
            if any(item.get(name) != value for name, value in (expect or {}).items()):
                raise TransitionNotAllowed(move.action, current, move.target)
            for name in sets or {}:
                if name not in STATE_FIELDS:
                    raise ValueError(f"a transition may not set {name!r}")
            self.meter.write()
            target = _target(move, bool(item["split_done"]))
            item["status"] = target.value
            for name, value in (sets or {}).items():
                if value is None:
                    item.pop(name, None)
                else:
                    item[name] = value
            return target

    def park_batch(self, campaign_id: str, key: str, lane: str, body: str) -> bool:
        with self._lock:
            item = self.by_id.get(campaign_id)
            if item is None or item["status"] != CampaignStatus.PAUSED.value:
                return False
            self.meter.write()
            self.parked.setdefault(campaign_id, {})[key] = ParkedBatch(key, lane, body)
            return True

    def parked_batches(self, campaign_id: str) -> list[ParkedBatch]:
        with self._lock:
            return list(self.parked.get(campaign_id, {}).values())

    def unpark(self, campaign_id: str, key: str) -> None:
        with self._lock:
            self.meter.write()
            self.parked.get(campaign_id, {}).pop(key, None)

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

    def put_roster(self, campaign_id: str, start: int, identities: list[str], suppressed: set[str]) -> None:
        with self._lock:
            self.meter.write()
            roster = Roster(start, list(identities), frozenset(suppressed))
            self.roster_by_id.setdefault(campaign_id, {})[start] = roster

    def rosters(self, campaign_id: str, start: int = 0, limit: int = 1) -> list[Roster]:
        with self._lock:
            found = self.roster_by_id.get(campaign_id, {})
            return [found[k] for k in sorted(found) if k >= start][:limit]

    def list_campaigns(
        self,
        limit: int,
        after: str | None = None,
        name_prefix: str | None = None,
        keep: Callable[[CampaignSummary], bool] | None = None,
    ) -> CampaignPage:
        sort_key = keys.PROVIDER_INDEX.sort_key
        with self._lock:
            cards = sorted((item["card"] for item in self.by_id.values()), key=lambda c: c[sort_key], reverse=True)
            metas = {cid: dict(item) for cid, item in self.by_id.items()}
        if after is not None:
            cards = [c for c in cards if c[sort_key] < after]
        found: list[CampaignSummary] = []
        examined = 0
        for card in cards:
            if len(found) == limit or examined == LIST_BUDGET:
                return CampaignPage(found, after)
            examined += 1
            after = card[sort_key]
            if name_prefix and not str(card["name"]).startswith(name_prefix):
                continue
            summary = _summary(card, metas[card["campaign_id"]])
            if keep is None or keep(summary):
                found.append(summary)
        return CampaignPage(found, None)

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
