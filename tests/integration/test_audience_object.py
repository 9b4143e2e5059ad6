"""A campaign whose audience is a CSV or JSONL object already in the bucket (``audience_object``)."""

from __future__ import annotations

import email
from email import policy
from typing import Any

import boto3
import pytest

from massmailer.blobs import ObjectChanged, S3Blobs
from tests.integration.conftest import Pipeline

CSV = (
    "\ufeffEmail,first_name,code\r\n"
    "ada@example.com,Ada,C1\r\n"
    '"grace@example.com","Hopper, Grace",C2\r\n'
    "ADA@example.com,Ada again,C3\r\n"
    "not-an-address,Nobody,C4\r\n"
    "\r\n"
    'alan@example.com,"Alan ""the"" Turing",C5\r\n'
).encode()

TEMPLATE = {"name": "List", "subject": "Hi {{ first_name }}", "text": "Code {{ code }}. {{ unsubscribe_url }}"}


def _put(pipeline: Pipeline, key: str, body: bytes) -> None:
    boto3.client("s3").put_object(Bucket=pipeline.resources["bucket"], Key=key, Body=body)


def test_a_csv_audience_in_the_bucket_is_split_and_sent_with_its_columns_as_variables(pipeline: Pipeline) -> None:
    _put(pipeline, "audiences/november.csv", CSV)

    status, body = pipeline.api("POST", "/v1/campaigns", {**TEMPLATE, "audience_object": "audiences/november.csv"})
    assert status == 202, body
    assert body["recipients"] is None  # counted by the splitter: see counts.total

    pipeline.run()

    sent = {}
    for message in pipeline.ses_sent():
        parsed = email.message_from_string(message.raw_data, policy=policy.default)
        assert str(parsed["To"]) not in sent
        sent[str(parsed["To"])] = parsed
    assert sorted(sent) == ["ada@example.com", "alan@example.com", "grace@example.com"]
    assert sent["grace@example.com"]["Subject"] == "Hi Hopper, Grace"
    assert sent["alan@example.com"]["Subject"] == 'Hi Alan "the" Turing'
    assert "Code C1." in sent["ada@example.com"].get_body(("plain",)).get_content()
    _, report = pipeline.api("GET", f"/v1/campaigns/{body['campaign_id']}")
    counts = report["counts"]
    assert (counts["total"], counts["duplicates"], counts["invalid"], counts["sent"]) == (3, 1, 1, 3)
    assert report["status"] == "COMPLETED"


@pytest.mark.parametrize(
    ("request_body", "field", "reason"),
    [
        ({"audience_object": "audiences/missing.csv"}, "audience_object", "does not exist"),
        ({"audience_object": "lists/elsewhere.csv"}, "audience_object", "audiences/"),
        ({"audience_object": "audiences/list.xlsx"}, "audience_object", ".csv"),
        ({"audience_object": "audiences/no-email.csv"}, "audience_object", "no 'email' column"),
        ({"audience_object": "audiences/header-only.csv"}, "audience_object", "no rows"),
        ({"audience_object": "audiences/empty.jsonl"}, "audience_object", "no rows"),
        ({}, "body", "exactly one"),
        (
            {"audience_object": "audiences/no-email.csv", "audience": [{"email": "a@example.com"}]},
            "body",
            "exactly one",
        ),
    ],
)
def test_an_unusable_audience_object_is_a_422_naming_the_field_and_reason(
    pipeline: Pipeline, request_body: dict[str, Any], field: str, reason: str
) -> None:
    _put(pipeline, "audiences/no-email.csv", b"name,city\nAda,Lisbon\n")
    _put(pipeline, "audiences/header-only.csv", b"email,name\r\n")
    _put(pipeline, "audiences/empty.jsonl", b"")

    status, body = pipeline.api("POST", "/v1/campaigns", {**TEMPLATE, **request_body})

    assert status == 422, body
    errors = body["errors"]
    assert any(e["field"] == field and reason in e["reason"] for e in errors), errors
    assert pipeline.depth("split") == 0 and pipeline.depth("low") == 0


def test_an_audience_replaced_after_acceptance_fails_the_campaign_instead_of_sending_another_list(
    pipeline: Pipeline,
) -> None:
    _put(pipeline, "audiences/list.csv", b"email\na@example.com\n")
    status, body = pipeline.api("POST", "/v1/campaigns", {**TEMPLATE, "audience_object": "audiences/list.csv"})
    assert status == 202
    _put(pipeline, "audiences/list.csv", b"email\nsomeone-else@example.com\n")

    pipeline.run()

    assert pipeline.ses_sent() == []
    _, report = pipeline.api("GET", f"/v1/campaigns/{body['campaign_id']}")
    assert report["status"] == "FAILED" and "replaced" in report["last_error"]


def test_s3_blobs_head_and_ranged_blocks(pipeline: Pipeline) -> None:
    blobs = S3Blobs(boto3.client("s3"), pipeline.resources["bucket"])
    _put(pipeline, "audiences/e.csv", b"")
    _put(pipeline, "audiences/f.csv", b"email\na@x.io\nb@x.io")

    empty, head = blobs.head("audiences/e.csv", 100), blobs.head("audiences/f.csv", 8)
    assert empty is not None and (empty.data, empty.size) == (b"", 0)
    assert head is not None and (head.data, head.size) == (b"email\na@", 19) and head.etag
    assert blobs.head("audiences/none.csv", 8) is None
    assert list(blobs.blocks("audiences/f.csv", 6, if_match=head.etag)) == [(b"a@x.io\n", 13), (b"b@x.io", 19)]
    assert list(blobs.blocks("audiences/f.csv", 19)) == []  # a checkpoint at the very end
    with pytest.raises(ObjectChanged):
        list(blobs.blocks("audiences/f.csv", 6, if_match='"not-the-etag"'))


def test_a_multi_pass_split_with_continuations_on_dynamodb_s3_and_sqs_sends_everyone_once(
    pipeline: Pipeline,
) -> None:
    from massmailer import wiring
    from massmailer.models import SplitRequest
    from massmailer.splitting import split_campaign

    rows = (
        ["email,n"]
        + [f"u{i}@example.com,{i}" for i in range(300)]
        + [f"U{i}@EXAMPLE.COM,dup" for i in range(0, 300, 7)]
    )
    _put(pipeline, "audiences/big.csv", ("\n".join(rows) + "\n").encode())
    template = {**TEMPLATE, "subject": "Hi {{ n }}", "text": "n={{ n }} {{ unsubscribe_url }}"}
    status, body = pipeline.api("POST", "/v1/campaigns", {**template, "audience_object": "audiences/big.csv"})
    assert status == 202
    pipeline.sqs.purge_queue(QueueUrl=pipeline.resources["queues"]["split"])  # this test splits by hand

    ctx = wiring.splitter_context(time_left=lambda: 1e9)
    ctx.dedupe_bytes, ctx.batch_size = 512, 10  # 64 slots: 32 addresses a pass → ~10 passes
    ticks = iter(range(10_000))
    ctx.time_left = lambda: 0.0 if next(ticks) % 3 == 2 else 1e9  # a continuation every few checkpoints
    invocations = 0
    while True:
        invocations += 1
        report = split_campaign(ctx, SplitRequest(campaign_id=body["campaign_id"]))
        if report.done:
            break
        assert report.continued and invocations < 500
    assert report.passes >= 8 and invocations > 5
    stored = ctx.campaigns.get_campaign(body["campaign_id"])
    assert stored is not None and stored.split_cursor > 10**16  # (passes, pass, offset) in one DynamoDB number

    pipeline.run()

    sent = [str(email.message_from_string(m.raw_data, policy=policy.default)["To"]) for m in pipeline.ses_sent()]
    assert sorted(sent) == sorted(f"u{i}@example.com" for i in range(300))
    _, report_json = pipeline.api("GET", f"/v1/campaigns/{body['campaign_id']}")
    counts = report_json["counts"]
    assert (counts["total"], counts["duplicates"], counts["invalid"], counts["sent"]) == (300, 43, 0, 300)
