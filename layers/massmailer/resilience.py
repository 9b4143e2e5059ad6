"""Shared rate limits and circuit breakers, so many concurrent senders act as one.

**Rate limiting** is a token bucket with one-second refill windows kept in the job table: a sender
takes a *chunk* of tokens from the current window with one conditional ``ADD`` (no read, no write per
email) and spends it locally. Priority-aware: the low lane may fill a window only up to
``1 - high_reserve`` of the provider's rate, so the share reserved for the high lane is always there.

**Circuit breaking** keeps each provider's state (closed / open, failures in the current window) in
the job table too. Senders read it at most every few seconds; provider-level failures count towards
opening it; once open, senders skip the provider (failing over) until the cool-down ends, when one
sender wins a conditional write to become the *probe* (half-open): its success closes the circuit
for everyone, its failure re-opens it. Recipient-level errors (bad address, mailbox full) and
throttling never count: a bad address is bad everywhere, and throttling means "later".

**Parking** takes a provider whose daily quota is used up (SES "Daily message quota exceeded") out of
the chain for every sender until its quota's rolling window frees room (``ProviderParking``): the
park is one state item in the job table, read at most every few seconds per sender, and re-checked
against the provider's quota (SES ``GetAccount``) at most once per period for the whole stage.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from massmailer.errors import ProviderDown, SendError, Throttled
from massmailer.store import keys
from massmailer.store.provider_state import SharedState  # the port: shared windows and state

logger = logging.getLogger(__name__)

# --- rate limiting --------------------------------------------------------------------------------


@dataclass
class RateLimit:
    per_second: float
    high_reserve: float = 0.2  # share of each window only the high lane may use
    chunk: int = 0  # tokens taken per shared write; 0 = about a tenth of a second's worth

    def limit_for(self, lane: str) -> int:
        full = max(1, int(self.per_second))
        return full if lane == "high" else max(1, int(full * (1 - self.high_reserve)))

    def chunk_size(self) -> int:
        return self.chunk or max(1, min(50, int(self.per_second / 10)))


@dataclass
class _Allowance:
    window: int = -1
    tokens: int = 0
    exhausted: bool = False  # the shared window is full: don't ask again until the next one


class RateLimiter:
    """Token buckets per provider, shared through ``SharedState``; thread-safe within a process."""

    def __init__(
        self,
        state: SharedState,
        limits: dict[str, RateLimit],
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_wait: float = 2.0,
    ) -> None:
        self._state = state
        self._limits = limits
        self._clock = clock
        self._sleep = sleep
        self._max_wait = max_wait
        self._allowances: dict[tuple[str, str], _Allowance] = {}
        self._lock = threading.Lock()

    def acquire(self, provider: str, lane: str) -> None:
        """Take one token for ``provider`` or raise ``Throttled`` after waiting up to ``max_wait``."""
        limit = self._limits.get(provider)
        if limit is None:
            return
        deadline = self._clock() + self._max_wait
        while True:
            now = self._clock()
            window = int(now)
            with self._lock:
                allowance = self._allowances.setdefault((provider, lane), _Allowance())
                if allowance.window != window:
                    allowance.window, allowance.tokens, allowance.exhausted = window, 0, False
                if allowance.tokens == 0 and not allowance.exhausted:
                    size = limit.chunk_size()
                    key = keys.rate_partition(provider)
                    cap = limit.limit_for(lane)
                    while size >= 1 and not self._state.take_tokens(key, window, size, cap, ttl=120):
                        size //= 2  # the window is nearly full: try a smaller chunk
                    allowance.tokens = max(size, 0)
                    allowance.exhausted = allowance.tokens == 0
                if allowance.tokens > 0:
                    allowance.tokens -= 1
                    return
            if now >= deadline:
                raise Throttled(f"own rate limit for {provider} ({limit.per_second:g}/s) reached", provider=provider)
            self._sleep(max(0.0, min(window + 1 - now, deadline - now)) + 0.001)


# --- circuit breaking ------------------------------------------------------------------------------


@dataclass
class BreakerPolicy:
    failure_threshold: int = 5  # provider-level failures within one window open the circuit
    window_seconds: int = 30
    cooldown_seconds: float = 30.0  # open → half-open after this long
    refresh_seconds: float = 5.0  # how stale a sender's view of the shared state may be
    probe_seconds: float = 30.0  # a half-open probe that never reports back is replaced after this


@dataclass
class _View:
    state: dict[str, Any] = field(default_factory=dict)
    read_at: float = float("-inf")


class _SharedViews:
    """One sender's view of a per-provider item of shared state (the breaker's, a park's): read at
    most every ``refresh_seconds``; written only conditionally on the version it was read at, the
    view then updated (won) or dropped so the next look reads again (lost to another sender)."""

    def __init__(
        self,
        state: SharedState,
        partition: Callable[[str], str],
        refresh_seconds: Callable[[], float],
        clock: Callable[[], float],
    ) -> None:
        self._state = state
        self._partition = partition
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._views: dict[str, _View] = {}
        self._lock = threading.Lock()

    def get(self, provider: str) -> dict[str, Any]:
        now = self._clock()
        with self._lock:
            view = self._views.setdefault(provider, _View())
            if now - view.read_at >= self._refresh_seconds():
                view.state, view.read_at = self._state.get_state(self._partition(provider)), now
            return view.state

    def put(self, provider: str, read: dict[str, Any], values: dict[str, Any]) -> bool:
        """Write ``values`` if the item is still at the version of ``read``."""
        version = read.get("version", 0)
        won = self._state.put_state(self._partition(provider), values, expect={"version": version})
        with self._lock:
            if won:
                self._views[provider] = _View(state={**values, "version": int(version) + 1}, read_at=self._clock())
            else:
                self._views.pop(provider, None)
        return won


class CircuitBreaker:
    CLOSED, OPEN = "closed", "open"

    def __init__(self, state: SharedState, policy: BreakerPolicy | None = None, clock: Callable[[], float] = time.time):
        self._state = state
        self.policy = policy or BreakerPolicy()
        self._clock = clock
        self._me = uuid.uuid4().hex[:12]
        self._shared = _SharedViews(state, keys.breaker_partition, lambda: self.policy.refresh_seconds, clock)
        self._view = self._shared.get

    def status(self, provider: str) -> str:
        return str(self._view(provider).get("state", self.CLOSED))

    def allow(self, provider: str) -> bool:
        """May this sender call ``provider`` now? In half-open, only the one that won the probe may."""
        state = self._view(provider)
        if state.get("state", self.CLOSED) == self.CLOSED:
            return True
        now = self._clock()
        if now < float(state.get("opened_at", 0)) + self.policy.cooldown_seconds:
            return False
        if state.get("probe") == self._me and now < float(state.get("probe_until", 0)):
            return True
        if state.get("probe") and now < float(state.get("probe_until", 0)):
            return False  # someone else is probing
        claimed = {**_plain(state), "probe": self._me, "probe_until": now + self.policy.probe_seconds}
        return self._shared.put(provider, state, claimed)

    def record_success(self, provider: str) -> None:
        state = self._view(provider)
        if state.get("state", self.CLOSED) == self.CLOSED:
            return
        self._shared.put(provider, state, {"state": self.CLOSED, "opened_at": 0, "probe": "", "probe_until": 0})

    def record_failure(self, provider: str, error: SendError) -> None:
        if error.recipient_level or isinstance(error, Throttled):
            return  # never trips the breaker
        state = self._view(provider)
        now = self._clock()
        if state.get("state") == self.OPEN:
            if state.get("probe") == self._me:  # the probe failed: open again for a new cool-down
                self._shared.put(provider, state, {"state": self.OPEN, "opened_at": now, "probe": "", "probe_until": 0})
            return
        window = int(now // self.policy.window_seconds)
        failures = self._state.add_window_count(
            keys.failure_partition(provider), window, ttl=self.policy.window_seconds * 4
        )
        if failures >= self.policy.failure_threshold:
            self._shared.put(provider, state, {"state": self.OPEN, "opened_at": now, "probe": "", "probe_until": 0})


class CircuitOpen(ProviderDown):
    """The provider's circuit is open: skipped without a call (it was not asked, so it refused nothing)."""


# --- parking (a provider out of its daily quota) ---------------------------------------------------


class ProviderParked(Throttled):
    """The provider is parked (daily quota used up): skipped without a call, no attempt used."""

    reason = "parked"


# SES names the daily quota in its message, whatever the code (``LimitExceededException``,
# ``ThrottlingException``, SMTP ``454 Throttling failure``): "Daily message quota exceeded" (AWS
# knowledge-center pages also quote "Daily sending quota exceeded"). The same codes also carry
# "Maximum sending rate exceeded", which is plain throttling: a second later there is room again.
_DAILY_QUOTA_TEXTS = ("daily message quota", "daily sending quota")


def is_quota_exhausted(error: SendError) -> bool:
    """SES's daily sending quota is used up ("Daily message quota exceeded"): no use asking again
    before the quota's rolling 24-hour window frees some room. Decided by the message, not the code."""
    if not isinstance(error, Throttled) or isinstance(error, ProviderParked):
        return False
    text = str(error).lower()
    return any(daily in text for daily in _DAILY_QUOTA_TEXTS)


# (sent in the last 24 hours, the 24-hour maximum) as the provider reports it (SES v2 ``GetAccount``),
# or None when it cannot be read.
QuotaReader = Callable[[], "tuple[float, float] | None"]


@dataclass
class ParkingPolicy:
    recheck_seconds: float = 600.0  # a parked provider's quota is read again at most this often (stage-wide)
    refresh_seconds: float = 5.0  # how stale a sender's view of the park may be


class ProviderParking:
    """Parks a provider whose daily quota is used up, for every sender of the stage (shared state).

    A quota error parks the provider until ``now + recheck_seconds``; the chain skips it meanwhile
    (the next provider carries the mail) and the sender does not even claim recipients when every
    provider is parked. When a park ends, the first sender to need the provider extends the park by
    a conditional write (so one sender per period, stage-wide, does this) and reads the quota
    (``GetAccount``): room again → unparked; still full → parked for another period. Unreadable
    quota: unparked, and the next send finds out (a quota error parks it again).
    """

    def __init__(
        self,
        state: SharedState,
        quotas: dict[str, QuotaReader] | None = None,
        policy: ParkingPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._quotas = quotas or {}
        self.policy = policy or ParkingPolicy()
        self._clock = clock
        self._shared = _SharedViews(state, keys.parking_partition, lambda: self.policy.refresh_seconds, clock)
        self._view = self._shared.get
        self._put = self._shared.put

    def parked_until(self, provider: str) -> float:
        """When the provider's park ends (epoch seconds); 0 when it is not parked. No write."""
        return float(self._view(provider).get("parked_until", 0) or 0)

    def usable(self, provider: str) -> bool:
        """May the provider be called now? Ends an expired park when its quota has room again."""
        state = self._view(provider)
        until = float(state.get("parked_until", 0) or 0)
        if not until:
            return True
        now = self._clock()
        if now < until:
            return False
        # The park has ended: this sender re-checks the quota, having first extended the park (so
        # the others keep skipping the provider meanwhile, and only one sender per period checks).
        if not self._put(provider, state, {**_plain(state), "parked_until": now + self.policy.recheck_seconds}):
            return False  # another sender is checking
        if self._quota_full(provider):
            return False
        return self._put(provider, self._view(provider), {"parked_until": 0, "reason": ""})

    def park(self, provider: str, error: SendError) -> None:
        """The provider said its daily quota is used up: park it for every sender."""
        state = self._view(provider)
        now = self._clock()
        if float(state.get("parked_until", 0) or 0) > now:
            return  # parked already (by another sender)
        until = now + self.policy.recheck_seconds
        if self._put(provider, state, {"parked_until": until, "reason": str(error)[:200]}):
            logger.warning("provider parked: daily quota used up", extra={"provider": provider, "until": until})

    def _quota_full(self, provider: str) -> bool:
        reader = self._quotas.get(provider)
        if reader is None:
            return False
        try:
            quota = reader()
        except Exception as exc:  # noqa: BLE001 - an unreadable quota: try the provider (a quota error re-parks)
            logger.warning("provider quota unreadable", extra={"provider": provider, "error": str(exc)})
            return False
        if quota is None:
            return False
        sent, maximum = quota
        return maximum >= 0 and sent >= maximum


def _plain(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in state.items() if k != "version"}
