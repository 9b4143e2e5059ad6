"""Lambda's SQS event source mapping, as the local runtime runs it.

One :class:`SqsPoller` drives one *execution environment* (a process of its own, see
``local.function_process``): it receives a batch, invokes the handler with it, and settles the batch
the way Lambda does —

* **batch size and batching window**: it keeps receiving until it holds ``batch_size`` records or
  ``max_batching_window_seconds`` have passed since the first one (no window: the first receive is the
  batch);
* **maximum concurrency**: one invocation at a time per environment; the runtime starts at most
  ``max_concurrency`` environments per queue, so that is the ceiling on concurrent invocations;
* **ReportBatchItemFailures**: records named in ``batchItemFailures`` stay on the queue, the others are
  deleted; a handler that raises, or a response naming a record that is not in the batch (or an empty
  identifier), fails the whole batch, as on Lambda;
* **visibility timeout and redrive**: a failed record is not touched — it becomes visible again when
  the queue's visibility timeout expires, and SQS's redrive policy moves it to the DLQ after
  ``maxReceiveCount`` receives (moto implements the redrive). ``failed_visibility`` is the one local
  acceleration: when set, a failed record is made visible again after that many seconds instead of
  the queue's timeout (6 × the function timeout), so a poison message reaches the DLQ in seconds.
* **function timeout**: :class:`InvocationWatchdog` ends the environment when an invocation outlives
  the function's timeout ("Task timed out"), and the runtime starts a fresh one.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from local.event_source import sqs_event
from local.lambda_context import LambdaContext
from massmailer.spec import FunctionSpec, QueueSpec

logger = logging.getLogger(__name__)
Handler = Callable[[dict[str, Any], Any], Any]
SQS_RECEIVE_MAX = 10


@dataclass(frozen=True)
class PollerConfig:
    queue_url: str
    queue: QueueSpec
    function: FunctionSpec
    failed_visibility: int | None = None  # None: leave failed records to the queue's visibility timeout
    long_poll_seconds: int = 1  # Lambda long-polls for 20 s; shorter here so a stop is prompt
    region: str = "us-east-1"


@dataclass
class BatchOutcome:
    received: int
    failed: int
    error: str | None = None


class InvocationWatchdog:
    """Ends the process when an invocation runs past the function timeout, as Lambda does."""

    def __init__(self, timeout_seconds: float, on_timeout: Callable[[float], None] | None = None) -> None:
        self.timeout = timeout_seconds
        self._started: float | None = None
        self._lock = threading.Lock()
        self._on_timeout = on_timeout or self._exit
        threading.Thread(target=self._watch, name="invocation-watchdog", daemon=True).start()

    def begin(self) -> None:
        with self._lock:
            self._started = time.monotonic()

    def end(self) -> None:
        with self._lock:
            self._started = None

    def _watch(self) -> None:
        while True:
            time.sleep(0.5)
            with self._lock:
                started = self._started
            if started is not None and time.monotonic() - started > self.timeout:
                self._on_timeout(time.monotonic() - started)
                return

    @staticmethod
    def _exit(elapsed: float) -> None:
        print(f"Task timed out after {elapsed:.2f} seconds", file=sys.stderr, flush=True)
        os._exit(124)


class SqsPoller:
    """Receive → invoke → settle, one batch at a time, until ``stop`` is set."""

    def __init__(
        self,
        sqs: Any,
        config: PollerConfig,
        handler: Handler,
        watchdog: InvocationWatchdog | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sqs = sqs
        self.config = config
        self._handler = handler
        self._watchdog = watchdog
        self._clock = clock
        self._arn = sqs.get_queue_attributes(QueueUrl=config.queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.invocations = 0

    @property
    def queue_arn(self) -> str:
        return self._arn

    def _receive(self, max_messages: int, wait_seconds: int) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self._sqs.receive_message(
            QueueUrl=self.config.queue_url,
            MaxNumberOfMessages=max(1, min(max_messages, SQS_RECEIVE_MAX)),
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        return messages

    def collect(self, stop: threading.Event) -> list[dict[str, Any]]:
        """One batch: up to ``batch_size`` records, gathered for at most the batching window."""
        spec = self.config.queue
        batch = self._receive(spec.batch_size, self.config.long_poll_seconds)
        if not batch or spec.max_batching_window_seconds <= 0:
            return batch
        window_ends = self._clock() + spec.max_batching_window_seconds
        while len(batch) < spec.batch_size and not stop.is_set():
            left = window_ends - self._clock()
            if left <= 0:
                break
            more = self._receive(spec.batch_size - len(batch), 0)
            if more:
                batch.extend(more)
            else:
                time.sleep(min(0.1, left))
        return batch

    def invoke(self, messages: list[dict[str, Any]]) -> BatchOutcome:
        """Invoke the handler with one batch and settle it (delete successes, leave failures)."""
        event = sqs_event(messages, self._arn, self.config.region)
        context = LambdaContext(
            function_name=self.config.function.name,
            timeout_seconds=self.config.function.timeout_seconds,
            memory_limit_in_mb=self.config.function.memory_mb,
        )
        ids = {m["MessageId"] for m in messages}
        error = None
        if self._watchdog:
            self._watchdog.begin()
        try:
            response = self._handler(event, context)
            failed = _failed_ids(response, ids)
        except Exception as exc:  # the invocation failed: the whole batch goes back
            logger.exception("invocation failed; the whole batch stays on the queue")
            failed, error = set(ids), f"{type(exc).__name__}: {exc}"
        finally:
            if self._watchdog:
                self._watchdog.end()
        self.invocations += 1
        self._settle(messages, failed)
        return BatchOutcome(received=len(messages), failed=len(failed), error=error)

    def _settle(self, messages: list[dict[str, Any]], failed: set[str]) -> None:
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), SQS_RECEIVE_MAX):
            chunk = done[start : start + SQS_RECEIVE_MAX]
            self._sqs.delete_message_batch(
                QueueUrl=self.config.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
        if self.config.failed_visibility is None or not failed:
            return
        retry = [m for m in messages if m["MessageId"] in failed]
        for start in range(0, len(retry), SQS_RECEIVE_MAX):
            chunk = retry[start : start + SQS_RECEIVE_MAX]
            self._sqs.change_message_visibility_batch(
                QueueUrl=self.config.queue_url,
                Entries=[
                    {
                        "Id": str(i),
                        "ReceiptHandle": m["ReceiptHandle"],
                        "VisibilityTimeout": self.config.failed_visibility,
                    }
                    for i, m in enumerate(chunk)
                ],
            )

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                batch = self.collect(stop)
                if batch:
                    self.invoke(batch)
            except Exception:  # the poller itself (not the handler) failed: back off, keep polling
                logger.exception("poller error", extra={"queue": self.config.queue.key})
                stop.wait(1.0)


def _failed_ids(response: Any, ids: set[str]) -> set[str]:
    """The records Lambda retries, from a ``ReportBatchItemFailures`` response."""
    if response is None:
        return set()
    if not isinstance(response, dict):
        return set()  # Lambda ignores a response that is not a batch response: the batch succeeded
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return set(ids)
    failed: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in ids:
            return set(ids)  # an invalid response fails the whole batch
        failed.add(identifier)
    return failed
