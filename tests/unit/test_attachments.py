"""Attachments matched by file name: per-recipient names, the missing-file policies, size limits."""

from __future__ import annotations

import email
from email import policy as email_policy

import pytest

from massmailer.attachments import AttachmentResolver
from massmailer.memory import InMemoryBlobs
from massmailer.models import BatchMessage, BatchRecipient, CampaignStatus, Content, Lane
from massmailer.providers.chain import ProviderChain
from massmailer.sending import SenderContext, send_batch
from massmailer.store import Stores
from tests.support import make_campaign, sender_context
from tests.unit.fakes import FakeProvider


def _ctx(policy: str, max_bytes: int = 1000) -> tuple[SenderContext, FakeProvider, InMemoryBlobs]:
    store, blobs, ses = Stores.in_memory(), InMemoryBlobs(), FakeProvider("ses")
    store.campaigns.put_campaign(
        make_campaign(
            "c1",
            content=Content.model_validate(
                {
                    "subject": "Invoice",
                    "text": "attached",
                    "attachments": [{"filename": "terms.pdf"}, {"filename": "invoice-{{ no }}.pdf"}],
                    "attachment_policy": policy,
                }
            ),
        )
    )
    blobs.put("attachments/terms.pdf", b"%PDF terms")
    blobs.put("attachments/invoice-1.pdf", b"%PDF invoice one")
    ctx = sender_context(
        store,
        ProviderChain([ses]),
        from_address="f@example.com",
        attachments=AttachmentResolver(blobs, max_bytes=max_bytes),
        concurrency=1,
    )
    return ctx, ses, blobs


def _batch(*numbers: int) -> BatchMessage:
    return BatchMessage(
        kind="campaign",
        campaign_id="c1",
        lane=Lane.LOW,
        recipients=[
            BatchRecipient(message_id=f"m{n}", email=f"u{n}@example.com", variables={"no": n}) for n in numbers
        ],
    )


def _files(raw: bytes) -> dict[str, bytes]:
    message = email.message_from_bytes(raw, policy=email_policy.default)
    return {part.get_filename(): part.get_content() for part in message.iter_attachments()}


def test_each_recipient_gets_the_shared_file_and_their_own() -> None:
    ctx, ses, _ = _ctx("skip_recipient")
    send_batch(ctx, _batch(1))
    assert _files(ses.sent[0].raw) == {"terms.pdf": b"%PDF terms", "invoice-1.pdf": b"%PDF invoice one"}


def test_missing_file_skips_the_recipient_with_the_reason() -> None:
    ctx, ses, _ = _ctx("skip_recipient")
    report = send_batch(ctx, _batch(1, 2))
    assert report.outcomes == {"sent": 1, "failed": 1}
    assert "invoice-2.pdf" in ctx.messages.get_message("m2")["last_error"]  # type: ignore[index]
    assert ctx.campaigns.get_campaign("c1").campaign.status == CampaignStatus.SENDING  # type: ignore[union-attr]


def test_missing_file_can_be_sent_without() -> None:
    ctx, ses, _ = _ctx("send_without")
    send_batch(ctx, _batch(2))
    assert _files(ses.sent[0].raw) == {"terms.pdf": b"%PDF terms"}


def test_missing_file_can_fail_the_campaign() -> None:
    ctx, ses, _ = _ctx("fail_campaign")
    send_batch(ctx, _batch(2))
    stored = ctx.campaigns.get_campaign("c1")
    assert stored.campaign.status == CampaignStatus.FAILED and "invoice-2.pdf" in stored.campaign.last_error  # type: ignore[union-attr,operator]
    failed_before = stored.counts.failed  # type: ignore[union-attr]
    later = _batch(3)
    report = send_batch(ctx, later)  # later batches of a failed campaign are not sent: settled FAILED
    assert report.outcomes == {"failed": 1} and ses.sent == []
    record = ctx.messages.get_message(later.recipients[0].message_id)
    assert record is not None and record["status"] == "FAILED" and "invoice-2.pdf" in record["last_error"]
    assert ctx.campaigns.get_campaign("c1").counts.failed == failed_before + 1  # type: ignore[union-attr]


def test_attachments_over_the_size_limit_fail_the_recipient() -> None:
    ctx, ses, blobs = _ctx("skip_recipient", max_bytes=20)
    report = send_batch(ctx, _batch(1))
    assert report.outcomes == {"failed": 1} and ses.sent == []
    assert (
        "exceed" in ctx.messages.get_message("m1")["last_error"]
        or "limit" in ctx.messages.get_message("m1")["last_error"]
    )  # type: ignore[index]


@pytest.mark.parametrize("no", ["../secret", "a/b", "a\\b"])
def test_a_variable_cannot_reach_outside_the_attachments_folder(no: str) -> None:
    ctx, ses, blobs = _ctx("send_without")
    blobs.put("attachments/../secret.pdf", b"nope")
    batch = BatchMessage(
        kind="campaign",
        campaign_id="c1",
        lane=Lane.LOW,
        recipients=[BatchRecipient(message_id="mx", email="x@example.com", variables={"no": no})],
    )
    report = send_batch(ctx, batch)
    assert report.outcomes == {"failed": 1}
    assert "not a plain file name" in ctx.messages.get_message("mx")["last_error"]  # type: ignore[index]


def test_a_shared_file_is_fetched_once_per_container() -> None:
    ctx, ses, blobs = _ctx("send_without")
    reads = []
    real_get = blobs.get
    blobs.get = lambda key, max_bytes: reads.append(key) or real_get(key, max_bytes)  # type: ignore[method-assign]
    send_batch(ctx, _batch(*range(10)))
    assert reads.count("attachments/terms.pdf") == 1 and len(ses.sent) == 10
