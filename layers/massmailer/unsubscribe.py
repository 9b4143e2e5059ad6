"""One-click unsubscribe (RFC 8058): opaque signed tokens, the ``List-Unsubscribe`` headers, and the
page a person sees.

* **Tokens are opaque.** A token is ``<key id>.<message id, base64url>.<HMAC>``: it names the email
  that carried it, never the address; the address is read from that email's record when the person
  confirms. Message ids are ``<campaign>.<digest>`` or ``msg-<random>``, so nothing in the URL (and so
  in a proxy's or an access log) gives the address away.
* **Several keys at once.** ``MM_SIGNING_KEYS="k2:new-secret,k1:old-secret"`` (or the same in the
  Secrets Manager secret, or a JSON object ``{"k2": "new-secret", "k1": "old-secret"}``): the first
  signs, every listed one verifies. A token whose key id is no longer listed, or whose signature does
  not match, is refused (a 400 page saying the link is not valid). A bare secret (no key id: what
  the stage's generated secret holds, and every secret before key ids existed) is key ``k0``.
* **Links sent before key ids keep working.** They are ``<payload>.<HMAC>`` with the address inside
  the payload (that format is no longer written); while ``k0`` is listed they verify with it, so a
  deploy of this version does not break the unsubscribe link of any email already delivered.
* **A scanner cannot unsubscribe anybody.** GET shows a small page (who the person is unsubscribing
  from, one button) and changes nothing; only a POST carrying ``List-Unsubscribe=One-Click`` (what
  RFC 8058 clients send, and what the page's button sends) adds the address to the suppression list.
* **No ``mailto:``.** ``List-Unsubscribe`` advertises the https URI only (README, "Unsubscribe").
"""

from __future__ import annotations

import base64
import binascii
import email.parser
import email.policy
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import parse_qs, quote

from massmailer.addresses import mask_address
from massmailer.store import Campaigns, Messages, Suppressions

logger = logging.getLogger(__name__)

ONE_CLICK_FIELD = "List-Unsubscribe"
ONE_CLICK_VALUE = "One-Click"
MAX_TOKEN_LENGTH = 512
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_SIGNATURE_BYTES = 16
_DOMAIN = b"massmailer-unsubscribe/2|"  # what a signature covers besides the key id and the payload
BARE_KEY_ID = "k0"  # the id of a secret given without one


class InvalidToken(ValueError):
    pass


class InvalidSigningKeys(ValueError):
    pass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class SigningKey:
    kid: str
    secret: bytes = b""

    def __repr__(self) -> str:  # the secret never reaches a log
        return f"SigningKey(kid={self.kid!r})"


def parse_signing_keys(text: str) -> tuple[SigningKey, ...]:
    """``kid1:secret1,kid2:secret2`` or a JSON object ``{"kid1": "secret1", ...}``, in order: the
    first signs. Key ids are 1-32 of ``A-Za-z0-9_-``; secrets at least 16 characters."""
    text = text.strip()
    pairs: list[tuple[str, str]]
    if text.startswith("{"):
        try:
            loaded = json.loads(text)
        except ValueError as exc:
            raise InvalidSigningKeys("signing keys: not valid JSON") from exc
        pairs = [(str(k), str(v)) for k, v in loaded.items()]
    elif text and ":" not in text and "," not in text:
        pairs = [(BARE_KEY_ID, text)]  # one bare secret (the generated one, or one from before key ids)
    else:
        pairs = []
        for part in filter(None, (p.strip() for p in text.split(","))):
            kid, sep, secret = part.partition(":")
            if not sep:
                raise InvalidSigningKeys("signing keys: each entry must be 'kid:secret'")
            pairs.append((kid.strip(), secret.strip()))
    if not pairs:
        raise InvalidSigningKeys("signing keys: none given")
    seen: set[str] = set()
    for kid, secret in pairs:
        if not _KEY_ID.match(kid):
            raise InvalidSigningKeys(f"signing keys: key id {kid[:40]!r} is not 1-32 of A-Za-z0-9_-")
        if kid in seen:
            raise InvalidSigningKeys(f"signing keys: key id {kid!r} is listed twice")
        if len(secret) < 16:
            raise InvalidSigningKeys(f"signing keys: the secret of {kid!r} is shorter than 16 characters")
        seen.add(kid)
    return tuple(SigningKey(kid, secret.encode()) for kid, secret in pairs)


@dataclass(frozen=True)
class Unsubscriber:
    """Makes and checks unsubscribe tokens; ``keys[0]`` signs, every listed key verifies."""

    keys: tuple[SigningKey, ...]
    base_url: str

    def __post_init__(self) -> None:
        if not self.keys:
            raise InvalidSigningKeys("signing keys: none given")

    @staticmethod
    def _sign(key: SigningKey, payload: str) -> str:
        mac = hmac.new(key.secret, _DOMAIN + f"{key.kid}.{payload}".encode(), hashlib.sha256)
        return _b64(mac.digest()[:_SIGNATURE_BYTES])

    def token(self, message_id: str) -> str:
        key = self.keys[0]
        payload = _b64(message_id.encode())
        return f"{key.kid}.{payload}.{self._sign(key, payload)}"

    def verify(self, token: str) -> str:
        """The message id a valid token names; ``InvalidToken`` (with why) otherwise."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("malformed token")
        parts = token.split(".")
        if len(parts) != 3 or not all(parts):
            raise InvalidToken("malformed token")
        kid, payload, signature = parts
        key = next((k for k in self.keys if k.kid == kid), None)
        if key is None:
            raise InvalidToken("unknown signing key")
        if not hmac.compare_digest(self._sign(key, payload), signature):
            raise InvalidToken("bad signature")
        try:
            return _unb64(payload).decode()
        except (binascii.Error, ValueError) as exc:  # pragma: no cover - signed by us, so well formed
            raise InvalidToken("malformed token") from exc

    def verify_legacy(self, token: str) -> tuple[str, str | None]:
        """(address, campaign id) of a link sent before key ids (``<payload>.<HMAC>``, the address
        inside the payload), checked with key ``k0``; ``InvalidToken`` otherwise."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("malformed token")
        payload, _, signature = token.partition(".")
        key = next((k for k in self.keys if k.kid == BARE_KEY_ID), None)
        if not payload or not signature or "." in signature:
            raise InvalidToken("malformed token")
        if key is None:
            raise InvalidToken("unknown signing key")
        expected = _b64(hmac.new(key.secret, payload.encode(), hashlib.sha256).digest()[:_SIGNATURE_BYTES])
        if not hmac.compare_digest(expected, signature):
            raise InvalidToken("bad signature")
        try:
            address, campaign_id = json.loads(_unb64(payload))
        except (binascii.Error, ValueError, TypeError) as exc:
            raise InvalidToken("malformed token") from exc
        return str(address), (str(campaign_id) or None)

    def url(self, message_id: str, token: str | None = None) -> str:
        return f"{self.base_url.rstrip('/')}/v1/unsubscribe?token={quote(token or self.token(message_id))}"

    def headers(self, message_id: str, token: str | None = None) -> dict[str, str]:
        """``List-Unsubscribe`` (the https URI only) and ``List-Unsubscribe-Post`` (RFC 8058)."""
        return {
            "List-Unsubscribe": f"<{self.url(message_id, token)}>",
            "List-Unsubscribe-Post": f"{ONE_CLICK_FIELD}={ONE_CLICK_VALUE}",
        }


def one_click_requested(body: str | bytes | None, content_type: str | None) -> bool:
    """Whether a POST body carries ``List-Unsubscribe=One-Click``: as
    ``application/x-www-form-urlencoded`` (the page's form; some clients) or ``multipart/form-data``
    (what RFC 8058 recommends)."""
    if not body:
        return False
    raw = body.encode() if isinstance(body, str) else body
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        head = f"Content-Type: {content_type}\r\n\r\n".encode()
        parsed = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
        for part in parsed.iter_parts() if parsed.is_multipart() else ():
            if part.get_param("name", header="content-disposition") == ONE_CLICK_FIELD:
                return bytes(part.get_payload(decode=True) or b"").decode(errors="replace").strip() == ONE_CLICK_VALUE
        return False
    fields = parse_qs(raw.decode(errors="replace"), keep_blank_values=True)
    return ONE_CLICK_VALUE in fields.get(ONE_CLICK_FIELD, [])


# -- the pages -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    status: int
    html: str


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#222}"
    "button{font-size:1rem;padding:.6rem 1.2rem;cursor:pointer}"
)


def _page(status: int, title: str, *paragraphs: str, form: str = "") -> Page:
    """Every dynamic part reaches here escaped by the caller; nothing is a template."""
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta name="robots" content="noindex"><title>{escape(title)}</title><style>{_STYLE}</style></head>'
        f"<body><h1>{escape(title)}</h1>{body}{form}</body></html>"
    )
    return Page(status, html)


def invalid_page() -> Page:
    return _page(
        400,
        "This unsubscribe link is not valid",
        "The link is incomplete, was changed, or is too old to be checked. "
        "Use the unsubscribe link of a recent email from the same sender.",
    )


def _one_click_missing_page() -> Page:
    return _page(
        400,
        "Nothing was changed",
        escape(
            f"An unsubscribe request must carry the form field {ONE_CLICK_FIELD}={ONE_CLICK_VALUE} (RFC 8058). "
            "Open the link in a browser and press the button."
        ),
    )


@dataclass(frozen=True)
class _Subject:
    """What a valid token unsubscribes: the address (from the email's record) and where it came from."""

    message_id: str
    email: str
    campaign_id: str | None
    sender: str
    campaign_name: str | None


def _legacy_subject(unsubscriber: Unsubscriber, campaigns: Campaigns | None, token: str) -> _Subject | None:
    try:
        address, campaign_id = unsubscriber.verify_legacy(token)
    except InvalidToken as exc:
        logger.info("unsubscribe link refused", extra={"reason": str(exc), "format": "before key ids"})
        return None
    stored = campaigns.get_campaign(campaign_id) if campaign_id and campaigns is not None else None
    name = stored.campaign.name if stored is not None else None
    sender = (stored.campaign.from_name or stored.campaign.from_address) if stored is not None else ""
    return _Subject("", address, campaign_id, sender, name)


def _subject(
    unsubscriber: Unsubscriber, messages: Messages, campaigns: Campaigns | None, token: str
) -> _Subject | None:
    if token and token.count(".") == 1:
        return _legacy_subject(unsubscriber, campaigns, token)
    try:
        message_id = unsubscriber.verify(token)
    except InvalidToken as exc:
        logger.info("unsubscribe link refused", extra={"reason": str(exc)})
        return None
    record = messages.get_message(message_id)
    if not record or not record.get("email"):
        logger.info("unsubscribe link for an unknown message", extra={"message_id": message_id})
        return None
    campaign_id = record.get("campaign_id") or None
    sender, name = "", None
    stored = campaigns.get_campaign(campaign_id) if campaign_id and campaigns is not None else None
    if stored is not None:
        name = stored.campaign.name
        sender = stored.campaign.from_name or stored.campaign.from_address
    else:
        payload = _payload(record)
        sender = str(payload.get("from_name") or payload.get("from_address") or "")
    return _Subject(message_id, str(record["email"]), campaign_id, sender, name)


def _payload(record: Mapping[str, Any]) -> dict[str, Any]:
    try:
        loaded = json.loads(record.get("payload") or "{}")
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _describe(subject: _Subject) -> str:
    who = f"<strong>{escape(mask_address(subject.email))}</strong>"
    sender = f" from <strong>{escape(subject.sender)}</strong>" if subject.sender else ""
    source = f" You received “{escape(subject.campaign_name)}”." if subject.campaign_name else ""
    return f"{who} will receive no more email{sender}.{source}"


def show(unsubscriber: Unsubscriber, messages: Messages, campaigns: Campaigns | None, token: str) -> Page:
    """GET: the page with one button; reads only, changes nothing (scanners and prefetchers GET links)."""
    subject = _subject(unsubscriber, messages, campaigns, token)
    if subject is None:
        return invalid_page()
    form = (
        f'<form method="post" action="?token={escape(quote(token), quote=True)}">'
        f'<input type="hidden" name="{ONE_CLICK_FIELD}" value="{ONE_CLICK_VALUE}">'
        '<button type="submit">Unsubscribe</button></form>'
    )
    return _page(200, "Unsubscribe", _describe(subject), form=form)


def confirm(
    unsubscriber: Unsubscriber,
    messages: Messages,
    campaigns: Campaigns | None,
    suppressions: Suppressions,
    token: str,
    body: str | bytes | None,
    content_type: str | None,
) -> Page:
    """POST with ``List-Unsubscribe=One-Click``: the address goes on the suppression list
    (a conditional write; a second POST changes nothing and gets the same page)."""
    subject = _subject(unsubscriber, messages, campaigns, token)
    if subject is None:
        return invalid_page()
    if not one_click_requested(body, content_type):
        return _one_click_missing_page()
    added = suppressions.suppress(
        subject.email, "unsubscribe", {"campaign_id": subject.campaign_id, "message_id": subject.message_id}
    )
    logger.info(
        "unsubscribed",
        extra={"address": mask_address(subject.email), "message_id": subject.message_id, "new": added},
    )
    sender = f" from {escape(subject.sender)}" if subject.sender else ""
    return _page(
        200,
        "You are unsubscribed",
        f"<strong>{escape(mask_address(subject.email))}</strong> will receive no more email{sender}.",
    )
