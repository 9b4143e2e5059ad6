"""5. Priority isolation: high-lane latency (API call → SENT) while a bulk campaign drains the low lane.

What it measures: 100 transactional sends on the high lane, spaced evenly, their p50/p99 time from
the API call (the ingest handler) to the moment the sender records them SENT; once while a
20,000-recipient low-lane campaign drains, once on an idle system.

The runtime is pluggable (``Runtime``). Today's default is ``InProcessRuntime``, an in-process
equivalent of the local runtime (``make up`` is being built under ``local/``):

* SQS is ``FakeSqs`` — queues with receive (long poll), delete, visibility and redrive-free
  semantics — served from its own process by a ``multiprocessing`` manager, as SQS is a service
  apart; the engine reaches it through the real ``SqsQueue`` adapter;
* each lane is drained by ``local.event_source.SqsEventSource`` pollers — the event-source logic
  the local runtime uses — with per-lane concurrency: one poller per "execution environment", each
  with its own ``SenderContext`` (own SMTP connection), like Lambda's;
* the low lane's environments are forked processes (``low_mode="process"``, default: Lambda runs
  environments apart, and the GIL would otherwise couple the lanes) or threads of the API process
  (``low_mode="thread"``: what a single-process runtime would give);
* the high lane's environments are threads of the API process, sharing its in-memory store (the
  store is per process: low-lane workers start from a snapshot holding the campaign);
* the provider is SMTP into the same sink as benchmark 1 (``smtp-sink``, or aiosmtpd).

``HttpRuntime`` is the hook for the real local runtime: it drives the HTTP API (``POST /v1/...``,
polling ``GET /v1/messages/{id}`` until it reads SENT, latency to the record's ``sent_at``) of
whatever serves it: ``--set priority.runtime=http --set priority.api_url=http://127.0.0.1:8080`` for
a runtime already up (``make up``), or ``--set priority.runtime=local`` to start
``local.runtime.LocalRuntime`` in a scratch directory (``LocalRuntimeHttp``). The local runtime
sends through moto at tens of emails per second, so give it a small ``priority.bulk``.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing as mp
import os
import statistics
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from datetime import datetime
from io import StringIO
from multiprocessing.managers import BaseManager
from typing import Any, Protocol

from bench.common import Row, Section, Target
from bench.sinks import Sink, start_sink
from bench.workload import CONTENT, FROM_ADDRESS, address_for, quiet_powertools, silence_stdout_fd, variables_for

TARGET_ISOLATION = Target("<=", 2.0, "≤ 2× idle p99")
QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/massmailer-bench-{}"


# --------------------------------------------------------------------------------------------------
# An in-memory SQS (the subset the adapters and the event source use)
# --------------------------------------------------------------------------------------------------


class FakeSqs:
    """SendMessageBatch, ReceiveMessage (long polling), DeleteMessageBatch, ChangeMessageVisibility,
    GetQueueAttributes — per queue URL, thread-safe. Delays and visibility timeouts are honoured."""

    def __init__(self, visibility_timeout: float = 720.0) -> None:
        self._cond = threading.Condition()
        self._visible: dict[str, deque[tuple[float, str, str]]] = {}
        self._inflight: dict[str, dict[str, tuple[float, str, str]]] = {}
        self._deleted: dict[str, int] = {}
        self._received_first: dict[str, float] = {}
        self._emptied_at: dict[str, float] = {}
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
                for _i in range(len(q)):
                    if len(out) >= MaxNumberOfMessages:
                        break
                    visible_at, mid, body = q.popleft()
                    if visible_at > now:
                        q.append((visible_at, mid, body))
                        continue
                    handle = f"rh-{mid}-{next(self._ids)}"
                    inflight[handle] = (now + self._visibility, mid, body)
                    out.append({"MessageId": mid, "ReceiptHandle": handle, "Body": body, "Attributes": {}})
                if out:
                    self._received_first.setdefault(QueueUrl, now)
                    return {"Messages": out}
                remaining = deadline - now
                if remaining <= 0:
                    return {}
                self._cond.wait(min(remaining, 0.05))

    def delete_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        with self._cond:
            self._q(QueueUrl)
            inflight = self._inflight[QueueUrl]
            for entry in Entries:
                if inflight.pop(entry["ReceiptHandle"], None) is not None:
                    self._deleted[QueueUrl] += 1
            if not self._visible[QueueUrl] and not inflight:
                self._emptied_at[QueueUrl] = time.monotonic()
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}

    def change_message_visibility(self, QueueUrl: str, ReceiptHandle: str, VisibilityTimeout: int) -> None:  # noqa: N803
        with self._cond:
            self._q(QueueUrl)
            entry = self._inflight[QueueUrl].pop(ReceiptHandle, None)
            if entry is not None:
                self._visible[QueueUrl].append((time.monotonic() + VisibilityTimeout, entry[1], entry[2]))
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


class _TimedStore:
    """Mixin for the in-memory store: stamps ``time.monotonic()`` when a record goes SENT."""

    sent_at: dict[str, float]

    def record_sent(self, message_id: str, token: str, provider: str, provider_message_id: str) -> None:
        super().record_sent(message_id, token, provider, provider_message_id)  # type: ignore[misc]
        self.sent_at[message_id] = time.monotonic()


def _timed_store() -> Any:
    from massmailer.memory import InMemoryStore

    class TimedStore(_TimedStore, InMemoryStore):
        def __init__(self) -> None:
            InMemoryStore.__init__(self)
            self.sent_at = {}

    return TimedStore()


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
        store=store,
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
            store=self.store,
            queue=queue,
            blobs=blobs,
            schedules=None,
            from_address=FROM_ADDRESS,
            unsubscriber=unsubscriber(),
        )
        self._api_event, self._ctx_class = api_event, LambdaContext
        self._ingest = ingest_handler.handler
        split_ctx = SplitterContext(store=self.store, queue=queue, blobs=blobs)

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
        return stats["deleted"] * 50, bool(stats["visible"] or stats["inflight"])

    def low_lane_stats(self) -> dict[str, Any]:
        return self.sqs.stats(self.urls["low"])

    def send_transactional(self, i: int) -> tuple[str, float]:
        self._start_high_lane()
        t0 = time.monotonic()
        return self._api("POST", "/v1/messages", _message_body(i))["message_id"], t0

    def sent_times(self, message_ids: list[str], timeout: float) -> dict[str, float]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(m in self.store.sent_at for m in message_ids):
                break
            time.sleep(0.01)
        return {m: self.store.sent_at[m] for m in message_ids if m in self.store.sent_at}

    def wait_low_lane_empty(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.low_lane_progress()[1]:
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


@dataclass
class HttpRuntime:
    """The hook for the real local runtime: drives its HTTP API. Latency is measured from the API call
    to the record's ``sent_at`` (same machine, same clock), polled every ``poll`` seconds."""

    api_url: str
    poll: float = 0.01

    def start(self) -> None:
        self._offset = time.time() - time.monotonic()

    def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - a local URL given by the operator
            self.api_url.rstrip("/") + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return json.loads(response.read())

    def submit_campaign(self, recipients: int) -> str:
        self._campaign = self._call("POST", "/v1/campaigns", _campaign_body(recipients))["campaign_id"]
        self._recipients = recipients
        return self._campaign

    def low_lane_progress(self) -> tuple[int, bool]:
        counts = self._call("GET", f"/v1/campaigns/{self._campaign}")["counts"]
        done = counts.get("sent", 0) + counts.get("failed", 0)
        return counts.get("sent", 0), done < self._recipients

    def send_transactional(self, i: int) -> tuple[str, float]:
        t0 = time.monotonic()
        return self._call("POST", "/v1/messages", _message_body(i))["message_id"], t0

    def sent_times(self, message_ids: list[str], timeout: float) -> dict[str, float]:
        found: dict[str, float] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(found) < len(message_ids):
            for m in message_ids:
                if m in found:
                    continue
                record = self._call("GET", f"/v1/messages/{m}")
                if record.get("status") in ("SENT", "DELIVERED") and record.get("sent_at"):
                    sent = datetime.fromisoformat(str(record["sent_at"])).timestamp()
                    found[m] = sent - self._offset
            time.sleep(self.poll)
        return found

    def wait_low_lane_empty(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.low_lane_progress()[1]:
            time.sleep(0.5)

    def stop(self) -> None:
        return None


@dataclass
class LocalRuntimeHttp(HttpRuntime):
    """The real local runtime (``local.runtime.LocalRuntime``: moto server, pollers, HTTP front),
    started here in a scratch state directory and driven over its HTTP API. moto sends tens of
    emails per second, so keep ``bulk`` small with it."""

    api_url: str = ""
    _runtime: Any = None
    _tmp: Any = None

    def start(self) -> None:
        import tempfile
        from pathlib import Path

        from local.runtime import LocalRuntime, RuntimeConfig

        self._tmp = tempfile.TemporaryDirectory(prefix="mm-bench-local-")
        config = RuntimeConfig(api_port=0, state_dir=Path(self._tmp.name), failed_visibility=2, write_state_file=False)
        self._runtime = LocalRuntime(config)
        self._runtime.start()
        self.api_url = self._runtime.api_url
        super().start()

    def stop(self) -> None:
        if self._runtime is not None:
            self._runtime.stop()
            self._runtime = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


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
            runtime.submit_campaign(bulk)
            deadline = time.monotonic() + 120
            while runtime.low_lane_progress()[0] < bulk * start_after and time.monotonic() < deadline:
                time.sleep(0.01)
        bulk_started = runtime.low_lane_progress()[0] if bulk else 0
        issued: list[tuple[str, float]] = []
        next_at = time.monotonic()
        for i in range(sends):
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            issued.append(runtime.send_transactional(i))
            next_at += interval
        sent = runtime.sent_times([m for m, _ in issued], timeout=60)
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
        "bulk_emptied_after_last_high": (
            bool(low_stats.get("emptied_at") and last_sent and low_stats["emptied_at"] > last_sent) if bulk else None
        ),
    }


def run(
    bulk: int = 20_000,
    sends: int = 100,
    interval: float = 0.02,
    repeats: int = 3,
    high_concurrency: int = 1,
    low_concurrency: int | None = None,
    low_mode: str = "process",
    sink_kind: str = "auto",
    runtime: str = "inprocess",
    api_url: str | None = None,
) -> Section:
    section = Section(name="5. Priority isolation", key="priority")
    low_concurrency = low_concurrency or os.cpu_count() or 2
    rows = {
        "idle_p50": Row("priority.idle_p50", "high lane, idle: p50 API → SENT", "ms", higher_is_better=False),
        "idle_p99": Row("priority.idle_p99", "high lane, idle: p99 API → SENT", "ms", higher_is_better=False),
        "bulk_p50": Row("priority.bulk_p50", f"high lane, {bulk:,} bulk draining: p50", "ms", higher_is_better=False),
        "bulk_p99": Row("priority.bulk_p99", f"high lane, {bulk:,} bulk draining: p99", "ms", higher_is_better=False),
        "ratio": Row(
            "priority.p99_ratio",
            "p99 under bulk / p99 idle",
            "×",
            target=TARGET_ISOLATION,
            higher_is_better=False,
            digits=2,
        ),
        "drain": Row("priority.bulk_rate", "low lane drain rate meanwhile", "emails/s"),
    }
    runs = []
    with start_sink(sink_kind) as sink:
        if runtime == "http":
            if not api_url:
                raise ValueError("the http runtime needs api_url (--set priority.api_url=http://127.0.0.1:8080)")

            def make() -> Any:
                return HttpRuntime(api_url)
        elif runtime == "local":

            def make() -> Any:
                return LocalRuntimeHttp()
        else:

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
            if loaded["bulk_drain_rate"]:
                rows["drain"].samples.append(loaded["bulk_drain_rate"])
            runs.append({"idle": idle, "bulk": loaded})
        section.details = {
            "runtime": {"http": f"HTTP API at {api_url}", "local": "local.runtime.LocalRuntime over HTTP"}[runtime]
            if runtime in ("http", "local")
            else f"in-process equivalent (low-lane environments: {low_mode}es)"
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
    if not rows["drain"].samples:
        rows["drain"].unavailable = "not measured by this runtime"
    draining = all(r["bulk"]["bulk_still_draining_at_end"] for r in runs)
    if not draining:
        section.notes.append("WARNING: in some runs the bulk campaign had finished before the last high-lane send")
    shape = (
        f"; high lane {high_concurrency} environments (threads), low lane {low_concurrency} environments"
        if runtime == "inprocess"
        else ""
    )
    section.notes.append(f"runtime: {section.details['runtime']}{shape}; sends every {interval * 1000:.0f} ms")
    section.rows = list(rows.values())
    return section
