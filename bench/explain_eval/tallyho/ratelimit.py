"""Client-side rate limiting for the bank export API."""

import threading
import time


class RateLimited(Exception):
    """Raised when a call would exceed the budget; ``retry_after`` is in seconds."""

    def __init__(self, retry_after):
        super().__init__(f"rate limited, retry in {retry_after:.2f}s")
        self.retry_after = retry_after


class TokenBucket:
    """Allows ``rate`` calls per second on average, with bursts of up to ``capacity`` calls."""

    def __init__(self, rate, capacity, clock=time.monotonic):
        self.rate = rate
        self.capacity = capacity
        self.clock = clock
        self.tokens = float(capacity)
        self.stamp = clock()
        self.lock = threading.Lock()

    def _refill_locked(self):
        now = self.clock()
        elapsed = now - self.stamp
        self.stamp = now
        self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)

    def take(self, n=1):
        with self.lock:
            self._refill_locked()
            if n > self.capacity:
                raise ValueError("cannot take more than the bucket holds")
            if self.tokens < n:
                raise RateLimited((n - self.tokens) / self.rate)
            self.tokens -= n
