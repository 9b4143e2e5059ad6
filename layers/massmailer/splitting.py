"""Splitting an audience into batches of ≤50 on the campaign's lane.

The audience is streamed (JSONL, one ``{"email": ..., "variables": {...}}`` per line) from a byte
offset. Every chunk of batches is enqueued *before* the checkpoint moves past it, and the checkpoint
and the chunk's counters move together in one conditional write — so a split that crashes or times
out resumes at the last checkpoint, may re-enqueue the last chunk (the sender's claim makes that
harmless) and never skips a recipient or counts one twice. Listmonk's bug — a cursor advanced on
fetch rather than on send — is exactly what this ordering avoids.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from massmailer.addresses import InvalidAddress, address_key, identity_digest, normalize_address
from massmailer.blobs import Blobs
from massmailer.models import MAX_VARIABLES_BYTES, BatchMessage, BatchRecipient, CampaignStatus, SplitRequest
from massmailer.queues import Queue
from massmailer.spec import MAX_RECIPIENTS_PER_BATCH, SPLIT_QUEUE
from massmailer.store import Store

logger = logging.getLogger(__name__)

CHUNK_BATCHES = 10  # batches per checkpoint: one SQS SendMessageBatch call


def recipient_message_id(campaign_id: str, email: str) -> str:
    """Deterministic per (campaign, address): re-splitting produces the same ids, so claims dedupe."""
    return f"{campaign_id}.{identity_digest(address_key(email))}"


@dataclass
class SplitReport:
    enqueued: int = 0
    batches: int = 0
    suppressed: int = 0
    invalid: int = 0
    duplicates: int = 0
    done: bool = False
    continued: bool = False
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class SplitterContext:
    store: Store
    queue: Queue
    blobs: Blobs
    time_left: Callable[[], float] = lambda: 1e9  # seconds left in this invocation
    safety_margin: float = 30.0
    batch_size: int = MAX_RECIPIENTS_PER_BATCH


_MAX_LINE = MAX_VARIABLES_BYTES + 512  # the variables' limit plus room for the address and the keys


def _parse(line: bytes) -> tuple[str, dict] | None:
    """One audience row → (address, variables), or None when the row is not a valid recipient."""
    if len(line) > _MAX_LINE:
        return None
    try:
        row = json.loads(line)
        email = normalize_address(row["email"])
        variables = row.get("variables") or {}
        if not isinstance(variables, dict):
            return None
    except (ValueError, KeyError, TypeError, InvalidAddress):
        return None
    return email, variables


def _seen_before(blobs: Blobs, key: str, end: int) -> set[int]:
    """Addresses already split before a checkpoint (to keep de-duplicating after a resume)."""
    seen: set[int] = set()
    for line, offset in blobs.lines(key):
        if offset > end:
            break
        parsed = _parse(line)
        if parsed:
            seen.add(hash(address_key(parsed[0])))
    return seen


def split_campaign(ctx: SplitterContext, request: SplitRequest) -> SplitReport:
    report = SplitReport()
    stored = ctx.store.get_campaign(request.campaign_id)
    if stored is None:
        logger.error("split request for unknown campaign", extra={"campaign_id": request.campaign_id})
        return report
    if stored.split_done:
        report.done = True
        return report
    campaign = stored.campaign
    if campaign.status in (CampaignStatus.SCHEDULED,):
        ctx.store.set_campaign_status(campaign.campaign_id, CampaignStatus.SPLITTING)

    cursor = stored.split_cursor
    seen = _seen_before(ctx.blobs, campaign.audience_key, cursor) if cursor else set()
    chunk: list[BatchRecipient] = []
    deltas = {"total": 0, "invalid": 0, "duplicates": 0, "suppressed": 0}
    chunk_limit = CHUNK_BATCHES * ctx.batch_size
    offset = cursor

    def flush(end: int, done: bool) -> bool:
        nonlocal chunk, deltas, cursor
        suppressed = ctx.store.suppressed_among(r.email for r in chunk) if chunk else set()
        keep = [r for r in chunk if address_key(r.email) not in suppressed]
        deltas["suppressed"] += len(chunk) - len(keep)
        bodies = [  # built from rows validated above: no second validation pass
            BatchMessage.model_construct(
                v=1,
                kind="campaign",
                campaign_id=campaign.campaign_id,
                lane=campaign.lane,
                recipients=keep[i : i + ctx.batch_size],
            ).model_dump_json()
            for i in range(0, len(keep), ctx.batch_size)
        ]
        if bodies:
            ctx.queue.send(campaign.lane.value, bodies)
        if not ctx.store.advance_split(campaign.campaign_id, cursor, end, deltas, done):
            logger.warning(
                "split checkpoint moved by another splitter; stopping",
                extra={"campaign_id": campaign.campaign_id},
            )
            return False
        report.enqueued += len(keep)
        report.batches += len(bodies)
        for k, v in deltas.items():
            report.counts[k] = report.counts.get(k, 0) + v
        cursor = end
        chunk = []
        deltas = {"total": 0, "invalid": 0, "duplicates": 0, "suppressed": 0}
        return True

    for line, offset in ctx.blobs.lines(campaign.audience_key, cursor):
        if not line.strip():
            continue
        parsed = _parse(line)
        if parsed is None:
            deltas["invalid"] += 1
            continue
        email, variables = parsed
        # 64-bit hashes, not the addresses: ~4x less memory per recipient. The set lives for one
        # invocation (one process), so Python's per-process hash salt is harmless.
        identity = address_key(email)
        key = hash(identity)
        if key in seen:
            deltas["duplicates"] += 1
            continue
        seen.add(key)
        deltas["total"] += 1
        chunk.append(
            BatchRecipient.model_construct(
                message_id=f"{campaign.campaign_id}.{identity_digest(identity)}",
                email=email,
                variables=variables,
                attempt=0,
                not_before=None,
            )
        )
        if len(chunk) >= chunk_limit:
            if not flush(offset, done=False):
                return report
            if ctx.time_left() < ctx.safety_margin:
                ctx.queue.send(SPLIT_QUEUE.key, [SplitRequest(campaign_id=campaign.campaign_id).model_dump_json()])
                report.continued = True
                return report

    if not flush(max(offset, cursor), done=True):
        return report
    ctx.store.set_campaign_status(campaign.campaign_id, CampaignStatus.SENDING)
    report.done = True
    report.suppressed = report.counts.get("suppressed", 0)
    report.invalid = report.counts.get("invalid", 0)
    report.duplicates = report.counts.get("duplicates", 0)
    return report


def audience_jsonl(members: Iterable[tuple[str, dict]]) -> bytes:
    """Serialize an inline audience for the bucket (one JSON object per line)."""
    return b"".join(
        json.dumps({"email": email, "variables": variables}, separators=(",", ":")).encode() + b"\n"
        for email, variables in members
    )
