"""The local API Gateway: HTTP requests → REST API (v1) Lambda proxy events → the ingest handler.

As ``sam local start-api`` does, and shaped like the stage ``infra/api.py`` deploys:

* ``/v1/{proxy+}`` (ANY) and ``/v1/unsubscribe`` (GET, POST) reach the function; any other path gets
  API Gateway's own ``403 {"message": "Missing Authentication Token"}``;
* the event carries the method, path, headers (single and multi-value), query string (single and
  multi-value), path parameters, a request context with a fresh request id, and the body (base64
  when it is not UTF-8 text);
* the handler's proxy response becomes the HTTP response; a handler that raises, or returns something
  that is not a proxy response, gives ``502 {"message": "Internal server error"}``.

Differences from AWS, on purpose: no SigV4 (IAM) authorization locally, no stage prefix in the path,
no throttling. One invocation at a time, as in one Lambda execution environment (the Powertools
resolver keeps per-request state at module level).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from local.http_service import LoopbackHttpService
from local.lambda_context import LambdaContext

logger = logging.getLogger(__name__)
Handler = Callable[[dict[str, Any], Any], Any]

API_VERSION = "v1"
UNSUBSCRIBE_PATH = f"/{API_VERSION}/unsubscribe"
UNSUBSCRIBE_METHODS = ("GET", "POST")
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit


def resource_for(method: str, path: str) -> tuple[str, dict[str, str] | None] | None:
    """The API resource a request matches, with its path parameters; None: no such resource."""
    if path == UNSUBSCRIBE_PATH and method in UNSUBSCRIBE_METHODS:
        return UNSUBSCRIBE_PATH, None
    prefix = f"/{API_VERSION}/"
    if path.startswith(prefix) and len(path) > len(prefix):
        return f"/{API_VERSION}/{{proxy+}}", {"proxy": path[len(prefix) :]}
    return None


def proxy_event(
    method: str,
    raw_path: str,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    stage: str,
    source_ip: str = "127.0.0.1",
    request_id: str | None = None,
) -> dict[str, Any] | None:
    """The REST API proxy event for one request (None when no resource matches)."""
    split = urlsplit(raw_path)
    path = split.path or "/"
    match = resource_for(method, path)
    if match is None:
        return None
    resource, path_parameters = match
    query = parse_qs(split.query, keep_blank_values=True)
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in headers:
        single[name] = value  # API Gateway keeps the last value of a repeated header
        multi.setdefault(name, []).append(value)
    try:
        text: str | None = body.decode("utf-8") if body else None
        encoded = False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode(), True
    now = time.time()
    request_id = request_id or str(uuid.uuid4())
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": single or None,
        "multiValueHeaders": multi or None,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/{stage}{path}",
            "stage": stage,
            "requestId": request_id,
            "extendedRequestId": request_id,
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000),
            "protocol": "HTTP/1.1",
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "127.0.0.1",
            "identity": {"sourceIp": source_ip, "userAgent": single.get("User-Agent") or single.get("user-agent")},
        },
        "body": text,
        "isBase64Encoded": encoded,
    }


def _response_parts(response: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body from a Lambda proxy response; ValueError when it is not one."""
    if not isinstance(response, dict) or not isinstance(response.get("statusCode"), int):
        raise ValueError("the function did not return a proxy response (statusCode missing)")
    headers: list[tuple[str, str]] = []
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers.extend((name, str(v)) for v in values)
    seen = {name.lower() for name, _ in headers}
    headers.extend((n, str(v)) for n, v in (response.get("headers") or {}).items() if n.lower() not in seen)
    body = response.get("body") or ""
    raw = base64.b64decode(body) if response.get("isBase64Encoded") else str(body).encode()
    return response["statusCode"], headers, raw


class ApiFront(LoopbackHttpService):
    """``with ApiFront(handler, port=8080) as api: ...`` — serves until stopped."""

    thread_name = "api-front"

    def __init__(
        self,
        handler: Handler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        stage: str = "local",
        function_name: str = "ingest",
        timeout_seconds: float = 29.0,
        access_log: Callable[[str], None] | None = None,
    ) -> None:
        self.handler = handler
        self.stage = stage
        self.function_name = function_name
        self.timeout_seconds = timeout_seconds
        self.access_log = access_log
        self._invoke_lock = threading.Lock()  # one execution environment: one invocation at a time
        front = self

        class _Request(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are separate writes (see moto_process)
            server_version = "MassMailerLocalApi/1.0"

            def _handle(self) -> None:
                front._serve(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                return None

        self._listen(_Request, port, host)

    def invoke(self, event: dict[str, Any]) -> Any:
        context = LambdaContext(function_name=self.function_name, timeout_seconds=self.timeout_seconds)
        with self._invoke_lock:
            return self.handler(event, context)

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        started = time.monotonic()
        length = int(request.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._reply(request, 413, [], json.dumps({"message": "Request Too Long"}).encode())
            return
        body = request.rfile.read(length) if length else b""
        event = proxy_event(
            request.command,
            request.path,
            list(request.headers.items()),
            body,
            stage=self.stage,
            source_ip=request.client_address[0],
        )
        if event is None:
            status, headers, raw = 403, [], json.dumps({"message": "Missing Authentication Token"}).encode()
        else:
            try:
                status, headers, raw = _response_parts(self.invoke(event))
            except Exception:
                logger.exception("ingest invocation failed")
                status, headers, raw = 502, [], json.dumps({"message": "Internal server error"}).encode()
        self._reply(request, status, headers, raw)
        if self.access_log:
            elapsed = (time.monotonic() - started) * 1000
            self.access_log(f"{request.command} {request.path} {status} {elapsed:.0f} ms")

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, headers: list[tuple[str, str]], raw: bytes) -> None:
        request.send_response(status)
        names = {name.lower() for name, _ in headers}
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                request.send_header(name, value)
        if "content-type" not in names:
            request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(raw)))
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(raw)

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.2)
