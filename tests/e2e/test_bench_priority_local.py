"""Benchmark 5 on the real local runtime, at toy size: every row measured, and every process the runtime
started has exited once it is stopped. The figures mean nothing here."""

from __future__ import annotations

import os

import pytest

from bench import priority

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

ROWS = [
    "priority.idle_p50",
    "priority.idle_p99",
    "priority.bulk_p50",
    "priority.bulk_p99",
    "priority.p99_ratio",
    "priority.bulk_rate",
    "priority.drain_rate",
]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie has exited too
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_priority_benchmark_runs_on_the_local_runtime_and_leaves_nothing_running() -> None:
    # Given the local runtime in its own process, as the benchmark starts it
    runtime = priority.LocalRuntimeProcess({"high": 1, "low": 1, "split": 1, "bounce": 1}).start()
    pids = [pid for group in runtime.pids.values() for pid in group]
    assert len(pids) >= 6  # the runtime, two moto processes, ingest, the senders, the splitter…
    try:
        # When a toy measurement runs: warm-up, an idle window, a campaign with one loaded window
        api = priority.ApiClient(runtime.api_url)
        result = priority.measure_api(
            api, sends=5, interval=0.01, bulk=300, windows=1, warmup=2, cpu=runtime.cpu_seconds
        )
        api.close()
    finally:
        runtime.stop()

    # Then every send ended SENT, the campaign drained, and nothing the runtime started is running
    assert result["idle"]["sent"] == 5 and result["windows"][0]["sent"] == 5
    assert result["bulk_sent"] == 300 and result["bulk_drain_rate"] > 0
    assert result["cpu_ms_per_email"]["moto (DynamoDB)"] > 0
    assert [pid for pid in pids if _alive(pid)] == []


def test_priority_section_has_every_row_on_the_local_runtime() -> None:
    section = priority.run(bulk=600, sends=20, interval=0.05, repeats=1, windows=1)  # a 1 s window
    assert section.error is None
    assert [row.key for row in section.rows] == ROWS
    for row in section.rows:
        assert row.samples and all(value > 0 for value in row.samples), (row.key, row.samples)
        assert "[local runtime]" in row.label
    assert "local.runtime.LocalRuntime" in section.details["runtime"]
