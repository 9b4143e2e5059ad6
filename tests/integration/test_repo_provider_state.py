"""The shared provider-state contract (rate-limit windows, breaker state), against DynamoDB (moto)
and the in-memory twin alike."""

from __future__ import annotations

import pytest

from massmailer.store import SharedState, Stores


@pytest.fixture
def state(stores: Stores) -> SharedState:
    return stores.shared_state


def test_token_windows_never_exceed_their_limit(state: SharedState) -> None:
    assert state.take_tokens("RATE#ses", 7, 60, 100, ttl=60) is True
    assert state.take_tokens("RATE#ses", 7, 60, 100, ttl=60) is False
    assert state.take_tokens("RATE#ses", 7, 40, 100, ttl=60) is True
    assert state.take_tokens("RATE#ses", 7, 1, 100, ttl=60) is False
    assert state.take_tokens("RATE#ses", 8, 1, 100, ttl=60) is True
    assert state.take_tokens("RATE#ses", 9, 101, 100, ttl=60) is False  # more than a window holds
    assert [state.add_window_count("FAIL#ses", 3, ttl=60) for _ in range(3)] == [1, 2, 3]


def test_state_items_use_optimistic_locking(state: SharedState) -> None:
    assert state.get_state("BREAKER#ses") == {}
    assert state.put_state("BREAKER#ses", {"state": "open", "opened_at": 12.5}, expect={"version": 0}) is True
    assert state.put_state("BREAKER#ses", {"state": "closed"}, expect={"version": 0}) is False
    current = state.get_state("BREAKER#ses")
    assert current["state"] == "open" and current["opened_at"] == 12.5 and current["version"] == 1
    assert state.put_state("BREAKER#ses", {"state": "closed"}, expect=current) is True
    assert state.get_state("BREAKER#ses")["state"] == "closed"
