"""The job table's layout: every key the repositories write, built in one place.

The table's key attribute names and index names come from ``massmailer.spec.JOB_TABLE``.

=====================  ====================  ======  ==========================================
item                   PK                    SK      notes
=====================  ====================  ======  ==========================================
campaign               CAMPAIGN#<id>         META    status, counters (c_*), split cursor (<1 KiB)
campaign content       CAMPAIGN#<id>         CONTENT the campaign document (templates, options)
campaign card          CAMPAIGN#<id>         CARD    name, created, send_at; GSI1PK=CAMPAIGNS (the list)
parked batch           CAMPAIGN#<id>         PARKED# a batch that arrived while paused (#<queue msg id>)
campaign roster        CAMPAIGN#<id>         RCPT#   one split chunk's recipients (#<chunk start, 24 digits>)
recipient export       EXPORT#<id>           EXPORT  status, lease, multipart upload checkpoint, TTL 7 days
automation             AUTOMATION#<id>       AUTOMA… definition, status, overlap lock; GSI1PK=AUTOMATIONS
automation run         AUTOMATION#<id>       RUN#<t> a run (t: scheduled time, UTC), its state and log
message record         MSG#<message_id>      MSG     status, attempts, lease; GSI1PK=PMID#<id> (opt-in)
suppression            SUPP#<address key>    SUPP    reason, details
suppressed since       SUPPSINCE#<UTC hour>  <ms>#   + the address key: suppressions by time, TTL 1 day
idempotency key        IDEMP#<scope:key>     IDEMP   state, request hash, ids, lease, response; TTL 24 h
processed SES event    EVT#<digest>          EVT     de-duplicates notifications, TTL 30 days
counted queue message  COUNTED#<message id>  COUNTED a sender batch's counts were added, TTL 14 days
rate-limit window      RATE#<provider>       W#<n>   tokens used in second n, TTL
failure window         FAIL#<provider>       W#<n>   a provider's failures in window n, TTL
breaker state          BREAKER#<provider>    STATE   a circuit breaker's state, versioned
=====================  ====================  ======  ==========================================

Repositories (one module each): ``campaigns`` (META + CONTENT; ``count_batch`` also writes the
COUNTED marker in the same transaction), ``messages`` (MSG and the GSI1 provider index),
``exports`` (EXPORT), ``suppressions`` (SUPP), ``idempotency`` (IDEMP), ``provider_state`` (W# and STATE), ``markers``
(EVT and reading COUNTED).
"""

from __future__ import annotations

from datetime import UTC, datetime

from massmailer.addresses import address_key
from massmailer.spec import JOB_TABLE

PK = JOB_TABLE.partition_key
SK = JOB_TABLE.sort_key
PROVIDER_INDEX = JOB_TABLE.indexes[0]  # GSI1: SES's message id → message record; the campaigns' list
CAMPAIGN_LIST = "CAMPAIGNS"  # GSI1PK of every campaign's CARD: one index partition, newest first by GSI1SK

META = "META"
CONTENT = "CONTENT"
CARD = "CARD"  # sorts before CONTENT, so get_campaign's CONTENT..META query does not read it
SUPPRESSION_PREFIX = "SUPP#"
CAMPAIGN_PREFIX = "CAMPAIGN#"
MESSAGE_PREFIX = "MSG#"
WINDOW_PREFIX = "W#"
STATE = "STATE"
PARKED_PREFIX = "PARKED#"
ROSTER_PREFIX = "RCPT#"
ROSTER_DIGITS = 24  # a split checkpoint is below 10^24 (splitting.Checkpoint.encode)
ROSTER_LAST = ROSTER_PREFIX + "9" * ROSTER_DIGITS


def campaign_partition(campaign_id: str) -> str:
    return f"{CAMPAIGN_PREFIX}{campaign_id}"


def campaign_key(campaign_id: str) -> dict[str, str]:
    return {PK: campaign_partition(campaign_id), SK: META}


def campaign_content_key(campaign_id: str) -> dict[str, str]:
    """The campaign's document, apart from META: every counter update writes META, and DynamoDB
    bills a write per KiB of the whole item, so the templates must not ride along (3 WRU → 1)."""
    return {PK: campaign_partition(campaign_id), SK: CONTENT}


def campaign_card_key(campaign_id: str) -> dict[str, str]:
    """The campaign's card for the list (``GET /v1/campaigns``): small, written once, indexed in GSI1.
    Not META (every counter update rewrites META, and an indexed META would pay the index write each
    time) nor CONTENT (the templates would be copied into the index and read by every list page)."""
    return {PK: campaign_partition(campaign_id), SK: CARD}


def campaign_list_key(created_sort: str, campaign_id: str) -> dict[str, str]:
    """The card's GSI1 keys: ``created_sort`` is the creation time as fixed-width UTC text."""
    return {PROVIDER_INDEX.partition_key: CAMPAIGN_LIST, PROVIDER_INDEX.sort_key: f"{created_sort}#{campaign_id}"}


def parked_key(campaign_id: str, queue_message_id: str) -> dict[str, str]:
    """A batch parked while its campaign is paused, in the campaign's partition (one Query lists them)."""
    return {PK: campaign_partition(campaign_id), SK: f"{PARKED_PREFIX}{queue_message_id}"}


def roster_sort_key(start: int) -> str:
    return f"{ROSTER_PREFIX}{start:0{ROSTER_DIGITS}d}"


def roster_key(campaign_id: str, start: int) -> dict[str, str]:
    """The recipients of the split chunk that began at checkpoint ``start``, in the campaign's
    partition: listed in audience order by one Query (``GET /v1/campaigns/{id}/recipients``)."""
    return {PK: campaign_partition(campaign_id), SK: roster_sort_key(start)}


def export_key(export_id: str) -> dict[str, str]:
    """A recipients export (``massmailer.exports``): its own partition, read by id alone."""
    return {PK: f"EXPORT#{export_id}", SK: "EXPORT"}


AUTOMATION = "AUTOMATION"
AUTOMATION_LIST = "AUTOMATIONS"  # GSI1PK of every automation: one index partition, newest first by GSI1SK
RUN_PREFIX = "RUN#"


def automation_partition(automation_id: str) -> str:
    return f"{AUTOMATION}#{automation_id}"


def automation_key(automation_id: str) -> dict[str, str]:
    """An automation (``store.automations``): definition, status, overlap lock; its runs share the partition."""
    return {PK: automation_partition(automation_id), SK: AUTOMATION}


def automation_list_sort(created_at: float, automation_id: str) -> str:
    """The automation's GSI1SK under ``AUTOMATION_LIST``: creation time as fixed-width UTC text."""
    return f"{datetime.fromtimestamp(created_at, UTC):%Y%m%dT%H%M%S.%f}#{automation_id}"


def run_key(automation_id: str, run_id: str) -> dict[str, str]:
    """A run: ``run_id`` is its scheduled time, fixed-width UTC, so the runs sort by time."""
    return {PK: automation_partition(automation_id), SK: f"{RUN_PREFIX}{run_id}"}


def message_key(message_id: str) -> dict[str, str]:
    return {PK: f"{MESSAGE_PREFIX}{message_id}", SK: "MSG"}


def suppression_key(address: str) -> dict[str, str]:
    return {PK: f"{SUPPRESSION_PREFIX}{address_key(address)}", SK: "SUPP"}


RECENT_SUPPRESSION_PREFIX = "SUPPSINCE#"
_HOUR = 3600


def _hour_partition(hour: int) -> str:
    return f"{RECENT_SUPPRESSION_PREFIX}{datetime.fromtimestamp(hour * _HOUR, UTC):%Y%m%d%H}"


def recent_suppression_sort(when: float) -> str:
    return f"{int(when * 1000):013d}#"


def recent_suppression_key(when: float, address: str) -> dict[str, str]:
    """A suppression in the "suppressed since" log: one partition per UTC hour, sorted by time (ms)."""
    return {PK: _hour_partition(int(when // _HOUR)), SK: recent_suppression_sort(when) + address_key(address)}


def recent_suppression_partitions(since: float, now: float) -> list[str]:
    """The hour partitions holding suppressions from ``since`` to ``now`` (at least ``since``'s)."""
    first, last = int(since // _HOUR), int(max(since, now) // _HOUR)
    return [_hour_partition(hour) for hour in range(first, last + 1)]


def recent_suppression_address(sort_key: str) -> str:
    return sort_key.partition("#")[2]


def idempotency_key(key: str) -> dict[str, str]:
    return {PK: f"IDEMP#{key}", SK: "IDEMP"}


def counted_key(delivery: str) -> dict[str, str]:
    return {PK: f"COUNTED#{delivery}", SK: "COUNTED"}


def event_key(digest: str) -> dict[str, str]:
    return {PK: f"EVT#{digest}", SK: "EVT"}


def provider_index_key(provider_message_id: str) -> dict[str, str]:
    return {PROVIDER_INDEX.partition_key: f"PMID#{provider_message_id}", PROVIDER_INDEX.sort_key: "MSG"}


def rate_partition(provider: str) -> str:
    """The provider's shared token windows (``massmailer.resilience.RateLimiter``)."""
    return f"RATE#{provider}"


def failure_partition(provider: str) -> str:
    """The provider's failure-count windows (``massmailer.resilience.CircuitBreaker``)."""
    return f"FAIL#{provider}"


def breaker_partition(provider: str) -> str:
    """The provider's circuit-breaker state (``massmailer.resilience.CircuitBreaker``)."""
    return f"BREAKER#{provider}"


def parking_partition(provider: str) -> str:
    """Where a provider out of its daily quota is parked (``massmailer.resilience.ProviderParking``)."""
    return f"PARK#{provider}"


def window_key(partition: str, window: int) -> dict[str, str]:
    return {PK: partition, SK: f"{WINDOW_PREFIX}{window}"}


def state_key(partition: str) -> dict[str, str]:
    return {PK: partition, SK: STATE}
