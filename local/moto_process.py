"""moto in server mode, as a child process of the local runtime (``python -m local.moto_process``).

It is moto's own WSGI application (``DomainDispatcherApplication``, as ``moto_server`` builds it) with
four local touches, none of which changes what an AWS API call answers:

* ``local.moto_tuning``'s patches make moto's DynamoDB, SQS and serializer paths faster (its
  ``apply()`` reports each patch; one that does not apply to the installed moto is logged and left
  out, and ``tests/unit/test_moto_tuning_applies.py`` fails on it), and the dispatcher caches its
  backend lookups;
* it binds ``127.0.0.1`` on a free port (``--port 0``) and announces the port it got;
* it is served by ``local.wsgi_keepalive``, which keeps connections alive (HTTP/1.1; werkzeug's
  server closes every connection), so a busy pipeline does not pay a TCP handshake and a new server
  thread for every AWS call;
* ``GET /_local/ses/sent`` lists what moto's SES recorded as sent (id, source, destinations), for
  tests and the demo to compare with the outbox — the same record the in-process integration tests
  read from ``ses_backends``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

from local.children import announce_ready, install_stop_signals, watch_parent

LOCAL_ACCOUNT = "123456789012"


def _ses_sent(region: str) -> list[dict[str, Any]]:
    from moto.ses.models import ses_backends

    sent = []
    for account, regions in ses_backends.items():
        if region not in regions:
            continue
        for message in list(regions[region].sent_messages):
            sent.append(
                {
                    "id": message.id,
                    "account": account,
                    "source": getattr(message, "source", None),
                    "destinations": list(getattr(message, "destinations", []) or []),
                }
            )
    return sent


class LocalRoutes:
    """WSGI middleware: ``/_local/...`` is answered here, everything else is moto."""

    def __init__(self, app: Callable[..., Iterable[bytes]], region: str) -> None:
        self.app = app
        self.region = region

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/_local/"):
            return self.app(environ, start_response)
        if path == "/_local/ses/sent":
            body = json.dumps({"sent": _ses_sent(self.region)}).encode()
            status = "200 OK"
        elif path == "/_local/health":
            body, status = b'{"ok": true}', "200 OK"
        else:
            body, status = b'{"error": "not found"}', "404 Not Found"
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--region", default="us-east-1")
    args = parser.parse_args(argv)

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from moto.moto_server.werkzeug_app import create_backend_app

    from local import moto_tuning
    from local.wsgi_keepalive import make_server

    moto_tuning.apply()

    app = LocalRoutes(moto_tuning.cached_dispatcher(create_backend_app), args.region)
    server = make_server(args.host, args.port, app)
    port = server.server_address[1]
    os.environ["MOTO_PORT"] = str(port)  # moto builds a few self-referencing URLs from it
    stop = threading.Event()

    def _stop() -> None:
        if not stop.is_set():
            stop.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    install_stop_signals(_stop)
    watch_parent()
    announce_ready(str(port))
    server.serve_forever(poll_interval=0.2)


if __name__ == "__main__":
    main()
