"""The chunk table: one row (slot) per chunk in flat columns, the chunks' features in one arena, and postings.

Slots are reused after removal. A slot's features live in ``feat_ids/feat_w[feat_start:feat_start+feat_len]``; a
re-encoded chunk appends to the arena and the arena is compacted when more than half of it is garbage. The postings
(feature -> slots) cover the slots present at the last build (``in_base``); slots written since are "fresh" and are
scored directly from the arena, so an edit never waits for the postings to be rebuilt.
"""

from __future__ import annotations

import numpy as np

from . import kernels

# Compaction copies the live entries, so it runs once garbage exceeds them (amortised O(1) per edit) and a floor
# that keeps a small workspace from compacting every few edits: memory stays under 2x live + the floor (about 0.4 MB).
GARBAGE_MIN = 65_536
KINDS = ("block", "module", "function", "class", "method", "section")
KIND_CODE = {k: i for i, k in enumerate(KINDS)}

_COLUMNS = {  # name: dtype
    "doc": np.int32, "start": np.int32, "end": np.int32, "kind": np.uint8, "digest": np.uint64,
    "norm": np.float32, "lex_norm": np.float32, "length": np.int32, "live": np.bool_, "in_base": np.bool_,
    "feat_start": np.int64, "feat_len": np.int32,
}
REBUILD_FRESH = 2000        # fresh slots tolerated before the postings are rebuilt (also 10% of the table)


class ChunkTable:
    def __init__(self, capacity: int = 1024) -> None:
        for name, dtype in _COLUMNS.items():
            setattr(self, name, np.zeros(capacity, dtype))
        self.symbols: list[str] = []
        self.free: list[int] = []
        self.n_slots = 0                      # slots ever used (rows 0..n_slots-1)
        self.alive = 0
        self.total_length = 0
        self.feat_ids = np.zeros(4096, np.int32)
        self.feat_w = np.zeros(4096, np.int16)
        self.arena_used = 0
        self.garbage = 0
        self.fresh: set[int] = set()
        self.ptr = np.zeros(1, np.int64)
        self.post_slot = np.zeros(0, np.int32)
        self.post_w = np.zeros(0, np.int16)

    def __len__(self) -> int:
        return self.alive

    # -- rows -----------------------------------------------------------------------------------------------------
    def _grow_rows(self, needed: int) -> None:
        cap = len(self.live)
        if needed <= cap:
            return
        cap = max(needed, 2 * cap)
        for name, dtype in _COLUMNS.items():
            old = getattr(self, name)
            new = np.zeros(cap, dtype)
            new[:len(old)] = old
            setattr(self, name, new)

    def _grow_arena(self, needed: int) -> None:
        if needed <= len(self.feat_ids):
            return
        cap = max(needed, 2 * len(self.feat_ids))
        for name in ("feat_ids", "feat_w"):
            old = getattr(self, name)
            new = np.zeros(cap, old.dtype)
            new[:self.arena_used] = old[:self.arena_used]
            setattr(self, name, new)

    def add(self, doc: int, start: int, end: int, kind: str, symbol: str, digest: int, ids: np.ndarray,
            weights: np.ndarray, norm: float, lex_norm: float) -> int:
        if self.free:
            slot = self.free.pop()
            self.symbols[slot] = symbol
        else:
            slot = self.n_slots
            self.n_slots += 1
            self._grow_rows(self.n_slots)
            self.symbols.append(symbol)
        n = len(ids)
        self._grow_arena(self.arena_used + n)
        a = self.arena_used
        self.feat_ids[a:a + n] = ids
        self.feat_w[a:a + n] = weights
        self.arena_used += n
        length = int(weights.sum())
        self.doc[slot], self.start[slot], self.end[slot] = doc, start, end
        self.kind[slot], self.digest[slot] = KIND_CODE[kind], digest
        self.norm[slot], self.lex_norm[slot], self.length[slot] = norm, lex_norm, length
        self.live[slot], self.in_base[slot] = True, False
        self.feat_start[slot], self.feat_len[slot] = a, n
        self.total_length += length
        self.alive += 1
        self.fresh.add(slot)
        return slot

    def remove(self, slot: int) -> np.ndarray:
        """Frees a slot; returns its feature ids (a copy) so the caller can release them."""
        if not self.live[slot]:
            return np.zeros(0, np.int32)
        ids = self.features(slot)[0].copy()
        self.live[slot] = self.in_base[slot] = False
        self.total_length -= int(self.length[slot])
        self.alive -= 1
        self.garbage += int(self.feat_len[slot])
        self.feat_len[slot] = 0
        self.symbols[slot] = ""
        self.fresh.discard(slot)
        self.free.append(slot)
        if self.garbage > GARBAGE_MIN and self.garbage > self.arena_used // 2:
            self.compact_arena()
        return ids

    def move(self, slot: int, start: int, end: int) -> None:
        self.start[slot], self.end[slot] = start, end

    def features(self, slot: int) -> tuple[np.ndarray, np.ndarray]:
        a, n = int(self.feat_start[slot]), int(self.feat_len[slot])
        return self.feat_ids[a:a + n], self.feat_w[a:a + n]

    def live_slots(self) -> np.ndarray:
        return np.flatnonzero(self.live[:self.n_slots])

    def compact_arena(self) -> None:
        """Copies live slots' features to a fresh arena, in slot order (garbage collection for edits)."""
        slots = self.live_slots()
        lens = self.feat_len[slots].astype(np.int64)
        starts = np.zeros(len(slots), np.int64)
        if len(slots):
            np.cumsum(lens[:-1], out=starts[1:])
        idx = (np.repeat(self.feat_start[slots] - starts, lens) + np.arange(int(lens.sum()), dtype=np.int64))
        ids, w = self.feat_ids[idx], self.feat_w[idx]
        self.feat_ids = np.zeros(max(4096, 2 * len(ids)), np.int32)
        self.feat_w = np.zeros(len(self.feat_ids), np.int16)
        self.feat_ids[:len(ids)], self.feat_w[:len(ids)] = ids, w
        self.arena_used, self.garbage = len(ids), 0
        self.feat_start[slots] = starts

    def shrink(self) -> None:
        """Drops the spare capacity that doubling left in the arena (up to half of it) once a large index is done;
        the next edit grows it again by doubling."""
        keep = max(4096, self.arena_used + self.arena_used // 16)
        if len(self.feat_ids) > keep + keep // 4:
            self.feat_ids = self.feat_ids[:keep].copy()
            self.feat_w = self.feat_w[:keep].copy()

    # -- postings -------------------------------------------------------------------------------------------------
    def build_postings(self, n_features: int) -> None:
        """(Re)builds the postings over every live slot (a numba transpose of the arena, O(entries))."""
        slots = self.live_slots().astype(np.int64)
        self.ptr, self.post_slot, self.post_w = kernels.transpose(
            slots, self.feat_start, self.feat_len, self.feat_ids, self.feat_w, max(1, n_features))
        self.in_base[:] = False
        self.in_base[slots] = True
        self.fresh.clear()

    def needs_rebuild(self) -> bool:
        return len(self.fresh) > max(REBUILD_FRESH, self.alive // 10)

    def average_length(self) -> float:
        return (self.total_length / self.alive) if self.alive and self.total_length > 0 else 1.0

    def nbytes(self) -> int:
        cols = sum(getattr(self, name).nbytes for name in _COLUMNS)
        return cols + self.feat_ids.nbytes + self.feat_w.nbytes + self.ptr.nbytes + self.post_slot.nbytes + \
            self.post_w.nbytes
