"""The one token bucket: every rate limit in futon is this class.

Users: the embedded IRC server's per-connection flood control, bot mode's
paced ``say`` (one bucket per target and one per connection) and the agent
WebSocket's frame limit. Each passes the clock it lives by (``loop.time``,
``time.monotonic``), and tests pass a fake one, so no test has to sleep to
see a bucket refill.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]
"""Monotonic seconds; only differences between two readings matter."""


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; starts full.

    One token is one unit of work (a line, a frame). :meth:`wait` says how
    long until a token is there, :meth:`take` spends one, :meth:`try_take`
    does both for a caller that refuses instead of waiting. Tokens are
    counted as a float, so a fractional rate refills smoothly.
    """

    def __init__(self, rate: float, burst: float, clock: Clock = time.monotonic) -> None:
        _check(rate, burst)
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def retune(self, rate: float, burst: float) -> None:
        """New limits from now on (a config reload); tokens already saved
        are kept, capped at the new ``burst``."""
        _check(rate, burst)
        self._refill()
        self.rate, self.burst = float(rate), float(burst)
        self._tokens = min(self._tokens, self.burst)

    @property
    def tokens(self) -> float:
        """Tokens available now (may be fractional)."""
        self._refill()
        return self._tokens

    def wait(self) -> float:
        """Seconds until one token is available; 0.0 when one is now."""
        self._refill()
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate

    def full(self) -> bool:
        """Whether the bucket is back to ``burst`` (nothing spent is still owed)."""
        self._refill()
        return self._tokens >= self.burst

    def take(self) -> None:
        """Spend one token. Call after :meth:`wait` said 0: taking from an
        empty bucket goes into debt, which later refills must pay back."""
        self._refill()
        self._tokens -= 1

    def try_take(self) -> bool:
        """Spend one token if there is one; False (nothing spent) otherwise."""
        self._refill()
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._stamp)  # a clock that steps back refills nothing
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._stamp = now


def _check(rate: float, burst: float) -> None:
    if not rate > 0 or not burst >= 1:
        raise ValueError(f"a token bucket needs rate > 0 and burst >= 1 (got {rate}, {burst})")


__all__ = ["Clock", "TokenBucket"]
