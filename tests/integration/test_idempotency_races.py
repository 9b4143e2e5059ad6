"""Idempotency-Key under concurrency, through ``intake`` on DynamoDB (moto) and the in-memory twin:
one key, many requests at once — one is accepted, one email; a crashed first attempt neither wedges
the key nor sends twice; an expired key is new; a campaign retry never resets the campaign."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from massmailer import intake
from massmailer.lifecycle import Action, Actor, move
from massmailer.memory import InMemoryBlobs, InMemoryQueue
from massmailer.models import CampaignRequest, SendRequest
from massmailer.queues import QueueUnavailable
from massmailer.store import Stores
from massmailer.store.idempotency import IDEMPOTENCY_LEASE_SECONDS, IDEMPOTENCY_TTL_SECONDS
from tests.integration.conftest import Clock

THREADS = 10


@pytest.fixture(autouse=True)
def _atomic_moto_writes() -> None:
    """DynamoDB makes each conditional write atomic; moto in process does not serialize concurrent
    requests unless its writes take turns (the local runtime's backend patch, as in the benchmark)."""
    from local.moto_tuning import apply_in_process

    apply_in_process()


class CountingMessages:
    """The messages repository, counting the records ``create_message`` created."""

    def __init__(self, inner: Any) -> None:
        self._inner, self.created = inner, 0
        self._lock = threading.Lock()

    def create_message(self, record: Any, payload: Any) -> bool:
        created = bool(self._inner.create_message(record, payload))
        with self._lock:
            self.created += created
        return created

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _context(stores: Stores, queue: InMemoryQueue | None = None) -> intake.IntakeContext:
    return intake.IntakeContext(
        campaigns=stores.campaigns,
        messages=CountingMessages(stores.messages),  # type: ignore[arg-type]
        suppressions=stores.suppressions,
        idempotency=stores.idempotency,
        queue=queue or InMemoryQueue(),
        blobs=InMemoryBlobs(),
        schedules=None,
        from_address="noreply@example.com",
    )


def _message(n: int = 0) -> SendRequest:
    return SendRequest.model_validate({"to": f"user{n}@example.com", "subject": "Receipt", "text": f"body {n}"})


def _campaign() -> CampaignRequest:
    return CampaignRequest.model_validate(
        {"name": "launch", "subject": "Hi", "text": "Hello", "audience": [{"email": "a@example.com"}]}
    )


def _race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls in threads released together; each one's result or exception."""
    start = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _sent(queue: InMemoryQueue, lane: str) -> list[str]:
    return [body for body, _ in queue.sent.get(lane, [])]


def test_ten_concurrent_requests_with_one_key_and_different_bodies_send_one_email(stores: Stores) -> None:
    ctx = _context(stores)
    results = _race([lambda n=n: intake.accept_message(ctx, _message(n), "order-1") for n in range(THREADS)])

    accepted = [r for r in results if isinstance(r, intake.Accepted)]
    assert len(accepted) == 1 and accepted[0].status_code == 202 and not accepted[0].replayed
    assert all(isinstance(r, intake.Conflict | intake.KeyInFlight) for r in results if r is not accepted[0])
    assert ctx.messages.created == 1  # type: ignore[attr-defined]
    assert len(_sent(ctx.queue, "high")) == 1  # type: ignore[arg-type]
    assert accepted[0].body["message_id"] in _sent(ctx.queue, "high")[0]  # type: ignore[arg-type]


class HeldQueue(InMemoryQueue):
    """A queue whose first send waits until ``release`` is set (the winner is still in flight);
    any later send goes through at once."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.entered = threading.Event()
        self._first = threading.Lock()

    def send(self, queue: str, bodies: Sequence[str], delay_seconds: int = 0) -> None:
        if self._first.acquire(blocking=False):
            self.entered.set()
            self.release.wait()
        super().send(queue, bodies, delay_seconds)


def test_a_concurrent_request_with_the_same_body_gets_in_flight_with_retry_after(stores: Stores) -> None:
    queue = HeldQueue()
    ctx = _context(stores, queue)
    winner: list[Any] = []
    first = threading.Thread(target=lambda: winner.append(intake.accept_message(ctx, _message(), "order-2")))
    first.start()
    queue.entered.wait()  # the first request holds the key, in flight

    others = _race([lambda: intake.accept_message(ctx, _message(), "order-2") for _ in range(THREADS - 1)])
    queue.release.set()
    first.join()

    assert all(isinstance(r, intake.KeyInFlight) and 1 <= r.retry_after <= IDEMPOTENCY_LEASE_SECONDS for r in others)
    assert winner[0].status_code == 202 and ctx.messages.created == 1  # type: ignore[attr-defined]
    replay = intake.accept_message(ctx, _message(), "order-2")
    assert replay.replayed and (replay.status_code, replay.body) == (202, winner[0].body)
    assert len(_sent(queue, "high")) == 1


def test_an_expired_key_is_a_new_request_with_new_ids(stores: Stores, clock: Clock) -> None:
    ctx = _context(stores)
    first = intake.accept_message(ctx, _message(1), "order-3")
    clock.now += IDEMPOTENCY_TTL_SECONDS + 1

    again = intake.accept_message(ctx, _message(2), "order-3")

    assert again.status_code == 202 and not again.replayed
    assert again.body["message_id"] != first.body["message_id"]
    assert ctx.messages.created == 2 and len(_sent(ctx.queue, "high")) == 2  # type: ignore[attr-defined,arg-type]
    assert stores.messages.get_message(again.body["message_id"])["email"] == "user2@example.com"  # type: ignore[index]


class FailingOnce(InMemoryQueue):
    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    def send(self, queue: str, bodies: Sequence[str], delay_seconds: int = 0) -> None:
        if self.failures:
            self.failures -= 1
            raise QueueUnavailable("queue down")
        super().send(queue, bodies, delay_seconds)


def test_a_request_that_failed_half_way_is_finished_by_its_retry_with_the_same_ids(stores: Stores) -> None:
    ctx = _context(stores, FailingOnce())
    with pytest.raises(QueueUnavailable):
        intake.accept_message(ctx, _message(), "order-4")  # the record is written, the enqueue fails

    retry = intake.accept_message(ctx, _message(), "order-4")  # at once: the lease was released

    assert retry.status_code == 202 and ctx.messages.created == 1  # type: ignore[attr-defined]
    assert [retry.body["message_id"] in body for body in _sent(ctx.queue, "high")] == [True]  # type: ignore[arg-type]


def test_a_crash_in_flight_does_not_wedge_the_key_past_its_lease(stores: Stores, clock: Clock) -> None:
    ctx = _context(stores)
    body = _message().model_dump(mode="json", by_alias=True)
    crashed = stores.idempotency.begin("message:order-5", intake._request_hash(body), {"message_id": "msg-crashed"})
    assert crashed.outcome == "claimed"  # and then the process died: no finish, no release

    with pytest.raises(intake.KeyInFlight):
        intake.accept_message(ctx, _message(), "order-5")
    clock.now += IDEMPOTENCY_LEASE_SECONDS + 1
    retry = intake.accept_message(ctx, _message(), "order-5")

    assert retry.status_code == 202 and retry.body["message_id"] == "msg-crashed"


def test_concurrent_campaign_requests_create_one_campaign(stores: Stores) -> None:
    ctx = _context(stores)
    results = _race([lambda: intake.accept_campaign(ctx, _campaign(), "launch-1") for _ in range(THREADS)])

    accepted = [r for r in results if isinstance(r, intake.Accepted)]
    assert len({a.body["campaign_id"] for a in accepted}) == 1
    assert all(isinstance(r, intake.Accepted | intake.KeyInFlight) for r in results)
    assert sum(not a.replayed for a in accepted) == 1
    assert len(_sent(ctx.queue, "split")) == 1  # type: ignore[arg-type]


def test_a_campaign_retry_never_resets_its_counters_or_split_cursor(stores: Stores) -> None:
    ctx = _context(stores, FailingOnce())
    with pytest.raises(QueueUnavailable):
        intake.accept_campaign(ctx, _campaign(), "launch-2")  # created; its split request not enqueued
    (campaign_id,) = {k.removeprefix("CAMPAIGN#") for k in _campaign_ids(stores)}
    assert stores.campaigns.advance_split(campaign_id, 0, 7, {"total": 1}, True)  # the splitter got going
    stores.campaigns.add_campaign_counts(campaign_id, {"sent": 1})

    retry = intake.accept_campaign(ctx, _campaign(), "launch-2")

    stored = stores.campaigns.get_campaign(campaign_id)
    assert retry.body["campaign_id"] == campaign_id and stored is not None
    assert (stored.split_cursor, stored.split_done, stored.counts.total, stored.counts.sent) == (7, True, 1, 1)


def _crashed_before_its_split_request(stores: Stores) -> tuple[intake.IntakeContext, str]:
    ctx = _context(stores, FailingOnce())
    with pytest.raises(QueueUnavailable):
        intake.accept_campaign(ctx, _campaign(), "launch-3")  # created; its split request not enqueued
    (campaign_id,) = _campaign_ids(stores)
    return ctx, campaign_id


def test_a_campaign_retry_before_any_split_enqueues_the_split_request_once(stores: Stores) -> None:
    ctx, campaign_id = _crashed_before_its_split_request(stores)
    retry = intake.accept_campaign(ctx, _campaign(), "launch-3")
    assert (retry.body["campaign_id"], retry.body["status"]) == (campaign_id, "SPLITTING")
    assert [campaign_id in body for body in _sent(ctx.queue, "split")] == [True]  # type: ignore[arg-type]


@pytest.mark.parametrize("moves", [[Action.CANCEL], [Action.FINISH_SPLIT], [Action.PAUSE]])
def test_a_campaign_retry_answers_the_stored_status_and_enqueues_no_second_split(
    stores: Stores, moves: list[Action]
) -> None:
    ctx, campaign_id = _crashed_before_its_split_request(stores)
    actor = {Action.CANCEL: Actor.OPERATOR, Action.PAUSE: Actor.OPERATOR, Action.FINISH_SPLIT: Actor.SPLITTER}
    if moves == [Action.FINISH_SPLIT]:  # split by a request that did go out, then sending
        assert stores.campaigns.advance_split(campaign_id, 0, 7, {"total": 1}, True)
    for action in moves:
        stores.campaigns.transition(campaign_id, move(action, actor[action]))
    status = stores.campaigns.status_of(campaign_id)
    assert status is not None and status.value != "SPLITTING"

    retry = intake.accept_campaign(ctx, _campaign(), "launch-3")

    assert (retry.body["campaign_id"], retry.body["status"]) == (campaign_id, status.value)
    assert _sent(ctx.queue, "split") == []  # type: ignore[arg-type]


def _campaign_ids(stores: Stores) -> list[str]:
    page = stores.campaigns.list_campaigns(10)
    return [s.campaign_id for s in page.items]
