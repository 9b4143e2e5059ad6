"""What Lambda's SQS event source mapping does, for the local runtime and the tests.

Receive up to ``batch_size`` messages, hand them to the handler as an SQS Lambda event, delete the
ones the handler did not report in ``batchItemFailures`` (``ReportBatchItemFailures``), and leave the
rest to reappear after their visibility timeout — SQS's redrive policy moves them to the DLQ after
``maxReceiveCount`` receives. A handler that raises fails the whole batch, as on Lambda.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

from local.lambda_context import LambdaContext
from massmailer.spec import QueueSpec

logger = logging.getLogger(__name__)
Handler = Callable[[dict[str, Any], Any], Any]


def queue_depth(sqs: Any, queue_url: str) -> int:
    """Messages in a queue: visible, in flight and delayed (what "empty" has to mean for a drain)."""
    attrs = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return sum(int(v) for v in attrs.values())


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str = "us-east-1") -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m.get("MD5OfBody") or hashlib.md5(m["Body"].encode(), usedforsecurity=False).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    }


class SqsEventSource:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        queue: QueueSpec,
        handler: Handler,
        function_timeout: float = 60.0,
        failed_visibility: int | None = None,
    ) -> None:
        self._sqs = sqs
        self._url = queue_url
        self._spec = queue
        self._handler = handler
        self._timeout = function_timeout
        self._failed_visibility = failed_visibility  # None: leave failures to the visibility timeout
        self._arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    def poll_once(self, wait_seconds: int = 0) -> int:
        """One receive → invoke → delete cycle. Returns how many messages were received."""
        received = self._sqs.receive_message(
            QueueUrl=self._url,
            MaxNumberOfMessages=min(self._spec.batch_size, 10),
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not received:
            return 0
        event = sqs_event(received, self._arn)
        context = LambdaContext(function_name=self._spec.consumer, timeout_seconds=self._timeout)
        try:
            response = self._handler(event, context) or {}
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        except Exception:
            logger.exception("handler failed; whole batch left for redelivery", extra={"queue": self._spec.key})
            failed = {m["MessageId"] for m in received}
        done = [m for m in received if m["MessageId"] not in failed]
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=self._url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        if self._failed_visibility is not None:
            for m in received:
                if m["MessageId"] in failed:
                    self._sqs.change_message_visibility(
                        QueueUrl=self._url,
                        ReceiptHandle=m["ReceiptHandle"],
                        VisibilityTimeout=self._failed_visibility,
                    )
        return len(received)


def drain(sources: list[SqsEventSource], max_rounds: int = 10_000) -> int:
    """Poll every source until a full round receives nothing. Returns messages processed."""
    total = 0
    for _ in range(max_rounds):
        got = sum(source.poll_once() for source in sources)
        total += got
        if not got:
            return total
    raise RuntimeError("queues did not drain")
