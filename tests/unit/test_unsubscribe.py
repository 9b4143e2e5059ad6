"""Unsubscribe tokens, signing keys, RFC 8058 one-click bodies and the pages, with in-memory stores."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from massmailer.models import Lane, MessageRecord, Status
from massmailer.store import InMemoryStores, Stores
from massmailer.unsubscribe import (
    InvalidSigningKeys,
    InvalidToken,
    Unsubscriber,
    confirm,
    one_click_requested,
    parse_signing_keys,
    show,
)
from tests.support import make_campaign

OLD = "k1:old-secret-0123456789"
NEW = "k2:new-secret-0123456789"
ADDRESS = "Jane.Doe@example.com"
FORM = "application/x-www-form-urlencoded"


def _unsubscriber(keys: str) -> Unsubscriber:
    return Unsubscriber(keys=parse_signing_keys(keys), base_url="https://u.example/")


def test_a_token_is_opaque_and_carries_its_key_id() -> None:
    u = _unsubscriber(NEW)
    token = u.token("cmp-1.0123456789abcdef")

    assert token.startswith("k2.")
    assert "jane" not in token.lower() and "example" not in token
    assert u.verify(token) == "cmp-1.0123456789abcdef"


def test_the_first_key_signs_and_every_listed_key_verifies() -> None:
    """Rotation: k2 put first, k1 still listed: links signed with k1 keep working; k1 removed: refused."""
    before = _unsubscriber(OLD).token("m1")
    during = _unsubscriber(f"{NEW},{OLD}")
    after = _unsubscriber(NEW)

    assert during.verify(before) == "m1"
    assert during.token("m2").startswith("k2.")
    with pytest.raises(InvalidToken, match="unknown signing key"):
        after.verify(before)


def test_same_key_id_with_another_secret_is_refused() -> None:
    token = _unsubscriber(OLD).token("m1")
    with pytest.raises(InvalidToken, match="bad signature"):
        _unsubscriber("k1:another-secret-0123456789").verify(token)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # signature
        lambda t: t.replace(t.split(".")[1], base64.urlsafe_b64encode(b"m2").decode().rstrip("=")),  # payload
        lambda t: "k2" + t[2:],  # key id
        lambda t: t.split(".", 1)[1],  # no key id (the old two-part shape)
        lambda t: "",
        lambda t: t + "." + "x",
        lambda t: "k1." + "A" * 600 + ".sig",
    ],
)
def test_a_tampered_or_malformed_token_is_refused(tamper) -> None:  # type: ignore[no-untyped-def]
    u = _unsubscriber(f"{OLD},{NEW}")
    with pytest.raises(InvalidToken):
        u.verify(tamper(u.token("m1")))


def test_signing_keys_parse_from_text_or_json_in_order() -> None:
    assert [k.kid for k in parse_signing_keys(f" {NEW} , {OLD} ")] == ["k2", "k1"]
    assert [k.kid for k in parse_signing_keys('{"k2": "new-secret-0123456789", "k1": "old-secret-0123456789"}')] == [
        "k2",
        "k1",
    ]
    assert "secret" not in repr(parse_signing_keys(NEW))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "none given"),
        ("k1:secret-0123456789abc,just-a-secret-without-id", "kid:secret"),
        ("short", "shorter than 16"),
        ("k 1:secret-0123456789abc", "key id"),
        ("k1:short", "shorter than 16"),
        (f"{OLD},k1:other-secret-0123456789", "listed twice"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_signing_keys_are_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidSigningKeys, match=reason):
        parse_signing_keys(text)


def test_list_unsubscribe_advertises_the_https_uri_only() -> None:
    headers = _unsubscriber(NEW).headers("m1")

    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert headers["List-Unsubscribe"].startswith("<https://u.example/v1/unsubscribe?token=k2.")
    assert "mailto:" not in headers["List-Unsubscribe"] and "," not in headers["List-Unsubscribe"]


MULTIPART = b'--b1\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--b1--\r\n'


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        ("List-Unsubscribe=One-Click", FORM, True),
        (b"List-Unsubscribe=One-Click", None, True),
        (MULTIPART, "multipart/form-data; boundary=b1", True),
        (MULTIPART.replace(b"One-Click", b"Nope"), "multipart/form-data; boundary=b1", False),
        ("", FORM, False),
        (None, None, False),
        ("List-Unsubscribe=Yes", FORM, False),
        ('{"List-Unsubscribe": "One-Click"}', "application/json", False),
    ],
)
def test_one_click_bodies(body, content_type, expected) -> None:  # type: ignore[no-untyped-def]
    assert one_click_requested(body, content_type) is expected


# -- the pages ---------------------------------------------------------------------------------


def _sent(store: InMemoryStores, campaign_name: str = "November news") -> str:
    campaign = make_campaign("cmp-1")
    store.campaigns.put_campaign(campaign.model_copy(update={"name": campaign_name, "from_name": "Acme <News>"}))
    record = MessageRecord(
        message_id="cmp-1.abc",
        email=ADDRESS,
        campaign_id="cmp-1",
        status=Status.SENT,
        lane=Lane.LOW,
        created_at=datetime.now(UTC),
    )
    store.messages.create_message(record, {})
    return "cmp-1.abc"


def test_get_shows_who_and_one_button_and_changes_nothing() -> None:
    store = Stores.in_memory()
    u = _unsubscriber(NEW)
    token = u.token(_sent(store))
    writes = store.meter.writes

    page = show(u, store.messages, store.campaigns, token)

    assert page.status == 200
    assert page.html.count("<button") == 1 and '<form method="post" action="?token=' in page.html
    assert '<input type="hidden" name="List-Unsubscribe" value="One-Click">' in page.html
    assert "J***@example.com" in page.html and ADDRESS not in page.html
    assert "November news" in page.html and "Acme &lt;News&gt;" in page.html
    assert not store.suppressions.is_suppressed(ADDRESS) and store.meter.writes == writes


def test_a_page_escapes_what_it_shows() -> None:
    store = Stores.in_memory()
    u = _unsubscriber(NEW)
    token = u.token(_sent(store, campaign_name="<script>alert(1)</script>{{ 7*7 }}"))

    page = show(u, store.messages, store.campaigns, token)

    assert "<script>" not in page.html and "&lt;script&gt;alert(1)&lt;/script&gt;{{ 7*7 }}" in page.html


def test_post_with_one_click_unsubscribes_and_a_second_post_changes_nothing() -> None:
    store = Stores.in_memory()
    u = _unsubscriber(NEW)
    token = u.token(_sent(store))

    page = confirm(u, store.messages, store.campaigns, store.suppressions, token, "List-Unsubscribe=One-Click", FORM)
    again = confirm(u, store.messages, store.campaigns, store.suppressions, token, "List-Unsubscribe=One-Click", FORM)

    assert page.status == 200 and again.status == 200 and "unsubscribed" in page.html
    assert store.suppressions.by_address["jane.doe@example.com"] == {
        "reason": "unsubscribe",
        "details": {"campaign_id": "cmp-1", "message_id": "cmp-1.abc"},
    }


def test_post_without_one_click_changes_nothing_and_names_the_field() -> None:
    store = Stores.in_memory()
    u = _unsubscriber(NEW)
    token = u.token(_sent(store))

    page = confirm(u, store.messages, store.campaigns, store.suppressions, token, "", FORM)

    assert page.status == 400 and "List-Unsubscribe=One-Click" in page.html
    assert not store.suppressions.is_suppressed(ADDRESS)


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("why", ["tampered", "removed key", "unknown message"])
def test_an_invalid_link_gets_a_400_page_and_changes_nothing(method: str, why: str) -> None:
    store = Stores.in_memory()
    old, now = _unsubscriber(OLD), _unsubscriber(NEW)
    message_id = _sent(store)
    token = {
        "tampered": now.token(message_id)[:-1] + ("A" if not now.token(message_id).endswith("A") else "B"),
        "removed key": old.token(message_id),
        "unknown message": now.token("cmp-1.never-sent"),
    }[why]

    if method == "GET":
        page = show(now, store.messages, store.campaigns, token)
    else:
        page = confirm(
            now, store.messages, store.campaigns, store.suppressions, token, "List-Unsubscribe=One-Click", FORM
        )

    assert page.status == 400 and "This unsubscribe link is not valid" in page.html and "<form" not in page.html
    assert not store.suppressions.is_suppressed(ADDRESS)


LEGACY_SECRET = "a-secret-from-before-key-ids-0123456789"


def _legacy_token(address: str, campaign_id: str, secret: str = LEGACY_SECRET) -> str:
    """A link as the version before key ids wrote it: ``<payload>.<HMAC>``, the address inside."""
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    payload = b64(json.dumps([address, campaign_id], separators=(",", ":")).encode())
    return f"{payload}.{b64(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()[:16])}"


def test_a_bare_secret_is_key_k0_and_signs() -> None:
    [key] = parse_signing_keys(LEGACY_SECRET)
    assert key.kid == "k0" and key.secret == LEGACY_SECRET.encode()
    assert Unsubscriber(keys=(key,), base_url="https://u.example/").token("cmp-1.abc").startswith("k0.")


def test_a_link_sent_before_key_ids_still_unsubscribes_while_k0_is_listed() -> None:
    store = Stores.in_memory()
    _sent(store)
    token = _legacy_token(ADDRESS, "cmp-1")
    rotated = _unsubscriber(f"{NEW},k0:{LEGACY_SECRET}")  # a new key signs; the old bare one is k0

    page = show(rotated, store.messages, store.campaigns, token)
    assert page.status == 200 and "J***@example.com" in page.html
    assert not store.suppressions.is_suppressed(ADDRESS)

    page = confirm(
        rotated, store.messages, store.campaigns, store.suppressions, token, "List-Unsubscribe=One-Click", FORM
    )
    assert page.status == 200 and store.suppressions.is_suppressed(ADDRESS)


@pytest.mark.parametrize("why", ["k0 removed", "tampered", "other secret"])
def test_a_link_sent_before_key_ids_is_refused_without_its_key(why: str) -> None:
    store = Stores.in_memory()
    _sent(store)
    token = _legacy_token(ADDRESS, "cmp-1", "another-secret-0123456789" if why == "other secret" else LEGACY_SECRET)
    if why == "tampered":
        token = _legacy_token("someone.else@example.com", "cmp-1").split(".")[0] + "." + token.split(".")[1]
    keys = NEW if why == "k0 removed" else f"{NEW},k0:{LEGACY_SECRET}"

    page = confirm(
        _unsubscriber(keys),
        store.messages,
        store.campaigns,
        store.suppressions,
        token,
        "List-Unsubscribe=One-Click",
        FORM,
    )
    assert page.status == 400 and not store.suppressions.is_suppressed(ADDRESS)
    assert not store.suppressions.is_suppressed("someone.else@example.com")
