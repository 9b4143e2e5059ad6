"""The local SES endpoint: moto's SES v2 plus what moto lacks — the mailbox simulator, event
publishing, and faults on demand.

The runtime gives the functions ``AWS_ENDPOINT_URL_SESV2`` (botocore's per-service endpoint setting)
pointing here, so the sender's ``SesProvider`` is unchanged: it calls SES v2 as in AWS. This proxy

* forwards every SES v2 request to moto, unchanged;
* answers ``GetAccount`` itself (moto has none): a production account whose ``MaxSendRate`` is
  200/s, or the ``rate`` fault when one is set;
* for ``SendEmail`` (``POST /v2/email/outbound-emails``), applies the fault switches first —
  ``down`` → ``503 ServiceUnavailable``, ``throttle`` → ``400 ThrottlingException``, ``paused`` →
  ``400 SendingPausedException``, ``quota`` → ``400 LimitExceededException`` "Daily message quota
  exceeded." while ``GetAccount`` reports the 24-hour quota used up (rest-json errors:
  ``x-amzn-ErrorType`` header and a ``message``),
  ``rate`` → the same throttling error above N sends per second, ``delay_ms`` → a slow answer;
* after moto accepted a message, publishes the events SES would publish for it (Send, Delivery,
  Bounce, Complaint — see ``local.ses_events.simulate``) to the SNS topic of the request's
  configuration set event destination, a fraction of a second later, as SES does. moto delivers them
  to the subscribed bounce queue, and the bounce function's event source takes it from there.

Control routes on the same port (the runtime's "fault switches"):

* ``GET /_local/faults`` — the current switches;
* ``POST /_local/faults`` with JSON ``{"mode": "down"|"throttle"|"paused"|"quota"|"ok", "delay_ms": 0,
  "rate": null}`` (or the same as query parameters) — change them; ``DELETE`` resets;
* ``GET /_local/ses/stats`` — accepted, refused by a fault, events published.
"""

from __future__ import annotations

import base64
import heapq
import http.client
import itertools
import json
import logging
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from local.http_service import LoopbackHttpService
from local.ses_events import AcceptedEmail, simulate

logger = logging.getLogger(__name__)

SEND_EMAIL_PATH = "/v2/email/outbound-emails"
ACCOUNT_PATH = "/v2/email/account"
ACCOUNT_MAX_SEND_RATE = 200.0  # the local account is a production account with this quota
ACCOUNT_MAX_24H_SEND = 1_000_000.0
MODES = ("ok", "down", "throttle", "paused", "quota")
_ERRORS = {
    "down": (503, "ServiceUnavailable", "Service Unavailable"),
    "throttle": (400, "ThrottlingException", "Maximum sending rate exceeded."),
    "paused": (400, "SendingPausedException", "Email sending is disabled for your entire Amazon SES account."),
    "quota": (400, "LimitExceededException", "Daily message quota exceeded."),
}
SNS_SUBJECT = "Amazon SES Email Event Notification"
# (method, path, query, body) -> (status, JSON payload), or None to fall through to the built-in routes.
ControlHook = Callable[[str, str, dict[str, str], bytes], "tuple[int, dict[str, Any]] | None"]


@dataclass
class SesFaults:
    """The fault switches of the primary provider."""

    mode: str = "ok"  # ok | down | throttle | paused | quota
    delay_ms: int = 0  # added to every SendEmail
    rate: float | None = None  # sends per second SES accepts; more are throttled (token bucket)

    def validate(self) -> SesFaults:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        if self.delay_ms < 0 or self.delay_ms > 60_000:
            raise ValueError("delay_ms must be within 0..60000")
        if self.rate is not None and self.rate <= 0:
            raise ValueError("rate must be positive (or null for no limit)")
        return self

    @classmethod
    def parse(cls, values: dict[str, Any], base: SesFaults | None = None) -> SesFaults:
        current = asdict(base or cls())
        for key in ("mode", "delay_ms", "rate"):
            if key in values:
                current[key] = values[key]
        rate = current["rate"]
        rate = None if rate in (None, "", "null", "none", 0, "0") else float(rate)
        return cls(mode=str(current["mode"]), delay_ms=int(current["delay_ms"] or 0), rate=rate).validate()


class _TokenBucket:
    def __init__(self) -> None:
        self._tokens = 0.0
        self._at = time.monotonic()
        self._rate: float | None = None

    def take(self, rate: float | None) -> bool:
        if rate is None:
            return True
        now = time.monotonic()
        if rate != self._rate:
            self._rate, self._tokens, self._at = rate, rate, now
        self._tokens = min(rate, self._tokens + (now - self._at) * rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


@dataclass(order=True)
class _Pending:
    due: float
    seq: int
    topic_arn: str = field(compare=False)
    message: str = field(compare=False)
    tries: int = field(default=0, compare=False)


class EventPublisher:
    """Publishes SES events to SNS when they are due, up to 10 per ``PublishBatch``."""

    def __init__(self, sns: Any) -> None:
        self._sns = sns
        self._heap: list[_Pending] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stop = False
        self.published: Counter[str] = Counter()
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name="ses-event-publisher", daemon=True)

    def start(self) -> EventPublisher:
        self._thread.start()
        return self

    def schedule(self, topic_arn: str, message: str, after: float, kind: str) -> None:
        with self._cond:
            heapq.heappush(self._heap, _Pending(time.monotonic() + after, next(self._seq), topic_arn, message))
            self.published[f"scheduled:{kind}"] += 1
            self._cond.notify()

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def _due(self) -> list[_Pending]:
        with self._cond:
            while not self._stop:
                now = time.monotonic()
                if self._heap and self._heap[0].due <= now:
                    due = []
                    while self._heap and self._heap[0].due <= now and len(due) < 50:
                        due.append(heapq.heappop(self._heap))
                    return due
                self._cond.wait(timeout=(self._heap[0].due - now) if self._heap else 0.5)
            return []

    def _run(self) -> None:
        while True:
            due = self._due()
            if not due:
                return
            by_topic: dict[str, list[_Pending]] = {}
            for item in due:
                by_topic.setdefault(item.topic_arn, []).append(item)
            for topic, items in by_topic.items():
                for start in range(0, len(items), 10):
                    self._publish(topic, items[start : start + 10])

    def _publish(self, topic: str, items: list[_Pending]) -> None:
        try:
            result = self._sns.publish_batch(
                TopicArn=topic,
                PublishBatchRequestEntries=[
                    {"Id": str(i), "Message": item.message, "Subject": SNS_SUBJECT} for i, item in enumerate(items)
                ],
            )
            failed = {f["Id"] for f in result.get("Failed", [])}
        except Exception:
            logger.exception("publishing SES events failed; will retry")
            failed = {str(i) for i in range(len(items))}
        for i, item in enumerate(items):
            if str(i) in failed:
                self.errors += 1
                if item.tries < 5:
                    with self._cond:
                        item.tries += 1
                        item.due = time.monotonic() + 0.5 * item.tries
                        heapq.heappush(self._heap, item)
            else:
                self.published["published"] += 1

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=5)


class _MotoConnections:
    """One keep-alive HTTP connection to moto per proxy thread."""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._local = threading.local()

    def request(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, list, bytes]:
        for attempt in (1, 2):
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=30)
                self._local.conn = conn
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                return response.status, response.getheaders(), data
            except (OSError, http.client.HTTPException):
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


class SesEndpoint(LoopbackHttpService):
    """``with SesEndpoint(moto_url, sns_client, destinations) as ses: ...`` on 127.0.0.1:<free port>."""

    thread_name = "ses-endpoint"

    def __init__(
        self,
        moto_url: str,
        sns: Any,
        event_destinations: dict[str, dict[str, Any]],
        *,
        region: str = "us-east-1",
        event_delay_scale: float = 1.0,
        faults: SesFaults | None = None,
        port: int = 0,
        control: ControlHook | None = None,
    ) -> None:
        target = urlsplit(moto_url)
        self._moto = _MotoConnections(target.hostname or "127.0.0.1", target.port or 80)
        self._moto_netloc = target.netloc
        self.destinations = event_destinations
        self.region = region
        self.event_delay_scale = event_delay_scale
        self.faults = (faults or SesFaults()).validate()
        self._bucket = _TokenBucket()
        self._lock = threading.Lock()
        self.stats: Counter[str] = Counter()
        # Message id, recipients and tags of each accepted email (the last 50,000; moto keeps them all).
        self.accepted: deque[dict[str, Any]] = deque(maxlen=50_000)
        self.publisher = EventPublisher(sns)
        self.control = control  # answers /_local/... first (the runtime's status and fault routes)
        endpoint = self

        class _Request(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are separate writes (see moto_process)
            server_version = "MassMailerLocalSes/1.0"

            def _handle(self) -> None:
                endpoint._serve(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                return None

        self._listen(_Request, port)

    # -- control --------------------------------------------------------------------------------
    def set_faults(self, **values: Any) -> SesFaults:
        with self._lock:
            self.faults = SesFaults.parse(values, self.faults)
            logger.warning("SES faults now %s", asdict(self.faults))
            return self.faults

    def reset_faults(self) -> SesFaults:
        with self._lock:
            self.faults = SesFaults()
            return self.faults

    def account(self) -> dict[str, Any]:
        """SES v2 ``GetAccount``: a production account; a ``rate`` fault lowers its MaxSendRate."""
        with self._lock:
            rate = self.faults.rate or ACCOUNT_MAX_SEND_RATE
            sent = self.stats["accepted"]
            paused = self.faults.mode == "paused"
            used_up = self.faults.mode == "quota"
        return {
            "DedicatedIpAutoWarmupEnabled": False,
            "EnforcementStatus": "HEALTHY",
            "ProductionAccessEnabled": True,
            "SendingEnabled": not paused,
            "SendQuota": {
                "Max24HourSend": ACCOUNT_MAX_24H_SEND,
                "MaxSendRate": rate,
                "SentLast24Hours": ACCOUNT_MAX_24H_SEND if used_up else float(sent),
            },
            "SuppressionAttributes": {"SuppressedReasons": ["BOUNCE", "COMPLAINT"]},
        }

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "faults": asdict(self.faults),
                "stats": dict(self.stats),
                "events": dict(self.publisher.published),
                "events_pending": self.publisher.pending,
                "event_errors": self.publisher.errors,
            }

    # -- serving --------------------------------------------------------------------------------
    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        path = urlsplit(request.path).path
        if path.startswith("/_local/"):
            self._control(request, path, body)
            return
        if request.command == "POST" and path == SEND_EMAIL_PATH:
            self._send_email(request, body)
            return
        if request.command == "GET" and path == ACCOUNT_PATH:
            self._reply(request, 200, self.account())  # moto has no GetAccount
            return
        self._forward(request, body)

    def _forward(self, request: BaseHTTPRequestHandler, body: bytes) -> tuple[int, bytes]:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "connection")}
        headers["Host"] = self._moto_netloc
        try:
            status, response_headers, data = self._moto.request(request.command, request.path, body, headers)
        except (OSError, http.client.HTTPException) as exc:
            self._reply(request, 502, {"message": f"moto unreachable: {exc}"})
            return 502, b""
        request.send_response(status)
        for name, value in response_headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding", "server", "date"):
                request.send_header(name, value)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)
        return status, data

    def _refusal(self) -> tuple[int, str, str] | None:
        with self._lock:
            faults = self.faults
            if faults.mode in _ERRORS:
                return _ERRORS[faults.mode]
            if not self._bucket.take(faults.rate):
                return _ERRORS["throttle"]
        return None

    def _send_email(self, request: BaseHTTPRequestHandler, body: bytes) -> None:
        delay = self.faults.delay_ms
        if delay:
            time.sleep(delay / 1000)
        refusal = self._refusal()
        if refusal is not None:
            status, code, message = refusal
            with self._lock:
                self.stats[f"refused:{code}"] += 1
            self._reply(request, status, {"message": message}, error_type=code)
            return
        status, data = self._forward(request, body)
        if status != 200:
            with self._lock:
                self.stats[f"moto:{status}"] += 1
            return
        try:
            self._accepted(json.loads(body or b"{}"), json.loads(data)["MessageId"])
        except Exception:  # the send stands; only its events are lost
            logger.exception("could not simulate SES events")

    def _accepted(self, send_request: dict[str, Any], message_id: str) -> None:
        raw = None
        content = send_request.get("Content") or {}
        if "Raw" in content:
            raw = base64.b64decode(content["Raw"].get("Data") or b"")
        email = AcceptedEmail.from_send_email(send_request, message_id, raw, region=self.region)
        with self._lock:
            self.stats["accepted"] += 1
            self.accepted.append({"id": message_id, "destinations": email.destinations, "tags": email.tags})
        destination = self.destinations.get(email.configuration_set or "")
        if not destination:
            return  # no configuration set, or one without an event destination: SES publishes nothing
        matching = {t.upper() for t in destination.get("event_types", [])}
        for event in simulate(email, self.event_delay_scale):
            if event.kind in matching:
                self.publisher.schedule(destination["topic_arn"], event.message(), event.after_seconds, event.kind)

    def _control(self, request: BaseHTTPRequestHandler, path: str, body: bytes) -> None:
        try:
            query = {k: v[-1] for k, v in parse_qs(urlsplit(request.path).query).items()}
            if self.control is not None:
                answer = self.control(request.command, path, query, body)
                if answer is not None:
                    self._reply(request, *answer)
                    return
            if path == "/_local/faults":
                if request.command == "GET":
                    self._reply(request, 200, asdict(self.faults))
                    return
                if request.command == "DELETE":
                    self._reply(request, 200, asdict(self.reset_faults()))
                    return
                if request.command in ("POST", "PUT"):
                    values: dict[str, Any] = dict(query)
                    if body.strip():
                        values.update(json.loads(body))
                    self._reply(request, 200, asdict(self.set_faults(**values)))
                    return
            if path == "/_local/ses/stats" and request.command == "GET":
                self._reply(request, 200, self.snapshot())
                return
            self._reply(request, 404, {"message": f"no route {request.command} {path}"})
        except (ValueError, TypeError) as exc:
            self._reply(request, 400, {"message": str(exc)})
        except Exception as exc:  # a control route must answer, whatever went wrong behind it
            logger.exception("control route %s failed", path)
            self._reply(request, 500, {"message": f"{type(exc).__name__}: {exc}"})

    @staticmethod
    def _reply(
        request: BaseHTTPRequestHandler, status: int, payload: dict[str, Any], error_type: str | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if error_type:
            request.send_header("x-amzn-ErrorType", error_type)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> SesEndpoint:
        self.publisher.start()
        return super().start()

    def stop(self) -> None:
        super().stop()
        self.publisher.stop()
