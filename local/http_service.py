"""A threaded HTTP server on loopback with a start/stop lifecycle (the API front, the SES endpoint)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class LoopbackHttpService:
    """Serve ``request_class`` on ``host:port`` (0: a free port) in a daemon thread until stopped."""

    thread_name = "http"

    def _listen(self, request_class: type[BaseHTTPRequestHandler], port: int, host: str = "127.0.0.1") -> None:
        self._server = ThreadingHTTPServer((host, port), request_class)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._server.serve_forever, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
