"""A campaign's recipients in audience order, with their records: what ``GET /v1/campaigns/{id}/recipients``
pages through and what the CSV export (``massmailer.exports``) streams.

The split writes each chunk's identities (a roster, ``CAMPAIGN#<id>`` / ``RCPT#<chunk start>``); a walk
reads the rosters from a position on, derives the message ids and batch-reads the records (100 a
call). A recipient no sender has reached yet is QUEUED, one suppressed at the split SUPPRESSED. A
position is (roster start, index in the roster): what comes after the recipient last yielded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from massmailer.addresses import identity_digest
from massmailer.models import MessageRecord, Status
from massmailer.store import Campaigns, Messages

RECORD_FIELDS = tuple(MessageRecord.model_fields)
TIME_FIELDS = tuple(name for name, field in MessageRecord.model_fields.items() if field.annotation == datetime | None)
READ_SIZE = 100  # recipients whose records are read per BatchGetItem


@dataclass(frozen=True)
class Position:
    roster: int = 0  # the start (split checkpoint) of the roster to read next
    index: int = 0  # the first recipient of that roster not yet yielded


def api_time(value: Any) -> str | None:
    """Every timestamp the API returns, in one format: RFC 3339 in UTC with ``Z`` (milliseconds)."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        moment = datetime.fromtimestamp(float(value), UTC)
    elif isinstance(value, datetime):
        moment = value
    else:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return utc_text(moment)


def utc_text(moment: datetime) -> str:
    """RFC 3339 in UTC with ``Z``, to the millisecond (a send takes milliseconds: latencies read
    from two timestamps must not round to whole seconds)."""
    at = moment.astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def api_record(record: dict[str, Any]) -> dict[str, Any]:
    """A stored record as the API shows it: every field of ``MessageRecord``, timestamps as ``api_time``."""
    item = {name: record.get(name) for name in RECORD_FIELDS}
    for name in TIME_FIELDS:
        item[name] = api_time(item[name])
    return item


def walk(
    campaigns: Campaigns,
    messages: Messages,
    campaign_id: str,
    wanted: Status | None = None,
    start: Position = Position(),
    budget: int | None = None,
    limit: int | None = None,
) -> Iterator[tuple[dict[str, Any] | None, Position]]:
    """(item or None, position after it) per recipient examined, in audience order, from ``start``.

    ``item`` is None for a recipient ``wanted`` filters out, so a caller can stop after a bounded
    number examined (``budget``) and still hold an exact position. Records are read ``READ_SIZE`` at
    a time, never more than ``budget`` examined nor more than the ``limit`` items still wanted ahead
    (so a page of 50 reads 50 records, not 100)."""
    roster_start, index = start.roster, start.index
    left, kept = budget, 0
    while left is None or left > 0:
        rosters = campaigns.rosters(campaign_id, roster_start, limit=1)
        if not rosters:
            return
        roster = rosters[0]
        if roster.start != roster_start:
            roster_start, index = roster.start, 0
        while index < len(roster.identities) and (left is None or left > 0):
            size = min([READ_SIZE, *(n for n in (left, None if limit is None else limit - kept) if n is not None)])
            if size <= 0:
                return
            take = roster.identities[index : index + size]
            ids = [f"{campaign_id}.{identity_digest(i)}" for i in take]
            records = messages.get_messages([m for m, i in zip(ids, take, strict=True) if i not in roster.suppressed])
            for offset, (message_id, identity) in enumerate(zip(ids, take, strict=True)):
                unreached = {"message_id": message_id, "email": identity, "status": "QUEUED"}
                if identity in roster.suppressed:
                    record: dict[str, Any] = {**unreached, "status": "SUPPRESSED"}
                else:
                    record = records.get(message_id) or unreached
                after = index + offset + 1
                last = after >= len(roster.identities)
                position = Position(roster.start + 1) if last else Position(roster_start, after)
                keep = wanted is None or record.get("status") == wanted.value
                kept += keep
                yield (api_record(record) if keep else None), position
            index += len(take)
            if left is not None:
                left -= len(take)
        if index >= len(roster.identities):
            roster_start, index = roster.start + 1, 0
