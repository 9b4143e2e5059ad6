"""E-mail address validation and the case-insensitive identity used for de-duplication and suppression."""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email


class InvalidAddress(ValueError):
    pass


MAX_LOCAL_PART_OCTETS = 64  # RFC 5321 4.5.3.1.1 (``email_validator`` 2.x no longer checks it)


# The common case — an ASCII dot-atom local part at an ASCII domain — is checked with one regex and a
# per-domain cache; anything else (quoted local parts, internationalized names, odd lengths) goes to
# ``email_validator`` whole. Both paths accept and reject the same addresses: the domain is still
# judged by ``email_validator`` (special-use names, label rules), once per domain. The splitter's hot
# loop inlines this fast path (``massmailer.splitting``): keep the two in step.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
FAST_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9.-]+")


@lru_cache(maxsize=65_536)
def normalize_domain(domain: str) -> str:
    """The domain of a fast-path address, judged and normalized by ``email_validator`` (cached)."""
    try:
        return validate_email(f"x@{domain}", check_deliverability=False).domain
    except EmailNotValidError as exc:
        raise InvalidAddress(f"not a valid e-mail address: {exc}") from None


def normalize_address(value: str) -> str:
    """Validate an address (syntax only, no DNS) and return it with its domain normalized."""
    if not isinstance(value, str):
        raise InvalidAddress("must be a string")
    if "\r" in value or "\n" in value:
        raise InvalidAddress("must not contain CR or LF characters")
    value = value.strip()
    if len(value) <= 254 and FAST_ADDRESS.fullmatch(value):
        local, _, domain = value.rpartition("@")
        if len(local) <= 64:
            return f"{local}@{normalize_domain(domain)}"
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidAddress(f"not a valid e-mail address: {exc}") from None
    octets = len(result.local_part.encode())
    if octets > MAX_LOCAL_PART_OCTETS:
        raise InvalidAddress(
            f"not a valid e-mail address: the part before the @-sign is {octets} octets; "
            f"at most {MAX_LOCAL_PART_OCTETS} (RFC 5321)"
        )
    return result.normalized


def address_key(address: str) -> str:
    """The identity of an address: case-insensitive, as mailbox providers treat it in practice."""
    return address.strip().lower()


def identity_digest(identity: str) -> str:
    """A short stable digest of an address's identity (``address_key``), for ids and logs."""
    return hashlib.blake2b(identity.encode(), digest_size=8).hexdigest()


def address_digest(address: str) -> str:
    """A short stable digest of an address, for ids and logs (never log the address itself)."""
    return identity_digest(address_key(address))


def mask_address(address: str) -> str:
    """``jane.doe@example.com`` -> ``j***@example.com`` for logs."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"
