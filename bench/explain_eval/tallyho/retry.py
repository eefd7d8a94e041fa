"""Retrying flaky bank downloads with capped exponential backoff."""

import random
import time


class Backoff:
    """Delays base, base*factor, ... capped at ``cap``; with ``jitter`` each delay is drawn from [0, delay]."""

    def __init__(self, base=0.5, factor=2.0, cap=30.0, attempts=5, jitter=True, rng=None):
        self.base = base
        self.factor = factor
        self.cap = cap
        self.attempts = attempts
        self.jitter = jitter
        self.rng = rng or random.Random()

    def delays(self):
        delay = self.base
        for _ in range(self.attempts - 1):
            yield self.rng.uniform(0, delay) if self.jitter else delay
            delay = min(self.cap, delay * self.factor)


def run_with_retry(fn, backoff, retry_on=(TimeoutError, ConnectionError), sleep=time.sleep):
    """Calls ``fn`` until it succeeds; retries only ``retry_on`` errors, and re-raises the last one."""
    last = None
    for delay in [*backoff.delays(), None]:
        try:
            return fn()
        except retry_on as e:
            last = e
            if delay is None:
                break
            sleep(delay)
    raise last
