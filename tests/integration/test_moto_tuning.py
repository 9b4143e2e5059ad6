"""The local runtime's moto (``local.moto_process``: keep-alive server + ``local.moto_tuning``) answers
every call as stock moto does.

Given the same sequence of AWS calls — the job table's whole repertoire (conditional claims, counters,
``if_not_exists``, ``list_append``, ADD/REMOVE/DELETE, binary and set values, every ``ReturnValues``,
batch reads, queries on the table and on its GSI (``IndexName``), scans with filters and pages,
transactions that succeed and that are cancelled, conditional failures returning the old item) and the
errors moto raises for bad expressions — plus SQS, SES v2 and Scheduler calls (JSON protocols share
the serializer fast path), when it runs against the tuned moto process and against stock
``ThreadedMotoServer``, then every answer is the same: the data, or the whole error (code, message,
``Item``, ``CancellationReasons``), and the response headers the application set.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from local.children import ROOT
from local.provision import create_job_table
from local.smtp_relay import free_port
from massmailer.spec import JOB_TABLE

pytestmark = pytest.mark.slow

ENV = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
VOLATILE = {"ResponseMetadata", "MessageId", "ReceiptHandle", "MD5OfMessageBody", "QueueUrl", "ScheduleArn"}


@pytest.fixture(scope="module")
def tuned_url() -> Iterator[str]:
    env = {**os.environ, **ENV, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "layers")])}
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "local.moto_process", "--port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    assert line.startswith("READY"), line
    try:
        yield f"http://127.0.0.1:{line.split()[1]}"
    finally:
        process.terminate()
        process.wait(timeout=60)


@pytest.fixture(scope="module")
def stock_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _client(service: str, url: str) -> Any:
    return boto3.session.Session(
        aws_access_key_id="local", aws_secret_access_key="local", region_name="us-east-1"
    ).client(service, endpoint_url=url, config=Config(retries={"max_attempts": 1}))


# Response headers that differ by server or by call (the stock server adds Server/Date/Connection).
VOLATILE_HEADERS = {"date", "server", "connection", "x-amzn-requestid", "x-amz-request-id", "x-amz-id-2"}


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        scrubbed = {k: _scrub(v) for k, v in value.items() if k not in VOLATILE}
        headers = (value.get("ResponseMetadata") or {}).get("HTTPHeaders")
        if headers is not None:  # the headers the application set are part of the answer
            scrubbed["headers"] = {k: v for k, v in headers.items() if k.lower() not in VOLATILE_HEADERS}
        return scrubbed
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def _answers(url: str, calls: list[Callable[[Callable[[str], Any]], Any]]) -> list[Any]:
    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in clients:
            clients[service] = _client(service, url)
        return clients[service]

    answers = []
    for call in calls:
        try:
            answers.append(("ok", _scrub(call(client))))
        except ClientError as exc:  # the whole error: code, message, Item, CancellationReasons, headers
            answers.append(("error", _scrub(exc.response)))
    return answers


def _key(pk: str, sk: str = "M") -> dict[str, Any]:
    return {"PK": {"S": pk}, "SK": {"S": sk}}


def _update(pk: str, expr: str, values: dict[str, Any] | None = None, **kwargs: Any) -> Callable[..., Any]:
    def call(client: Callable[[str], Any]) -> Any:
        params: dict[str, Any] = {"TableName": "jobs", "Key": _key(pk), "UpdateExpression": expr, **kwargs}
        if values is not None:
            params["ExpressionAttributeValues"] = values
        return client("dynamodb").update_item(**params)

    return call


def _count_once(marker: str, campaign: str) -> list[dict[str, Any]]:
    return [
        {
            "Put": {
                "TableName": "jobs",
                "Item": {**_key(f"CNT#{marker}"), "expires_at": {"N": "1800000000"}},
                "ConditionExpression": "attribute_not_exists(PK)",
            }
        },
        {
            "Update": {
                "TableName": "jobs",
                "Key": _key(campaign),
                "UpdateExpression": "ADD #c0 :c0",
                "ConditionExpression": "attribute_exists(PK)",
                "ExpressionAttributeNames": {"#c0": "c_sent"},
                "ExpressionAttributeValues": {":c0": {"N": "50"}},
            }
        },
    ]


def _dynamodb_calls() -> list[Callable[..., Any]]:
    ddb: Callable[[Callable[[str], Any]], Any]
    calls: list[Callable[..., Any]] = [lambda c: create_job_table(c("dynamodb"), "jobs") or {}]
    claim = (
        "SET #s = :sending, lease_until = :lease, claim_token = :token, attempts = :attempts, "
        "created_at = if_not_exists(created_at, :iso), updated_at = :iso"
    )
    claim_values = {
        ":sending": {"S": "SENDING"},
        ":lease": {"N": "1700000300.125"},
        ":token": {"S": "tok-1"},
        ":attempts": {"N": "1"},
        ":iso": {"S": "2026-01-01T00:00:00+00:00"},
        ":q": {"S": "QUEUED"},
        ":r": {"S": "RETRY_WAIT"},
        ":now": {"N": "1700000000"},
    }
    condition = "attribute_not_exists(PK) OR #s IN (:q, :r) OR (#s = :sending AND lease_until < :now)"
    for pk in ("msg-1", "msg-1", "msg-2"):  # new, then taken (condition fails with ALL_OLD), then new
        calls.append(
            _update(
                pk,
                claim,
                claim_values,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#s": "status"},
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        )
    calls += [
        _update(
            "msg-1",
            "SET #s = :sent, provider = :p, sent_at = :iso REMOVE lease_until, claim_token",
            {":sent": {"S": "SENT"}, ":sending": {"S": "SENDING"}, ":p": {"S": "smtp"}, ":iso": {"S": "t"}},
            ConditionExpression="#s = :sending",
            ExpressionAttributeNames={"#s": "status"},
            ReturnValues="UPDATED_OLD",
        ),
        _update(
            "msg-1",
            "SET #s = :x",
            {":x": {"S": "SENT"}},
            ConditionExpression="#s = :x",
            ExpressionAttributeNames={"#s": "status"},
            ReturnValues="UPDATED_NEW",
        ),
        _update(
            "cmp-1", "ADD c_sent :one, c_failed :two", {":one": {"N": "1"}, ":two": {"N": "2"}}, ReturnValues="ALL_NEW"
        ),
        _update(
            "cmp-1",
            "ADD c_sent :one",
            {":one": {"N": "5"}},
            ConditionExpression="attribute_exists(PK)",
            ReturnValues="ALL_OLD",
        ),
        _update("cmp-2", "ADD c_sent :one", {":one": {"N": "5"}}, ConditionExpression="attribute_exists(PK)"),
        _update("cmp-1", "SET c_total = c_sent + :n, c_left = c_sent - :n", {":n": {"N": "3"}}, ReturnValues="ALL_NEW"),
        _update(
            "lst-1",
            "SET events = list_append(if_not_exists(events, :empty), :e)",
            {":empty": {"L": []}, ":e": {"L": [{"S": "a"}, {"N": "1"}]}},
            ReturnValues="ALL_NEW",
        ),
        _update(
            "lst-1",
            "SET events = list_append(events, :e), nested = :m",
            {":e": {"L": [{"M": {"k": {"BOOL": True}}}]}, ":m": {"M": {"a": {"NULL": True}, "b": {"SS": ["x"]}}}},
            ReturnValues="ALL_NEW",
        ),
        _update(
            "lst-1",
            "SET nested.a = :v, events[0] = :v REMOVE nested.b",
            {":v": {"B": b"\x00\xffbin"}},
            ReturnValues="ALL_NEW",
        ),
        _update(
            "set-1",
            "ADD tags :t, nums :n",
            {":t": {"SS": ["a", "b"]}, ":n": {"NS": ["1", "2.5"]}},
            ReturnValues="ALL_NEW",
        ),
        _update("set-1", "DELETE tags :t", {":t": {"SS": ["a"]}}, ReturnValues="ALL_NEW"),
        _update("set-1", "ADD blobs :b", {":b": {"BS": [b"one", base64.b64decode("dHdv")]}}, ReturnValues="ALL_NEW"),
        # errors moto raises while validating an update expression
        _update("err", "SET a = :a, a = :b", {":a": {"S": "1"}, ":b": {"S": "2"}}),
        _update("err", "SET a.b = :a, a = :b", {":a": {"S": "1"}, ":b": {"S": "2"}}),
        _update("err", "SET a = :missing", {":a": {"S": "1"}}),
        _update("err", "SET a = :a ADD b :n, c :n", {":a": {"S": "1"}, ":n": {"N": "1"}}),
        _update("err", "SET PK = :a", {":a": {"S": "1"}}),
        _update("err", "SET #x = :a", {":a": {"S": "1"}}),
        _update("err", "SET a = b + :n", {":n": {"N": "1"}}),
        _update("err", "SET a = list_append(nothere, :l)", {":l": {"L": []}}),
        _update("err", "SET a = :a + :n", {":a": {"S": "x"}, ":n": {"N": "1"}}),
        _update("err", "SET a = :a REMOVE a", {":a": {"S": "1"}}),
        _update("err", "SET GSI1PK = :e", {":e": {"S": ""}}),
        _update("err", "SET size = :a", {":a": {"S": "1"}}),
        _update("err", "SET a = :a", {":a": {"S": "1"}}, ConditionExpression="b = :zz"),
        _update(
            "msg-1",
            "SET #s = :s",
            {":s": {"S": "X"}},
            ConditionExpression="#s IN (:s)",
            ExpressionAttributeNames={"#s": "status"},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        ),
    ]
    ddb = lambda c: c("dynamodb")  # noqa: E731
    calls += [
        lambda c: ddb(c).put_item(
            TableName="jobs",
            Item={**_key("sup-1", "S"), "kind": {"S": "suppression"}, "data": {"B": b"\x01\x02"}},
            ConditionExpression="attribute_not_exists(PK)",
        ),
        lambda c: ddb(c).put_item(
            TableName="jobs",
            Item={**_key("sup-1", "S"), "kind": {"S": "x"}},
            ConditionExpression="attribute_not_exists(PK)",
        ),
        lambda c: ddb(c).get_item(TableName="jobs", Key=_key("msg-1"), ConsistentRead=True),
        lambda c: ddb(c).get_item(TableName="jobs", Key=_key("set-1"), ProjectionExpression="tags, nums"),
        lambda c: ddb(c).batch_get_item(
            RequestItems={
                "jobs": {"Keys": [_key("msg-1"), _key("sup-1", "S"), _key("none")], "ProjectionExpression": "PK"}
            }
        ),
        lambda c: ddb(c).query(
            TableName="jobs",
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": {"S": "lst-1"}},
        ),
        *[
            (
                lambda c, sk=sk: ddb(c).put_item(
                    TableName="jobs", Item={**_key("part", sk), "n": {"N": str(len(sk))}, "kind": {"S": "p"}}
                )
            )
            for sk in ("B", "A", "CC", "D")
        ],
        lambda c: ddb(c).query(
            TableName="jobs",
            KeyConditionExpression="PK = :pk AND SK > :a",
            FilterExpression="n = :one",
            ExpressionAttributeValues={":pk": {"S": "part"}, ":a": {"S": "A"}, ":one": {"N": "1"}},
            ScanIndexForward=False,
        ),
        lambda c: ddb(c).query(
            TableName="jobs",
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": {"S": "part"}},
            Limit=2,
            ExclusiveStartKey=_key("part", "A"),
            ConsistentRead=True,
        ),
        lambda c: ddb(c).query(
            TableName="jobs",
            KeyConditionExpression="PK = :pk AND begins_with(SK, :c)",
            ExpressionAttributeValues={":pk": {"S": "part"}, ":c": {"S": "C"}},
            Select="COUNT",
        ),
        lambda c: ddb(c).query(
            TableName="jobs",
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": {"S": "no-such-partition"}},
        ),
        lambda c: ddb(c).scan(
            TableName="jobs",
            FilterExpression="attribute_exists(c_sent) AND c_sent > :n",
            ExpressionAttributeValues={":n": {"N": "1"}},
        ),
        lambda c: ddb(c).transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": "jobs",
                        "Key": _key("tx-1"),
                        "UpdateExpression": "SET v = if_not_exists(v, :z) ADD n :one",
                        "ExpressionAttributeValues": {":z": {"N": "0"}, ":one": {"N": "1"}},
                    }
                },
                {
                    "ConditionCheck": {
                        "TableName": "jobs",
                        "Key": _key("msg-1"),
                        "ConditionExpression": "attribute_exists(PK)",
                    }
                },
            ]
        ),
        lambda c: ddb(c).get_item(TableName="jobs", Key=_key("tx-1")),
        # the sender's count-once transaction: a marker and the campaign's counters together
        lambda c: ddb(c).put_item(TableName="jobs", Item={**_key("cmp-tx"), "c_sent": {"N": "0"}}),
        *[
            (
                lambda c, marker=marker, campaign=campaign: ddb(c).transact_write_items(
                    TransactItems=_count_once(marker, campaign)
                )
            )
            for marker, campaign in (("d1", "cmp-tx"), ("d1", "cmp-tx"), ("d2", "cmp-none"))
        ],
        lambda c: ddb(c).get_item(TableName="jobs", Key=_key("CNT#d2")),  # rolled back: absent
        lambda c: ddb(c).get_item(TableName="jobs", Key=_key("cmp-tx")),
        lambda c: ddb(c).transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "jobs", "Item": {**_key("dup"), "a": {"S": "1"}}}},
                {
                    "Update": {
                        "TableName": "jobs",
                        "Key": _key("dup"),
                        "UpdateExpression": "SET b = :b",
                        "ExpressionAttributeValues": {":b": {"S": "2"}},
                    }
                },
            ]
        ),
        lambda c: ddb(c).transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "jobs", "Item": {**_key("tx-bad"), "a": {"S": "1"}}}},
                {
                    "Update": {
                        "TableName": "jobs",
                        "Key": _key("cmp-tx"),
                        "UpdateExpression": "SET a = :a, a = :b",
                        "ExpressionAttributeValues": {":a": {"S": "1"}, ":b": {"S": "2"}},
                    }
                },
            ]
        ),
        lambda c: ddb(c).get_item(TableName="jobs", Key=_key("tx-bad")),
        lambda c: ddb(c).get_item(TableName="jobs", Key=_key("dup")),
        lambda c: ddb(c).delete_item(TableName="jobs", Key=_key("tx-1"), ReturnValues="ALL_OLD"),
        lambda c: ddb(c).describe_table(TableName="jobs")["Table"]["KeySchema"],
        *_conditional_failure_calls(),
        *_index_calls(),
        *_scan_calls(),
        *_transaction_calls(),
    ]
    return calls


GSI = JOB_TABLE.indexes[0]


def _conditional_failure_calls() -> list[Callable[..., Any]]:
    """PutItem, UpdateItem and DeleteItem whose condition fails, with and without the old item back."""
    ddb: Callable[[Callable[[str], Any]], Any] = lambda c: c("dynamodb")  # noqa: E731
    exists = {"ConditionExpression": "attribute_not_exists(PK)"}
    return [
        lambda c: ddb(c).put_item(TableName="jobs", Item={**_key("cf-1"), "v": {"N": "1"}, "tags": {"SS": ["a"]}}),
        *[
            (
                lambda c, rv=rv: ddb(c).put_item(
                    TableName="jobs",
                    Item={**_key("cf-1"), "v": {"N": "2"}},
                    ReturnValuesOnConditionCheckFailure=rv,
                    **exists,
                )
            )
            for rv in ("ALL_OLD", "NONE")
        ],
        lambda c: ddb(c).update_item(
            TableName="jobs",
            Key=_key("cf-1"),
            UpdateExpression="SET v = v + :one",
            ConditionExpression="v > :ten",
            ExpressionAttributeValues={":one": {"N": "1"}, ":ten": {"N": "10"}},
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        ),
        lambda c: ddb(c).update_item(  # the item does not exist: no old item to return
            TableName="jobs",
            Key=_key("cf-none"),
            UpdateExpression="SET v = :one",
            ConditionExpression="attribute_exists(PK)",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        ),
        lambda c: ddb(c).delete_item(
            TableName="jobs",
            Key=_key("cf-1"),
            ConditionExpression="v = :two",
            ExpressionAttributeValues={":two": {"N": "2"}},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        ),
        lambda c: ddb(c).get_item(TableName="jobs", Key=_key("cf-1"), ConsistentRead=True),
    ]


def _index_items() -> list[dict[str, Any]]:
    """Items on the job table's GSI: two providers' message ids, in an order that is not the index's."""
    rows = [("p#ses", "id-3"), ("p#smtp", "id-1"), ("p#ses", "id-1"), ("p#ses", "id-2"), ("p#ses", "id-2")]
    return [
        {
            **_key(f"gsi-{i}"),
            GSI.partition_key: {"S": provider},
            GSI.sort_key: {"S": provider_id},
            "n": {"N": str(i)},
        }
        for i, (provider, provider_id) in enumerate(rows)
    ]


def _pages(call: Callable[[dict[str, Any]], dict[str, Any]]) -> list[dict[str, Any]]:
    """Every page of a paginated read, following LastEvaluatedKey (each page compared whole)."""
    pages = [call({})]
    while "LastEvaluatedKey" in pages[-1] and len(pages) < 50:
        pages.append(call({"ExclusiveStartKey": pages[-1]["LastEvaluatedKey"]}))
    return pages


def _index_calls() -> list[Callable[..., Any]]:
    """Query on the job table's GSI (IndexName): by partition, by range, backwards, paginated,
    filtered, projected, counted, and the errors of a bad index query."""
    ddb: Callable[[Callable[[str], Any]], Any] = lambda c: c("dynamodb")  # noqa: E731
    names = {"#pk": GSI.partition_key, "#sk": GSI.sort_key}

    def query(c: Callable[[str], Any], **kwargs: Any) -> Any:
        used = {k: v for k, v in names.items() if k in kwargs["KeyConditionExpression"]}
        return ddb(c).query(TableName="jobs", IndexName=GSI.name, ExpressionAttributeNames=used, **kwargs)

    ses = {":p": {"S": "p#ses"}}
    return [
        *[(lambda c, item=item: ddb(c).put_item(TableName="jobs", Item=item)) for item in _index_items()],
        lambda c: query(c, KeyConditionExpression="#pk = :p", ExpressionAttributeValues=ses),
        lambda c: query(
            c,
            KeyConditionExpression="#pk = :p AND #sk = :id",
            ExpressionAttributeValues={**ses, ":id": {"S": "id-2"}},
        ),
        lambda c: query(
            c,
            KeyConditionExpression="#pk = :p AND #sk BETWEEN :a AND :b",
            ExpressionAttributeValues={**ses, ":a": {"S": "id-1"}, ":b": {"S": "id-2"}},
            ScanIndexForward=False,
        ),
        lambda c: _pages(
            lambda more: query(c, KeyConditionExpression="#pk = :p", ExpressionAttributeValues=ses, Limit=2, **more)
        ),
        lambda c: query(
            c,
            KeyConditionExpression="#pk = :p AND begins_with(#sk, :id)",
            FilterExpression="n > :one",
            ExpressionAttributeValues={**ses, ":id": {"S": "id-"}, ":one": {"N": "1"}},
        ),
        lambda c: query(
            c, KeyConditionExpression="#pk = :p", ExpressionAttributeValues=ses, ProjectionExpression="PK, n"
        ),
        lambda c: query(c, KeyConditionExpression="#pk = :p", ExpressionAttributeValues=ses, Select="COUNT"),
        lambda c: query(c, KeyConditionExpression="#pk = :p", ExpressionAttributeValues={":p": {"S": "p#none"}}),
        lambda c: ddb(c).query(  # the table's key on the index: an error
            TableName="jobs",
            IndexName=GSI.name,
            KeyConditionExpression="PK = :p",
            ExpressionAttributeValues={":p": {"S": "gsi-1"}},
        ),
        lambda c: ddb(c).query(
            TableName="jobs",
            IndexName="NoSuchIndex",
            KeyConditionExpression="PK = :p",
            ExpressionAttributeValues={":p": {"S": "gsi-1"}},
        ),
        lambda c: query(  # consistent reads are not allowed on a GSI
            c, KeyConditionExpression="#pk = :p", ExpressionAttributeValues=ses, ConsistentRead=True
        ),
    ]


def _scan_calls() -> list[Callable[..., Any]]:
    """Scan: the whole table, filtered, projected, counted, paginated with Limit/ExclusiveStartKey,
    and the GSI."""
    ddb: Callable[[Callable[[str], Any]], Any] = lambda c: c("dynamodb")  # noqa: E731

    def scan(c: Callable[[str], Any], **kwargs: Any) -> Any:
        return ddb(c).scan(TableName="jobs", **kwargs)

    return [
        lambda c: scan(c),
        lambda c: scan(c, ConsistentRead=True, Select="COUNT"),
        lambda c: scan(
            c,
            FilterExpression="begins_with(PK, :g) AND n >= :two",
            ExpressionAttributeValues={":g": {"S": "gsi-"}, ":two": {"N": "2"}},
            ProjectionExpression="PK, SK, n",
        ),
        lambda c: _pages(lambda more: scan(c, Limit=4, **more)),
        lambda c: _pages(lambda more: scan(c, Limit=5, FilterExpression="attribute_exists(n)", Select="COUNT", **more)),
        lambda c: _pages(lambda more: scan(c, IndexName=GSI.name, Limit=2, **more)),
        lambda c: scan(c, Limit=3, ExclusiveStartKey=_key("gsi-2")),
    ]


def _transaction_calls() -> list[Callable[..., Any]]:
    """TransactWriteItems: every operation in one transaction that succeeds; one cancelled by failed
    conditions (CancellationReasons compared, the old items included) and rolled back; a delete's
    condition failing alone; and the reads that show what each left."""
    ddb: Callable[[Callable[[str], Any]], Any] = lambda c: c("dynamodb")  # noqa: E731

    def transact(c: Callable[[str], Any], *items: dict[str, Any]) -> Any:
        return ddb(c).transact_write_items(TransactItems=list(items))

    def op(kind: str, **params: Any) -> dict[str, Any]:
        return {kind: {"TableName": "jobs", **params}}

    every_op = (
        op("Put", Item={**_key("tw-new"), "v": {"N": "1"}}, ConditionExpression="attribute_not_exists(PK)"),
        op(
            "Update",
            Key=_key("cf-1"),
            UpdateExpression="SET v = v + :one ADD tags :t",
            ExpressionAttributeValues={":one": {"N": "1"}, ":t": {"SS": ["b"]}},
        ),
        op("Delete", Key=_key("gsi-4"), ConditionExpression="attribute_exists(PK)"),
        op("ConditionCheck", Key=_key("gsi-0"), ConditionExpression="attribute_exists(PK)"),
    )
    cancelled = (
        op("Put", Item={**_key("tw-rolled-back"), "v": {"N": "1"}}),
        op(
            "ConditionCheck",
            Key=_key("cf-1"),
            ConditionExpression="v = :zero",
            ExpressionAttributeValues={":zero": {"N": "0"}},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        ),
        op(
            "Update",
            Key=_key("gsi-0"),
            UpdateExpression="SET n = :n",
            ConditionExpression="attribute_not_exists(PK)",
            ExpressionAttributeValues={":n": {"N": "99"}},
        ),
        op(
            "Delete",
            Key=_key("tw-new"),
            ConditionExpression="v = :two",
            ExpressionAttributeValues={":two": {"N": "2"}},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        ),
    )
    reads = [
        (lambda c, pk=pk: ddb(c).get_item(TableName="jobs", Key=_key(pk), ConsistentRead=True))
        for pk in ("tw-new", "cf-1", "gsi-4", "gsi-0", "tw-rolled-back")
    ]
    return [
        lambda c: transact(c, *every_op),
        *reads,
        lambda c: transact(c, *cancelled),
        *reads,
        lambda c: transact(c, op("Delete", Key=_key("tw-new"), ConditionExpression="attribute_not_exists(PK)")),
        lambda c: transact(c, op("Put", Item={**_key("tw-2"), "v": {"N": "1"}}), op("Put", Item={**_key("tw-2")})),
        lambda c: ddb(c).query(  # the index after the transactions: gsi-4 gone, gsi-0 unchanged
            TableName="jobs",
            IndexName=GSI.name,
            KeyConditionExpression="#pk = :p",
            ExpressionAttributeNames={"#pk": GSI.partition_key},
            ExpressionAttributeValues={":p": {"S": "p#ses"}},
        ),
        lambda c: _pages(lambda more: ddb(c).scan(TableName="jobs", Limit=7, **more)),
    ]


def _other_calls() -> list[Callable[..., Any]]:
    def sqs_round(c: Callable[[str], Any]) -> Any:
        sqs = c("sqs")
        url = sqs.create_queue(QueueName="q-tuning", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "MessageBody": f"body-{i}", "DelaySeconds": 0} for i in range(3)],
        )
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
        bodies = sorted(m["Body"] for m in received)
        deleted = sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(received)]
        )
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        return {"bodies": bodies, "deleted": _scrub(deleted), "attrs": _scrub(attrs)}

    def ses_round(c: Callable[[str], Any]) -> Any:
        ses = c("sesv2")
        ses.create_email_identity(EmailIdentity="tuning.test")
        sent = ses.send_email(
            FromEmailAddress="a@tuning.test",
            Destination={"ToAddresses": ["b@example.com"]},
            Content={"Simple": {"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "t"}}}},
            EmailTags=[{"Name": "message_id", "Value": "msg-1"}],
        )
        return {
            "has_id": bool(sent.get("MessageId")),
            "identity": _scrub(ses.get_email_identity(EmailIdentity="tuning.test")),
        }

    def scheduler_round(c: Callable[[str], Any]) -> Any:
        scheduler = c("scheduler")
        scheduler.create_schedule_group(Name="g-tuning")
        scheduler.create_schedule(
            Name="s1",
            GroupName="g-tuning",
            ScheduleExpression="at(2030-01-01T00:00:00)",
            FlexibleTimeWindow={"Mode": "OFF"},
            Target={
                "Arn": "arn:aws:sqs:us-east-1:123456789012:q",
                "RoleArn": "arn:aws:iam::123456789012:role/r",
                "Input": "{}",
            },
        )
        got = scheduler.get_schedule(Name="s1", GroupName="g-tuning")
        return {k: got[k] for k in ("Name", "GroupName", "ScheduleExpression", "Target", "State")}

    return [sqs_round, ses_round, scheduler_round]


def test_tuned_moto_answers_like_stock_moto(tuned_url: str, stock_url: str) -> None:
    # Given the same calls, when each moto serves them
    calls = _dynamodb_calls() + _other_calls()
    tuned = _answers(tuned_url, calls)
    stock = _answers(stock_url, calls)

    # Then every answer is the same, one by one (the errors included)
    assert any(a[0] == "error" for a in stock), "the scenario exercises moto's errors"
    for i, (mine, theirs) in enumerate(zip(tuned, stock, strict=True)):
        assert mine == theirs, f"call {i}: tuned {mine!r} != stock {theirs!r}"


def test_tuned_moto_transactions_hold_under_concurrent_writers(tuned_url: str) -> None:
    # Given a table with a few thousand items and a campaign's counters
    ddb = _client("dynamodb", tuned_url)
    create_job_table(ddb, "busy")
    ddb.put_item(TableName="busy", Item={**_key("cmp"), "c_sent": {"N": "0"}})

    def count(i: int) -> None:
        items = _count_once(f"m{i}", "cmp")
        for op in items:
            next(iter(op.values()))["TableName"] = "busy"
        ddb.transact_write_items(TransactItems=items)
        for j in range(10):  # other writers meanwhile: records of their own
            ddb.put_item(TableName="busy", Item={**_key(f"rec-{i}-{j}"), "v": {"N": str(j)}})

    # When eight threads count 120 messages while writing 1,200 other items
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(count, range(120)))

    # Then every transaction applied once, and no other write was lost
    counters = ddb.get_item(TableName="busy", Key=_key("cmp"), ConsistentRead=True)["Item"]
    assert counters["c_sent"] == {"N": str(120 * 50)}
    scanned = ddb.scan(TableName="busy", Select="COUNT")
    total = scanned["Count"]
    while "LastEvaluatedKey" in scanned:
        scanned = ddb.scan(TableName="busy", Select="COUNT", ExclusiveStartKey=scanned["LastEvaluatedKey"])
        total += scanned["Count"]
    assert total == 1 + 120 + 120 * 10
