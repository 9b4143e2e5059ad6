"""3. AWS requests per email, counted exactly through botocore events, and the cost they imply.

A real moto run (in process) of one campaign through the real handlers and the real wiring:
ingest (``POST /v1/campaigns``) → splitter → both lanes → sender (SES v2 as the provider), each
queue drained by ``local.event_source`` as Lambda's event source mapping would, stage after stage so
moto's queues stay short (moto's SQS receive scans the whole queue). Then three event stages: for a
sample of the sent emails SES ``Send`` events, then ``Delivery`` events, for another sample
``Bounce`` events (Permanent), are published to the SNS topic as SES would, and the bounce handler
drains them from its queue; each is costed per event and weighted per email: Send once per email
(every stage publishes it: it closes the crash window between SES's acceptance and the sender's
record), Delivery once per email on stages that track deliveries, Bounce at ``BOUNCE_RATE``.

Counting: two handlers appended to ``botocore.handlers.BUILTIN_HANDLERS`` — so every client and
resource the code creates carries them — see each call's parameters (``before-parameter-build``)
and its parsed result (``after-call``): calls per service and operation, conditional-check failures,
SQS/SNS payload in 64 KiB billing chunks, DynamoDB keys written and read. Request units are then
priced from the items' sizes (a scan after the run, not counted): a write costs ⌈size/1 KiB⌉ WRU
(a failed conditional write too), plus the same again when the item carries the GSI keys (the index
projects ALL); a strongly consistent read ⌈size/4 KiB⌉ RRU, an eventually consistent one half that.

Lambda: the CPU each handler spent (process time around the invocation) minus the CPU spent inside
moto during it (``BotocoreStubber.__call__``, timed per thread), scaled to the function's memory
from ``massmailer.spec`` (a fraction of a vCPU below 1,769 MB) and billed as GB-seconds at arm64
prices (``cdk.json`` stages deploy arm64). I/O waits on AWS are not in it (see the README).
"""

from __future__ import annotations

import json
import math
import os
import statistics
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from io import StringIO
from typing import Any

from bench.common import Row, Section, Target
from bench.prices import CHECKED, PRICES, lambda_seconds
from bench.workload import CONTENT, FROM_ADDRESS, address_for, quiet_powertools, variables_for
from massmailer.store import keys

TARGET_DDB_WRITES = Target("<=", 2.1, "≤ 2.1 writes/email")
TARGET_SQS = Target("<=", 0.05, "≤ 0.05 requests/email")
TARGET_COST = Target("<=", 1.50, "≤ $1.50 per 1M (excl. SES)")

GSI_KEYS = ("GSI1PK",)
_READ_OPS = {"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"}
_WRITE_OPS = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


def _s(value: Any) -> Any:
    """A DynamoDB attribute value, typed (``{"S": "x"}``) or plain, as a plain value."""
    if isinstance(value, dict) and len(value) == 1:
        ((kind, inner),) = value.items()
        if kind in ("S", "N", "B", "BOOL", "NULL"):
            return inner
    return value


def clock_driven(pk: str, query: bool = False) -> bool:
    """An item whose requests follow elapsed time, not the number of emails: the providers' shared
    rate windows (``W#<second>``) and breaker state (``STATE``), and the campaign the sender queries
    again when its short cache expires (``query``; the per-send status check is a GetItem, one per
    email). Their count per email moves with the run's duration."""
    partition, _, sort = pk.partition("|")
    return (
        sort.startswith(keys.WINDOW_PREFIX)
        or sort == keys.STATE
        or (query and partition.startswith(keys.CAMPAIGN_PREFIX))
    )


def _chunks(size: int) -> int:
    return max(1, math.ceil(size / 65536))


@dataclass
class _Write:
    pk: str
    failed: bool
    sets_gsi: bool
    factor: int = 1  # a write in a transaction is billed twice


@dataclass
class _Read:
    pks: list[str]
    consistent: bool
    op: str
    partition: str = ""  # a Query's partition key value


@dataclass
class StageCount:
    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    errors: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    sqs_billed: int = 0
    sns_billed: int = 0
    writes: list[_Write] = field(default_factory=list)
    reads: list[_Read] = field(default_factory=list)
    invocations: Counter[str] = field(default_factory=Counter)
    handler_cpu: Counter[str] = field(default_factory=Counter)
    moto_cpu: Counter[str] = field(default_factory=Counter)
    api_requests: int = 0


class RequestCounter:
    """Counts every AWS call made by clients created while installed, per stage."""

    def __init__(self) -> None:
        self.stage: str | None = None
        self.stages: dict[str, StageCount] = defaultdict(StageCount)
        self._lock = threading.Lock()
        self._entries = [
            ("before-parameter-build", self._before),
            ("after-call", self._after),
        ]

    # -- installation ----------------------------------------------------------------------------
    def install(self) -> None:
        from botocore.handlers import BUILTIN_HANDLERS

        BUILTIN_HANDLERS.extend(self._entries)

    def uninstall(self) -> None:
        from botocore.handlers import BUILTIN_HANDLERS

        for entry in self._entries:
            while entry in BUILTIN_HANDLERS:
                BUILTIN_HANDLERS.remove(entry)

    @contextmanager
    def counting(self, stage: str | None) -> Iterator[StageCount | None]:
        previous, self.stage = self.stage, stage
        try:
            yield self.stages[stage] if stage else None
        finally:
            self.stage = previous

    # -- botocore events -------------------------------------------------------------------------
    def _before(self, params: dict[str, Any], context: dict[str, Any] | None = None, **_: Any) -> None:
        if context is not None:
            context["bench_params"] = params

    def _after(
        self, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any] | None = None, **_: Any
    ) -> None:
        stage = self.stage
        if stage is None:
            return
        service = model.service_model.service_name
        op = model.name
        params = (context or {}).get("bench_params") or {}
        error = (parsed or {}).get("Error", {}).get("Code") if isinstance(parsed, dict) else None
        with self._lock:
            count = self.stages[stage]
            count.calls[(service, op)] += 1
            if error:
                count.errors[(service, op, error)] += 1
            if service == "sqs":
                count.sqs_billed += self._sqs_chunks(op, params, parsed)
            elif service == "sns" and op in ("Publish", "PublishBatch"):
                entries = params.get("PublishBatchRequestEntries") or [params]
                count.sns_billed += sum(_chunks(len(str(e.get("Message", "")).encode())) for e in entries)
            elif service == "dynamodb":
                self._dynamo(count, op, params, parsed, error)

    @staticmethod
    def _sqs_chunks(op: str, params: dict[str, Any], parsed: dict[str, Any]) -> int:
        if op == "SendMessageBatch":
            return _chunks(sum(len(str(e.get("MessageBody", "")).encode()) for e in params.get("Entries", [])))
        if op == "SendMessage":
            return _chunks(len(str(params.get("MessageBody", "")).encode()))
        if op == "ReceiveMessage":
            return _chunks(sum(len(m.get("Body", "").encode()) for m in (parsed or {}).get("Messages", [])))
        return 1

    @staticmethod
    def _pk(key: Any) -> str:
        """The item's identity: ``PK|SK``."""
        key = key or {}
        return f"{_s(key.get(keys.PK, '?'))}|{_s(key.get(keys.SK, ''))}"

    def _dynamo(self, count: StageCount, op: str, params: dict[str, Any], parsed: Any, error: str | None) -> None:
        failed = error == "ConditionalCheckFailedException"
        if op in ("PutItem", "UpdateItem", "DeleteItem"):
            item = params.get("Item") or {}
            key = params.get("Key") or item
            names = set((params.get("ExpressionAttributeNames") or {}).values())
            sets_gsi = any(k in item for k in GSI_KEYS) or any(k in names for k in GSI_KEYS)
            count.writes.append(_Write(self._pk(key), failed, sets_gsi and not failed))
        elif op == "BatchWriteItem":
            for requests in (params.get("RequestItems") or {}).values():
                for request in requests:
                    item = (request.get("PutRequest") or {}).get("Item") or (request.get("DeleteRequest") or {}).get(
                        "Key", {}
                    )
                    count.writes.append(_Write(self._pk(item), False, any(k in item for k in GSI_KEYS)))
        elif op == "TransactWriteItems":
            for entry in params.get("TransactItems") or []:
                for action in entry.values():
                    key = action.get("Key") or action.get("Item") or {}
                    # one write per item, each billed twice (transactional)
                    count.writes.append(_Write(self._pk(key), failed, False, factor=2))
        elif op == "GetItem":
            count.reads.append(_Read([self._pk(params.get("Key"))], bool(params.get("ConsistentRead")), op))
        elif op == "BatchGetItem":
            for spec in (params.get("RequestItems") or {}).values():
                count.reads.append(
                    _Read([self._pk(k) for k in spec.get("Keys", [])], bool(spec.get("ConsistentRead")), op)
                )
        elif op in ("Query", "Scan"):
            items = (parsed or {}).get("Items") or []
            partition = str(_s((params.get("ExpressionAttributeValues") or {}).get(":pk", "")))
            pks = [self._pk(i) for i in items] or ["?"]
            count.reads.append(_Read(pks, bool(params.get("ConsistentRead")), op, partition))


class MotoClock:
    """CPU spent inside moto (the emulated service side), per thread, to subtract from handler CPU."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._lock = threading.Lock()
        self._original: Callable[..., Any] | None = None

    def install(self) -> None:
        from moto.core.botocore_stubber import BotocoreStubber

        original = BotocoreStubber.__call__
        clock = self

        def timed(stubber: Any, event_name: str, request: Any, **kwargs: Any) -> Any:
            t0 = time.thread_time()
            try:
                return original(stubber, event_name, request, **kwargs)
            finally:
                spent = time.thread_time() - t0
                with clock._lock:
                    clock.seconds += spent

        self._original = original
        BotocoreStubber.__call__ = timed  # type: ignore[method-assign]

    def uninstall(self) -> None:
        if self._original is not None:
            from moto.core.botocore_stubber import BotocoreStubber

            BotocoreStubber.__call__ = self._original  # type: ignore[method-assign]
            self._original = None


def _timed_handler(
    counter: RequestCounter, moto: MotoClock, function: str, handler: Callable[..., Any]
) -> Callable[..., Any]:
    def invoke(event: dict[str, Any], context: Any) -> Any:
        stage = counter.stages[counter.stage or "?"]
        m0, c0 = moto.seconds, time.process_time()
        try:
            with redirect_stdout(StringIO()):  # EMF metrics
                return handler(event, context)
        finally:
            stage.invocations[function] += 1
            stage.handler_cpu[function] += time.process_time() - c0
            stage.moto_cpu[function] += moto.seconds - m0

    return invoke


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --------------------------------------------------------------------------------------------------
# DynamoDB item sizes (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html)
# --------------------------------------------------------------------------------------------------


def _value_size(value: dict[str, Any]) -> int:
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        digits = inner.lstrip("-").replace(".", "").lstrip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + _value_size(v) + 1 for k, v in inner.items())
    if kind == "L":
        return 3 + sum(_value_size(v) + 1 for v in inner)
    if kind in ("SS", "NS", "BS"):
        return sum(len(str(v).encode()) for v in inner)
    return 1


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _table_sizes(client: Any, table: str) -> dict[str, tuple[int, bool]]:
    """``PK|SK`` → (item size in bytes, carries the GSI keys), from a scan."""
    sizes: dict[str, tuple[int, bool]] = {}
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = client.scan(**kwargs)
        for item in page.get("Items", []):
            sizes[f"{item[keys.PK]['S']}|{item.get(keys.SK, {}).get('S', '')}"] = (
                item_size(item),
                any(k in item for k in GSI_KEYS),
            )
        if "LastEvaluatedKey" not in page:
            return sizes
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _units(count: StageCount, sizes: dict[str, tuple[int, bool]], gsi_pks: set[str]) -> dict[str, float]:
    wru = gsi_wru = 0.0
    for w in count.writes:
        size = sizes.get(w.pk, (1024, False))[0]
        units = max(1, math.ceil(size / 1024)) * w.factor
        wru += units
        if w.failed:
            continue
        if w.sets_gsi:
            gsi_pks.add(w.pk)
        if w.pk in gsi_pks:
            gsi_wru += units
    rru = 0.0
    for r in count.reads:
        for pk in r.pks:
            units = max(1, math.ceil(sizes.get(pk, (1, False))[0] / 4096))
            rru += units if r.consistent else units / 2
    return {"wru": wru, "gsi_wru": gsi_wru, "rru": rru}


# --------------------------------------------------------------------------------------------------
# SES events, as the configuration set publishes them
# --------------------------------------------------------------------------------------------------


def ses_event(kind: str, ses_message_id: str, address: str, tags: dict[str, str], config_set: str) -> dict[str, Any]:
    """The event SES publishes, as the local runtime's SES endpoint writes it (``local.ses_events``)."""
    from local.ses_events import AcceptedEmail, delivery_event, hard_bounce_event, send_event

    email = AcceptedEmail(
        message_id=ses_message_id,
        source=FROM_ADDRESS,
        destinations=[address],
        tags=tags,
        configuration_set=config_set,
        headers=[],
        accepted_at=time.time(),
    )
    if kind == "Send":
        return send_event(email)
    if kind == "Bounce":
        return hard_bounce_event(email, address, 1.0, suppression_list=False)
    return delivery_event(email, [address], 0.8)


# --------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_SESSION_TOKEN": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def moto_campaign_run(recipients: int, notify_sample: int, ses_rate: float) -> dict[str, Any]:
    """One campaign through moto; returns per-stage counts, units and CPU."""
    quiet_powertools()
    os.environ.pop("AWS_ENDPOINT_URL", None)
    os.environ.pop("AWS_PROFILE", None)
    import boto3
    from moto import mock_aws

    counter = RequestCounter()
    moto_clock = MotoClock()
    with _environment(AWS_ENV), mock_aws():
        from lambdas.bounce import handler as bounce_handler
        from lambdas.ingest import handler as ingest_handler
        from lambdas.sender import handler as sender_handler
        from lambdas.splitter import handler as splitter_handler
        from local.apigw import api_event
        from local.event_source import SqsEventSource, drain
        from local.lambda_context import LambdaContext
        from local.moto_tuning import apply_in_process
        from local.provision import provision
        from massmailer import spec, wiring

        # moto's per-request waste off (answers unchanged; moto's CPU is subtracted anyway): stock
        # moto copies the whole table for every TransactWriteItems, the batches' count-once writes.
        apply_in_process()

        resources = provision("bench", from_address=FROM_ADDRESS)
        env = {
            **resources["env"],
            "MM_PROVIDERS": "ses",
            "MM_SIGNING_KEYS": "bench1:bench-signing-key-1",
            "MM_UNSUBSCRIBE_BASE_URL": "https://mail.massmailer.test",
            "MM_SES_MAX_RATE": str(ses_rate),
            # Counts do not depend on it; moto's CPU does (8 threads thrash the GIL around moto): the
            # sender's own CPU is measured without moto, at the engine's default concurrency.
            "MM_SENDER_CONCURRENCY": "1",
        }
        counter.install()
        moto_clock.install()
        try:
            with _environment(env):
                wiring.reset()
                sqs = boto3.client("sqs")
                queues = {q.key: q for q in spec.QUEUES}
                memory = {
                    spec.SENDER.name: spec.SENDER.memory_mb,
                    spec.SPLITTER.name: spec.SPLITTER.memory_mb,
                    spec.INGEST.name: spec.INGEST.memory_mb,
                    spec.BOUNCE.name: spec.BOUNCE.memory_mb,
                }

                def source(key: str, function: str, handler: Any) -> SqsEventSource:
                    timeout = {"sender": spec.SENDER, "splitter": spec.SPLITTER, "bounce": spec.BOUNCE}[function]
                    return SqsEventSource(
                        sqs,
                        resources["queues"][key],
                        queues[key],
                        _timed_handler(counter, moto_clock, function, handler),
                        function_timeout=timeout.timeout_seconds,
                        failed_visibility=0,
                    )

                # 1. ingest: the API accepts the campaign (audience inline, as the API takes it)
                body = {
                    "name": "Bench newsletter",
                    "subject": CONTENT.subject,
                    "text": CONTENT.text,
                    "html": CONTENT.html,
                    "from_name": "MassMailer News",
                    "audience": [{"email": address_for(i), "variables": variables_for(i)} for i in range(recipients)],
                }
                ingest = _timed_handler(counter, moto_clock, "ingest", ingest_handler.handler)
                with counter.counting("ingest") as stage:
                    response = ingest(api_event("POST", "/v1/campaigns", body), LambdaContext("ingest", 29))
                    assert stage is not None
                    stage.api_requests += 1
                if response["statusCode"] != 202:
                    raise RuntimeError(f"ingest refused the campaign: {response['body'][:500]}")
                campaign_id = json.loads(response["body"])["campaign_id"]

                # 2. split, 3. send: stage by stage, so each queue holds at most this campaign's batches
                with counter.counting("split"):
                    drain([source("split", "splitter", splitter_handler.handler)])
                with counter.counting("send"):
                    drain(
                        [
                            source("high", "sender", sender_handler.handler),
                            source("low", "sender", sender_handler.handler),
                        ]
                    )

                # What was sent (not counted): records and SES's message ids.
                table = resources["table"]
                low_level = boto3.client("dynamodb")
                sizes = _table_sizes(low_level, table)
                records = []
                kwargs: dict[str, Any] = {
                    "TableName": table,
                    "FilterExpression": "begins_with(#pk, :m)",
                    "ExpressionAttributeNames": {"#pk": keys.PK},
                    "ExpressionAttributeValues": {":m": {"S": keys.MESSAGE_PREFIX}},
                }
                while True:
                    page = low_level.scan(**kwargs)
                    records.extend(page.get("Items", []))
                    if "LastEvaluatedKey" not in page:
                        break
                    kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
                sent = [r for r in records if r.get("status", {}).get("S") == "SENT"]
                statuses = Counter(r.get("status", {}).get("S") for r in records)

                # 4. events, SNS → SQS → bounce λ: Send for a sample of the sent emails (one per email
                # on every stage), Delivery for the same sample (stages that track deliveries), Bounce
                # for another (a few percent of emails).
                sns = boto3.client("sns")
                n = max(0, min(notify_sample, len(sent) // 2))
                samples = {
                    "sends": ("Send", sent[:n]),
                    "deliveries": ("Delivery", sent[:n]),
                    "bounces": ("Bounce", sent[n : n + n // 2]),
                }
                bounce_source = source("bounce", "bounce", bounce_handler.handler)
                for stage_name, (kind, sample) in samples.items():
                    with counter.counting(stage_name):
                        for start in range(0, len(sample), 50):  # publish a slice, drain it: short queues
                            for record in sample[start : start + 50]:
                                tags = {"message_id": record["message_id"]["S"], "campaign_id": campaign_id}
                                event = ses_event(
                                    kind,
                                    record["provider_message_id"]["S"],
                                    record["email"]["S"],
                                    tags,
                                    resources["env"]["MM_SES_CONFIGURATION_SET"],
                                )
                                sns.publish(TopicArn=resources["topic_arn"], Message=json.dumps(event))
                            drain([bounce_source])
                sizes.update(_table_sizes(low_level, table))
                final = _campaign_counts(ingest_handler, api_event, LambdaContext, campaign_id)
                dlq_depths = {
                    key: int(
                        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
                            "Attributes"
                        ]["ApproximateNumberOfMessages"]
                    )
                    for key, url in resources["dlqs"].items()
                }
            wiring.reset()
        finally:
            moto_clock.uninstall()
            counter.uninstall()

    gsi_pks: set[str] = set()
    stages = {}
    for name in STAGES:
        count = counter.stages[name]
        stages[name] = {
            "calls": {f"{s}.{o}": n for (s, o), n in sorted(count.calls.items())},
            "errors": {f"{s}.{o}.{e}": n for (s, o, e), n in sorted(count.errors.items())},
            # + what SNS delivers to its one SQS subscriber (the bounce queue): SQS bills each as a send
            "sqs_billed_requests": count.sqs_billed + count.sns_billed,
            "sns_billed_publishes": count.sns_billed,
            "dynamodb": {
                "write_requests": len(count.writes),
                "conditional_failures": sum(1 for w in count.writes if w.failed),
                "read_requests": len(count.reads),
                "clock_driven_write_requests": sum(1 for w in count.writes if clock_driven(w.pk)),
                # the sender's one Query per batch of what was suppressed since the split's check
                "suppressed_since_queries": sum(
                    1 for r in count.reads if r.op == "Query" and r.partition.startswith(keys.RECENT_SUPPRESSION_PREFIX)
                ),
                "clock_driven_read_requests": sum(
                    1 for r in count.reads if all(clock_driven(k, query=r.op == "Query") for k in r.pks)
                ),
                **_units(count, sizes, gsi_pks),
            },
            "invocations": dict(count.invocations),
            "handler_cpu_s": dict(count.handler_cpu),
            "moto_cpu_s": dict(count.moto_cpu),
            "lambda_cpu_s": {f: count.handler_cpu[f] - count.moto_cpu[f] for f in count.handler_cpu},
            "memory_mb": {f: memory[f] for f in count.invocations},
            "api_requests": count.api_requests,
        }
    return {
        "recipients": recipients,
        "sent": len(sent),
        "statuses": dict(statuses),
        "event_samples": {name: len(sample) for name, (_, sample) in samples.items()},
        "campaign_counts": final,
        "dlq_depths": dlq_depths,
        "stages": stages,
        "item_bytes": {
            "message_record_max": max(
                (s for pk, (s, _) in sizes.items() if pk.startswith(keys.MESSAGE_PREFIX)), default=0
            ),
            "campaign": next((s for pk, (s, _) in sizes.items() if pk.startswith(keys.CAMPAIGN_PREFIX)), 0),
        },
        "ses_rate": ses_rate,
    }


def _campaign_counts(ingest_handler: Any, api_event: Any, lambda_context: Any, campaign_id: str) -> dict[str, Any]:
    response = ingest_handler.handler(api_event("GET", f"/v1/campaigns/{campaign_id}"), lambda_context("ingest", 29))
    return json.loads(response["body"]).get("counts", {})


# --------------------------------------------------------------------------------------------------
# Per email, and the cost of 1M
# --------------------------------------------------------------------------------------------------


def per_email(
    run: dict[str, Any],
    stages: tuple[str, ...],
    cpu_per_email: dict[str, float] | None = None,
    events_per_email: dict[str, float] | None = None,
) -> dict[str, float]:
    """Requests and units per sent email over ``stages``. An event stage is taken per event of its
    sample, times ``per_email`` events per email (its share: 1.0 for Delivery, the bounce rate for
    Bounce). ``cpu_per_email`` replaces a function's moto-run CPU by a figure measured without moto."""
    sent = run["sent"] or 1
    totals: Counter[str] = Counter()
    for name in stages:
        st = run["stages"][name]
        if name in EVENT_STAGES:
            f = (events_per_email or {}).get(name, 1.0) / (run["event_samples"][name] or 1)
        else:
            f = 1.0 / sent
        calls = st["calls"]
        totals["sqs_requests"] += (
            sum(n for k, n in calls.items() if k.startswith("sqs.")) + st["sns_billed_publishes"]
        ) * f
        totals["sqs_billed"] += st["sqs_billed_requests"] * f
        totals["ddb_write_requests"] += st["dynamodb"]["write_requests"] * f
        totals["ddb_read_requests"] += st["dynamodb"]["read_requests"] * f
        totals["ddb_write_requests_per_email"] += (
            st["dynamodb"]["write_requests"] - st["dynamodb"]["clock_driven_write_requests"]
        ) * f
        totals["ddb_read_requests_per_email"] += (
            st["dynamodb"]["read_requests"] - st["dynamodb"]["clock_driven_read_requests"]
        ) * f
        totals["ddb_conditional_failures"] += st["dynamodb"]["conditional_failures"] * f
        totals["ddb_suppressed_since_queries"] += st["dynamodb"].get("suppressed_since_queries", 0) * f
        totals["ddb_wru"] += (st["dynamodb"]["wru"] + st["dynamodb"]["gsi_wru"]) * f
        totals["ddb_rru"] += st["dynamodb"]["rru"] * f
        totals["ses_send"] += sum(n for k, n in calls.items() if k.startswith("sesv2.SendEmail")) * f
        totals["sns_publish"] += st["sns_billed_publishes"] * f
        totals["s3_put"] += sum(n for k, n in calls.items() if k in ("s3.PutObject",)) * f
        totals["s3_get"] += sum(n for k, n in calls.items() if k in ("s3.GetObject",)) * f
        totals["lambda_invocations"] += sum(st["invocations"].values()) * f
        totals["api_requests"] += st["api_requests"] * f
        for function, cpu in st["lambda_cpu_s"].items():
            mb = st["memory_mb"][function]
            per = max(cpu, 0.0) * f
            if cpu_per_email and function in cpu_per_email:
                per = cpu_per_email[function]
            totals["lambda_gb_s"] += lambda_seconds(per, mb) * mb / 1024
            totals[f"lambda_cpu_us.{function}"] += per * 1e6
    return dict(totals)


def cost_per_million(pe: dict[str, float], campaign_size: int, arch: str = "arm") -> dict[str, float]:
    m = 1e6
    cost = {
        "sqs": pe.get("sqs_billed", 0) * m * PRICES["sqs_request"].usd,
        "dynamodb_writes": pe.get("ddb_wru", 0) * m * PRICES["dynamodb_wru"].usd,
        "dynamodb_reads": pe.get("ddb_rru", 0) * m * PRICES["dynamodb_rru"].usd,
        "lambda_compute": pe.get("lambda_gb_s", 0) * m * PRICES[f"lambda_gb_s_{arch}"].usd,
        "lambda_requests": pe.get("lambda_invocations", 0) * m * PRICES["lambda_request"].usd,
        "sns": pe.get("sns_publish", 0) * m * PRICES["sns_publish"].usd,
        "s3": pe.get("s3_put", 0) * m * PRICES["s3_put"].usd + pe.get("s3_get", 0) * m * PRICES["s3_get"].usd,
        "api_gateway": pe.get("api_requests", 0) * m * PRICES["apigw_request"].usd,
        # one schedule invocation per campaign if every campaign were scheduled (send_at)
        "scheduler": (m / campaign_size) * PRICES["scheduler_invocation"].usd,
    }
    cost["total_excl_ses"] = sum(cost.values())
    cost["ses"] = pe.get("ses_send", 0) * m * PRICES["ses_email"].usd
    return cost


SEND_PATH = ("ingest", "split", "send")
EVENT_STAGES = ("sends", "deliveries", "bounces")
STAGES = (*SEND_PATH, *EVENT_STAGES)
# Bounces and complaints per email assumed in the cost: SES puts an account under review at 5 %
# bounces; 2 % is a list in ordinary health (complaints are a tenth of that and cost the same).
BOUNCE_RATE = 0.02


def run(
    recipients: int = 10_000,
    repeats: int = 1,
    notify_sample: int = 500,
    ses_rate: float = 1000.0,
    sender_cpu_runs: int = 3,
    throttle_recipients: int = 50,
) -> Section:
    section = Section(name="3. AWS requests", key="aws")
    rows = {
        "ddb_writes": Row(
            "aws.ddb_writes",
            "DynamoDB write requests / email (send path)",
            "req",
            target=TARGET_DDB_WRITES,
            higher_is_better=False,
            digits=3,
        ),
        "ddb_cond": Row(
            "aws.ddb_conditional_failures",
            "DynamoDB conditional failures / email (send path)",
            "req",
            higher_is_better=False,
            digits=3,
        ),
        "ddb_reads": Row(
            "aws.ddb_reads", "DynamoDB read requests / email (send path)", "req", higher_is_better=False, digits=3
        ),
        "ddb_writes_per_email": Row(
            "aws.ddb_writes_per_email",
            "  of which per email (without clock-driven rate windows, breaker state, campaign re-reads)",
            "req",
            higher_is_better=False,
            digits=4,
        ),
        "ddb_reads_per_email": Row(
            "aws.ddb_reads_per_email",
            "  of the reads, per email (without clock-driven ones)",
            "req",
            higher_is_better=False,
            digits=4,
        ),
        "ddb_suppressed_since": Row(
            "aws.ddb_suppressed_since_queries",
            "  of the reads: 'suppressed since the split' Query, one per batch (unsubscribes honoured)",
            "req",
            higher_is_better=False,
            digits=4,
        ),
        "ddb_wru": Row(
            "aws.ddb_wru", "DynamoDB WRU / email incl. GSI (send path)", "WRU", higher_is_better=False, digits=3
        ),
        "ddb_rru": Row("aws.ddb_rru", "DynamoDB RRU / email (send path)", "RRU", higher_is_better=False, digits=3),
        "sqs": Row(
            "aws.sqs",
            "SQS requests / email (send path, incl. event-source polls)",
            "req",
            target=TARGET_SQS,
            higher_is_better=False,
            digits=4,
        ),
        "ses": Row("aws.ses", "SES SendEmail / email", "req", higher_is_better=False, digits=3),
        "send_event_writes": Row(
            "aws.send_event_ddb_writes",
            "per Send event: DynamoDB write requests (the sender recorded SENT first)",
            "req",
            higher_is_better=False,
            digits=3,
        ),
        "send_event_rru": Row(
            "aws.send_event_rru", "per Send event: DynamoDB RRU", "RRU", higher_is_better=False, digits=3
        ),
        "delivery_writes": Row(
            "aws.delivery_ddb_writes",
            "per Delivery event: DynamoDB write requests",
            "req",
            higher_is_better=False,
            digits=3,
        ),
        "bounce_writes": Row(
            "aws.bounce_ddb_writes",
            "per Bounce event: DynamoDB write requests",
            "req",
            higher_is_better=False,
            digits=3,
        ),
        "event_sqs": Row(
            "aws.event_sqs",
            "per SES event: SQS requests (SNS → queue → bounce λ)",
            "req",
            higher_is_better=False,
            digits=3,
        ),
        "lambda_cpu_sender": Row(
            "aws.lambda_cpu_sender", "sender λ CPU / email, AWS adapters (HTTP canned)", "µs", higher_is_better=False
        ),
        "cost_send": Row(
            "aws.cost_send_path",
            "cost per 1M emails, send path only (excl. SES)",
            "$",
            higher_is_better=False,
            digits=3,
        ),
        "cost_total": Row(
            "aws.cost_total",
            f"cost per 1M emails, send path + Send events + bounces/complaints at {BOUNCE_RATE:.0%} (prod; excl. SES)",
            "$",
            target=TARGET_COST,
            higher_is_better=False,
            digits=3,
        ),
        "cost_deliveries": Row(
            "aws.cost_with_deliveries",
            "cost per 1M emails, the same + Delivery tracking (dev default; excl. SES)",
            "$",
            higher_is_better=False,
            digits=3,
        ),
        "cost_ses": Row(
            "aws.cost_ses", "SES itself per 1M emails (shown apart)", "$", higher_is_better=False, digits=2
        ),
        "throttled": Row(
            "aws.ddb_requests_per_throttled_email_hour",
            "DynamoDB requests per throttled email per hour (provider throttling until the 24 h budget)",
            "req",
            higher_is_better=False,
            digits=2,
        ),
        "parked": Row(
            "aws.ddb_requests_per_parked_email_hour",
            "DynamoDB requests per throttled email per hour (every provider parked: daily quota, 24 h)",
            "req",
            higher_is_better=False,
            digits=2,
        ),
    }
    from bench.engine_cpu import _handler_cpu, aws_context

    sender_cpu_n = min(recipients, 2_000)
    _handler_cpu(min(100, recipients), aws_context, None)  # warm: botocore models, template
    runs = []
    for _ in range(repeats):
        # The sender's own CPU (AWS adapters answered in process), before moto is imported; measured
        # three times per run, as it is the noisy part (the counts below are exact).
        cpu_samples = [_handler_cpu(sender_cpu_n, aws_context, None) / sender_cpu_n for _ in range(sender_cpu_runs)]
        rows["lambda_cpu_sender"].samples.extend(c * 1e6 for c in cpu_samples)
        sender_cpu = statistics.median(cpu_samples)
        result = moto_campaign_run(recipients, notify_sample, ses_rate)
        if result["sent"] != recipients:
            raise RuntimeError(f"moto run: {result['sent']} of {recipients} sent ({result['statuses']})")
        send = per_email(result, SEND_PATH, {"sender": sender_cpu})
        prod = per_email(result, (*SEND_PATH, "sends", "bounces"), {"sender": sender_cpu}, {"bounces": BOUNCE_RATE})
        tracked = per_email(result, STAGES, {"sender": sender_cpu}, {"bounces": BOUNCE_RATE})
        send_events = per_email(result, ("sends",))
        per_delivery = per_email(result, ("deliveries",))
        per_bounce = per_email(result, ("bounces",))
        cost_send = cost_per_million(send, recipients)
        cost_prod = cost_per_million(prod, recipients)
        cost_tracked = cost_per_million(tracked, recipients)
        rows["ddb_writes"].samples.append(send["ddb_write_requests"])
        rows["ddb_cond"].samples.append(send["ddb_conditional_failures"])
        rows["ddb_reads"].samples.append(send["ddb_read_requests"])
        rows["ddb_writes_per_email"].samples.append(send["ddb_write_requests_per_email"])
        rows["ddb_reads_per_email"].samples.append(send["ddb_read_requests_per_email"])
        rows["ddb_suppressed_since"].samples.append(send["ddb_suppressed_since_queries"])
        rows["ddb_wru"].samples.append(send["ddb_wru"])
        rows["ddb_rru"].samples.append(send["ddb_rru"])
        rows["sqs"].samples.append(send["sqs_requests"])
        rows["ses"].samples.append(send["ses_send"])
        rows["send_event_writes"].samples.append(send_events["ddb_write_requests"])
        rows["send_event_rru"].samples.append(send_events["ddb_rru"])
        rows["delivery_writes"].samples.append(per_delivery["ddb_write_requests"])
        rows["bounce_writes"].samples.append(per_bounce["ddb_write_requests"])
        rows["event_sqs"].samples.append(per_delivery["sqs_requests"])
        rows["cost_send"].samples.append(cost_send["total_excl_ses"])
        rows["cost_total"].samples.append(cost_prod["total_excl_ses"])
        rows["cost_deliveries"].samples.append(cost_tracked["total_excl_ses"])
        rows["cost_ses"].samples.append(cost_send["ses"])
        moto_sender = result["stages"]["send"]["lambda_cpu_s"].get("sender", 0.0) / max(result["sent"], 1)
        runs.append(
            {
                "run": result,
                "sender_cpu_us_canned": sender_cpu * 1e6,
                "sender_cpu_us_moto_run": moto_sender * 1e6,
                "per_email_send_path": send,
                "per_email_prod": prod,
                "per_email_with_deliveries": tracked,
                "per_send_event": send_events,
                "per_delivery_event": per_delivery,
                "per_bounce_event": per_bounce,
                "cost_per_1m_send_path": cost_send,
                "cost_per_1m_prod": cost_prod,
                "cost_per_1m_with_deliveries": cost_tracked,
            }
        )
    from bench.throttling import simulate

    waiting = {
        "throttled": simulate("throttled", throttle_recipients),
        "parked": simulate("parked", throttle_recipients),
        # the cadence before the budget (10–20 s, for ever): a quarter of an hour is enough to see it
        "fixed_delay": simulate("fixed_delay", max(1, throttle_recipients // 5), budget_hours=0.25),
    }
    rows["throttled"].samples.append(waiting["throttled"]["ddb_requests_per_email_hour"])
    rows["parked"].samples.append(waiting["parked"]["ddb_requests_per_email_hour"])
    section.rows = list(rows.values())
    section.details = {
        "waiting": waiting,
        "recipients": recipients,
        "event_sample": notify_sample,
        "bounce_rate_assumed": BOUNCE_RATE,
        "ses_max_rate": ses_rate,
        "prices_checked": CHECKED,
        "prices": {k: {"usd": v.usd, "per": v.per, "source": v.source} for k, v in PRICES.items()},
        "lambda_architecture": "arm64",
        "runs": runs,
    }
    before = waiting["fixed_delay"]["ddb_requests_per_email_hour"]
    section.notes.append(
        f"waiting (bench/throttling.py): one batch of {throttle_recipients} through the real send path and "
        "DynamoDB repositories (moto), virtual clock, every DynamoDB request counted until all end FAILED "
        f"'throttled past budget'; at the old fixed 10–20 s delay it was {before:.0f} requests per email per hour"
    )
    section.notes.append(
        "cost = counted requests × list prices (bench/prices.py, checked " + CHECKED + "); Lambda GB-s from CPU "
        "measured here at spec memory, arm64 — the sender's with its AWS adapters answered in process (no moto), "
        "the others' from the moto run minus moto's CPU; time waiting on AWS is not in it (a lower bound)"
    )
    return section
