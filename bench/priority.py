"""5. Priority isolation: high-lane latency (API call → SENT) while a bulk campaign drains the low lane.

What it measures: 100 transactional sends on the high lane, one every 20 ms, their p50/p99 time from
the API call (``POST /v1/messages``) to the moment the sender records them SENT (the record's
``sent_at``, read back through ``GET /v1/messages/{id}`` once the window is over, so polling adds no
load to the window) — on an idle system, and while a 20,000-recipient low-lane campaign drains; and
the low lane's drain rate meanwhile (campaign counters read just before each window and after it,
on until they have moved: the span is bounded by the drain's own steps, not by clock offsets) and
over the whole campaign.

**The runtime is the real local runtime** (``runtime="local"``, the default): each repeat starts
``local.runtime.LocalRuntime`` — moto servers (DynamoDB in a process of its own), the API front, the
functions' execution environments (one process each, pollers per lane as Lambda's event source
mappings), the SES endpoint, the SMTP relay — in a helper process (``LocalRuntimeProcess``: the
benchmark process is only the API's client, as on AWS), in a scratch directory, and stops it all
afterwards. One repeat: warm-up (two bursts, so every high-lane environment has had its cold start,
which is not measured), one idle window, then the campaign with ``windows`` loaded windows spread
over its drain (the first once a tenth is sent), then the drain to its end. Defaults: 2 repeats × 2
loaded windows (≈ 2 min per repeat on 2 cores).

How the runtime is set up for it (``LOCAL_ENVIRONMENTS``, ``LOCAL_FUNCTION_ENV``, ``LOCAL_NICE``):

* **providers** ``smtp,ses`` with the relay's quota ``MM_SMTP_MAX_RATE=1000``: the relay is the
  primary provider (a stage may order its providers so). With SES first, each email also costs
  moto's SES call and SES's Send/Delivery events (SNS → SQS → bounce function → three more DynamoDB
  writes) — over twice the emulator's work per email, and the local SES account's 200/s quota caps
  the low lane at 160/s; a 20,000 drain would not fit ``make bench``'s budget. The claim, render,
  MIME, send and record per recipient are the sender's own, unchanged.
* **environments**: high lane 4 (the spec allows 20; at 50 sends/s each record takes ~60 ms under
  load, processed one after another within an invocation), low lane 1 — its 8 concurrent sends
  (``MM_SENDER_CONCURRENCY``) already keep the emulated DynamoDB, the bottleneck, busy: the same
  drain rate was measured with 1 and with 2 environments (≈ 190 emails/s, shared machine); each
  further environment only queues more requests inside the one moto process in front of the high
  lane's.
* **nice 10 for the low lane's environments**: on AWS each execution environment has CPU of its own;
  here every process shares two cores, and the low lane's would take the CPU the high lane's
  environments and the API need. Nothing is excluded: moto, the relay and the API serve both lanes
  at normal priority, and the low lane's work is all in the measurement.

What limits the drain (CPU per email on this 2-core machine, ``details.runs[].cpu_ms_per_email``):
moto's DynamoDB ≈ 4 ms (two conditional writes per recipient — claim, record — plus a batch read and
a counted-once transaction per 50, all in one process), the low-lane sender's botocore work ≈ 3 ms,
the relay ≈ 1 ms. Under the bulk each emulated AWS call of the high lane waits behind the low lane's
inside the moto processes — a DynamoDB write takes 8–12 ms instead of ~3, the API call 20 instead of
9 (the notes give a GetItem and an SQS call timed after each window) — which AWS's services do not
do; it is most of the latency added under load.

``runtime="http"`` drives a runtime already serving ``api_url`` (e.g. ``make up``) the same way (no
CPU accounting). ``runtime="inprocess"`` is the earlier in-process equivalent, kept for comparison:
SQS is ``FakeSqs`` served from its own process by a ``multiprocessing`` manager, each lane drained by
``local.event_source.SqsEventSource`` pollers with their own ``SenderContext``, the store in memory,
the provider SMTP into the same sink as benchmark 1 (``smtp-sink``, or aiosmtpd); its low-lane
environments are forked processes (``low_mode="process"``) or threads (``"thread"``); its queue holds
the campaign's last message back until the window opens (``FakeSqs.hold_last``), so the window never
opens on a finished drain, and the rate meanwhile spans the queue's deletions around the window
(``rate_over_window``). Every row's label names the runtime that ran.
"""

from __future__ import annotations

import http.client
import itertools
import json
import multiprocessing as mp
import os
import statistics
import sys
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from datetime import datetime
from io import StringIO
from multiprocessing.managers import BaseManager
from pathlib import Path
from typing import Any, Protocol

from bench.common import Row, Section, Target
from bench.sinks import Sink, start_sink
from bench.workload import CONTENT, FROM_ADDRESS, address_for, quiet_powertools, silence_stdout_fd, variables_for
from massmailer.spec import MAX_RECIPIENTS_PER_BATCH

TARGET_ISOLATION = Target("<=", 2.0, "≤ 2× idle p99")
QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/massmailer-bench-{}"


# --------------------------------------------------------------------------------------------------
# An in-memory SQS (the subset the adapters and the event source use)
# --------------------------------------------------------------------------------------------------


class FakeSqs:
    """SendMessageBatch, ReceiveMessage (long polling), DeleteMessageBatch, ChangeMessageVisibility,
    GetQueueAttributes — per queue URL, thread-safe. Delays and visibility timeouts are honoured.

    For the benchmark's windows: each queue keeps a log of its progress events (the first receive,
    then every deletion: ``(monotonic time, messages deleted so far)``), and a queue can be *held*
    (``hold_last``): it then never hands out its last visible message until ``release``, so a drain
    cannot finish before the measuring window opens, however fast or slow the machine is."""

    def __init__(self, visibility_timeout: float = 720.0) -> None:
        self._cond = threading.Condition()
        self._visible: dict[str, deque[tuple[float, str, str]]] = {}
        self._inflight: dict[str, dict[str, tuple[float, str, str]]] = {}
        self._deleted: dict[str, int] = {}
        self._received_first: dict[str, float] = {}
        self._emptied_at: dict[str, float] = {}
        self._log: dict[str, list[tuple[float, int]]] = {}
        self._held: set[str] = set()
        self._ids = itertools.count(1)
        self._visibility = visibility_timeout

    def _q(self, url: str) -> deque[tuple[float, str, str]]:
        if url not in self._visible:
            self._visible[url] = deque()
            self._inflight[url] = {}
            self._deleted[url] = 0
        return self._visible[url]

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str] | None = None) -> dict[str, Any]:  # noqa: N803
        name = QueueUrl.rsplit("/", 1)[-1]
        with self._cond:
            q = self._q(QueueUrl)
            return {
                "Attributes": {
                    "QueueArn": f"arn:aws:sqs:us-east-1:123456789012:{name}",
                    "ApproximateNumberOfMessages": str(len(q)),
                    "ApproximateNumberOfMessagesNotVisible": str(len(self._inflight[QueueUrl])),
                }
            }

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        now = time.monotonic()
        with self._cond:
            q = self._q(QueueUrl)
            for entry in Entries:
                q.append((now + float(entry.get("DelaySeconds", 0)), f"id-{next(self._ids)}", entry["MessageBody"]))
            self._cond.notify_all()
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}

    def receive_message(
        self,
        QueueUrl: str,  # noqa: N803
        MaxNumberOfMessages: int = 1,  # noqa: N803
        WaitTimeSeconds: float = 0,  # noqa: N803
        **_: Any,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + float(WaitTimeSeconds)
        with self._cond:
            q = self._q(QueueUrl)
            while True:
                now = time.monotonic()
                inflight = self._inflight[QueueUrl]
                for handle, (until, mid, body) in list(inflight.items()):
                    if until <= now:  # visibility timeout expired: back on the queue
                        del inflight[handle]
                        q.append((now, mid, body))
                out = []
                limit = MaxNumberOfMessages if QueueUrl not in self._held else min(MaxNumberOfMessages, len(q) - 1)
                for _i in range(len(q)):
                    if len(out) >= limit:
                        break
                    visible_at, mid, body = q.popleft()
                    if visible_at > now:
                        q.append((visible_at, mid, body))
                        continue
                    handle = f"rh-{mid}-{next(self._ids)}"
                    inflight[handle] = (now + self._visibility, mid, body)
                    out.append({"MessageId": mid, "ReceiptHandle": handle, "Body": body, "Attributes": {}})
                if out:
                    if QueueUrl not in self._received_first:
                        self._received_first[QueueUrl] = now
                        self._log.setdefault(QueueUrl, []).append((now, 0))
                    return {"Messages": out}
                remaining = deadline - now
                if remaining <= 0:
                    return {}
                self._cond.wait(min(remaining, 0.05))

    def delete_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        with self._cond:
            self._q(QueueUrl)
            inflight = self._inflight[QueueUrl]
            deleted = self._deleted[QueueUrl]
            for entry in Entries:
                if inflight.pop(entry["ReceiptHandle"], None) is not None:
                    self._deleted[QueueUrl] += 1
            now = time.monotonic()
            if self._deleted[QueueUrl] > deleted:
                self._log.setdefault(QueueUrl, []).append((now, self._deleted[QueueUrl]))
            if not self._visible[QueueUrl] and not inflight:
                self._emptied_at[QueueUrl] = now
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}

    def change_message_visibility(self, QueueUrl: str, ReceiptHandle: str, VisibilityTimeout: int) -> None:  # noqa: N803
        with self._cond:
            self._q(QueueUrl)
            entry = self._inflight[QueueUrl].pop(ReceiptHandle, None)
            if entry is not None:
                self._visible[QueueUrl].append((time.monotonic() + VisibilityTimeout, entry[1], entry[2]))
                self._cond.notify_all()

    def hold_last(self, url: str) -> None:
        """Keep the queue's last visible message back (a drain cannot finish) until ``release``."""
        with self._cond:
            self._q(url)
            self._held.add(url)

    def release(self, url: str) -> None:
        with self._cond:
            self._held.discard(url)
            self._cond.notify_all()

    def stats(self, url: str) -> dict[str, Any]:
        with self._cond:
            self._q(url)
            return {
                "visible": len(self._visible[url]),
                "inflight": len(self._inflight[url]),
                "deleted": self._deleted[url],
                "first_receive": self._received_first.get(url),
                "emptied_at": self._emptied_at.get(url),
                "progress": list(self._log.get(url, [])),
            }


class _SqsManager(BaseManager):
    pass


_SqsManager.register("FakeSqs", FakeSqs)


# --------------------------------------------------------------------------------------------------
# The runtime interface (the hook for the real local runtime)
# --------------------------------------------------------------------------------------------------


class Runtime(Protocol):
    def start(self) -> None: ...
    def submit_campaign(self, recipients: int) -> str: ...
    def low_lane_progress(self) -> tuple[int, bool]: ...  # (recipients sent so far, still draining)
    def send_transactional(self, i: int) -> tuple[str, float]: ...  # (message id, monotonic API-call time)
    def sent_times(self, message_ids: list[str], timeout: float) -> dict[str, float]: ...  # id → monotonic SENT
    def stop(self) -> None: ...


def _message_body(i: int) -> dict[str, Any]:
    return {
        "to": f"customer{i}@example.com",
        "subject": "Your receipt {{ order }}",
        "text": "Hello {{ name }}, order {{ order }} is confirmed. Total: {{ total }}.",
        "html": "<p>Hello {{ name }}, order <b>{{ order }}</b> is confirmed. Total: {{ total }}.</p>",
        "variables": {"name": f"Customer {i}", "order": f"A-{100000 + i}", "total": f"{10 + i % 90}.00 EUR"},
        "priority": "high",
    }


def _campaign_body(recipients: int) -> dict[str, Any]:
    return {
        "name": "Bulk newsletter (priority bench)",
        "subject": CONTENT.subject,
        "text": CONTENT.text,
        "html": CONTENT.html,
        "priority": "low",
        "audience": [
            {"email": address_for(i, "bulk.example.com"), "variables": variables_for(i)} for i in range(recipients)
        ],
    }


class _TimedMessages:
    """Mixin for the in-memory message records: stamps ``time.monotonic()`` when a record goes SENT."""

    sent_at: dict[str, float]

    def record_sent(self, message_id: str, token: str, provider: str, provider_message_id: str) -> None:
        super().record_sent(message_id, token, provider, provider_message_id)  # type: ignore[misc]
        self.sent_at[message_id] = time.monotonic()


def _timed_store() -> Any:
    """In-memory stores whose message records stamp their SENT time (``store.messages.sent_at``)."""
    import dataclasses

    from massmailer.store import Stores
    from massmailer.store.messages import InMemoryMessages

    class TimedMessages(_TimedMessages, InMemoryMessages):
        def __init__(self, meter: Any) -> None:
            InMemoryMessages.__init__(self, meter=meter)
            self.sent_at = {}

    stores = Stores.in_memory()
    return dataclasses.replace(stores, messages=TimedMessages(stores.meter))


def _poller_loop(source: Any, stop: threading.Event | Any, wait_seconds: float = 0.2) -> None:
    while not stop.is_set():
        source.poll_once(wait_seconds=wait_seconds)


def _low_worker(sqs: Any, urls: dict[str, str], store: Any, sink: tuple[str, int], stop: Any, ready: Any) -> None:
    """A low-lane execution environment in its own process (forked: inherits the store snapshot)."""
    silence_stdout_fd()
    source = _lane_source(sqs, urls, "low", store, sink)
    ready.release()
    _poller_loop(source, stop)


def _lane_source(sqs: Any, urls: dict[str, str], lane: str, store: Any, sink: tuple[str, int]) -> Any:
    """One execution environment: its own SenderContext (own SMTP connection) behind an event source."""
    quiet_powertools()
    from bench.workload import provider_chain, unsubscriber
    from lambdas.sender import handler as sender_handler
    from local.event_source import SqsEventSource
    from massmailer.providers.smtp import SmtpConfig, SmtpProvider
    from massmailer.queues import SqsQueue
    from massmailer.sending import RetryPolicy, SenderContext
    from massmailer.spec import LANES, SENDER

    provider = SmtpProvider(SmtpConfig(host=sink[0], port=sink[1], local_hostname="bench.massmailer.test"))
    ctx = SenderContext(
        campaigns=store.campaigns,
        messages=store.messages,
        suppressions=store.suppressions,
        markers=store.markers,
        queue=SqsQueue(sqs, urls),
        chain=provider_chain([provider], store),
        from_address=FROM_ADDRESS,
        unsubscriber=unsubscriber(),
        policy=RetryPolicy(),
    )

    def handler(event: dict[str, Any], context: Any) -> Any:
        return sender_handler.handler(event, context, ctx=ctx)  # stdout is silenced around the measurement

    return SqsEventSource(
        sqs, urls[lane], LANES[lane], handler, function_timeout=SENDER.timeout_seconds, failed_visibility=0
    )


@dataclass
class InProcessRuntime:
    sink: Sink
    # One high-lane environment: they are threads here (they share the store the latency is read from),
    # and Powertools keeps per-invocation state at module level, so two threads in one handler race.
    high_concurrency: int = 1
    low_concurrency: int = 2
    low_mode: str = "process"  # or "thread"
    _threads: list[threading.Thread] = field(default_factory=list)
    _processes: list[Any] = field(default_factory=list)

    def start(self) -> None:
        quiet_powertools()
        from bench.workload import unsubscriber
        from lambdas.ingest import handler as ingest_handler
        from lambdas.splitter import handler as splitter_handler
        from local.apigw import api_event
        from local.event_source import SqsEventSource
        from local.lambda_context import LambdaContext
        from massmailer.intake import IntakeContext
        from massmailer.memory import InMemoryBlobs
        from massmailer.queues import SqsQueue
        from massmailer.spec import SPLIT_QUEUE
        from massmailer.splitting import SplitterContext

        self._manager = _SqsManager(ctx=mp.get_context("fork"))
        self._manager.start()
        self.sqs = self._manager.FakeSqs()  # type: ignore[attr-defined]
        self.urls = {k: QUEUE_URL.format(k) for k in ("high", "low", "split")}
        self.store = _timed_store()
        self._stop = threading.Event()
        blobs = InMemoryBlobs()
        queue = SqsQueue(self.sqs, self.urls)
        self._intake = IntakeContext(
            campaigns=self.store.campaigns,
            messages=self.store.messages,
            suppressions=self.store.suppressions,
            idempotency=self.store.idempotency,
            queue=queue,
            blobs=blobs,
            schedules=None,
            from_address=FROM_ADDRESS,
            unsubscriber=unsubscriber(),
        )
        self._api_event, self._ctx_class = api_event, LambdaContext
        self._ingest = ingest_handler.handler
        split_ctx = SplitterContext(
            campaigns=self.store.campaigns, suppressions=self.store.suppressions, queue=queue, blobs=blobs
        )

        def split(event: dict[str, Any], context: Any) -> Any:
            return splitter_handler.handler(event, context, ctx=split_ctx)

        self._split_source = SqsEventSource(self.sqs, self.urls["split"], SPLIT_QUEUE, split, failed_visibility=0)
        self._high_started = False

    def _start_high_lane(self) -> None:
        """The high lane's environments: threads of this process, started after any fork."""
        if self._high_started:
            return
        self._high_started = True
        for _ in range(self.high_concurrency):
            source = _lane_source(self.sqs, self.urls, "high", self.store, (self.sink.host, self.sink.port))
            thread = threading.Thread(target=_poller_loop, args=(source, self._stop), daemon=True)
            thread.start()
            self._threads.append(thread)
        time.sleep(0.05)  # let the pollers reach their first receive

    def _api(self, method: str, path: str, body: Any) -> dict[str, Any]:
        response = self._ingest(self._api_event(method, path, body), self._ctx_class("ingest", 29), ctx=self._intake)
        if response["statusCode"] != 202:
            raise RuntimeError(f"API {method} {path}: {response['statusCode']} {response['body'][:300]}")
        return json.loads(response["body"])

    def submit_campaign(self, recipients: int) -> str:
        """The campaign's drain starts at once, its last message held until ``release_low_lane``."""
        self.sqs.hold_last(self.urls["low"])
        campaign_id = self._api("POST", "/v1/campaigns", _campaign_body(recipients))["campaign_id"]
        self._recipients = recipients
        # Start the low lane's environments now that the campaign exists (forked workers snapshot it).
        sink = (self.sink.host, self.sink.port)
        if self.low_mode == "process":
            context = mp.get_context("fork")
            self._proc_stop = context.Event()
            ready = context.Semaphore(0)
            for _ in range(self.low_concurrency):
                p = context.Process(
                    target=_low_worker,
                    args=(self.sqs, self.urls, self.store, sink, self._proc_stop, ready),
                    daemon=True,
                )
                p.start()
                self._processes.append(p)
            for _ in range(self.low_concurrency):
                ready.acquire(timeout=60)
        else:
            for _ in range(self.low_concurrency):
                source = _lane_source(self.sqs, self.urls, "low", self.store, sink)
                thread = threading.Thread(target=_poller_loop, args=(source, self._stop), daemon=True)
                thread.start()
                self._threads.append(thread)
        # The splitter runs once (as the split queue's event source would invoke it).
        while self._split_source.poll_once():
            pass
        return campaign_id

    def low_lane_progress(self) -> tuple[int, bool]:
        stats = self.sqs.stats(self.urls["low"])
        return stats["deleted"] * MAX_RECIPIENTS_PER_BATCH, bool(stats["visible"] or stats["inflight"])

    def low_lane_stats(self) -> dict[str, Any]:
        return self.sqs.stats(self.urls["low"])

    def release_low_lane(self) -> None:
        self.sqs.release(self.urls["low"])

    def send_transactional(self, i: int) -> tuple[str, float]:
        self._start_high_lane()
        t0 = time.monotonic()
        return self._api("POST", "/v1/messages", _message_body(i))["message_id"], t0

    def sent_times(self, message_ids: list[str], timeout: float) -> dict[str, float]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(m in self.store.messages.sent_at for m in message_ids):
                break
            time.sleep(0.01)
        return {m: self.store.messages.sent_at[m] for m in message_ids if m in self.store.messages.sent_at}

    def wait_low_lane_empty(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.low_lane_progress()[1]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the low lane did not drain within {timeout:.0f} s: {self.low_lane_stats()}")
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        if self._processes:
            self._proc_stop.set()
            for p in self._processes:
                p.join(timeout=10)
                if p.is_alive():
                    p.terminate()
        for t in self._threads:
            t.join(timeout=5)
        self._manager.shutdown()


# --------------------------------------------------------------------------------------------------
# The real local runtime, driven over its HTTP API
# --------------------------------------------------------------------------------------------------

# How the local runtime runs for this benchmark (module docstring, "The local runtime").
LOCAL_ENVIRONMENTS = {"high": 4, "low": 1, "split": 1, "bounce": 1}
LOCAL_FUNCTION_ENV = {
    "MM_PROVIDERS": "smtp,ses",  # the relay first: a stage may order its providers so (sending.providers)
    "MM_SMTP_MAX_RATE": "1000",  # the relay's quota: every provider of a stage has a rate
}
LOCAL_NICE = {"low": 10}


class ApiClient:
    """MassMailer's HTTP API over one keep-alive connection (what a client of the API does)."""

    def __init__(self, api_url: str, timeout: float = 60.0) -> None:
        split = urllib.parse.urlsplit(api_url)
        self.api_url = api_url.rstrip("/")
        self._host, self._port = split.hostname or "127.0.0.1", split.port or 80
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            try:
                self._conn.request(method, path, body=data, headers=headers)
                response = self._conn.getresponse()
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
            except (OSError, http.client.HTTPException):
                self._conn.close()
                self._conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _ok(self, method: str, path: str, body: Any = None) -> Any:
        status, payload = self.call(method, path, body)
        if status >= 300:
            raise RuntimeError(f"API {method} {path}: {status} {str(payload)[:300]}")
        return payload

    def send_transactional(self, i: int) -> tuple[str, float]:
        """(message id, wall-clock time of the API call)."""
        t0 = time.time()
        return self._ok("POST", "/v1/messages", _message_body(i))["message_id"], t0

    def submit_campaign(self, recipients: int) -> str:
        return str(self._ok("POST", "/v1/campaigns", _campaign_body(recipients))["campaign_id"])

    def campaign_counts(self, campaign_id: str) -> dict[str, int]:
        return dict(self._ok("GET", f"/v1/campaigns/{campaign_id}")["counts"])

    def sent_times(self, message_ids: list[str], timeout: float) -> dict[str, float]:
        """Message id → wall-clock time its record says it went SENT (``sent_at``)."""
        found: dict[str, float] = {}
        deadline = time.monotonic() + timeout
        while len(found) < len(message_ids) and time.monotonic() < deadline:
            for m in message_ids:
                if m in found:
                    continue
                record = self._ok("GET", f"/v1/messages/{m}")
                if record.get("status") in ("SENT", "DELIVERED") and record.get("sent_at"):
                    found[m] = datetime.fromisoformat(str(record["sent_at"])).timestamp()
            if len(found) < len(message_ids):
                time.sleep(0.1)
        return found

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class LocalRuntimeProcess:
    """``local.runtime.LocalRuntime`` in a process of its own (``python -m bench.priority
    --serve-local-runtime``), in a scratch directory: the benchmark process is only the API's client,
    as a client is on AWS. Stopping it stops every process the runtime started."""

    def __init__(
        self,
        environments: dict[str, int] | None = None,
        function_env: dict[str, str] | None = None,
        nice: dict[str, int] | None = None,
    ) -> None:
        self.environments = dict(environments or LOCAL_ENVIRONMENTS)
        self.function_env = dict(LOCAL_FUNCTION_ENV if function_env is None else function_env)
        self.nice = dict(LOCAL_NICE if nice is None else nice)
        self.pids: dict[str, list[int]] = {}
        self.emulator: dict[str, str] = {}
        self.api_url = ""
        self._child: Any = None
        self._tmp: Any = None

    def start(self) -> LocalRuntimeProcess:
        import tempfile

        from local.children import ROOT, Child

        self._tmp = tempfile.TemporaryDirectory(prefix="mm-bench-local-")
        config = {
            "state_dir": self._tmp.name,
            "environments": self.environments,
            "function_env": self.function_env,
            "nice": self.nice,
        }
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "layers")])}
        self._child = Child(
            "bench-local-runtime",
            "bench.priority",
            ["--serve-local-runtime", json.dumps(config)],
            env,
            Path(self._tmp.name) / "bench-runtime.log",
        )
        try:
            info = json.loads(self._child.start(wait=True, timeout=180).detail)
        except BaseException:
            self.stop()
            raise
        self.api_url, self.pids, self.emulator = info["api"], info["pids"], info["emulator"]
        return self

    def emulator_latency(self, calls: int = 20) -> dict[str, float]:
        """Median time of a DynamoDB GetItem and an SQS GetQueueAttributes against the runtime's moto,
        from here: what any AWS call of a function waits at that moment."""
        import boto3
        from botocore.config import Config

        if not hasattr(self, "_clients"):
            session = boto3.session.Session(
                aws_access_key_id="local", aws_secret_access_key="local", region_name="us-east-1"
            )
            config = Config(retries={"mode": "standard", "max_attempts": 3})
            self._clients = (
                session.client("dynamodb", endpoint_url=self.emulator["dynamodb"], config=config),
                session.client("sqs", endpoint_url=self.emulator["aws"], config=config),
            )
        dynamodb, sqs = self._clients
        ddb_ms, sqs_ms = [], []
        for _ in range(calls):
            started = time.perf_counter()
            dynamodb.get_item(TableName=self.emulator["table"], Key={"PK": {"S": "bench"}, "SK": {"S": "probe"}})
            ddb_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            sqs.get_queue_attributes(QueueUrl=self.emulator["queue"], AttributeNames=["QueueArn"])
            sqs_ms.append((time.perf_counter() - started) * 1000)
            time.sleep(0.005)
        return {"dynamodb_ms": statistics.median(ddb_ms), "sqs_ms": statistics.median(sqs_ms)}

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) so far, per role of the runtime's processes."""
        return {role: sum(_process_cpu(pid) for pid in pids) for role, pids in self.pids.items()}

    def stop(self) -> None:
        from local.children import stop_all

        if self._child is not None:
            stop_all([self._child], grace=60)
            self._child = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _process_cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def serve_local_runtime(config_json: str) -> None:
    """The helper process: start the local runtime, announce its API and processes, serve until told
    to stop (SIGTERM) or until the benchmark goes away, then stop it all."""
    from local.children import announce_ready, install_stop_signals, watch_parent
    from local.runtime import LocalRuntime, RuntimeConfig
    from massmailer.spec import ENV

    config = json.loads(config_json)
    stop = threading.Event()
    install_stop_signals(stop.set)
    runtime = LocalRuntime(
        RuntimeConfig(
            api_port=0,
            state_dir=Path(config["state_dir"]),
            failed_visibility=2,
            write_state_file=False,
            environments=config["environments"],
            function_env=config["function_env"],
            nice=config["nice"],
        )
    )
    watch_parent(on_orphaned=runtime.stop)
    runtime.start()
    pids: dict[str, list[int]] = {"runtime (relay, SES endpoint)": [os.getpid()]}
    for name, child in (("moto (DynamoDB)", runtime.moto_dynamodb), ("moto (SQS, SNS, S3, SES)", runtime.moto)):
        if child is not None and child.process is not None:
            pids.setdefault(name, []).append(child.process.pid)
    for environment in runtime.environments:
        role = f"{environment.function}" + (f" ({environment.queue})" if environment.queue else "")
        if environment.child.process is not None:
            pids.setdefault(role, []).append(environment.child.process.pid)
    emulator = {
        "aws": runtime.aws_url,
        "dynamodb": runtime.dynamodb_url,
        "table": runtime.resources["env"][ENV.table],
        "queue": runtime.resources["queues"]["high"],
    }
    announce_ready(json.dumps({"api": runtime.api_url, "pids": pids, "emulator": emulator}))
    try:
        stop.wait()
    finally:
        runtime.stop()


def _window(api: ApiClient, sends: int, interval: float, first: int) -> dict[str, Any]:
    """``sends`` transactional emails every ``interval`` seconds; their API call → SENT latencies."""
    issued: list[tuple[str, float]] = []
    next_at = time.monotonic()
    for i in range(sends):
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        issued.append(api.send_transactional(first + i))
        next_at += interval
    issued_in = time.monotonic() - (next_at - interval * sends)
    sent = api.sent_times([m for m, _ in issued], timeout=60)
    latencies = [(sent[m] - t0) * 1000 for m, t0 in issued if m in sent]
    return {
        "sends": sends,
        "sent": len(latencies),
        "issued_in_s": issued_in,
        "p50_ms": percentile(latencies, 0.50),
        "p90_ms": percentile(latencies, 0.90),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies) if latencies else None,
        "mean_ms": statistics.fmean(latencies) if latencies else None,
    }


def _progress(api: ApiClient, campaign_id: str) -> tuple[float, int, int]:
    """(monotonic time, recipients sent, recipients settled: sent + failed + suppressed)."""
    counts = api.campaign_counts(campaign_id)
    sent = int(counts.get("sent", 0))
    return time.monotonic(), sent, sent + int(counts.get("failed", 0)) + int(counts.get("suppressed", 0))


def measure_api(
    api: ApiClient,
    sends: int,
    interval: float,
    bulk: int,
    windows: int = 1,
    warmup: int = 20,
    drain_timeout: float = 900,
    cpu: Callable[[], dict[str, float]] | None = None,
    probe: Callable[[], dict[str, float]] | None = None,
) -> dict[str, Any]:
    """One run on a runtime serving ``api``: warm-up, an idle window, then a ``bulk`` campaign with
    ``windows`` loaded windows spread over its drain (the first once a tenth of it is sent), and the
    drain to its end. Every window's latency is API call → the record's ``sent_at``."""
    for burst in range(2):  # cold starts (imports, clients, SMTP sessions) are not measured: bursts
        warm = [api.send_transactional(900_000 + burst * warmup + i)[0] for i in range(warmup)]
        api.sent_times(warm, timeout=60)  # reach every high-lane environment
    idle = _window(api, sends, interval, 0)
    if probe:
        idle["emulator_after"] = probe()  # taken after the window, so it does not load it
    result: dict[str, Any] = {"idle": idle, "bulk": bulk, "windows": []}
    if not bulk:
        return result
    submitted = time.monotonic()
    campaign_id = api.submit_campaign(bulk)
    result["submit_s"] = time.monotonic() - submitted
    cpu_start = cpu() if cpu else {}
    marks = [0.1 + k * 0.8 / windows for k in range(windows)]  # 0.1; 0.1, 0.5; 0.1, 0.37, 0.63 …
    samples: list[tuple[float, int, int]] = []
    for k, mark in enumerate(marks):
        while True:
            samples.append(_progress(api, campaign_id))
            if samples[-1][1] >= bulk * mark or samples[-1][2] >= bulk:
                break
            if samples[-1][0] - submitted > drain_timeout:
                raise RuntimeError(f"the campaign did not reach {mark:.0%} within {drain_timeout:.0f} s")
            time.sleep(0.25)
        before = samples[-1]
        window = _window(api, sends, interval, 1000 * (k + 1))
        ended = after = _progress(api, campaign_id)
        samples.append(after)
        # The drain's rate meanwhile spans at least one of its counted steps (the counters move once
        # per queue message): read on until they have moved since the window opened, so a window
        # shorter than a step (a slow machine, a toy run) still measures the step that ran through it.
        while after[1] == before[1] and after[2] < bulk:
            if after[0] - submitted > drain_timeout:
                raise RuntimeError(f"the campaign made no progress within {drain_timeout:.0f} s: {after}")
            time.sleep(0.1)
            after = _progress(api, campaign_id)
            samples.append(after)
        if probe:
            window["emulator_after"] = probe()
        window.update(
            {
                "bulk_sent_before": before[1],
                "bulk_sent_after": ended[1],
                "bulk_still_draining": ended[2] < bulk,
                "bulk_rate_span_s": after[0] - before[0],
                "bulk_rate_during": (after[1] - before[1]) / (after[0] - before[0]) if after[0] > before[0] else None,
            }
        )
        result["windows"].append(window)
    while samples[-1][2] < bulk:
        if samples[-1][0] - submitted > drain_timeout:
            raise RuntimeError(f"the campaign did not drain within {drain_timeout:.0f} s: {samples[-1]}")
        time.sleep(0.5)
        samples.append(_progress(api, campaign_id))
    first = next(s for s in samples if s[1] > 0)
    done = samples[-1]
    result.update(
        {
            "campaign_id": campaign_id,
            "bulk_sent": done[1],
            "drain_s": done[0] - submitted,
            "bulk_drain_rate": (done[1] - first[1]) / (done[0] - first[0]) if done[0] > first[0] else None,
        }
    )
    if cpu:
        cpu_end = cpu()
        result["cpu_ms_per_email"] = {
            role: round((cpu_end.get(role, 0.0) - seconds) / max(done[1], 1) * 1000, 3)
            for role, seconds in cpu_start.items()
        }
    return result


# --------------------------------------------------------------------------------------------------
# The measurement
# --------------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def rate_over_window(progress: list[tuple[float, int]], start: float, end: float, per_message: int) -> float | None:
    """A drain's rate while a window went on, from its progress events (``(time, messages done)``):
    over the shortest stretch between two events that covers the window — the last event at or
    before its start (none: the drain had not begun, 0 done at ``start``), the first at or after its
    end (none: the drain ended inside the window, its last event). Events, not clock offsets, bound
    it, so a window shorter than one batch still measures the batch that ran through it; ``None``
    only when no message was done after the window opened."""
    before = [event for event in progress if event[0] <= start]
    t_a, done_a = before[-1] if before else (start, 0)
    after = [event for event in progress if event[0] >= end]
    t_b, done_b = after[0] if after else (progress[-1] if progress else (start, 0))
    if t_b <= t_a or done_b <= done_a:
        return None
    return (done_b - done_a) * per_message / (t_b - t_a)


def measure(
    make_runtime: Callable[[], Any], sends: int, interval: float, bulk: int, start_after: float = 0.1
) -> dict[str, Any]:
    """One measurement: with ``bulk`` > 0, the sends start once ``start_after`` of the campaign is sent."""
    with redirect_stdout(StringIO()):  # handlers print EMF metrics; entered once, so threads don't race it
        return _measure(make_runtime, sends, interval, bulk, start_after)


def _measure(
    make_runtime: Callable[[], Any], sends: int, interval: float, bulk: int, start_after: float
) -> dict[str, Any]:
    runtime = make_runtime()
    runtime.start()
    try:
        if bulk:
            # The drain holds its last message back until the window opens (``FakeSqs.hold_last``):
            # the window always opens on a campaign that is still draining, at any speed.
            runtime.submit_campaign(bulk)
            reachable = bulk - MAX_RECIPIENTS_PER_BATCH  # what can be sent with one message held back
            deadline = time.monotonic() + 600
            while runtime.low_lane_progress()[0] < min(bulk * start_after, reachable):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the low lane did not reach {start_after:.0%} of the campaign in 600 s")
                time.sleep(0.01)
        bulk_started = runtime.low_lane_progress()[0] if bulk else 0
        window_started = time.monotonic()
        if bulk:
            runtime.release_low_lane()
        issued: list[tuple[str, float]] = []
        next_at = time.monotonic()
        for i in range(sends):
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            issued.append(runtime.send_transactional(i))
            next_at += interval
        window_ended = time.monotonic()
        bulk_after_sends = runtime.low_lane_progress()[0] if bulk else 0
        sent = runtime.sent_times([m for m, _ in issued], timeout=120)
        low_sent_at_end, still_draining = runtime.low_lane_progress() if bulk else (0, False)
        latencies = [(sent[m] - t0) * 1000 for m, t0 in issued if m in sent]
        low_stats: dict[str, Any] = {}
        if bulk:
            runtime.wait_low_lane_empty(timeout=600)
            if hasattr(runtime, "low_lane_stats"):
                low_stats = runtime.low_lane_stats()
        last_sent = max(sent.values()) if sent else None
    finally:
        runtime.stop()
    drain_rate = None
    if low_stats.get("first_receive") and low_stats.get("emptied_at"):
        drain_rate = bulk / (low_stats["emptied_at"] - low_stats["first_receive"])
    rate_during = (
        rate_over_window(low_stats.get("progress", []), window_started, window_ended, MAX_RECIPIENTS_PER_BATCH)
        if bulk
        else None
    )
    return {
        "sends": sends,
        "sent": len(latencies),
        "p50_ms": percentile(latencies, 0.50),
        "p90_ms": percentile(latencies, 0.90),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies) if latencies else None,
        "mean_ms": statistics.fmean(latencies) if latencies else None,
        "bulk": bulk,
        "bulk_sent_before_first_send": bulk_started,
        "bulk_sent_when_last_high_sent": low_sent_at_end,
        "bulk_still_draining_at_end": still_draining,
        "bulk_drain_rate": drain_rate,
        "bulk_sent_after_last_send_issued": bulk_after_sends,
        "bulk_rate_during": rate_during,
        "bulk_emptied_after_last_high": (
            bool(low_stats.get("emptied_at") and last_sent and low_stats["emptied_at"] > last_sent) if bulk else None
        ),
    }


RUNTIME_NAMES = {
    "local": "local runtime",
    "http": "HTTP API",
    "inprocess": "in-process equivalent",
}


def _rows(bulk: int, runtime: str) -> dict[str, Row]:
    tag = f" [{RUNTIME_NAMES.get(runtime, runtime)}]"
    return {
        "idle_p50": Row("priority.idle_p50", "high lane, idle: p50 API → SENT" + tag, "ms", higher_is_better=False),
        "idle_p99": Row("priority.idle_p99", "high lane, idle: p99 API → SENT" + tag, "ms", higher_is_better=False),
        "bulk_p50": Row(
            "priority.bulk_p50", f"high lane, {bulk:,} bulk draining: p50" + tag, "ms", higher_is_better=False
        ),
        "bulk_p99": Row(
            "priority.bulk_p99", f"high lane, {bulk:,} bulk draining: p99" + tag, "ms", higher_is_better=False
        ),
        "ratio": Row(
            "priority.p99_ratio",
            "p99 under bulk / p99 idle" + tag,
            "×",
            target=TARGET_ISOLATION,
            higher_is_better=False,
            digits=2,
        ),
        "meanwhile": Row("priority.bulk_rate", "low lane drain rate meanwhile" + tag, "emails/s"),
        "drain": Row("priority.drain_rate", f"low lane drain rate, whole {bulk:,} campaign" + tag, "emails/s"),
    }


def run(
    bulk: int = 20_000,
    sends: int = 100,
    interval: float = 0.02,
    repeats: int = 2,
    windows: int = 2,
    runtime: str = "local",
    high_concurrency: int | None = None,
    low_concurrency: int | None = None,
    low_nice: int | None = None,
    providers: str | None = None,
    low_mode: str = "process",
    sink_kind: str = "auto",
    api_url: str | None = None,
) -> Section:
    """``runtime``: ``local`` (default: ``local.runtime.LocalRuntime`` started for each repeat),
    ``http`` (a runtime already serving ``api_url``, e.g. ``make up``) or ``inprocess`` (the in-process
    equivalent). For ``local`` and ``http``, each repeat is one drain of a ``bulk`` campaign with
    ``windows`` loaded measurements spread over it, after one idle measurement."""
    if runtime == "inprocess":
        return _run_inprocess(
            bulk, sends, interval, repeats, high_concurrency or 1, low_concurrency, low_mode, sink_kind
        )
    if runtime not in ("local", "http"):
        raise ValueError(f"priority.runtime must be local, http or inprocess, not {runtime!r}")
    if runtime == "http" and not api_url:
        raise ValueError("the http runtime needs api_url (--set priority.api_url=http://127.0.0.1:8080)")
    section = Section(name="5. Priority isolation", key="priority")
    rows = _rows(bulk, runtime)
    environments = dict(LOCAL_ENVIRONMENTS)
    if high_concurrency:
        environments["high"] = high_concurrency
    if low_concurrency:
        environments["low"] = low_concurrency
    nice = dict(LOCAL_NICE) if low_nice is None else ({"low": low_nice} if low_nice else {})
    function_env = dict(LOCAL_FUNCTION_ENV)
    if providers:
        function_env["MM_PROVIDERS"] = providers
    runs = []
    for _ in range(repeats):
        local = LocalRuntimeProcess(environments, function_env, nice).start() if runtime == "local" else None
        api = ApiClient(local.api_url if local else str(api_url))
        try:
            result = measure_api(
                api,
                sends,
                interval,
                bulk,
                windows,
                cpu=local.cpu_seconds if local else None,
                probe=local.emulator_latency if local else None,
            )
        finally:
            api.close()
            if local is not None:
                local.stop()
        idle, loaded = result["idle"], result["windows"]
        if idle["sent"] < sends or any(w["sent"] < sends for w in loaded):
            raise RuntimeError(
                f"not every transactional send ended SENT: idle {idle['sent']}, "
                f"under load {[w['sent'] for w in loaded]} of {sends}"
            )
        rows["idle_p50"].samples.append(idle["p50_ms"])
        rows["idle_p99"].samples.append(idle["p99_ms"])
        for window in loaded:
            rows["bulk_p50"].samples.append(window["p50_ms"])
            rows["bulk_p99"].samples.append(window["p99_ms"])
            rows["ratio"].samples.append(window["p99_ms"] / idle["p99_ms"])
            if window.get("bulk_rate_during"):
                rows["meanwhile"].samples.append(window["bulk_rate_during"])
        if result.get("bulk_drain_rate"):
            rows["drain"].samples.append(result["bulk_drain_rate"])
        runs.append(result)
    description = (
        "local.runtime.LocalRuntime (moto servers, API front, pollers per lane, SMTP relay), started per repeat"
        if runtime == "local"
        else f"the HTTP API at {api_url}"
    )
    section.details = {
        "runtime": description,
        "bulk_recipients": bulk,
        "transactional_sends": sends,
        "interval_s": interval,
        "windows_per_drain": windows,
        "runs": runs,
    }
    if runtime == "local":
        section.details.update({"environments": environments, "function_env": function_env, "nice": nice})
        section.notes.append(
            f"runtime: {description}; environments {', '.join(f'{k} {v}' for k, v in environments.items())}; "
            f"providers {function_env['MM_PROVIDERS']} (relay quota {function_env.get('MM_SMTP_MAX_RATE', '-')}/s); "
            + (f"low-lane environments at nice {nice['low']}" if nice.get("low") else "no nice")
        )
    else:
        section.notes.append(f"runtime: {description}")
    section.notes.append(
        f"{sends} high-lane sends every {interval * 1000:.0f} ms per window; {repeats} drain(s) × {windows} loaded "
        f"window(s), one idle window per drain; latency = API call → the record's sent_at"
    )
    idle_probe = [r["idle"]["emulator_after"] for r in runs if "emulator_after" in r["idle"]]
    loaded_probe = [w["emulator_after"] for r in runs for w in r["windows"] if "emulator_after" in w]
    if idle_probe and loaded_probe:

        def _med(probes: list[dict[str, float]], key: str) -> float:
            return statistics.median(p[key] for p in probes)

        section.notes.append(
            "one emulated AWS call (median, timed right after each window): DynamoDB GetItem "
            f"{_med(idle_probe, 'dynamodb_ms'):.1f} ms idle, {_med(loaded_probe, 'dynamodb_ms'):.1f} ms under bulk; "
            f"SQS {_med(idle_probe, 'sqs_ms'):.1f} ms idle, {_med(loaded_probe, 'sqs_ms'):.1f} ms under bulk"
        )
    if not all(w["bulk_still_draining"] for r in runs for w in r["windows"]):
        section.notes.append("WARNING: in some windows the bulk campaign had finished before the last high-lane send")
    for key in ("meanwhile", "drain"):
        if not rows[key].samples:
            rows[key].unavailable = "not measured"
    section.rows = list(rows.values())
    return section


def _run_inprocess(
    bulk: int,
    sends: int,
    interval: float,
    repeats: int,
    high_concurrency: int,
    low_concurrency: int | None,
    low_mode: str,
    sink_kind: str,
) -> Section:
    section = Section(name="5. Priority isolation", key="priority")
    low_concurrency = low_concurrency or os.cpu_count() or 2
    rows = _rows(bulk, "inprocess")
    runs = []
    with start_sink(sink_kind) as sink:

        def make() -> Any:
            return InProcessRuntime(sink, high_concurrency, low_concurrency, low_mode)

        for _ in range(repeats):
            idle = measure(make, sends, interval, 0)
            loaded = measure(make, sends, interval, bulk)
            if idle["sent"] < sends or loaded["sent"] < sends:
                raise RuntimeError(
                    f"not every transactional send ended SENT: idle {idle['sent']}, "
                    f"under load {loaded['sent']} of {sends}"
                )
            rows["idle_p50"].samples.append(idle["p50_ms"])
            rows["idle_p99"].samples.append(idle["p99_ms"])
            rows["bulk_p50"].samples.append(loaded["p50_ms"])
            rows["bulk_p99"].samples.append(loaded["p99_ms"])
            rows["ratio"].samples.append(loaded["p99_ms"] / idle["p99_ms"])
            if loaded["bulk_rate_during"]:
                rows["meanwhile"].samples.append(loaded["bulk_rate_during"])
            if loaded["bulk_drain_rate"]:
                rows["drain"].samples.append(loaded["bulk_drain_rate"])
            runs.append({"idle": idle, "bulk": loaded})
        section.details = {
            "runtime": f"in-process equivalent (low-lane environments: {low_mode}es)"
            if low_mode == "process"
            else "in-process equivalent (low-lane environments: threads)",
            "sink": sink.kind,
            "bulk_recipients": bulk,
            "transactional_sends": sends,
            "interval_s": interval,
            "high_lane_concurrency": high_concurrency,
            "low_lane_concurrency": low_concurrency,
            "low_mode": low_mode,
            "runs": runs,
        }
    for key in ("meanwhile", "drain"):
        if not rows[key].samples:
            rows[key].unavailable = "not measured by this runtime"
    if not all(r["bulk"]["bulk_still_draining_at_end"] for r in runs):
        section.notes.append("WARNING: in some runs the bulk campaign had finished before the last high-lane send")
    section.notes.append(
        f"runtime: {section.details['runtime']}; high lane {high_concurrency} environments (threads), "
        f"low lane {low_concurrency} environments; sends every {interval * 1000:.0f} ms"
    )
    section.rows = list(rows.values())
    return section


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 2 and args[0] == "--serve-local-runtime":
        serve_local_runtime(args[1])
        return 0
    print("usage: python -m bench.priority --serve-local-runtime CONFIG_JSON (started by the benchmark)")
    return 2


if __name__ == "__main__":
    sys.exit(main())
