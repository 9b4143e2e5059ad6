"""One-click unsubscribe (RFC 8058): signed tokens and the ``List-Unsubscribe`` headers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from urllib.parse import quote


class InvalidToken(ValueError):
    pass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Unsubscriber:
    """Makes and checks unsubscribe tokens with an HMAC key from the environment/Secrets Manager."""

    key: bytes
    base_url: str
    mailto: str | None = None

    def token(self, email: str, campaign_id: str | None) -> str:
        payload = _b64(json.dumps([email, campaign_id or ""], separators=(",", ":")).encode())
        signature = _b64(hmac.new(self.key, payload.encode(), hashlib.sha256).digest()[:16])
        return f"{payload}.{signature}"

    def verify(self, token: str) -> tuple[str, str | None]:
        """Return (email, campaign_id) for a valid token; raise ``InvalidToken`` otherwise."""
        payload, _, signature = token.partition(".")
        if not payload or not signature:
            raise InvalidToken("malformed token")
        expected = _b64(hmac.new(self.key, payload.encode(), hashlib.sha256).digest()[:16])
        if not hmac.compare_digest(expected, signature):
            raise InvalidToken("bad signature")
        try:
            email, campaign_id = json.loads(_unb64(payload))
        except (ValueError, TypeError) as exc:
            raise InvalidToken("malformed token") from exc
        return str(email), (str(campaign_id) or None)

    def url(self, email: str, campaign_id: str | None, token: str | None = None) -> str:
        return f"{self.base_url.rstrip('/')}/v1/unsubscribe?token={token or self.token(email, campaign_id)}"

    def headers(self, email: str, campaign_id: str | None, token: str | None = None) -> dict[str, str]:
        """``List-Unsubscribe`` (https + mailto) and ``List-Unsubscribe-Post`` for RFC 8058 one-click."""
        token = token or self.token(email, campaign_id)
        targets = [f"<{self.url(email, campaign_id, token)}>"]
        if self.mailto:
            targets.append(f"<mailto:{self.mailto}?subject={quote('unsubscribe ' + token)}>")
        return {
            "List-Unsubscribe": ", ".join(targets),
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
