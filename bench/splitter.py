"""4. Splitter throughput and peak memory.

The audience is a CSV file generated once (cached under ``.local/bench/``): a header row, then N
rows of an address and five variables (non-ASCII in some; 2% have a quoted field with a comma),
~1% duplicates (the same address in another letter case, later in the file) and ~0.5% invalid
addresses. ``split_campaign`` streams it from disk through a file-backed Blobs port (1 MiB reads, as
``S3Blobs`` streams a ranged GET), into an in-memory queue that counts and keeps nothing, with the
in-memory store (~0.1% of the audience on the suppression list). The rate is rows of the file per
second of wall time (min and median of the runs).

Every run is a fresh Python process (``python -m bench.splitter``), so its peak RSS
(``getrusage``) is the splitter's own: the figure reported is the peak minus the RSS after imports.
Memory is "flat" when the peak for the full audience is within 25% of the peak for a tenth of it:
the de-dupe table is a fixed budget (``MM_SPLIT_DEDUPE_MIB``, 32 MiB by default, committed page by
page as it fills), everything else is one block and one chunk of batches.

``AUDIENCE_FORMAT`` (``--set splitter.fmt=jsonl``) measures the same audience as JSONL instead.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, Row, Section, Target, format_profile

AUDIENCE_FORMAT = "csv"
CACHE = ROOT / ".local" / "bench"
GENERATOR_VERSION = 3
TARGET_RATE = Target(">=", 200_000, "≥ 200,000 recipients/s")
TARGET_FLAT = Target("<=", 1.25, "flat: ≤ 1.25× the peak at N/10")

_FIRST = ["ada", "grace", "alan", "edsger", "barbara", "donald", "frances", "john", "margaret", "ken", "radia", "jose"]
_DOMAINS = ["example.com", "mail.example.org", "example.net", "post.example.de", "correo.example.es"]


def audience_path(rows: int, fmt: str = AUDIENCE_FORMAT, cache: Path = CACHE) -> Path:
    return cache / f"audience-{rows}-v{GENERATOR_VERSION}.{fmt}"


def generate(rows: int, fmt: str = AUDIENCE_FORMAT, seed: int = 1, cache: Path = CACHE) -> Path:
    """Write the audience file (cached). Rows: valid members with variables, duplicates, invalid."""
    path = audience_path(rows, fmt, cache)
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as f:
        if fmt == "csv":
            f.write("email,first_name,last_name,city,plan,code\n")
        for i in range(rows):
            roll = rng.random()
            if roll < 0.005:
                email = f"broken{i}@@example..com" if i % 2 else f"no-at-sign-{i}.example.com"
            elif roll < 0.015 and i > 100:
                j = rng.randrange(0, i)  # a duplicate of an earlier address, another case
                email = f"{_FIRST[j % len(_FIRST)]}.{j}@{_DOMAINS[j % len(_DOMAINS)]}".upper()
            else:
                email = f"{_FIRST[i % len(_FIRST)]}.{i}@{_DOMAINS[i % len(_DOMAINS)]}"
            variables = {
                "first_name": _FIRST[i % len(_FIRST)].title(),
                "last_name": f"Family{i % 997}, Jr." if i % 50 == 7 else f"Family{i % 997}",
                "city": ["Lisbon", "Zürich", "Kraków", "Dublin"][i % 4],
                "plan": "pro" if i % 4 == 0 else "basic",
                "code": f"MM{i:08d}",
            }
            if fmt == "csv":
                f.write(",".join(_csv_field(v) for v in [email, *variables.values()]) + "\n")
            else:
                f.write(json.dumps({"email": email, "variables": variables}, separators=(",", ":"), ensure_ascii=False))
                f.write("\n")
    tmp.replace(path)
    return path


def _csv_field(value: str) -> str:
    """RFC 4180: quote a field holding a comma, a quote or a line break (quotes doubled)."""
    if any(c in value for c in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _suppressed(rows: int) -> list[str]:
    return [f"{_FIRST[i % len(_FIRST)]}.{i}@{_DOMAINS[i % len(_DOMAINS)]}" for i in range(7, rows, 1000)]


def split_file(path: Path, rows: int) -> dict[str, Any]:
    """Split ``path`` in this process; the parent reads the JSON this prints."""
    import resource

    from bench.workload import CountingQueue, FileBlobs, campaign
    from massmailer.models import SplitRequest
    from massmailer.splitting import DEFAULT_DEDUPE_MIB, SplitterContext, split_campaign
    from massmailer.store import Stores

    blobs = FileBlobs(path.parent)
    key = path.name
    store = Stores.in_memory()
    from massmailer.models import CampaignStatus

    camp = campaign("cmp-split-bench")
    camp.audience_key = key
    camp.status = CampaignStatus.SPLITTING
    store.campaigns.put_campaign(camp)
    for address in _suppressed(rows):
        store.suppressions.suppress(address, "bench")
    queue = CountingQueue()
    budget = int(os.environ.get("MM_SPLIT_DEDUPE_MIB", DEFAULT_DEDUPE_MIB)) << 20
    ctx = SplitterContext(
        campaigns=store.campaigns, suppressions=store.suppressions, queue=queue, blobs=blobs, dedupe_bytes=budget
    )
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    w0, c0 = time.perf_counter(), time.process_time()
    report = split_campaign(ctx, SplitRequest(campaign_id=camp.campaign_id))
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if not report.done:
        raise RuntimeError(f"split did not finish: {report}")
    return {
        "rows": rows,
        "wall": wall,
        "cpu": cpu,
        "rate": rows / wall,
        "baseline_rss_mib": baseline,
        "peak_rss_mib": peak,
        "split_rss_mib": peak - baseline,
        "enqueued": report.enqueued,
        "batches": report.batches,
        "invalid": report.invalid,
        "duplicates": report.duplicates,
        "suppressed": report.suppressed,
        "passes": report.passes,
        "queue_requests": queue.requests,
        "queue_bytes": queue.bytes,
        "store_writes": store.writes,
        "file_bytes": path.stat().st_size,
    }


def _child(path: Path, rows: int, profile: bool = False) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.splitter", "--child", str(path), str(rows), *(["--profile"] if profile else [])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "PYTHONPATH": f"{ROOT}:{os.environ.get('PYTHONPATH', '')}"},
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"splitter child failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(
    rows: int = 1_000_000,
    repeats: int = 3,
    small_rows: int | None = None,
    profile: bool = False,
    cache: str | None = None,
    small_repeats_all: bool = False,
    fmt: str = AUDIENCE_FORMAT,
) -> Section:
    section = Section(name="4. Splitter", key="splitter")
    small_rows = small_rows or max(rows // 10, 1)
    directory = Path(cache) if cache else CACHE
    big, small = generate(rows, fmt, cache=directory), generate(small_rows, fmt, cache=directory)
    rate = Row(
        "splitter.rate",
        f"rows/s, {rows:,}-row {fmt.upper()} audience → batches of 50",
        "rows/s",
        target=TARGET_RATE,
    )
    cpu = Row("splitter.cpu_per_row", "CPU per row", "µs", higher_is_better=False)
    peak = Row("splitter.peak_rss", f"peak RSS of the split, {rows:,} rows", "MiB", higher_is_better=False)
    peak_small = Row(
        "splitter.peak_rss_small", f"peak RSS of the split, {small_rows:,} rows", "MiB", higher_is_better=False
    )
    growth = Row(
        "splitter.memory_growth",
        f"memory ratio {rows:,} / {small_rows:,} rows",
        "×",
        target=TARGET_FLAT,
        higher_is_better=False,
        digits=2,
    )
    runs = []
    s: dict[str, Any] = {}
    for i in range(repeats):
        b = _child(big, rows)
        if i == 0 or small_repeats_all:  # the tenth is only a memory yardstick: once is enough
            s = _child(small, small_rows)
            peak_small.samples.append(s["split_rss_mib"])
        rate.samples.append(b["rate"])
        cpu.samples.append(b["cpu"] / rows * 1e6)
        peak.samples.append(b["split_rss_mib"])
        growth.samples.append(b["split_rss_mib"] / max(s["split_rss_mib"], 1.0))
        runs.append({"full": b, "tenth": s})
    if profile:
        profiled = _child(small, small_rows, profile=True)
        section.details["profile"] = {
            "rows": small_rows,
            "top_by_own_time": profiled["profile"],
            "text": format_profile(profiled["profile"], "row"),
        }
    section.rows = [rate, cpu, peak, peak_small, growth]
    section.details |= {
        "rows": rows,
        "small_rows": small_rows,
        "format": fmt,
        "file": str(big),
        "runs": runs,
    }
    section.notes.append(
        f"{fmt.upper()} audience from a file in 1 MiB reads; de-dupe table budget "
        f"{os.environ.get('MM_SPLIT_DEDUPE_MIB', '32')} MiB; queue faked (counts only), in-memory store"
    )
    return section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", nargs=2, metavar=("PATH", "ROWS"))
    parser.add_argument("--profile", action="store_true", help="with --child: cProfile the split, print top entries")
    args = parser.parse_args(argv)
    if args.child:
        path, rows = Path(args.child[0]), int(args.child[1])
        if args.profile:
            import cProfile

            from bench.common import profile_top

            profiler = cProfile.Profile()
            profiler.enable()
            result = split_file(path, rows)
            profiler.disable()
            result["profile"] = profile_top(profiler, rows, 20)
            print(json.dumps(result))
        else:
            print(json.dumps(split_file(path, rows)))
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
