"""The SMTP adapter against a real SMTP server on loopback: replies mapped to the taxonomy, reuse, reconnects."""

from __future__ import annotations

import email
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from local.smtp_relay import free_port
from massmailer.errors import HardBounce, ProviderDown, Refused, SoftBounce, Throttled, UnknownOutcome
from massmailer.mime import OutgoingEmail, build_message
from massmailer.providers.smtp import SmtpConfig, SmtpProvider, _Disconnected, _Slot

REPLIES = {
    "bad@example.com": "550 5.1.1 <bad@example.com>: Recipient address rejected: User unknown",
    "full@example.com": "452 4.2.2 Mailbox full",
    "slow@example.com": "451 4.7.1 Greylisted, try again later",
    "later@example.com": "421 4.7.0 Too many connections, closing",
}


class Handler:
    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.sessions = 0
        self.data_reply = "250 OK"
        self.pipelining = False  # aiosmtpd reads pipelined commands in order but does not advertise it

    async def handle_EHLO(
        self, server: SMTP, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:  # noqa: N802
        self.sessions += 1
        session.host_name = hostname
        if self.pipelining:
            return [*responses[:-1], "250-PIPELINING", responses[-1]]
        return responses

    async def handle_RCPT(self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]) -> str:  # noqa: N802
        if address in REPLIES:
            return REPLIES[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.data_reply.startswith("250"):
            self.received.append(envelope.original_content)
        return self.data_reply


@pytest.fixture
def server() -> Iterator[tuple[Handler, Controller]]:
    handler = Handler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller
    controller.stop()


def _email(to: str, body: str = "hello") -> OutgoingEmail:
    raw = build_message(message_id="m1", from_address="news@example.com", to=to, subject="s", html=None, text=body)
    return OutgoingEmail(message_id="m1", sender="news@example.com", recipient=to, raw=raw)


def _provider(controller: Controller) -> SmtpProvider:
    return SmtpProvider(SmtpConfig(host="127.0.0.1", port=controller.port, timeout=60))


def test_many_messages_go_over_one_reused_session_intact(server: tuple[Handler, Controller]) -> None:
    handler, controller = server
    provider = _provider(controller)
    tricky = "line one\n.starts with a dot\n..two dots\n.\nend"
    for i in range(20):
        receipt = provider.send(_email(f"user{i}@example.com", tricky))
        assert receipt.provider == "smtp"
    provider.close()
    assert handler.sessions == 1
    assert len(handler.received) == 20
    text = email.message_from_bytes(handler.received[0]).get_payload(decode=True).decode().replace("\r\n", "\n")
    assert text.removesuffix("\n") == tricky  # SMTP ends the data with CRLF


@pytest.mark.parametrize(
    ("to", "error"),
    [
        ("bad@example.com", HardBounce),
        ("full@example.com", SoftBounce),
        ("slow@example.com", Throttled),
        ("later@example.com", Throttled),
    ],
)
def test_recipient_replies_map_to_the_taxonomy_and_the_session_survives(
    server: tuple[Handler, Controller], to: str, error: type
) -> None:
    handler, controller = server
    provider = _provider(controller)
    with pytest.raises(error):
        provider.send(_email(to))
    provider.send(_email("ok@example.com"))  # the next send still works (reconnecting after a 421)
    assert len(handler.received) == 1
    provider.close()


def test_a_data_rejection_is_a_refusal_not_a_hard_bounce(server: tuple[Handler, Controller]) -> None:
    handler, controller = server
    handler.data_reply = "554 5.7.1 Message rejected as spam"
    with pytest.raises(Refused):
        _provider(controller).send(_email("ok@example.com"))


def test_a_server_that_is_down_is_provider_down() -> None:
    provider = SmtpProvider(SmtpConfig(host="127.0.0.1", port=free_port(), timeout=2))
    with pytest.raises(ProviderDown):
        provider.send(_email("ok@example.com"))


def test_a_dropped_session_is_reopened_before_the_message_is_written(server: tuple[Handler, Controller]) -> None:
    handler, controller = server
    provider = _provider(controller)
    provider.send(_email("a@example.com"))
    session = provider._sessions[0]  # the server closed it between sends
    session._sock.close()  # type: ignore[union-attr]
    provider.send(_email("b@example.com"))
    assert len(handler.received) == 2 and handler.sessions == 2


def _opened(controller: Controller) -> tuple[SmtpProvider, Any]:
    """A provider and its one session, connected."""
    provider = _provider(controller)
    session = provider._sessions[0]
    session.open()
    return provider, session


def _cut_at_reply(session: Any, n: int) -> None:
    """The connection is reset when the session waits for its ``n``-th reply (later ones are real)."""
    real_reply, calls = session._reply, {"n": 0}

    def reply() -> tuple[int, str]:
        calls["n"] += 1
        if calls["n"] == n:
            session._sock.close()
            raise OSError("connection reset")
        return real_reply()

    session._reply = reply


def test_a_session_lost_after_the_message_was_written_is_an_unknown_outcome_not_resent(
    server: tuple[Handler, Controller],
) -> None:
    handler, controller = server
    provider, session = _opened(controller)
    _cut_at_reply(session, 4)  # MAIL, RCPT, DATA replies read; the final reply never comes
    with pytest.raises(UnknownOutcome, match="after the message content was written"):
        provider.send(_email("a@example.com"))
    assert handler.sessions == 1  # not silently resent on a new session


# -- the conveyor: one session shared by concurrent senders, one write per email --------------------


@pytest.fixture
def pipelining_server(server: tuple[Handler, Controller]) -> tuple[Handler, Controller]:
    server[0].pipelining = True
    return server


def _count_writes(session: Any) -> list[bytes]:
    writes: list[bytes] = []
    real_send = session._send

    def send(data: bytes) -> None:
        writes.append(data)
        real_send(data)

    session._send = send
    return writes


def test_queued_messages_share_writes_each_body_with_the_next_envelope(
    pipelining_server: tuple[Handler, Controller],
) -> None:
    handler, controller = pipelining_server
    provider, session = _opened(controller)
    assert session.pipelining
    writes = _count_writes(session)
    queued = [_Slot(_email(f"q{i}@example.com", f"body {i}")) for i in range(5)]
    session._waiting.extend(queued)  # five senders already waiting on the session

    provider.send(_email("last@example.com", "body last"))  # this caller drives the conveyor for all

    assert all(slot.done and slot.error is None for slot in queued)
    # envelope 1, then body i + envelope i+1 five times, then the last body: 7 writes for 6 emails
    assert len(writes) == 7
    assert writes[1].endswith(b"\r\n.\r\nMAIL FROM:<news@example.com>\r\nRCPT TO:<q1@example.com>\r\nDATA\r\n")
    bodies = [email.message_from_bytes(raw).get_payload() for raw in handler.received]
    assert [b.strip() for b in bodies] == [*(f"body {i}" for i in range(5)), "body last"]
    assert handler.sessions == 1


def test_a_refused_recipient_in_the_conveyor_fails_alone(pipelining_server: tuple[Handler, Controller]) -> None:
    handler, controller = pipelining_server
    provider = _provider(controller)
    session = provider._sessions[0]
    queued = [_Slot(_email(to)) for to in ("a@example.com", "bad@example.com", "b@example.com", "full@example.com")]
    session._waiting.extend(queued)

    provider.send(_email("c@example.com"))

    assert [type(slot.error).__name__ if slot.error else None for slot in queued] == [
        None,
        "HardBounce",
        None,
        "SoftBounce",
    ]
    assert len(handler.received) == 3 and handler.sessions == 1


def test_a_session_cut_mid_conveyor_marks_only_the_written_message_as_possibly_sent(
    pipelining_server: tuple[Handler, Controller],
) -> None:
    handler, controller = pipelining_server
    provider, session = _opened(controller)
    _cut_at_reply(session, 4)  # A's MAIL/RCPT/DATA answered; A's body + B's envelope written; then the cut
    a, b = _Slot(_email("a@example.com")), _Slot(_email("b@example.com"))
    session._waiting.extend([a, b])
    # The driver's own message was queued behind a and b, never written: the provider retries it on
    # a fresh session (the reply hook has fired; later replies are real).
    provider.send(_email("c@example.com"))

    assert isinstance(a.error, _Disconnected) and a.error.after_data  # may have been taken: not resent
    assert isinstance(b.error, _Disconnected) and not b.error.after_data  # never written: safe to retry
    assert handler.sessions == 2
    received = [email.message_from_bytes(raw)["To"] for raw in handler.received]
    assert received.count("c@example.com") == 1 and "b@example.com" not in received


def test_many_threads_on_one_connection_each_email_arrives_once(pipelining_server: tuple[Handler, Controller]) -> None:
    import threading

    handler, controller = pipelining_server
    provider = _provider(controller)
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        for i in range(25):
            try:
                provider.send(_email(f"t{t}.{i}@example.com", f"t{t}.{i}"))
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert not any(thread.is_alive() for thread in threads), "a sending thread did not finish within 120 s"
    assert errors == []
    bodies = sorted(email.message_from_bytes(raw).get_payload().strip() for raw in handler.received)
    assert bodies == sorted(f"t{t}.{i}" for t in range(8) for i in range(25))
    assert handler.sessions == 1


def test_closing_a_session_with_a_message_staged_settles_it_as_never_written(
    pipelining_server: tuple[Handler, Controller],
) -> None:
    handler, controller = pipelining_server
    provider, session = _opened(controller)
    staged = _Slot(_email("a@example.com", "body a"))
    session._envelope(staged)  # DATA answered 354; its content would go out with the next write
    assert session._staged is staged

    provider.close()

    assert isinstance(staged.error, _Disconnected) and not staged.error.after_data  # safe to retry
    provider.send(_email("b@example.com", "body b"))  # a fresh session, in step with the server
    assert [email.message_from_bytes(raw).get_payload().strip() for raw in handler.received] == ["body b"]


def test_an_interrupt_mid_exchange_settles_the_messages_in_flight_and_resyncs(
    pipelining_server: tuple[Handler, Controller],
) -> None:
    handler, controller = pipelining_server
    provider, session = _opened(controller)
    real_reply, calls = session._reply, {"n": 0}

    def reply() -> tuple[int, str]:
        calls["n"] += 1
        if calls["n"] == 4:  # a's final reply is due
            raise KeyboardInterrupt
        return real_reply()

    session._reply = reply
    a = _Slot(_email("a@example.com", "body a"))
    session._waiting.append(a)
    with pytest.raises(KeyboardInterrupt):
        provider.send(_email("c@example.com", "body c"))
    session._reply = real_reply
    assert isinstance(a.error, _Disconnected) and a.error.after_data
    provider.send(_email("d@example.com", "body d"))  # not fed a's stale reply
    assert handler.sessions == 2


def test_a_write_cut_after_the_content_went_out_counts_as_possibly_sent(
    pipelining_server: tuple[Handler, Controller],
) -> None:
    _, controller = pipelining_server
    provider, session = _opened(controller)
    a, b = _Slot(_email("a@example.com", "body a")), _Slot(_email("b@example.com", "body b"))
    session._waiting.extend([a, b])
    session._step()  # a's MAIL/RCPT/DATA answered: a is staged
    real_send = session._send

    def send(data: bytes) -> None:  # a's content and final dot go out, then the link drops
        real_send(data[: len(a.body)])
        raise ConnectionResetError("reset while writing b's envelope")

    session._send = send
    session._step()

    assert isinstance(a.error, _Disconnected) and a.error.after_data  # the relay may have it: no resend
    assert isinstance(b.error, _Disconnected) and not b.error.after_data


def test_a_caller_that_leaves_mid_exchange_takes_its_message_with_it(
    pipelining_server: tuple[Handler, Controller],
) -> None:
    handler, controller = pipelining_server
    provider, session = _opened(controller)
    a = _Slot(_email("a@example.com", "body a"))
    session._waiting.append(a)
    real_envelope = session._envelope

    def interrupted(slot: Any, written: bool = False) -> None:
        raise KeyboardInterrupt  # the caller (driving for a) is interrupted

    session._envelope = interrupted
    with pytest.raises(KeyboardInterrupt):
        provider.send(_email("c@example.com", "body c"))
    session._envelope = real_envelope

    assert list(session._waiting) == []  # c is not left for another caller to send unrecorded
    provider.send(_email("d@example.com", "body d"))
    assert [email.message_from_bytes(raw).get_payload().strip() for raw in handler.received] == ["body d"]
