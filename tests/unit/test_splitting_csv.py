"""CSV audiences: RFC 4180 parsing, the same address validation as the API, batches pydantic parses."""

from __future__ import annotations

import csv
import io
import json

import pytest

from massmailer.addresses import InvalidAddress, normalize_address
from massmailer.audiences import AudienceError, open_audience
from massmailer.memory import InMemoryBlobs, InMemoryQueue
from massmailer.models import BatchMessage, BatchRecipient, CampaignStatus, Lane, SplitRequest
from massmailer.splitting import SplitterContext, recipient_message_id, split_campaign
from massmailer.store import Stores
from tests.support import make_campaign
from tests.unit.test_addresses import SAMPLES

KEY = "audiences/list.csv"


def _csv(rows: list[list[str]], newline: str = "\n") -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator=newline).writerows(rows)
    return out.getvalue().encode()


def _setup(data: bytes, read_size: int = 1 << 20, key: str = KEY, pin_etag: bool = False) -> SplitterContext:
    store, queue, blobs = Stores.in_memory(), InMemoryQueue(), InMemoryBlobs(read_size=read_size)
    blobs.put(key, data)
    campaign = make_campaign("c1", status=CampaignStatus.SPLITTING)
    campaign.audience_key = key
    campaign.audience_etag = blobs.etag(key) if pin_etag else None
    store.campaigns.put_campaign(campaign)
    return SplitterContext(campaigns=store.campaigns, suppressions=store.suppressions, queue=queue, blobs=blobs)


def _bodies(ctx: SplitterContext) -> list[str]:
    return [body for body, _ in ctx.queue.sent["low"]]  # type: ignore[attr-defined]


def _recipients(ctx: SplitterContext) -> dict[str, dict[str, object]]:
    return {r.email: r.variables for b in _bodies(ctx) for r in BatchMessage.model_validate_json(b).recipients}


def _counts(ctx: SplitterContext) -> tuple[int, int, int, int]:
    c = ctx.campaigns.get_campaign("c1").counts  # type: ignore[union-attr]
    return c.total, c.duplicates, c.invalid, c.suppressed


def test_header_names_the_variables_and_email_is_found_in_any_case_and_position() -> None:
    ctx = _setup(b"first_name, EMAIL ,city\nAda,ada@example.com,Lisbon\nAlan,alan@Example.COM,Kyiv\n")
    report = split_campaign(ctx, SplitRequest(campaign_id="c1"))
    assert report.done and report.enqueued == 2
    assert _recipients(ctx) == {
        "ada@example.com": {"first_name": "Ada", "city": "Lisbon"},
        "alan@example.com": {"first_name": "Alan", "city": "Kyiv"},
    }


@pytest.mark.parametrize("read_size", [1 << 20, 5])  # tiny reads: records and the BOM straddle them
def test_rfc4180_quoting_bom_crlf_blank_lines_and_multiline_fields(read_size: int) -> None:
    data = (
        b"\xef\xbb\xbfemail,name,note\r\n"
        b'ada@example.com,"Lovelace, Ada","said ""hi"""\r\n'
        b"\r\n"
        b"   \r\n"
        b",,\r\n"
        b'grace@example.com,Grace,"two\r\nlines, and a comma"\r\n'
        b'"alan@example.com",Alan,\r\n'
        b"edsger@example.com,Edsger,last line without a newline"
    )
    ctx = _setup(data, read_size=read_size)
    split_campaign(ctx, SplitRequest(campaign_id="c1"))
    assert _recipients(ctx) == {
        "ada@example.com": {"name": "Lovelace, Ada", "note": 'said "hi"'},
        "grace@example.com": {"name": "Grace", "note": "two\nlines, and a comma"},
        "alan@example.com": {"name": "Alan", "note": ""},
        "edsger@example.com": {"name": "Edsger", "note": "last line without a newline"},
    }
    assert _counts(ctx) == (4, 0, 0, 0)  # blank lines and empty rows are neither recipients nor invalid


def test_bad_rows_count_as_invalid_and_never_stop_the_split() -> None:
    data = (
        b"email,name\n"
        b"ok1@example.com,One\n"
        b"not-an-address,Two\n"  # bad address
        b"ok2@example.com\n"  # too few fields
        b"ok3@example.com,Three,extra\n"  # too many fields
        b'ok4@example.com,"unterminated\n'  # a quote that never closes: only this line is invalid…
        b"ok5@example.com,Five\n"  # …the next lines are read as rows
        b'ok6@example.com,"bad"quote\n'  # text after a closing quote
        b"ok7@example.com,\xff\xfe\n"  # not UTF-8
        b"OK1@EXAMPLE.COM,again\n"  # a duplicate
        b"ok8@example.com,Eight\n"
    )
    for read_size in (1 << 20, 3):
        ctx = _setup(data, read_size=read_size)
        report = split_campaign(ctx, SplitRequest(campaign_id="c1"))
        assert report.done
        assert sorted(_recipients(ctx)) == ["ok1@example.com", "ok5@example.com", "ok8@example.com"]
        assert _counts(ctx) == (3, 1, 6, 0)


def test_a_row_whose_variables_exceed_the_limit_is_invalid() -> None:
    ctx = _setup(_csv([["email", "blob"], ["big@example.com", "x" * 4100], ["small@example.com", "y" * 300]]))
    split_campaign(ctx, SplitRequest(campaign_id="c1"))
    assert list(_recipients(ctx)) == ["small@example.com"]
    assert _counts(ctx) == (1, 0, 1, 0)


def test_the_same_addresses_are_accepted_and_normalized_as_by_the_api() -> None:
    padded = [f"  {SAMPLES[0]}", f"{SAMPLES[1]}\t", "x@example.com\r", ""]
    addresses = [*SAMPLES, *padded]
    ctx = _setup(_csv([["email", "i"], *([a, str(i)] for i, a in enumerate(addresses))]))
    split_campaign(ctx, SplitRequest(campaign_id="c1"))

    expected: dict[str, dict[str, object]] = {}
    invalid = 0
    for i, address in enumerate(addresses):
        try:
            expected.setdefault(normalize_address(address), {"i": str(i)})
        except InvalidAddress:
            invalid += 1  # an empty address too: its row is not a blank line
    got = _recipients(ctx)
    assert {k.lower(): v for k, v in got.items()} == {k.lower(): v for k, v in expected.items()}
    assert set(got) <= set(expected)
    assert _counts(ctx)[2] == invalid


def test_batches_are_exactly_what_batch_message_parses() -> None:
    rows = [
        ["email", "plain", "tricky %s", 'quote"d', "empty", ""],
        ["ada@example.com", "Ada", "100% \\ back\\slash", "tab\there", "", "ignored"],
        ["grace@example.com", "Grace", '"quoted", with comma', "ünïcødé ✉ 😀", "", "x"],
        ["üser@exämple.com", "slow path", "%(x)s %d", "\x01ctrl", "", "y"],
        ["alan@EXAMPLE.com", "fast", "plain text", "Zürich", "", "z"],
        ["idn@xn--exmple-cua.com", "fast, IDN", "plain", "text", "", "z"],
    ]
    ctx = _setup(_csv(rows))
    ctx.clock = lambda: 1_700_000_000.25
    split_campaign(ctx, SplitRequest(campaign_id="c1"))

    (body,) = _bodies(ctx)
    parsed = BatchMessage.model_validate_json(body)
    assert json.loads(body) == json.loads(parsed.model_dump_json())  # no field dropped or reshaped
    expected = BatchMessage(
        kind="campaign",
        campaign_id="c1",
        lane=Lane.LOW,
        suppression_checked_at=1_700_000_000.25,
        recipients=[
            BatchRecipient(
                message_id=recipient_message_id("c1", normalize_address(row[0])),
                email=normalize_address(row[0]),
                variables={name: value for name, value in zip(rows[0][1:5], row[1:5], strict=True)},
            )
            for row in rows[1:]
        ],
    )
    assert parsed == expected
    assert body == expected.model_dump_json()  # byte for byte, even


def test_resume_rereads_the_header_and_dedupes_across_the_checkpoint() -> None:
    rows = [["name", "email"]] + [[f"N{i}", f"u{i}@example.com"] for i in range(1300)]
    rows.insert(900, ["dup", "U3@example.com"])  # after the first checkpoints
    ctx = _setup(_csv(rows, newline="\r\n"), read_size=4096)
    real_send, calls = ctx.queue.send, [0]

    def crash_on_second_chunk(queue: str, bodies, delay_seconds: int = 0) -> None:  # type: ignore[no-untyped-def]
        calls[0] += 1
        if calls[0] == 2:
            raise RuntimeError("Lambda died")
        real_send(queue, bodies, delay_seconds)

    ctx.queue.send = crash_on_second_chunk  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        split_campaign(ctx, SplitRequest(campaign_id="c1"))
    assert ctx.campaigns.get_campaign("c1").split_cursor > 0  # type: ignore[union-attr]

    report = split_campaign(ctx, SplitRequest(campaign_id="c1"))

    assert report.done
    got = _recipients(ctx)
    assert len(got) == 1300 and got["u3@example.com"] == {"name": "N3"}
    assert got["u1299@example.com"] == {"name": "N1299"}
    assert _counts(ctx) == (1300, 1, 0, 0)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"name,city\nAda,Lisbon\n", "no 'email' column"),
        (b"email,Email\na@example.com,b@example.com\n", "more than one 'email'"),
        (b"email,name,name\na@example.com,x,y\n", "more than once"),
        (b"", "no header row"),
        (b'email,"name\n', "header"),
        (b"\xff\xfeemail\n", "not UTF-8"),
    ],
)
def test_an_unusable_header_is_refused_with_the_reason(data: bytes, reason: str) -> None:
    blobs = InMemoryBlobs()
    blobs.put(KEY, data)
    with pytest.raises(AudienceError, match=reason):
        open_audience(blobs, KEY)


def test_a_split_whose_audience_became_unusable_fails_the_campaign_with_the_reason() -> None:
    ctx = _setup(b"name\nAda\n")
    report = split_campaign(ctx, SplitRequest(campaign_id="c1"))
    stored = ctx.campaigns.get_campaign("c1")
    assert not report.done and report.error and "no 'email' column" in report.error
    assert stored.campaign.status == CampaignStatus.FAILED  # type: ignore[union-attr]
    assert "no 'email' column" in (stored.campaign.last_error or "")  # type: ignore[union-attr]
    assert not _bodies(ctx)


def test_an_audience_replaced_after_the_campaign_was_accepted_fails_it() -> None:
    ctx = _setup(_csv([["email"], *([f"u{i}@example.com"] for i in range(10))]), pin_etag=True)
    ctx.blobs.put(KEY, b"email\nsomeone.else@example.com\n")

    report = split_campaign(ctx, SplitRequest(campaign_id="c1"))

    assert report.error and "replaced" in report.error
    assert ctx.campaigns.get_campaign("c1").campaign.status == CampaignStatus.FAILED  # type: ignore[union-attr]
    assert not _bodies(ctx)


def test_jsonl_audiences_still_split_with_a_bom_and_crlf() -> None:
    lines = [{"email": "a@example.com", "variables": {"n": 1, "nested": {"x": [1, 2]}}}, {"email": "B@example.com"}]
    data = b"\xef\xbb\xbf" + b"\r\n".join(json.dumps(x).encode() for x in lines) + b"\r\n"
    ctx = _setup(data, key="audiences/list.ndjson", read_size=7)
    split_campaign(ctx, SplitRequest(campaign_id="c1"))
    assert _recipients(ctx) == {"a@example.com": {"n": 1, "nested": {"x": [1, 2]}}, "B@example.com": {}}


def test_jsonl_variables_over_the_limit_as_the_api_measures_it_are_invalid() -> None:
    rows = [
        {"email": "ascii@example.com", "variables": {"v": "x" * 4100}},
        {"email": "escaped@example.com", "variables": {"v": "ü" * 1000}},  # 2 KB as UTF-8, 6 KB escaped
        {"email": "fits@example.com", "variables": {"v": "ü" * 600}},
        {"email": "list@example.com", "variables": ["not", "an", "object"]},
    ]
    ctx = _setup(b"".join(json.dumps(r).encode() + b"\n" for r in rows), key="audiences/list.jsonl")
    split_campaign(ctx, SplitRequest(campaign_id="c1"))
    assert list(_recipients(ctx)) == ["fits@example.com"]
    assert _counts(ctx) == (1, 0, 3, 0)
