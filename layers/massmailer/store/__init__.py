"""The job table, as one small repository per stored aggregate.

Each repository is a Protocol (the port the domain depends on), a DynamoDB class over the one
table and an in-memory twin with the same contract (``tests/integration/test_repo_*.py`` runs each
contract against both). Key builders and the table layout: ``massmailer.store.keys``.

==================  ================  ===================  ========================  ============
module              port              DynamoDB             in memory                 items
==================  ================  ===================  ========================  ============
campaigns           Campaigns         DynamoCampaigns      InMemoryCampaigns         META, CONTENT, CARD, PARKED#, RCPT#
exports             Exports           DynamoExports        InMemoryExports           EXPORT
automations         Automations       DynamoAutomations    InMemoryAutomations       AUTOMATION, RUN#
messages            Messages          DynamoMessages       InMemoryMessages          MSG (+ GSI1)
suppressions        Suppressions      DynamoSuppressions   InMemorySuppressions      SUPP
idempotency         IdempotencyKeys   DynamoIdempotency…   InMemoryIdempotencyKeys   IDEMP
provider_state      SharedState       DynamoSharedState    InMemorySharedState       W#, STATE
markers             Markers           DynamoMarkers        InMemoryMarkers           EVT, COUNTED
==================  ================  ===================  ========================  ============

``Stores`` bundles one of each for wiring; domain code takes only the repositories it uses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from massmailer.store.automations import Automations, DynamoAutomations, InMemoryAutomations
from massmailer.store.campaigns import (
    CampaignPage,
    Campaigns,
    CampaignSummary,
    DynamoCampaigns,
    InMemoryCampaigns,
    ParkedBatch,
    StoredCampaign,
)
from massmailer.store.dynamo import Clock, StoreUnavailable
from massmailer.store.exports import DynamoExports, Exports, InMemoryExports
from massmailer.store.idempotency import DynamoIdempotencyKeys, IdempotencyKeys, InMemoryIdempotencyKeys
from massmailer.store.markers import DynamoMarkers, InMemoryMarkers, Markers
from massmailer.store.memory import Meter
from massmailer.store.messages import SENT_LIKE, Claim, DynamoMessages, InMemoryMessages, Messages
from massmailer.store.provider_state import DynamoSharedState, InMemorySharedState, SharedState
from massmailer.store.suppressions import DynamoSuppressions, InMemorySuppressions, Suppressions

__all__ = [
    "SENT_LIKE",
    "Automations",
    "CampaignPage",
    "CampaignSummary",
    "Campaigns",
    "Claim",
    "Exports",
    "IdempotencyKeys",
    "InMemoryStores",
    "Markers",
    "Messages",
    "Meter",
    "ParkedBatch",
    "SharedState",
    "StoreUnavailable",
    "StoredCampaign",
    "Stores",
    "Suppressions",
]


@dataclass(frozen=True)
class Stores:
    """One repository per aggregate, over one table (or in memory)."""

    campaigns: Campaigns
    messages: Messages
    suppressions: Suppressions
    idempotency: IdempotencyKeys
    shared_state: SharedState
    markers: Markers
    exports: Exports
    automations: Automations

    @staticmethod
    def dynamo(table: Any, clock: Clock = time.time, *, index_provider_ids: bool = False) -> Stores:
        """``table``: a boto3 ``Table`` resource; ``index_provider_ids``: see ``DynamoMessages``."""
        return Stores(
            campaigns=DynamoCampaigns(table, clock),
            messages=DynamoMessages(table, clock, index_provider_ids=index_provider_ids),
            suppressions=DynamoSuppressions(table, clock),
            idempotency=DynamoIdempotencyKeys(table, clock),
            shared_state=DynamoSharedState(table, clock),
            markers=DynamoMarkers(table, clock),
            exports=DynamoExports(table, clock),
            automations=DynamoAutomations(table, clock),
        )

    @staticmethod
    def in_memory(clock: Clock = time.time, *, index_provider_ids: bool = False) -> InMemoryStores:
        return InMemoryStores.create(clock, index_provider_ids=index_provider_ids)


@dataclass(frozen=True)
class InMemoryStores(Stores):
    """The in-memory twins, typed as such (tests inspect them), sharing one write ``Meter``."""

    campaigns: InMemoryCampaigns
    messages: InMemoryMessages
    suppressions: InMemorySuppressions
    idempotency: InMemoryIdempotencyKeys
    shared_state: InMemorySharedState
    markers: InMemoryMarkers
    exports: InMemoryExports
    automations: InMemoryAutomations
    meter: Meter

    @staticmethod
    def create(clock: Clock = time.time, *, index_provider_ids: bool = False) -> InMemoryStores:
        meter = Meter()
        markers = InMemoryMarkers(clock, meter)
        return InMemoryStores(
            campaigns=InMemoryCampaigns(markers, clock, meter),
            messages=InMemoryMessages(clock, meter, index_provider_ids=index_provider_ids),
            suppressions=InMemorySuppressions(clock, meter),
            idempotency=InMemoryIdempotencyKeys(clock, meter),
            shared_state=InMemorySharedState(clock, meter),
            markers=markers,
            exports=InMemoryExports(clock, meter),
            automations=InMemoryAutomations(clock, meter),
            meter=meter,
        )

    @property
    def writes(self) -> int:
        """What DynamoDB would bill as write requests, over all the twins (for benchmarks)."""
        return self.meter.writes
