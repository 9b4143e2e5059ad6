"""Address validation: the fast path agrees with email_validator on every address it takes."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email

from massmailer.addresses import InvalidAddress, normalize_address

SAMPLES = [
    "jane@example.com",
    "Jane.Doe@Example.COM",
    "a+tag@sub.example.co.uk",
    "o'neil@example.ie",
    "x@example",
    "x@localhost",
    "x@-bad.com",
    "x@bad-.com",
    "x@exa_mple.com",
    "x@123.123.123.123",
    "x..y@example.com",
    ".x@example.com",
    "x.@example.com",
    "x@example..com",
    "x@.example.com",
    "x@example.com.",
    "x@ex ample.com",
    "x" * 65 + "@example.com",
    "x@" + "a" * 64 + ".com",
    "user@example.test",
    "user@example.invalid",
    "user@massmailer.local",
    "üser@example.com",
    "user@exämple.com",
    '"quoted"@example.com',
    "x@[127.0.0.1]",
    "success+label@simulator.amazonses.com",
    "a@b.c",
    "a@b.co",
    "first_last@example.museum",
    "x@xn--exmple-cua.com",
]


def _reference(address: str) -> str | None:
    """email_validator's verdict, plus RFC 5321's 64-octet local part (which it no longer checks)."""
    try:
        result = validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return None
    return result.normalized if len(result.local_part.encode()) <= 64 else None


@pytest.mark.parametrize("address", SAMPLES)
def test_fast_path_matches_email_validator(address: str) -> None:
    expected = _reference(address)
    if expected is None:
        with pytest.raises(InvalidAddress):
            normalize_address(address)
    else:
        assert normalize_address(address) == expected


def test_header_injection_is_refused() -> None:
    with pytest.raises(InvalidAddress, match="CR or LF"):
        normalize_address("a@example.com\r\nBcc: b@example.com")


@pytest.mark.parametrize("local", ["x" * 65, "ü" * 33, "a.b" * 22])
def test_a_local_part_over_64_octets_is_refused_rfc_5321(local: str) -> None:
    with pytest.raises(InvalidAddress, match="at most 64"):
        normalize_address(f"{local}@example.com")


def test_a_local_part_of_64_octets_is_accepted() -> None:
    assert normalize_address("x" * 64 + "@example.com") == "x" * 64 + "@example.com"
