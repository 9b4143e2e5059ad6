"""6. Local demo: wall time and emails/s of ``make demo``, run as a subprocess and parsed.

The emails counted are the campaign's sent count from the demo's own report plus its transactional
emails a provider accepted; the wall time is measured here around the subprocess (interpreter
start, runtime start and stop, the run), and the demo's own figures are kept beside it.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Sequence
from typing import Any

from bench.common import ROOT, Row, Section

# Two report formats are understood: the runtime demo's table ("sent via SES (primary)  980", "wall
# time (start to stop)  52.8 s", "throughput while sending  41.2 emails/s", one line per transactional
# email ending "(transactional)") and the earlier in-process demo's ("Counts: ... sent=20", "Wall time").
_SENT_VIA = re.compile(r"^\s*sent via .+?\s{2,}([\d,]+)\s*$", re.MULTILINE)
_TRANSACTIONAL_ROW = re.compile(r"^\s*\S+@\S+\s+([A-Z_]+)\s+via \S+ \(transactional\)", re.MULTILINE)
_WALL_ROW = re.compile(r"^\s*wall time \(start to stop\)\s+([\d.]+)\s*s", re.MULTILINE)
_SENDING_RATE = re.compile(r"^\s*throughput while sending\s+([\d.,]+)\s*emails/s", re.MULTILINE)
_COUNTS = re.compile(r"^Counts:\s*(.*)$", re.MULTILINE)
_TRANSACTIONAL = re.compile(r"^Transactional \S+: (\w+)", re.MULTILINE)
_WALL = re.compile(r"^Wall time:\s*([\d.]+)\s*s", re.MULTILINE)
_PROVIDER_ACCEPTED = {"SENT", "DELIVERED", "BOUNCED", "SOFT_BOUNCED", "COMPLAINED"}


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def parse(output: str) -> dict[str, Any]:
    """Emails the demo sent (campaign + transactional), its own wall time and sending rate."""
    counts: dict[str, int] = {}
    match = _COUNTS.search(output)
    if match:
        for part in match.group(1).split(","):
            key, _, value = part.strip().partition("=")
            if value.strip().isdigit():
                counts[key] = int(value)
    via = [int(_number(m)) for m in _SENT_VIA.findall(output)]
    transactional = _TRANSACTIONAL_ROW.findall(output) or _TRANSACTIONAL.findall(output)
    campaign = sum(via) if via else counts.get("sent", 0)
    wall = _WALL_ROW.search(output) or _WALL.search(output)
    rate = _SENDING_RATE.search(output)
    return {
        "counts": counts,
        "campaign_sent": campaign,
        "transactional": transactional,
        "demo_wall_s": float(wall.group(1)) if wall else None,
        "demo_sending_rate": _number(rate.group(1)) if rate else None,
        "emails": campaign + sum(1 for status in transactional if status in _PROVIDER_ACCEPTED),
    }


def run(repeats: int = 3, command: Sequence[str] | None = None, timeout: float = 300) -> Section:
    section = Section(name="6. Local demo", key="demo")
    command = list(command or ["make", "-s", "demo"])
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    if command[:1] == ["make"]:
        subprocess.run(["make", "-s", "venv"], cwd=ROOT, env=env, capture_output=True, timeout=900, check=False)
    wall = Row("demo.wall", f"`{' '.join(command)}` wall time", "s", higher_is_better=False)
    rate = Row("demo.rate", "emails/s over that wall time", "emails/s")
    inner = Row("demo.inner_wall", "the demo's own wall time (as it reports it)", "s", higher_is_better=False)
    sending = Row("demo.sending_rate", "the demo's own throughput while sending", "emails/s")
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        seconds = time.perf_counter() - started
        parsed = parse(done.stdout)
        runs.append({"returncode": done.returncode, "wall_s": seconds, **parsed})
        if done.returncode != 0 or not parsed["emails"]:
            section.error = f"`{' '.join(command)}` exited {done.returncode}: {(done.stderr or done.stdout)[-400:]}"
            break
        wall.samples.append(seconds)
        rate.samples.append(parsed["emails"] / seconds)
        if parsed["demo_wall_s"]:
            inner.samples.append(parsed["demo_wall_s"])
        if parsed["demo_sending_rate"]:
            sending.samples.append(parsed["demo_sending_rate"])
    if not inner.samples:
        inner.unavailable = "the demo printed no wall time"
    if not sending.samples:
        sending.unavailable = "the demo printed no sending rate"
    section.rows = [wall, rate, inner, sending]
    section.details = {"command": command, "runs": runs}
    if runs and runs[-1].get("emails"):
        last = runs[-1]
        section.notes.append(
            f"emails per demo run: {last['emails']} ({last['campaign_sent']} campaign, "
            f"{len(last['transactional'])} transactional: {', '.join(last['transactional'])})"
        )
    return section
