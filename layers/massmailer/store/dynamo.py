"""What every DynamoDB repository shares: the conflict-retrying call, error translation, Decimals.

Each repository is a small class over the one table (a boto3 ``Table`` resource); only this
package's Dynamo* classes touch boto3.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from massmailer.store import keys

CONFLICT_TRIES = 8  # a refused write on a transaction's item is tried again this many times in all

Clock = Callable[[], float]


class StoreUnavailable(Exception):
    """The store cannot be reached or refused the request: stop the job and record why."""


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _cancelled_for(exc: ClientError, reason: str) -> bool:
    """A cancelled transaction one of whose items failed for ``reason``."""
    if error_code(exc) != "TransactionCanceledException":
        return False
    reasons = exc.response.get("CancellationReasons") or []
    return reason in {r.get("Code") for r in reasons}


def conditional_failed(exc: ClientError) -> bool:
    return error_code(exc) == "ConditionalCheckFailedException" or _cancelled_for(exc, "ConditionalCheckFailed")


def _conflict_pause(attempt: int) -> None:
    """Jittered exponential pause between tries of a write refused by a concurrent transaction."""
    time.sleep(min(0.01 * 2**attempt, 0.5) * (0.5 + random.random()))


def plain(value: Any) -> Any:
    """DynamoDB's Decimals back to ints/floats."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def now_iso(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).isoformat()


class DynamoRepository:
    """Base of the Dynamo repositories: the table, its client, the clock and ``_call``."""

    def __init__(self, table: Any, clock: Clock = time.time) -> None:
        self._table = table
        self._clock = clock
        self._client = table.meta.client

    def _call(self, fn: Any, **kwargs: Any) -> Any:
        for attempt in range(1, CONFLICT_TRIES + 1):
            try:
                return fn(**kwargs)
            except ClientError as exc:
                if conditional_failed(exc):
                    raise
                conflict = error_code(exc) == "TransactionConflictException" or _cancelled_for(
                    exc, "TransactionConflict"
                )
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

    def _conditional(self, fn: Any, **kwargs: Any) -> Any | None:
        """``_call`` for a conditional write: None when the condition failed (the caller's 'no')."""
        try:
            result = self._call(fn, **kwargs)
        except ClientError as exc:
            if conditional_failed(exc):
                return None
            raise
        return result if result is not None else {}

    def _put_new(self, item: dict[str, Any]) -> bool:
        """Put ``item`` only if no item has its key; False when one already does."""
        return (
            self._conditional(
                self._table.put_item,
                Item=item,
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": keys.PK},
            )
            is not None
        )
