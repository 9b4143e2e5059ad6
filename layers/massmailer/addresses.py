"""E-mail address validation and the case-insensitive identity used for de-duplication and suppression."""

from __future__ import annotations

import hashlib

from email_validator import EmailNotValidError, validate_email


class InvalidAddress(ValueError):
    pass


def normalize_address(value: str) -> str:
    """Validate an address (syntax only, no DNS) and return it with its domain normalized."""
    if not isinstance(value, str):
        raise InvalidAddress("must be a string")
    if "\r" in value or "\n" in value:
        raise InvalidAddress("must not contain CR or LF characters")
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidAddress(f"not a valid e-mail address: {exc}") from None
    return result.normalized


def address_key(address: str) -> str:
    """The identity of an address: case-insensitive, as mailbox providers treat it in practice."""
    return address.strip().lower()


def address_digest(address: str) -> str:
    """A short stable digest of an address, for ids and logs (never log the address itself)."""
    return hashlib.blake2b(address_key(address).encode(), digest_size=8).hexdigest()


def mask_address(address: str) -> str:
    """``jane.doe@example.com`` -> ``j***@example.com`` for logs."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"
