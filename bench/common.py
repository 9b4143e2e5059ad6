"""What every benchmark shares: rows with samples and targets, repeats, machine facts, the table.

A benchmark returns a :class:`Section`: its rows (one measured quantity each, with the value of every
run kept as ``samples``), free-form ``details`` for ``results.json`` and ``notes`` for the reader.
Nothing here types a figure in: a row without samples is shown as unavailable, with the reason.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------------
# Rows and targets
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A goal from the issue, checked against a row's median (reported, never enforced)."""

    op: str  # ">=", "<=", "<"
    value: float
    text: str  # as the issue states it

    def met(self, value: float) -> bool:
        if self.op == ">=":
            return value >= self.value
        if self.op == "<=":
            return value <= self.value
        if self.op == "<":
            return value < self.value
        if self.op == ">":
            return value > self.value
        raise ValueError(self.op)


@dataclass
class Row:
    key: str  # stable id in results.json, e.g. "smtp.ours_1conn"
    label: str
    unit: str
    samples: list[float] = field(default_factory=list)
    target: Target | None = None
    note: str = ""
    unavailable: str | None = None  # why there is no figure (e.g. smtp-source not installed)
    higher_is_better: bool = True
    digits: int | None = None  # decimals shown; None: by magnitude

    @property
    def available(self) -> bool:
        return bool(self.samples) and self.unavailable is None

    @property
    def min(self) -> float | None:
        return min(self.samples) if self.available else None

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.available else None

    @property
    def max(self) -> float | None:
        return max(self.samples) if self.available else None

    @property
    def status(self) -> str:
        """``pass`` / ``short`` against the target (on the median), ``-`` without target or figure."""
        if self.target is None or not self.available:
            return "-" if self.target is None else "n/a"
        return "pass" if self.target.met(self.median or 0.0) else "short"

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "unit": self.unit,
            "min": self.min,
            "median": self.median,
            "max": self.max,
            "runs": len(self.samples),
            "samples": self.samples,
            "target": asdict(self.target) if self.target else None,
            "status": self.status,
            "note": self.note,
            "unavailable": self.unavailable,
            "higher_is_better": self.higher_is_better,
            "digits": self.digits,
        }


@dataclass
class Section:
    name: str  # e.g. "1. SMTP path"
    key: str  # e.g. "smtp"
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0  # wall time the benchmark took
    error: str | None = None  # the benchmark crashed: what happened (the run goes on)

    def row(self, key: str) -> Row:
        for row in self.rows:
            if row.key == key:
                return row
        raise KeyError(key)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "key": self.key,
            "seconds": round(self.seconds, 2),
            "error": self.error,
            "rows": [r.to_json() for r in self.rows],
            "details": self.details,
            "notes": self.notes,
        }


def ratio_samples(numerator: Sequence[float], denominator: Sequence[float]) -> list[float]:
    """Run-by-run ratios (runs are interleaved, so each pair saw the same machine weather)."""
    return [n / d for n, d in zip(numerator, denominator, strict=False) if d]


# --------------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------------


@dataclass
class Timing:
    wall: float  # seconds
    cpu: float  # seconds of this process's CPU (all threads)


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.wall``/``sw.cpu`` (process CPU, all threads)."""

    def __enter__(self) -> Stopwatch:
        self._w0 = time.perf_counter()
        self._c0 = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._w0
        self.cpu = time.process_time() - self._c0


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------------------------------
# Facts about the machine and the code
# --------------------------------------------------------------------------------------------------


def _cmd(args: Sequence[str], cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _versions(names: Iterable[str]) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str] = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def postfix_version() -> str | None:
    return _cmd(["dpkg-query", "-W", "-f=${Version}", "postfix"])


def machine_facts() -> dict[str, Any]:
    cpus = os.cpu_count() or 1
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = cpus
    return {
        "cpu_model": _cpu_model(),
        "cpus": cpus,
        "cpus_usable": usable,
        "memory_gib": _mem_total_gib(),
        "os": platform.platform(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "load_average": list(os.getloadavg()),
        "postfix": postfix_version(),
        "smtp_sink": shutil.which("smtp-sink")
        or ("/usr/sbin/smtp-sink" if Path("/usr/sbin/smtp-sink").exists() else None),
        "packages": _versions(["boto3", "botocore", "moto", "jinja2", "pydantic", "aws-lambda-powertools", "aiosmtpd"]),
    }


def git_facts() -> dict[str, Any]:
    revision = _cmd(["git", "rev-parse", "HEAD"], cwd=ROOT)
    status = _cmd(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT)
    return {
        "revision": revision,
        "short": revision[:10] if revision else None,
        "dirty": bool(status) if status is not None else None,
        "branch": _cmd(["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=ROOT),
    }


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


# --------------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------------


def fmt(value: float | None, digits: int | None = None) -> str:
    if value is None:
        return "n/a"
    if digits is not None:
        return f"{value:,.{digits}f}"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    if magnitude >= 0.01:
        return f"{value:.3f}"
    return f"{value:.2g}"


HEADER = ["benchmark", "figure", "unit", "median", "min", "max", "runs", "target", "result"]


def table_rows(sections: Sequence[Section]) -> list[list[str]]:
    """One list of ``len(HEADER)`` cells per row; a benchmark that failed gets one row saying so."""
    out: list[list[str]] = []
    for section in sections:
        if section.error:
            text = " ".join(f"FAILED: {section.error}".split())
            out.append([section.name, text[:100] + ("…" if len(text) > 100 else ""), "", "", "", "", "", "", "error"])
        for row in section.rows:
            if row.available:
                cells = [fmt(row.median, row.digits), fmt(row.min, row.digits), fmt(row.max, row.digits)]
            else:
                cells = ["n/a", "", ""]
            label = row.label + (f" [{row.unavailable}]" if row.unavailable else "")
            target = row.target.text if row.target else ""
            out.append([section.name, label, row.unit, *cells, str(len(row.samples)), target, row.status])
    return out


def _blank_repeats(rows: list[list[str]]) -> list[list[str]]:
    previous = None
    shown = []
    for r in rows:
        shown.append(["" if r[0] == previous else r[0], *r[1:]])
        previous = r[0]
    return shown


def render_text_table(sections: Sequence[Section]) -> str:
    rows = _blank_repeats(table_rows(sections))
    widths = [max(len(HEADER[i]), *(len(r[i]) for r in rows)) if rows else len(HEADER[i]) for i in range(len(HEADER))]
    right = {3, 4, 5, 6}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(cells)).rstrip()

    return "\n".join([line(HEADER), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def render_markdown_table(sections: Sequence[Section]) -> str:
    out = ["| " + " | ".join(HEADER) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * 4 + ["---"] * 2) + "|"]
    for r in _blank_repeats(table_rows(sections)):
        cells = [c.replace("|", "\\|") for c in r]
        if cells[-1] in ("pass", "short"):
            cells[-1] = f"**{cells[-1]}**"
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def write_json(path: Path, document: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")
    tmp.replace(path)


def profile_top(profiler: Any, per: int, top: int = 20) -> list[dict[str, Any]]:
    """The ``top`` functions of a ``cProfile.Profile`` by own time, per unit of work (``per`` units)."""
    import pstats

    stats = pstats.Stats(profiler)
    entries = []
    ranked = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)  # type: ignore[attr-defined]
    for (filename, line, name), (_cc, nc, tt, ct, _callers) in ranked[:top]:
        short = filename
        for marker in ("site-packages/", "/lib/python3.11/", str(ROOT) + "/"):
            if marker in short:
                short = short.split(marker, 1)[1]
        entries.append(
            {
                "function": f"{short}:{line}({name})",
                "calls_per_unit": round(nc / per, 2),
                "own_us_per_unit": round(tt / per * 1e6, 2),
                "cumulative_us_per_unit": round(ct / per * 1e6, 2),
            }
        )
    return entries


def format_profile(entries: Sequence[dict[str, Any]], unit: str) -> str:
    lines = [f"{'own µs/' + unit:>12} {'cum µs/' + unit:>12} {'calls/' + unit:>10}  function"]
    for e in entries:
        lines.append(
            f"{e['own_us_per_unit']:>12.2f} {e['cumulative_us_per_unit']:>12.2f} {e['calls_per_unit']:>10.2f}  "
            f"{e['function']}"
        )
    return "\n".join(lines)
