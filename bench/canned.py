"""AWS answered in process at botocore's HTTP layer: a ``before-send`` handler returns canned responses.

Request serialization, SigV4 signing and response parsing all run — what a Lambda spends on its
side of an AWS call — but no network and no emulator (moto's own CPU would swamp the figure). Just
enough behaviour for the send path: SES v2 ``SendEmail``; DynamoDB ``PutItem``/``GetItem`` over a
dict (so the campaign written first is read back), ``UpdateItem`` (returning the key and a status
when asked for values), ``TransactWriteItems`` (a batch's counters), ``BatchGetItem`` (nothing
suppressed), ``Query``; SQS ``SendMessageBatch``.
"""

from __future__ import annotations

import itertools
import json
import threading
from functools import cache
from typing import Any

from botocore.awsrequest import AWSResponse

_REQUEST_ID = "00000000-0000-0000-0000-000000000000"


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Any:
        yield self._data


class CannedAws:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: dict[str, int] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()

    def attach(self, client: Any) -> Any:
        client.meta.events.register("before-send", self.answer)
        return client

    def answer(self, request: Any, **_: Any) -> AWSResponse:
        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else str(target)
        url = str(request.url)
        with self._lock:
            if "email." in url and url.rstrip("/").endswith("/outbound-emails"):
                op, payload = "SendEmail", {"MessageId": f"0100018c-bench-{next(self._ids):012d}-000000"}
            elif target.startswith("DynamoDB_"):
                op = target.split(".", 1)[1]
                payload = self._dynamodb(op, json.loads(request.body or b"{}"))
            elif target.startswith("AmazonSQS."):
                op = target.split(".", 1)[1]
                body = json.loads(request.body or b"{}")
                payload = {
                    "Successful": [
                        {"Id": e["Id"], "MessageId": f"m-{next(self._ids)}", "MD5OfMessageBody": ""}
                        for e in body.get("Entries", [])
                    ],
                    "Failed": [],
                }
            else:
                raise RuntimeError(f"no canned answer for {request.method} {url} {target}")
            self.calls[op] = self.calls.get(op, 0) + 1
        content_type = "application/x-amz-json-1.0" if target else "application/json"
        headers = {"Content-Type": content_type, "x-amzn-RequestId": _REQUEST_ID}
        return AWSResponse(request.url, 200, headers, _Body(json.dumps(payload).encode()))

    @staticmethod
    def _key(key: dict[str, Any]) -> tuple[str, str]:
        return (key.get("PK", {}).get("S", ""), key.get("SK", {}).get("S", ""))

    def _dynamodb(self, op: str, body: dict[str, Any]) -> dict[str, Any]:
        if op == "PutItem":
            item = body["Item"]
            self.items[self._key(item)] = item
            return {}
        if op == "GetItem":
            item = self.items.get(self._key(body["Key"]))
            return {"Item": item} if item else {}
        if op == "UpdateItem":
            if body.get("ReturnValues", "NONE") == "NONE":
                return {}
            return {"Attributes": {**body["Key"], "status": {"S": "SENDING"}, "n": {"N": "1"}}}
        if op == "TransactWriteItems":  # the batch's counters: never counted before, here
            return {}
        if op == "BatchGetItem":
            return {"Responses": {table: [] for table in body.get("RequestItems", {})}, "UnprocessedKeys": {}}
        if op == "Query":  # the one partition the condition names (the store queries by PK only)
            pk = next(iter(body.get("ExpressionAttributeValues", {}).values()), {}).get("S")
            items = [item for (item_pk, _), item in sorted(self.items.items()) if item_pk == pk]
            return {"Items": items, "Count": len(items), "ScannedCount": len(items)}
        if op == "Scan":
            return {"Items": [], "Count": 0, "ScannedCount": 0}
        raise RuntimeError(f"no canned answer for DynamoDB {op}")


@cache
def session() -> Any:
    """One boto3 session (loading its data is the slow part); each client gets its own handlers."""
    import boto3

    return boto3.session.Session(aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1")


def clients(canned: CannedAws) -> dict[str, Any]:
    """SES v2, SQS and a DynamoDB table resource, all answered by ``canned``; configured like wiring."""
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=32)
    s = session()
    resource = s.resource("dynamodb", config=config)
    canned.attach(resource.meta.client)
    return {
        "sesv2": canned.attach(s.client("sesv2", config=config)),
        "sqs": canned.attach(s.client("sqs", config=config)),
        "table": resource.Table("massmailer-bench-jobs"),
    }
