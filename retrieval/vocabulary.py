"""The feature table: feature names <-> integer ids, with every feature's hypervector, role and document frequency
held in columns.

An id is released the moment no live chunk uses its feature (document frequency 0) and handed out again, so the
stream of transient identifiers that typing produces (``fo``, ``foo``, ``foob``…) never accumulates.
"""

from __future__ import annotations

import numpy as np

from . import vsa

ROLES = "tidcamo"                     # role codes: index into this string
ROLE_WEIGHT = np.array([1, 2, 3, 1, 1, 2, 1], np.int16)
LEXICAL_ROLES = np.array([c in "ti" for c in ROLES])


def hypervectors(names: list[str]) -> np.ndarray:
    """HVs of feature names, shape (n, BLOCKS) int64. An ordered pair ``o:a b`` is ``bind(permute(hv(t:a)), hv(t:b))``;
    every other feature is the HV seeded by its name."""
    hvs = np.empty((len(names), vsa.BLOCKS), np.int64)
    pairs = [i for i, n in enumerate(names) if n.startswith("o:")]
    plain = [i for i, n in enumerate(names) if not n.startswith("o:")]
    if plain:
        hvs[plain] = vsa.random_hvs(np.array([vsa.seed_of(names[i]) for i in plain], np.uint64))
    if pairs:
        firsts, seconds = zip(*(names[i][2:].partition(" ")[::2] for i in pairs))
        a = vsa.random_hvs(np.array([vsa.seed_of("t:" + w) for w in firsts], np.uint64))
        b = vsa.random_hvs(np.array([vsa.seed_of("t:" + w) for w in seconds], np.uint64))
        hvs[pairs] = vsa.bind(vsa.permute(a, 1), b)
    return hvs


def role_of(name: str) -> int:
    r = ROLES.find(name[0])
    return r if r >= 0 and name[1:2] == ":" else 0


class FeatureTable:
    """Columns indexed by feature id: ``hv`` (n, BLOCKS) int16 slots, ``role`` uint8, ``df`` int32."""

    def __init__(self, capacity: int = 1024) -> None:
        self.ids: dict[str, int] = {}
        self.names: list[str | None] = []
        self.free: list[int] = []
        self.hv = np.zeros((capacity, vsa.BLOCKS), np.int16)
        self.role = np.zeros(capacity, np.uint8)
        self.df = np.zeros(capacity, np.int32)

    def __len__(self) -> int:
        """Live features."""
        return len(self.ids)

    @property
    def size(self) -> int:
        """One past the largest id ever handed out (the length of the used part of each column)."""
        return len(self.names)

    def _grow(self, needed: int) -> None:
        cap = len(self.role)
        if needed <= cap:
            return
        cap = max(needed, 2 * cap)
        for name in ("hv", "role", "df"):
            old = getattr(self, name)
            new = np.zeros((cap,) + old.shape[1:], old.dtype)
            new[:len(old)] = old
            setattr(self, name, new)

    def intern(self, names: list[str]) -> np.ndarray:
        """Ids of ``names`` (int32), adding the new ones with their HVs computed in one vectorised batch."""
        ids = self.ids
        new = [n for n in dict.fromkeys(names) if n not in ids]
        if new:
            reuse = self.free[-len(new):] if self.free else []
            del self.free[len(self.free) - len(reuse):]
            fresh = list(range(len(self.names), len(self.names) + len(new) - len(reuse)))
            self.names.extend([None] * len(fresh))
            slots = reuse + fresh
            self._grow(len(self.names))
            slot_arr = np.asarray(slots, np.int64)
            self.hv[slot_arr] = hypervectors(new)
            self.role[slot_arr] = [role_of(n) for n in new]
            self.df[slot_arr] = 0
            for n, i in zip(new, slots):
                ids[n] = i
                self.names[i] = n
        return np.fromiter((ids[n] for n in names), np.int32, len(names))

    def lookup(self, name: str) -> int:
        """The id of a live feature, or -1."""
        return self.ids.get(name, -1)

    def count(self, ids: np.ndarray, sign: int) -> None:
        """Adds ``sign`` to the document frequency of each id (a chunk's distinct features); releases ids that
        reach zero."""
        if len(ids) == 0:
            return
        np.add.at(self.df, ids, sign)
        if sign < 0:
            dead = ids[self.df[ids] <= 0]
            for i in dead.tolist():
                name = self.names[i]
                if name is not None:
                    del self.ids[name]
                    self.names[i] = None
                    self.free.append(i)
                    self.df[i] = 0

    def dims(self, ids: np.ndarray) -> np.ndarray:
        """Active dimensions of the features' HVs, shape (n, BLOCKS) int64."""
        return self.hv[ids].astype(np.int64) + np.arange(vsa.BLOCKS, dtype=np.int64) * vsa.BLOCK_LEN

    def state(self) -> dict:
        """The live features as plain arrays (for the store): names, and their HVs so loading never re-hashes."""
        live = np.fromiter((i for i, n in enumerate(self.names) if n is not None), np.int64)
        return {"names": [self.names[i] for i in live.tolist()], "ids": live, "hv": self.hv[live]}

    @classmethod
    def from_state(cls, names: list[str], hv: np.ndarray, role: np.ndarray | None = None) -> "FeatureTable":
        """A table whose ids are 0..len(names)-1 in order (the store remaps chunk feature ids to these). ``role``
        comes from the store (deriving it from 300k names costs a second); older stores lack it."""
        table = cls(max(1024, len(names)))
        table.names = list(names)
        table.ids = dict(zip(names, range(len(names))))
        table.hv[:len(names)] = hv
        table.role[:len(names)] = role if role is not None and len(role) == len(names) else \
            [role_of(n) for n in names]
        return table
