"""SES notifications against the DynamoDB adapter (moto): status, suppression, counters, replays."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdas.bounce import handler as bounce_handler
from local.provision import create_job_table
from massmailer.models import Status
from massmailer.notifications import process_lambda_event, process_notification
from massmailer.store import Stores
from tests.support import make_campaign

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

EVENTS = Path(__file__).resolve().parents[1] / "events" / "ses"
CAMPAIGN = "cmp-spring"
JANE_PMID = "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000"
JANE_SOFT_PMID = "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0681-000000"


def load_text(name: str) -> str:
    return (EVENTS / name).read_text(encoding="utf-8")


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield boto3.resource("dynamodb", region_name="eu-west-1")


@pytest.fixture
def table(dynamodb: Any) -> Any:
    create_job_table(dynamodb.meta.client, "massmailer-test-jobs")
    return dynamodb.Table("massmailer-test-jobs")


@pytest.fixture
def store(table: Any) -> Stores:
    store = Stores.dynamo(table, index_provider_ids=True)  # the fixtures carry SES ids only (no tag)
    store.campaigns.put_campaign(make_campaign(CAMPAIGN))
    return store


@pytest.fixture
def context() -> Any:
    class LambdaContext:
        function_name = "massmailer-test-bounce"
        memory_limit_in_mb = 512
        invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:massmailer-test-bounce"
        aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"

    return LambdaContext()


def given_sent(store: Stores, message_id: str, email: str, provider_message_id: str | None) -> None:
    claim = store.messages.claim_recipient(
        message_id, email=email, campaign_id=CAMPAIGN, lane="low", attempt=0, lease_seconds=300
    )
    assert claim.claimed
    if provider_message_id:
        store.messages.record_sent(message_id, claim.token, "ses", provider_message_id)


def items_with_prefix(table: Any, prefix: str) -> list[dict[str, Any]]:
    items = table.scan()["Items"]
    return [item for item in items if str(item["PK"]).startswith(prefix)]


def test_hard_bounce_of_a_sent_record_is_bounced_suppressed_and_counted_once(store: Stores, table: Any) -> None:
    given_sent(store, f"{CAMPAIGN}.jane", "jane@example.com", JANE_PMID)

    first = process_notification(store, load_text("identity-bounce-permanent-general-dsn.json"))

    record = store.messages.get_message(f"{CAMPAIGN}.jane")
    assert record["status"] == Status.BOUNCED
    assert "5.1.1" in record["event_detail"]
    assert store.suppressions.is_suppressed("jane@example.com")
    assert not store.suppressions.is_suppressed("mary@example.com") and not store.suppressions.is_suppressed(
        "richard@example.com"
    )
    suppression = items_with_prefix(table, "SUPP#")
    assert [s["reason"] for s in suppression] == ["bounce"]
    assert json.loads(suppression[0]["details"])["bounceType"] == "Permanent"
    assert store.campaigns.get_campaign(CAMPAIGN).counts.bounced == 1
    assert first.campaign_counts == {"bounced": 1}

    replay = process_notification(store, load_text("identity-bounce-permanent-general-dsn.json"))

    assert replay.duplicate
    assert store.messages.get_message(f"{CAMPAIGN}.jane")["status"] == Status.BOUNCED
    assert len(items_with_prefix(table, "SUPP#")) == 1
    # the record's own transition proves a replay: no event marker written (one write saved per event)
    assert items_with_prefix(table, "EVT#") == []
    assert store.campaigns.get_campaign(CAMPAIGN).counts.bounced == 1


def test_soft_bounce_is_counted_once_and_not_suppressed(store: Stores) -> None:
    given_sent(store, f"{CAMPAIGN}.jane", "jane@example.com", JANE_SOFT_PMID)

    for _ in range(2):  # the notification and its replay
        process_notification(store, load_text("identity-bounce-transient-mailboxfull.json"))

    record = store.messages.get_message(f"{CAMPAIGN}.jane")
    assert record["status"] == Status.SOFT_BOUNCED
    assert record["soft_bounces"] == 1
    assert not store.suppressions.is_suppressed("jane@example.com")
    assert store.campaigns.get_campaign(CAMPAIGN).counts.soft_bounced == 1


def test_send_event_settles_a_sending_record_found_by_its_tag(store: Stores) -> None:
    given_sent(store, f"{CAMPAIGN}.recipient", "recipient@example.com", provider_message_id=None)
    document = json.loads(load_text("event-send.json"))
    document["mail"]["tags"]["message_id"] = [f"{CAMPAIGN}.recipient"]

    process_notification(store, document)

    assert store.messages.get_message(f"{CAMPAIGN}.recipient")["status"] == Status.SENT


def test_open_event_counts_on_the_record_without_changing_status(store: Stores) -> None:
    pmid = "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000"
    given_sent(store, f"{CAMPAIGN}.recipient", "recipient@example.com", pmid)

    for name in ("event-delivery.json", "event-open.json", "event-open.json"):
        process_notification(store, load_text(name))

    record = store.messages.get_message(f"{CAMPAIGN}.recipient")
    assert record["status"] == Status.DELIVERED
    assert record["opens"] == 1


def test_sqs_batch_through_the_handler(store: Stores, context: Any) -> None:
    given_sent(
        store,
        f"{CAMPAIGN}.richard",
        "richard@example.com",
        "000001378603177f-7a5433e7-8edb-42ae-af10-f0181f34d6ee-000000",
    )
    event = json.loads(load_text("envelope-sqs-sns-batch-mixed.json"))

    response = bounce_handler.handler(event, context, stores=store)
    replay = bounce_handler.handler(event, context, stores=store)

    assert response == replay == {"batchItemFailures": []}
    assert store.messages.get_message(f"{CAMPAIGN}.richard")["status"] == Status.COMPLAINED
    assert store.suppressions.suppressed_among(["richard@example.com", "jane@example.com", "mary@example.com"]) == {
        "richard@example.com"
    }
    assert store.campaigns.get_campaign(CAMPAIGN).counts.complained == 1


def test_an_unreachable_table_fails_the_records_for_a_retry(dynamodb: Any, context: Any) -> None:
    missing = Stores.dynamo(dynamodb.Table("massmailer-test-missing"))
    event = json.loads(load_text("envelope-sqs-sns-batch-mixed.json"))

    response = bounce_handler.handler(event, context, stores=missing)

    assert response == {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]]}


def test_topic_validation_text_is_acknowledged_without_touching_the_table(dynamodb: Any, context: Any) -> None:
    missing = Stores.dynamo(dynamodb.Table("massmailer-test-missing"))  # any store access would fail
    event = json.loads(load_text("envelope-sqs-sns-topic-validation-nonjson.json"))

    assert bounce_handler.handler(event, context, stores=missing) == {"batchItemFailures": []}
    assert process_lambda_event(missing, event)[0].ignored
