"""``make bench`` / ``python -m bench``: run every benchmark, print one table, write ``bench/results.json``.

Each benchmark runs in a fresh Python process (imports, garbage and botocore handlers of one cannot
colour the next) and runs its workload several times; the table shows the median, min and max of
every figure and whether the issue's target is met (on the median). ``--quick`` runs reduced sizes
for development; ``--only`` picks benchmarks. Figures are measured, never typed in.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import (
    ROOT,
    Row,
    Section,
    Target,
    git_facts,
    machine_facts,
    now_iso,
    render_markdown_table,
    render_text_table,
    write_json,
)

BENCH = ROOT / "bench"
RESULTS = BENCH / "results.json"
QUICK_RESULTS = BENCH / "results.quick.json"
README = BENCH.parent / "README.md"  # its Performance section holds the latest table
ORDER = ("smtp", "engine", "aws", "splitter", "priority", "demo")

FULL: dict[str, dict[str, Any]] = {
    "smtp": {"emails": 20_000, "repeats": 3, "profile_emails": 5_000},
    "engine": {"emails": 4_000, "repeats": 3},
    "aws": {"recipients": 10_000, "repeats": 1, "notify_sample": 500, "throttle_recipients": 50},
    "splitter": {"rows": 1_000_000, "repeats": 3, "profile": True},
    "priority": {"bulk": 20_000, "sends": 100, "repeats": 2, "windows": 2},  # each repeat: one drain, ~2 min
    "demo": {"repeats": 2},
}
QUICK: dict[str, dict[str, Any]] = {
    "smtp": {"emails": 2_000, "repeats": 2, "profile_emails": 1_000},
    "engine": {"emails": 2_000, "repeats": 2},
    "aws": {"recipients": 500, "repeats": 1, "notify_sample": 100, "throttle_recipients": 10},
    "splitter": {"rows": 100_000, "repeats": 2, "profile": True},
    "priority": {"bulk": 3_000, "sends": 50, "repeats": 1, "windows": 2},
    "demo": {"repeats": 1},
}


def _benchmarks() -> dict[str, Callable[..., Section]]:
    from bench import aws_requests, demo, engine_cpu, priority, smtp_path, splitter

    return {
        "smtp": smtp_path.run,
        "engine": engine_cpu.run,
        "aws": aws_requests.run,
        "splitter": splitter.run,
        "priority": priority.run,
        "demo": demo.run,
    }


# --------------------------------------------------------------------------------------------------
# Sections across processes
# --------------------------------------------------------------------------------------------------


def section_from_json(data: dict[str, Any]) -> Section:
    rows = []
    for r in data.get("rows", []):
        target = Target(**r["target"]) if r.get("target") else None
        rows.append(
            Row(
                key=r["key"],
                label=r["label"],
                unit=r["unit"],
                samples=list(r.get("samples") or []),
                target=target,
                note=r.get("note", ""),
                unavailable=r.get("unavailable"),
                higher_is_better=r.get("higher_is_better", True),
                digits=r.get("digits"),
            )
        )
    section = Section(
        name=data["name"],
        key=data.get("key", ""),
        rows=rows,
        details=data.get("details", {}),
        notes=data.get("notes", []),
        seconds=data.get("seconds", 0.0),
        error=data.get("error"),
    )
    return section


def _section_json(section: Section) -> dict[str, Any]:
    return section.to_json()


def run_one(key: str, params: dict[str, Any]) -> Section:
    """Run one benchmark in this process; a crash becomes the section's error."""
    started = time.perf_counter()
    try:
        section = _benchmarks()[key](**params)
    except Exception as exc:  # report and carry on with the others
        section = Section(name=key, key=key, error=f"{type(exc).__name__}: {exc}")
        section.details["traceback"] = traceback.format_exc()
    section.seconds = time.perf_counter() - started
    return section


def run_isolated(key: str, params: dict[str, Any]) -> Section:
    with tempfile.TemporaryDirectory(prefix="mm-bench-") as tmp:
        out = Path(tmp) / "section.json"
        command = [
            sys.executable,
            "-m",
            "bench.run",
            "--child",
            key,
            "--params",
            json.dumps(params),
            "--section-out",
            str(out),
        ]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        if not out.exists():
            return Section(
                name=key,
                key=key,
                error=f"benchmark process exited {done.returncode}: {(done.stderr or done.stdout)[-1500:]}",
                seconds=time.perf_counter() - started,
            )
        return section_from_json(json.loads(out.read_text()))


# --------------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------------


def machine_line(machine: dict[str, Any]) -> str:
    return (
        f"{machine['cpu_model']}, {machine['cpus']} CPUs, {machine['memory_gib']} GiB, {machine['os']}, "
        f"Python {machine['python']}"
    )


def update_readme(markdown: str, document: dict[str, Any]) -> None:
    """Replace the table between the markers in the README's Performance section with this run's."""
    if not README.exists():
        return
    text = README.read_text()
    start, end = "<!-- bench:results:start -->", "<!-- bench:results:end -->"
    if start not in text or end not in text:
        return
    git = document["git"]
    machine = document["machine"]
    block = "\n".join(
        [
            start,
            f"Run {document['date']} at `{git.get('short')}`{' (uncommitted changes)' if git.get('dirty') else ''}, "
            f"{document['seconds'] / 60:.1f} min, on {machine_line(machine)}; load average at start "
            f"{', '.join(f'{x:.1f}' for x in document['load_average_start'])}."
            + (f" Note: {document['note'].rstrip('.')}." if document.get("note") else "")
            + "".join(
                f" Re-run {m['date']} at `{m['git'].get('short')}`: {', '.join(m['sections'])}."
                for m in document.get("merged", [])
            ),
            "",
            markdown,
            "",
            end,
        ]
    )
    before, _, rest = text.partition(start)
    _, _, after = rest.partition(end)
    README.write_text(before + block + after)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="reduced sizes, for development")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(ORDER)}")
    parser.add_argument("--repeats", type=int, help="runs per benchmark (overrides the defaults)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="BENCH.PARAM=VALUE",
        help="override a parameter, e.g. --set smtp.emails=50000 --set priority.low_mode=thread",
    )
    parser.add_argument(
        "--out", type=Path, help="results file (default bench/results.json; --quick: results.quick.json)"
    )
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="with --only: put these benchmarks' new sections into the existing results file, keep the others",
    )
    parser.add_argument("--in-process", action="store_true", help="don't isolate benchmarks in subprocesses")
    parser.add_argument("--note", default=os.environ.get("BENCH_NOTE", ""), help="free text stored with the results")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--params", help=argparse.SUPPRESS)
    parser.add_argument("--section-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        section = run_one(args.child, json.loads(args.params or "{}"))
        write_json(args.section_out, _section_json(section))
        return 0

    sizes = {k: dict(v) for k, v in (QUICK if args.quick else FULL).items()}
    chosen = [k.strip() for k in args.only.split(",")] if args.only else list(ORDER)
    unknown = set(chosen) - set(ORDER)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    for item in args.set:
        name, _, value = item.partition("=")
        bench_key, _, param = name.partition(".")
        if bench_key not in sizes or not param:
            parser.error(f"--set {item}: expected BENCH.PARAM=VALUE")
        try:
            sizes[bench_key][param] = json.loads(value)
        except json.JSONDecodeError:
            sizes[bench_key][param] = value
    if args.repeats:
        for key in sizes:
            sizes[key]["repeats"] = args.repeats

    started = time.perf_counter()
    document: dict[str, Any] = {
        "date": now_iso(),
        "git": git_facts(),
        "machine": machine_facts(),
        "load_average_start": list(os.getloadavg()),
        "command": " ".join([Path(sys.executable).name, "-m", "bench", *(argv if argv is not None else sys.argv[1:])]),
        "mode": "quick" if args.quick else "full",
        "note": args.note,
        "parameters": {k: sizes[k] for k in chosen},
    }
    print(f"MassMailer benchmarks ({document['mode']}) on {machine_line(document['machine'])}", flush=True)
    print(
        f"load average {', '.join(f'{x:.2f}' for x in document['load_average_start'])}; "
        f"git {document['git'].get('short')}{' +changes' if document['git'].get('dirty') else ''}",
        flush=True,
    )
    sections: list[Section] = []
    for key in chosen:
        print(f"… {key}: {json.dumps(sizes[key])}", flush=True)
        section = run_one(key, sizes[key]) if args.in_process else run_isolated(key, sizes[key])
        status = f"FAILED: {section.error}" if section.error else "done"
        print(f"  {key} {status} in {section.seconds:.1f} s", flush=True)
        sections.append(section)

    document["seconds"] = time.perf_counter() - started
    document["load_average_end"] = list(os.getloadavg())
    out = args.out or (QUICK_RESULTS if args.quick else RESULTS)
    if args.merge and out.exists():
        previous = json.loads(out.read_text())
        fresh = {s.key: s for s in sections}
        older = {k: section_from_json(v) for k, v in previous.get("sections", {}).items()}
        sections = [fresh.get(k) or older[k] for k in ORDER if k in fresh or k in older]
        chosen = [s.key for s in sections]
        rerun = {
            "date": document["date"],
            "git": document["git"],
            "sections": sorted(fresh),
            "load_average_start": document["load_average_start"],
            "seconds": document["seconds"],
            "parameters": document["parameters"],
        }
        document = {**previous, "merged": [*previous.get("merged", []), rerun]}
        document["seconds"] = previous.get("seconds", 0.0) + rerun["seconds"]
    text = render_text_table(sections)
    markdown = render_markdown_table(sections)
    document["table"] = text
    document["table_markdown"] = markdown
    document["targets"] = {
        row.key: {"target": row.target.text, "median": row.median, "status": row.status}
        for section in sections
        for row in section.rows
        if row.target
    }
    document["sections"] = {s.key or s.name: _section_json(s) for s in sections}

    print()
    print(text)
    print()
    for section in sections:
        for note in section.notes:
            print(f"- {section.name}: {note}")
        profile = (section.details or {}).get("profile_1conn") or (section.details or {}).get("profile")
        if profile and profile.get("text"):
            unit = "email" if section.key == "smtp" else "row"
            print(f"\n{section.name} — cProfile, top functions by own time per {unit}:\n{profile['text']}")
    print(
        f"\ntotal {document['seconds'] / 60:.1f} min; load average now {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )

    if not args.no_write:
        write_json(out, document)
        print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
        if out == RESULTS and set(chosen) == set(ORDER):
            (BENCH / "results.md").write_text(
                f"Run {document['date']} at `{document['git'].get('short')}` on {machine_line(document['machine'])}"
                + (f" — {document['note']}" if document["note"] else "")
                + "\n\n"
                + markdown
                + "\n"
            )
            update_readme(markdown, document)
    return 1 if any(s.error for s in sections) else 0


if __name__ == "__main__":
    sys.exit(main())
