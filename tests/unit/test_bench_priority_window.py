"""Benchmark 5's measuring window is bounded by events, not by how fast the machine is: the low lane's
drain cannot finish before the window opens (its last message is held back until then), and its rate
meanwhile spans at least one of its batches however short the window. Times here are injected."""

from __future__ import annotations

from bench.priority import FakeSqs, rate_over_window

URL = "https://sqs.us-east-1.amazonaws.com/123456789012/low"


def _send(sqs: FakeSqs, n: int) -> None:
    sqs.send_message_batch(QueueUrl=URL, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(n)])


def _receive_all(sqs: FakeSqs) -> list[dict[str, str]]:
    return sqs.receive_message(QueueUrl=URL, MaxNumberOfMessages=10).get("Messages", [])


def test_a_held_queue_keeps_its_last_message_back_until_released() -> None:
    sqs = FakeSqs()
    sqs.hold_last(URL)
    _send(sqs, 3)

    first = _receive_all(sqs)
    assert len(first) == 2  # not the last one, although up to 10 were asked for
    assert _receive_all(sqs) == []  # and still not, however often the lane polls
    sqs.delete_message_batch(
        QueueUrl=URL, Entries=[{"Id": m["MessageId"], "ReceiptHandle": m["ReceiptHandle"]} for m in first]
    )
    stats = sqs.stats(URL)
    assert (stats["visible"], stats["inflight"], stats["emptied_at"]) == (1, 0, None)  # the drain is not over

    sqs.release(URL)
    last = _receive_all(sqs)
    assert len(last) == 1
    sqs.delete_message_batch(QueueUrl=URL, Entries=[{"Id": "x", "ReceiptHandle": last[0]["ReceiptHandle"]}])
    stats = sqs.stats(URL)
    assert stats["emptied_at"] is not None
    # progress events: the first receive (0 done), then each deletion with the messages done so far
    assert [done for _, done in stats["progress"]] == [0, 2, 3]
    times = [t for t, _ in stats["progress"]]
    assert times == sorted(times)


def test_a_window_shorter_than_one_batch_measures_the_batch_that_ran_through_it() -> None:
    # batches done at t=10 (2 messages) and t=20 (3); the window [12, 13] sees no deletion itself
    progress = [(5.0, 0), (10.0, 2), (20.0, 3)]
    assert rate_over_window(progress, 12.0, 13.0, per_message=50) == 50 / 10.0  # (10, 20]: one message


def test_a_window_spanning_several_events_uses_the_events_around_it() -> None:
    progress = [(0.0, 0), (1.0, 1), (2.0, 2), (3.0, 3), (4.0, 4)]
    assert rate_over_window(progress, 1.5, 2.5, per_message=50) == 2 * 50 / 2.0  # from t=1 to t=3


def test_a_drain_that_ends_inside_the_window_is_measured_until_its_last_event() -> None:
    progress = [(0.0, 0), (4.0, 1), (6.0, 2)]
    assert rate_over_window(progress, 5.0, 9.0, per_message=50) == 50 / 2.0  # from t=4 to its end at t=6


def test_a_drain_that_starts_inside_the_window_is_measured_from_the_window_start() -> None:
    progress = [(6.0, 0), (8.0, 1)]
    assert rate_over_window(progress, 5.0, 7.0, per_message=50) == 50 / 3.0


def test_no_rate_without_a_message_done_after_the_window_opened() -> None:
    assert rate_over_window([(0.0, 0), (1.0, 4)], 2.0, 3.0, per_message=50) is None
    assert rate_over_window([], 2.0, 3.0, per_message=50) is None
