"""The campaigns contract (META + CONTENT, counters, split checkpoint, counted batches), against
DynamoDB (moto) and the in-memory twin alike; then the Dynamo calls' conflict retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from massmailer import lifecycle
from massmailer.lifecycle import MOVES, Action, TransitionNotAllowed, UnknownCampaign
from massmailer.models import CampaignStatus
from massmailer.store import Campaigns, Stores
from massmailer.store.campaigns import DynamoCampaigns
from tests.integration.conftest import Clock, open_stores
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
    moved = campaigns.transition("c1", MOVES[Action.FAIL], {"last_error": "stopped: store unavailable"})
    stored = campaigns.get_campaign("c1")
    assert stored is not None and moved == CampaignStatus.FAILED
    assert stored.campaign.status == CampaignStatus.FAILED == campaigns.status_of("c1")
    assert stored.campaign.last_error == "stopped: store unavailable"
    assert campaigns.status_of("missing") is None


# Every stored state (COMPLETED is reported, not stored: see test_lifecycle) × every action.
STORED = [s for s in CampaignStatus if s != CampaignStatus.COMPLETED]


@pytest.mark.parametrize("state", STORED)
def test_every_move_from_every_state_is_made_or_refused_naming_both_states(campaigns: Campaigns, state: str) -> None:
    for n, action in enumerate(Action):
        campaign_id = f"c{n}"
        campaigns.put_campaign(make_campaign(campaign_id, status=CampaignStatus(state)))
        move = MOVES[action]
        if CampaignStatus(state) in move.sources:
            expected = move.target or lifecycle.resume_target(split_done=False)
            assert campaigns.transition(campaign_id, move) == expected
            assert campaigns.status_of(campaign_id) == expected
        else:
            with pytest.raises(TransitionNotAllowed) as refused:
                campaigns.transition(campaign_id, move)
            assert refused.value.current == state
            assert f"from {state} to " in str(refused.value)
            assert campaigns.status_of(campaign_id) == state  # nothing written


def test_resume_goes_back_to_splitting_or_to_sending_if_the_split_finished_meanwhile(campaigns: Campaigns) -> None:
    for campaign_id, done in (("c1", False), ("c2", True)):
        campaigns.put_campaign(make_campaign(campaign_id, status=CampaignStatus.PAUSED))
        campaigns.advance_split(campaign_id, 0, 10, {"total": 1}, done)
        assert campaigns.transition(campaign_id, MOVES[Action.RESUME]) == (
            CampaignStatus.SENDING if done else CampaignStatus.SPLITTING
        )


def test_a_transition_sets_and_removes_its_fields_and_honours_expectations(campaigns: Campaigns) -> None:
    campaigns.put_campaign(make_campaign("c1"))
    rates = {"sent": 100, "bounced": 6, "bounce_rate": 0.06}
    campaigns.transition(
        "c1", MOVES[Action.AUTO_PAUSE], {"pause_cause": "bounce_rate", "pause_rates": rates}, expect={"resumes": 0}
    )
    paused = campaigns.get_campaign("c1")
    assert paused is not None and (paused.pause_cause, paused.pause_rates) == ("bounce_rate", rates)
    campaigns.transition("c1", MOVES[Action.RESUME], {"pause_cause": None, "pause_rates": None, "resumes": 1})
    resumed = campaigns.get_campaign("c1")
    assert resumed is not None and (resumed.pause_cause, resumed.pause_rates, resumed.resumes) == (None, None, 1)
    with pytest.raises(TransitionNotAllowed):  # a guard that read the campaign before the resume
        campaigns.transition("c1", MOVES[Action.AUTO_PAUSE], {"pause_cause": "bounce_rate"}, expect={"resumes": 0})
    assert campaigns.status_of("c1") == CampaignStatus.SPLITTING
    with pytest.raises(UnknownCampaign):
        campaigns.transition("missing", MOVES[Action.PAUSE])
    with pytest.raises(ValueError, match="may not set"):
        campaigns.transition("c1", MOVES[Action.PAUSE], {"c_sent": 0})


def test_a_batch_is_parked_only_while_the_campaign_is_paused(campaigns: Campaigns) -> None:
    campaigns.put_campaign(make_campaign("c1"))
    assert campaigns.park_batch("c1", "sqs-1", "low", "{}") is False
    campaigns.transition("c1", MOVES[Action.PAUSE])
    assert campaigns.park_batch("c1", "sqs-1", "low", '{"a":1}') is True
    assert campaigns.park_batch("c1", "sqs-2", "high", '{"b":2}') is True
    assert campaigns.park_batch("missing", "sqs-3", "low", "{}") is False
    parked = sorted(campaigns.parked_batches("c1"), key=lambda p: p.key)
    assert [(p.key, p.lane, p.body) for p in parked] == [("sqs-1", "low", '{"a":1}'), ("sqs-2", "high", '{"b":2}')]
    assert campaigns.get_campaign("c1") is not None  # parked batches are not part of the campaign's read
    campaigns.unpark("c1", "sqs-1")
    assert [p.key for p in campaigns.parked_batches("c1")] == ["sqs-2"]
    campaigns.transition("c1", MOVES[Action.RESUME])
    assert campaigns.park_batch("c1", "sqs-4", "low", "{}") is False


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
    assert campaigns.count_batch("c1", "sqs-5", {"cancelled": 2}) is True
    stored = campaigns.get_campaign("c1")
    assert stored is not None and (stored.counts.sent, stored.counts.failed, stored.counts.cancelled) == (5, 1, 2)


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


def test_the_list_is_newest_first_paged_by_position_and_filtered_by_name_and_by_keep(campaigns: Campaigns) -> None:
    base = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    for i in range(5):  # c0 oldest … c4 newest; names alternate between two prefixes
        campaign = make_campaign(f"c{i}").model_copy(
            update={"name": f"{'spring' if i % 2 == 0 else 'autumn'} {i}", "created_at": base + timedelta(seconds=i)}
        )
        campaigns.put_campaign(campaign)
    campaigns.add_campaign_counts("c3", {"total": 7, "sent": 2})
    campaigns.transition("c1", MOVES[Action.CANCEL])

    pages, after = [], None
    while True:
        page = campaigns.list_campaigns(2, after)
        pages.append([s.campaign_id for s in page.items])
        after = page.after
        if after is None:
            break
    assert pages == [["c4", "c3"], ["c2", "c1"], ["c0"]]

    (c3,) = [s for s in campaigns.list_campaigns(5).items if s.campaign_id == "c3"]
    assert (c3.name, c3.created_at, c3.send_at, c3.status) == ("autumn 3", base + timedelta(seconds=3), None, "SENDING")
    assert (c3.counts.total, c3.counts.sent, c3.counts.queued, c3.split_done) == (7, 2, 5, False)

    spring = campaigns.list_campaigns(10, name_prefix="spring")
    assert [s.campaign_id for s in spring.items] == ["c4", "c2", "c0"] and spring.after is None
    cancelled = campaigns.list_campaigns(10, keep=lambda s: s.status == CampaignStatus.CANCELLED)
    assert [s.campaign_id for s in cancelled.items] == ["c1"]
    assert campaigns.list_campaigns(10, "2026-03-01T12:00:02.000000Z#c2").items[0].campaign_id == "c1"


def test_the_list_skips_a_card_without_meta_and_meta_carries_no_index_keys(aws_env: None, clock: Clock) -> None:
    with open_stores("dynamodb", clock) as stores:
        campaigns = stores.campaigns
        assert isinstance(campaigns, DynamoCampaigns)
        table = campaigns._table
        campaigns.put_campaign(make_campaign("c1"))
        campaigns.put_campaign(make_campaign("c2"))
        table.delete_item(Key={"PK": "CAMPAIGN#c1", "SK": "META"})  # as if its creation stopped there
        assert [s.campaign_id for s in campaigns.list_campaigns(10).items] == ["c2"]
        # The card is indexed, META is not: the send path's counter updates write no index entry.
        card = table.get_item(Key={"PK": "CAMPAIGN#c2", "SK": "CARD"})["Item"]
        meta = table.get_item(Key={"PK": "CAMPAIGN#c2", "SK": "META"})["Item"]
        assert card["GSI1PK"] == "CAMPAIGNS" and "GSI1PK" not in meta and "GSI1SK" not in meta


def test_rosters_read_back_in_split_order_from_a_start(campaigns: Campaigns) -> None:
    campaigns.put_campaign(make_campaign("c1"))
    campaigns.put_roster("c1", 10**19 + 5, ["late@example.com"], set())  # a multi-pass checkpoint
    campaigns.put_roster("c1", 0, ["a@example.com", "b@example.com", "s@example.com"], {"s@example.com"})
    campaigns.put_roster("c1", 700, ["c@example.com"], set())
    campaigns.put_roster("c1", 700, ["c@example.com"], set())  # a replayed chunk writes the same item
    first, second = campaigns.rosters("c1", 0, limit=2)
    assert (first.start, first.identities, first.suppressed) == (
        0,
        ["a@example.com", "b@example.com", "s@example.com"],
        {"s@example.com"},
    )
    assert (second.start, second.identities, second.suppressed) == (700, ["c@example.com"], frozenset())
    assert [r.start for r in campaigns.rosters("c1", 701, limit=5)] == [10**19 + 5]
    assert campaigns.rosters("c1", 10**19 + 6) == [] and campaigns.rosters("other") == []
    stored = campaigns.get_campaign("c1")  # the rosters are not read with the campaign
    assert stored is not None and stored.campaign.campaign_id == "c1"
    assert campaigns.parked_batches("c1") == []


def test_creating_a_campaign_that_exists_changes_nothing(campaigns: Campaigns) -> None:
    assert campaigns.put_campaign(make_campaign("c1", status=CampaignStatus.SPLITTING))
    assert campaigns.advance_split("c1", 0, 5, {"total": 3}, False)
    campaigns.add_campaign_counts("c1", {"sent": 2})

    again = make_campaign("c1", status=CampaignStatus.SCHEDULED)
    again.name = "a retry's copy"
    assert not campaigns.put_campaign(again)

    stored = campaigns.get_campaign("c1")
    assert stored is not None and stored.campaign.name == "campaign c1"
    assert stored.campaign.status == CampaignStatus.SPLITTING
    assert (stored.split_cursor, stored.counts.total, stored.counts.sent) == (5, 3, 2)
