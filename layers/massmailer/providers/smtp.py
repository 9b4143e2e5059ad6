"""SMTP adapter (secondary provider): one connection, reused across sends and warm invocations."""

from __future__ import annotations

import smtplib
import ssl
import threading
from dataclasses import dataclass

from massmailer.errors import ProviderDown, SendError, Transient, classify_smtp_reply
from massmailer.mime import OutgoingEmail
from massmailer.providers.base import SendReceipt


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 25
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0
    local_hostname: str = "massmailer"


class SmtpProvider:
    """Sends over one reused SMTP session; reconnects once if the server dropped it."""

    name = "smtp"

    def __init__(self, config: SmtpConfig) -> None:
        self._config = config
        self._conn: smtplib.SMTP | None = None
        self._lock = threading.Lock()

    def _connect(self) -> smtplib.SMTP:
        cfg = self._config
        try:
            conn = smtplib.SMTP(cfg.host, cfg.port, local_hostname=cfg.local_hostname, timeout=cfg.timeout)
            if cfg.starttls:
                conn.starttls(context=ssl.create_default_context())
                conn.ehlo()
            if cfg.username and cfg.password:
                conn.login(cfg.username, cfg.password)
        except smtplib.SMTPAuthenticationError as exc:
            raise classify_smtp_reply(exc.smtp_code, _text(exc.smtp_error), self.name) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise ProviderDown(f"cannot connect to {cfg.host}:{cfg.port}: {exc}", provider=self.name) from exc
        return conn

    def send(self, email: OutgoingEmail) -> SendReceipt:
        with self._lock:
            for attempt in (1, 2):
                if self._conn is None:
                    self._conn = self._connect()
                try:
                    self._conn.sendmail(email.sender, [email.recipient], email.raw)
                    return SendReceipt(provider=self.name, provider_message_id=email.message_id)
                except smtplib.SMTPServerDisconnected as exc:
                    self._drop()
                    if attempt == 2:
                        raise Transient(f"server disconnected: {exc}", provider=self.name) from exc
                except smtplib.SMTPRecipientsRefused as exc:
                    code, text = next(iter(exc.recipients.values()))
                    self._reset()
                    raise classify_smtp_reply(code, _text(text), self.name) from exc
                except smtplib.SMTPResponseException as exc:
                    self._reset()
                    error = classify_smtp_reply(exc.smtp_code, _text(exc.smtp_error), self.name)
                    if exc.smtp_code == 421:  # the server is closing the session
                        self._drop()
                    raise error from exc
                except (TimeoutError, OSError) as exc:
                    self._drop()
                    if attempt == 2:
                        raise ProviderDown(f"connection failed: {exc}", provider=self.name) from exc
            raise SendError("unreachable", provider=self.name)  # pragma: no cover

    def _reset(self) -> None:
        try:
            if self._conn is not None:
                self._conn.rset()
        except (OSError, smtplib.SMTPException):
            self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except OSError:
                pass

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.quit()
                except (OSError, smtplib.SMTPException):
                    pass
            self._drop()


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
