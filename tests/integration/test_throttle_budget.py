"""Throttling's budget and daily-quota parking with real parts: the SMTP adapter against a real SMTP
server answering 421/451, and the real wiring (sender handler, DynamoDB shared state in moto, SES v2
in moto, the relay on loopback). Time is a fake clock where the budget is concerned; nothing sleeps."""

from __future__ import annotations

import email
import random
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from botocore.exceptions import ClientError

from local.smtp_relay import free_port
from massmailer import wiring
from massmailer.models import BatchMessage, BatchRecipient, Content, Lane
from massmailer.providers.chain import ProviderChain
from massmailer.providers.smtp import SmtpConfig, SmtpProvider
from massmailer.sending import RetryPolicy, send_batch
from massmailer.store import keys
from massmailer.store.provider_state import DynamoSharedState
from tests.integration.conftest import Pipeline
from tests.integration.test_pipeline import _campaign
from tests.support import make_campaign, sender_context


class _Storm:
    """An SMTP server that answers every RCPT with one temporary refusal."""

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.rcpts = 0

    async def handle_RCPT(self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]) -> str:  # noqa: N802
        self.rcpts += 1
        return self.reply


@pytest.fixture(params=["421 4.7.0 Too many connections, closing", "451 4.7.1 Try again later"])
def storm(request: pytest.FixtureRequest) -> Iterator[tuple[_Storm, Controller]]:
    handler = _Storm(request.param)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller
    controller.stop()


def test_an_smtp_421_or_451_storm_falls_under_the_throttling_budget(storm: tuple[_Storm, Controller]) -> None:
    from massmailer.store import Stores

    handler, controller = storm
    clock = {"now": 2_000_000.0}
    store = Stores.in_memory(clock=lambda: clock["now"])
    store.campaigns.put_campaign(make_campaign("c-storm", content=Content(subject="Hi", text="Hello")))
    relay = SmtpProvider(SmtpConfig(host="127.0.0.1", port=controller.port, timeout=30))
    ctx = sender_context(
        store,
        ProviderChain([relay]),
        policy=RetryPolicy(max_attempts=2, throttle_budget=2 * 3600),
        rng=random.Random(1),
        clock=lambda: clock["now"],
        concurrency=1,
    )
    start = clock["now"]
    pending = [
        BatchMessage(
            kind="campaign",
            campaign_id="c-storm",
            lane=Lane.LOW,
            recipients=[BatchRecipient(message_id="m-storm", email="someone@example.com")],
        )
    ]
    cycles = 0
    while pending:
        send_batch(ctx, pending.pop())
        for body, delay in ctx.queue.sent.pop("low", []):  # type: ignore[attr-defined]
            clock["now"] += delay
            pending.append(BatchMessage.model_validate_json(body))
        cycles += 1
        assert cycles < 100, "the storm never ended for this recipient"
    relay.close()

    record = store.messages.get_message("m-storm")
    assert record is not None and record["status"] == "FAILED"
    assert record["last_error"].startswith("throttled past budget (2 h): throttled: smtp: 4")
    assert 2 * 3600 <= clock["now"] - start <= 2 * 3600 + 900
    assert handler.rcpts == cycles  # each cycle asked the relay once; max_attempts (2) never ended it early


def _ses_quota_exceeded() -> dict[str, int]:
    calls = {"n": 0}

    def refuse(**_: Any) -> None:
        calls["n"] += 1
        raise ClientError(
            {
                "Error": {"Code": "LimitExceededException", "Message": "Daily message quota exceeded."},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            },
            "SendEmail",
        )

    wiring.ses_client().meta.events.register("before-call.sesv2.SendEmail", refuse)  # the provider's own client
    return calls


def test_a_daily_quota_error_parks_ses_in_the_table_and_the_relay_carries_the_mail_until_it_frees(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given SES refuses with its daily quota error, and GetAccount says the quota is used up
    quota = {"sent": 200.0, "max": 200.0}
    monkeypatch.setattr(wiring, "_ses_quota", lambda: (quota["sent"], quota["max"]))
    wiring.reset()
    wiring.sender_context().concurrency = 1
    refused = _ses_quota_exceeded()

    # When a campaign is sent
    _, first = pipeline.api("POST", "/v1/campaigns", _campaign(30))
    pipeline.run()

    # Then SES was asked once; the park is in the table for every sender; everyone went via the relay
    assert refused["n"] == 1 and pipeline.ses_sent() == []
    _, report = pipeline.api("GET", f"/v1/campaigns/{first['campaign_id']}")
    assert report["counts"]["sent"] == 30 and report["counts"]["failed"] == 0
    table = wiring.stores().shared_state
    assert isinstance(table, DynamoSharedState)
    park = table.get_state(keys.parking_partition("ses"))
    assert float(park["parked_until"]) > 0 and "Daily message quota" in park["reason"]

    # When the park's period ends and GetAccount shows room again (seen by a new sender container)
    quota["sent"] = 150.0
    assert table.put_state(keys.parking_partition("ses"), {**park, "parked_until": 1.0}, expect=park)
    wiring.reset()
    wiring.sender_context().concurrency = 1  # (concurrent threads that lose the re-check use the relay meanwhile)
    _, second = pipeline.api("POST", "/v1/campaigns", _campaign(5, name="second"))
    pipeline.run()

    # Then SES carries the mail again
    sent_by_ses = [email.message_from_string(m.raw_data)["To"] for m in pipeline.ses_sent()]
    assert len(sent_by_ses) == 5
    assert float(table.get_state(keys.parking_partition("ses"))["parked_until"]) == 0
