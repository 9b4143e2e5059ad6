"""``python -m local``: the local runtime's command line.

* ``up``     — start everything in the foreground (``make up``); Ctrl-C stops all of it;
* ``demo``   — the self-contained demo (``make demo``);
* ``fault``  — flip the fault switches of a running ``up``: ``python -m local fault ses=down``,
  ``ses=throttle``, ``ses=paused``, ``ses=quota`` (daily quota used up), ``ses=ok``, ``delay=800`` (ms),
  ``rate=5`` (emails/s, ``rate=none`` to lift), ``smtp=throttle``/``smtp=down``/``smtp=ok``,
  ``scheduler=double`` (every schedule invocation delivered twice, as Scheduler's at-least-once
  allows)/``scheduler=ok``; ``python -m local fault`` alone shows them, ``--reset`` clears them;
* ``status`` — endpoints, queue depths, what SES and the relay saw.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from local.children import ROOT
from local.scheduler_loop import FAULTS as SCHEDULER_FAULTS
from local.scheduler_loop import parse_fault
from local.ses_proxy import MODES, SesFaults

STATE_FILE = ROOT / ".local" / "runtime.json"


def _rel(path: str | Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd())) + "/"
    except ValueError:
        return str(path) + "/"


def banner(rt: Any, took: float) -> str:
    e = rt.endpoints()
    api = e["api"]
    lines = [
        f"MassMailer local runtime — up in {took:.1f} s (stage {e['stage']}, region {e['region']})",
        "",
        f"  API             {api}",
        f"                  POST {api}/v1/messages · POST {api}/v1/campaigns · GET {api}/v1/campaigns/{{id}}",
        f"  AWS (moto)      {e['aws']}   DynamoDB {e['dynamodb']}",
        f"  SES endpoint    {e['ses']}   (moto's SES v2 + mailbox simulator + fault switches)",
        f"  SMTP relay      {e['smtp'].removeprefix('smtp://')}   → outbox {_rel(e['outbox'])}",
        f"  Fault switches  {e['faults']}   or: python -m local fault ses=down",
        f"  Status          {e['status']}",
        f"  Logs            {_rel(e['logs'])}  (one file per execution environment)",
        "",
        "  Ctrl-C stops everything.",
    ]
    return "\n".join(lines)


def _activity(rt: Any) -> str:
    status = rt.status()
    ses = status["ses"]
    queues = status["queues"]
    dlq = sum(v for k, v in queues.items() if k.endswith("-dlq"))
    faults = status["faults"]
    fault_text = []
    if faults["ses"]["mode"] != "ok":
        fault_text.append(f"ses={faults['ses']['mode']}")
    if faults["ses"]["delay_ms"]:
        fault_text.append(f"delay={faults['ses']['delay_ms']}ms")
    if faults["ses"]["rate"]:
        fault_text.append(f"rate={faults['ses']['rate']:g}/s")
    if faults["smtp"]:
        fault_text.append(f"smtp={faults['smtp']}")
    if faults.get("scheduler"):
        fault_text.append(f"scheduler={faults['scheduler']}")
    refused = sum(v for k, v in ses["stats"].items() if k.startswith("refused:"))
    return (
        f"{time.strftime('%H:%M:%S')}  SES accepted {ses['stats'].get('accepted', 0)}"
        + (f" (refused {refused})" if refused else "")
        + f" · relay {status['smtp']['received']} · events {ses['events'].get('published', 0)}"
        + f" · queues high {queues['high']} low {queues['low']} split {queues['split']} bounce {queues['bounce']}"
        + f" · DLQs {dlq} · schedules fired {status['schedules_fired']}"
        + (f" · faults: {' '.join(fault_text)}" if fault_text else "")
    )


def up(args: argparse.Namespace) -> int:
    from local.runtime import LocalRuntime, RuntimeConfig

    faults = SesFaults.parse({"mode": args.ses, "delay_ms": args.ses_delay_ms, "rate": args.ses_rate})
    config = RuntimeConfig(
        api_port=args.port,
        failed_visibility=args.failed_visibility,
        ses_faults=faults,
        scheduler_fault=args.scheduler,
        environments={**RuntimeConfig().environments, **dict(_pairs(args.environments))},
    )
    stop = threading.Event()

    def _on_signal(*_: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    rt = LocalRuntime(config)
    started = time.monotonic()
    print("Starting MassMailer locally (moto, SMTP relay, SES endpoint, functions)…", flush=True)
    try:
        rt.start()
    except Exception as exc:
        print(f"could not start: {exc}", file=sys.stderr)
        return 1
    try:
        print(banner(rt, time.monotonic() - started), flush=True)
        last = ""
        while not stop.wait(2.0):
            if rt.failure:
                print(f"stopping: {rt.failure}", file=sys.stderr)
                return 1
            if args.quiet:
                continue
            try:
                line = _activity(rt)
            except Exception:  # noqa: S112 - a status read racing the shutdown
                continue
            key = line.split("  ", 1)[1]
            if key != last:
                print(line, flush=True)
                last = key
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
        print("\nStopping…", flush=True)
        rt.stop()
        print("Stopped: every process the runtime started has exited.", flush=True)


def _pairs(text: str | None) -> list[tuple[str, int]]:
    pairs = []
    for part in (text or "").split(","):
        if part.strip():
            key, _, value = part.partition("=")
            pairs.append((key.strip(), int(value)))
    return pairs


def _control_url(args: argparse.Namespace) -> str:
    if args.url:
        return args.url.rstrip("/")
    try:
        state = json.loads(STATE_FILE.read_text())
    except (OSError, ValueError):
        raise SystemExit("no running runtime found (start one with `make up`, or pass --url)") from None
    return str(state["faults"]).rsplit("/faults", 1)[0]


def _call(url: str, method: str = "GET", body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - loopback URL from our own state file
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"{exc.code}: {exc.read().decode()}") from None
    except urllib.error.URLError as exc:
        raise SystemExit(f"runtime not reachable at {url}: {exc.reason}") from None


def fault(args: argparse.Namespace) -> int:
    base = _control_url(args)
    if args.reset:
        print(json.dumps(_call(f"{base}/faults", "DELETE"), indent=2))
        return 0
    body: dict[str, Any] = {}
    for item in args.switches:
        key, _, value = item.partition("=")
        key = key.strip().lower()
        if key == "ses":
            if value not in MODES:
                raise SystemExit(f"ses must be one of {', '.join(MODES)}")
            body["mode"] = value
        elif key in ("delay", "delay_ms"):
            body["delay_ms"] = int(value)
        elif key == "rate":
            body["rate"] = None if value.lower() in ("", "none", "off", "0") else float(value)
        elif key == "smtp":
            body["smtp"] = None if value.lower() in ("", "ok", "none", "off") else value
        elif key == "scheduler":
            try:
                body["scheduler"] = parse_fault(value)
            except ValueError as exc:
                raise SystemExit(str(exc)) from None
        else:
            raise SystemExit(f"unknown switch {item!r} (ses=, delay=, rate=, smtp=, scheduler=)")
    result = _call(f"{base}/faults", "POST", body) if body else _call(f"{base}/faults")
    print(json.dumps(result, indent=2))
    return 0


def status(args: argparse.Namespace) -> int:
    print(json.dumps(_call(f"{_control_url(args)}/status"), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local", description="MassMailer's local runtime")
    sub = parser.add_subparsers(dest="command", required=True)

    p_up = sub.add_parser("up", help="start everything in the foreground")
    p_up.add_argument("--port", type=int, default=8080, help="API port (0: any free port)")
    p_up.add_argument(
        "--failed-visibility",
        type=int,
        default=None,
        help="seconds before a failed record is retried (default: the queue's visibility timeout, as on AWS)",
    )
    p_up.add_argument(
        "--ses", default="ok", choices=MODES, help="start with SES down / throttling / paused / out of its daily quota"
    )
    p_up.add_argument("--ses-delay-ms", type=int, default=0, help="slow every SES SendEmail by this much")
    p_up.add_argument("--ses-rate", type=float, default=None, help="SES max send rate (emails/s)")
    p_up.add_argument(
        "--scheduler", default=None, choices=SCHEDULER_FAULTS, help="start with every schedule fired twice"
    )
    p_up.add_argument("--environments", help="execution environments per queue, e.g. low=3,high=2,bounce=2")
    p_up.add_argument("--quiet", action="store_true", help="no activity lines")
    p_up.set_defaults(func=up)

    p_demo = sub.add_parser("demo", help="run the self-contained demo")
    p_demo.add_argument("--recipients", type=int, default=1000)
    p_demo.set_defaults(
        func=lambda a: __import__("local.demo", fromlist=["main"]).main(["--recipients", str(a.recipients)])
    )

    p_fault = sub.add_parser("fault", help="show or flip the fault switches of a running runtime")
    p_fault.add_argument(
        "switches",
        nargs="*",
        help="ses=down|throttle|paused|quota|ok delay=MS rate=N|none smtp=... scheduler=double|ok",
    )
    p_fault.add_argument("--reset", action="store_true")
    p_fault.add_argument("--url", help="control URL (default: from .local/runtime.json)")
    p_fault.set_defaults(func=fault)

    p_status = sub.add_parser("status", help="what a running runtime is doing")
    p_status.add_argument("--url")
    p_status.set_defaults(func=status)

    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
