"""One-click unsubscribe over HTTP on the local runtime: GET shows a page and changes nothing; the
RFC 8058 POST unsubscribes; the next campaign counts the address as suppressed."""

from __future__ import annotations

from local.runtime import LocalRuntime
from massmailer.splitting import recipient_message_id
from massmailer.unsubscribe import Unsubscriber, parse_signing_keys
from tests.e2e.conftest import campaign, counts, message, suppression_reason, wait_for


def test_unsubscribe_link_get_then_one_click_post_over_http(rt: LocalRuntime, token: str) -> None:
    # Given a campaign email that went out, and the link it carried
    address = f"reader-{token}@example.com"
    audience = [{"email": address, "variables": {"first_name": "Reader", "n": 1}}]
    first = campaign(rt, audience)
    wait_for(lambda: message(rt, first, address).get("status") in ("SENT", "DELIVERED"), 120, what="sent")
    keys = parse_signing_keys(rt.function_env()["MM_SIGNING_KEYS"])
    link = Unsubscriber(keys=keys, base_url=rt.api_url).token(recipient_message_id(first, address))

    # When it is fetched (a scanner, a prefetcher, the person): a page, nothing changes
    status, page = rt.api("GET", f"/v1/unsubscribe?token={link}")
    assert status == 200 and isinstance(page, str) and page.count("<button") == 1, page
    assert suppression_reason(rt, address) is None

    # When the mailbox provider POSTs List-Unsubscribe=One-Click (RFC 8058)
    status, page = rt.api(
        "POST",
        f"/v1/unsubscribe?token={link}",
        b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    # Then the address is unsubscribed, and the next campaign does not mail it
    assert status == 200 and "unsubscribed" in page, page
    assert suppression_reason(rt, address) == "unsubscribe"
    second = campaign(rt, audience)
    final = wait_for(
        lambda: (c := counts(rt, second))["suppressed"] == 1 and c["split_done"] and c, 120, what="suppressed"
    )
    assert final["sent"] == 0
    tampered = link[:-1] + ("A" if link[-1] != "A" else "B")
    status, page = rt.api("GET", f"/v1/unsubscribe?token={tampered}")
    assert status == 400 and "not valid" in page
