"""Splitting an audience into batches of ≤50 on the campaign's lane.

**Input.** The audience is an object in the bucket, CSV or JSONL by its extension (formats in
``massmailer.audiences``), streamed in blocks of whole lines from a byte offset — never loaded
whole. Every row is validated (``addresses.normalize_address``: same addresses accepted and
rejected, its fast path inlined here), rows with a bad address, a malformed CSV record or a wrong
number of fields count as *invalid*; blank lines (and CSV rows of empty cells) are skipped.
Addresses are de-duplicated case-insensitively (*duplicates*) and checked against the suppression
list (*suppressed*).

**Output.** Batch messages of ≤50 recipients, built as JSON text directly (not through pydantic:
that was most of the cost) in exactly the shape ``models.BatchMessage`` parses; a recipient's
message id is ``<campaign>.<identity digest>``, so re-splitting yields the same ids and the sender's
claim makes a re-enqueued recipient harmless.

**Checkpoints.** Every chunk of batches is enqueued *before* the checkpoint moves past it, and the
checkpoint and the chunk's counters move together in one conditional write
(``Store.advance_split``) — so a split that crashes or times out resumes at the last checkpoint,
may re-enqueue the last chunk and never skips a recipient or counts one twice. Listmonk's bug — a
cursor advanced on fetch rather than on send — is exactly what this ordering avoids. A checkpoint
is a byte offset at a record boundary (a CSV resume re-reads the header first), together with the
pass (:class:`Checkpoint`). Near the Lambda time limit the splitter checkpoints and hands over to a
continuation message on the split queue.

**Pause and cancel.** The splitter moves the campaign only through ``lifecycle`` moves (START_SPLIT,
FINISH_SPLIT, FAIL), each a conditional write, so it never undoes an operator's pause or cancel: a
split that finishes while the campaign is PAUSED leaves it PAUSED (a resume then goes straight to
SENDING). After each checkpoint it reads the campaign's status (strongly consistent, one read per
chunk of 500 recipients) and stops, without a continuation, when it is no longer SPLITTING; a
resume enqueues a new split request, which continues from the checkpoint.

**De-duplication in a fixed budget** (``massmailer.dedupe``). Seen addresses are kept as 64-bit
identity digests in a preallocated table of ``dedupe_bytes`` (``MM_SPLIT_DEDUPE_MIB``, default
32 MiB ≈ 2M addresses per pass). A resumed split rebuilds it by re-reading its pass from the start
to the checkpoint (digests only). An audience estimated (from its size and the rows in its first
MiB) to hold more rows than one table plans for is split in K passes over the object: pass k takes
the addresses whose digest falls in partition k. Invalid rows are counted in pass 0 only; each
address belongs to exactly one pass, so the counters of the passes add up to those of one pass.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from json.encoder import encode_basestring
from typing import Any

from pydantic_core import to_json

from massmailer.addresses import FAST_ADDRESS, InvalidAddress, address_key, identity_digest, normalize_address
from massmailer.addresses import normalize_domain as _normalize_domain
from massmailer.audiences import Audience, AudienceError, CsvHeader, open_audience
from massmailer.blobs import OVERSIZED_LINE, Blobs, ObjectChanged
from massmailer.dedupe import MAX_PASSES, DigestSet, plan_passes
from massmailer.lifecycle import MOVES, Action, TransitionNotAllowed
from massmailer.models import MAX_VARIABLES_BYTES, CampaignStatus, Lane, SplitRequest, variables_size
from massmailer.queues import Queue
from massmailer.spec import MAX_RECIPIENTS_PER_BATCH, SPLIT_QUEUE
from massmailer.store import Campaigns, Suppressions

logger = logging.getLogger(__name__)

CHUNK_BATCHES = 10  # batches per checkpoint: one SQS SendMessageBatch call
DEFAULT_DEDUPE_MIB = 32
_MAX_RECORD = MAX_VARIABLES_BYTES + 512  # longest row worth parsing: the variables' limit plus the address
_UNSAFE = re.compile(r"[\x00-\x09\x0b-\x1f\\]")  # characters JSON must escape, besides '"' and newlines
_EMPTY_CELLS = " \t,"  # a CSV line of only these is blank (spreadsheets export empty rows as ",,,")
_UNDECODABLE = "\x00"  # stands in for a line that is not UTF-8: an invalid row in either format
_DOMAIN_CACHE_MAX = 65_536


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
    passes: int = 0
    done: bool = False
    continued: bool = False
    halted: str | None = None  # the campaign's status when the split stopped for it (PAUSED, CANCELLED…)
    error: str | None = None
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class SplitterContext:
    campaigns: Campaigns
    suppressions: Suppressions
    queue: Queue
    blobs: Blobs
    time_left: Callable[[], float] = lambda: 1e9  # seconds left in this invocation
    safety_margin: float = 30.0
    batch_size: int = MAX_RECIPIENTS_PER_BATCH
    dedupe_bytes: int = DEFAULT_DEDUPE_MIB << 20  # the de-dupe table's budget per pass
    clock: Callable[[], float] = time.time


@dataclass(frozen=True)
class Checkpoint:
    """Where a split stands: byte ``offset`` within pass ``pass_no`` of ``passes``.

    The store keeps one integer (``split_cursor``): a single-pass split stores the plain byte offset
    (0 = not started); a multi-pass one ``(passes × 1000 + pass) × 10¹³ + offset`` — S3 objects are
    below 10¹³ bytes, and the encoding grows with progress, so it is never reused.
    """

    passes: int
    pass_no: int
    offset: int

    _STRIDE = 10**13

    def encode(self) -> int:
        if self.passes == 1:
            return self.offset
        return (self.passes * 1000 + self.pass_no) * self._STRIDE + self.offset

    @classmethod
    def decode(cls, value: int) -> Checkpoint:
        if value < cls._STRIDE:
            return cls(1, 0, value)
        head, offset = divmod(value, cls._STRIDE)
        passes, pass_no = divmod(head, 1000)
        return cls(passes, pass_no, offset)


class _Stop(Exception):
    """The split stops in this invocation: checkpoint lost to another splitter, time is short, or the
    campaign is no longer SPLITTING (``halted``: paused, cancelled or failed; no continuation)."""

    def __init__(self, lost: bool, halted: CampaignStatus | None = None) -> None:
        self.lost = lost
        self.halted = halted


def split_campaign(ctx: SplitterContext, request: SplitRequest) -> SplitReport:
    report = SplitReport()
    stored = ctx.campaigns.get_campaign(request.campaign_id)
    if stored is None:
        logger.error("split request for unknown campaign", extra={"campaign_id": request.campaign_id})
        return report
    if stored.split_done:
        report.done = True
        return report
    campaign = stored.campaign
    status = campaign.status
    if status == CampaignStatus.SCHEDULED:
        try:
            status = ctx.campaigns.transition(campaign.campaign_id, MOVES[Action.START_SPLIT])
        except TransitionNotAllowed as refused:  # cancelled before its time, or started by another
            status = refused.current
    if status != CampaignStatus.SPLITTING:  # paused, cancelled or failed: a resume sends a new request
        logger.info("split not running", extra={"campaign_id": campaign.campaign_id, "status": status.value})
        report.halted = status.value
        return report

    splitter: _Splitter | None = None
    try:
        audience = open_audience(ctx.blobs, campaign.audience_key, campaign.audience_etag)
        start = Checkpoint.decode(stored.split_cursor)
        if stored.split_cursor == 0:
            start = Checkpoint(plan_passes(audience.estimated_rows(), ctx.dedupe_bytes), 0, 0)
        if start.passes > MAX_PASSES:
            raise AudienceError(f"the audience needs {start.passes} passes; raise MM_SPLIT_DEDUPE_MIB")
        report.passes = start.passes
        splitter = _Splitter(ctx, campaign.campaign_id, campaign.lane, audience, stored.split_cursor, report)
        finished = splitter.run(start)
    except (AudienceError, ObjectChanged) as exc:
        error = f"audience {campaign.audience_key}: {exc}"
        logger.error("split failed", extra={"campaign_id": campaign.campaign_id, "error": error})
        try:
            ctx.campaigns.transition(campaign.campaign_id, MOVES[Action.FAIL], {"last_error": error})
        except TransitionNotAllowed as refused:  # cancelled meanwhile: that stands
            logger.info("campaign not failed", extra={"campaign_id": campaign.campaign_id, "reason": str(refused)})
        report.error = error
        return report
    except _Stop as stop:
        if stop.halted is not None:
            logger.info("split halted", extra={"campaign_id": campaign.campaign_id, "status": stop.halted.value})
            report.halted = stop.halted.value
        elif stop.lost:
            logger.warning(
                "split checkpoint moved by another splitter; stopping", extra={"campaign_id": campaign.campaign_id}
            )
        else:
            ctx.queue.send(SPLIT_QUEUE.key, [SplitRequest(campaign_id=campaign.campaign_id).model_dump_json()])
            report.continued = True
        finished = False
    finally:
        if splitter is not None:
            splitter.close()
    if finished:
        try:
            ctx.campaigns.transition(campaign.campaign_id, MOVES[Action.FINISH_SPLIT])
        except TransitionNotAllowed as refused:  # paused (a resume goes on to SENDING) or cancelled
            report.halted = refused.current.value
        report.done = True
    report.suppressed = report.counts.get("suppressed", 0)
    report.invalid = report.counts.get("invalid", 0)
    report.duplicates = report.counts.get("duplicates", 0)
    return report


class _Splitter:
    """One invocation's split of one campaign: passes → blocks → rows → chunks → checkpoints."""

    def __init__(
        self, ctx: SplitterContext, campaign_id: str, lane: Lane, audience: Audience, cursor: int, report: SplitReport
    ) -> None:
        self.ctx = ctx
        self.campaign_id = campaign_id
        self.lane = lane.value
        self.audience = audience
        self.cursor = cursor  # the checkpoint as stored (what advance_split expects)
        self.report = report
        self.passes = 1
        self.pass_no = 0
        self.seen: DigestSet | None = None
        self.chunk_limit = CHUNK_BATCHES * ctx.batch_size
        self.keys: list[str] = []  # identity of each recipient in the chunk (for the suppression check)
        self.recipients: list[str] = []  # its BatchRecipient as JSON text
        self.total = self.duplicates = self.invalid = 0  # the chunk's counters
        self.end = audience.data_start  # offset just after the last block read
        self.domains: dict[str, str] = {}  # domain → normalized domain, "" when invalid
        cid = encode_basestring(campaign_id)
        self.batch_head = f'{{"v":1,"kind":"campaign","campaign_id":{cid},"lane":"{self.lane}","recipients":['
        self.message_id_prefix = f"{campaign_id}."
        self.template_prefix = f"{cid[1:-1]}."  # the same, escaped for JSON

    # -- passes and checkpoints -----------------------------------------------------------------
    def run(self, start: Checkpoint) -> bool:
        """Split from ``start`` to the end; False when stopped early (raises ``_Stop``)."""
        self.passes = start.passes
        data_start = self.audience.data_start
        for pass_no in range(start.pass_no, start.passes):
            self.pass_no = pass_no
            if self.seen is not None:
                self.seen.close()
            self.seen = DigestSet(self.ctx.dedupe_bytes)
            offset = start.offset if pass_no == start.pass_no else 0
            if offset > data_start:  # resumed mid-pass: the table is rebuilt from the rows before
                self._scan(data_start, replay_until=offset)
            else:
                self._scan(data_start, replay_until=None)
            last = pass_no + 1 == start.passes
            after = Checkpoint(self.passes, pass_no, self.end) if last else Checkpoint(self.passes, pass_no + 1, 0)
            self._flush(after, done=last)
            if not last and self.ctx.time_left() < self.ctx.safety_margin:
                raise _Stop(lost=False)
        return True

    def _flush(self, checkpoint: Checkpoint, done: bool = False) -> None:
        """Enqueue the chunk's batches, then move the checkpoint and the chunk's counters together."""
        keys, recipients = self.keys, self.recipients
        checked = f',"suppression_checked_at":{self.ctx.clock()!r}}}'  # for the sender: no second check
        suppressed = self.ctx.suppressions.suppressed_among(keys) if keys else set()
        if suppressed:
            recipients = [r for k, r in zip(keys, recipients, strict=True) if k not in suppressed]
        size = self.ctx.batch_size
        bodies = [
            self.batch_head + ",".join(recipients[i : i + size]) + "]" + checked
            for i in range(0, len(recipients), size)
        ]
        if bodies:
            self.ctx.queue.send(self.lane, bodies)
        deltas = {
            "total": self.total,
            "invalid": self.invalid if self.pass_no == 0 else 0,
            "duplicates": self.duplicates,
            "suppressed": len(keys) - len(recipients),
        }
        if keys:  # the chunk's roster (GET .../recipients), before the checkpoint that makes it done
            self.ctx.campaigns.put_roster(self.campaign_id, self.cursor, keys, suppressed)
        new = checkpoint.encode()
        if not self.ctx.campaigns.advance_split(self.campaign_id, self.cursor, new, deltas, done):
            raise _Stop(lost=True)
        self.cursor = new
        self.report.enqueued += len(recipients)
        self.report.batches += len(bodies)
        for name, value in deltas.items():
            self.report.counts[name] = self.report.counts.get(name, 0) + value
        self.keys, self.recipients = [], []
        self.total = self.duplicates = self.invalid = 0
        if not done:
            status = self.ctx.campaigns.status_of(self.campaign_id)
            if status != CampaignStatus.SPLITTING:
                raise _Stop(lost=False, halted=status or CampaignStatus.CANCELLED)

    def _checkpoint_at(self, offset: int, stop: bool = False) -> None:
        """Flush at a record boundary inside the pass; stop if the invocation is nearly over."""
        self._flush(Checkpoint(self.passes, self.pass_no, offset))
        if stop or self.ctx.time_left() < self.ctx.safety_margin:
            raise _Stop(lost=False)

    def close(self) -> None:
        if self.seen is not None:
            self.seen.close()
            self.seen = None

    # -- reading --------------------------------------------------------------------------------
    def _blocks(self, start: int, replay_until: int | None) -> Iterator[tuple[bytes, int, int, bool]]:
        """(block, its offset, offset after it, replay?) — blocks before ``replay_until`` are replayed:
        their addresses go into the de-dupe table only (they were split before the checkpoint)."""
        audience = self.audience
        for block, end in self.ctx.blobs.blocks(audience.key, start, if_match=audience.etag):
            self.end = end
            if block is OVERSIZED_LINE:
                yield block, end, end, replay_until is not None and end <= replay_until
                continue
            base = end - len(block)
            if replay_until is not None and base < replay_until:
                if end <= replay_until:
                    yield block, base, end, True
                    if end == replay_until:
                        replay_until = None
                    continue
                cut = replay_until - base
                yield block[:cut], base, replay_until, True
                block, base, replay_until = block[cut:], replay_until, None
            yield block, base, end, False

    @staticmethod
    def _lines(block: bytes) -> tuple[list[bytes], list[str], bool]:
        """A block as raw lines (for byte offsets), decoded lines (CRLF → LF) and whether no line
        needs JSON escaping (then a row's values can be pasted into JSON as they are)."""
        raw = block.split(b"\n")
        if not raw[-1]:
            raw.pop()
        try:
            text = block.decode()
        except UnicodeDecodeError:
            lines = [_decode_line(r) for r in raw]
            return raw, lines, False
        if "\r" in text:
            text = text.replace("\r\n", "\n").removesuffix("\r")
        lines = text.split("\n")
        if len(lines) > len(raw):
            lines.pop()
        return raw, lines, _UNSAFE.search(text) is None

    def _scan(self, start: int, replay_until: int | None) -> None:
        scan = self._csv_block if self.audience.format == "csv" else self._jsonl_block
        carry, carry_base, carry_replay = b"", 0, False  # a CSV record still open at the end of a block
        for block, base, end, replay in self._blocks(start, replay_until):
            if carry and (block is OVERSIZED_LINE or replay != carry_replay):
                # The open record ends here: at an over-long line, or at the checkpoint a resume replays
                # up to. No record spans a checkpoint, so the first run found this one unterminated:
                # its first line was invalid and the lines after it rows — as ``final`` reads them.
                scan(carry, carry_base, carry_base + len(carry), carry_replay, final=True)
                carry = b""
            if block is OVERSIZED_LINE:
                if not replay:
                    self.invalid += 1
                continue
            if carry:
                block, base = carry + block, carry_base
            rest = scan(block, base, end, replay, final=False)
            carry, carry_base, carry_replay = (block[rest:], base + rest, replay) if rest >= 0 else (b"", 0, False)
            if not replay and self.ctx.time_left() < self.ctx.safety_margin:
                self._checkpoint_at(end - len(carry), stop=True)
        if carry:
            scan(carry, carry_base, carry_base + len(carry), carry_replay, final=True)

    def _count(self, total: int, duplicates: int, invalid: int, replay: bool) -> None:
        """Add a stretch of rows to the chunk's counters (rows replayed after a resume count nowhere)."""
        if not replay:
            self.total += total
            self.duplicates += duplicates
            self.invalid += invalid

    # -- rows -----------------------------------------------------------------------------------
    def _domain(self, domain: str) -> str:
        """The normalized domain, or "" when it is not valid (cached per split)."""
        if len(self.domains) >= _DOMAIN_CACHE_MAX:
            self.domains.clear()
        try:
            normalized = _normalize_domain(domain)
        except InvalidAddress:
            normalized = ""
        self.domains[domain] = normalized
        return normalized

    def _csv_block(self, block: bytes, base: int, end: int, replay: bool, final: bool) -> int:
        """Split the CSV rows of one block; returns where an unfinished record starts (-1: none).

        The hot loop: one ``split``, one regex, one BLAKE2b, one table probe and one ``%``-format
        per ordinary row. Rows with quotes, characters JSON must escape or a non-fast-path address
        take the general path, with the same result.
        """
        header = self.audience.header
        assert header is not None and self.seen is not None
        raw, lines, clean = self._lines(block)
        ncols, email_at = len(header.columns), header.email_index
        template, short_line, var_cols = _csv_templates(header, self.template_prefix)
        fast_match, domains, domain_of = FAST_ADDRESS.fullmatch, self.domains, self._domain
        new_hash, from_bytes, unsafe = _BLAKE.copy, int.from_bytes, _UNSAFE.search
        seen = self.seen
        table, slots, count, limit = seen.table, seen.slots, seen.count, seen.limit
        passes, pass_no = self.passes, self.pass_no
        keys, recipients = self.keys, self.recipients
        total = duplicates = invalid = 0
        chunk_limit = self.chunk_limit
        done_line, done_offset = -1, base  # bytes accounted for, up to the end of line done_line
        skip_to = -1
        for j, line in enumerate(lines):
            if j <= skip_to:
                continue
            if '"' in line:  # quoted fields, perhaps over several lines: the csv module parses them
                fields, last = _csv_record(lines, j, final)
                if last < 0:  # the record runs past this block: carry it over
                    self._count(total, duplicates, invalid, replay)
                    seen.count = count
                    return sum(map(len, raw[:j])) + j
                skip_to = last
                if fields is None:
                    invalid += 1
                    continue
                safe, long_row = False, True
            else:
                fields = line.split(",")
                safe, long_row = clean or unsafe(line) is None, len(line) > short_line
            if len(fields) != ncols:
                if line.strip(_EMPTY_CELLS):  # not a row of empty cells
                    invalid += 1
                continue
            # The address, as normalize_address judges it: the fast path inline, the rest through it.
            email = fields[email_at]
            if fast_match(email) is not None and len(email) <= 254 and (at := email.rfind("@")) <= 64:
                domain = email[at + 1 :]
                normalized = domains.get(domain)
                if normalized is None:
                    normalized = domain_of(domain)
                if not normalized:
                    invalid += 1
                    continue
                address = email if normalized == domain else email[: at + 1] + normalized
                key = address.lower()
            else:
                try:
                    address = normalize_address(email)
                except InvalidAddress:
                    if line.strip(_EMPTY_CELLS):  # not a row of empty cells
                        invalid += 1
                    continue
                key = address_key(address)
                safe = False
            if long_row and variables_size({header.columns[c]: fields[c] for c in var_cols}) > MAX_VARIABLES_BYTES:
                invalid += 1
                continue
            hasher = new_hash()
            hasher.update(key.encode())
            digest = hasher.digest()
            number = from_bytes(digest, "little")
            if passes > 1 and (number >> 32) % passes != pass_no:
                continue
            # De-dupe: DigestSet.add, inlined.
            if number:
                i = number % slots
                v = table[i]
                while v and v != number:
                    i += 1
                    if i == slots:
                        i = 0
                    v = table[i]
                if v:
                    duplicates += 1
                    continue
                table[i] = number
                count += 1
                if count >= limit:
                    seen.count = count
                    seen.grow()
                    table, slots, limit = seen.table, seen.slots, seen.limit
            elif seen.has_zero:
                duplicates += 1
                continue
            else:
                seen.has_zero = True
            if replay:
                continue
            total += 1
            keys.append(key)
            if safe:
                recipients.append(template % (digest.hex(), address, *fields))
            else:
                variables = "{" + ",".join(f"{_JSON_NAMES(header.columns[c])}:{_json(fields[c])}" for c in var_cols)
                recipients.append(_recipient_json(self.message_id_prefix + digest.hex(), address, variables + "}"))
            if len(recipients) >= chunk_limit:
                last_line = max(j, skip_to)
                done_offset += sum(map(len, raw[done_line + 1 : last_line + 1])) + last_line - done_line
                done_line = last_line
                self._count(total, duplicates, invalid, replay)
                total = duplicates = invalid = 0
                seen.count = count
                self._checkpoint_at(min(done_offset, end))
                keys, recipients = self.keys, self.recipients
        self._count(total, duplicates, invalid, replay)
        seen.count = count
        return -1

    def _jsonl_block(self, block: bytes, base: int, end: int, replay: bool, final: bool) -> int:
        """Split the JSONL rows of one block (``{"email": ..., "variables": {...}}`` per line)."""
        assert self.seen is not None
        raw, lines, _ = self._lines(block)
        if base == 0 and lines and lines[0].startswith("\ufeff"):
            lines[0] = lines[0][1:]
        seen, passes, pass_no = self.seen, self.passes, self.pass_no
        loads, new_hash, from_bytes = json.loads, _BLAKE.copy, int.from_bytes
        done_line, done_offset = -1, base
        for j, line in enumerate(lines):
            if not line.strip():
                continue
            if len(line) > _MAX_RECORD:
                self.invalid += not replay
                continue
            try:
                row = loads(line)
                address = normalize_address(row["email"])
                variables = row.get("variables") or {}
                if not isinstance(variables, dict):
                    raise TypeError("variables")
                variables_json = to_json(variables)  # as pydantic writes it: UTF-8, so ≥ ⅓ of the size limited
                if len(variables_json) * 3 > MAX_VARIABLES_BYTES and variables_size(variables) > MAX_VARIABLES_BYTES:
                    raise ValueError("variables")
            except (ValueError, KeyError, TypeError, AttributeError, InvalidAddress):
                self.invalid += not replay
                continue
            key = address_key(address)
            hasher = new_hash()
            hasher.update(key.encode())
            digest = hasher.digest()
            number = from_bytes(digest, "little")
            if passes > 1 and (number >> 32) % passes != pass_no:
                continue
            if not seen.add(number):
                self.duplicates += not replay
                continue
            if replay:
                continue
            self.total += 1
            self.keys.append(key)
            self.recipients.append(
                _recipient_json(self.message_id_prefix + digest.hex(), address, variables_json.decode())
            )
            if len(self.recipients) >= self.chunk_limit:
                done_offset += sum(map(len, raw[done_line + 1 : j + 1])) + j - done_line
                done_line = j
                self._checkpoint_at(min(done_offset, end))
        return -1


_json = encode_basestring
_JSON_NAMES = lru_cache(maxsize=1024)(encode_basestring)
_BLAKE = hashlib.blake2b(digest_size=8)  # copied per row: identity_digest's hash without its set-up cost


def _decode_line(raw: bytes) -> str:
    try:
        return raw.decode().removesuffix("\r")
    except UnicodeDecodeError:
        return _UNDECODABLE


def _recipient_json(message_id: str, address: str, variables_json: str) -> str:
    """One BatchRecipient as JSON, in the field order pydantic writes."""
    return (
        f'{{"message_id":{encode_basestring(message_id)},"email":{encode_basestring(address)},'
        f'"variables":{variables_json},"attempt":0,"not_before":null,"first_attempt_at":null,"throttles":0}}'
    )


_TEMPLATES: dict[tuple[tuple[str, ...], int, str], tuple[str, int, list[int]]] = {}


def _csv_templates(header: CsvHeader, message_id_prefix: str) -> tuple[str, int, list[int]]:
    """For a header: the %-template of a recipient whose values need no escaping, the row length
    below which its variables are certainly within MAX_VARIABLES_BYTES, and the variable columns.

    The template takes (digest hex, address, *all fields): ``%.0s`` swallows the email column and
    nameless columns, so a row is formatted without building a list of its variables first.
    """
    cache_key = (header.columns, header.email_index, message_id_prefix)
    cached = _TEMPLATES.get(cache_key)
    if cached is not None:
        return cached
    var_cols = [i for i, name in enumerate(header.columns) if i != header.email_index and name]
    parts, first = [], True
    for i, name in enumerate(header.columns):
        if i in var_cols:
            parts.append(("" if first else ",") + encode_basestring(name).replace("%", "%%") + ':"%s"')
            first = False
        else:
            parts.append("%.0s")
    template = (
        '{"message_id":"'
        + message_id_prefix.replace("%", "%%")
        + '%s","email":"%s","variables":{'
        + "".join(parts)
        + '},"attempt":0,"not_before":null,"first_attempt_at":null,"throttles":0}'
    )
    # Escaped as JSON with ensure_ascii (as variables_size measures), a character takes ≤12 bytes.
    overhead = 2 + sum(len(json.dumps(header.columns[c])) + 3 for c in var_cols)
    short_line = (MAX_VARIABLES_BYTES - overhead) // 12
    if len(_TEMPLATES) > 64:
        _TEMPLATES.clear()
    _TEMPLATES[cache_key] = (template, short_line, var_cols)
    return _TEMPLATES[cache_key]


def _csv_record(lines: list[str], j: int, final: bool) -> tuple[list[str] | None, int]:
    """Parse the record that starts at ``lines[j]`` and has quotes: (fields or None, last line).

    A quoted field may hold line breaks, so the record may take the next lines; it ends where a
    parse no longer stops inside an open quote. Last line -1: the block ends first (carry it over,
    unless ``final``). A record that never closes within ``_MAX_RECORD`` characters, or at the end
    of the object, makes only its first line invalid; the lines after it are read as new rows.
    """
    text, k = lines[j], j
    while True:
        try:
            return next(csv.reader([text], strict=True)), k
        except csv.Error:
            if not _open_quote(text):
                return None, j
        if k + 1 >= len(lines):
            return (None, j) if final else (None, -1)
        if len(text) > _MAX_RECORD:
            return None, j
        k += 1
        text += "\n" + lines[k]


def _open_quote(text: str) -> bool:
    """Does ``text`` end inside a quoted field (so the record continues on the next line)?"""
    try:
        next(csv.reader([text + '"'], strict=True))
    except csv.Error:
        return False
    return True


def audience_jsonl(members: Iterable[tuple[str, dict[str, Any]]]) -> bytes:
    """Serialize an inline audience for the bucket (one JSON object per line)."""
    return b"".join(
        json.dumps({"email": email, "variables": variables}, separators=(",", ":")).encode() + b"\n"
        for email, variables in members
    )
