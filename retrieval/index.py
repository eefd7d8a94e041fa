"""The chunk table: every chunk's engram, an inverted index over active dimensions, and two-stage search.

Slots are append-only with tombstones. The inverted index (dimension -> slots, CSC arrays) covers the slots present
when it was last built; slots added since are few and scored directly. Search generates candidates from the postings
of the probe's strongest dimensions — never scoring every chunk — then reranks the candidates exactly by cosine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import vsa
from .encoder import accumulate_postings, sparse_dots

CANDIDATES = 300
PROBE_DIMS = 256
COSINE_MIX = 0.5      # share of the engram cosine in the final score (the rest: exact BM25 over features)
BM25_K1 = 1.2
BM25_B = 0.75
NORM_EXPONENT = 1.0   # 1: cosine; lower values soften the penalty on long chunks (pivoted normalisation)


@dataclass
class ChunkRecord:
    path: str
    start_line: int
    end_line: int
    digest: str
    kind: str
    symbol: str
    ids: np.ndarray       # feature ids, int32
    weights: np.ndarray   # feature weights, int16
    dims: np.ndarray      # engram dims, int32
    vals: np.ndarray      # engram values, int32
    norm: float
    lex_norm: float
    length: int          # sum of the feature weights: BM25's document length


class ChunkTable:
    def __init__(self) -> None:
        self.records: list[ChunkRecord | None] = []
        self.free: list[int] = []
        self.alive = 0
        self._postings: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._indexed = np.zeros(0, bool)   # slot is covered by the postings
        self._fresh: set[int] = set()        # live slots not covered by the postings
        self._live = np.zeros(1024, bool)
        self.total_length = 0                # sum of chunk lengths (for BM25's average length)

    def __len__(self) -> int:
        return self.alive

    def add(self, record: ChunkRecord) -> int:
        slot = len(self.records)
        self.records.append(record)
        if slot >= len(self._live):
            self._live = np.concatenate([self._live, np.zeros(len(self._live), bool)])
        self._live[slot] = True
        self.total_length += record.length
        self.alive += 1
        self._fresh.add(slot)
        return slot

    def remove(self, slot: int) -> None:
        if self.records[slot] is not None:
            self.total_length -= self.records[slot].length
            self.records[slot] = None
            self._live[slot] = False
            self.alive -= 1
            self._fresh.discard(slot)

    def live_slots(self) -> list[int]:
        return [i for i, r in enumerate(self.records) if r is not None]

    # -- inverted index -------------------------------------------------------------------------------------------
    def build_postings(self) -> None:
        """(Re)builds the CSC postings over all live slots; compacts away tombstones' cost."""
        slots = self.live_slots()
        if slots:
            lens = np.fromiter((len(self.records[s].dims) for s in slots), np.int64, len(slots))
            dims = np.concatenate([self.records[s].dims for s in slots]).astype(np.int64)
            vals = np.concatenate([self.records[s].vals for s in slots]).astype(np.float32)
            rows = np.repeat(np.asarray(slots, np.int64), lens)
            order = np.argsort(dims, kind="stable")
            dims, rows, vals = dims[order], rows[order], vals[order]
            indptr = np.zeros(vsa.DIM + 1, np.int64)
            np.cumsum(np.bincount(dims, minlength=vsa.DIM), out=indptr[1:])
        else:
            indptr = np.zeros(vsa.DIM + 1, np.int64)
            rows = np.zeros(0, np.int64)
            vals = np.zeros(0, np.float32)
        self._postings = (indptr, rows, vals)
        self._indexed = np.zeros(len(self.records), bool)
        self._indexed[slots] = True
        self._fresh.clear()

    def _maybe_rebuild(self) -> None:
        stale = len(self.records) - int(self._indexed.sum()) if self._postings is not None else len(self.records)
        if self._postings is None or len(self._fresh) > max(2000, self.alive // 10) or stale > max(5000, self.alive):
            self.build_postings()

    # -- search ---------------------------------------------------------------------------------------------------
    def search(self, qdims: np.ndarray, qvals: np.ndarray, k: int, allowed: set[int] | None = None,
               seed: tuple[np.ndarray, np.ndarray] | None = None, lexical: bool = False,
               terms: tuple[np.ndarray, np.ndarray] | None = None) -> list[tuple[int, float]]:
        """Top-k live slots for the probe ``(qdims, qvals)``; ``allowed`` restricts the slots.

        Stage 1 accumulates the postings of the strongest dimensions of ``seed`` (default: the probe) — the part
        made of features the workspace knows, so hash collisions of unknown words bring no candidates. Stage 2
        reranks the candidates exactly: BM25 over the features themselves (``terms``: sorted feature ids and their
        query weights), blended with the engram cosine."""
        if self.alive == 0 or len(qdims) == 0:
            return []
        self._maybe_rebuild()
        indptr, rows, vals = self._postings
        n = len(self.records)
        scores = np.zeros(n, np.float32)
        sdims, svals = seed if seed is not None else (qdims, qvals)
        if len(sdims) == 0:
            return []
        strongest = np.argsort(-np.abs(svals), kind="stable")[:PROBE_DIMS]
        accumulate_postings(indptr, rows, vals, sdims[strongest].astype(np.int64), svals[strongest], scores)
        if self._fresh:
            sdense = np.zeros(vsa.DIM, np.float32)
            sdense[sdims] = svals
            for s in self._fresh:
                r = self.records[s]
                scores[s] = float(np.dot(sdense[r.dims], r.vals))
        live = self._live[:n].copy()
        if allowed is not None:
            mask = np.zeros(n, bool)
            mask[np.fromiter(allowed, np.int64, len(allowed))] = True
            live &= mask
        scores[~live] = 0.0
        positive = np.flatnonzero(scores > 0)
        if len(positive) == 0:
            return []
        c = min(len(positive), max(CANDIDATES, 4 * k))
        cand = positive[np.argpartition(-scores[positive], c - 1)[:c]] if len(positive) > c else positive
        recs = [self.records[s] for s in cand]
        cos = self._cosine(recs, qdims, qvals, lexical)
        if terms is not None and len(terms[0]):
            bm = self._bm25(recs, terms)
            top = bm.max() or 1.0
            final = (1 - COSINE_MIX) * bm / top + COSINE_MIX * cos
        else:
            final = cos
        order = np.argsort(-final, kind="stable")[:k]
        return [(int(cand[i]), float(final[i])) for i in order if final[i] > 0]

    def _cosine(self, recs: list[ChunkRecord], qdims, qvals, lexical: bool) -> np.ndarray:
        qdense = np.zeros(vsa.DIM, np.float32)
        qdense[qdims] = qvals
        offsets = np.zeros(len(recs) + 1, np.int64)
        np.cumsum([len(r.dims) for r in recs], out=offsets[1:])
        flat_dims = np.concatenate([r.dims for r in recs]).astype(np.int64)
        flat_vals = np.concatenate([r.vals for r in recs]).astype(np.float32)
        dots = np.zeros(len(recs), np.float64)
        sparse_dots(qdense, flat_dims, flat_vals, offsets, dots)
        qnorm = float(np.linalg.norm(qvals)) or 1.0
        cnorm = np.array([(r.lex_norm if lexical else r.norm) or 1.0 for r in recs])
        return dots / (qnorm * cnorm ** NORM_EXPONENT)

    def _bm25(self, recs: list[ChunkRecord], terms: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """BM25 of each candidate over exact features: sum of query weight (IDF-bearing) x saturated tf."""
        qids, qweights = terms
        avg = self.total_length / max(1, self.alive) or 1.0
        lens = np.fromiter((len(r.ids) for r in recs), np.int64, len(recs))
        ids = np.concatenate([r.ids for r in recs])
        tf = np.concatenate([r.weights for r in recs]).astype(np.float64)
        owner = np.repeat(np.arange(len(recs)), lens)
        pos = np.searchsorted(qids, ids)
        pos[pos >= len(qids)] = 0
        hit = qids[pos] == ids
        doc_len = np.fromiter((r.length for r in recs), np.float64, len(recs))
        norm = BM25_K1 * (1 - BM25_B + BM25_B * doc_len / avg)
        contrib = qweights[pos[hit]] * tf[hit] * (BM25_K1 + 1) / (tf[hit] + norm[owner[hit]])
        return np.bincount(owner[hit], weights=contrib, minlength=len(recs))
