"""Idempotency keys, as the IETF draft "The Idempotency-Key HTTP Header Field" describes them.

A request with a key first *records* it, with one conditional write: state IN_FLIGHT, the request's
hash, the ids its work will use (chosen at random by the caller, stored here) and a short lease.
What another request with the same key then finds decides its answer (``KeyClaim.outcome``):

* ``claimed``: the key was free (never used, or expired — DynamoDB's TTL deletes lazily, so the
  condition compares ``expires_at`` itself): do the work with the ids given, then ``finish``;
* ``taken_over``: the same request was in flight but its lease ran out (the first attempt crashed or
  gave up): do the work again with the *stored* ids — every write the work makes is conditional, so
  finishing the same work twice does it once;
* ``in_flight``: the same request is being worked on (409 with ``Retry-After``);
* ``mismatch``: the key was used with a different request (422);
* ``finished``: the first response, with its status code, to replay.

A finished key lives 24 h (``expires_at``, the table's TTL attribute); after that a request with the
same key is new and gets new ids.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from botocore.exceptions import ClientError

from massmailer.store import keys
from massmailer.store.dynamo import Clock, DynamoRepository, conditional_failed
from massmailer.store.memory import InMemoryRepository, Meter

IDEMPOTENCY_TTL_SECONDS = 24 * 3600
IDEMPOTENCY_LEASE_SECONDS = 60  # an in-flight key older than this may be taken over (a crashed request)

IN_FLIGHT = "IN_FLIGHT"
FINISHED = "FINISHED"

Outcome = Literal["claimed", "taken_over", "in_flight", "mismatch", "finished"]


@dataclass(frozen=True)
class KeyClaim:
    outcome: Outcome
    ids: dict[str, str] = field(default_factory=dict)  # claimed / taken_over: the ids to work with
    token: str = ""  # claimed / taken_over: proves the lease to ``finish`` and ``release``
    status_code: int = 0  # finished: the first response's status code
    response: dict[str, Any] | None = None  # finished: the first response's body
    retry_after: int = 0  # in_flight: seconds until the lease runs out

    @property
    def mine(self) -> bool:
        return self.outcome in ("claimed", "taken_over")


class IdempotencyKeys(Protocol):
    def begin(self, key: str, request_hash: str, ids: Mapping[str, str]) -> KeyClaim: ...
    def finish(self, key: str, token: str, status_code: int, response: Mapping[str, Any]) -> bool: ...
    def release(self, key: str, token: str) -> None: ...
    def forget(self, key: str, token: str) -> None: ...


def _judge(entry: Mapping[str, Any], request_hash: str, now: float) -> KeyClaim | None:
    """What an unexpired entry means for a request with ``request_hash`` (None: its lease ran out,
    take it over)."""
    if entry["request_hash"] != request_hash:
        return KeyClaim("mismatch")
    if entry["state"] == FINISHED:
        return KeyClaim("finished", status_code=int(entry["status_code"]), response=entry["response"])
    lease_until = float(entry["lease_until"])
    if lease_until > now:
        return KeyClaim("in_flight", retry_after=max(1, math.ceil(lease_until - now)))
    return None


class DynamoIdempotencyKeys(DynamoRepository):
    def _entry(self, item: Mapping[str, Any]) -> dict[str, Any]:
        def text(name: str) -> str:
            value = item.get(name)
            return str(value["S"] if isinstance(value, dict) else value) if value is not None else ""

        def number(name: str) -> float:
            value = item.get(name)
            return float(value["N"] if isinstance(value, dict) else value) if value is not None else 0.0

        response = text("response")
        return {
            "request_hash": text("request_hash"),
            "state": text("state"),
            "lease_until": number("lease_until"),
            "expires_at": number("expires_at"),
            "status_code": int(number("status_code")),
            "response": json.loads(response) if response else None,
            "ids": json.loads(text("ids") or "{}"),
        }

    def _found(self, key: str) -> dict[str, Any] | None:
        item = self._call(self._table.get_item, Key=keys.idempotency_key(key), ConsistentRead=True).get("Item")
        return self._entry(item) if item else None

    def begin(self, key: str, request_hash: str, ids: Mapping[str, str]) -> KeyClaim:
        now = self._clock()
        token = uuid.uuid4().hex
        item = {
            **keys.idempotency_key(key),
            "state": IN_FLIGHT,
            "request_hash": request_hash,
            "ids": json.dumps(dict(ids), sort_keys=True),
            "token": token,
            "lease_until": int(now + IDEMPOTENCY_LEASE_SECONDS),
            "expires_at": int(now + IDEMPOTENCY_TTL_SECONDS),
        }
        try:
            self._call(
                self._table.put_item,
                Item=item,
                ConditionExpression="attribute_not_exists(PK) OR expires_at <= :now",
                ExpressionAttributeValues={":now": int(now)},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return KeyClaim("claimed", ids=dict(ids), token=token)
        except ClientError as exc:
            if not conditional_failed(exc):
                raise
            old = exc.response.get("Item")
        entry = self._entry(old) if old else self._found(key)
        if entry is None:  # deleted (forgotten) meanwhile: the caller may simply try again
            return KeyClaim("in_flight", retry_after=1)
        verdict = _judge(entry, request_hash, now)
        if verdict is not None:
            return verdict
        # A stale lease on the same request: take it over, keeping its ids, if nobody else did first.
        taken = self._conditional(
            self._table.update_item,
            Key=keys.idempotency_key(key),
            UpdateExpression="SET #token = :token, lease_until = :lease",
            ConditionExpression="#state = :in_flight AND lease_until = :old_lease AND expires_at > :now",
            ExpressionAttributeNames={"#token": "token", "#state": "state"},
            ExpressionAttributeValues={
                ":token": token,
                ":lease": int(now + IDEMPOTENCY_LEASE_SECONDS),
                ":in_flight": IN_FLIGHT,
                ":old_lease": int(entry["lease_until"]),
                ":now": int(now),
            },
        )
        if taken is None:
            return KeyClaim("in_flight", retry_after=1)
        return KeyClaim("taken_over", ids=entry["ids"], token=token)

    def finish(self, key: str, token: str, status_code: int, response: Mapping[str, Any]) -> bool:
        """Record the response (only while holding the lease ``token``); False: someone took over."""
        done = self._conditional(
            self._table.update_item,
            Key=keys.idempotency_key(key),
            UpdateExpression="SET #state = :finished, status_code = :code, #response = :response REMOVE #token",
            ConditionExpression="#token = :token",
            ExpressionAttributeNames={"#token": "token", "#state": "state", "#response": "response"},
            ExpressionAttributeValues={
                ":finished": FINISHED,
                ":code": int(status_code),
                ":response": json.dumps(dict(response)),
                ":token": token,
            },
        )
        return done is not None

    def release(self, key: str, token: str) -> None:
        """End the lease at once (the work failed half-way): a retry of the same request takes over
        with the same ids instead of waiting for the lease."""
        self._conditional(
            self._table.update_item,
            Key=keys.idempotency_key(key),
            UpdateExpression="SET lease_until = :zero",
            ConditionExpression="#token = :token",
            ExpressionAttributeNames={"#token": "token"},
            ExpressionAttributeValues={":zero": 0, ":token": token},
        )

    def forget(self, key: str, token: str) -> None:
        """Delete the key (the request was refused before any write): the caller may fix the request
        and send it again with the same key."""
        self._conditional(
            self._table.delete_item,
            Key=keys.idempotency_key(key),
            ConditionExpression="#token = :token",
            ExpressionAttributeNames={"#token": "token"},
            ExpressionAttributeValues={":token": token},
        )


class InMemoryIdempotencyKeys(InMemoryRepository):
    def __init__(self, clock: Clock = time.time, meter: Meter | None = None) -> None:
        super().__init__(clock, meter)
        self.by_key: dict[str, dict[str, Any]] = {}

    def begin(self, key: str, request_hash: str, ids: Mapping[str, str]) -> KeyClaim:
        with self._lock:
            self.meter.write()
            now = self._clock()
            token = uuid.uuid4().hex
            entry = self.by_key.get(key)
            if entry is None or entry["expires_at"] <= now:
                self.by_key[key] = {
                    "state": IN_FLIGHT,
                    "request_hash": request_hash,
                    "ids": dict(ids),
                    "token": token,
                    "lease_until": int(now + IDEMPOTENCY_LEASE_SECONDS),
                    "expires_at": int(now + IDEMPOTENCY_TTL_SECONDS),
                    "status_code": 0,
                    "response": None,
                }
                return KeyClaim("claimed", ids=dict(ids), token=token)
            verdict = _judge(entry, request_hash, now)
            if verdict is not None:
                return verdict
            self.meter.write()
            entry.update(token=token, lease_until=int(now + IDEMPOTENCY_LEASE_SECONDS))
            return KeyClaim("taken_over", ids=dict(entry["ids"]), token=token)

    def finish(self, key: str, token: str, status_code: int, response: Mapping[str, Any]) -> bool:
        with self._lock:
            self.meter.write()
            entry = self.by_key.get(key)
            if entry is None or entry.get("token") != token:
                return False
            entry.update(state=FINISHED, status_code=status_code, response=json.loads(json.dumps(dict(response))))
            entry.pop("token")
            return True

    def release(self, key: str, token: str) -> None:
        with self._lock:
            entry = self.by_key.get(key)
            if entry is not None and entry.get("token") == token:
                self.meter.write()
                entry["lease_until"] = 0

    def forget(self, key: str, token: str) -> None:
        with self._lock:
            entry = self.by_key.get(key)
            if entry is not None and entry.get("token") == token:
                self.meter.write()
                del self.by_key[key]
