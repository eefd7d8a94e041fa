"""The feature table: features keyed by 64-bit hashes of their names, with every feature's hypervector, role and
document frequency held in columns indexed by a small integer id.

No Python object per feature: a name is hashed (``vsa.keys_of``, vectorised) and looked up in a sorted key column
with ``searchsorted``; keys added since the column was last merged wait in a small dict, merged in one sort when it
grows (amortised O(log n) per new feature). Only the words (``t:`` features) keep their text, which the semantic
layer needs. An id is released the moment no live chunk uses its feature (document frequency 0) and handed out
again, so the stream of transient identifiers that typing produces (``fo``, ``foo``, ``foob``…) never accumulates.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from . import kernels, vsa

ROLES = "tidcamo"                     # role codes: index into this string
ROLE_WEIGHT = np.array([1, 2, 3, 1, 1, 2, 1], np.int16)
LEXICAL_ROLES = np.array([c in "ti" for c in ROLES])
MERGE_MIN = 65_536                    # recent keys tolerated before they are merged into the sorted column


def hypervectors(names: list[str], keys: np.ndarray | None = None) -> np.ndarray:
    """HVs of feature names, shape (n, BLOCKS) int64. An ordered pair ``o:a b`` is ``bind(permute(hv(t:a)), hv(t:b))``;
    every other feature is the HV seeded by its key (``keys``: the names' ``vsa.keys_of``, when already known)."""
    keys = vsa.keys_of(names) if keys is None else keys
    pairs = [i for i, n in enumerate(names) if n.startswith("o:")]
    if not pairs:
        return kernels.random_hvs(keys)
    firsts, seconds = zip(*(names[i][2:].partition(" ")[::2] for i in pairs))
    words = vsa.keys_of(["t:" + w for w in firsts] + ["t:" + w for w in seconds])
    hvs = kernels.random_hvs(np.concatenate([keys, words]))   # one pass for names and pair words
    n, p = len(names), len(pairs)
    hvs[pairs] = vsa.bind(vsa.permute(hvs[n:n + p], 1), hvs[n + p:])
    return hvs[:n]


_ROLE_OF_PREFIX = {c + ":": i for i, c in enumerate(ROLES)}


def role_of(name: str) -> int:
    return _ROLE_OF_PREFIX.get(name[:2], 0)


class FeatureTable:
    """Columns indexed by feature id: ``key`` uint64, ``hv`` (n, BLOCKS) int16 slots, ``role`` uint8, ``df`` int32;
    ``words`` maps the id of each ``t:`` feature to its word."""

    def __init__(self, capacity: int = 1024) -> None:
        self.key = np.zeros(capacity, np.uint64)
        self.hv = np.zeros((capacity, vsa.BLOCKS), np.int16)
        self.role = np.zeros(capacity, np.uint8)
        self.df = np.zeros(capacity, np.int32)
        self.words: dict[int, str] = {}
        self.free: list[int] = []
        self._size = 0                                   # one past the largest id ever handed out
        self._live = 0
        self._sorted_keys = np.zeros(0, np.uint64)       # merged keys, sorted, and their ids (-1: released)
        self._sorted_ids = np.zeros(0, np.int32)
        self._recent: dict[int, int] = {}                # key -> id, added since the last merge
        self._dense = np.zeros(0, np.float64)            # see ``dense``

    def __len__(self) -> int:
        """Live features."""
        return self._live

    @property
    def size(self) -> int:
        """One past the largest id ever handed out (the length of the used part of each column)."""
        return self._size

    def _grow(self, needed: int) -> None:
        cap = len(self.role)
        if needed <= cap:
            return
        cap = max(needed, 2 * cap)
        for name in ("key", "hv", "role", "df"):
            old = getattr(self, name)
            new = np.zeros((cap,) + old.shape[1:], old.dtype)
            new[:len(old)] = old
            setattr(self, name, new)

    def shrink(self) -> None:
        """Drops the columns' spare capacity after a large index (see ``ChunkTable.shrink``)."""
        keep = max(1024, self._size + self._size // 16)
        self._dense = np.zeros(0, np.float64)
        if len(self.role) > keep + keep // 4:
            for name in ("key", "hv", "role", "df"):
                setattr(self, name, getattr(self, name)[:keep].copy())

    def _find(self, keys: np.ndarray) -> np.ndarray:
        """Ids of keys (int64, -1 where unknown)."""
        out = np.full(len(keys), -1, np.int64)
        if len(self._sorted_keys):
            pos = np.minimum(np.searchsorted(self._sorted_keys, keys), len(self._sorted_keys) - 1)
            hit = self._sorted_keys[pos] == keys
            out[hit] = self._sorted_ids[pos[hit]]
        if self._recent:
            get = self._recent.get
            miss = np.flatnonzero(out < 0)
            if len(miss):
                out[miss] = np.fromiter((get(k, -1) for k in keys[miss].tolist()), np.int64, len(miss))
        return out

    def _merge(self) -> None:
        """Folds the recent keys into the sorted column, dropping released entries."""
        keep = self._sorted_ids >= 0
        keys = np.concatenate([self._sorted_keys[keep], np.fromiter(self._recent.keys(), np.uint64,
                                                                     len(self._recent))])
        ids = np.concatenate([self._sorted_ids[keep], np.fromiter(self._recent.values(), np.int32,
                                                                   len(self._recent))])
        order = np.argsort(keys, kind="stable")
        self._sorted_keys, self._sorted_ids = keys[order], ids[order]
        self._recent = {}

    def intern(self, names: list[str]) -> np.ndarray:
        """Ids of ``names`` (int32), adding the new ones with their HVs computed in one vectorised batch."""
        if not names:
            return np.zeros(0, np.int32)
        keys = vsa.keys_of(names)
        ids = self._find(keys)
        missing = np.flatnonzero(ids < 0)
        if len(missing):
            new_keys, first = np.unique(keys[missing], return_index=True)
            new_names = [names[i] for i in missing[first].tolist()]
            reuse = self.free[-len(new_keys):] if self.free else []
            del self.free[len(self.free) - len(reuse):]
            slots = np.asarray(reuse + list(range(self._size, self._size + len(new_keys) - len(reuse))), np.int64)
            self._size += len(new_keys) - len(reuse)
            self._live += len(new_keys)
            self._grow(self._size)
            self.key[slots] = new_keys
            self.hv[slots] = hypervectors(new_names, new_keys)
            get = _ROLE_OF_PREFIX.get
            self.role[slots] = np.fromiter((get(n[:2], 0) for n in new_names), np.uint8, len(new_names))
            self.df[slots] = 0
            self._recent.update(zip(new_keys.tolist(), slots.tolist()))
            for n, i in zip(new_names, slots.tolist()):
                if n.startswith("t:"):
                    self.words[i] = n[2:]
            if len(self._recent) > max(MERGE_MIN, len(self._sorted_keys) // 4):
                self._merge()
            ids[missing] = slots[np.searchsorted(new_keys, keys[missing])]
        return ids.astype(np.int32)

    def lookup(self, name: str) -> int:
        """The id of a live feature, or -1."""
        return int(self._find(vsa.keys_of([name]))[0])

    def lookup_many(self, names: list[str]) -> np.ndarray:
        """Ids of live features (int64, -1 where unknown), in one batch."""
        return self._find(vsa.keys_of(names)) if names else np.zeros(0, np.int64)

    def count(self, ids: np.ndarray, sign: int) -> None:
        """Adds ``sign`` to the document frequency of each id (a chunk's distinct features); releases ids that
        reach zero."""
        if len(ids) == 0:
            return
        np.add.at(self.df, ids, sign)
        if sign < 0:
            dead = np.unique(ids[self.df[ids] <= 0])
            if len(dead):
                self._release(dead)

    def _release(self, dead: np.ndarray) -> None:
        keys = self.key[dead]
        for k in keys.tolist():
            self._recent.pop(k, None)
        if len(self._sorted_keys):
            pos = np.minimum(np.searchsorted(self._sorted_keys, keys), len(self._sorted_keys) - 1)
            hit = self._sorted_keys[pos] == keys
            self._sorted_ids[pos[hit]] = -1
        for i in dead.tolist():
            self.words.pop(i, None)
        self.df[dead] = 0
        self.free.extend(dead.tolist())
        self._live -= len(dead)

    @contextmanager
    def dense(self, ids: np.ndarray, values: np.ndarray):
        """``values`` at ``ids`` in a float64 array over every feature id (zeros elsewhere), for kernels that look
        query weights up by id. One buffer serves every query (callers hold the engram's lock): a fresh one was
        8 bytes per feature, 6 MB at 800k features, allocated and zeroed twice per search."""
        if len(self._dense) < self._size:
            self._dense = np.zeros(len(self.role), np.float64)
        buf = self._dense[:self._size]
        buf[ids] = values
        try:
            yield buf
        finally:
            buf[ids] = 0.0

    def dims(self, ids: np.ndarray) -> np.ndarray:
        """Active dimensions of the features' HVs, shape (n, BLOCKS) int64."""
        return self.hv[ids].astype(np.int64) + np.arange(vsa.BLOCKS, dtype=np.int64) * vsa.BLOCK_LEN

    def word_list(self) -> list[str | None]:
        """The word of each id (None for other features and free ids), for the semantic layer."""
        out: list[str | None] = [None] * self._size
        for i, w in self.words.items():
            out[i] = w
        return out

    @classmethod
    def from_state(cls, keys: np.ndarray, hv: np.ndarray, role: np.ndarray, word_ids: np.ndarray,
                   words: list[str]) -> "FeatureTable":
        """A table whose ids are 0..len(keys)-1 in order (the store remaps chunk feature ids to these, in key order,
        so that this is array copies: no sort, no Python step per feature)."""
        n = len(keys)
        table = cls(max(1024, n))
        table.key[:n], table.hv[:n], table.role[:n] = keys, hv, role
        table._size = table._live = n
        order = np.arange(n, dtype=np.int32)
        if n > 1 and not bool((keys[1:] > keys[:-1]).all()):    # an older writer's order: sort once
            order = np.argsort(keys, kind="stable").astype(np.int32)
        table._sorted_keys, table._sorted_ids = keys[order].copy(), order
        table.words = dict(zip(word_ids.tolist(), words))
        return table
