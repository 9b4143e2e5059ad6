"""Message records: one per recipient; claims (a lease per send), outcomes, provider notifications,
and the optional provider-id index (GSI1)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from massmailer.models import MessageRecord, Status
from massmailer.store import keys
from massmailer.store.dynamo import Clock, DynamoRepository, conditional_failed, now_iso, plain
from massmailer.store.memory import InMemoryRepository, Meter

# States from which a recipient may (still) be claimed for sending.
CLAIMABLE = (Status.QUEUED.value, Status.RETRY_WAIT.value)
# States a bounce/complaint/delivery notification may move a record out of.
SENT_LIKE = (Status.SENT.value, Status.DELIVERED.value, Status.SOFT_BOUNCED.value, Status.SENDING.value)

_DESERIALIZE = TypeDeserializer()


@dataclass
class Claim:
    """The outcome of trying to claim a recipient for sending."""

    claimed: bool
    record: dict[str, Any] = field(default_factory=dict)  # the item after (claimed) or before (not)
    token: str = ""

    @property
    def status(self) -> str | None:
        return self.record.get("status")


class Messages(Protocol):
    def create_message(self, record: MessageRecord, payload: Mapping[str, Any]) -> bool: ...
    def get_message(self, message_id: str) -> dict[str, Any] | None: ...
    def get_messages(self, message_ids: list[str]) -> dict[str, dict[str, Any]]: ...
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
    def record_sent(
        self, message_id: str, token: str, provider: str, provider_message_id: str, *, maybe_sent: bool = False
    ) -> None: ...
    def record_maybe_sent(self, message_id: str, token: str, provider: str, error: str, until: float) -> bool: ...
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


class DynamoMessages(DynamoRepository):
    """``index_provider_ids``: also write SES's message id into the provider-id index (GSI1) when a
    send is recorded. Off by default: the index costs one more write request unit per email, and
    notifications find their record by the ``message_id`` tag or the ``X-MassMailer-Message``
    header instead; turn it on (``MM_INDEX_PROVIDER_IDS=1``) for SES identity notifications that
    carry neither.
    """

    def __init__(self, table: Any, clock: Clock = time.time, *, index_provider_ids: bool = False) -> None:
        super().__init__(table, clock)
        self._index_provider_ids = index_provider_ids

    def create_message(self, record: MessageRecord, payload: Mapping[str, Any]) -> bool:
        item = {
            **keys.message_key(record.message_id),
            **{k: v for k, v in record.model_dump(mode="json").items() if v is not None},
            "payload": json.dumps(payload, separators=(",", ":"), ensure_ascii=False),
        }
        return (
            self._conditional(self._table.put_item, Item=item, ConditionExpression="attribute_not_exists(PK)")
            is not None
        )

    def get_message(self, message_id: str) -> dict[str, Any] | None:
        item = self._call(self._table.get_item, Key=keys.message_key(message_id), ConsistentRead=True).get("Item")
        return plain(item) if item else None

    def get_messages(self, message_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The records that exist among ``message_ids``, by BatchGetItem (100 a call; eventually
        consistent, without the payload)."""
        found: dict[str, dict[str, Any]] = {}
        names = {f"#a{i}": name for i, name in enumerate(MessageRecord.model_fields)}
        for start in range(0, len(message_ids), 100):
            wanted = [keys.message_key(m) for m in dict.fromkeys(message_ids[start : start + 100])]
            request: dict[str, Any] = {
                self._table.name: {
                    "Keys": wanted,
                    "ProjectionExpression": ", ".join(names),
                    "ExpressionAttributeNames": names,
                }
            }
            while request:
                result = self._call(self._client.batch_get_item, RequestItems=request)
                for item in result.get("Responses", {}).get(self._table.name, []):
                    record = plain(dict(item))
                    found[str(record["message_id"])] = record
                request = result.get("UnprocessedKeys") or {}
        return found

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
            ":iso": now_iso(now),
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
                Key=keys.message_key(message_id),
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
            if conditional_failed(exc):
                # The client error carries the old item in DynamoDB's typed wire format.
                raw = exc.response.get("Item")
                old = {k: _DESERIALIZE.deserialize(v) for k, v in raw.items()} if raw else self.get_message(message_id)
                return Claim(claimed=False, record=plain(old or {}))
            raise
        return Claim(claimed=True, record=plain(result["Attributes"]), token=token)

    def record_sent(
        self, message_id: str, token: str, provider: str, provider_message_id: str, *, maybe_sent: bool = False
    ) -> None:
        """Record the provider's acceptance. The status moves SENDING → SENT only: when the provider's
        own Delivery/Bounce/Complaint notification got there first, its status stands and only the
        provider fields are written. ``maybe_sent``: the acceptance was not confirmed (flagged)."""
        now = self._clock()
        names: dict[str, str] = {}
        values: dict[str, Any] = {":p": provider, ":pmid": provider_message_id, ":iso": now_iso(now)}
        fields = "provider = :p, provider_message_id = :pmid, sent_at = :iso, updated_at = :iso"
        if maybe_sent:
            values[":maybe"] = True
            fields += ", maybe_sent = :maybe"
        if self._index_provider_ids:
            index = keys.PROVIDER_INDEX
            names = {"#g1pk": index.partition_key, "#g1sk": index.sort_key}
            values[":g1pk"] = keys.provider_index_key(provider_message_id)[index.partition_key]
            values[":g1sk"] = keys.provider_index_key(provider_message_id)[index.sort_key]
            fields += ", #g1pk = :g1pk, #g1sk = :g1sk"
        sent = self._conditional(
            self._table.update_item,
            Key=keys.message_key(message_id),
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
        if sent is None:
            self._call(
                self._table.update_item,
                Key=keys.message_key(message_id),
                UpdateExpression=f"SET {fields} REMOVE lease_until, claim_token",
                **({"ExpressionAttributeNames": names} if names else {}),
                ExpressionAttributeValues=values,
            )

    def record_maybe_sent(self, message_id: str, token: str, provider: str, error: str, until: float) -> bool:
        """The provider's answer was lost: the record stays SENDING (so SES's Send/Delivery/Bounce
        event settles it as usual), flagged ``maybe_sent``, its lease held ``until`` the window ends.
        Conditional on our claim; False when the claim was lost."""
        now = self._clock()
        return (
            self._conditional(
                self._table.update_item,
                Key=keys.message_key(message_id),
                UpdateExpression=(
                    "SET maybe_sent = :maybe, lease_until = :until, provider = :p, last_error = :e, updated_at = :iso"
                ),
                ConditionExpression="#s = :sending AND claim_token = :tok",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":maybe": True,
                    ":until": Decimal(str(round(until, 3))),
                    ":p": provider,
                    ":e": error,
                    ":iso": now_iso(now),
                    ":sending": Status.SENDING.value,
                    ":tok": token,
                },
            )
            is not None
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
        values: dict[str, Any] = {":s": status.value, ":iso": now_iso(now), ":e": error}
        sets = ["#s = :s", "updated_at = :iso", "last_error = :e"]
        for i, (k, v) in enumerate((extra or {}).items()):
            names[f"#x{i}"] = k
            values[f":x{i}"] = v
            sets.append(f"#x{i} = :x{i}")
        kwargs: dict[str, Any] = {}
        if condition_token is not None:
            kwargs["ConditionExpression"] = "claim_token = :tok"
            values[":tok"] = condition_token
        self._conditional(
            self._table.update_item,
            Key=keys.message_key(message_id),
            UpdateExpression="SET " + ", ".join(sets) + " REMOVE lease_until, claim_token",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            **kwargs,
        )

    def find_by_provider_id(self, provider_message_id: str) -> dict[str, Any] | None:
        index = keys.PROVIDER_INDEX
        result = self._call(
            self._table.query,
            IndexName=index.name,
            KeyConditionExpression="#pk = :pk",
            ExpressionAttributeNames={"#pk": index.partition_key},
            ExpressionAttributeValues={":pk": keys.provider_index_key(provider_message_id)[index.partition_key]},
            Limit=1,
        )
        items = result.get("Items") or []
        return plain(items[0]) if items else None

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
        values: dict[str, Any] = {":iso": now_iso(self._clock()), ":d": detail}
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
            names = {"#pk": keys.PK}
            condition = "attribute_exists(#pk)"
        if allowed:
            placeholders = []
            for i, state in enumerate(allowed):
                values[f":a{i}"] = state
                placeholders.append(f":a{i}")
            condition += f" AND #s IN ({', '.join(placeholders)})"
        return (
            self._conditional(
                self._table.update_item,
                Key=keys.message_key(message_id),
                UpdateExpression=expr,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
            is not None
        )


class InMemoryMessages(InMemoryRepository):
    def __init__(
        self, clock: Clock = time.time, meter: Meter | None = None, *, index_provider_ids: bool = False
    ) -> None:
        super().__init__(clock, meter)
        self._index_provider_ids = index_provider_ids  # as DynamoMessages: GSI1 written only when on
        self.by_id: dict[str, dict[str, Any]] = {}
        self.provider_index: dict[str, str] = {}  # SES message id → our message id (GSI1)
        self._tokens = 0

    def create_message(self, record: MessageRecord, payload: Mapping[str, Any]) -> bool:
        with self._lock:
            self.meter.write()
            if record.message_id in self.by_id:
                return False
            self.by_id[record.message_id] = {
                **{k: v for k, v in record.model_dump(mode="json").items() if v is not None},
                "payload": json.dumps(payload),
            }
            return True

    def get_message(self, message_id: str) -> dict[str, Any] | None:
        item = self.by_id.get(message_id)
        return dict(item) if item else None

    def get_messages(self, message_ids: list[str]) -> dict[str, dict[str, Any]]:
        fields = MessageRecord.model_fields
        with self._lock:
            return {m: {k: v for k, v in self.by_id[m].items() if k in fields} for m in message_ids if m in self.by_id}

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
            self.meter.write()
            item = self.by_id.get(message_id)
            if item is not None:
                status = item.get("status")
                expired = status == Status.SENDING.value and item.get("lease_until", 0) < now
                if status not in CLAIMABLE and not expired:
                    return Claim(claimed=False, record=dict(item))
            else:
                item = self.by_id[message_id] = {"message_id": message_id, "created_at": now}
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

    def record_sent(
        self, message_id: str, token: str, provider: str, provider_message_id: str, *, maybe_sent: bool = False
    ) -> None:
        with self._lock:
            self.meter.write()
            item = self.by_id[message_id]
            if item.get("status") == Status.SENDING.value:  # a notification that got there first stands
                item.update(status=Status.SENT.value, last_error=None)
            if maybe_sent:
                item["maybe_sent"] = True
            item.update(provider=provider, provider_message_id=provider_message_id, sent_at=self._clock())
            if self._index_provider_ids:
                self.provider_index[provider_message_id] = message_id
            item.pop("lease_until", None)
            item.pop("claim_token", None)

    def record_maybe_sent(self, message_id: str, token: str, provider: str, error: str, until: float) -> bool:
        with self._lock:
            self.meter.write()
            item = self.by_id.get(message_id)
            if item is None or item.get("status") != Status.SENDING.value or item.get("claim_token") != token:
                return False
            item.update(
                maybe_sent=True, lease_until=until, provider=provider, last_error=error, updated_at=self._clock()
            )
            return True

    def record_retry(self, message_id: str, token: str, error: str) -> None:
        with self._lock:
            self.meter.write()
            item = self.by_id[message_id]
            if item.get("claim_token") != token:
                return
            item.update(status=Status.RETRY_WAIT.value, last_error=error)
            item.pop("lease_until", None)
            item.pop("claim_token", None)

    def record_failed(self, message_id: str, status: Status, error: str, **details: Any) -> None:
        with self._lock:
            self.meter.write()
            item = self.by_id.setdefault(message_id, {"message_id": message_id})
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
            self.meter.write()
            item = self.by_id.get(message_id)
            if item is None or (allowed and item.get("status") not in allowed):
                return False
            if status is not None:
                item["status"] = status.value
            item["event_detail"] = detail
            if increment:
                item[increment] = item.get(increment, 0) + 1
            return True
