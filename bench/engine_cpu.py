"""2. Engine CPU per email (µs), split into its stages, with in-memory fakes.

Stages are timed one at a time over the same N recipients (process CPU time), each with the inputs
the previous stage produced, so their sum is comparable with the whole path:

* unsubscribe — the signed token, the URL in the body and the ``List-Unsubscribe`` headers;
* render — the compiled Jinja2 subject, text and HTML for the recipient's variables;
* MIME — ``build_message`` (headers, quoted-printable parts, multipart/alternative);
* claim/record — ``claim_recipient`` + ``record_sent`` on the in-memory store, plus the per-batch
  suppression lookup and counter update shared by the batch's recipients;
* provider call — ``ProviderChain.send`` (with the shared circuit breaker / rate limiter when the
  engine has them) into a provider that accepts at once.

The whole path is the sender handler (SQS event → Powertools batch → ``send_batch``) with that fake
provider, at the engine's default concurrency and at concurrency 1; "the rest" is the whole path at
concurrency 1 minus the stages (event parsing, thread hand-offs, bookkeeping). The same is measured
through the SES v2 adapter with botocore's HTTP layer answered locally by a ``before-send`` handler
returning a canned ``SendEmail`` response — request serialization, SigV4 signing and response
parsing are counted, no network is used.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from io import StringIO
from typing import Any

from bench.common import Row, Section, Target
from bench.workload import (
    CAMPAIGN_ID,
    CONTENT,
    FROM_ADDRESS,
    NullProvider,
    batches,
    chain_guards,
    provider_chain,
    quiet_powertools,
    sender_context,
    sqs_events,
    store_with_campaign,
    unsubscriber,
)

TARGET_CPU = Target("<", 250, "< 250 µs/email")


def canned_ses_client() -> Any:
    """An SES v2 client whose HTTP layer is answered in process (see ``bench.canned``)."""
    from bench.canned import CannedAws, clients

    return clients(CannedAws())["sesv2"]


def _cpu(fn: Callable[[], Any]) -> float:
    gc.collect()
    c0 = time.process_time()
    fn()
    return time.process_time() - c0


def _handler_cpu(n: int, build: Callable[[], tuple[Any, Callable[[], int]]], concurrency: int | None) -> float:
    """CPU seconds for the sender handler to send ``n`` recipients with the context ``build`` makes
    (``build`` returns the context and a function counting what ended sent)."""
    quiet_powertools()
    from lambdas.sender import handler as sender_handler
    from local.lambda_context import LambdaContext

    ctx, count_sent = build()
    if concurrency:
        ctx.concurrency = concurrency
    events = sqs_events(batches(n))
    sink = StringIO()

    def go() -> None:
        with redirect_stdout(sink):  # EMF metrics are printed once per invocation
            for event in events:
                response = sender_handler.handler(event, LambdaContext("sender", timeout_seconds=900), ctx=ctx)
                if response.get("batchItemFailures"):
                    raise RuntimeError(f"handler reported failures: {response}")

    seconds = _cpu(go)
    sent = count_sent()
    if sent != n:
        raise RuntimeError(f"{sent} of {n} ended sent")
    return seconds


def fake_context() -> tuple[Any, Callable[[], int]]:
    """In-memory store and queue, a provider that accepts at once."""
    store = store_with_campaign()
    providers = [NullProvider()]
    ctx = sender_context(providers, store=store, chain=provider_chain(providers, store, _limits(providers)))
    return ctx, lambda: sum(1 for item in store.messages.by_id.values() if item.get("status") == "SENT")


def ses_context() -> tuple[Any, Callable[[], int]]:
    """In-memory store and queue, the SES v2 adapter with its HTTP layer answered locally."""
    from bench.canned import CannedAws, clients
    from massmailer.providers.ses import SesProvider

    canned = CannedAws()
    store = store_with_campaign()
    providers = [SesProvider(clients(canned)["sesv2"], "massmailer-bench-configset")]
    ctx = sender_context(providers, store=store, chain=provider_chain(providers, store, _limits(providers)))
    return ctx, lambda: canned.calls.get("SendEmail", 0)


def aws_context() -> tuple[Any, Callable[[], int]]:
    """The AWS adapters throughout — the Dynamo repositories, SqsQueue, SesProvider — HTTP answered
    locally: what the sender Lambda spends per email on its own side (used for Lambda GB-s in benchmark 3)."""
    from bench.canned import CannedAws, clients
    from bench.workload import campaign
    from massmailer.providers.ses import SesProvider
    from massmailer.queues import SqsQueue
    from massmailer.store import Stores

    canned = CannedAws()
    c = clients(canned)
    store = Stores.dynamo(c["table"])
    store.campaigns.put_campaign(campaign())
    providers = [SesProvider(c["sesv2"], "massmailer-bench-configset")]
    queue = SqsQueue(
        c["sqs"], {k: f"https://sqs.us-east-1.amazonaws.com/123456789012/mm-{k}" for k in ("high", "low", "split")}
    )
    ctx = sender_context(
        providers, store=store, queue=queue, chain=provider_chain(providers, store, _limits(providers))
    )
    return ctx, lambda: canned.calls.get("SendEmail", 0)


def _limits(providers: list[Any]) -> dict[str, Any]:
    """A generous rate limit per provider (never throttles), so the limiter's own cost is counted."""
    try:
        from massmailer.resilience import RateLimit
    except ImportError:
        return {}
    return {p.name: RateLimit(per_second=1_000_000) for p in providers}


def _stages(n: int) -> dict[str, float]:
    """CPU seconds of each stage over ``n`` recipients."""
    from massmailer.mime import OutgoingEmail, build_message
    from massmailer.rendering import CompiledTemplate

    messages = batches(n)
    recipients = [r for b in messages for r in b.recipients]
    unsub = unsubscriber()
    template = CompiledTemplate(CONTENT)
    camp = CAMPAIGN_ID
    out: dict[str, float] = {}

    urls: list[str] = []
    headers: list[dict[str, str]] = []

    def unsubscribe() -> None:
        for r in recipients:
            urls.append(unsub.url(r.message_id))
            h = {"X-MassMailer-Message": r.message_id, "X-MassMailer-Campaign": camp}
            h.update(unsub.headers(r.message_id))
            headers.append(h)

    out["unsubscribe"] = _cpu(unsubscribe)

    rendered: list[Any] = []

    def render() -> None:
        for r, url in zip(recipients, urls, strict=True):
            variables = {"email": r.email, **r.variables}
            variables.setdefault("unsubscribe_url", url)
            rendered.append(template.render(variables))

    out["render"] = _cpu(render)

    raws: list[bytes] = []

    def mime() -> None:
        for r, x, h in zip(recipients, rendered, headers, strict=True):
            raws.append(
                build_message(
                    message_id=r.message_id,
                    from_address=FROM_ADDRESS,
                    from_name="MassMailer News",
                    reply_to=None,
                    to=r.email,
                    subject=x.subject,
                    html=x.html,
                    text=x.text,
                    headers=h,
                )
            )

    out["mime"] = _cpu(mime)

    store = store_with_campaign()
    tokens: list[str] = []

    def claim_record() -> None:
        for batch in messages:
            store.suppressions.suppressed_among(r.email for r in batch.recipients)
            for r in batch.recipients:
                claim = store.messages.claim_recipient(
                    r.message_id, email=r.email, campaign_id=camp, lane="low", attempt=0, lease_seconds=300
                )
                store.messages.record_sent(r.message_id, claim.token, "fake", r.message_id)
                tokens.append(claim.token)
            store.campaigns.add_campaign_counts(camp, {"sent": len(batch.recipients), "failed": 0})

    out["claim_record"] = _cpu(claim_record)

    fake = NullProvider()
    chain = provider_chain([fake], store, _limits([fake]))

    def emails() -> list[Any]:
        return [
            OutgoingEmail(
                message_id=r.message_id,
                sender=FROM_ADDRESS,
                recipient=r.email,
                raw=raw,
                tags={"message_id": r.message_id, "campaign_id": camp},
            )
            for r, raw in zip(recipients, raws, strict=True)
        ]

    def provider_call() -> None:
        for r, raw in zip(recipients, raws, strict=True):
            email = OutgoingEmail(
                message_id=r.message_id,
                sender=FROM_ADDRESS,
                recipient=r.email,
                raw=raw,
                tags={"message_id": r.message_id, "campaign_id": camp},
            )
            chain.send(email, lane="low") if _chain_takes_lane(chain) else chain.send(email)

    out["provider"] = _cpu(provider_call)

    from massmailer.providers.ses import SesProvider

    ses = SesProvider(canned_ses_client(), "massmailer-bench-configset")
    prepared = emails()
    ses.send(prepared[0])  # the client's first call loads its models: a warm container has done this

    def ses_call() -> None:
        for email in prepared:
            ses.send(email)

    out["ses_provider"] = _cpu(ses_call)
    return out


def _chain_takes_lane(chain: Any) -> bool:
    import inspect

    return "lane" in inspect.signature(chain.send).parameters


def run(emails: int = 10_000, repeats: int = 3) -> Section:
    section = Section(name="2. Engine CPU", key="engine")
    us = 1e6 / emails
    rows = {
        "unsubscribe": Row("engine.unsubscribe", "stage: unsubscribe token, URL, headers", "µs/email"),
        "render": Row("engine.render", "stage: render (Jinja2 subject, text, HTML)", "µs/email"),
        "mime": Row("engine.mime", "stage: MIME (build_message)", "µs/email"),
        "claim_record": Row("engine.claim_record", "stage: claim + record (+ per-batch lookups)", "µs/email"),
        "provider": Row("engine.provider", "stage: provider call (chain → fake provider)", "µs/email"),
        "rest": Row("engine.rest", "handler, batch parsing, bookkeeping (rest, conc. 1)", "µs/email"),
        "total_1": Row("engine.total_conc1", "whole path, fake provider, concurrency 1", "µs/email"),
        "total": Row("engine.total", "whole path, fake provider, default concurrency", "µs/email", target=TARGET_CPU),
        "ses_provider": Row("engine.ses_provider", "SES adapter call (serialize, sign, parse)", "µs/email"),
        "ses_total": Row("engine.ses_total", "whole path through the SES adapter, default concurrency", "µs/email"),
        "aws_total": Row("engine.aws_total", "whole path, SES + DynamoDB + SQS adapters (HTTP canned)", "µs/email"),
    }
    for row in rows.values():
        row.higher_is_better = False

    # Warm up once (imports, template compile, botocore models), untimed.
    for build in (fake_context, ses_context, aws_context):
        _handler_cpu(min(100, emails), build, None)
    default_concurrency = sender_context([NullProvider()]).concurrency
    for _ in range(repeats):
        stages = _stages(emails)
        total_1 = _handler_cpu(emails, fake_context, 1)
        total = _handler_cpu(emails, fake_context, None)
        ses_total = _handler_cpu(emails, ses_context, None)
        aws_total = _handler_cpu(emails, aws_context, None)
        rows["aws_total"].samples.append(aws_total * us)
        for name, seconds in stages.items():
            rows[name].samples.append(seconds * us)
        rows["total_1"].samples.append(total_1 * us)
        rows["total"].samples.append(total * us)
        rows["ses_total"].samples.append(ses_total * us)
        stage_sum = sum(v for k, v in stages.items() if k != "ses_provider")
        rows["rest"].samples.append(max(total_1 - stage_sum, 0.0) * us)
    section.rows = list(rows.values())
    guards = chain_guards(provider_chain([NullProvider()], store_with_campaign()))
    section.details = {
        "emails": emails,
        "default_concurrency": default_concurrency,
        "chain_guards": guards,
        "clock": "time.process_time (all threads of the process)",
    }
    section.notes.append(
        f"whole path = lambdas.sender.handler with in-memory store/queue; engine default concurrency "
        f"{default_concurrency}; chain guards counted: {', '.join(guards) or 'none (engine has none)'}"
    )
    return section
