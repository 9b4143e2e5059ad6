"""The reply table (``providers.replies``) against real SMTP servers (aiosmtpd) answering each code at
each stage, and through the sender: only 5.1.x at RCPT suppresses; refusals fail over and end FAILED
when every provider refuses; the README renders the same table."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from botocore.stub import Stubber

from local.smtp_relay import free_port
from massmailer.errors import SendError
from massmailer.mime import OutgoingEmail, build_message
from massmailer.models import BatchMessage, BatchRecipient, Content, Lane
from massmailer.providers.chain import ProviderChain
from massmailer.providers.replies import SMTP_RULES, Stage, markdown, smtp_rule
from massmailer.providers.ses import SesProvider
from massmailer.providers.smtp import SmtpConfig, SmtpProvider
from massmailer.resilience import BreakerPolicy, CircuitBreaker
from massmailer.sending import RetryPolicy, SenderContext, send_batch
from massmailer.store import InMemoryStores, Stores
from tests.support import make_campaign, sender_context


class Relay:
    """An aiosmtpd handler answering ``replies[stage]`` at that stage (else the usual success)."""

    def __init__(self) -> None:
        self.replies: dict[Stage, str] = {}
        self.received: list[bytes] = []
        self.mails = 0  # MAIL commands seen

    async def handle_EHLO(  # noqa: N802
        self, server: SMTP, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return [self.replies[Stage.EHLO]] if Stage.EHLO in self.replies else responses

    async def handle_AUTH(self, server: SMTP, session: Any, envelope: Any, *args: str) -> str:  # noqa: N802
        if Stage.AUTH in self.replies:
            return self.replies[Stage.AUTH]
        session.authenticated = True
        return "235 2.7.0 Authentication successful"

    async def handle_MAIL(  # noqa: N802
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        self.mails += 1
        if Stage.MAIL in self.replies:
            return self.replies[Stage.MAIL]
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(  # noqa: N802
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if Stage.RCPT in self.replies:
            return self.replies[Stage.RCPT]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:  # noqa: N802
        reply = self.replies.get(Stage.AFTER_DATA, "250 OK")
        if reply.startswith("250"):
            self.received.append(envelope.original_content)
        return reply


class StagedSMTP(SMTP):
    """aiosmtpd, plus a chosen greeting (connect stage) and a chosen reply to the DATA command."""

    relay: Relay

    def __init__(self, handler: Relay, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.relay = handler
        self._greeted = False

    async def push(self, status: str) -> None:
        if not self._greeted and status.startswith("220 "):
            self._greeted = True
            status = self.relay.replies.get(Stage.CONNECT, status)
        await super().push(status)

    async def smtp_DATA(self, arg: str) -> None:  # noqa: N802
        if Stage.DATA in self.relay.replies:
            await self.push(self.relay.replies[Stage.DATA])
            return
        await super().smtp_DATA(arg)


class StagedController(Controller):
    def factory(self) -> SMTP:
        return StagedSMTP(self.handler, auth_require_tls=False, **self.SMTP_kwargs)


@pytest.fixture
def relay() -> Iterator[tuple[Relay, Controller]]:
    handler = Relay()
    controller = StagedController(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller
    controller.stop()


def _email(to: str = "jane@example.com", message_id: str = "m1") -> OutgoingEmail:
    raw = build_message(message_id=message_id, from_address="news@example.com", to=to, subject="s", html=None, text="b")
    return OutgoingEmail(message_id=message_id, sender="news@example.com", recipient=to, raw=raw)


def _smtp(controller: Controller, name: str = "smtp", auth: bool = False) -> SmtpProvider:
    config = SmtpConfig(
        host="127.0.0.1",
        port=controller.port,
        timeout=60,
        username="u" if auth else None,
        password="p" if auth else None,
    )
    provider = SmtpProvider(config)
    provider.name = name
    for session in provider._sessions:
        session._provider = name
    return provider


# One real answer per row of the table (at least), at the stage the row is about.
EXAMPLES: list[tuple[int, Stage, str]] = [
    (0, Stage.RCPT, "452 4.2.2 Mailbox full"),
    (0, Stage.AFTER_DATA, "552 5.2.2 Mailbox full"),
    (1, Stage.RCPT, "552 Requested mail action aborted: exceeded storage allocation"),
    (2, Stage.CONNECT, "421 4.3.2 Service not available, closing"),
    (2, Stage.MAIL, "451 4.7.1 Greylisted, try again later"),
    (2, Stage.RCPT, "450 4.2.1 Mailbox busy, try later"),
    (2, Stage.AFTER_DATA, "454 4.7.0 Temporary authentication failure"),
    (3, Stage.RCPT, "452 4.5.3 Too many recipients"),
    (3, Stage.DATA, "452 4.3.1 Insufficient system storage"),
    (4, Stage.CONNECT, "554 5.7.1 No SMTP service here"),
    (4, Stage.EHLO, "550 5.7.1 Go away"),
    (5, Stage.AUTH, "535 5.7.8 Authentication credentials invalid"),
    (5, Stage.AUTH, "534 5.7.9 Authentication mechanism is too weak"),
    (6, Stage.RCPT, "550 5.1.1 <jane@example.com>: Recipient address rejected: User unknown"),
    (6, Stage.RCPT, "553 5.1.3 Bad recipient address syntax"),
    (7, Stage.RCPT, "550 5.7.1 Relay access denied: sender not verified"),
    (7, Stage.AFTER_DATA, "554 5.7.1 Message rejected as spam"),
    (7, Stage.MAIL, "530 5.7.0 Authentication required"),
    (8, Stage.AFTER_DATA, "552 5.3.4 Message size exceeds fixed limit"),
    (9, Stage.MAIL, "555 5.5.4 Unsupported option: SMTPUTF8"),
    (10, Stage.MAIL, "553 5.1.8 Sender address rejected: Domain not found"),
    (10, Stage.MAIL, "550 Sender rejected"),
    (11, Stage.DATA, "554 Transaction failed"),
    (11, Stage.AFTER_DATA, "550 5.1.1 The email account does not exist"),
    (12, Stage.RCPT, "550 Mailbox unavailable"),
    (12, Stage.RCPT, "551 5.4.1 No route to destination"),
    (13, Stage.DATA, "250 OK but no data please"),
]


def test_every_row_of_the_table_has_a_real_server_example() -> None:
    assert sorted({row for row, _, _ in EXAMPLES}) == list(range(len(SMTP_RULES)))
    for row, stage, reply in EXAMPLES:
        assert smtp_rule(stage, int(reply[:3]), reply[4:]) is SMTP_RULES[row], (row, stage, reply)


@pytest.mark.parametrize(("row", "stage", "reply"), EXAMPLES, ids=[f"{r}-{s.value}-{t[:3]}" for r, s, t in EXAMPLES])
def test_a_real_server_answering_that_code_at_that_stage_raises_the_rows_class(
    relay: tuple[Relay, Controller], row: int, stage: Stage, reply: str
) -> None:
    handler, controller = relay
    handler.replies[stage] = reply
    provider = _smtp(controller, auth=stage == Stage.AUTH)
    with pytest.raises(SendError) as raised:
        provider.send(_email())
    provider.close()
    assert type(raised.value) is SMTP_RULES[row].error
    assert raised.value.stage == stage.value
    assert reply[:3] in str(raised.value)
    assert handler.received == []


def test_the_readme_shows_the_same_table_as_the_code() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start, end = "<!-- provider-answers:start -->\n", "<!-- provider-answers:end -->"
    assert start in readme and end in readme
    shown = readme.split(start, 1)[1].split(end, 1)[0]
    assert shown.strip() == markdown().strip()


# -- through the sender: what suppresses, what fails over, what fails -------------------------------

CAMPAIGN = "cmp-r"


def _ctx(chain: ProviderChain, store: InMemoryStores | None = None) -> SenderContext:
    store = store or Stores.in_memory()
    store.campaigns.put_campaign(make_campaign(CAMPAIGN, content=Content(subject="Hi", text="Hello")))
    return sender_context(
        store,
        chain,
        policy=RetryPolicy(max_attempts=4),
        concurrency=1,
    )


def _batch(n: int = 1) -> BatchMessage:
    return BatchMessage(
        kind="campaign",
        campaign_id=CAMPAIGN,
        lane=Lane.LOW,
        recipients=[BatchRecipient(message_id=f"m{i}", email=f"u{i}@example.com") for i in range(n)],
    )


@pytest.fixture
def second_relay() -> Iterator[tuple[Relay, Controller]]:
    handler = Relay()
    controller = StagedController(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller
    controller.stop()


@pytest.mark.parametrize(
    ("stage", "reply", "suppressed"),
    [
        (Stage.RCPT, "550 5.1.1 User unknown", True),
        (Stage.RCPT, "550 5.7.1 Relay access denied", False),
        (Stage.RCPT, "550 Mailbox unavailable", False),
        (Stage.MAIL, "553 5.1.8 Sender address rejected", False),
        (Stage.AFTER_DATA, "550 5.1.1 user unknown", False),
        (Stage.AFTER_DATA, "552 5.3.4 Message too big", False),
        (Stage.DATA, "554 Transaction failed", False),
    ],
)
def test_only_5_1_x_at_rcpt_suppresses_and_every_refusal_ends_failed_with_its_reason(
    relay: tuple[Relay, Controller], stage: Stage, reply: str, suppressed: bool
) -> None:
    handler, controller = relay
    handler.replies[stage] = reply
    ctx = _ctx(ProviderChain([_smtp(controller)]))
    report = send_batch(ctx, _batch(1))
    record = ctx.messages.get_message("m0")
    assert record is not None and record["status"] == "FAILED"
    assert reply[:3] in record["last_error"] and stage.value in record["last_error"]
    assert report.outcomes == {"failed": 1}
    assert ctx.suppressions.is_suppressed("u0@example.com") is suppressed
    assert ctx.queue.sent.get("low", []) == []  # type: ignore[attr-defined]  # failed at once, not retried


def test_a_policy_refusal_fails_over_to_the_next_provider_which_sends(
    relay: tuple[Relay, Controller], second_relay: tuple[Relay, Controller]
) -> None:
    refusing, controller = relay
    refusing.replies[Stage.RCPT] = "550 5.7.1 Sender not verified for relaying"
    accepting, controller2 = second_relay
    ctx = _ctx(ProviderChain([_smtp(controller, "relay-a"), _smtp(controller2, "relay-b")]))
    report = send_batch(ctx, _batch(3))
    assert report.outcomes == {"sent": 3} and report.fallbacks == 3
    assert len(accepting.received) == 3 and refusing.received == []
    assert not any(ctx.suppressions.is_suppressed(f"u{i}@example.com") for i in range(3))


def test_when_every_provider_refuses_the_recipient_fails_with_every_reason(
    relay: tuple[Relay, Controller], second_relay: tuple[Relay, Controller]
) -> None:
    relay[0].replies[Stage.MAIL] = "550 5.7.1 Sender not allowed"
    second_relay[0].replies[Stage.AFTER_DATA] = "554 5.7.1 Content rejected"
    ctx = _ctx(ProviderChain([_smtp(relay[1], "relay-a"), _smtp(second_relay[1], "relay-b")]))
    send_batch(ctx, _batch(1))
    record = ctx.messages.get_message("m0")
    assert record is not None and record["status"] == "FAILED"
    assert "relay-a" in record["last_error"] and "relay-b" in record["last_error"]
    assert not ctx.suppressions.is_suppressed("u0@example.com")


def test_a_relay_that_refuses_everything_trips_its_breaker_and_the_next_provider_carries_the_mail(
    relay: tuple[Relay, Controller], second_relay: tuple[Relay, Controller]
) -> None:
    refusing, controller = relay
    refusing.replies[Stage.MAIL] = "550 5.7.1 Sender domain not verified"
    accepting, controller2 = second_relay
    store = Stores.in_memory()
    policy = BreakerPolicy(failure_threshold=3, window_seconds=3600, cooldown_seconds=3600, refresh_seconds=0)
    breaker = CircuitBreaker(store.shared_state, policy)
    chain = ProviderChain([_smtp(controller, "relay-a"), _smtp(controller2, "relay-b")], breaker=breaker)
    ctx = _ctx(chain, store)
    send_batch(ctx, _batch(10))
    assert len(accepting.received) == 10
    # Three refusals open its breaker; the fourth email was already on its way (the sender hands the next
    # email to a pipelining provider before awaiting this one's answer); from then on it is skipped.
    assert refusing.mails == 4
    assert not breaker.allow("relay-a")
    assert not ctx.suppressions.is_suppressed("u0@example.com")


def test_ses_message_rejected_is_not_a_bounce_the_relay_carries_the_mail(
    relay: tuple[Relay, Controller],
) -> None:
    accepting, controller = relay
    ses = boto3.client("sesv2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(ses) as stub:
        stub.add_client_error(
            "send_email", service_error_code="MessageRejected", service_message="Illegal address", http_status_code=400
        )
        ctx = _ctx(ProviderChain([SesProvider(ses), _smtp(controller)]))
        report = send_batch(ctx, _batch(1))
    assert report.outcomes == {"sent": 1} and len(accepting.received) == 1
    assert not ctx.suppressions.is_suppressed("u0@example.com")


def test_a_reply_echoing_the_address_is_logged_masked(
    relay: tuple[Relay, Controller], caplog: pytest.LogCaptureFixture
) -> None:
    handler, controller = relay
    handler.replies[Stage.RCPT] = "550 5.1.1 <u0@example.com>: Recipient address rejected: User unknown"
    ctx = _ctx(ProviderChain([_smtp(controller)]))
    with caplog.at_level(logging.WARNING, logger="massmailer.sending"):
        send_batch(ctx, _batch(1))
    logged = [r for r in caplog.records if r.getMessage() == "send failed"]
    assert logged and all("u0@example.com" not in str(r.__dict__) for r in logged)
    assert "u***@example.com" in logged[0].error  # type: ignore[attr-defined]
