"""Integration tier: the real handlers against moto (in process) and a real SMTP server on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdas.ingest import handler as ingest_handler
from lambdas.sender import handler as sender_handler
from lambdas.splitter import handler as splitter_handler
from local.event_source import SqsEventSource, drain, queue_depth
from local.provision import LOCAL_ACCOUNT, provision
from local.smtp_relay import SmtpRelay
from massmailer import spec, splitting, wiring
from massmailer.store import Stores
from tests.support import api_event, context


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@dataclass
class Pipeline:
    resources: dict[str, Any]
    relay: SmtpRelay
    sqs: Any

    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        response = ingest_handler.handler(api_event(method, path, body, headers, query), context("ingest"))
        return response["statusCode"], json.loads(response["body"] or "null")

    def source(self, key: str, handler: Any, failed_visibility: int | None = 0) -> SqsEventSource:
        queue = next(q for q in spec.QUEUES if q.key == key)
        return SqsEventSource(
            self.sqs, self.resources["queues"][key], queue, handler, failed_visibility=failed_visibility
        )

    def run(self, *, bounces: bool = False) -> int:
        """Drain split → lanes (→ bounce) like the event sources would, until every queue is empty."""
        sources = [
            self.source("split", splitter_handler.handler),
            self.source("high", sender_handler.handler),
            self.source("low", sender_handler.handler),
        ]
        if bounces:
            from lambdas.bounce import handler as bounce_handler

            sources.append(self.source("bounce", bounce_handler.handler))
        return drain(sources)

    def depth(self, key: str, dlq: bool = False) -> int:
        url = self.resources["dlqs" if dlq else "queues"][key]
        return queue_depth(self.sqs, url)

    @staticmethod
    def ses_sent() -> list[Any]:
        from moto.ses.models import ses_backends

        return list(ses_backends[LOCAL_ACCOUNT]["us-east-1"].sent_messages)


# The splitter checkpoints every CHUNK_BATCHES batches of 50 (500 recipients). Tests that need
# several checkpoints use chunks of 200 instead, so they cross the same boundaries with 2.5× fewer
# recipients (the sending, not the splitting, is what makes those tests slow on moto).
SMALL_CHUNK_BATCHES = 4


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> int:
    """Checkpoint every 200 recipients; returns the chunk size."""
    monkeypatch.setattr(splitting, "CHUNK_BATCHES", SMALL_CHUNK_BATCHES)
    return SMALL_CHUNK_BATCHES * splitting.MAX_RECIPIENTS_PER_BATCH


@pytest.fixture
def pipeline(aws_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Pipeline]:
    with mock_aws(), SmtpRelay(tmp_path / "outbox") as relay:
        resources = provision("test")
        env = {
            **resources["env"],
            "MM_SMTP_HOST": "127.0.0.1",
            "MM_SMTP_PORT": str(relay.port),
            "MM_SIGNING_KEYS": "k2:test-signing-key-2,k1:test-signing-key-1",
            "MM_PROVIDERS": "ses,smtp",
            "MM_SES_MAX_RATE": "5000",  # moto reports the sandbox's 1/s
            "MM_UNSUBSCRIBE_BASE_URL": "https://mail.example.test",
            "POWERTOOLS_METRICS_NAMESPACE": "MassMailer",
            "POWERTOOLS_SERVICE_NAME": "massmailer-test",
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        wiring.reset()
        yield Pipeline(resources=resources, relay=relay, sqs=boto3.client("sqs"))
        wiring.provider_chain().close()
        wiring.reset()


# -- the job table's repositories: one contract, two twins (tests/integration/test_repo_*.py) --------


class Clock:
    """A settable clock for the repositories' leases and TTLs."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@contextmanager
def open_stores(kind: str, clock: Clock, index_provider_ids: bool = True) -> Iterator[Stores]:
    """Every repository over a fresh moto table (``dynamodb``), or the in-memory twins (``memory``)."""
    if kind == "memory":
        yield Stores.in_memory(clock, index_provider_ids=index_provider_ids)
        return
    with mock_aws():
        resources = provision("contract")
        table = boto3.resource("dynamodb").Table(resources["table"])
        yield Stores.dynamo(table, clock, index_provider_ids=index_provider_ids)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["dynamodb", "memory"])
def stores(request: pytest.FixtureRequest, aws_env: None, clock: Clock) -> Iterator[Stores]:
    """Both twins of every repository (the provider-id index on, so every lookup can be checked)."""
    with open_stores(request.param, clock) as opened:
        yield opened
