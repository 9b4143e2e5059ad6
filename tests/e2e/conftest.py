"""End-to-end tier: the real local runtime (moto in server mode, the SMTP relay, the SES endpoint, the
functions' execution environments, the scheduler loop), on free ports, started and stopped here.

One runtime per test worker, shared by the tests that leave it as they found it; a test that opens
the sender's circuit breaker (an SES outage) starts a runtime of its own.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from local.runtime import LocalRuntime, RuntimeConfig
from massmailer.splitting import recipient_message_id
from massmailer.store import Stores
from massmailer.store.keys import suppression_key

T = TypeVar("T")

# Small on purpose: two cores, two test workers, maybe two runtimes at once.
E2E_ENVIRONMENTS = {"high": 1, "low": 2, "split": 1, "bounce": 1}


def start_runtime(state_dir: Path, **overrides: Any) -> LocalRuntime:
    config = RuntimeConfig(
        api_port=0,
        state_dir=state_dir,
        failed_visibility=1,  # a failed record is retried after 1 s, not the lanes' 12 minutes
        write_state_file=False,
        environments=dict(E2E_ENVIRONMENTS),
        **overrides,
    )
    return LocalRuntime(config).start()


@pytest.fixture(scope="session")
def shared_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    runtime = start_runtime(tmp_path_factory.mktemp("runtime"))
    yield runtime
    runtime.stop()


@pytest.fixture
def rt(shared_runtime: LocalRuntime) -> Iterator[LocalRuntime]:
    yield shared_runtime
    shared_runtime.reset_faults()


@pytest.fixture
def token() -> str:
    """A label that keeps this test's addresses apart from other tests' on the same runtime."""
    return uuid.uuid4().hex[:8]


def wait_for(probe: Callable[[], T | None], timeout: float, interval: float = 0.25, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def store_of(runtime: LocalRuntime) -> Stores:
    return Stores.dynamo(runtime.resource("dynamodb").Table(runtime.resources["table"]))


def suppression_reason(runtime: LocalRuntime, address: str) -> str | None:
    item = runtime.resource("dynamodb").Table(runtime.resources["table"]).get_item(Key=suppression_key(address))
    return (item.get("Item") or {}).get("reason")


def campaign(runtime: LocalRuntime, audience: list[dict[str, Any]], **extra: Any) -> str:
    status, body = runtime.api(
        "POST",
        "/v1/campaigns",
        {
            "name": "e2e",
            "subject": "Hello {{ first_name }}",
            "text": "Hi {{ first_name }} (#{{ n }}). Unsubscribe: {{ unsubscribe_url }}",
            "audience": audience,
            **extra,
        },
    )
    assert status == 202, body
    return str(body["campaign_id"])


def counts(runtime: LocalRuntime, campaign_id: str) -> dict[str, Any]:
    status, body = runtime.api("GET", f"/v1/campaigns/{campaign_id}")
    assert status == 200, body
    return dict(body["counts"], status=body["status"], split_done=body["split_done"])


def message(runtime: LocalRuntime, campaign_id: str, address: str) -> dict[str, Any]:
    status, body = runtime.api("GET", f"/v1/messages/{recipient_message_id(campaign_id, address)}")
    return body if status == 200 else {}


class HeldClock:
    """The scheduler loop's clock, set by the test: what time it is for the loop, whatever the machine's
    speed. ``reads`` counts the loop's reads (one at the start of each of its ticks)."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.reads = 0
        self._cond = threading.Condition()

    def __call__(self) -> datetime:
        with self._cond:
            self.reads += 1
            self._cond.notify_all()
            return self.now

    def set(self, now: datetime) -> None:
        with self._cond:
            self.now = now

    def wait_for_a_whole_tick(self, timeout: float = 120) -> None:
        """Until a tick has started and ended at the time set: two more reads than now."""
        with self._cond:
            target = self.reads + 2
            if not self._cond.wait_for(lambda: self.reads >= target, timeout):
                raise AssertionError(f"the scheduler loop did not tick within {timeout:.0f} s")


@pytest.fixture
def held_clock(rt: LocalRuntime) -> Iterator[HeldClock]:
    assert rt.scheduler is not None
    real = rt.scheduler.clock
    held = HeldClock(real())
    rt.scheduler.clock = held
    yield held
    held.set(real())  # back to the present before the real clock takes over (the loop's last tick)
    held.wait_for_a_whole_tick()
    rt.scheduler.clock = real
