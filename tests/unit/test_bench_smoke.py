"""The benchmark harness at toy sizes, so it cannot rot silently: every benchmark runs, every figure
is positive, and the table has every row. No Postfix needed (aiosmtpd is the sink when smtp-sink is
absent; the smtp-source rows then say why they are unavailable). The figures mean nothing here."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench import aws_requests, demo, engine_cpu, priority, smtp_path, splitter
from bench.common import Section, render_markdown_table, render_text_table
from bench.run import section_from_json

pytestmark = pytest.mark.slow

EXPECTED_ROWS = {
    "smtp": [
        "smtp.ours_1conn",
        "smtp.source_1session",
        "smtp.ratio_1conn",
        "smtp.ours_1conn_os",
        "smtp.source_1session_os",
        "smtp.ratio_1conn_os",
        "smtp.ours_all_cores",
        "smtp.source_16sessions",
        "smtp.ratio_all_cores",
        "smtp.cpu_per_email",
    ],
    "engine": [
        "engine.unsubscribe",
        "engine.render",
        "engine.mime",
        "engine.claim_record",
        "engine.provider",
        "engine.rest",
        "engine.total_conc1",
        "engine.total",
        "engine.ses_provider",
        "engine.ses_total",
        "engine.aws_total",
    ],
    "aws": [
        "aws.ddb_writes",
        "aws.ddb_conditional_failures",
        "aws.ddb_reads",
        "aws.ddb_writes_per_email",
        "aws.ddb_reads_per_email",
        "aws.ddb_suppressed_since_queries",
        "aws.ddb_wru",
        "aws.ddb_rru",
        "aws.sqs",
        "aws.ses",
        "aws.send_event_ddb_writes",
        "aws.send_event_rru",
        "aws.delivery_ddb_writes",
        "aws.bounce_ddb_writes",
        "aws.event_sqs",
        "aws.lambda_cpu_sender",
        "aws.cost_send_path",
        "aws.cost_total",
        "aws.cost_with_deliveries",
        "aws.cost_ses",
        "aws.ddb_requests_per_throttled_email_hour",
        "aws.ddb_requests_per_parked_email_hour",
    ],
    "splitter": [
        "splitter.rate",
        "splitter.cpu_per_row",
        "splitter.peak_rss",
        "splitter.peak_rss_small",
        "splitter.memory_growth",
    ],
    "priority": [
        "priority.idle_p50",
        "priority.idle_p99",
        "priority.bulk_p50",
        "priority.bulk_p99",
        "priority.p99_ratio",
        "priority.bulk_rate",
        "priority.drain_rate",
    ],
    "demo": ["demo.wall", "demo.rate", "demo.inner_wall", "demo.sending_rate"],
}
# Rows allowed to be zero at toy sizes (e.g. no conditional failure in a clean run).
MAY_BE_ZERO = {
    "aws.ddb_conditional_failures",
    "aws.send_event_ddb_writes",
    "engine.rest",
    "splitter.peak_rss",
    "splitter.peak_rss_small",
    "splitter.memory_growth",
}

FAKE_DEMO = (
    "print('Campaign cmp-1 — SENDING'); print('Counts: total=3, sent=3, queued=0, failed=0'); "
    "print('Transactional msg-1: SENT via ses'); print('Wall time: 0.1 s'); "
    "print('  throughput while sending  30.0 emails/s')"
)


def _check(section: Section) -> None:
    assert section.error is None, section.error
    keys = [row.key for row in section.rows]
    assert keys == EXPECTED_ROWS[section.key]
    for row in section.rows:
        if row.unavailable:
            assert "smtp-source" in row.unavailable or "sink" in row.unavailable, (row.key, row.unavailable)
            continue
        assert row.samples, row.key
        for value in row.samples:
            assert value >= 0 if row.key in MAY_BE_ZERO else value > 0, (row.key, row.samples)
    # survives the trip through results.json
    again = section_from_json(section.to_json())
    assert [r.median for r in again.rows] == [r.median for r in section.rows]


def test_every_benchmark_runs_at_toy_size_and_the_table_has_every_row(tmp_path: Path) -> None:
    sections = [
        smtp_path.run(emails=200, repeats=1, processes=2),
        engine_cpu.run(emails=200, repeats=1),
        aws_requests.run(recipients=60, repeats=1, notify_sample=10, sender_cpu_runs=1, throttle_recipients=2),
        splitter.run(rows=2_000, repeats=1, cache=str(tmp_path)),
        priority.run(
            bulk=600, sends=10, interval=0.005, repeats=1, runtime="inprocess", high_concurrency=1, low_concurrency=1
        ),
        demo.run(repeats=1, command=[sys.executable, "-c", FAKE_DEMO]),
    ]
    for section in sections:
        _check(section)
    text, markdown = render_text_table(sections), render_markdown_table(sections)
    for section in sections:
        for row in section.rows:
            assert row.label in text and row.label in markdown


def test_the_demo_reports_are_parsed() -> None:
    runtime_demo = """
  Campaign cmp-1 — SENDING
  audience entries                  1,000
  sent via SES (primary)            640
  sent via SMTP relay (failover)    340
  wall time (start to stop)         52.8 s  (runtime up in 6.1 s)
  throughput while sending          41.2 emails/s
    success@simulator.amazonses.com          DELIVERED  via ses (transactional)
    complaint@simulator.amazonses.com        COMPLAINED via ses (transactional)
"""
    parsed = demo.parse(runtime_demo)
    assert (parsed["emails"], parsed["demo_wall_s"], parsed["demo_sending_rate"]) == (982, 52.8, 41.2)
    earlier_demo = "Counts: total=20, queued=0, sent=20\nTransactional msg-abc: SENT via ses\nWall time: 2.5 s\n"
    parsed = demo.parse(earlier_demo)
    assert (parsed["emails"], parsed["demo_wall_s"], parsed["demo_sending_rate"]) == (21, 2.5, None)
