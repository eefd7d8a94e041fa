"""A small cache of exchange rates: least recently used entries go first, and entries expire."""

import time
from collections import OrderedDict


class ExpiringCache:
    def __init__(self, max_items=128, ttl=600.0, clock=time.monotonic):
        self.max_items = max_items
        self.ttl = ttl
        self.clock = clock
        self.items = OrderedDict()

    def get(self, key, default=None):
        item = self.items.get(key)
        if item is None:
            return default
        value, expires = item
        if expires <= self.clock():
            del self.items[key]
            return default
        self.items.move_to_end(key)
        return value

    def put(self, key, value):
        self.items[key] = (value, self.clock() + self.ttl)
        self.items.move_to_end(key)
        while len(self.items) > self.max_items:
            self.items.popitem(last=False)

    def purge_expired(self):
        """Drops every expired entry; returns how many were dropped."""
        now = self.clock()
        stale = [k for k, (_, expires) in self.items.items() if expires <= now]
        for k in stale:
            del self.items[k]
        return len(stale)
