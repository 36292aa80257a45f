"""Per-peer receive limits: token buckets that slow a fast peer down, and tell a flood apart.

A connection reads its next message only after the bucket allows it: while it waits, aiohttp
stops reading the socket once its small buffer is full, so TCP pushes back on the sender
(backpressure) and a flooding peer costs no more than the rate allows. A peer that sends at
least half the message rate for a whole ``flood_seconds`` is flooding: the caller ends its
session with a typed ``RateLimited`` error.

No clock is read here: the caller passes ``now`` in seconds (the event loop's time).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    """``rate`` units per second, up to ``burst`` saved up."""

    rate: float
    burst: float
    tokens: float = field(init=False)
    stamp: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self, amount: float, now: float) -> float:
        """Spend ``amount``; returns how many seconds to wait before the spending is covered."""
        if self.stamp is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= amount
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


@dataclass
class ReceiveLimiter:
    """Messages and bytes per second from one peer, and the flood verdict.

    Both buckets slow the reader down; only the message count can make a flood. Bytes are what
    an honest peer sends fast (a catalogue on a LAN), so they only ever cost waiting; many
    small messages are what no honest peer sends for long. The verdict counts messages per
    window of ``flood_seconds``: at least half the message rate over a whole window is a flood
    (the reader's own pace, slowed by a busy loop, keeps a flooder near but not always over it).
    """

    messages_per_s: float
    bytes_per_s: float
    flood_seconds: float
    messages: TokenBucket = field(init=False)
    data: TokenBucket = field(init=False)
    throttled_total: float = 0.0  # for status: all the waiting this session
    flooding: bool = False
    _window_start: float | None = None
    _window_count: int = 0

    def __post_init__(self) -> None:
        # A burst of ten seconds' worth: a whole frontier or a batch of entries at once is fine.
        self.messages = TokenBucket(self.messages_per_s, self.messages_per_s * 10)
        self.data = TokenBucket(self.bytes_per_s, self.bytes_per_s * 2)

    def on_message(self, size: int, now: float) -> float:
        """Count one received message; returns the seconds to wait before reading the next."""
        if self._window_start is None:
            self._window_start = now
        elapsed = now - self._window_start
        if elapsed >= self.flood_seconds:
            if self._window_count >= self.messages_per_s * elapsed / 2:
                self.flooding = True
            self._window_start, self._window_count = now, 0
        self._window_count += 1
        wait = max(self.messages.take(1, now), self.data.take(size, now))
        self.throttled_total += wait
        return wait
