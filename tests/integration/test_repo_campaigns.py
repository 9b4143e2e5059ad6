"""The campaigns contract (META + CONTENT, counters, split checkpoint, counted batches), against
DynamoDB (moto) and the in-memory twin alike; then the Dynamo calls' conflict retries."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from massmailer.models import CampaignStatus
from massmailer.store import Campaigns, Stores
from massmailer.store.campaigns import DynamoCampaigns
from tests.support import make_campaign


@pytest.fixture
def campaigns(stores: Stores) -> Campaigns:
    return stores.campaigns


def test_a_campaign_reads_back_with_zero_counters(campaigns: Campaigns) -> None:
    campaign = make_campaign("c1")
    campaigns.put_campaign(campaign)
    stored = campaigns.get_campaign("c1")
    assert stored is not None
    assert stored.campaign.model_dump() == campaign.model_dump()
    assert stored.counts.total == stored.counts.sent == 0 and (stored.split_cursor, stored.split_done) == (0, False)
    assert campaigns.get_campaign("missing") is None


def test_status_and_error_are_kept(campaigns: Campaigns) -> None:
    campaigns.put_campaign(make_campaign("c1"))
    campaigns.set_campaign_status("c1", CampaignStatus.FAILED, "stopped: store unavailable")
    stored = campaigns.get_campaign("c1")
    assert stored is not None
    assert stored.campaign.status == CampaignStatus.FAILED
    assert stored.campaign.last_error == "stopped: store unavailable"


def test_counts_add_up_and_never_create_a_campaign(campaigns: Campaigns) -> None:
    campaigns.put_campaign(make_campaign("c1"))
    campaigns.add_campaign_counts("c1", {"bounced": 1, "sent": 0})
    campaigns.add_campaign_counts("c1", {"bounced": 2})
    campaigns.add_campaign_counts("c1", {})
    campaigns.add_campaign_counts("missing", {"bounced": 1})
    stored = campaigns.get_campaign("c1")
    assert stored is not None and stored.counts.bounced == 3
    assert campaigns.get_campaign("missing") is None


def test_split_checkpoint_moves_once(campaigns: Campaigns) -> None:
    campaigns.put_campaign(make_campaign("c1", status=CampaignStatus.SPLITTING))
    assert campaigns.advance_split("c1", 0, 100, {"total": 5}, False) is True
    assert campaigns.advance_split("c1", 0, 100, {"total": 5}, False) is False
    stored = campaigns.get_campaign("c1")
    assert stored is not None
    assert stored.split_cursor == 100 and stored.counts.total == 5 and stored.counts.queued == 5
    assert campaigns.advance_split("c1", 100, 200, {}, True) is True
    done = campaigns.get_campaign("c1")
    assert done is not None and done.split_done and done.counts.total == 5


def test_a_queue_messages_counts_are_added_once_however_often_it_comes(campaigns: Campaigns) -> None:
    campaigns.put_campaign(make_campaign("c1"))
    assert campaigns.count_batch("c1", "sqs-1", {"sent": 3, "failed": 1}) is True
    assert campaigns.count_batch("c1", "sqs-1", {"sent": 3, "failed": 1}) is False  # the same message again
    assert campaigns.count_batch("c1", "sqs-2", {"sent": 2}) is True
    assert campaigns.count_batch("missing", "sqs-3", {"sent": 2}) is False
    assert campaigns.count_batch("c1", "sqs-4", {"sent": 0}) is True  # nothing to add: nothing written
    stored = campaigns.get_campaign("c1")
    assert stored is not None and (stored.counts.sent, stored.counts.failed) == (5, 1)


# -- DynamoDB only: writes refused by a concurrent transaction are tried again ----------------------


def test_counting_retries_a_transaction_conflict_on_the_campaign_item(aws_env: None) -> None:
    class Client:
        calls = 0

        def transact_write_items(self, **_: object) -> None:
            Client.calls += 1
            if Client.calls <= 2:  # another sender's transaction on the same counters
                raise ClientError(
                    {
                        "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                        "CancellationReasons": [{"Code": "None"}, {"Code": "TransactionConflict"}],
                    },
                    "TransactWriteItems",
                )

    class Table:
        name = "t"
        meta = type("Meta", (), {"client": Client()})()

    assert DynamoCampaigns(Table()).count_batch("c1", "sqs-1", {"sent": 1}) is True
    assert Client.calls == 3


def test_a_plain_write_refused_by_a_transaction_on_its_item_is_tried_again(aws_env: None) -> None:
    class Table:
        name = "t"
        meta = type("Meta", (), {"client": object()})()
        calls = 0

        def update_item(self, **_: object) -> None:
            Table.calls += 1
            if Table.calls <= 2:  # a sender's count_batch transaction holds the campaign item
                raise ClientError(
                    {"Error": {"Code": "TransactionConflictException", "Message": "conflict"}}, "UpdateItem"
                )

    DynamoCampaigns(Table()).add_campaign_counts("c1", {"delivered": 1})
    assert Table.calls == 3
