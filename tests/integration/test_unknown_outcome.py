"""Unknown outcome ("maybe sent"): an SES call whose answer is lost after the request went out, and an
SMTP session cut after the message content was written, never send the email twice — counted at the
SES endpoint (a real HTTP server on loopback) and at the relay (a real SMTP server)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from botocore.config import Config

from local.smtp_relay import free_port
from massmailer import wiring
from massmailer.lifecycle import Action, Actor, move
from massmailer.models import BatchMessage, BatchRecipient, CampaignStatus, Content, Lane
from massmailer.notifications import process_notification
from massmailer.providers.chain import ProviderChain
from massmailer.providers.ses import SesProvider
from massmailer.providers.smtp import SmtpConfig, SmtpProvider
from massmailer.sending import RetryPolicy, SenderContext, send_batch
from massmailer.store import InMemoryStores, Stores
from tests.support import make_campaign, sender_context

CAMPAIGN = "cmp-u"


class SesSink:
    """SES v2's endpoint, counting every SendEmail request that reaches it. ``mode``: ``ok`` answers;
    ``silent`` reads the request and never answers (a read timeout); ``reset`` reads it and closes."""

    def __init__(self) -> None:
        self.requests = 0
        self.mode = "ok"
        self.release = threading.Event()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                sink.requests += 1
                if sink.mode == "silent":
                    sink.release.wait()
                    return
                if sink.mode == "reset":
                    self.close_connection = True
                    self.connection.close()
                    return
                body = json.dumps({"MessageId": f"ses-{sink.requests}"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def sink() -> Iterator[SesSink]:
    s = SesSink()
    s.thread.start()
    yield s
    s.release.set()
    s.server.shutdown()
    s.server.server_close()


class Relay:
    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.cut_after_content = False

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:  # noqa: N802
        self.received.append(envelope.original_content)
        if self.cut_after_content:  # the relay has the message; the client never hears so
            server.transport.abort()
        return "250 OK"


def _relay() -> tuple[Relay, Controller]:
    handler = Relay()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    return handler, controller


@pytest.fixture
def relays() -> Iterator[list[tuple[Relay, Controller]]]:
    started = [_relay(), _relay()]
    yield started
    for _, controller in started:
        controller.stop()


def _smtp(controller: Controller, name: str) -> SmtpProvider:
    provider = SmtpProvider(SmtpConfig(host="127.0.0.1", port=controller.port, timeout=60))
    provider.name = name
    return provider


def _ses(sink: SesSink) -> SesProvider:
    # The production client config (retries off), with a short read timeout for the test.
    config = wiring.SES_CONFIG.merge(Config(read_timeout=1, connect_timeout=2))
    client = boto3.client(
        "sesv2",
        region_name="us-east-1",
        endpoint_url=sink.url,
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=config,
    )
    return SesProvider(client)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _ctx(chain: ProviderChain, clock: Clock) -> tuple[SenderContext, InMemoryStores]:
    store = Stores.in_memory(clock=clock)
    store.campaigns.put_campaign(make_campaign(CAMPAIGN, content=Content(subject="Hi", text="Hello")))
    ctx = sender_context(
        store,
        chain,
        policy=RetryPolicy(max_attempts=4),
        concurrency=1,
        clock=clock,
    )
    return ctx, store


def _batch() -> BatchMessage:
    return BatchMessage(
        kind="campaign",
        campaign_id=CAMPAIGN,
        lane=Lane.LOW,
        recipients=[BatchRecipient(message_id="m0", email="u0@example.com")],
    )


def _requeued(ctx: SenderContext) -> list[tuple[BatchMessage, int]]:
    return [(BatchMessage.model_validate_json(body), delay) for body, delay in ctx.queue.sent.get("low", [])]  # type: ignore[attr-defined]


def _send_event(message_id: str) -> dict[str, Any]:
    return {
        "eventType": "Send",
        "mail": {
            "timestamp": "2027-01-15T08:00:00.000Z",
            "messageId": "0100-ses-lost-answer",
            "source": "noreply@example.com",
            "destination": ["u0@example.com"],
            "tags": {"message_id": [message_id], "campaign_id": [CAMPAIGN]},
        },
        "send": {},
    }


def _lost_ses_answer(
    sink: SesSink, relays: list[tuple[Relay, Controller]], mode: str
) -> tuple[SenderContext, InMemoryStores, Clock, BatchMessage]:
    """SES takes the request and its answer is lost: the record is maybe sent, a check waits."""
    sink.mode = mode
    clock = Clock()
    ctx, store = _ctx(ProviderChain([_ses(sink), _smtp(relays[0][1], "smtp")]), clock)
    report = send_batch(ctx, _batch(), delivery="d1")
    assert sink.requests == 1  # botocore did not resend it
    assert relays[0][0].received == []  # not failed over to the relay
    assert report.outcomes == {"maybe_sent": 1}
    record = store.messages.get_message("m0")
    assert record is not None and record["status"] == "SENDING" and record["maybe_sent"] is True
    assert store.campaigns.get_campaign(CAMPAIGN).counts.maybe_sent == 1  # type: ignore[union-attr]
    [(check, delay)] = _requeued(ctx)
    assert delay == 900 and check.recipients[0].maybe_sent
    ctx.queue.sent.clear()  # type: ignore[attr-defined]
    return ctx, store, clock, check


@pytest.mark.parametrize("mode", ["silent", "reset"])
def test_an_ses_answer_lost_waits_for_the_send_event_and_is_never_sent_twice(
    sink: SesSink, relays: list[tuple[Relay, Controller]], mode: str
) -> None:
    ctx, store, clock, check = _lost_ses_answer(sink, relays, mode)
    # A duplicate of the batch arrives inside the window: the record's lease holds, nothing is sent.
    again = send_batch(ctx, _batch(), delivery="d1-duplicate")
    assert again.outcomes == {"busy": 1} and sink.requests == 1
    ctx.queue.sent.clear()  # type: ignore[attr-defined]
    # SES's Send event arrives: the record is SENT.
    process_notification(store, _send_event("m0"))
    assert store.messages.get_message("m0")["status"] == "SENT"  # type: ignore[index]
    # The check at the end of the window finds it settled: counted once, sent once.
    clock.now += 901
    sink.mode = "ok"
    report = send_batch(ctx, check, delivery="d2")
    assert report.outcomes == {"sent": 1}
    assert sink.requests == 1 and relays[0][0].received == []
    assert store.campaigns.get_campaign(CAMPAIGN).counts.sent == 1  # type: ignore[union-attr]
    assert _requeued(ctx) == []


@pytest.mark.parametrize("final", [CampaignStatus.CANCELLED, CampaignStatus.FAILED])
def test_a_check_for_a_cancelled_or_failed_campaign_counts_the_send_its_event_settled(
    sink: SesSink, relays: list[tuple[Relay, Controller]], final: CampaignStatus
) -> None:
    ctx, store, clock, check = _lost_ses_answer(sink, relays, "silent")
    store.campaigns.add_campaign_counts(CAMPAIGN, {"total": 1})  # the split's count
    process_notification(store, _send_event("m0"))  # SES's Send event: the record is SENT
    action = Action.CANCEL if final == CampaignStatus.CANCELLED else Action.FAIL
    store.campaigns.transition(CAMPAIGN, move(action, Actor.OPERATOR if action == Action.CANCEL else Actor.SENDER))
    clock.now += 901
    report = send_batch(ctx, check, delivery="d2")
    assert report.outcomes == {"sent": 1}
    assert sink.requests == 1 and relays[0][0].received == []
    assert store.messages.get_message("m0")["status"] == "SENT"  # type: ignore[index]
    counts = store.campaigns.get_campaign(CAMPAIGN).counts  # type: ignore[union-attr]
    assert (counts.sent, counts.cancelled, counts.failed, counts.queued) == (1, 0, 0, 0)
    assert _requeued(ctx) == []


def test_an_ses_answer_lost_with_no_event_in_the_window_is_sent_again_after_it_once(
    sink: SesSink, relays: list[tuple[Relay, Controller]]
) -> None:
    ctx, store, clock, check = _lost_ses_answer(sink, relays, "silent")
    sink.mode = "ok"
    clock.now += 901
    report = send_batch(ctx, check, delivery="d2")
    assert report.outcomes == {"sent": 1}
    assert sink.requests == 2  # once more, only after the window
    assert store.messages.get_message("m0")["status"] == "SENT"  # type: ignore[index]
    assert store.campaigns.get_campaign(CAMPAIGN).counts.sent == 1  # type: ignore[union-attr]
    send_batch(ctx, check, delivery="d2", redelivered=True)  # the check delivered twice
    assert sink.requests == 2


def test_an_smtp_session_cut_after_the_content_is_recorded_sent_unconfirmed_and_never_resent(
    relays: list[tuple[Relay, Controller]],
) -> None:
    (cut, cut_controller), (other, other_controller) = relays
    cut.cut_after_content = True
    clock = Clock()
    ctx, store = _ctx(ProviderChain([_smtp(cut_controller, "relay-a"), _smtp(other_controller, "relay-b")]), clock)
    report = send_batch(ctx, _batch(), delivery="d1")
    assert report.outcomes == {"sent_unconfirmed": 1}
    assert len(cut.received) == 1 and other.received == []  # neither resent nor failed over
    record = store.messages.get_message("m0")
    assert record is not None and record["status"] == "SENT" and record["maybe_sent"] is True
    counts = store.campaigns.get_campaign(CAMPAIGN).counts  # type: ignore[union-attr]
    assert (counts.sent, counts.maybe_sent, counts.queued) == (1, 1, 0)
    assert _requeued(ctx) == []
    clock.now += 3600
    send_batch(ctx, _batch(), delivery="d9")  # a duplicate delivery later on
    assert len(cut.received) == 1 and other.received == []


def test_the_ses_client_is_built_with_botocore_retries_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    wiring.reset()
    try:
        client = wiring.ses_client()
        assert client.meta.config.retries["total_max_attempts"] == 1
        assert client.meta.service_model.service_name == "sesv2"
    finally:
        wiring.reset()
