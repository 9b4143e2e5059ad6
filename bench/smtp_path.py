"""1. SMTP path, side by side with Postfix's ``smtp-source``.

Ours: the sender's real code path — ``lambdas.sender.handler.handler`` → claim → render → MIME →
``SmtpProvider`` → record, with the store and queue faked in memory — delivering N personalised
emails into ``smtp-sink`` on loopback, (a) in one process over one SMTP connection, (b) in one
process per core, each with its own connection and store (the GIL bounds one process). Every worker
is a forked process that builds its SQS events before the clock starts and waits on a barrier.

Reference, in the same run, interleaved run by run: ``smtp-source`` into the same sink with the same
message size, 1 session reusing its connection (``-s 1 -d``), and 16 sessions (``-s 16 -d``).
"""

from __future__ import annotations

import cProfile
import io
import multiprocessing as mp
import os
import time
from contextlib import redirect_stdout
from typing import Any

from bench.common import Row, Section, Target, format_profile, profile_top, ratio_samples
from bench.sinks import Sink, postfix_tools_status, smtp_source, start_sink
from bench.workload import NullProvider, batches, quiet_powertools, sender_context, silence_stdout_fd, sqs_events

TARGET_RATIO = Target(">=", 1.0, "≥ 1.0× smtp-source (1 session)")
TARGET_BOTH = Target(">=", 6000, "≥ 6,000 emails/s")


def smtp_config(host: str, port: int, connections: int = 1) -> Any:
    """The provider's config; ``connections`` when the engine's SmtpConfig has that knob."""
    import dataclasses

    from massmailer.providers.smtp import SmtpConfig

    extra = {"connections": connections} if "connections" in {f.name for f in dataclasses.fields(SmtpConfig)} else {}
    return SmtpConfig(host=host, port=port, local_hostname="bench.massmailer.test", **extra)


def _deliver(host: str, port: int, n: int, start: int, concurrency: int | None, connections: int = 1) -> dict[str, Any]:
    """Send recipients ``start .. start+n-1`` through the sender handler into the sink."""
    quiet_powertools()
    from lambdas.sender import handler as sender_handler
    from local.lambda_context import LambdaContext
    from massmailer.providers.smtp import SmtpProvider

    provider = SmtpProvider(smtp_config(host, port, connections))
    overrides = {"concurrency": concurrency} if concurrency else {}
    ctx = sender_context([provider], **overrides)
    events = sqs_events(batches(n, start=start))
    return {"ctx": ctx, "events": events, "handler": sender_handler.handler, "lambda_context": LambdaContext}


def _run_events(prepared: dict[str, Any]) -> dict[str, Any]:
    ctx, handler = prepared["ctx"], prepared["handler"]
    failures = 0
    t0, c0 = time.monotonic(), time.process_time()
    for event in prepared["events"]:
        response = handler(event, prepared["lambda_context"]("sender", timeout_seconds=120), ctx=ctx)
        failures += len(response.get("batchItemFailures", []))
    t1, c1 = time.monotonic(), time.process_time()
    sent = sum(1 for item in ctx.messages.by_id.values() if item.get("status") == "SENT")
    ctx.chain.close()
    return {"start": t0, "end": t1, "cpu": c1 - c0, "sent": sent, "failed_records": failures}


def _worker(
    host: str,
    port: int,
    n: int,
    start: int,
    concurrency: int | None,
    connections: int,
    cpus: set[int] | None,
    barrier: Any,
    results: Any,
) -> None:
    try:
        silence_stdout_fd()
        if cpus:
            os.sched_setaffinity(0, cpus)
        prepared = _deliver(host, port, n, start, concurrency, connections)
        barrier.wait(timeout=120)
        results.put(_run_events(prepared))
    except BaseException as exc:  # report, don't hang the parent
        results.put({"error": f"{type(exc).__name__}: {exc}"})
        raise


def deliver_in_processes(
    sink: Sink,
    n: int,
    processes: int,
    concurrency: int | None = None,
    offset: int = 0,
    connections: int = 1,
    cpus: set[int] | None = None,
) -> dict[str, Any]:
    """``processes`` forked workers share ``n`` recipients; wall = first start to last end.
    ``cpus``: pin the workers (and the sink, for the run) to these CPUs; None: let the OS place them."""
    context = mp.get_context("fork")
    barrier = context.Barrier(processes)
    results = context.Queue()
    share = [n // processes + (1 if i < n % processes else 0) for i in range(processes)]
    starts = [offset + sum(share[:i]) for i in range(processes)]
    workers = [
        context.Process(
            target=_worker,
            args=(sink.host, sink.port, share[i], starts[i], concurrency, connections, cpus, barrier, results),
            daemon=True,
        )
        for i in range(processes)
    ]
    sink.pin(cpus)
    sink_cpu0 = sink.cpu_seconds()
    for w in workers:
        w.start()
    outcomes = [results.get(timeout=900) for _ in workers]
    for w in workers:
        w.join(timeout=30)
    sink_cpu1 = sink.cpu_seconds()
    sink.pin(None)
    errors = [o["error"] for o in outcomes if "error" in o]
    if errors:
        raise RuntimeError("; ".join(errors))
    wall = max(o["end"] for o in outcomes) - min(o["start"] for o in outcomes)
    sent = sum(o["sent"] for o in outcomes)
    if sent != n:
        raise RuntimeError(f"only {sent} of {n} recipients ended SENT")
    return {
        "wall": wall,
        "rate": sent / wall,
        "cpu_us_per_email": sum(o["cpu"] for o in outcomes) / sent * 1e6,
        "sink_cpu": (sink_cpu1 - sink_cpu0) if sink_cpu0 is not None and sink_cpu1 is not None else None,
        "sent": sent,
    }


def _average_size(n: int = 200) -> int:
    """Average size on the wire of the emails the workload sends (for smtp-source's ``-l``)."""

    provider = NullProvider()
    ctx = sender_context([provider], concurrency=1)
    from massmailer.sending import send_batch

    for batch in batches(n):
        send_batch(ctx, batch)
    return provider.bytes // max(provider.sent, 1)


def profile_one_connection(sink: Sink, n: int, top: int = 25) -> dict[str, Any]:
    """cProfile of the 1-connection path in this process (concurrency 1, so cProfile sees every call),
    client and sink pinned to one CPU."""
    prepared = _deliver(sink.host, sink.port, n, 50_000_000, 1)
    profiler = cProfile.Profile()
    saved = os.sched_getaffinity(0)
    cpus = {max(saved)}
    os.sched_setaffinity(0, cpus)  # as the pinned 1-connection run: CPU, not vCPU wake-ups
    sink.pin(cpus)
    try:
        with redirect_stdout(io.StringIO()):  # EMF metrics
            profiler.enable()
            outcome = _run_events(prepared)
            profiler.disable()
    finally:
        os.sched_setaffinity(0, saved)
        sink.pin(None)
    entries = profile_top(profiler, n, top)
    return {
        "emails": n,
        "engine_concurrency": 1,
        "wall_us_per_email": (outcome["end"] - outcome["start"]) / n * 1e6,
        "cpu_us_per_email": outcome["cpu"] / n * 1e6,
        "top_by_own_time": entries,
        "text": format_profile(entries, "email"),
    }


def run(
    emails: int = 20_000,
    repeats: int = 3,
    processes: int | None = None,
    sink_kind: str = "auto",
    concurrency: int | None = None,
    connections: int | None = None,
    profile_emails: int = 0,
) -> Section:
    section = Section(name="1. SMTP path", key="smtp")
    processes = processes or os.cpu_count() or 2
    # One SMTP session serves one send at a time, so the engine runs one send per connection here:
    # more threads than connections only queue on the session lock (and cost the GIL hand-offs).
    concurrency = concurrency or 1
    connections = connections or concurrency
    one_cpu = {max(os.sched_getaffinity(0))}
    tools_ok, tools_note = postfix_tools_status()
    size = _average_size()
    pinned = Row("smtp.ours_1conn", "ours, 1 connection, client + sink on 1 CPU", "emails/s")
    src_pinned = Row("smtp.source_1session", "smtp-source, 1 session (-s 1 -d), with the sink on 1 CPU", "emails/s")
    ratio1 = Row("smtp.ratio_1conn", "ratio ours / smtp-source, 1 connection, 1 CPU", "×", digits=2)
    free = Row("smtp.ours_1conn_os", "ours, 1 connection, placed by the OS", "emails/s")
    src_free = Row("smtp.source_1session_os", "smtp-source, 1 session, placed by the OS", "emails/s")
    # The reference (smtp-source, one reused session: ~3,200/s here) is the OS-placed run,
    # so that is the comparison the target applies to; the pinned pair is shown for stability.
    ratio_free = Row(
        "smtp.ratio_1conn_os",
        "ratio ours / smtp-source, 1 connection, OS placement",
        "×",
        target=TARGET_RATIO,
        digits=2,
    )
    both = Row(
        "smtp.ours_all_cores",
        f"ours, {processes} processes × {connections} connections",
        "emails/s",
        target=TARGET_BOTH,
    )
    src16 = Row("smtp.source_16sessions", "smtp-source, 16 sessions (-s 16 -d)", "emails/s")
    ratio_all = Row(
        "smtp.ratio_all_cores", f"ratio ours {processes} processes / smtp-source 16 sessions", "×", digits=2
    )
    cpu = Row("smtp.cpu_per_email", "our CPU per email on the SMTP path (1 connection, 1 CPU)", "µs")
    cpu.higher_is_better = False
    runs: list[dict[str, Any]] = []
    with start_sink(sink_kind) as sink:
        section.details.update(
            {
                "sink": sink.kind,
                "sink_command": " ".join(sink.command) if sink.command else "local.smtp_relay.SmtpRelay (aiosmtpd)",
                "emails": emails,
                "processes": processes,
                "connections_per_process_all_cores": connections,
                "pinned_cpu": sorted(one_cpu),
                "message_bytes": size,
                "engine_concurrency": concurrency,
            }
        )
        source = sink.kind == "smtp-sink" and tools_ok
        for i in range(repeats):
            offset = i * emails * 3  # fresh recipients each run (stores are per process anyway)
            run: dict[str, Any] = {
                "ours_1conn_1cpu": deliver_in_processes(sink, emails, 1, concurrency, offset, 1, one_cpu),
                "ours_1conn_os": deliver_in_processes(sink, emails, 1, concurrency, offset + emails, 1, None),
                "ours_all_cores": deliver_in_processes(
                    sink, emails, processes, concurrency, offset + 2 * emails, connections, None
                ),
            }
            if source:
                run["source_1_1cpu"] = smtp_source(sink, messages=emails, sessions=1, size=size, cpus=one_cpu)
                run["source_1_os"] = smtp_source(sink, messages=emails, sessions=1, size=size)
                run["source_16"] = smtp_source(sink, messages=emails, sessions=16, size=size)
                src_pinned.samples.append(run["source_1_1cpu"]["rate"])
                src_free.samples.append(run["source_1_os"]["rate"])
                src16.samples.append(run["source_16"]["rate"])
            pinned.samples.append(run["ours_1conn_1cpu"]["rate"])
            free.samples.append(run["ours_1conn_os"]["rate"])
            both.samples.append(run["ours_all_cores"]["rate"])
            cpu.samples.append(run["ours_1conn_1cpu"]["cpu_us_per_email"])
            runs.append(run)
        if profile_emails:
            section.details["profile_1conn"] = profile_one_connection(sink, profile_emails)
    if not src_pinned.samples:
        reason = "smtp-source unavailable" if not tools_ok else "sink is not smtp-sink"
        for row in (src_pinned, src_free, src16, ratio1, ratio_free, ratio_all):
            row.unavailable = reason
        section.notes.append(tools_note)
    else:
        ratio1.samples = ratio_samples(pinned.samples, src_pinned.samples)
        ratio_free.samples = ratio_samples(free.samples, src_free.samples)
        ratio_all.samples = ratio_samples(both.samples, src16.samples)
    section.notes.append(
        "1-connection runs are shown twice: client and sink pinned to one CPU (the stable comparison: on this "
        "VM a loopback round trip between two vCPUs costs a wake-up of ~100-200 µs) and placed by the OS"
    )
    section.rows = [pinned, src_pinned, ratio1, free, src_free, ratio_free, both, src16, ratio_all, cpu]
    section.details["runs"] = runs
    return section
