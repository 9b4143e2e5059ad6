"""A keep-alive WSGI server for moto on loopback (``local.moto_process``).

werkzeug's development server — what ``moto_server`` runs — answers every response with
``Connection: close``: each AWS call of every function then pays a TCP connect, a fresh server
thread, and (client side) a new pooled connection. Measured on the local pipeline, that was a third
of moto's CPU per DynamoDB call. This handler serves the same WSGI application over HTTP/1.1
connections that stay open: the request body is read whole (``Content-Length``, or chunked), the
application's response is buffered and sent in one write with its ``Content-Length``. Request headers
are read as lines into a small mapping (``http.server`` parses them with the ``email`` package, a
tenth of moto's time per DynamoDB call).

Nothing about an AWS call changes: same application, same environ keys a WSGI server provides.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from werkzeug.exceptions import InternalServerError

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_HOP_BY_HOP = frozenset(("connection", "keep-alive", "transfer-encoding", "content-length"))


class RequestHeaders:
    """What the handler reads of request headers: ``get`` (first value, any case) and ``items``."""

    def __init__(self) -> None:
        self._items: list[tuple[str, str]] = []
        self._first: dict[str, str] = {}

    def add(self, name: str, value: str) -> None:
        self._items.append((name, value))
        self._first.setdefault(name.lower(), value)

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._first.get(name.lower(), default)

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __len__(self) -> int:
        return len(self._items)


class KeepAliveWsgiHandler(BaseHTTPRequestHandler):
    """Serves ``server.app`` (set by :func:`make_server`); one thread per open connection."""

    protocol_version = "HTTP/1.1"
    server_version = "MassMailerLocalMoto/1.0"
    disable_nagle_algorithm = True
    server: Any

    def parse_request(self) -> bool:
        """The request line and headers (``BaseHTTPRequestHandler.parse_request``'s checks, lighter)."""
        self.command = None  # type: ignore[assignment]
        self.request_version = self.default_request_version
        self.close_connection = True
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = self.requestline.split()
        if len(words) != 3 or not words[2].startswith("HTTP/1."):
            self.send_error(400, f"Bad request line {self.requestline!r}")
            return False
        self.command, self.path, self.request_version = words
        headers = RequestHeaders()
        while True:
            line = self.rfile.readline(65537)
            if len(line) > 65536 or len(headers) > 100:
                self.send_error(431, "Request header fields too large")
                return False
            if line in (b"\r\n", b"\n", b""):
                break
            name, sep, value = line.decode("iso-8859-1").partition(":")
            if not sep:
                self.send_error(400, "Bad header line")
                return False
            headers.add(name.strip(), value.strip())
        self.headers = headers  # type: ignore[assignment]
        connection = (headers.get("Connection") or "").lower()
        self.close_connection = connection == "close" or (
            self.request_version == "HTTP/1.0" and connection != "keep-alive"
        )
        if (headers.get("Expect") or "").lower() == "100-continue" and self.request_version != "HTTP/1.0":
            return self.handle_expect_100()
        return True

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()  # the CRLF after each chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _environ(self, body: bytes) -> dict[str, Any]:
        path, _, query = self.path.partition("?")
        host, port = self.server.server_address[:2]
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(path, "latin-1"),
            "RAW_URI": self.path,
            "REQUEST_URI": self.path,
            "QUERY_STRING": query,
            "SERVER_NAME": host,
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_PORT": self.client_address[1],
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        content_type = self.headers.get("Content-Type")
        if content_type is not None:
            environ["CONTENT_TYPE"] = content_type
        for name, value in self.headers.items():
            key = name.upper().replace("-", "_")
            if key in ("CONTENT_TYPE", "CONTENT_LENGTH", "TRANSFER_ENCODING"):
                continue
            key = "HTTP_" + key
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ

    def _serve(self) -> None:
        body = self._read_body()
        environ = self._environ(body)
        status_headers: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., None]:
            status_headers[:] = [status, headers]
            return lambda data: chunks.append(data)

        chunks: list[bytes] = []
        try:
            self._run(self.server.app, environ, start_response, chunks)
        except Exception:  # as werkzeug's server does: log it, answer its 500 page
            self.server.log_exception()
            chunks.clear()
            self._run(InternalServerError(), environ, start_response, chunks)
        status, headers = status_headers
        payload = b"".join(chunks)
        code = int(status.split(None, 1)[0])
        lines = [f"{self.protocol_version} {status}\r\n"]
        lines.extend(f"{k}: {v}\r\n" for k, v in headers if k.lower() not in _HOP_BY_HOP)
        if code >= 200 and code not in (204, 304):
            lines.append(f"Content-Length: {len(payload)}\r\n")
        lines.append("\r\n")
        head = "".join(lines).encode("latin-1")
        self.wfile.write(head if self.command == "HEAD" or code in (204, 304) else head + payload)

    @staticmethod
    def _run(app: WsgiApp, environ: dict[str, Any], start_response: Callable[..., Any], chunks: list[bytes]) -> None:
        result = app(environ, start_response)
        try:
            chunks.extend(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    app: WsgiApp

    def log_exception(self) -> None:
        import traceback

        traceback.print_exc()


def make_server(host: str, port: int, app: WsgiApp) -> ThreadingHTTPServer:
    server = _Server((host, port), KeepAliveWsgiHandler)
    server.app = app
    return server
