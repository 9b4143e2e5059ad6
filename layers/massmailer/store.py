"""The job table: campaigns, per-recipient message records, suppression list, idempotency keys.

``Store`` is the port the domain talks to; ``DynamoStore`` is the DynamoDB single-table adapter and
``massmailer.memory.InMemoryStore`` the in-memory one used by unit tests and benchmarks. Both keep
the same contract, which ``tests/integration/test_store_contract.py`` checks against each.

Key shapes (the table's keys and index names come from ``massmailer.spec.JOB_TABLE``):

=====================  ====================  ======  ==========================================
item                   PK                    SK      notes
=====================  ====================  ======  ==========================================
campaign               CAMPAIGN#<id>         META    status, counters (c_*), split cursor (<1 KiB)
campaign content       CAMPAIGN#<id>         CONTENT the campaign document (templates, options)
message record         MSG#<message_id>      MSG     status, attempts, lease; GSI1PK=PMID#<id> (opt-in)
suppression            SUPP#<address key>    SUPP    reason, details
idempotency key        IDEMP#<key>           IDEMP   request hash + stored response, TTL 24 h
processed SES event    EVT#<digest>          EVT     de-duplicates notifications, TTL 30 days
counted queue message  COUNTED#<message id>  COUNTED a sender batch's counts were added, TTL 14 days
=====================  ====================  ======  ==========================================
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from massmailer.addresses import address_key
from massmailer.models import Campaign, CampaignCounts, CampaignStatus, MessageRecord, Status
from massmailer.spec import JOB_TABLE

IDEMPOTENCY_TTL_SECONDS = 24 * 3600
EVENT_TTL_SECONDS = 30 * 24 * 3600
COUNTED_TTL_SECONDS = 14 * 24 * 3600  # SQS keeps a message at most 14 days: no redelivery after that
COUNTER_FIELDS = tuple(CampaignCounts.model_fields)
# States from which a recipient may (still) be claimed for sending.
CLAIMABLE = (Status.QUEUED.value, Status.RETRY_WAIT.value)
# States a bounce/complaint/delivery notification may move a record out of.
SENT_LIKE = (Status.SENT.value, Status.DELIVERED.value, Status.SOFT_BOUNCED.value, Status.SENDING.value)


class StoreUnavailable(Exception):
    """The store cannot be reached or refused the request: stop the job and record why."""


def campaign_key(campaign_id: str) -> dict[str, str]:
    return {JOB_TABLE.partition_key: f"CAMPAIGN#{campaign_id}", JOB_TABLE.sort_key: "META"}


def campaign_content_key(campaign_id: str) -> dict[str, str]:
    """The campaign's document, apart from META: every counter update writes META, and DynamoDB
    bills a write per KiB of the whole item, so the templates must not ride along (3 WRU → 1)."""
    return {JOB_TABLE.partition_key: f"CAMPAIGN#{campaign_id}", JOB_TABLE.sort_key: "CONTENT"}


def message_key(message_id: str) -> dict[str, str]:
    return {JOB_TABLE.partition_key: f"MSG#{message_id}", JOB_TABLE.sort_key: "MSG"}


def suppression_key(address: str) -> dict[str, str]:
    return {JOB_TABLE.partition_key: f"SUPP#{address_key(address)}", JOB_TABLE.sort_key: "SUPP"}


def idempotency_key(key: str) -> dict[str, str]:
    return {JOB_TABLE.partition_key: f"IDEMP#{key}", JOB_TABLE.sort_key: "IDEMP"}


def counted_key(delivery: str) -> dict[str, str]:
    return {JOB_TABLE.partition_key: f"COUNTED#{delivery}", JOB_TABLE.sort_key: "COUNTED"}


def event_key(digest: str) -> dict[str, str]:
    return {JOB_TABLE.partition_key: f"EVT#{digest}", JOB_TABLE.sort_key: "EVT"}


def provider_index_key(provider_message_id: str) -> dict[str, str]:
    index = JOB_TABLE.indexes[0]
    return {index.partition_key: f"PMID#{provider_message_id}", index.sort_key: "MSG"}


def _now_iso(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).isoformat()


@dataclass
class Claim:
    """The outcome of trying to claim a recipient for sending."""

    claimed: bool
    record: dict[str, Any] = field(default_factory=dict)  # the item after (claimed) or before (not)
    token: str = ""

    @property
    def status(self) -> str | None:
        return self.record.get("status")


@dataclass
class StoredCampaign:
    campaign: Campaign
    counts: CampaignCounts
    split_cursor: int = 0
    split_done: bool = False


@dataclass
class Outcome:
    """How one recipient ended in this invocation, for the campaign counters."""

    message_id: str
    status: str
    retried: bool = False


class Store(Protocol):
    def put_campaign(self, campaign: Campaign) -> None: ...
    def get_campaign(self, campaign_id: str) -> StoredCampaign | None: ...
    def set_campaign_status(self, campaign_id: str, status: CampaignStatus, error: str | None = None) -> None: ...
    def add_campaign_counts(self, campaign_id: str, deltas: Mapping[str, int]) -> None: ...
    def count_batch(self, campaign_id: str, delivery: str, deltas: Mapping[str, int]) -> bool: ...
    def was_counted(self, delivery: str) -> bool: ...
    def advance_split(
        self, campaign_id: str, expected_cursor: int, new_cursor: int, deltas: Mapping[str, int], done: bool
    ) -> bool: ...
    def create_message(self, record: MessageRecord, payload: Mapping[str, Any]) -> bool: ...
    def get_message(self, message_id: str) -> dict[str, Any] | None: ...
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
    ) -> Claim: ...
    def record_sent(self, message_id: str, token: str, provider: str, provider_message_id: str) -> None: ...
    def record_retry(self, message_id: str, token: str, error: str) -> None: ...
    def record_failed(self, message_id: str, status: Status, error: str, **details: Any) -> None: ...
    def find_by_provider_id(self, provider_message_id: str) -> dict[str, Any] | None: ...
    def apply_notification(
        self,
        message_id: str,
        status: Status | None,
        detail: str,
        allowed_from: Iterable[str],
        increment: str | None = None,
    ) -> bool: ...
    def suppressed_among(self, addresses: Iterable[str]) -> set[str]: ...
    def suppress(self, address: str, reason: str, details: Mapping[str, Any] | None = None) -> bool: ...
    def is_suppressed(self, address: str) -> bool: ...
    def remember_event(self, digest: str) -> bool: ...
    def recall_request(self, key: str) -> dict[str, Any] | None: ...
    def remember_request(self, key: str, request_hash: str, response: Mapping[str, Any]) -> dict[str, Any] | None: ...


_DESERIALIZE = TypeDeserializer()
CONFLICT_TRIES = 8  # a refused write on a transaction's item is tried again this many times in all


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _cancelled_for(exc: ClientError, reason: str) -> bool:
    """A cancelled transaction one of whose items failed for ``reason``."""
    if _code(exc) != "TransactionCanceledException":
        return False
    return reason in {r.get("Code") for r in exc.response.get("CancellationReasons") or []}


def _counter_adds(deltas: Mapping[str, int]) -> tuple[str, dict[str, str], dict[str, int]]:
    """``ADD`` clause, names and values that add the non-zero ``deltas`` to the c_* counters."""
    deltas = {k: v for k, v in deltas.items() if v}
    names = {f"#c{i}": f"c_{k}" for i, k in enumerate(deltas)}
    values = {f":c{i}": v for i, v in enumerate(deltas.values())}
    clause = "ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(deltas))) if deltas else ""
    return clause, names, values


def _conflict_pause(attempt: int) -> None:
    """Jittered exponential pause between tries of a write refused by a concurrent transaction."""
    time.sleep(min(0.01 * 2**attempt, 0.5) * (0.5 + random.random()))


def _plain(value: Any) -> Any:
    """DynamoDB's Decimals back to ints/floats."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def campaign_from_item(item: Mapping[str, Any]) -> StoredCampaign:
    item = _plain(dict(item))
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


class DynamoStore:
    """The single-table DynamoDB adapter. ``table`` is a boto3 ``Table`` resource.

    ``index_provider_ids``: also write SES's message id into the provider-id index (GSI1) when a
    send is recorded. Off by default: the index costs one more write request unit per email, and
    notifications find their record by the ``message_id`` tag or the ``X-MassMailer-Message``
    header instead; turn it on (``MM_INDEX_PROVIDER_IDS=1``) for SES identity notifications that
    carry neither.
    """

    def __init__(self, table: Any, clock: Any = time.time, *, index_provider_ids: bool = False) -> None:
        self._table = table
        self._clock = clock
        self._client = table.meta.client
        self._index_provider_ids = index_provider_ids

    # -- helpers --------------------------------------------------------------------------------
    def _call(self, fn: Any, **kwargs: Any) -> Any:
        for attempt in range(1, CONFLICT_TRIES + 1):
            try:
                return fn(**kwargs)
            except ClientError as exc:
                if self._conditional_failed(exc):
                    raise
                conflict = _code(exc) == "TransactionConflictException" or _cancelled_for(exc, "TransactionConflict")
                if conflict and attempt < CONFLICT_TRIES:
                    # A write to an item a transaction holds (the campaign's counters, see
                    # count_batch), or a transaction meeting another, is refused, not queued, and
                    # botocore does not retry it.
                    _conflict_pause(attempt)
                    continue
                raise StoreUnavailable(f"{getattr(fn, '__name__', 'call')}: {exc}") from exc
            except Exception as exc:  # endpoint unreachable, timeouts
                raise StoreUnavailable(f"{getattr(fn, '__name__', 'call')}: {exc}") from exc
        raise StoreUnavailable("unreachable")  # pragma: no cover (the last try raises)

    @staticmethod
    def _conditional_failed(exc: ClientError) -> bool:
        return _code(exc) == "ConditionalCheckFailedException" or _cancelled_for(exc, "ConditionalCheckFailed")

    # -- campaigns ------------------------------------------------------------------------------
    def put_campaign(self, campaign: Campaign) -> None:
        # The content first: META is what makes the campaign exist (counters require it).
        content = {**campaign_content_key(campaign.campaign_id), "data": campaign.model_dump_json()}
        self._call(self._table.put_item, Item=content)
        item = {
            **campaign_key(campaign.campaign_id),
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
        pk = JOB_TABLE.partition_key
        result = self._call(
            self._table.query,
            KeyConditionExpression="#pk = :pk",
            ExpressionAttributeNames={"#pk": pk},
            ExpressionAttributeValues={":pk": campaign_key(campaign_id)[pk]},
            ConsistentRead=True,
        )
        items = {item[JOB_TABLE.sort_key]: item for item in result.get("Items", [])}
        if "META" not in items or "CONTENT" not in items:
            return None
        return campaign_from_item({**items["CONTENT"], **items["META"]})

    def set_campaign_status(self, campaign_id: str, status: CampaignStatus, error: str | None = None) -> None:
        names = {"#s": "status"}
        values: dict[str, Any] = {":s": status.value}
        expr = "SET #s = :s"
        if error is not None:
            expr += ", last_error = :e"
            values[":e"] = error
        self._call(
            self._table.update_item,
            Key=campaign_key(campaign_id),
            UpdateExpression=expr,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def add_campaign_counts(self, campaign_id: str, deltas: Mapping[str, int]) -> None:
        expr, names, values = _counter_adds(deltas)
        if not expr:
            return
        try:
            self._call(
                self._table.update_item,
                Key=campaign_key(campaign_id),
                UpdateExpression=expr,
                ConditionExpression="attribute_exists(PK)",  # never create a stray counter-only item
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if not self._conditional_failed(exc):
                raise

    def was_counted(self, delivery: str) -> bool:
        """Has this queue message been counted (so it was processed to the end)?"""
        return "Item" in self._call(
            self._table.get_item, Key=counted_key(delivery), ConsistentRead=True, ProjectionExpression="PK"
        )

    def count_batch(self, campaign_id: str, delivery: str, deltas: Mapping[str, int]) -> bool:
        """Add one queue message's counts exactly once, however often it is delivered: a marker for
        the message and the counters move in one transaction. False when it was counted before."""
        expr, names, values = _counter_adds(deltas)
        if not expr:
            return True
        # The table resource's client takes (and returns) plain Python values, as the resource does.
        marker = {**counted_key(delivery), "expires_at": int(self._clock()) + COUNTED_TTL_SECONDS}
        items = [
            {"Put": {"TableName": self._table.name, "Item": marker, "ConditionExpression": "attribute_not_exists(PK)"}},
            {
                "Update": {
                    "TableName": self._table.name,
                    "Key": campaign_key(campaign_id),
                    "UpdateExpression": expr,
                    "ConditionExpression": "attribute_exists(PK)",
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": values,
                }
            },
        ]
        try:
            self._call(self._client.transact_write_items, TransactItems=items)
        except ClientError as exc:
            if self._conditional_failed(exc):
                return False  # counted before (or the campaign is gone): nothing to add
            raise
        return True

    def advance_split(
        self, campaign_id: str, expected_cursor: int, new_cursor: int, deltas: Mapping[str, int], done: bool
    ) -> bool:
        """Move the split checkpoint and its counters in one conditional write (exactly once)."""
        adds, counter_names, counter_values = _counter_adds(deltas)
        names = {"#cur": "split_cursor", "#done": "split_done", **counter_names}
        values: dict[str, Any] = {":expected": expected_cursor, ":new": new_cursor, ":done": done, **counter_values}
        expr = f"SET #cur = :new, #done = :done {adds}".rstrip()
        try:
            self._call(
                self._table.update_item,
                Key=campaign_key(campaign_id),
                UpdateExpression=expr,
                ConditionExpression="#cur = :expected",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if self._conditional_failed(exc):
                return False
            raise
        return True

    # -- message records ------------------------------------------------------------------------
    def create_message(self, record: MessageRecord, payload: Mapping[str, Any]) -> bool:
        item = {
            **message_key(record.message_id),
            **{k: v for k, v in record.model_dump(mode="json").items() if v is not None},
            "payload": json.dumps(payload, separators=(",", ":")),
        }
        try:
            self._call(self._table.put_item, Item=item, ConditionExpression="attribute_not_exists(PK)")
        except ClientError as exc:
            if self._conditional_failed(exc):
                return False
            raise
        return True

    def get_message(self, message_id: str) -> dict[str, Any] | None:
        item = self._call(self._table.get_item, Key=message_key(message_id), ConsistentRead=True).get("Item")
        return _plain(item) if item else None

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
        """Claim the recipient for one send (a conditional write). ``delivery``: the queue message
        the claim is made for, kept on the record so that a redelivery of that same message can tell
        the recipients its interrupted first attempt finished (and never counted)."""
        now = self._clock()
        token = uuid.uuid4().hex  # unique per claim, so a stale holder can never act on a new claim
        names = {"#s": "status"}
        values: dict[str, Any] = {
            ":sending": Status.SENDING.value,
            ":lease": Decimal(str(round(now + lease_seconds, 3))),
            ":now": Decimal(str(round(now, 3))),
            ":token": token,
            ":attempts": attempt + 1,
            ":email": email,
            ":lane": lane,
            ":mid": message_id,
            ":iso": _now_iso(now),
            ":q": CLAIMABLE[0],
            ":r": CLAIMABLE[1],
        }
        expr = (
            "SET #s = :sending, lease_until = :lease, claim_token = :token, attempts = :attempts, "
            "email = :email, lane = :lane, message_id = :mid, updated_at = :iso, "
            "created_at = if_not_exists(created_at, :iso)"
        )
        if campaign_id:
            expr += ", campaign_id = :cid"
            values[":cid"] = campaign_id
        if delivery:
            expr += ", delivery = :delivery"
            values[":delivery"] = delivery
        try:
            result = self._call(
                self._table.update_item,
                Key=message_key(message_id),
                UpdateExpression=expr,
                ConditionExpression=(
                    "attribute_not_exists(PK) OR #s IN (:q, :r) OR (#s = :sending AND lease_until < :now)"
                ),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if self._conditional_failed(exc):
                # The client error carries the old item in DynamoDB's typed wire format.
                raw = exc.response.get("Item")
                old = {k: _DESERIALIZE.deserialize(v) for k, v in raw.items()} if raw else self.get_message(message_id)
                return Claim(claimed=False, record=_plain(old or {}))
            raise
        return Claim(claimed=True, record=_plain(result["Attributes"]), token=token)

    def record_sent(self, message_id: str, token: str, provider: str, provider_message_id: str) -> None:
        """Record the provider's acceptance. The status moves SENDING → SENT only: when the provider's
        own Delivery/Bounce/Complaint notification got there first, its status stands and only the
        provider fields are written."""
        now = self._clock()
        names: dict[str, str] = {}
        values: dict[str, Any] = {":p": provider, ":pmid": provider_message_id, ":iso": _now_iso(now)}
        fields = "provider = :p, provider_message_id = :pmid, sent_at = :iso, updated_at = :iso"
        if self._index_provider_ids:
            index = JOB_TABLE.indexes[0]
            names = {"#g1pk": index.partition_key, "#g1sk": index.sort_key}
            values[":g1pk"] = provider_index_key(provider_message_id)[index.partition_key]
            values[":g1sk"] = provider_index_key(provider_message_id)[index.sort_key]
            fields += ", #g1pk = :g1pk, #g1sk = :g1sk"
        try:
            self._call(
                self._table.update_item,
                Key=message_key(message_id),
                UpdateExpression=f"SET #s = :sent, {fields}, last_error = :none REMOVE lease_until, claim_token",
                ConditionExpression="#s = :sending",
                ExpressionAttributeNames={**names, "#s": "status"},
                ExpressionAttributeValues={
                    **values,
                    ":sent": Status.SENT.value,
                    ":sending": Status.SENDING.value,
                    ":none": None,
                },
            )
        except ClientError as exc:
            if not self._conditional_failed(exc):
                raise
            self._call(
                self._table.update_item,
                Key=message_key(message_id),
                UpdateExpression=f"SET {fields} REMOVE lease_until, claim_token",
                **({"ExpressionAttributeNames": names} if names else {}),
                ExpressionAttributeValues=values,
            )

    def record_retry(self, message_id: str, token: str, error: str) -> None:
        self._update_status(message_id, Status.RETRY_WAIT, error, condition_token=token)

    def record_failed(self, message_id: str, status: Status, error: str, **details: Any) -> None:
        self._update_status(message_id, status, error, extra=details)

    def _update_status(
        self,
        message_id: str,
        status: Status,
        error: str | None,
        condition_token: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        now = self._clock()
        names = {"#s": "status"}
        values: dict[str, Any] = {":s": status.value, ":iso": _now_iso(now), ":e": error}
        sets = ["#s = :s", "updated_at = :iso", "last_error = :e"]
        for i, (k, v) in enumerate((extra or {}).items()):
            names[f"#x{i}"] = k
            values[f":x{i}"] = v
            sets.append(f"#x{i} = :x{i}")
        kwargs: dict[str, Any] = {}
        if condition_token is not None:
            kwargs["ConditionExpression"] = "claim_token = :tok"
            values[":tok"] = condition_token
        try:
            self._call(
                self._table.update_item,
                Key=message_key(message_id),
                UpdateExpression="SET " + ", ".join(sets) + " REMOVE lease_until, claim_token",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                **kwargs,
            )
        except ClientError as exc:
            if not self._conditional_failed(exc):
                raise

    def find_by_provider_id(self, provider_message_id: str) -> dict[str, Any] | None:
        index = JOB_TABLE.indexes[0]
        result = self._call(
            self._table.query,
            IndexName=index.name,
            KeyConditionExpression="#pk = :pk",
            ExpressionAttributeNames={"#pk": index.partition_key},
            ExpressionAttributeValues={":pk": f"PMID#{provider_message_id}"},
            Limit=1,
        )
        items = result.get("Items") or []
        return _plain(items[0]) if items else None

    def apply_notification(
        self,
        message_id: str,
        status: Status | None,
        detail: str,
        allowed_from: Iterable[str],
        increment: str | None = None,
    ) -> bool:
        """Apply a provider notification to a message record.

        Moves the record to ``status`` (None: leave it) if its current status is one of
        ``allowed_from`` (empty: any), stores ``detail``, and adds 1 to the numeric attribute
        ``increment`` (e.g. ``soft_bounces``, ``opens``). Returns False when the record does not
        exist or is not in an allowed state.
        """
        allowed = list(allowed_from)
        names: dict[str, str] = {"#s": "status"} if (status is not None or allowed) else {}
        values: dict[str, Any] = {":iso": _now_iso(self._clock()), ":d": detail}
        sets = ["updated_at = :iso", "event_detail = :d"]
        if status is not None:
            sets.append("#s = :s")
            values[":s"] = status.value
        expr = "SET " + ", ".join(sets)
        if increment:
            names["#inc"] = increment
            values[":one"] = 1
            expr += " ADD #inc :one"
        condition = "attribute_exists(PK)"
        if not names:
            names = {"#pk": JOB_TABLE.partition_key}
            condition = "attribute_exists(#pk)"
        if allowed:
            placeholders = []
            for i, state in enumerate(allowed):
                values[f":a{i}"] = state
                placeholders.append(f":a{i}")
            condition += f" AND #s IN ({', '.join(placeholders)})"
        try:
            self._call(
                self._table.update_item,
                Key=message_key(message_id),
                UpdateExpression=expr,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if self._conditional_failed(exc):
                return False
            raise
        return True

    # -- suppression list ------------------------------------------------------------------------
    def suppressed_among(self, addresses: Iterable[str]) -> set[str]:
        wanted = {address_key(a) for a in addresses}
        found: set[str] = set()
        keys = [suppression_key(a) for a in wanted]
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {
                self._table.name: {"Keys": keys[start : start + 100], "ProjectionExpression": "PK"}
            }
            while request:
                result = self._call(self._client.batch_get_item, RequestItems=request)
                for item in result.get("Responses", {}).get(self._table.name, []):
                    pk = item["PK"]["S"] if isinstance(item["PK"], dict) else item["PK"]
                    found.add(pk.removeprefix("SUPP#"))
                request = result.get("UnprocessedKeys") or {}
        return found

    def is_suppressed(self, address: str) -> bool:
        return bool(self.suppressed_among([address]))

    def suppress(self, address: str, reason: str, details: Mapping[str, Any] | None = None) -> bool:
        item = {
            **suppression_key(address),
            "kind": "suppression",
            "reason": reason,
            "details": json.dumps(dict(details or {}), default=str),
            "created_at": _now_iso(self._clock()),
        }
        try:
            self._call(self._table.put_item, Item=item, ConditionExpression="attribute_not_exists(PK)")
        except ClientError as exc:
            if self._conditional_failed(exc):
                return False
            raise
        return True

    # -- shared state for rate limits and circuit breakers (massmailer.resilience) ----------------
    def take_tokens(self, key: str, window: int, amount: int, limit: int, ttl: int) -> bool:
        """Add ``amount`` to the window's use if it stays within ``limit``; one conditional write."""
        if amount > limit:
            return False
        try:
            self._call(
                self._table.update_item,
                Key={JOB_TABLE.partition_key: key, JOB_TABLE.sort_key: f"W#{window}"},
                UpdateExpression="ADD used :k SET expires_at = :ttl",
                ConditionExpression="attribute_not_exists(used) OR used <= :max",
                ExpressionAttributeValues={":k": amount, ":max": limit - amount, ":ttl": window + ttl},
            )
        except ClientError as exc:
            if self._conditional_failed(exc):
                return False
            raise
        return True

    def add_window_count(self, key: str, window: int, ttl: int) -> int:
        result = self._call(
            self._table.update_item,
            Key={JOB_TABLE.partition_key: key, JOB_TABLE.sort_key: f"W#{window}"},
            UpdateExpression="ADD n :one SET expires_at = :ttl",
            ExpressionAttributeValues={":one": 1, ":ttl": int(self._clock()) + ttl},
            ReturnValues="UPDATED_NEW",
        )
        return int(result["Attributes"]["n"])

    def get_state(self, key: str) -> dict[str, Any]:
        item = self._call(
            self._table.get_item, Key={JOB_TABLE.partition_key: key, JOB_TABLE.sort_key: "STATE"}, ConsistentRead=True
        ).get("Item")
        if not item:
            return {}
        return {k: v for k, v in _plain(item).items() if k not in (JOB_TABLE.partition_key, JOB_TABLE.sort_key)}

    def put_state(self, key: str, values: Mapping[str, Any], expect: Mapping[str, Any] | None = None) -> bool:
        """Replace a state item if its version is still ``expect["version"]`` (optimistic locking)."""
        version = int((expect or {}).get("version", 0))
        item = {
            JOB_TABLE.partition_key: key,
            JOB_TABLE.sort_key: "STATE",
            **{k: (Decimal(str(v)) if isinstance(v, float) else v) for k, v in values.items() if k != "version"},
            "version": version + 1,
        }
        condition = "attribute_not_exists(PK) OR version = :v" if version == 0 else "version = :v"
        try:
            self._call(
                self._table.put_item,
                Item=item,
                ConditionExpression=condition,
                ExpressionAttributeValues={":v": version},
            )
        except ClientError as exc:
            if self._conditional_failed(exc):
                return False
            raise
        return True

    # -- de-duplication of notifications and API retries ------------------------------------------
    def remember_event(self, digest: str) -> bool:
        """Record a processed notification; False when it had been processed already."""
        now = self._clock()
        try:
            self._call(
                self._table.put_item,
                Item={**event_key(digest), "expires_at": int(now + EVENT_TTL_SECONDS)},
                ConditionExpression="attribute_not_exists(PK)",
            )
        except ClientError as exc:
            if self._conditional_failed(exc):
                return False
            raise
        return True

    def recall_request(self, key: str) -> dict[str, Any] | None:
        item = self._call(self._table.get_item, Key=idempotency_key(key), ConsistentRead=True).get("Item")
        if not item or int(item.get("expires_at", 0)) < self._clock():
            return None
        return {"request_hash": item["request_hash"], "response": json.loads(item["response"])}

    def remember_request(self, key: str, request_hash: str, response: Mapping[str, Any]) -> dict[str, Any] | None:
        """Store the response for an idempotency key. Returns the earlier entry if one exists."""
        now = self._clock()
        item = {
            **idempotency_key(key),
            "request_hash": request_hash,
            "response": json.dumps(response),
            "expires_at": int(now + IDEMPOTENCY_TTL_SECONDS),
        }
        try:
            self._call(
                self._table.put_item,
                Item=item,
                ConditionExpression="attribute_not_exists(PK) OR expires_at < :now",
                ExpressionAttributeValues={":now": int(now)},
            )
        except ClientError as exc:
            if self._conditional_failed(exc):
                return self.recall_request(key)
            raise
        return None
