"""The workload every benchmark sends, and the fakes that stand in for AWS around the real code.

One personalised newsletter (Jinja2 subject, text and HTML bodies with a handful of variables, a
conditional and the one-click unsubscribe URL: ~3.5 KB on the wire), recipients with their own
variables, and the SQS Lambda events the sender handler receives (10 records of 50 recipients, as
the low lane's event source delivers them).
"""

from __future__ import annotations

import json
import os
import random
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from massmailer.memory import InMemoryQueue
from massmailer.mime import OutgoingEmail
from massmailer.models import BatchMessage, BatchRecipient, Campaign, CampaignStatus, Content, Lane
from massmailer.providers.base import SendReceipt
from massmailer.providers.chain import ProviderChain
from massmailer.sending import RetryPolicy, SenderContext
from massmailer.spec import LOW_LANE, MAX_RECIPIENTS_PER_BATCH
from massmailer.store import InMemoryStores, Stores
from massmailer.unsubscribe import Unsubscriber, parse_signing_keys

CAMPAIGN_ID = "cmp-bench"
FROM_ADDRESS = "news@massmailer.test"
SIGNING_KEYS = "bench1:bench-signing-key-1"
UNSUBSCRIBE_BASE = "https://mail.massmailer.test"

SUBJECT = "{{ first_name }}, your {{ month }} digest from {{ city }}"
TEXT = """Hello {{ first_name }} {{ last_name }},

Here is what happened in {{ city }} this {{ month }}.
{% if plan == "pro" %}As a Pro member you get early access to every event below.
{%- else %}Upgrade to Pro for early access.{% endif %}

Your personal code is {{ code }}; show it at the door for {{ discount }}% off.

- The harbour festival returns on the first weekend, with music on three stages.
- The city library opens late on Thursdays, with a reading club for every age.
- Cycling lanes on the river road are finally finished: ride safely and say hello.
- Our partner cafes offer a second coffee free to readers of this newsletter.

Account: {{ email }} - member since {{ since }}.
You receive this because you subscribed at massmailer.test.
Unsubscribe in one click: {{ unsubscribe_url }}
"""
HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>{{ month }} digest</title></head>
<body style="font-family: Helvetica, Arial, sans-serif; color: #222; max-width: 640px; margin: auto">
<h1 style="font-size: 22px">Hello {{ first_name }} {{ last_name }},</h1>
<p>Here is what happened in <strong>{{ city }}</strong> this {{ month }}.</p>
{% if plan == "pro" %}<p class="pro">As a <b>Pro</b> member you get early access to every event below.</p>
{% else %}<p><a href="https://massmailer.test/upgrade?u={{ code }}">Upgrade to Pro</a> for early access.</p>{% endif %}
<p>Your personal code is <code style="font-size: 18px">{{ code }}</code>; show it at the door for
{{ discount }}% off.</p>
<ul>
<li>The harbour festival returns on the first weekend, with music on three stages.</li>
<li>The city library opens late on Thursdays, with a reading club for every age.</li>
<li>Cycling lanes on the river road are finally finished: ride safely and say hello.</li>
<li>Our partner cafes offer a second coffee free to readers of this newsletter.</li>
</ul>
<p style="font-size: 12px; color: #777">Account: {{ email }} &middot; member since {{ since }}.<br>
You receive this because you subscribed at massmailer.test.
<a href="{{ unsubscribe_url }}">Unsubscribe in one click</a>.</p>
</body></html>
"""

CONTENT = Content(subject=SUBJECT, text=TEXT, html=HTML)
CITIES = ["Lisbon", "Porto", "Zürich", "Kraków", "Malmö", "Dublin", "Gent", "Tallinn", "Ljubljana", "Sevilla"]
FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "John", "Margaret", "Ken", "Radia", "José"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Backus", "Hamilton", "Thompson"]


def variables_for(i: int) -> dict[str, Any]:
    return {
        "first_name": FIRST[i % len(FIRST)],
        "last_name": LAST[(i // 7) % len(LAST)],
        "city": CITIES[(i // 3) % len(CITIES)],
        "month": "November",
        "plan": "pro" if i % 4 == 0 else "basic",
        "code": f"MM{i:08d}",
        "discount": 5 + i % 20,
        "since": 2010 + i % 15,
    }


def address_for(i: int, domain: str = "example.com") -> str:
    return f"user{i:07d}@{domain}"


def campaign(campaign_id: str = CAMPAIGN_ID, lane: Lane = Lane.LOW) -> Campaign:
    return Campaign(
        campaign_id=campaign_id,
        name="Bench newsletter",
        content=CONTENT,
        lane=lane,
        from_address=FROM_ADDRESS,
        from_name="MassMailer News",
        audience_key=f"audiences/{campaign_id}.jsonl",
        created_at=datetime.now(UTC),
        status=CampaignStatus.SENDING,
    )


def batches(n: int, start: int = 0, campaign_id: str = CAMPAIGN_ID, lane: Lane = Lane.LOW) -> list[BatchMessage]:
    """``n`` recipients (``start`` .. ``start+n-1``) in batches of ≤50, as the splitter cuts them."""
    out = []
    for first in range(start, start + n, MAX_RECIPIENTS_PER_BATCH):
        last = min(first + MAX_RECIPIENTS_PER_BATCH, start + n)
        out.append(
            BatchMessage(
                kind="campaign",
                campaign_id=campaign_id,
                lane=lane,
                recipients=[
                    BatchRecipient(
                        message_id=f"{campaign_id}.{i:08x}", email=address_for(i), variables=variables_for(i)
                    )
                    for i in range(first, last)
                ],
            )
        )
    return out


def sqs_events(messages: Sequence[BatchMessage], per_event: int = LOW_LANE.batch_size) -> list[dict[str, Any]]:
    """The SQS Lambda events the event source would hand the sender (``per_event`` records each)."""
    arn = "arn:aws:sqs:us-east-1:123456789012:massmailer-bench-low"
    events = []
    for start in range(0, len(messages), per_event):
        records = []
        for j, message in enumerate(messages[start : start + per_event]):
            records.append(
                {
                    "messageId": f"m-{start + j}",
                    "receiptHandle": f"rh-{start + j}",
                    "body": message.model_dump_json(),
                    "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
                    "messageAttributes": {},
                    "md5OfBody": "",
                    "eventSource": "aws:sqs",
                    "eventSourceARN": arn,
                    "awsRegion": "us-east-1",
                }
            )
        events.append({"Records": records})
    return events


def unsubscriber() -> Unsubscriber:
    return Unsubscriber(keys=parse_signing_keys(SIGNING_KEYS), base_url=UNSUBSCRIBE_BASE)


def store_with_campaign(store: InMemoryStores | None = None, campaign_id: str = CAMPAIGN_ID) -> InMemoryStores:
    store = store or Stores.in_memory()
    if campaign_id not in store.campaigns.by_id:
        store.campaigns.put_campaign(campaign(campaign_id))
    return store


def provider_chain(providers: Sequence[Any], store: Any, limits: dict[str, Any] | None = None) -> ProviderChain:
    """The chain as ``massmailer.wiring`` builds it — with the shared circuit breaker and rate limiter
    over ``store``'s shared state when the engine has them — so their cost per email is counted too."""
    try:
        from massmailer.resilience import CircuitBreaker, RateLimiter
    except ImportError:
        return ProviderChain(list(providers))
    try:
        return ProviderChain(
            list(providers),
            breaker=CircuitBreaker(store.shared_state),
            limiter=RateLimiter(store.shared_state, limits or {}),
        )
    except TypeError:  # an engine whose chain takes no guards
        return ProviderChain(list(providers))


def chain_guards(chain: ProviderChain) -> list[str]:
    return [name for name in ("breaker", "limiter") if getattr(chain, name, None) is not None]


def sender_context(providers: Sequence[Any], store: Stores | None = None, **overrides: Any) -> SenderContext:
    """A SenderContext over in-memory fakes; engine defaults (e.g. ``concurrency``) unless overridden."""
    store = store_with_campaign(store) if store is None or isinstance(store, InMemoryStores) else store
    return SenderContext(
        campaigns=store.campaigns,
        messages=store.messages,
        suppressions=store.suppressions,
        markers=store.markers,
        queue=overrides.pop("queue", None) or InMemoryQueue(),
        chain=overrides.pop("chain", None) or provider_chain(providers, store),
        from_address=FROM_ADDRESS,
        unsubscriber=unsubscriber(),
        policy=RetryPolicy(),
        rng=random.Random(7),
        **overrides,
    )


@dataclass
class NullProvider:
    """A provider that accepts everything at once: what is left is the engine's own cost."""

    name: str = "fake"
    sent: int = 0
    bytes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, email: OutgoingEmail) -> SendReceipt:
        with self._lock:
            self.sent += 1
            self.bytes += len(email.raw)
        return SendReceipt(provider=self.name, provider_message_id=email.message_id)

    def close(self) -> None:
        return None


class CountingQueue:
    """The Queue port, faked: counts what would go to SQS (requests of ≤10, bytes) and keeps nothing."""

    def __init__(self) -> None:
        self.messages = 0
        self.requests = 0
        self.bytes = 0
        self.recipients = 0
        self._lock = threading.Lock()

    def send(self, queue: str, bodies: Sequence[str], delay_seconds: int = 0) -> None:
        with self._lock:
            self.messages += len(bodies)
            self.requests += (len(bodies) + 9) // 10
            self.bytes += sum(len(b) for b in bodies)


class FileBlobs:
    """The Blobs port over a directory: ``blocks`` streams a file from a byte offset in 1 MiB reads, as
    ``S3Blobs`` streams a ranged GET, so the splitter's memory is measured honestly."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / key.replace("/", "__")

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.path(key).write_bytes(data)

    def head(self, key: str, max_bytes: int, if_match: str | None = None) -> Any:
        from massmailer.blobs import BlobHead

        path = self.path(key)
        if not path.exists():
            return None
        with path.open("rb") as f:
            return BlobHead(f.read(max_bytes), path.stat().st_size, None)

    def blocks(self, key: str, start: int = 0, if_match: str | None = None) -> Iterator[tuple[bytes, int]]:
        from massmailer.blobs import READ_SIZE, line_blocks

        with self.path(key).open("rb") as f:
            f.seek(start)
            yield from line_blocks(iter(lambda: f.read(READ_SIZE), b""), start)


def quiet_powertools() -> None:
    """Handlers log a line per batch at INFO and flush EMF metrics to stdout: keep the table readable."""
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "massmailer-bench")
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "MassMailer")


def silence_stdout_fd() -> None:
    """In a worker process: send fd 1 (EMF metrics, log lines) to /dev/null."""
    import sys

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the worker process


def audience_jsonl_line(i: int) -> bytes:
    return (json.dumps({"email": address_for(i), "variables": variables_for(i)}, separators=(",", ":")) + "\n").encode()
