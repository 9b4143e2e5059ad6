"""One Lambda execution environment, as a process: ``python -m local.function_process``.

The runtime starts one of these per environment with the function's environment variables (AWS
endpoint settings included) — exactly what the function gets in AWS, so ``massmailer.wiring`` builds
the same adapters from the same settings. It imports the handler once (a warm container) and either

* ``--http-port``: serves the API front (``local.http_front``) for the ingest function, or
* ``--queue-url``: runs one poller of the queue's event source mapping (``local.pollers``).

It prints ``READY <detail>`` when it serves, stops on SIGTERM after its current invocation, and exits
if the runtime that started it goes away.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import threading

import boto3

from local.children import announce_ready, install_stop_signals, watch_parent
from local.http_front import ApiFront
from local.pollers import InvocationWatchdog, PollerConfig, SqsPoller
from massmailer import spec


def _handler(function: str):  # type: ignore[no-untyped-def]
    module = importlib.import_module(f"lambdas.{function}.handler")
    return module.handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--function", required=True, choices=[f.name for f in spec.FUNCTIONS])
    parser.add_argument("--stage", default="local")
    parser.add_argument("--http-port", type=int)
    parser.add_argument("--queue", choices=[q.key for q in spec.QUEUES])
    parser.add_argument("--queue-url")
    parser.add_argument("--failed-visibility", type=int)
    parser.add_argument("--long-poll", type=int, default=1)
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    function = next(f for f in spec.FUNCTIONS if f.name == args.function)
    handler = _handler(function.name)
    stop = threading.Event()
    watch_parent()

    if args.http_port is not None:
        front = ApiFront(
            handler,
            port=args.http_port,
            stage=args.stage,
            function_name=function.name,
            timeout_seconds=function.timeout_seconds,
            access_log=lambda line: print(f"[api] {line}", file=sys.stderr, flush=True),
        )
        install_stop_signals(lambda: threading.Thread(target=front.stop, daemon=True).start())
        announce_ready(str(front.port))
        front.serve_forever()
        return

    if not (args.queue and args.queue_url):
        parser.error("either --http-port or --queue with --queue-url is required")
    queue = next(q for q in spec.QUEUES if q.key == args.queue)
    session = boto3.session.Session()
    config = PollerConfig(
        queue_url=args.queue_url,
        queue=queue,
        function=function,
        failed_visibility=args.failed_visibility,
        long_poll_seconds=args.long_poll,
        region=session.region_name or "us-east-1",
    )
    poller = SqsPoller(session.client("sqs"), config, handler, watchdog=InvocationWatchdog(function.timeout_seconds))
    install_stop_signals(stop.set)
    announce_ready(poller.queue_arn)
    poller.run(stop)


if __name__ == "__main__":
    main()
