"""SMTP adapter (secondary provider): pipelined ESMTP over reused connections.

``smtplib.sendmail`` waits for a reply to each of MAIL, RCPT and DATA and then to the message: four
round trips and a pure-Python reply parser per email (~530 emails/s on loopback here). This client
speaks the same protocol with RFC 2920 PIPELINING when the server offers it: MAIL FROM, RCPT TO and
DATA go out in one write and their three replies are read together, and when several senders share
a session (the sender's threads) each message's content goes out in the same write as the next
message's MAIL/RCPT/DATA — one round trip per email, which is what counts against a relay 20 ms
away. Every sender still learns its own message's fate (the reply to its final dot) before it
returns, so a send is recorded only once the relay has taken it.

The connections stay open across sends and across warm Lambda invocations; a message whose session
died before its content was written is retried once on a fresh connection; one whose content was
written is never resent nor failed over: its outcome is unknown (``UnknownOutcome``, see the
sender). STARTTLS and AUTH PLAIN are supported for real relays. Servers without PIPELINING get the
classic one-command-per-round-trip dialogue. Replies are classified by stage (``providers.replies``).
"""

from __future__ import annotations

import base64
import itertools
import socket
import ssl
import threading
from collections import deque
from dataclasses import dataclass

from massmailer.errors import ProviderDown, SendError, UnknownOutcome
from massmailer.mime import OutgoingEmail
from massmailer.providers.base import SendReceipt
from massmailer.providers.replies import Stage, classify_smtp_reply


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 25
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0
    local_hostname: str = "massmailer"
    connections: int = 1  # connections kept open (for concurrent senders in one process)


class _Disconnected(Exception):
    """The session died. ``after_data``: the message had been written, so its fate is unknown."""

    def __init__(self, message: str, after_data: bool = False) -> None:
        super().__init__(message)
        self.after_data = after_data


def _dot_stuffed(raw: bytes) -> bytes:
    """The message as DATA carries it: leading dots doubled, CRLF-terminated, then the final dot."""
    data = b"." + raw if raw.startswith(b".") else raw
    data = data.replace(b"\r\n.", b"\r\n..")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


_LOCK_POLL_SECONDS = 0.05


class _Slot:
    """One message on its way through a session's conveyor."""

    __slots__ = ("after_data", "body", "done", "envelope", "error")

    def __init__(self, email: OutgoingEmail) -> None:
        self.envelope = f"MAIL FROM:<{email.sender}>\r\nRCPT TO:<{email.recipient}>\r\nDATA\r\n".encode()
        self.body = _dot_stuffed(email.raw)
        self.after_data = False  # its body was written: the server may have taken it
        self.done = False
        self.error: BaseException | None = None


class SmtpSession:
    """One ESMTP session on a socket. Not thread-safe: a pool hands it to one sender at a time."""

    def __init__(self, config: SmtpConfig, provider: str = "smtp") -> None:
        self._config = config
        self._provider = provider
        self._sock: socket.socket | ssl.SSLSocket | None = None
        self._buf = b""
        self.pipelining = False
        self.sent = 0
        self._lock = threading.Lock()  # held by the caller driving the conveyor
        self._waiting: deque[_Slot] = deque()  # submitted, envelope not yet written
        self._staged: _Slot | None = None  # DATA answered 354; its body goes out with the next write

    # -- wire ---------------------------------------------------------------------------------
    def _readline(self) -> bytes:
        while True:
            end = self._buf.find(b"\n")
            if end >= 0:
                line, self._buf = self._buf[: end + 1], self._buf[end + 1 :]
                return line
            assert self._sock is not None
            chunk = self._sock.recv(65536)
            if not chunk:
                raise _Disconnected("connection closed by server")
            self._buf += chunk

    def _reply(self) -> tuple[int, str]:
        """Read one (possibly multi-line) reply."""
        lines = []
        while True:
            line = self._readline()
            if len(line) < 4:
                raise _Disconnected(f"malformed reply {line!r}")
            lines.append(line[4:].strip().decode("utf-8", "replace"))
            if line[3:4] != b"-":
                try:
                    return int(line[:3]), "\n".join(lines)
                except ValueError as exc:
                    raise _Disconnected(f"malformed reply {line!r}") from exc

    def _send(self, data: bytes) -> None:
        assert self._sock is not None
        self._sock.sendall(data)

    def _command(self, line: str, expect: tuple[int, ...], stage: Stage) -> tuple[int, str]:
        self._send(line.encode() + b"\r\n")
        code, text = self._reply()
        if code not in expect:
            raise classify_smtp_reply(code, text, stage, self._provider)
        return code, text

    # -- session ------------------------------------------------------------------------------
    def open(self) -> None:
        cfg = self._config
        try:
            sock = socket.create_connection((cfg.host, cfg.port), timeout=cfg.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock, self._buf = sock, b""
            code, text = self._reply()
            if code != 220:
                raise classify_smtp_reply(code, text, Stage.CONNECT, self._provider)
            _, features = self._command(f"EHLO {cfg.local_hostname}", (250,), Stage.EHLO)
            if cfg.starttls:
                self._command("STARTTLS", (220,), Stage.EHLO)
                context = ssl.create_default_context()
                self._sock = context.wrap_socket(sock, server_hostname=cfg.host)
                self._buf = b""
                _, features = self._command(f"EHLO {cfg.local_hostname}", (250,), Stage.EHLO)
            self.pipelining = "PIPELINING" in features.upper()
            if cfg.username and cfg.password:
                token = base64.b64encode(f"\0{cfg.username}\0{cfg.password}".encode()).decode()
                self._command(f"AUTH PLAIN {token}", (235,), Stage.AUTH)
        except SendError:
            self.close()
            raise
        except (OSError, _Disconnected) as exc:
            self.close()
            raise ProviderDown(f"cannot connect to {cfg.host}:{cfg.port}: {exc}", provider=self._provider) from exc

    @property
    def is_open(self) -> bool:
        return self._sock is not None

    # -- the conveyor ---------------------------------------------------------------------------
    def send(self, email: OutgoingEmail) -> None:
        """Send one message; raises a ``SendError``, or ``_Disconnected`` if the session died.

        Thread-safe. Concurrent callers share the session as a conveyor: whoever holds the lock
        drives it for all of them, and a message's body goes out in the same write as the next
        message's MAIL/RCPT/DATA (RFC 2920 allows the message content first in a group), so with
        two or more senders queued each email costs one round trip. A caller returns only once the
        server has answered its own final dot."""
        self.wait(self.submit(email))

    def submit(self, email: OutgoingEmail) -> _Slot:
        """Queue a message on the conveyor without waiting: it goes out with the next exchange any
        caller drives (its MAIL/RCPT/DATA in the same write as the previous message's content)."""
        slot = _Slot(email)
        self._waiting.append(slot)
        return slot

    def wait(self, slot: _Slot) -> None:
        """Drive the conveyor until ``slot`` has its answer; raise its error, if any."""
        while not slot.done:
            # Poll the lock rather than block on it: a caller whose message another driver finished
            # returns at once, not when that driver's own exchange (up to the socket timeout) ends.
            if not self._lock.acquire(timeout=_LOCK_POLL_SECONDS):
                continue
            try:
                if not slot.done:
                    self._step()
            except BaseException:
                if not slot.done and slot in self._waiting:  # its caller is leaving: never send it
                    self._waiting.remove(slot)
                raise
            finally:
                self._lock.release()
        if slot.error is not None:
            raise slot.error

    def _step(self) -> None:
        """One exchange on the wire: open the session, or an envelope, or a body (+ the next envelope)."""
        if self._sock is None:
            try:
                self.open()
            except SendError as exc:
                while self._waiting:  # nobody gets through a session that cannot open
                    self._finish(self._waiting.popleft(), exc)
                return
        if self._staged is None and not self._waiting:
            return
        written: list[_Slot] = []  # in flight: their replies are owed to us
        try:
            staged = self._staged
            if staged is None:
                slot = self._waiting.popleft()
                written.append(slot)
                self._envelope(slot)
                return
            nxt = self._waiting.popleft() if self._waiting and self.pipelining else None
            written += [staged] if nxt is None else [staged, nxt]
            self._staged = None
            staged.after_data = True  # from its first byte on, the relay may end up with it
            self._send(staged.body + (nxt.envelope if nxt else b""))
            code, text = self._reply()
            if code == 250:
                self.sent += 1
                self._finish(staged, None)
            else:
                self._finish(staged, self._refused(code, text, Stage.AFTER_DATA))
            if nxt is not None:
                if self._sock is None:  # the refusal closed the session (421): nxt's replies will not come
                    self._finish(nxt, _Disconnected("session closed by the server"))
                else:
                    self._envelope(nxt, written=True)
        except BaseException as exc:
            # Whatever broke the exchange (a reset, a timeout, even an interrupt), the replies owed
            # can no longer be matched to their messages: drop the session, settle what was in flight.
            self.close()
            for slot in written:
                if not slot.done:
                    self._finish(slot, _Disconnected(f"{type(exc).__name__}: {exc}", slot.after_data))
            if not isinstance(exc, (OSError, _Disconnected)):
                raise

    def _envelope(self, slot: _Slot, written: bool = False) -> None:
        """MAIL, RCPT, DATA for ``slot`` (already on the wire when ``written``); on 354 it is staged."""
        if self.pipelining:
            if not written:
                self._send(slot.envelope)
            replies = [self._reply(), self._reply(), self._reply()]
        else:
            replies = []
            for line in slot.envelope.split(b"\r\n")[:3]:
                self._send(line + b"\r\n")
                replies.append(self._reply())
                if replies[-1][0] >= 400:
                    break
        expected = ((250, Stage.MAIL), (250, Stage.RCPT), (354, Stage.DATA))
        for (code, text), (ok, stage) in zip(replies, expected, strict=False):
            if code != ok:
                if len(replies) == 3 and replies[2][0] == 354:
                    # The server accepted DATA although MAIL/RCPT failed: end the transaction.
                    self._send(b".\r\n")
                    self._reply()
                self._rset()
                self._finish(slot, self._refused(code, text, stage))
                return
        self._staged = slot

    @staticmethod
    def _finish(slot: _Slot, error: BaseException | None) -> None:
        slot.error = error
        slot.done = True

    def _refused(self, code: int, text: str, stage: Stage) -> SendError:
        if code == 421:  # the server is closing the session
            self.close()
        return classify_smtp_reply(code, text, stage, self._provider)

    def _rset(self) -> None:
        try:
            self._send(b"RSET\r\n")
            self._reply()
        except (OSError, _Disconnected):
            self.close()

    def close(self, polite: bool = False) -> None:
        staged, self._staged = self._staged, None
        if staged is not None and not staged.done:
            # DATA was answered 354 but its content never went out: the caller may safely retry.
            self._finish(staged, _Disconnected("session closed before the message was written"))
        sock, self._sock = self._sock, None
        if sock is None:
            return
        try:
            if polite:
                sock.sendall(b"QUIT\r\n")
            sock.close()
        except OSError:
            pass


class SmtpProvider:
    """Sends through a small set of reused SMTP sessions, each a conveyor shared by concurrent
    senders (see ``SmtpSession.send``); a send whose session died before its body went out is
    retried once on a fresh connection."""

    name = "smtp"

    def __init__(self, config: SmtpConfig) -> None:
        self._config = config
        self._sessions = [SmtpSession(config, self.name) for _ in range(max(1, config.connections))]
        self._next = itertools.count()

    def send(self, email: OutgoingEmail) -> SendReceipt:
        return self.result(self.submit(email))

    def submit(self, email: OutgoingEmail) -> tuple[SmtpSession, _Slot, OutgoingEmail]:
        """Put the message on a session's conveyor now; ``result`` waits for its answer."""
        session = self._sessions[next(self._next) % len(self._sessions)]
        return session, session.submit(email), email

    def result(self, handle: tuple[SmtpSession, _Slot, OutgoingEmail]) -> SendReceipt:
        session, slot, email = handle
        for attempt in (1, 2):
            try:
                session.wait(slot)
                return SendReceipt(provider=self.name, provider_message_id=email.message_id)
            except _Disconnected as exc:
                if exc.after_data:
                    # The relay may have accepted it: never resent, never failed over. A relay
                    # sends no Send event to wait for, so the sender records it sent-unconfirmed.
                    message = f"connection lost after the message content was written: {exc}"
                    raise UnknownOutcome(message, provider=self.name, confirmable=False) from exc
                if attempt == 2:
                    raise ProviderDown(f"connection lost: {exc}", provider=self.name) from exc
                slot = session.submit(email)  # never written: once more, on a fresh connection
        raise SendError("unreachable", provider=self.name)  # pragma: no cover

    def close(self) -> None:
        for session in self._sessions:
            with session._lock:
                session.close(polite=True)
